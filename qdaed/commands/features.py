"""``qdaed features MANIFEST --audio-root DIR --out DIR``: cached LFBE of every clip."""

from __future__ import annotations

import dataclasses
import os
import sys

from qdaed.commands.options import common
from qdaed.data.manifest import read_manifest, resolve_manifest
from qdaed.data.rates import SAMPLE_RATE
from qdaed.errors import InputError
from qdaed.features.fbank import LfbeOptions, make_options
from qdaed.features.store import extract_features
from qdaed.io.paths import check_output_dir
from qdaed.validate import check_float


def register(sub):
    names = ", ".join(f.name for f in dataclasses.fields(LfbeOptions))
    p = sub.add_parser(
        "features",
        help="compute (or reuse) the LFBE features of every clip of a manifest",
        description="Reads each clip of MANIFEST (mono mixdown, resampling to --sample-rate), "
                    "computes its log mel filterbank energies and caches them in OUT/cache "
                    "keyed by the file's content hash and the options; the next run reuses "
                    "them. Writes OUT/features.csv (usable clips) and OUT/bad_audio.csv "
                    "(skipped clips and why).",
        parents=[common("out", "jobs")],
    )
    p.add_argument("manifest", help="manifest CSV (path or ytid+start_seconds, labels, split): "
                                    "a path, or a shipped manifest's name (audioset, "
                                    "real_audio, real_corpus, real_corpus_transfer; then "
                                    "--audio-root is needed)")
    p.add_argument("--audio-root", help="folder the manifest's paths are relative to "
                                        "(default: the manifest's folder)")
    p.add_argument("--strict", action="store_true",
                   help="stop with an error naming every unusable clip instead of skipping")
    p.add_argument("--sample-rate", type=int, default=SAMPLE_RATE,
                   help="rate every clip is resampled to (default %(default)s)")
    p.add_argument("--option", action="append", default=[], metavar="NAME=VALUE",
                   help=f"an LFBE option, repeatable (e.g. num_mel_bins=40, window=hamming); "
                        f"names: {names}")
    p.add_argument("--max-duration", type=float, default=3600.0, metavar="SECONDS",
                   help="skip (as bad audio, with the reason) clips whose header declares "
                        "more than this; clips are decoded whole (default 3600 = 1 h; qdaed "
                        "detect streams recordings of any length)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_run)


def parse_option_values(pairs):
    """``["num_mel_bins=40", "window=hann"]`` → LfbeOptions, typed by the dataclass fields."""
    defaults = LfbeOptions()
    kwargs = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or not hasattr(defaults, name):
            raise InputError(f"--option: expected NAME=VALUE with NAME an LFBE option, "
                             f"got {pair!r}")
        default = getattr(defaults, name)
        text = text.strip()
        try:
            if text.lower() in ("none", "") and name in ("fft_size", "mel_norm"):
                value = None
            elif isinstance(default, bool):
                if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError
                value = text.lower() in ("true", "1", "yes")
            elif name == "fft_size" or isinstance(default, int):
                value = int(text)
            elif isinstance(default, float):
                value = float(text)
            else:
                value = text
        except ValueError:
            raise InputError(f"--option {name}: cannot read {text!r} as "
                             f"{type(default).__name__}") from None
        kwargs[name] = value
    return make_options(**kwargs)


def _run(args):
    options = parse_option_values(args.option)
    check_output_dir("--out", args.out, inputs=[args.audio_root])
    max_seconds = check_float("--max-duration", args.max_duration, 0.0, lo_open=True)
    path = resolve_manifest(args.manifest, "MANIFEST")
    if path != args.manifest and args.audio_root is None:
        raise InputError(f"MANIFEST {args.manifest}: the clips of a shipped manifest are not "
                         f"beside it; give --audio-root (the folder that holds them)")
    args.manifest = path
    clips = read_manifest(args.manifest)
    root = args.audio_root or os.path.dirname(os.path.abspath(args.manifest))
    report = extract_features(clips, root, args.out, options, sample_rate=args.sample_rate,
                              jobs=args.jobs, strict=args.strict,
                              progress=not args.no_progress, manifest_name=args.manifest,
                              max_seconds=max_seconds)
    print(report.summary())
    if report.bad:
        print(f"skipped clips and reasons: {os.path.join(args.out, 'bad_audio.csv')}",
              file=sys.stderr)
        for clip, _, reason in report.bad[:5]:
            print(f"  line {clip.line}: {reason}", file=sys.stderr)
        if len(report.bad) > 5:
            print(f"  … and {len(report.bad) - 5} more", file=sys.stderr)
    print(f"index of usable clips: {os.path.join(args.out, 'features.csv')}")
    return 0
