"""``qdaed export MODEL --torch OUT.safetensors | --onnx OUT.onnx [--with-frontend] | --tflite
OUT.tflite``: a detector for PyTorch or ONNX runtimes (``qdaed.formats.interchange``,
``qdaed.formats.onnx_export``; ``--with-frontend``: the graph starts at 16 kHz samples and carries
the student's state, docs/guides/onnx_and_pytorch.md; the torch module to load the
state_dict into and the graph's contents are in their docstrings and the README), or its
integer student for TensorFlow Lite (Micro) (``qdaed.formats.tflite_export``).

--tflite writes the integer student stored in the model file (``qdaed.integer.store``), or,
with ``--calibration MANIFEST --audio-root DIR``, one calibrated now by TFLite's
post-training rules (``qdaed.integer.calibrate``) on the manifest's first ``--clips`` clips of
its train split (all its clips when it has no train split), in manifest order, prepared as the
detector prepares its inputs (cut or looped to its frames, normalised). ``--calibrated-model
OUT.safetensors`` also writes the model file with that integer student stored in it. The
.tflite's input is (``--batch``, frames, F) int8. Every output path is checked before any work;
a teacher, a pooling other than mean, ranges the integer student cannot represent, or no
integer student and no --calibration are qdaed errors (exit 2) and nothing is written.
"""

from __future__ import annotations

import sys
import tempfile

from qdaed.commands.options import common
from qdaed.data.manifest import read_manifest, resolve_manifest
from qdaed.detector import Detector
from qdaed.errors import DataError, InputError
from qdaed.features.fbank import LfbeOptions
from qdaed.features.store import extract_features, load_features
from qdaed.formats.interchange import export_torch
from qdaed.formats import onnx_export, tflite_export
from qdaed.integer import calibrate
from qdaed.integer.store import IntegerFieldError, build, check_field, document
from qdaed.io.modelfile import read_model_document
from qdaed.io.paths import check_output_file
from qdaed.models.student import StudentLSTM
from qdaed.validate import check_int

DEFAULT_CLIPS = 200


def register(sub):
    p = sub.add_parser(
        "export", help="a model file as a PyTorch state_dict or an ONNX graph",
        description="--torch: the network's state_dict, float32 (k-bit tensors dequantized), "
                    "loadable with load_state_dict(strict=True) into torch.nn.LSTM + "
                    "nn.Linear or a torchvision-layout ResNet (1 input channel). --onnx: the "
                    "whole detector, raw LFBE (N, frames, F) -> sigmoid scores (N, C), "
                    "normalisation included, k-bit tensors as integer codes dequantized in "
                    "the graph (needs the onnx package); with --with-frontend the graph "
                    "starts at a window's 16 kHz samples and a student's carries its LSTM "
                    "state in and out. --tflite: the student's int8 version "
                    "(TFLite Micro kernels), normalised LFBE quantized to int8 -> int8 scores "
                    "(needs the tflm extra), from the integer student stored in MODEL or "
                    "calibrated with --calibration.",
        # --jobs 1: the calibration clips are few (--clips)
        parents=[common("jobs", "expect-sha256", jobs=1)])
    p.add_argument("model", help="model file written by qdaed")
    p.add_argument("--torch", metavar="OUT.safetensors", help="write a PyTorch state_dict")
    p.add_argument("--onnx", metavar="OUT.onnx", help="write an ONNX model")
    p.add_argument("--with-frontend", action="store_true",
                   help="with --onnx: the graph starts at a window's 16 kHz mono samples "
                        "(float64) and computes the LFBE front end too; a student also takes "
                        "and returns its LSTM state (h, c), so a caller can stream a file "
                        "window by window as qdaed detect does (examples/onnx_detect.py; "
                        "docs/guides/onnx_and_pytorch.md)")
    p.add_argument("--tflite", metavar="OUT.tflite",
                   help="write the integer student as a TensorFlow Lite flatbuffer")
    p.add_argument("--calibration", metavar="MANIFEST",
                   help="calibrate the integer student on this manifest's clips (its train "
                        "split if it has one) instead of using the one stored in MODEL")
    p.add_argument("--audio-root", metavar="DIR", help="folder the calibration manifest's "
                                                       "paths are in")
    p.add_argument("--clips", type=int, default=DEFAULT_CLIPS,
                   help=f"calibration clips, the manifest's first N (default {DEFAULT_CLIPS})")
    p.add_argument("--calibrated-model", metavar="OUT.safetensors",
                   help="with --calibration: also write MODEL with the integer student stored")
    p.add_argument("--batch", type=int, default=1,
                   help="the .tflite's batch size (TFLite Micro's shapes are fixed; default 1)")
    p.set_defaults(func=_run)


def _check_args(args):
    if args.torch is None and args.onnx is None and args.tflite is None:
        raise InputError("export: give --torch OUT.safetensors, --onnx OUT.onnx and/or "
                         "--tflite OUT.tflite")
    if args.with_frontend and args.onnx is None:
        raise InputError("--with-frontend: needs --onnx OUT.onnx (it shapes the ONNX graph)")
    inputs = [args.model, args.calibration]
    outputs = []
    for option, path in (("--torch", args.torch), ("--onnx", args.onnx),
                         ("--tflite", args.tflite), ("--calibrated-model",
                                                     args.calibrated_model)):
        if path is not None:
            check_output_file(option, path, inputs=inputs, others=outputs)
            outputs.append((option, path))
    if args.calibration is None:
        for option in ("audio_root", "calibrated_model"):
            if getattr(args, option) is not None:
                raise InputError(f"--{option.replace('_', '-')}: needs --calibration MANIFEST")
    else:
        if args.tflite is None and args.calibrated_model is None:
            raise InputError("--calibration: give --tflite OUT.tflite and/or "
                             "--calibrated-model OUT.safetensors")
        if args.audio_root is None:
            raise InputError("--calibration: needs --audio-root DIR")
        check_int("--clips", args.clips, lo=1)
    check_int("--batch", args.batch, lo=1, hi=4096)
    check_int("--jobs", args.jobs, lo=0)


def _check_student(det, model):
    """InputError unless ``det`` holds a student with an integer version."""
    if not isinstance(det.model, StudentLSTM):
        raise InputError(f"{model}: holds a {type(det.model).__name__} (a teacher); only a "
                         f"StudentLSTM with mean pooling has an integer version")
    if det.model.pooling != "mean":
        raise InputError(f"{model}: the integer student needs mean pooling, this student "
                         f"uses {det.model.pooling!r}")


def representative_set(det, manifest, audio_root, clips, jobs=1):
    """The calibration clips (N, frames, F) float32: the manifest's first ``clips`` clips of
    its train split (all clips without one), prepared as ``det`` prepares its inputs."""
    manifest = resolve_manifest(manifest)
    rows = read_manifest(manifest, det.classes)
    train = [c for c in rows if c.split == "train"]
    chosen = (train or rows)[:clips]
    if not chosen:
        raise DataError(f"{manifest}: the manifest lists no clips")
    with tempfile.TemporaryDirectory() as tmp:
        report = extract_features(chosen, audio_root, tmp, LfbeOptions(**det.features),
                                  jobs=jobs, progress=False, manifest_name=manifest)
        feats = [load_features(p) for _, p, _ in report.items]
    for clip, _, reason in report.bad:
        print(f"skipped {clip.name}: {reason}", file=sys.stderr)
    if not feats:
        raise DataError(f"{manifest}: none of the {len(chosen)} calibration clip(s) could "
                        f"be read")
    return det.prepare(feats)


def calibrated_student(det, x, source):
    """qdaed.integer.calibrate(det, x), refused (InputError) when a calibrated value cannot be
    represented: the checks of a model file's integer student (qdaed.integer.store)."""
    try:
        student = calibrate(det, x)
        field, tensors = document(student)
        build(check_field(field, len(student.layers), student.num_classes), dict(tensors))
    except (InputError, IntegerFieldError) as exc:
        raise InputError(f"--calibration {source}: the calibrated integer student cannot be "
                         f"represented ({exc})") from None
    return student


def _run(args):
    _check_args(args)
    det = Detector.load(args.model, expect_sha256=args.expect_sha256)
    if args.tflite is not None or args.calibration is not None:
        _check_student(det, args.model)
        if args.calibration is None and det.integer is None:
            raise InputError(f"--tflite: {args.model} holds no integer student; calibrate one "
                             f"with --calibration MANIFEST --audio-root DIR")
    if args.tflite is not None:
        tflite_export.check_available()   # the optional dependency, before any work
    if args.onnx is not None:
        onnx_export.check_available()     # likewise, before anything is written
        if args.with_frontend:
            onnx_export.check_frontend(det)
    if args.calibration is not None:
        x = representative_set(det, args.calibration, args.audio_root, args.clips, args.jobs)
        det.integer = calibrated_student(det, x, args.calibration)
        print(f"calibrated the integer student on {x.shape[0]} clip(s) of {args.calibration}")
    sha = read_model_document(args.model)[2]["__metadata__"]["qdaed_sha256"]
    if args.torch:
        export_torch(det, args.torch, sha)
        print(f"wrote {args.torch}: PyTorch state_dict, {len(det.model.state_dict())} float32 "
              f"tensors")
    if args.onnx:
        onnx_export.export_onnx(det, args.onnx, sha, frontend=args.with_frontend)
        if args.with_frontend:
            state = (", h, c, advance -> scores (1, {}), h_next, c_next".format(
                len(det.classes)) if "hidden_size" in det.model.config else
                f" -> scores (1, {len(det.classes)})")
            print(f"wrote {args.onnx}: ONNX opset 17, samples (16 kHz, float64){state}; "
                  f"window {det.frames} frames")
        else:
            print(f"wrote {args.onnx}: ONNX opset 17, lfbe (N, {det.frames}, "
                  f"{det.normalizer.mean.size}) -> scores (N, {len(det.classes)})")
    if args.calibrated_model:
        det.save(args.calibrated_model)
        print(f"wrote {args.calibrated_model}: the model with its integer student")
    if args.tflite:
        data = tflite_export.export_tflite(det.integer, det.frames, args.batch, args.tflite)
        print(f"wrote {args.tflite}: TFLite int8, lfbe_int8 ({args.batch}, {det.frames}, "
              f"{det.integer.input_size}) -> scores ({args.batch}, {len(det.classes)}), "
              f"{len(data):,} bytes")
    return 0
