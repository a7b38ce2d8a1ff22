"""Run qdaed's integer golden vectors through CMSIS-NN's int8 LSTM (an example of checking a C
implementation against them; docs/guides/porting.md, section 4).

    python examples/cmsis_nn/check_vectors.py CMSIS_NN VECTORS [--chunk N] [--cell-clip C]

CMSIS_NN: a checkout of https://github.com/ARM-software/CMSIS-NN (its Include/ and Source/;
the library is Apache-2.0 and is not part of qdaed). VECTORS: a folder written by
``qdaed vectors export VECTORS --integer --cases 'int8_*'``. The script compiles run_lstm.c
with the CMSIS-NN sources the s8 LSTM needs (plain C, gcc or $CC), then for every case and
every LSTM layer feeds the layer's golden input (x for layer 0, the golden h of the layer below
otherwise), weights, biases and integer parameters (case.json's options) to
``arm_lstm_unidirectional_s8``, in chunks of ``--chunk`` steps with the state carried
(default: the whole sequence in one call), and compares the h it returns with the golden
``l{l}.h.npy``: the first differing step and element, and the difference in LSBs. Exit 0 when
every layer of every case matches, 1 otherwise.

``--cell-clip`` (default 32767) is CMSIS-NN's cell clip; qdaed and TFLite Micro saturate the
cell to [−32768, 32767], which CMSIS-NN cannot express: a cell value of −32768 is the one
place the two can differ (docs/guides/porting.md).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SOURCES = ["LSTMFunctions/arm_lstm_unidirectional_s8.c", "NNSupportFunctions/arm_nn_lstm_step_s8.c",
           "NNSupportFunctions/arm_nn_lstm_calculate_gate_s8_s16.c",
           "NNSupportFunctions/arm_nn_vec_mat_mul_result_acc_s8_s16.c",
           "NNSupportFunctions/arm_nntables.c", "BasicMathFunctions/arm_elementwise_mul_acc_s16.c",
           "BasicMathFunctions/arm_elementwise_mul_s16_s8.c",
           "BasicMathFunctions/arm_elementwise_mul_s16.c",
           "ActivationFunctions/arm_nn_activation_s16.c",
           "FullyConnectedFunctions/arm_vector_sum_s8.c"]


def build(cmsis, out):
    exe = Path(out) / "run_lstm"
    cmd = [os.environ.get("CC", "gcc"), "-O2", "-std=c99", f"-I{cmsis}/Include", "-o", str(exe),
           str(HERE / "run_lstm.c"), *(f"{cmsis}/Source/{s}" for s in SOURCES)]
    subprocess.run(cmd, check=True)
    return exe


def run_layer(exe, x, w_ih, w_hh, bias, layer, clip, chunk):
    B, T, I = x.shape
    H = w_hh.shape[1]
    vals = [B, T, I, H, layer["input"]["zero_point"], layer["hidden"]["zero_point"],
            layer["cell_power"], clip, chunk or T]
    for k in range(4):
        vals += [*layer["input_rescale"][k], *layer["recurrent_rescale"][k]]
    vals += [*layer["forget_cell_rescale"], *layer["input_cell_rescale"],
             *layer["output_rescale"]]
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        (d / "params.txt").write_text(" ".join(str(int(v)) for v in vals) + "\n")
        for name, a, dtype in (("x", x, "<i1"), ("w_ih", w_ih, "<i1"), ("w_hh", w_hh, "<i1"),
                               ("bias", bias, "<i4")):
            np.ascontiguousarray(a, dtype).tofile(d / f"{name}.bin")
        subprocess.run([str(exe), str(d)], check=True)
        return np.fromfile(d / "h.bin", np.int8).reshape(B, T, H)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("cmsis_nn", help="CMSIS-NN checkout (with Include/ and Source/)")
    p.add_argument("vectors", help="qdaed vectors export --integer output folder")
    p.add_argument("--chunk", type=int, help="steps per call, state carried (default: all)")
    p.add_argument("--cell-clip", type=int, default=32767)
    args = p.parse_args()
    failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        exe = build(args.cmsis_nn, tmp)
        cases = sorted(c for c in Path(args.vectors).glob("int8_*") if c.is_dir())
        if not cases:
            sys.exit(f"{args.vectors}: no int8_* case")
        for case in cases:
            options = json.loads((case / "case.json").read_text())["options"]
            y = np.load(case / "x.npy")
            for l, layer in enumerate(options["layers"]):
                w = {n: np.load(case / f"l{l}.{n}.npy") for n in ("w_ih", "w_hh", "bias")}
                h = run_layer(exe, y, w["w_ih"], w["w_hh"], w["bias"], layer, args.cell_clip,
                              args.chunk)
                golden = np.load(case / f"l{l}.h.npy")
                diff = h.astype(np.int64) - golden
                if diff.any():
                    failed += 1
                    b, t, j = np.argwhere(diff)[np.argmin(np.argwhere(diff)[:, 1])]
                    print(f"{case.name} l{l}.h: FAIL, {int((diff != 0).sum())} of {diff.size} "
                          f"differ; first at step {t}, element ({b}, {t}, {j}): {h[b, t, j]} vs "
                          f"golden {golden[b, t, j]} ({diff[b, t, j]:+d} LSB)")
                else:
                    print(f"{case.name} l{l}.h: ok, {diff.size} values")
                y = golden        # each layer is checked on the golden input
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
