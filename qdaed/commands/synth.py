"""``qdaed synth --n N --seed S --out DIR``: write the synthetic corpus as wav files."""

from __future__ import annotations

import os

from qdaed.commands.options import common
from qdaed.data.rates import SAMPLE_RATE
from qdaed.data.synth import corpus_config, parse_label_noise, write_corpus
from qdaed.errors import InputError
from qdaed.io.paths import check_output_dir
from qdaed.validate import check_int


def register(sub):
    p = sub.add_parser(
        "synth",
        help="write the seeded synthetic AED corpus (wav files + manifest with ground truth)",
        description="Generates N clips of the synthetic corpus (qdaed.data.synth: dog-, "
                    "baby-cry- and gunshot-like events with confusable distractors in varied "
                    "backgrounds) as 16-bit PCM wav files in OUT/audio, with OUT/manifest.csv "
                    "(path, labels = the observed labels a trainer sees, clean_labels = the "
                    "ground truth, split, background, events) and OUT/events.csv (one row per "
                    "event: onset, duration, SNR, whether its label was observed). Corpus v1 "
                    "has clean labels; v2 has AudioSet-like noisy weak labels (missing "
                    "positives, a few false positives) and events down to -15 dB. The same "
                    "seed gives byte-identical files.",
        parents=[common("out", "seed")],
    )
    p.add_argument("--n", type=int, required=True, help="number of labelled clips")
    p.add_argument("--corpus", choices=["v1", "v2"], default="v2",
                   help="v2 (default, as qdaed pipeline: noisy weak labels, clean truth in "
                        "clean_labels) or v1 (clean labels)")
    p.add_argument("--label-noise", metavar="MISSING[,FALSE_POSITIVE]",
                   help="v2's label noise (default 0.2,0.02): the rate of missing positives "
                        "and of false positives, each in [0, 1)")
    p.add_argument("--transfer", type=int, default=0, metavar="N",
                   help="N more clips (the following indices) with split 'unlabeled': a "
                        "transfer set (default 0)")
    p.add_argument("--duration", type=float, default=10.0, help="clip length in s (default 10)")
    p.add_argument("--sample-rate", type=int, default=SAMPLE_RATE,
                   help="default %(default)s")
    p.add_argument("--snr", type=float, nargs=2, metavar=("LOW", "HIGH"),
                   help="SNR range of target events in dB (default -8 10 for v1, -15 10 "
                        "for v2)")
    p.add_argument("--validation-fraction", type=float, default=0.1,
                   help="share of clips in the validation split (default 0.1)")
    p.add_argument("--test-fraction", type=float, default=0.1,
                   help="share of clips in the test split (default 0.1)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_run)


def _run(args):
    extra = {"snr_db": tuple(args.snr)} if args.snr else {}
    n_transfer = check_int("--transfer", args.transfer, lo=0)
    check_output_dir("--out", args.out)
    noise = None
    if args.label_noise is not None:
        if args.corpus != "v2":
            raise InputError("--label-noise: only corpus v2 (the default) has label noise")
        noise = parse_label_noise(args.label_noise)
    cfg = corpus_config(args.corpus, args.duration, args.sample_rate, label_noise=noise,
                        **extra)
    rows = write_corpus(args.out, args.n, args.seed, cfg,
                        validation_fraction=args.validation_fraction,
                        test_fraction=args.test_fraction, n_transfer=n_transfer,
                        progress=not args.no_progress)
    labelled = [r for r in rows if r["split"] != "unlabeled"]

    def counts(col):
        return ", ".join(f"{c} {sum(c in r[col].split(';') for r in labelled)}"
                         for c in cfg.classes) \
            + f", negative {sum(1 for r in labelled if not r[col])}"

    print(f"wrote {len(rows)} clips to {os.path.join(args.out, 'audio')} (corpus "
          f"{args.corpus}{f', {len(rows) - len(labelled)} unlabeled' if args.transfer else ''})"
          f"; labels: {counts('labels')}")
    if cfg.label_noise.active:
        print(f"label noise: {cfg.label_noise.describe()}; clean labels: "
              f"{counts('clean_labels')}")
    print(f"manifest: {os.path.join(args.out, 'manifest.csv')}  "
          f"events: {os.path.join(args.out, 'events.csv')}")
    return 0
