import numpy as np
import pytest
from hypothesis import example, given

from qdaed.errors import InputError
from qdaed.gradcheck import compare_gradients
from qdaed.nn import conv2d
from tests.strategies import conv_cases, rng_from, seeds
from tests.naive import conv2d as reference_conv


def draw(case, seed, bias=False):
    nb, c, o, h, w, k, s, p = case
    rng = rng_from(seed)
    params = {"weight": rng.standard_normal((o, c, k, k))}
    if bias:
        params["bias"] = rng.standard_normal(o)
    return params, rng.standard_normal((nb, c, h, w)), s, p, rng


@given(conv_cases(), seeds)
@example((1, 1, 2, 9, 7, 7, 2, 3), 0)    # the stem: 7×7, stride 2, odd sizes, batch 1
@example((2, 3, 2, 5, 5, 1, 2, 0), 1)    # projection shortcut: 1×1, stride 2, odd size
@example((1, 2, 3, 4, 4, 1, 1, 0), 2)    # 1×1 stride 1: the no-im2col path
def test_forward_matches_nested_loop_reference(case, seed):
    params, x, s, p, _ = draw(case, seed, bias=seed % 2 == 0)
    y, _ = conv2d.forward(params, x, s, p)
    np.testing.assert_allclose(y, reference_conv(x, params["weight"], params.get("bias"), s, p),
                               rtol=1e-12, atol=1e-12)


@given(conv_cases(), seeds)
@example((1, 1, 2, 9, 7, 7, 2, 3), 0)
@example((2, 3, 2, 5, 5, 1, 2, 0), 1)
@example((1, 2, 3, 4, 4, 1, 1, 0), 2)
@example((1, 2, 2, 7, 9, 3, 2, 1), 3)
def test_gradients_match_central_differences(case, seed):
    params, x, s, p, rng = draw(case, seed, bias=seed % 2 == 1)
    y, cache = conv2d.forward(params, x, s, p)
    dy = rng.standard_normal(y.shape)
    dx, grads = conv2d.backward(params, cache, dy)

    def loss():
        return float(np.sum(conv2d.forward(params, x, s, p)[0] * dy))

    errs = compare_gradients(loss, {"x": x, **params}, {"x": dx, **grads})
    assert max(errs.values()) < 1e-6, errs


def test_float32_runs_in_float32_and_agrees_with_float64():
    params, x, s, p, rng = draw((2, 3, 4, 9, 7, 3, 2, 1), 5)
    y64, c64 = conv2d.forward(params, x, s, p)
    p32 = {k: v.astype(np.float32) for k, v in params.items()}
    y32, c32 = conv2d.forward(p32, x.astype(np.float32), s, p)
    assert y32.dtype == np.float32
    np.testing.assert_allclose(y32, y64, rtol=1e-4, atol=1e-5)
    dy = rng.standard_normal(y64.shape)
    dx64, g64 = conv2d.backward(params, c64, dy)
    dx32, g32 = conv2d.backward(p32, c32, dy.astype(np.float32))
    assert dx32.dtype == np.float32 and g32["weight"].dtype == np.float32
    np.testing.assert_allclose(dx32, dx64, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(g32["weight"], g64["weight"], rtol=1e-4, atol=1e-4)


def test_rectangular_stride_and_padding_pairs():
    rng = rng_from(7)
    x = rng.standard_normal((1, 2, 6, 9))
    w = rng.standard_normal((3, 2, 3, 3))
    y, _ = conv2d.forward({"weight": w}, x, stride=(1, 2), padding=(0, 1))
    assert y.shape == (1, 3, 4, 5)
    full = reference_conv(x, w, None, 1, 1)[:, :, 1:-1, ::2]   # pad 1 everywhere, crop rows
    np.testing.assert_allclose(y, full, rtol=1e-12, atol=1e-12)


def test_impulse_input_gives_the_flipped_kernel_back():
    # Cross-correlation of a centred impulse with a 3×3 kernel is the kernel rotated 180°.
    x = np.zeros((1, 1, 5, 5))
    x[0, 0, 2, 2] = 1.0
    w = np.arange(9.0).reshape(1, 1, 3, 3)
    y, _ = conv2d.forward({"weight": w}, x, 1, 1)
    np.testing.assert_array_equal(y[0, 0, 1:4, 1:4], w[0, 0, ::-1, ::-1])


def test_bad_inputs_raise_input_error_naming_the_argument():
    w = np.zeros((2, 3, 3, 3))
    with pytest.raises(InputError, match="input channels"):
        conv2d.forward({"weight": w}, np.zeros((1, 2, 5, 5)))
    with pytest.raises(InputError, match="smaller than the 3×3 kernel"):
        conv2d.forward({"weight": w}, np.zeros((1, 3, 2, 5)))
    with pytest.raises(InputError, match="dtype"):
        conv2d.forward({"weight": w}, np.zeros((1, 3, 5, 5), np.float32))
    with pytest.raises(InputError, match="stride"):
        conv2d.forward({"weight": w}, np.zeros((1, 3, 5, 5)), stride=0)
    with pytest.raises(InputError, match="NaN"):
        conv2d.forward({"weight": w}, np.full((1, 3, 5, 5), np.nan))


@pytest.mark.conformance
@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-12), (np.float32, 1e-5)])
@pytest.mark.parametrize("k,s,p", [(7, 2, 3), (3, 1, 1), (3, 2, 1), (1, 2, 0), (1, 1, 0)])
def test_matches_torch_conv2d(dtype, tol, k, s, p):
    from tests.torch_ref import to_numpy, to_torch, torch
    from qdaed.gradcheck import rel_error

    rng = rng_from(11)
    x = rng.standard_normal((2, 3, 11, 8)).astype(dtype)
    w = rng.standard_normal((4, 3, k, k)).astype(dtype)
    y, cache = conv2d.forward({"weight": w}, x, s, p)
    dy = rng.standard_normal(y.shape).astype(dtype)
    dx, g = conv2d.backward({"weight": w}, cache, dy)
    xt, wt = to_torch(x, True), to_torch(w, True)
    yt = torch.nn.functional.conv2d(xt, wt, None, s, p)
    yt.backward(to_torch(dy))
    assert rel_error(y, to_numpy(yt)) < tol
    assert rel_error(dx, to_numpy(xt.grad)) < tol
    assert rel_error(g["weight"], to_numpy(wt.grad)) < tol


def test_skipping_the_input_gradient_keeps_the_weight_gradient():
    params, x, s, p, rng = draw((2, 1, 3, 9, 8, 7, 2, 3), 12)
    y, cache = conv2d.forward(params, x, s, p)
    dy = rng.standard_normal(y.shape)
    _, full = conv2d.backward(params, cache, dy)
    dx, only = conv2d.backward(params, cache, dy, input_grad=False)
    assert dx is None
    np.testing.assert_array_equal(only["weight"], full["weight"])


@pytest.mark.parametrize("case", [(5, 3, 4, 9, 7, 3, 1, 1), (3, 2, 3, 9, 8, 3, 2, 1),
                                  (4, 1, 2, 11, 9, 7, 2, 3)])
def test_chunked_columns_give_the_same_result(case, monkeypatch):
    # Columns one or two samples at a time (last chunk partial) against all at once.
    params, x, s, p, rng = draw(case, 31)
    y_all, cache = conv2d.forward(params, x, s, p)
    dy = rng.standard_normal(y_all.shape)
    dx_all, g_all = conv2d.backward(params, cache, dy)
    c, k = case[1], case[5]
    ho, wo = conv2d.output_size(case[3], k, s, p), conv2d.output_size(case[4], k, s, p)
    for per_chunk in (1, 2):
        monkeypatch.setattr(conv2d, "COLUMN_CHUNK_BYTES", per_chunk * c * k * k * ho * wo * 8)
        y, cache = conv2d.forward(params, x, s, p)
        np.testing.assert_array_equal(y, y_all)
        np.testing.assert_allclose(y, reference_conv(x, params["weight"], None, s, p),
                                   rtol=1e-12, atol=1e-12)
        dx, g = conv2d.backward(params, cache, dy)
        np.testing.assert_array_equal(dx, dx_all)
        np.testing.assert_array_equal(g["weight"], g_all["weight"])


@pytest.mark.parametrize("case", [(2, 3, 4, 20, 17, 3, 1, 1), (3, 2, 3, 9, 8, 3, 2, 1),
                                  (2, 1, 4, 30, 20, 7, 2, 3), (2, 4, 2, 5, 2, 3, 1, 1)])
def test_both_column_routes_give_the_same_result_bit_for_bit(case, monkeypatch):
    nb, c, o, h, w, k, s, p = case
    rng = np.random.default_rng(5)
    params = {"weight": rng.standard_normal((o, c, k, k)).astype(np.float32)}
    x = rng.standard_normal((nb, c, h, w)).astype(np.float32)
    dy_shape = (nb, o, conv2d.output_size(h, k, s, p), conv2d.output_size(w, k, s, p))
    dy = rng.standard_normal(dy_shape).astype(np.float32)
    got = []
    for table in (False, True):
        monkeypatch.setattr(conv2d, "_use_gather", lambda *a, t=table: t)
        monkeypatch.setattr(conv2d, "_use_scatter", lambda *a, t=table: t)
        y, cache = conv2d.forward(params, x, s, p)
        dx, g = conv2d.backward(params, cache, dy)
        got.append((y, dx, g["weight"]))
    for runs, table in zip(*got):
        np.testing.assert_array_equal(table, runs)


def test_the_table_route_is_taken_for_strides_and_narrow_planes_only():
    # (H, W, stride, Wo): wide "same" planes keep im2col's runs; strides and narrow planes
    # take the table; col2im's scatter only for strides and planes of at most 64 pixels
    assert not conv2d._use_gather(250, 16, (1, 1), 16)
    assert conv2d._use_gather(19, 4, (1, 1), 4)
    assert conv2d._use_gather(298, 64, (2, 2), 32)
    assert not conv2d._use_scatter(63, 4, (1, 1), 4)
    assert conv2d._use_scatter(10, 2, (1, 1), 2)
    assert conv2d._use_scatter(75, 16, (2, 2), 8)
