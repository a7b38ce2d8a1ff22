"""``qdaed pipeline``: options → resolved config → :func:`qdaed.pipeline.run.run_pipeline`."""

from __future__ import annotations

from qdaed.errors import InputError
from qdaed.pipeline.presets import PRESETS, preset_config
from qdaed.validate import check_float, check_int


def _bits(text):
    try:
        bits = [int(b) for b in text.split(",") if b.strip()]
    except ValueError:
        raise InputError(f"--bits: expected comma-separated integers such as 8,4,2, "
                         f"got {text!r}") from None
    if not bits:
        raise InputError("--bits: expected at least one bit width")
    for b in bits:
        check_int("--bits", b, lo=1, hi=16)
    if len(set(bits)) != len(bits):
        raise InputError(f"--bits: repeated bit width in {text!r}")
    return bits


def register(sub):
    p = sub.add_parser(
        "pipeline",
        help="run the paper's whole experiment (teacher, student, distillation, quantization)",
        description="Trains the teacher, the baseline and distilled students, and the k-bit "
                    "models (qd, ptq, qat) for every seed; writes results.json, results.md, "
                    "scores.csv, model files, config and log into --out.",
    )
    p.add_argument("--preset", default="demo", help=f"one of {', '.join(PRESETS)} "
                   "(default demo: synthetic corpus, minutes on 2 cores)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--seeds", type=int, help="number of seeds (default: the preset's)")
    p.add_argument("--seed", type=int,
                   help="first training seed (default 0); seeds run seed … seed+N−1")
    p.add_argument("--bits", help="comma-separated bit widths (default 8,4,2)")
    p.add_argument("--temperature", type=float,
                   help="distillation temperature T > 0 (default: the preset's, 2)")
    p.add_argument("--lam", type=float,
                   help="distillation weight λ in [0, 1] (default: the preset's, 0.5)")
    p.add_argument("--manifest", help="CSV manifest of real audio (instead of synthetic data)")
    p.add_argument("--audio-root", help="folder the manifest's paths are relative to")
    p.add_argument("--max-freq", type=float,
                   help="band-limit control: mel filters end at this frequency (Hz)")
    p.add_argument("--equal-seconds", type=float,
                   help="equal-length control: cut/loop every clip to this many seconds")
    p.add_argument("--clips", type=int, help="synthetic clips to generate (default: preset's)")
    p.add_argument("--jobs", type=int, default=0,
                   help="processes for feature extraction (default: all cores)")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted run in --out from its last checkpoint")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    p.set_defaults(func=_run)


def resolve_config(args):
    """The preset's config with the command-line overrides applied and checked."""
    cfg = preset_config(args.preset)
    if args.seeds is not None:
        cfg["seeds"] = check_int("--seeds", args.seeds, lo=1)
    if args.seed is not None:
        cfg["seed"] = check_int("--seed", args.seed, lo=0)
    if args.bits is not None:
        cfg["quant"]["bits"] = _bits(args.bits)
    if args.temperature is not None:
        cfg["distill"]["temperature"] = check_float("--temperature", args.temperature, lo=0.0,
                                                    lo_open=True)
    if args.lam is not None:
        cfg["distill"]["lam"] = check_float("--lam", args.lam, lo=0.0, hi=1.0)
    if args.clips is not None:
        cfg["data"]["n_clips"] = check_int("--clips", args.clips, lo=10)
    if (args.manifest is None) != (args.audio_root is None):
        raise InputError("--manifest and --audio-root go together")
    if args.manifest is not None:
        cfg["data"].update(source="manifest", manifest=str(args.manifest),
                           audio_root=str(args.audio_root))
    if args.max_freq is not None:
        cfg["data"]["max_freq"] = check_float("--max-freq", args.max_freq, lo=100.0,
                                              hi=cfg["features"]["high_freq"])
    if args.equal_seconds is not None:
        cfg["data"]["equal_seconds"] = check_float("--equal-seconds", args.equal_seconds,
                                                   lo=0.05, hi=3600.0)
    return cfg


def _run(args):
    from qdaed.pipeline.run import run_pipeline

    cfg = resolve_config(args)
    jobs = check_int("--jobs", args.jobs, lo=0)
    run_pipeline(cfg, args.out, resume=args.resume, quiet=args.quiet, jobs=jobs)
    return 0
