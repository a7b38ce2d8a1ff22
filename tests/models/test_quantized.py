"""k-bit weights in a model: which tensors QuantSpec picks, the one context manager that runs
a model on Q_k(w) and restores the full-precision arrays, seeded stochastic rounding."""

import numpy as np
import pytest

from qdaed.models import StudentLSTM
from qdaed.models.quantized import QuantSpec, dequantized_state, quantized_weights
from tests import naive


def q_k(w, bits, group="row"):
    """Q_k(w) from the independent reference (tests/naive.py), in w's dtype."""
    codes, alpha, beta = naive.quantize_groups(w, bits, group, False)
    return naive.dequantize_groups(codes, alpha, beta, bits, group).astype(w.dtype)


def student(seed=0):
    return StudentLSTM(6, 4, 2, 3, seed=seed)


def test_the_spec_picks_every_weight_matrix_and_no_bias():
    m = student()
    names = QuantSpec(4).names(m.params)
    assert sorted(names) == sorted(n for n in m.params
                                   if "weight" in n and m.params[n].ndim == 2)
    assert not any("bias" in n for n in names)


def test_quantized_weights_runs_on_the_codes_and_restores_the_masters():
    m = student()
    x = np.random.default_rng(1).standard_normal((2, 5, 6)).astype(m.dtype)
    masters = {k: v.copy() for k, v in m.params.items()}
    qts = QuantSpec(2).quantize(m.params)
    want = {**masters, **{n: q_k(masters[n], 2) for n in qts}}
    assert set(qts) == {n for n in masters if "weight" in n}
    with quantized_weights(m, qts) as full:
        assert full is not m.params and all(full[k] is not None for k in masters)
        for k, v in want.items():                            # inside: the dequantized values
            np.testing.assert_array_equal(m.params[k], v)
        y_q, _ = m.forward(x, train=False)
    for k, v in masters.items():                             # after: the same full arrays
        np.testing.assert_array_equal(m.params[k], v)
    y, _ = m.forward(x, train=False)
    assert not np.array_equal(y, y_q)                       # 2 bits change the output


def test_the_masters_come_back_when_the_block_raises():
    m = student()
    before = m.params
    with pytest.raises(RuntimeError):
        with quantized_weights(m, QuantSpec(3).quantize(m.params)):
            raise RuntimeError("boom")
    assert m.params is before


def test_dequantized_state_replaces_only_the_quantized_tensors():
    m = student()
    qts = QuantSpec(4).quantize(m.params)
    state = dequantized_state(m.params, qts)
    for k, v in m.params.items():
        if k in qts:
            np.testing.assert_array_equal(state[k], q_k(v, 4))
        else:
            assert state[k] is v


def test_stochastic_rounding_is_seeded_and_new_at_every_step():
    m = student()
    spec = QuantSpec(2, rounding="stochastic", seed=5)
    a, b = spec.quantize(m.params, step=3), spec.quantize(m.params, step=3)
    c = spec.quantize(m.params, step=4)
    other = QuantSpec(2, rounding="stochastic", seed=6).quantize(m.params, step=3)
    n = "lstm.weight_hh_l0"
    np.testing.assert_array_equal(a[n].codes, b[n].codes)
    assert not np.array_equal(a[n].codes, c[n].codes)
    assert not np.array_equal(a[n].codes, other[n].codes)
    nearest = QuantSpec(2).quantize(m.params, step=3)
    np.testing.assert_array_equal(nearest[n].codes, QuantSpec(2).quantize(m.params)[n].codes)
