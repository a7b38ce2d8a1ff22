"""``qdaed import STATE.safetensors --arch student|resnet --manifest M --audio-root D --out
MODEL``: a PyTorch-trained network wrapped as a qdaed detector.

The network's sizes are read from the state_dict's shapes (``qdaed.formats.interchange``; options
such as --hidden-size are checked against them). Everything else is what the pipeline does
for the networks it trains: the manifest's clips go through the same feature loading
(``qdaed.pipeline.featuresets.load_dataset``: the LFBE options of --preset, every clip cut or
looped to one length, the manifest's splits or a seeded split), the normalisation is fitted
on the training split (``Normalizer.fit``) and the thresholds are chosen at the validation EER
point (``qdaed.pipeline.stages.eer_thresholds``). The model file's ``info`` says it was imported:
schedule "imported", and ``imported`` with the state file's name and SHA-256, the manifest,
and how normalisation and thresholds were chosen.

(The module is ``import_`` because ``import`` is a Python keyword.)
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import sys
import tempfile
from pathlib import Path

from qdaed.commands.options import common
from qdaed.detector import Detector
from qdaed.errors import DataError, InputError
from qdaed.features.prepare import Normalizer
from qdaed.formats.interchange import model_from_state, read_state
from qdaed.io.paths import check_output_dir, check_output_file
from qdaed.pipeline.featuresets import load_dataset
from qdaed.pipeline.presets import preset_config
from qdaed.pipeline.stages import eer_thresholds
from qdaed.validate import check_float, check_int


def register(sub):
    p = sub.add_parser(
        "import", help="wrap a PyTorch-trained network (a state_dict) as a qdaed detector",
        description="Reads a PyTorch state_dict saved with safetensors (torch.nn.LSTM + "
                    "nn.Linear as lstm.*/fc.*, or a torchvision-layout ResNet with 1 input "
                    "channel), fits the normalisation on the manifest's training split and "
                    "chooses thresholds at the validation EER point, as the pipeline does, "
                    "and writes a model file.",
        parents=[common("jobs")])
    p.add_argument("state", help="PyTorch state_dict as .safetensors")
    p.add_argument("--arch", required=True, choices=("student", "resnet"),
                   help="the state_dict's network: student (StudentLSTM) or resnet (ResNet)")
    p.add_argument("--manifest", required=True, help="CSV manifest with train and validation "
                                                     "clips (a split column, or a seeded split)")
    p.add_argument("--audio-root", required=True, help="folder the manifest's paths are in")
    p.add_argument("--out", required=True, help="model file to write")
    p.add_argument("--name", help="model name recorded in the file (default: the state "
                                  "file's name)")
    p.add_argument("--preset", default="demo", help="LFBE options, classes and default split "
                                                    "of this pipeline preset (default demo)")
    p.add_argument("--classes", help="comma-separated class names, one per output (default: "
                                     "the preset's)")
    p.add_argument("--num-mel-bins", type=int, help="LFBE bins (default: the LSTM's input "
                                                    "size; for a ResNet the preset's)")
    p.add_argument("--equal-seconds", type=float, help="cut or loop every clip to this length "
                                                       "(default: the longest clip)")
    p.add_argument("--pooling", default="mean", choices=("mean", "last", "max"),
                   help="student: temporal pooling of the top layer (default mean)")
    for opt in ("hidden-size", "num-layers", "depth", "width"):
        p.add_argument(f"--{opt}", type=int, help="check: must equal the state_dict's")
    p.add_argument("--features-dir", help="feature cache folder (default: a temporary one)")
    p.set_defaults(func=_run)


def _run(args):
    check_output_file("--out", args.out, inputs=[args.state, args.manifest])
    if args.features_dir is not None:
        check_output_dir("--features-dir", args.features_dir, inputs=[args.audio_root])
    state = read_state(args.state)
    model = model_from_state(state, args.arch, args.state, pooling=args.pooling,
                             hidden_size=args.hidden_size, num_layers=args.num_layers,
                             depth=args.depth, width=args.width)
    cfg = preset_config(args.preset, audio_root=args.audio_root)
    classes = [c.strip() for c in args.classes.split(",")] if args.classes else list(cfg.classes)
    if len(classes) != model.num_classes:
        raise InputError(f"--classes: {len(classes)} names ({', '.join(classes)}) for the "
                         f"network's {model.num_classes} outputs")
    bins = args.num_mel_bins
    if bins is None:
        bins = model.input_size if args.arch == "student" else cfg.features.num_mel_bins
    bins = check_int("--num-mel-bins", bins, lo=3)
    if args.arch == "student" and bins != model.input_size:
        raise InputError(f"--num-mel-bins: {bins}, but the LSTM's input size is "
                         f"{model.input_size}")
    if args.equal_seconds is not None:
        check_float("--equal-seconds", args.equal_seconds, lo=0.05, hi=3600.0)
    data_cfg = dataclasses.replace(cfg.data, source="manifest", manifest=str(args.manifest),
                                   audio_root=str(args.audio_root), n_transfer=0,
                                   equal_seconds=args.equal_seconds)
    features = dataclasses.replace(cfg.features, num_mel_bins=bins)

    def log(msg):
        print(msg, file=sys.stderr)

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.features_dir) if args.features_dir else Path(tmp)
        data = load_dataset(data_cfg, features, classes, out, log,
                            jobs=check_int("--jobs", args.jobs, lo=0))
    train, val = data.subset("train"), data.subset("validation")
    if len(train) == 0 or len(val) == 0:
        raise DataError(f"{args.manifest}: needs clips in both the train and the validation "
                        f"split ({len(train)} and {len(val)})")
    norm = Normalizer.fit(train.features)
    with open(args.state, "rb") as f:
        sha = hashlib.sha256(f.read()).hexdigest()
    det = Detector(model, norm, int(data.features.shape[1]), tuple(classes),
                   data.feature_options, [0.5] * len(classes), {}, {
                       "name": args.name or Path(args.state).stem, "schedule": "imported",
                       "bits": None, "seed": None,
                       "imported": {"from": os.path.basename(args.state), "sha256": sha,
                                    "arch": args.arch, "manifest": os.path.basename(
                                        args.manifest),
                                    "normalizer": f"fitted on the {len(train)} training clips",
                                    "thresholds": f"validation EER point, {len(val)} clips"}})
    det.thresholds = eer_thresholds(det.scores(norm.apply(val.features)), val.labels)
    det.save(args.out)
    print(f"wrote {args.out}: {type(model).__name__} "
          + " ".join(f"{k}={v}" for k, v in model.config.items())
          + f", {det.frames} frames x {bins} bins; normalisation from {len(train)} training "
            f"clips, thresholds at the validation EER point ({len(val)} clips): "
          + ", ".join(f"{c} {t:.4f}" for c, t in zip(classes, det.thresholds)))
    return 0
