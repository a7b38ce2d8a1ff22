"""``qdaed detect MODEL AUDIO...``: per-class scores and decisions for audio files."""

from __future__ import annotations

import json
import sys


def register(sub):
    p = sub.add_parser("detect", help="per-class scores and decisions for audio files")
    p.add_argument("model")
    p.add_argument("audio", nargs="+", help="audio files (wav, flac, ogg)")
    p.add_argument("--json", action="store_true", help="one JSON object per file")
    p.set_defaults(func=_run)


def _run(args):
    from qdaed.data.audio import TARGET_RATE, load_clip
    from qdaed.detector import Detector
    from qdaed.errors import DataError
    from qdaed.features.fbank import lfbe

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
