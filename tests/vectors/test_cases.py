"""The cases: an independent NumPy reference (tests/naive.py, no qdaed) passes ``check`` on
every case it covers — while the same reference with a known bug does not —, PyTorch
(examples/torch_reference.py, tests/vectors/test_torch_reference.py) covers the rest, and the
files export writes hold exactly the arrays the case builders made (a round trip of the
writer: the values themselves are checked by the two references, never by qdaed)."""

import ast
import json
import os

import numpy as np
import pytest

from qdaed.vectors import cases
from qdaed.vectors.check import check, exit_status
from qdaed.vectors.export import export
from tests import naive
from tests.helpers.vectors import load


def _stored(directory, name):
    spec = json.load(open(os.path.join(directory, name, "case.json")))
    names = spec["inputs"] + spec["outputs"]
    return spec, {n: load(os.path.join(directory, name, n + ".npy")) for n in names}


def _assert_recomputed(directory, dtype):
    for name in json.load(open(os.path.join(directory, "manifest.json")))["cases"]:
        spec, stored = _stored(directory, name)
        case = cases.build(name, dtype, 0)
        assert case.spec() == spec, name
        for n, a in {**case.inputs, **case.outputs}.items():
            assert a.dtype == stored[n].dtype and a.shape == stored[n].shape, (name, n)
            np.testing.assert_array_equal(a, stored[n], err_msg=f"{name}/{n}")


def test_export_writes_exactly_what_the_builders_made(exported):
    _assert_recomputed(exported, "float32")


def _torch_reference_ops():
    """The ops examples/torch_reference.py computes (its @op("...") decorators; read, not
    imported, so that this runs without torch)."""
    path = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "torch_reference.py")
    ops = set()
    for node in ast.walk(ast.parse(open(path).read())):
        for d in getattr(node, "decorator_list", []):
            if isinstance(d, ast.Call) and getattr(d.func, "id", None) == "op":
                ops.add(d.args[0].value)
    return ops


def test_every_case_is_checked_by_a_reference_other_than_qdaed():
    ops = {cases.describe(name)[0] for name in cases.select()}   # the float cases (the int8
    # student's are checked against TFLite Micro: tests/integer/test_vectors_integer.py)
    unchecked = ops - set(naive.REFERENCES) - _torch_reference_ops()
    assert not unchecked, f"ops whose golden outputs only qdaed computes: {sorted(unchecked)}"


@pytest.mark.slow
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_full_export_equals_recomputation(tmp_path, dtype):
    export(str(tmp_path / "v"), dtype=dtype)
    _assert_recomputed(str(tmp_path / "v"), dtype)


def _write_naive(directory, out, reference=naive.REFERENCES, names=None):
    done = []
    if names is None:
        names = json.load(open(os.path.join(directory, "manifest.json")))["cases"]
    for name in names:
        spec, t = _stored(directory, name)
        fn = reference.get(spec["op"])
        if fn is None:
            continue
        inputs = {n: t[n] for n in spec["inputs"]}
        outs = fn(spec, inputs)
        assert set(outs) == set(spec["outputs"]), name
        os.makedirs(os.path.join(out, name), exist_ok=True)
        for n, v in outs.items():
            np.save(os.path.join(out, name, n + ".npy"), np.asarray(v))
        done.append(name)
    return done


def test_a_numpy_reference_passes_every_case_it_covers(exported, tmp_path):
    out = str(tmp_path / "naive")
    done = _write_naive(exported, out)
    ops = {json.load(open(os.path.join(exported, n, "case.json")))["op"] for n in done}
    assert ops == set(naive.REFERENCES)
    _, rows = check(exported, out, patterns=done)
    bad = [(r.case, r.tensor, r.message) for r in rows if r.status != "ok"]
    assert not bad
    assert len({r.case for r in rows}) == len(done) > 40


def _bug(op, fn):
    return {**naive.REFERENCES, op: fn}


def _no_t_squared(spec, i):
    lam = spec["options"]["lam"]
    out = naive.case_loss_distillation(spec, i)
    out["loss"] = (1 - lam) * out["loss_hard"] + lam * out["loss_soft"]
    out["dz"] = (1 - lam) * naive.case_loss_hard(spec, i)["dz"] + lam * naive.case_loss_soft(spec, i)["dz"]
    return out


def _round_half_up(spec, i):
    out = naive.case_quantize(spec, i)
    if spec["options"]["rounding"] == "nearest" and not spec["options"]["symmetric"]:
        w = i["w"].astype(np.float64)
        s = 2 ** spec["options"]["bits"] - 1
        alpha, beta = out["alpha"], out["beta"]
        if spec["options"]["group"] == "row":
            rows = np.repeat(np.arange(w.shape[0]), w.shape[1])
            a, b = alpha[rows].reshape(w.shape), beta[rows].reshape(w.shape)
            x = np.where(a > 0, (w - b) * s / np.where(a > 0, a, 1), 0)
            out["codes"] = np.floor(x + 0.5).astype(out["codes"].dtype)
    return out


def _unbiased_running_var_missing(spec, i):
    out = naive.case_batchnorm2d(spec, i)
    if spec["options"]["training"]:
        m = spec["options"]["momentum"]
        x = i["x"].astype(np.float64)
        out["new_running_var"] = (1 - m) * i["running_var"] + m * x.var(axis=(0, 2, 3))
    return out


def _hann_instead_of_povey(spec, i):
    """The plain Hann window: Povey's without the power 0.85 (a plausible slip)."""
    o = spec["options"]
    x = i["waveform"].astype(np.float64)
    n = np.arange(400)
    win = 0.5 - 0.5 * np.cos(2 * np.pi * n / 399)
    bank = naive.mel_filterbank()
    rows = []
    for t in range(1 + (x.size - 400) // 160):
        f = x[t * 160:t * 160 + 400].copy()
        f -= f.mean()
        f = np.concatenate([[f[0] * 0.03], f[1:] - 0.97 * f[:-1]])
        p = np.abs(np.fft.rfft(f * win, 512)) ** 2
        rows.append(np.log(np.maximum(p @ bank, o["log_floor"])))
    return {"lfbe": np.array(rows)}


@pytest.mark.parametrize("op, fn, case, tensor", [
    ("loss_distillation", _no_t_squared, "loss_distillation_T2_lam0.9", "loss"),
    ("quantize", _round_half_up, "quant_k2_row_nearest_ties", "codes"),
    ("batchnorm2d", _unbiased_running_var_missing, "batchnorm2d_train", "new_running_var"),
    ("lfbe", _hann_instead_of_povey, "lfbe_tone", "lfbe"),
])
def test_a_known_bug_fails_the_check(exported, tmp_path, op, fn, case, tensor):
    out = str(tmp_path / "buggy")
    assert _write_naive(exported, out, _bug(op, fn), [case]) == [case]
    _, rows = check(exported, out, patterns=[case])
    assert exit_status(rows) == 1
    assert (case, tensor) in [(r.case, r.tensor) for r in rows if r.status == "FAIL"]


def test_real_recordings_become_lfbe_cases(tmp_path):
    import soundfile as sf

    rng = np.random.default_rng(0)
    x = 0.1 * rng.standard_normal(22050 * 3)     # 3 s at 22.05 kHz: resampled, cut to 2 s
    sf.write(tmp_path / "my clip.wav", x, 22050, subtype="PCM_16")
    d = str(tmp_path / "v")
    export(d, patterns=["lfbe_tone"], audio=[str(tmp_path / "my clip.wav")])
    m = json.load(open(os.path.join(d, "manifest.json")))
    assert m["cases"] == ["lfbe_tone", "lfbe_real_my_clip"]
    spec, t = _stored(d, "lfbe_real_my_clip")
    assert t["waveform"].shape == (32000,) and t["lfbe"].shape == (198, 64)
    out = str(tmp_path / "o")
    _write_naive(d, out, names=["lfbe_real_my_clip"])
    _, rows = check(d, out, patterns=["lfbe_real_*"])
    assert exit_status(rows) == 0
