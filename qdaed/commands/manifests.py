"""``qdaed manifests build|count|path``: AudioSet subset manifests for dog, baby_cry and
gunshot, and where the manifests shipped with qdaed are."""

from __future__ import annotations

import glob
import os


def register(sub):
    p = sub.add_parser(
        "manifests",
        help="build the AudioSet subset manifests (dog, baby cry, gunshot + negatives); "
             "where the shipped manifests are",
        description="'build' and 'count' work on the official AudioSet CSVs (balanced, eval, "
                    "unbalanced or its 41 parts, ontology.json): 'build' writes the subset "
                    "manifest; 'count' prints the per-class counts under each definition (own "
                    "label only, or with ontology descendants) next to the paper's. 'path' "
                    "prints the folder of the manifests shipped with qdaed (audioset, "
                    "real_audio), or one manifest's file; --manifest options take these "
                    "names as well as paths.",
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    b = actions.add_parser("build", help="write the subset manifest CSV")
    b.add_argument("--audioset", required=True, help="folder with the AudioSet CSVs")
    b.add_argument("--out", required=True, help="manifest CSV to write")
    b.add_argument("--negative-ratio", type=float, default=1.0,
                   help="negatives per positive, drawn from each source list (default 1)")
    b.add_argument("--validation-fraction", type=float, default=0.1,
                   help="share of the training lists put in validation, per label set "
                        "(default 0.1)")
    b.add_argument("--seed", type=int, default=0, help="seed of sampling and split (default 0)")
    b.add_argument("--with-descendants", action="store_true",
                   help="count a clip with only a descendant label (e.g. Bark) as positive")
    b.set_defaults(func=_build)
    c = actions.add_parser("count", help="print per-class counts under each definition")
    c.add_argument("--audioset", required=True, help="folder with the AudioSet CSVs")
    c.set_defaults(func=_count)
    w = actions.add_parser("path", help="print where the shipped manifests are (the folder, "
                                        "or the file of NAME)")
    w.add_argument("name", nargs="?", metavar="NAME",
                   help="a shipped manifest's name (audioset, real_audio); without it, the "
                        "folder that holds them")
    w.set_defaults(func=_path)


PAPER = {"dog": 13460, "baby_cry": 2313, "gunshot": 4083}


def _build(args):
    from qdaed.data.audioset import build_manifest, manifest_counts, write_audioset_manifest
    from qdaed.io.paths import check_output_file

    check_output_file("--out", args.out,
                      inputs=glob.glob(os.path.join(glob.escape(args.audioset), "*")))
    rows = build_manifest(args.audioset, negative_ratio=args.negative_ratio,
                          validation_fraction=args.validation_fraction, seed=args.seed,
                          with_descendants=args.with_descendants)
    write_audioset_manifest(args.out, rows)
    counts = manifest_counts(rows)
    print(f"{'split':<11} {'clips':>7} {'dog':>7} {'baby_cry':>9} {'gunshot':>8} {'negative':>9}")
    for split, c in counts.items():
        print(f"{split:<11} {c['clips']:>7} {c['dog']:>7} {c['baby_cry']:>9} {c['gunshot']:>8} "
              f"{c['negative']:>9}")
    print(f"wrote {args.out} ({os.path.getsize(args.out)} bytes)")
    return 0


def _count(args):
    from qdaed.data.audioset import count_classes

    table = count_classes(args.audioset)
    print(f"{'list':<11} {'rows':>9}  {'dog':>13}  {'baby_cry':>13}  {'gunshot':>13}")
    print(f"{'':<11} {'':>9}  {'own (+desc)':>13}  {'own (+desc)':>13}  {'own (+desc)':>13}")
    for name in ("balanced", "eval", "unbalanced", "all", "train"):
        row = table[name]
        cells = "  ".join(f"{f'{row[c][0]} ({row[c][1]})':>13}" for c in PAPER)
        print(f"{name:<11} {row['rows']:>9}  {cells}")
    print(f"{'paper':<11} {'':>9}  " + "  ".join(f"{PAPER[c]:>13}" for c in PAPER))
    return 0


def _path(args):
    from qdaed.data.manifest import manifests_dir, shipped_manifest

    print(manifests_dir() if args.name is None else shipped_manifest(args.name))
    return 0
