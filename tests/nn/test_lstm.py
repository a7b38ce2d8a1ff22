import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from qdaed.errors import InputError
from qdaed.gradcheck import rel_error
from qdaed.gradcheck.student_cases import check_lstm, random_lstm_params
from qdaed.kernels import lstm as K
from qdaed.nn import lstm
from tests import strategies as S


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_sigmoid_and_tanh_saturate_without_overflow(dtype):
    for v, s, t in [(1000.0, 1.0, 1.0), (-1000.0, 0.0, -1.0), (0.0, 0.5, 0.0), (-750.0, 0.0, -1.0)]:
        assert K._sigmoid(dtype(v)) == pytest.approx(s, abs=1e-37)
        assert K._tanh(dtype(v)) == t


# --- gradient checks -------------------------------------------------------------------------

@given(S.batch, S.frames, S.features, S.hidden, S.layers, st.booleans(), S.seeds)
def test_lstm_gradients_match_central_differences(b, t, i, h, layers, initial_state, seed):
    # Upstream dh_n, dc_n make every layer's gradient large enough to resolve even at B=T=H=1.
    errs = check_lstm(S.rng_from(seed), b, t, i, h, layers,
                      initial_state=initial_state, upstream_state=True)
    assert max(errs.values()) < 1e-6, errs


@given(S.batch, S.frames, st.integers(2, 4), st.integers(2, 4), S.layers, st.booleans(), S.seeds)
def test_lstm_gradients_through_the_output_sequence_only(b, t, i, h, layers, initial_state, seed):
    # Only dy: lower layers are reached through the chain, hence H ≥ 2 and the larger step
    # (see qdaed.gradcheck.student_cases.STUDENT_STEP).
    errs = check_lstm(S.rng_from(seed), b, t, i, h, layers, initial_state=initial_state,
                      upstream_state=False, step=1e-5)
    assert max(errs.values()) < 1e-6, errs


# --- properties ------------------------------------------------------------------------------

def _case(seed=0, b=2, t=4, i=3, h=5, layers=2, dtype=np.float64):
    rng = np.random.default_rng(seed)
    params = {n: v.astype(dtype) for n, v in random_lstm_params(rng, i, h, layers).items()}
    return params, rng.standard_normal((b, t, i)).astype(dtype), rng


def test_final_state_is_the_last_output_and_y_is_a_read_only_view():
    params, x, _ = _case()
    (y, (h_n, c_n)), _ = lstm.forward(params, x)
    assert y.shape == (2, 4, 5) and h_n.shape == c_n.shape == (2, 2, 5)
    np.testing.assert_array_equal(h_n[-1], y[:, -1])
    with pytest.raises(ValueError):
        y[0, 0, 0] = 1.0


def test_zero_initial_state_equals_no_initial_state():
    params, x, _ = _case()
    zeros = np.zeros((2, 2, 5))
    (y0, _), _ = lstm.forward(params, x)
    (y1, _), _ = lstm.forward(params, x, zeros, zeros)
    np.testing.assert_array_equal(y0, y1)


def test_running_in_two_chunks_with_carried_state_equals_one_pass():
    params, x, _ = _case(t=6)
    (y, (h_n, c_n)), _ = lstm.forward(params, x)
    (ya, (ha, ca)), _ = lstm.forward(params, x[:, :2])
    (yb, (hb, cb)), _ = lstm.forward(params, x[:, 2:], ha, ca)
    np.testing.assert_allclose(np.concatenate([ya, yb], axis=1), y, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(hb, h_n, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(cb, c_n, rtol=1e-14, atol=1e-15)


def test_input_grad_false_skips_dx_and_keeps_parameter_gradients():
    params, x, rng = _case()
    dy = rng.standard_normal((2, 4, 5))
    _, cache = lstm.forward(params, x)
    (dx, _), grads = lstm.backward(params, cache, dy)
    (dx_none, _), grads_no_dx = lstm.backward(params, cache, dy, input_grad=False)
    assert dx is not None and dx.shape == x.shape and dx_none is None
    for name in grads:
        np.testing.assert_array_equal(grads[name], grads_no_dx[name])


@pytest.mark.parametrize("b, h", [(1, 1), (2, 5)])  # (1, 1): every transpose is a no-op view
def test_forward_and_backward_leave_their_arguments_unchanged(b, h):
    rng = np.random.default_rng(b + h)
    params = random_lstm_params(rng, 3, h, 2)
    x, dy = rng.standard_normal((b, 4, 3)), rng.standard_normal((b, 4, h))
    h0, c0, dh_n, dc_n = (rng.standard_normal((2, b, h)) for _ in range(4))
    args = dict(params=params, x=x, dy=dy, h0=h0, c0=c0, dh_n=dh_n, dc_n=dc_n)
    before = {k: ({n: v.copy() for n, v in a.items()} if isinstance(a, dict) else a.copy())
              for k, a in args.items()}
    _, cache = lstm.forward(params, x, h0, c0)
    lstm.backward(params, cache, dy, dh_n, dc_n)
    for k, a in args.items():
        if isinstance(a, dict):
            for n in a:
                np.testing.assert_array_equal(a[n], before[k][n], err_msg=f"{k}[{n}]")
        else:
            np.testing.assert_array_equal(a, before[k], err_msg=k)


def test_dy_none_equals_zero_dy_and_both_bias_gradients_are_equal():
    params, x, rng = _case()
    dh_n = rng.standard_normal((2, 2, 5))
    _, cache = lstm.forward(params, x)
    (dx_a, _), g_a = lstm.backward(params, cache, None, dh_n=dh_n)
    (dx_b, _), g_b = lstm.backward(params, cache, np.zeros((2, 4, 5)), dh_n=dh_n)
    np.testing.assert_array_equal(dx_a, dx_b)
    for name in g_a:
        np.testing.assert_array_equal(g_a[name], g_b[name])
    np.testing.assert_array_equal(g_a["bias_ih_l1"], g_a["bias_hh_l1"])
    assert list(g_a) == list(lstm.parameter_shapes(3, 5, 2))  # PyTorch's state_dict order


def _forward_backward(params, x, dy, workspace=None, **kw):
    (y, state), cache = lstm.forward(params, x, workspace=workspace, **kw)
    y = y.copy()  # a workspace's next forward would overwrite it
    (dx, d_state), grads = lstm.backward(params, cache, dy)
    return y, state, dx, d_state, grads


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_workspace_gives_the_same_outputs_and_gradients_bit_for_bit(dtype):
    params, x, rng = _case(dtype=dtype)
    dy = rng.standard_normal((2, 4, 5)).astype(dtype)
    h0 = rng.standard_normal((2, 2, 5)).astype(dtype)
    fresh = _forward_backward(params, x, dy, h0=h0)
    ws = lstm.Workspace()
    # Twice on one workspace: the second call reads buffers left dirty by the first.
    for _ in range(2):
        reused = _forward_backward(params, x, dy, ws, h0=h0)
        for a, b in zip(fresh[:3] + (fresh[3][0], fresh[3][1]),
                        reused[:3] + (reused[3][0], reused[3][1])):
            np.testing.assert_array_equal(a, b)
        for name in fresh[4]:
            np.testing.assert_array_equal(fresh[4][name], reused[4][name])


def test_workspace_serves_a_smaller_batch_and_shorter_sequence_after_a_larger_one():
    params, x, rng = _case(b=3, t=6)
    ws = lstm.Workspace()
    _forward_backward(params, x, rng.standard_normal((3, 6, 5)), ws)
    small, dy = x[:1, :2], rng.standard_normal((1, 2, 5))
    expected = _forward_backward(params, small, dy)
    got = _forward_backward(params, small, dy, ws)
    np.testing.assert_array_equal(expected[2], got[2])
    for name in expected[4]:
        np.testing.assert_array_equal(expected[4][name], got[4][name])


def test_backward_with_a_stale_workspace_cache_raises_instead_of_using_overwritten_buffers():
    params, x, rng = _case()
    ws = lstm.Workspace()
    _, old = lstm.forward(params, x, workspace=ws)
    _, new = lstm.forward(params, x + 1.0, workspace=ws)
    dy = rng.standard_normal((2, 4, 5))
    with pytest.raises(InputError, match="stale"):
        lstm.backward(params, old, dy)
    lstm.backward(params, new, dy)  # the latest cache is fine, and may be used twice
    lstm.backward(params, new, dy)


# --- conformance with torch.nn.LSTM --------------------------------------------------------

@pytest.mark.conformance
@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-10), (np.float32, 1e-5)])
@pytest.mark.parametrize("layers", [1, 2, 3])
@pytest.mark.parametrize("initial_state", [False, True])
@pytest.mark.parametrize("b, t, i, h", [(3, 7, 4, 5), (1, 1, 1, 1)])
def test_lstm_matches_torch_forward_and_every_gradient(dtype, tol, layers, initial_state,
                                                      b, t, i, h):
    tr = pytest.importorskip("tests.torch_ref")
    torch = tr.torch
    rng = np.random.default_rng(layers)
    params = {n: v.astype(dtype) for n, v in random_lstm_params(rng, i, h, layers).items()}
    x = rng.standard_normal((b, t, i)).astype(dtype)
    h0 = c0 = None
    if initial_state:
        h0, c0 = (rng.standard_normal((layers, b, h)).astype(dtype) for _ in range(2))
    dy = rng.standard_normal((b, t, h)).astype(dtype)
    dh_n, dc_n = (rng.standard_normal((layers, b, h)).astype(dtype) for _ in range(2))

    (y, (h_n, c_n)), cache = lstm.forward(params, x, h0, c0)
    (dx, (dh0, dc0)), grads = lstm.backward(params, cache, dy, dh_n, dc_n)

    ref = torch.nn.LSTM(i, h, layers, batch_first=True)
    ref = ref.to(torch.float64 if dtype == np.float64 else torch.float32)
    ref.load_state_dict({n: torch.from_numpy(v) for n, v in params.items()})
    xt = tr.to_torch(x, requires_grad=True)
    state = None
    if initial_state:
        h0t, c0t = tr.to_torch(h0, True), tr.to_torch(c0, True)
        state = (h0t, c0t)
    yt, (hnt, cnt) = ref(xt, state)
    loss = ((yt * tr.to_torch(dy)).sum() + (hnt * tr.to_torch(dh_n)).sum()
            + (cnt * tr.to_torch(dc_n)).sum())
    loss.backward()

    pairs = {"y": (y, yt), "h_n": (h_n, hnt), "c_n": (c_n, cnt), "dx": (dx, xt.grad)}
    if initial_state:
        pairs.update(dh0=(dh0, h0t.grad), dc0=(dc0, c0t.grad))
    for name, p in ref.named_parameters():
        pairs[name] = (grads[name], p.grad)
    for name, (ours, theirs) in pairs.items():
        assert rel_error(ours, tr.to_numpy(theirs)) < tol, name


# --- bad input -----------------------------------------------------------------------------

def _bad(mutate):
    params, x, _ = _case()
    kwargs = {"params": params, "x": x}
    mutate(kwargs)
    lstm.forward(kwargs.pop("params"), kwargs.pop("x"), **kwargs)


@pytest.mark.parametrize("mutate, arg", [
    (lambda k: k.update(x=k["x"][0]), "x"),                              # 2-D input
    (lambda k: k.update(x=k["x"][:, :, :2]), "x"),                       # wrong feature size
    (lambda k: k.update(x=k["x"].astype(np.int32)), "x"),                # integer dtype
    (lambda k: k.update(x=k["x"].astype(np.float32)), "x"),              # float32 vs float64
    (lambda k: k["x"].__setitem__((0, 1, 2), np.nan), "x"),              # NaN
    (lambda k: k.update(x=k["x"][:, :0]), "x"),                          # T = 0
    (lambda k: k.update(h0=np.zeros((1, 2, 5))), "h0"),                  # wrong layer count
    (lambda k: k.update(c0=np.full((2, 2, 5), np.inf)), "c0"),           # infinite state
    (lambda k: k["params"].pop("bias_hh_l1"), "bias_hh_l1"),             # missing bias
    (lambda k: k["params"].update(weight_ih_l5=np.ones((20, 5))), "weight_ih_l5"),
    (lambda k: k["params"].update(weight_hh_l1=np.ones((20, 4))), "weight_hh_l1"),
    (lambda k: k["params"].update(bias_ih_l0=np.ones(20, np.float32)), "bias_ih_l0"),
    (lambda k: k.update(params=[1, 2]), "params"),
])
def test_lstm_rejects_bad_input_naming_the_argument(mutate, arg):
    with pytest.raises(InputError, match=arg):
        _bad(mutate)


def test_lstm_backward_rejects_upstream_gradients_of_the_wrong_shape():
    params, x, _ = _case()
    _, cache = lstm.forward(params, x)
    with pytest.raises(InputError, match="dy"):
        lstm.backward(params, cache, np.zeros((2, 4, 4)))
    with pytest.raises(InputError, match="dc_n"):
        lstm.backward(params, cache, None, dc_n=np.zeros((2, 5)))


# --- inference without a cache -----------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("b, t, h, chunk_bytes", [(1, 1, 1, None), (3, 7, 5, None),
                                                  (2, 300, 16, 20_000), (32, 45, 64, 400_000)])
def test_infer_equals_forward_bit_for_bit(dtype, b, t, h, chunk_bytes, monkeypatch):
    # With the chunk size cut (CHUNK_BYTES), the last two run several chunks and a partial
    # last one, as the paper's student does at the default size.
    if chunk_bytes is not None:
        monkeypatch.setattr(lstm, "CHUNK_BYTES", chunk_bytes)
        assert 1 < lstm._chunk_steps(b, h, dtype) < t and t % lstm._chunk_steps(b, h, dtype)
    rng = np.random.default_rng(t)
    params = {n: v.astype(dtype) for n, v in random_lstm_params(rng, 4, h, 2).items()}
    x = rng.standard_normal((b, t, 4)).astype(dtype)
    h0, c0 = (rng.standard_normal((2, b, h)).astype(dtype) for _ in range(2))
    (y, (h_n, c_n)), _ = lstm.forward(params, x, h0, c0)
    y_i, (h_i, c_i) = lstm.infer(params, x, h0, c0)
    assert y_i.flags.c_contiguous
    np.testing.assert_array_equal(y_i, y)
    np.testing.assert_array_equal(h_i, h_n)
    np.testing.assert_array_equal(c_i, c_n)


def test_inference_carries_its_state_across_blocks_like_forward_with_h0_c0():
    params, x, _ = _case(t=9)
    run = lstm.Inference(params, 2)
    ya, yb = run.run(x[:, :4]), run.run(x[:, 4:])
    (y_a, (h_a, c_a)), _ = lstm.forward(params, x[:, :4])
    (y_b, (h_b, c_b)), _ = lstm.forward(params, x[:, 4:], h_a, c_a)
    np.testing.assert_array_equal(np.concatenate([ya, yb], axis=1),
                                  np.concatenate([y_a, y_b], axis=1))
    np.testing.assert_array_equal(run.h, h_b)
    np.testing.assert_array_equal(run.c, c_b)
    # a chunk of one step changes only the GEMM blocking: same values to rounding
    one = lstm.Inference(params, 2, chunk=1)
    np.testing.assert_allclose(one.run(x), np.concatenate([y_a, y_b], axis=1), rtol=1e-12,
                               atol=1e-14)


def test_infer_keeps_no_per_step_activations():
    """Peak memory grows with T by y's size only (forward: by every step's activations)."""
    import tracemalloc

    rng = np.random.default_rng(0)
    params = random_lstm_params(rng, 8, 32, 2)
    growth = {}
    for name, run in (("forward", lstm.forward), ("infer", lstm.infer)):
        peaks = []
        for steps in (3000, 6000):
            x = rng.standard_normal((4, steps, 8))
            run(params, x[:, :10])  # compile outside the measurement
            tracemalloc.start()
            run(params, x)
            peaks.append(tracemalloc.get_traced_memory()[1])
            tracemalloc.stop()
        growth[name] = peaks[1] - peaks[0]
    y_growth = 4 * 3000 * 32 * 8  # 3000 more steps of y (B=4, H=32, float64)
    # forward keeps x, gates (4H), h and c of both layers: ~13x y
    assert growth["forward"] > 10 * y_growth, growth
    assert growth["infer"] < 1.2 * y_growth, growth


def test_inference_refuses_a_block_of_another_batch_and_a_bad_chunk():
    params, x, _ = _case()
    with pytest.raises(InputError, match=r"x: expected shape \(3, \*, 3\)"):
        lstm.Inference(params, 3).run(x)
    with pytest.raises(InputError, match="chunk"):
        lstm.Inference(params, 2, chunk=0)
    with pytest.raises(InputError, match="batch"):
        lstm.Inference(params, 0)


# --- the loop over time: compiled (default) against the Python reference -------------------

def _all_outputs(params, x, h0, c0, dy, workspace=None):
    (y, (h_n, c_n)), cache = lstm.forward(params, x, h0, c0, workspace=workspace)
    y = y.copy()
    (dx, (dh0, dc0)), grads = lstm.backward(params, cache, dy)
    y_inf, (h_inf, c_inf) = lstm.infer(params, x, h0, c0)
    return [y, h_n, c_n, dx, dh0, dc0, y_inf, h_inf, c_inf] + [grads[k] for k in sorted(grads)]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("b, t, i, h, layers", [(1, 1, 1, 1, 1), (3, 7, 4, 5, 2),
                                                (1, 40, 6, 33, 1), (5, 2, 3, 8, 3)])
def test_compiled_time_loop_equals_the_python_reference_loop_bit_for_bit(
        dtype, b, t, i, h, layers, monkeypatch):
    rng = np.random.default_rng(b + 10 * t + 100 * h)
    params = {k: (rng.standard_normal(s) * 0.4).astype(dtype)
              for k, s in lstm.parameter_shapes(i, h, layers).items()}
    x = rng.standard_normal((b, t, i)).astype(dtype)
    h0 = rng.standard_normal((layers, b, h)).astype(dtype)
    c0 = rng.standard_normal((layers, b, h)).astype(dtype)
    dy = rng.standard_normal((b, t, h)).astype(dtype)
    got = {}
    for loop in ("python", "numba"):
        monkeypatch.setattr(lstm, "STEP_LOOP", loop)
        got[loop] = _all_outputs(params, x, h0, c0, dy, workspace=lstm.Workspace())
    for want, have in zip(got["python"], got["numba"]):
        np.testing.assert_array_equal(have, want)
    assert np.abs(got["numba"][0]).max() > 0   # a real output, not zeros on both sides


def test_compiled_time_loop_accepts_non_contiguous_recurrent_weights(monkeypatch):
    params, x, _ = _case()
    want = lstm.forward(params, x)[0][0].copy()
    params = dict(params)
    params["weight_hh_l1"] = np.asfortranarray(params["weight_hh_l1"])   # same values
    monkeypatch.setattr(lstm, "STEP_LOOP", "numba")
    np.testing.assert_array_equal(lstm.forward(params, x)[0][0], want)


def test_an_unknown_step_loop_in_the_environment_is_refused_when_qdaed_is_imported():
    proc = subprocess.run([sys.executable, "-c", "import qdaed.nn.lstm"], capture_output=True,
                          text=True, env={**os.environ, "QDAED_LSTM_STEPS": "fast"})
    assert proc.returncode != 0
    assert "QDAED_LSTM_STEPS: expected one of python, numba, got 'fast'" in proc.stderr
