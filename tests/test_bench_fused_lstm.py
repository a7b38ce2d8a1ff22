"""bench/fused_lstm.py, the fused LSTM inference design the inference benchmark times against
qdaed's BLAS path: it must compute the same LSTM, or its timing compares nothing. Checked
against ``qdaed.nn.lstm.infer`` on batches that are not a multiple of its 4-row blocks, with a
given initial state, at T = 1, and on one and on more threads than blocks."""

import numpy as np
import pytest

from bench import fused_lstm
from qdaed.nn import lstm


def _problem(batch, steps, hidden=8, inputs=5, layers=2, seed=0):
    rng = np.random.default_rng(seed)
    params = {}
    for layer in range(layers):
        width = inputs if layer == 0 else hidden
        params[f"weight_ih_l{layer}"] = rng.normal(0, 0.5, (4 * hidden, width)).astype(np.float32)
        params[f"weight_hh_l{layer}"] = rng.normal(0, 0.5, (4 * hidden, hidden)).astype(np.float32)
        params[f"bias_ih_l{layer}"] = rng.normal(0, 0.5, 4 * hidden).astype(np.float32)
        params[f"bias_hh_l{layer}"] = rng.normal(0, 0.5, 4 * hidden).astype(np.float32)
    x = rng.normal(0, 1, (batch, steps, inputs)).astype(np.float32)
    h0 = rng.normal(0, 0.5, (layers, batch, hidden)).astype(np.float32)
    c0 = rng.normal(0, 0.5, (layers, batch, hidden)).astype(np.float32)
    return params, x, h0, c0


@pytest.mark.parametrize("batch,steps,threads", [(1, 7, 2), (5, 7, 2), (9, 3, 2), (6, 1, 1),
                                                 (4, 5, 8)])
def test_fused_design_equals_qdaeds_lstm(batch, steps, threads):
    params, x, h0, c0 = _problem(batch, steps)
    want_y, (want_h, want_c) = lstm.infer(params, x, h0, c0)
    y, (h_n, c_n) = fused_lstm.infer(params, x, h0, c0, threads=threads)
    for got, want in ((y, want_y), (h_n, want_h), (c_n, want_c)):
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=0, atol=2e-6)


def test_fused_design_zero_state_by_default():
    params, x, _, _ = _problem(3, 4)
    np.testing.assert_allclose(fused_lstm.infer(params, x)[0], lstm.infer(params, x)[0],
                               rtol=0, atol=2e-6)
