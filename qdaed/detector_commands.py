"""``qdaed info``, ``qdaed evaluate`` and ``qdaed detect``: using a model file."""

from __future__ import annotations

import json
import os
import sys


def register(sub):
    p = sub.add_parser("info", help="a model file's config, bits, parameters and bytes")
    p.add_argument("model", help="model file (.safetensors) written by qdaed")
    p.add_argument("--json", action="store_true", help="print the full header as JSON")
    p.set_defaults(func=_info)

    p = sub.add_parser("evaluate", help="metrics of a model file on a manifest's clips")
    p.add_argument("model")
    p.add_argument("--manifest", required=True, help="CSV manifest (path or ytid, labels): a "
                                                     "path, or a shipped manifest's name "
                                                     "(audioset, real_audio)")
    p.add_argument("--audio-root", required=True, help="folder the manifest's paths are in")
    p.add_argument("--split", help="evaluate only this split of the manifest (e.g. test)")
    p.add_argument("--features-dir", help="feature cache folder (default: a temporary one)")
    p.add_argument("--jobs", type=int, default=0, help="feature processes (default: all cores)")
    p.set_defaults(func=_evaluate)

    p = sub.add_parser("detect", help="per-class scores and decisions for audio files")
    p.add_argument("model")
    p.add_argument("audio", nargs="+", help="audio files (wav, flac, ogg)")
    p.add_argument("--json", action="store_true", help="one JSON object per file")
    p.set_defaults(func=_detect)


def _info(args):
    from qdaed.detector import Detector

    det = Detector.load(args.model)
    if args.json:
        from qdaed.io.modelfile import read_header

        print(json.dumps(read_header(args.model), indent=2))
        return 0
    name, arch = type(det.model).__name__, det.model.config
    print(f"model        {args.model}")
    print(f"name         {det.info.get('name')} ({det.info.get('schedule')}), seed "
          f"{det.info.get('seed')}")
    print(f"architecture {name} " + " ".join(f"{k}={v}" for k, v in arch.items()))
    print(f"input        {det.frames} frames x {det.normalizer.mean.size} mel bins "
          f"(LFBE {det.features.get('low_freq')}-{det.features.get('high_freq')} Hz)")
    print(f"classes      {', '.join(det.classes)}; thresholds "
          + ", ".join(f"{t:.4f}" for t in det.thresholds))
    print(f"parameters   {det.num_parameters():,}")
    on_disk = os.path.getsize(args.model)
    print(f"bytes        {det.accounted_bytes():,} (DESIGN 2.7 accounting, normalisation "
          f"included); file {on_disk:,} = that + {on_disk - det.accounted_bytes():,} of header")
    if det.quantized:
        print("quantized    " + ", ".join(
            f"{n}: {q.bits}-bit, group {q.group}, {q.groups} groups"
            for n, q in det.quantized.items()))
    else:
        print("quantized    none (float32)")
    return 0


def _evaluate(args):
    import tempfile

    import numpy as np

    from qdaed.data.manifest import read_manifest, resolve_manifest
    from qdaed.detector import Detector
    from qdaed.errors import DataError
    from qdaed.features.lfbe import LfbeOptions
    from qdaed.features.store import extract_features, load_features
    from qdaed.metrics import compute_metrics
    from qdaed.validate import check_int

    jobs = check_int("--jobs", args.jobs, lo=0)
    args.manifest = resolve_manifest(args.manifest)
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


def _detect(args):
    from qdaed.data.audio import TARGET_RATE, load_clip
    from qdaed.detector import Detector
    from qdaed.errors import DataError
    from qdaed.features.lfbe import lfbe

    det = Detector.load(args.model)
    failed = 0
    for path in args.audio:
        try:
            wav = load_clip(path, TARGET_RATE, min_samples=400)
        except DataError as exc:
            print(f"skipped: {exc}", file=sys.stderr)
            failed += 1
            continue
        scores = det.scores(det.prepare([lfbe(wav, TARGET_RATE, **det.features)]))[0]
        present = det.decisions(scores[None])[0]
        if args.json:
            print(json.dumps({"file": path, "scores": dict(zip(det.classes, map(float, scores))),
                              "detected": [c for c, p in zip(det.classes, present) if p]}))
        else:
            cols = "  ".join(f"{c}={s:.3f}{'*' if p else ''}"
                             for c, s, p in zip(det.classes, scores, present))
            print(f"{path}: {cols}")
    if not args.json:
        print("(* = above the class threshold chosen at the validation EER point)",
              file=sys.stderr)
    return 1 if failed else 0
