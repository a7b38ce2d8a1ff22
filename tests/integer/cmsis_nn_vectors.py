"""Convert CMSIS-NN's published int8 LSTM test vectors to .npy files (issue 26, item 4).

    python -m tests.integer.cmsis_nn_vectors GIT_DIR [--commit REV] [--out DIR]

GIT_DIR: a clone of https://github.com/ARM-software/CMSIS-NN (a bare one will do; the files
are read with ``git show REV:path``, so the work tree is not needed). Every case folder
``Tests/UnitTest/TestCases/TestData/lstm_*`` at REV is listed in ``cases.json``: the int8
ones (``arm_lstm_unidirectional_s8``'s tests) are converted, the others are listed with the
reason the integer student cannot express them.

For an int8 case ``<case>/`` holds, all as plain .npy (no pickle):

    x.npy          int8 (B, T, I), batch-major (a time-major case's (T, B, I) transposed)
    w_ih.npy       int8 (4, H, I)  gate order i, f, g, o (qdaed's)
    w_hh.npy       int8 (4, H, H)
    bias.npy       int32 (4, H)
    expected.npy   int8 (B, T, H)  every step's h, as TFLite Micro's interpreter computed it

and ``cases.json`` holds its configuration: the zero points (``input_zero_point`` is the
real zero point; CMSIS-NN's header stores its negation, the input offset), the cell power p,
the cell clip, every (multiplier, shift) pair (gate order i, f, g, o), the header lines that
name the generator, and the file each array came from.

``legacy_cases``: the earlier generations of lstm_1, lstm_2 and lstm_one_time_step (commits
601d96c6, 2024-02, TFLite Micro's interpreter; bee2550a, 2023-01, and 9c30d194, 2022-11,
TensorFlow Lite's interpreter ``tflite_runtime`` 2.11), in the format of their time
(:func:`convert_legacy_case`), with their published effective biases (``eff_bias_ih.npy``,
``eff_bias_hh.npy``: the zero points folded into the biases). The header of ``cases.json`` records
the source repository, commit and licence (Apache-2.0; CMSIS-NN's LICENSE). The data are
CMSIS-NN's; this script is qdaed's.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
from pathlib import Path

import numpy as np

DATA = "Tests/UnitTest/TestCases/TestData"
HERE = Path(__file__).resolve().parent / "data" / "cmsis_nn_lstm"
GATES = ("input", "forget", "cell", "output")          # = qdaed's i, f, g, o
SOURCE = "https://github.com/ARM-software/CMSIS-NN"
LICENSE = "Apache-2.0"

_ARRAY = re.compile(r"const\s+(u?int(?:8|16|32|64))_t\s+(\w+)\s*\[(\d+)\]\s*=\s*\{([^}]*)\}",
                    re.S)
_DEFINE = re.compile(r"#define\s+(\w+)\s+(\S+)")


def _git(git_dir, *args):
    return subprocess.run(["git", "--git-dir", str(git_dir), *args], check=True,
                          capture_output=True, text=True).stdout


def _show(git_dir, rev, path):
    return _git(git_dir, "show", f"{rev}:{path}")


def parse_array(text):
    """(name, array) of the one C array a header defines."""
    m = _ARRAY.search(text)
    if m is None:
        raise ValueError("no C array in the header")
    dtype, name, n, body = m.group(1), m.group(2), int(m.group(3)), m.group(4)
    values = [int(v) for v in body.replace("\n", " ").split(",") if v.strip()]
    if len(values) != n:
        raise ValueError(f"{name}: {len(values)} values for a length of {n}")
    a = np.array(values, np.int64)
    info = np.iinfo(np.dtype(dtype))
    if a.size and (a.min() < info.min or a.max() > info.max):
        raise ValueError(f"{name}: values outside {dtype}")
    return name, a.astype(dtype)


def parse_defines(text, prefix):
    """{NAME without prefix: int or bool} of the header's #defines."""
    out = {}
    for name, value in _DEFINE.findall(text):
        if not name.startswith(prefix):
            continue
        key = name[len(prefix):]
        out[key] = value == "true" if value in ("true", "false") else int(value)
    return out


def generator_lines(text):
    return [ln[2:].strip() for ln in text.splitlines() if ln.startswith("//")]


def reason_not_expressible(case):
    """Why a non-int8 case folder is outside the integer student, or None for an int8 one."""
    if case.endswith("_s16"):
        return ("int16x8 variant (arm_lstm_unidirectional_s16): int16 input, hidden state and "
                "output, int64 biases; the integer student's activations are int8")
    if case.endswith(("_f16", "_f32")):
        return ("floating-point kernel (arm_lstm_unidirectional_f16/f32, expected outputs from "
                "PyTorch): no integer arithmetic to reproduce")
    return None


def convert_case(git_dir, rev, case, out):
    folder = f"{DATA}/{case}"
    prefix = case.upper() + "_"
    config_text = _show(git_dir, rev, f"{folder}/config_data.h")
    c = parse_defines(config_text, prefix)
    B, T, I, H = c["BATCH_SIZE"], c["TIME_STEPS"], c["INPUT_SIZE"], c["HIDDEN_SIZE"]
    arrays, files = {}, {}

    def read(stem):
        path = f"{folder}/{stem}.h"
        _, a = parse_array(_show(git_dir, rev, path))
        files[stem] = path
        return a

    x = read("input_tensor")
    y = read("output")
    if c["TIME_MAJOR"]:
        x = x.reshape(T, B, I).transpose(1, 0, 2)
        y = y.reshape(T, B, H).transpose(1, 0, 2)
    arrays["x"] = np.ascontiguousarray(x.reshape(B, T, I)).astype(np.int8)
    arrays["expected"] = np.ascontiguousarray(y.reshape(B, T, H)).astype(np.int8)
    arrays["w_ih"] = np.stack([read(f"{g}_gate_input_weights").reshape(H, I) for g in GATES])
    arrays["w_hh"] = np.stack([read(f"{g}_gate_hidden_weights").reshape(H, H) for g in GATES])
    arrays["bias"] = np.stack([read(f"{g}_gate_bias") for g in GATES]).astype(np.int32)
    dest = out / case
    dest.mkdir(parents=True, exist_ok=True)
    for name, a in arrays.items():
        np.save(dest / f"{name}.npy", a, allow_pickle=False)
    pairs = {f"{kind}_rescale": [[c[f"{g.upper()}_GATE_{src}_MULTIPLIER"],
                                  c[f"{g.upper()}_GATE_{src}_SHIFT"]] for g in GATES]
             for kind, src in (("input", "INPUT"), ("recurrent", "HIDDEN"))}
    return {
        "generator": generator_lines(config_text),
        "layout": "time-major in the source (transposed to batch-major here)"
                  if c["TIME_MAJOR"] else "batch-major",
        "batch": B, "steps": T, "input_size": I, "hidden_size": H,
        "input_zero_point": -c["INPUT_ZERO_POINT"],     # the header holds the input offset
        "hidden_zero_point": c["OUTPUT_ZERO_POINT"],
        "cell_power": c["CELL_SCALE_POWER"], "cell_clip": c["CELL_CLIP"],
        **pairs,
        "forget_cell_rescale": [c["FORGET_TO_CELL_MULTIPLIER"], c["FORGET_TO_CELL_SHIFT"]],
        "input_cell_rescale": [c["INPUT_TO_CELL_MULTIPLIER"], c["INPUT_TO_CELL_SHIFT"]],
        "output_rescale": [c["OUTPUT_MULTIPLIER"], c["OUTPUT_SHIFT"]],
        "files": {"config": f"{folder}/config_data.h", **files},
    }


LEGACY = ("601d96c6", "bee2550a", "9c30d194")   # earlier generations of the same three cases
_LEGACY_GATES = ("input", "forget", "cell", "output")


def convert_legacy_case(git_dir, rev, case, out, name):
    """A case in the format CMSIS-NN's tests used until 2024-08 (``input_data.h``,
    ``output_ref_data.h``, ``input_to_<gate>_w_data.h``, ``recurrent_input_to_<gate>_w_data.h``,
    ``<gate>_gate_bias_data.h``, the precomputed ``*_eff_bias_data.h``; config names
    ``IN_TO_*``, ``RECURRENT_TO_*``, ``HIDDEN_MULTIPLIER``, ``DATA_OFFSET`` = −z_in,
    ``HIDDEN_OFFSET`` = z_h, ``CELL_STATE_SHIFT`` = p; the cell rescales are absent from the
    oldest ones)."""
    folder = f"{DATA}/{case}"
    prefix = case.upper() + "_"
    config_text = _show(git_dir, rev, f"{folder}/config_data.h")
    c = parse_defines(config_text, prefix)
    B, T, I, H = (c["INPUT_BATCHES"], c["TIME_STEPS"], c["NUMBER_INPUTS"], c["NUMBER_UNITS"])
    arrays, files = {}, {}

    def read(stem):
        path = f"{folder}/{stem}.h"
        _, a = parse_array(_show(git_dir, rev, path))
        files[stem] = path
        return a

    x, y = read("input_data"), read("output_ref_data")
    if c["TIME_MAJOR"]:
        x = x.reshape(T, B, I).transpose(1, 0, 2)
        y = y.reshape(T, B, H).transpose(1, 0, 2)
    arrays["x"] = np.ascontiguousarray(x.reshape(B, T, I)).astype(np.int8)
    arrays["expected"] = np.ascontiguousarray(y.reshape(B, T, H)).astype(np.int8)
    arrays["w_ih"] = np.stack([read(f"input_to_{g}_w_data").reshape(H, I) for g in GATES])
    arrays["w_hh"] = np.stack([read(f"recurrent_input_to_{g}_w_data").reshape(H, H)
                               for g in GATES])
    arrays["bias"] = np.stack([read(f"{g}_gate_bias_data") for g in GATES]).astype(np.int32)
    arrays["eff_bias_ih"] = np.stack([read(f"input_to_{g}_eff_bias_data")
                                      for g in GATES]).astype(np.int32)
    arrays["eff_bias_hh"] = np.stack([read(f"recurrent_to_{g}_eff_bias_data")
                                      for g in GATES]).astype(np.int32)
    dest = out / name
    dest.mkdir(parents=True, exist_ok=True)
    for key, a in arrays.items():
        np.save(dest / f"{key}.npy", a, allow_pickle=False)
    pairs = {f"{kind}_rescale": [[c[f"{src}_{g.upper()}_MULTIPLIER"],
                                  c[f"{src}_{g.upper()}_SHIFT"]] for g in GATES]
             for kind, src in (("input", "IN_TO"), ("recurrent", "RECURRENT_TO"))}
    # the oldest configs do not name the input zero point: it is the one z with
    # eff_bias_ih = bias − z·Σ_j w_ih for every row (and z_h likewise from eff_bias_hh)
    z_in = _zero_point(arrays["bias"] - arrays["eff_bias_ih"], arrays["w_ih"])
    z_h = _zero_point(-arrays["eff_bias_hh"].astype(np.int64), arrays["w_hh"])
    if "DATA_OFFSET" in c and -c["DATA_OFFSET"] != z_in:
        raise ValueError(f"{name}: DATA_OFFSET {c['DATA_OFFSET']} vs z_in {z_in}")
    if z_h != c["HIDDEN_OFFSET"]:
        raise ValueError(f"{name}: HIDDEN_OFFSET {c['HIDDEN_OFFSET']} vs z_h {z_h}")
    cell = {}
    if "FORGET_MULTIPLIER" in c:
        cell = {"forget_cell_rescale": [c["FORGET_MULTIPLIER"], c["FORGET_SHIFT"]],
                "input_cell_rescale": [c["INPUT_MULTIPLIER"], c["INPUT_SHIFT"]]}
    return {
        "commit": rev, "source_case": case, "generator": generator_lines(config_text),
        "interpreter": "tflite_micro" if "tflite_micro" in config_text else
                       "tflite_runtime" if "tflite_runtime" in config_text else "unknown",
        "layout": "time-major in the source (transposed to batch-major here)"
                  if c["TIME_MAJOR"] else "batch-major",
        "batch": B, "steps": T, "input_size": I, "hidden_size": H,
        "input_zero_point": z_in, "hidden_zero_point": z_h,
        "zero_points_from": "DATA_OFFSET (= -z_in) and HIDDEN_OFFSET (= z_h)"
                            if "DATA_OFFSET" in c else
                            "the effective biases (z_in) and HIDDEN_OFFSET (= z_h)",
        "cell_power": c["CELL_STATE_SHIFT"], "cell_clip": None,
        **pairs, **cell,
        "output_rescale": [c["HIDDEN_MULTIPLIER"], c["HIDDEN_SHIFT"]],
        "files": {"config": f"{folder}/config_data.h", **files},
    }


def _zero_point(diff, w):
    """The one integer z with diff = z·Σ_j w[..., j] for every row (ValueError otherwise)."""
    sums = w.astype(np.int64).sum(axis=-1)
    diff = diff.astype(np.int64)
    rows = sums != 0
    zs = {int(d // s) for d, s in zip(diff[rows], sums[rows]) if d % s == 0}
    if len(zs) != 1 or not np.array_equal(diff, zs.copy().pop() * sums):
        raise ValueError("the effective biases do not fold one zero point")
    return zs.pop()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("git_dir", help="a CMSIS-NN clone's .git directory (or a bare clone)")
    p.add_argument("--commit", default="HEAD", help="the revision to read (default HEAD)")
    p.add_argument("--out", default=str(HERE), help=f"output folder (default {HERE})")
    args = p.parse_args(argv)
    commit = _git(args.git_dir, "rev-parse", f"{args.commit}^{{commit}}").strip()
    date = _git(args.git_dir, "show", "-s", "--format=%cI", commit).strip()
    out = Path(args.out)
    names = sorted({line.split("/")[-1] for line in _git(
        args.git_dir, "ls-tree", "-d", "--name-only", commit, f"{DATA}/").splitlines()
        if line.split("/")[-1].startswith("lstm")})
    cases, skipped = {}, {}
    for case in names:
        why = reason_not_expressible(case)
        if why is None:
            cases[case] = convert_case(args.git_dir, commit, case, out)
        else:
            skipped[case] = why
    legacy = {}
    for rev in LEGACY:
        full = _git(args.git_dir, "rev-parse", f"{rev}^{{commit}}").strip()
        for case in ("lstm_1", "lstm_2", "lstm_one_time_step"):
            name = f"{case}@{rev}"
            legacy[name] = convert_legacy_case(args.git_dir, full, case, out, name)
    doc = {"source": SOURCE, "commit": commit, "commit_date": date, "license": LICENSE,
           "license_file": "LICENSE (Apache License 2.0) in the source repository",
           "path": f"{DATA}/lstm_*",
           "note": "Test vectors of arm_lstm_unidirectional_s8, converted by "
                   "tests/integer/cmsis_nn_vectors.py; the expected outputs were computed by "
                   "TensorFlow Lite Micro's interpreter (the header lines in 'generator').",
           "cases": cases, "not_expressible": skipped,
           "legacy_note": "Earlier generations of lstm_1, lstm_2 and lstm_one_time_step, in the "
                          "format the tests used until 2024-08, each at the commit that wrote "
                          "it (the 601d96c6 files of lstm_2 and lstm_one_time_step are still "
                          "in the tree at 'commit', unused, beside the current ones). Those "
                          "whose 'interpreter' is tflite_runtime (2022-11, 2023-01) have "
                          "expected outputs from TensorFlow Lite's interpreter, whose int8 "
                          "LSTM kernel is not TFLite Micro's; only their effective biases "
                          "are TFLite Micro-independent facts qdaed is checked against.",
           "legacy_cases": legacy}
    (out / "cases.json").write_text(json.dumps(doc, indent=1) + "\n")
    print(f"{len(cases)} int8 case(s) converted, {len(skipped)} listed as not expressible, "
          f"in {out} (commit {commit[:12]})")


if __name__ == "__main__":
    main()
