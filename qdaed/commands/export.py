"""``qdaed export MODEL --torch OUT.safetensors | --onnx OUT.onnx``: a detector for PyTorch or
ONNX runtimes (``qdaed.io.interchange``, ``qdaed.io.onnx_export``; the torch module to load the
state_dict into and the graph's contents are in their docstrings and the README)."""

from __future__ import annotations

from qdaed.io.paths import check_output_file


def register(sub):
    p = sub.add_parser(
        "export", help="a model file as a PyTorch state_dict or an ONNX graph",
        description="--torch: the network's state_dict, float32 (k-bit tensors dequantized), "
                    "loadable with load_state_dict(strict=True) into torch.nn.LSTM + "
                    "nn.Linear or a torchvision-layout ResNet (1 input channel). --onnx: the "
                    "whole detector, raw LFBE (N, frames, F) -> sigmoid scores (N, C), "
                    "normalisation included, k-bit tensors as integer codes dequantized in "
                    "the graph (needs the onnx package).")
    p.add_argument("model", help="model file written by qdaed")
    p.add_argument("--torch", metavar="OUT.safetensors", help="write a PyTorch state_dict")
    p.add_argument("--onnx", metavar="OUT.onnx", help="write an ONNX model")
    p.add_argument("--expect-sha256", metavar="HEX",
                   help="refuse the model file unless its SHA-256 (sha256sum, or qdaed info "
                        "MODEL --sha256) is HEX")
    p.set_defaults(func=_run)


def _run(args):
    from qdaed.detector import Detector
    from qdaed.errors import InputError
    from qdaed.io.modelfile import read_model_document

    if args.torch is None and args.onnx is None:
        raise InputError("export: give --torch OUT.safetensors and/or --onnx OUT.onnx")
    if args.torch is not None:
        check_output_file("--torch", args.torch, inputs=[args.model])
    if args.onnx is not None:
        check_output_file("--onnx", args.onnx, inputs=[args.model],
                          others=[("--torch", args.torch)])
    det = Detector.load(args.model, expect_sha256=args.expect_sha256)
    sha = read_model_document(args.model)[2]["__metadata__"]["qdaed_sha256"]
    if args.torch:
        from qdaed.io.interchange import export_torch

        export_torch(det, args.torch, sha)
        print(f"wrote {args.torch}: PyTorch state_dict, {len(det.model.state_dict())} float32 "
              f"tensors")
    if args.onnx:
        from qdaed.io.onnx_export import export_onnx

        export_onnx(det, args.onnx, sha)
        print(f"wrote {args.onnx}: ONNX opset 17, lfbe (N, {det.frames}, "
              f"{det.normalizer.mean.size}) -> scores (N, {len(det.classes)})")
    return 0
