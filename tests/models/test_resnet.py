import numpy as np
import pytest

from qdaed.errors import InputError
from qdaed.gradcheck import rel_error
from qdaed.gradcheck.resnet_cases import randomize_state, sampled_errors
from qdaed.models import ResNet

SMALL_INPUT = (2, 1, 64, 32)


# ------------------------------------------------------------------------ structure and state
@pytest.mark.parametrize("depth,kind,blocks", [(18, "basic", 8), (34, "basic", 16),
                                               (50, "bottleneck", 16)])
def test_block_layout_and_projection_shortcuts(depth, kind, blocks):
    m = ResNet(depth, width=4)
    assert len(m.blocks) == blocks and all(b["kind"] == kind for b in m.blocks)
    with_projection = [b["name"] for b in m.blocks if b["downsample"]]
    # Stages 2-4 halve the map; ResNet-50's layer1 also widens 4 → 16 channels.
    want = ["layer2.0", "layer3.0", "layer4.0"]
    assert with_projection == (["layer1.0"] + want if kind == "bottleneck" else want)


def test_width_scales_every_stage():
    m = ResNet(50, width=16)
    assert m.params["conv1.weight"].shape == (16, 1, 7, 7)
    for stage, planes in enumerate([16, 32, 64, 128], start=1):
        assert m.params[f"layer{stage}.0.conv2.weight"].shape == (planes, planes, 3, 3)
        assert m.params[f"layer{stage}.0.conv3.weight"].shape == (4 * planes, planes, 1, 1)
    # v1.5: the stride sits on the 3×3 convolution, the 1×1 convolutions keep it at 1
    assert [b["stride"] for b in m.blocks if b["downsample"]] == [1, 2, 2, 2]
    assert m.params["fc.weight"].shape == (3, 512)


def test_initialisation_follows_torchvision():
    m = ResNet(18, seed=3, dtype=np.float64)
    w = m.params["layer3.1.conv2.weight"]           # fan_out = 256·3·3
    assert abs(w.std() / np.sqrt(2.0 / (256 * 9)) - 1) < 0.02
    assert abs(w.mean()) < 0.05 * w.std()
    for name, v in m.params.items():
        if ".bn" in name or name.startswith("bn1") or "downsample.1" in name:
            np.testing.assert_array_equal(v, 1.0 if name.endswith("weight") else 0.0)
    for name, v in m.buffers.items():
        np.testing.assert_array_equal(v, 0.0 if name.endswith("mean") else 1.0)
    bound = 1 / np.sqrt(512)                         # U(−1/√fan_in, 1/√fan_in)
    assert 0.95 * bound < np.abs(m.params["fc.weight"]).max() <= bound
    assert np.abs(m.params["fc.bias"]).max() <= bound


def test_seeds_reproduce_and_differ():
    a, b, c = ResNet(18, width=4, seed=5), ResNet(18, width=4, seed=5), ResNet(18, width=4, seed=6)
    for name in a.params:
        np.testing.assert_array_equal(a.params[name], b.params[name])
    assert not np.array_equal(a.params["conv1.weight"], c.params["conv1.weight"])
    assert a.params["conv1.weight"].dtype == np.float32


def test_state_dict_round_trip_ignores_num_batches_tracked_and_copies():
    src, dst = ResNet(18, width=4, seed=1), ResNet(18, width=4, seed=2)
    randomize_state(src, np.random.default_rng(0))
    state = src.state_dict()
    assert "bn1.running_mean" in state and "layer2.0.downsample.1.running_var" in state
    state["bn1.num_batches_tracked"] = np.array(7)
    dst.load_state_dict(state)
    for name, v in src.state_dict().items():
        np.testing.assert_array_equal(dst.state_dict()[name], v)
    state["conv1.weight"][...] = 0    # a copy: the model must not change
    assert np.any(dst.params["conv1.weight"] != 0)


@pytest.mark.parametrize("edit,match", [
    (lambda s: s.pop("layer1.0.bn1.running_var"), "missing 1 .*layer1.0.bn1.running_var"),
    (lambda s: s.__setitem__("layer9.0.conv1.weight", np.zeros(1)), "unexpected 1"),
    (lambda s: s.__setitem__("fc.weight", np.zeros((4, 32))), r"fc.weight.*shape \(3, 32\)"),
    (lambda s: s.__setitem__("fc.bias", np.array([0.0, np.nan, 0.0])), "NaN"),
    (lambda s: s.__setitem__("bn1.running_var", -np.ones(4)), "negative"),
])
def test_load_state_dict_refuses_bad_entries_and_leaves_the_model_untouched(edit, match):
    m = ResNet(18, width=4)
    before = m.state_dict()
    state = ResNet(18, width=4, seed=9).state_dict()
    edit(state)
    with pytest.raises(InputError, match=match):
        m.load_state_dict(state)
    for name, v in m.state_dict().items():
        np.testing.assert_array_equal(v, before[name])


# ------------------------------------------------------------------------ bad input
@pytest.mark.parametrize("shape,match", [
    ((2, 3, 64, 64), "expected 1 input channel"),
    ((0, 1, 32, 32), "empty"),
    ((2, 1, 0, 32), "empty"),
    ((2, 64, 64), "4 dimensions"),
])
def test_bad_input_shapes_say_which_and_why(shape, match):
    m = ResNet(18, width=4)
    with pytest.raises(InputError, match=match):
        m.forward(np.zeros(shape, np.float32), train=False)


def test_non_finite_and_wrong_dtype_inputs_are_refused():
    m = ResNet(18, width=4)
    x = np.zeros((2, 1, 32, 32), np.float32)
    x[1, 0, 3, 4] = np.inf
    with pytest.raises(InputError, match="NaN or infinity"):
        m.forward(x, train=False)
    with pytest.raises(InputError, match="float32"):
        m.forward(np.zeros((2, 1, 32, 32)), train=False)


def test_training_mode_needs_two_values_per_channel_at_layer4():
    m = ResNet(18, width=4)
    x = np.zeros((1, 1, 32, 32), np.float32)     # layer4 map 1×1, batch 1
    with pytest.raises(InputError, match="at least two values per channel"):
        m.forward(x, train=True)
    z, _ = m.forward(x, train=False)
    assert z.shape == (1, 3)
    m.forward(np.zeros((1, 1, 33, 32), np.float32), train=True)   # layer4 map 2×1: fine


@pytest.mark.parametrize("t", [1, 2, 3, 31, 32, 33, 63, 64, 65, 100])
def test_layer4_map_is_the_input_over_32_rounded_up(t):
    # five stride-2 steps, each n -> ceil(n/2): ceil(ceil(n/2)/2)... = ceil(n/32)
    want = (t + 31) // 32
    assert ResNet(18, width=2).feature_size(t, 1) == (want, 1)
    assert ResNet(50, width=2).feature_size(5, t) == (1, want)


@pytest.mark.parametrize("depth", [18, 50])
@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (1, 1, 37, 21), (3, 1, 5, 64), (1, 1, 2, 1)])
def test_inputs_shorter_than_32_are_computed_in_evaluation_mode(depth, shape):
    m = ResNet(depth, width=2, dtype=np.float64)
    x = np.random.default_rng(0).standard_normal(shape)
    z, cache = m.forward(x, train=False)
    assert z.shape == (shape[0], 3) and np.all(np.isfinite(z))
    grads = m.backward(cache, np.ones_like(z))
    assert all(grads[n].shape == v.shape and np.all(np.isfinite(grads[n]))
               for n, v in m.params.items())


@pytest.mark.parametrize("shape, ok", [
    ((1, 1, 32, 32), False),    # layer4 1×1, one value per channel
    ((1, 1, 1, 1), False),
    ((1, 1, 32, 1), False),
    ((1, 1, 33, 1), True),      # layer4 2×1
    ((1, 1, 1, 33), True),      # layer4 1×2
    ((1, 1, 37, 21), True),
    ((2, 1, 1, 1), True),       # two clips, one value each
])
def test_training_mode_refuses_exactly_one_value_per_channel_at_layer4(shape, ok):
    m = ResNet(18, width=2, dtype=np.float64)
    x = np.random.default_rng(1).standard_normal(shape)
    if ok:
        z, cache = m.forward(x, train=True)
        assert z.shape == (shape[0], 3) and np.all(np.isfinite(z))
        m.backward(cache, np.ones_like(z))
    else:
        with pytest.raises(InputError, match=r"at least two values per channel.*1×1×1 = 1"):
            m.forward(x, train=True)
        m.forward(x, train=False)    # the same input is fine for inference


def test_training_forward_updates_running_statistics_and_eval_does_not():
    m = ResNet(18, width=4, dtype=np.float64)
    x = np.random.default_rng(0).standard_normal((2, 1, 40, 36))
    m.forward(x, train=False)
    assert all(np.all(v == (0 if k.endswith("mean") else 1)) for k, v in m.buffers.items())
    m.forward(x, train=True)
    assert all(np.any(v != (0 if k.endswith("mean") else 1)) for k, v in m.buffers.items())


# ------------------------------------------------------------------------ gradients
@pytest.mark.parametrize("depth", [18, 34, 50])
@pytest.mark.parametrize("train", [True, False])
def test_sampled_central_differences_on_a_tiny_resnet(depth, train):
    rng = np.random.default_rng(depth + train)
    m = ResNet(depth, width=2, seed=rng, dtype=np.float64)
    randomize_state(m, rng)
    x = rng.standard_normal((2, 1, 48, 40))
    if not train:
        for _ in range(40):
            m.forward(x, True)
    z, cache = m.forward(x, train)
    dz = rng.standard_normal(z.shape)
    grads = m.backward(cache, dz)
    assert list(grads) == list(m.params)

    def loss():
        return float(np.sum(m.forward(x, train)[0] * dz))

    errs = sampled_errors(loss, m.params, grads, rng, entries=2)
    assert max(errs.values()) < 1e-6, {k: e for k, e in errs.items() if e >= 1e-6}


# ------------------------------------------------------------------------ PyTorch conformance
def _pair(depth, dtype, width=64, seed=0):
    """Our ResNet with a random (trained-looking) state, and the torch twin loaded with it."""
    from tests.torch_ref import torch  # first: skips without torch
    from bench.torch_resnet import TorchResNet

    m = ResNet(depth, width=width, seed=seed, dtype=dtype)
    randomize_state(m, np.random.default_rng(seed))
    t = TorchResNet(depth, width=width).to(torch.float64 if dtype == np.float64 else torch.float32)
    t.load_state_dict({k: torch.from_numpy(v) for k, v in m.state_dict().items()}, strict=True)
    return m, t


def _run_both(m, t, x, dz, train):
    from tests.torch_ref import to_numpy, to_torch

    z, cache = m.forward(x, train)
    grads = m.backward(cache, dz)
    t.train(train)
    for p in t.parameters():
        p.grad = None
    zt = t(to_torch(x))
    zt.backward(to_torch(dz))
    tgrads = {k: to_numpy(p.grad) for k, p in t.named_parameters()}
    tbuf = {k: to_numpy(v) for k, v in t.state_dict().items() if k in m.buffers}
    return z, grads, dict(m.buffers), to_numpy(zt), tgrads, tbuf


def _errors(ours, theirs):
    return {k: rel_error(ours[k], theirs[k]) for k in ours}


@pytest.mark.conformance
def test_state_dict_names_shapes_and_count_match_torchvision_layout():
    from tests.torch_ref import torch  # noqa: F401  (first: skips without torch)
    from bench.torch_resnet import TorchResNet

    for depth in (18, 34, 50):
        m, t = ResNet(depth, width=8), TorchResNet(depth, width=8)
        tstate = {k: tuple(v.shape) for k, v in t.state_dict().items()
                  if not k.endswith("num_batches_tracked")}
        assert {k: v.shape for k, v in m.state_dict().items()} == tstate
        assert list(m.state_dict()) == list(tstate)          # same order too
        assert m.num_parameters() == sum(p.numel() for p in t.parameters())


@pytest.mark.conformance
@pytest.mark.parametrize("depth", [18, 50])
@pytest.mark.parametrize("train", [True, False])
def test_float64_logits_gradients_and_running_statistics_match_torch(depth, train):
    m, t = _pair(depth, np.float64, seed=depth)
    rng = np.random.default_rng(1)
    x = rng.standard_normal(SMALL_INPUT)
    dz = rng.standard_normal((SMALL_INPUT[0], 3))
    z, g, buf, zt, tg, tbuf = _run_both(m, t, x, dz, train)
    assert rel_error(z, zt) < 1e-8
    errs = _errors(g, tg)
    assert set(errs) == set(tg) and max(errs.values()) < 1e-8, max(errs.items(), key=lambda e: e[1])
    berrs = _errors(buf, tbuf)
    assert max(berrs.values()) < 1e-8
    if train:   # the step moved them: a real check, not 0 == 0 against the initial state
        assert np.any(buf["bn1.running_mean"] != 0)


@pytest.mark.conformance
def test_resnet34_float64_matches_torch_at_reduced_width():
    m, t = _pair(34, np.float64, width=16, seed=34)
    rng = np.random.default_rng(2)
    x, dz = rng.standard_normal(SMALL_INPUT), rng.standard_normal((2, 3))
    for train in (True, False):
        z, g, buf, zt, tg, tbuf = _run_both(m, t, x, dz, train)
        assert rel_error(z, zt) < 1e-8 and max(_errors(g, tg).values()) < 1e-8
        assert max(_errors(buf, tbuf).values()) < 1e-8


@pytest.mark.conformance
@pytest.mark.parametrize("depth", [18, 50])
def test_float32_evaluation_mode_matches_torch(depth):
    m, t = _pair(depth, np.float32, seed=depth)
    rng = np.random.default_rng(3)
    x = rng.standard_normal(SMALL_INPUT).astype(np.float32)
    dz = rng.standard_normal((2, 3)).astype(np.float32)
    z, g, _, zt, tg, _ = _run_both(m, t, x, dz, train=False)
    assert z.dtype == np.float32 and all(v.dtype == np.float32 for v in g.values())
    assert rel_error(z, zt) < 1e-4
    errs = _errors(g, tg)
    assert max(errs.values()) < 1e-4, max(errs.items(), key=lambda e: e[1])


@pytest.mark.conformance
@pytest.mark.parametrize("depth", [18, 50])
def test_float32_training_mode_matches_torch_as_closely_as_float32_allows(depth):
    """ResNet-18: logits, every gradient and the running statistics agree with PyTorch's
    float32 to 1e-4. ResNet-50 in training mode is ill-conditioned in float32: batch-norm over
    the 4 values per channel of layer4 (B=2, a 2×1 map) amplifies rounding, and rounding-level
    changes flip ReLUs. PyTorch's own float32 logits and gradients then differ from its float64
    ones by more than 1e-4 (~1e-4 and ~1e-3 to 1e-1 here), so the 1e-4 bound cannot hold for
    any float32 implementation; the check is that ours stay about as close to the float64 truth
    as PyTorch's float32 do: logits within 3x PyTorch's float32 error (measured on this
    project's machine with numpy 2.4.6 / numba 0.68.1: ours 1.59e-4, PyTorch 7.2e-5, i.e.
    2.2x; an earlier set of wheels gave under 2x), running statistics within 2x."""
    m, t = _pair(depth, np.float32, seed=depth)
    m64, t64 = _pair(depth, np.float64, seed=depth)
    rng = np.random.default_rng(4)
    x = rng.standard_normal(SMALL_INPUT)
    dz = rng.standard_normal((2, 3))
    z, g, buf, zt, tg, tbuf = _run_both(m, t, x.astype(np.float32), dz.astype(np.float32), True)
    z64, g64, buf64, _, _, _ = _run_both(m64, t64, x, dz, True)
    if depth == 18:
        assert rel_error(z, zt) < 1e-4
        assert max(_errors(g, tg).values()) < 1e-4
        assert max(_errors(buf, tbuf).values()) < 1e-4
    else:
        assert rel_error(z, z64) < max(1e-4, 3 * rel_error(zt, z64))
        ours, torchs = max(_errors(buf, buf64).values()), max(_errors(tbuf, buf64).values())
        assert ours < max(1e-4, 2 * torchs), (ours, torchs)
        ours, torchs = max(_errors(g, g64).values()), max(_errors(tg, g64).values())
        assert ours < max(1e-4, 2 * torchs), (ours, torchs)


@pytest.mark.conformance
def test_weights_trained_here_load_into_torch_and_back():
    from tests.torch_ref import torch  # first: skips without torch
    from bench.torch_resnet import TorchResNet

    m = ResNet(18, width=8, seed=4)
    m.forward(np.random.default_rng(0).standard_normal((2, 1, 40, 40)).astype(np.float32), True)
    t = TorchResNet(18, width=8)
    t.load_state_dict({k: torch.from_numpy(v) for k, v in m.state_dict().items()}, strict=True)
    back = ResNet(18, width=8, seed=99)
    back.load_state_dict({k: v.numpy() for k, v in t.state_dict().items()})  # with num_batches
    for name, v in m.state_dict().items():
        np.testing.assert_array_equal(back.state_dict()[name], v)


# The smallest inputs PyTorch accepts: any non-empty input in evaluation mode; in training
# mode B·T₄·F₄ ≥ 2 (T₄ = ⌈T/32⌉). Logits, every gradient and the running statistics must match
# there, as they do for ordinary inputs.
SMALLEST = [((1, 1, 1, 1), False), ((1, 1, 37, 21), False), ((1, 1, 2, 1), False),
            ((2, 1, 1, 1), True), ((1, 1, 33, 1), True), ((1, 1, 1, 33), True),
            ((1, 1, 37, 21), True)]


@pytest.mark.conformance
@pytest.mark.parametrize("depth", [18, 50])
@pytest.mark.parametrize("shape, train", SMALLEST)
def test_smallest_inputs_torch_accepts_match_torch(depth, shape, train):
    """float64, 1e-8 as for ordinary inputs, but for ResNet-50's gradients in training mode
    with two values per channel at layer4 (B·T₄·F₄ = 2): batch-norm over two values divides by
    their spread, which can be tiny, so gradients reach ~1e6 here (against ~4 for the logits'
    own) and both implementations' float64 rounding is amplified; measured 8.7e-8 for the
    33 × 1 input (width 8, seed 50), hence 1e-6 there."""
    m, t = _pair(depth, np.float64, width=8, seed=depth)
    rng = np.random.default_rng(5)
    x, dz = rng.standard_normal(shape), rng.standard_normal((shape[0], 3))
    z, g, buf, zt, tg, tbuf = _run_both(m, t, x, dz, train)
    assert rel_error(z, zt) < 1e-8
    t4, f4 = m.feature_size(shape[2], shape[3])
    tol = 1e-6 if depth == 50 and train and shape[0] * t4 * f4 == 2 else 1e-8
    errs = _errors(g, tg)
    assert set(errs) == set(tg) and max(errs.values()) < tol, max(errs.items(), key=lambda e: e[1])
    assert max(_errors(buf, tbuf).values()) < 1e-8


def _torch_refuses(t, x, train):
    from tests.torch_ref import to_torch, torch

    t.train(train)
    try:
        with torch.no_grad():
            t(to_torch(x))
    except (ValueError, RuntimeError):
        return True
    return False


def _qdaed_refuses(m, x, train):
    try:
        m.forward(x, train)
    except InputError:
        return True
    return False


@pytest.mark.conformance
@pytest.mark.parametrize("depth", [18, 50])
def test_refusals_happen_exactly_where_torch_refuses(depth):
    """Every non-empty shape of a grid around the limits, both modes: qdaed refuses (with an
    InputError) exactly the inputs PyTorch refuses. Empty arrays are left out: qdaed refuses
    them on principle, where PyTorch returns an empty result for some of them."""
    m, t = _pair(depth, np.float64, width=2, seed=depth)
    rng = np.random.default_rng(6)
    outcomes = {}
    for b in (1, 2):
        for h in (1, 2, 31, 32, 33):
            for w in (1, 32, 33):
                for train in (False, True):
                    x = rng.standard_normal((b, 1, h, w))
                    ours, theirs = _qdaed_refuses(m, x, train), _torch_refuses(t, x, train)
                    assert ours == theirs, ((b, h, w), train, ours, theirs)
                    outcomes[(b, h, w, train)] = ours
    # The grid does reach the limit: some training-mode inputs are refused, none in eval mode.
    refused = {k for k, v in outcomes.items() if v}
    assert refused == {(1, h, w, True) for h in (1, 2, 31, 32) for w in (1, 32)}


def test_evaluation_forward_keeps_only_its_input_and_backward_recomputes_the_rest():
    # Inference frees every activation as it goes; a backward after it re-runs the forward
    # with caches and gives the gradients a cached evaluation-mode forward gives.
    m = ResNet(50, width=2, dtype=np.float64)
    x = np.random.default_rng(3).standard_normal((2, 1, 40, 36))
    z, cache = m.forward(x, train=False)
    assert cache[0] == "recompute" and cache[1] is x
    z_kept, cache_kept = m._forward(x, False, keep=True)
    np.testing.assert_array_equal(z, z_kept)
    dz = np.random.default_rng(4).standard_normal(z.shape)
    got, want = m.backward(cache, dz), m.backward(cache_kept, dz)
    for n in m.params:
        np.testing.assert_array_equal(got[n], want[n])
