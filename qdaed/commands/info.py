"""``qdaed info MODEL``: a model file's configuration, bits, parameters and bytes."""

from __future__ import annotations

import json
import os


def register(sub):
    p = sub.add_parser("info", help="a model file's config, bits, parameters and bytes")
    p.add_argument("model", help="model file (.safetensors) written by qdaed")
    p.add_argument("--json", action="store_true", help="print the full header as JSON")
    p.set_defaults(func=_run)


def _run(args):
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
