"""``qdaed evaluate MODEL --manifest CSV --audio-root DIR``: metrics of a model file on a
manifest's clips."""

from __future__ import annotations

import sys


def register(sub):
    p = sub.add_parser("evaluate", help="metrics of a model file on a manifest's clips (clip and event metrics)")
    p.add_argument("model")
    p.add_argument("--manifest", required=True, help="CSV manifest (path or ytid, labels)")
    p.add_argument("--audio-root", required=True, help="folder the manifest's paths are in")
    p.add_argument("--split", help="evaluate only this split of the manifest (e.g. test)")
    p.add_argument("--features-dir", help="feature cache folder (default: a temporary one)")
    p.add_argument("--jobs", type=int, default=0, help="feature processes (default: all cores)")
    p.set_defaults(func=_run)


def _run(args):
    import tempfile

    import numpy as np

    from qdaed.data.manifest import read_manifest
    from qdaed.detector import Detector
    from qdaed.errors import DataError
    from qdaed.features.fbank import LfbeOptions
    from qdaed.features.store import extract_features, load_features
    from qdaed.metrics import compute_metrics
    from qdaed.validate import check_int

    jobs = check_int("--jobs", args.jobs, lo=0)
    det = Detector.load(args.model)
    clips = read_manifest(args.manifest, det.classes)
    if args.split:
        clips = [c for c in clips if c.split == args.split]
        if not clips:
            raise DataError(f"{args.manifest}: no clip in split {args.split!r}")
    with tempfile.TemporaryDirectory() as tmp:
        report = extract_features(clips, args.audio_root, args.features_dir or tmp,
                                  LfbeOptions(**det.features), jobs=jobs or None,
                                  manifest_name=args.manifest)
        feats = [load_features(p) for _, p, _ in report.items]
    for clip, _, reason in report.bad:
        print(f"skipped {clip.name}: {reason}", file=sys.stderr)
    labels = np.array([c.targets(det.classes) for c, _, _ in report.items], dtype=np.float64)
    scores = det.scores(det.prepare(feats))
    m = compute_metrics(scores, labels, list(det.classes))
    print(f"{len(feats)} clips evaluated ({len(report.bad)} skipped)")
    print(f"{'class':<10} {'AUC':>7} {'EER':>7} {'AP':>7}")
    for c in [*det.classes, "mean"]:
        print(f"{c:<10} {m['auc'][c]:7.4f} {m['eer'][c]:7.4f} {m['ap'][c]:7.4f}")
    return 0
