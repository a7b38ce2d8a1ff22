"""``qdaed manifests build|count|path|real-corpus|urbansound8k|esc50|donateacry``: AudioSet
subset manifests for dog, baby_cry and gunshot; manifests of the real corpus and of the public
datasets in their official layouts (qdaed.data.corpora); where the shipped manifests are."""

from __future__ import annotations

import glob
import os

from qdaed.commands.options import common
from qdaed.data import corpora
from qdaed.data.audioset import (build_manifest, count_classes, manifest_counts,
                                 write_audioset_manifest)
from qdaed.data.corpora import REAL_CORPUS_SEED, REAL_CORPUS_UNLABELED
from qdaed.data.manifest import CLASSES, manifests_dir, shipped_manifest
from qdaed.io.paths import check_output_file


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
                    "real_audio, real_corpus, real_corpus_transfer), or one manifest's file; "
                    "--manifest options take these names as well as paths. 'real-corpus' "
                    "builds real_corpus*.csv from the corpus's labels.csv; 'urbansound8k', "
                    "'esc50' and 'donateacry' read a dataset in its official layout and write "
                    "a manifest whose paths are relative to its root (--audio-root ROOT).",
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    b = actions.add_parser("build", help="write the subset manifest CSV",
                           parents=[common("seed")])
    b.add_argument("--audioset", required=True, help="folder with the AudioSet CSVs")
    b.add_argument("--out", required=True, help="manifest CSV to write")
    b.add_argument("--negative-ratio", type=float, default=1.0,
                   help="negatives per positive, drawn from each source list (default 1)")
    b.add_argument("--validation-fraction", type=float, default=0.1,
                   help="share of the training lists put in validation, per label set "
                        "(default 0.1)")
    b.add_argument("--with-descendants", action="store_true",
                   help="count a clip with only a descendant label (e.g. Bark) as positive")
    b.set_defaults(func=_build)
    c = actions.add_parser("count", help="print per-class counts under each definition")
    c.add_argument("--audioset", required=True, help="folder with the AudioSet CSVs")
    c.set_defaults(func=_count)
    w = actions.add_parser("path", help="print where the shipped manifests are (the folder, "
                                        "or the file of NAME)")
    w.add_argument("name", nargs="?", metavar="NAME",
                   help="a shipped manifest's name (audioset, real_audio, …); without it, "
                        "the folder that holds them")
    w.set_defaults(func=_path)
    r = actions.add_parser("real-corpus", help="the real corpus's manifest from its labels.csv, "
                                               "split by source recording",
                           parents=[common("seed", seed=REAL_CORPUS_SEED)])  # the shipped split
    r.add_argument("--labels", required=True, help="the corpus's labels.csv")
    r.add_argument("--out", required=True, help="manifest CSV to write")
    r.add_argument("--unlabeled-fraction", type=float, default=0.0,
                   help="share of each stratum's training clips moved, as whole recordings, "
                        "to split 'unlabeled' (default 0; real_corpus_transfer.csv: "
                        f"{REAL_CORPUS_UNLABELED:g}); validation and test stay the same")
    r.set_defaults(func=_real_corpus)
    for name, what, folds in (("urbansound8k", "UrbanSound8K (metadata/UrbanSound8K.csv, "
                               "audio/fold1..10/)", (9, 10)),
                              ("esc50", "ESC-50 (meta/esc50.csv, audio/)", (4, 5))):
        o = actions.add_parser(name, help=f"manifest of {what}, split by official fold")
        o.add_argument("--root", required=True, help="the dataset's folder")
        o.add_argument("--out", required=True, help="manifest CSV to write")
        o.add_argument("--validation-fold", type=int, default=folds[0],
                       help=f"official fold used for validation (default {folds[0]})")
        o.add_argument("--test-fold", type=int, default=folds[1],
                       help=f"official fold used for test (default {folds[1]}); the other "
                            f"folds are train")
        o.set_defaults(func=_official, dataset=name)
    d = actions.add_parser("donateacry", help="manifest of the donateacry-corpus "
                                              "(donateacry_corpus_cleaned_and_updated_data/), "
                                              "split by app install",
                           parents=[common("seed")])
    d.add_argument("--root", required=True, help="the dataset's folder")
    d.add_argument("--out", required=True, help="manifest CSV to write")
    d.set_defaults(func=_official, dataset="donateacry")


PAPER = {"dog": 13460, "baby_cry": 2313, "gunshot": 4083}


def _build(args):
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
    print(manifests_dir() if args.name is None else shipped_manifest(args.name))
    return 0


def print_counts(rows):
    """Clips and source recordings (groups) per class and split, as a table on stdout."""
    keys = (*CLASSES, "negative", "all")
    print(f"{'split':<11} " + " ".join(f"{k:>13}" for k in keys))
    print(f"{'':<11} " + " ".join(f"{'clips (recs)':>13}" for _ in keys))
    for split, c in corpora.split_counts(rows).items():
        print(f"{split:<11} " + " ".join(f"{f'{c[k][0]} ({c[k][1]})':>13}" for k in keys))


def _report(built, out):
    if built.moves:
        print(f"{len(built.moves)} source recording(s) listed in folds of two splits, moved "
              f"whole to one split:")
        for group, before, to in built.moves:
            print(f"  {group}: {', '.join(f'{n} in {s}' for s, n in before.items())} -> {to}")
    print_counts(built.rows)
    if built.missing:
        print(f"{len(built.missing)} of {len(built.rows)} audio file(s) not found (kept under "
              f"their official names; the pipeline lists and skips them), e.g. "
              f"{built.missing[0]}")
    print(f"wrote {out} ({len(built.rows)} clips, {os.path.getsize(out)} bytes)")


def _real_corpus(args):
    built = corpora.real_corpus_rows(args.labels, seed=args.seed,
                             unlabeled_fraction=args.unlabeled_fraction)
    built.write(args.out)
    _report(built, args.out)
    return 0


def _official(args):
    if args.dataset == "donateacry":
        built = corpora.donateacry_rows(args.root, seed=args.seed)
    else:
        build = corpora.urbansound8k_rows if args.dataset == "urbansound8k" else \
            corpora.esc50_rows
        built = build(args.root, validation_fold=args.validation_fold,
                      test_fold=args.test_fold)
    built.write(args.out)
    _report(built, args.out)
    return 0
