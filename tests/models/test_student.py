import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from qdaed.errors import InputError
from qdaed.gradcheck import rel_error
from qdaed.gradcheck.student_cases import STUDENT_STEP, check_student
from qdaed.models import StudentLSTM
from tests import strategies as S

NAMES_2_LAYERS = [
    "lstm.weight_ih_l0", "lstm.weight_hh_l0", "lstm.bias_ih_l0", "lstm.bias_hh_l0",
    "lstm.weight_ih_l1", "lstm.weight_hh_l1", "lstm.bias_ih_l1", "lstm.bias_hh_l1",
    "fc.weight", "fc.bias",
]


def _torch_student(torch, input_size, hidden, layers, classes, pooling):
    class Student(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = torch.nn.LSTM(input_size, hidden, layers, batch_first=True)
            self.fc = torch.nn.Linear(hidden, classes)

        def forward(self, x):
            y, _ = self.lstm(x)
            p = {"mean": lambda: y.mean(1), "last": lambda: y[:, -1],
                 "max": lambda: y.max(1).values}[pooling]()
            return self.fc(p)

    return Student()


def test_parameter_names_shapes_and_count():
    m = StudentLSTM(6, 5, 2, 3)
    assert list(m.params) == NAMES_2_LAYERS
    assert m.params["lstm.weight_ih_l0"].shape == (20, 6)
    assert m.params["lstm.weight_ih_l1"].shape == (20, 5)
    assert m.params["lstm.weight_hh_l1"].shape == (20, 5)
    assert m.params["fc.weight"].shape == (3, 5)
    assert m.num_parameters() == 20 * (6 + 5 + 2) + 20 * (5 + 5 + 2) + 3 * 5 + 3
    assert all(v.dtype == np.float32 for v in m.params.values())


def test_initialisation_is_pytorch_uniform_and_reproducible():
    hidden = 64
    m = StudentLSTM(8, hidden, 2, 3, seed=11, dtype=np.float64)
    bound = 1 / np.sqrt(hidden)
    for name, v in m.params.items():
        assert np.all(np.abs(v) <= bound), name
    w = m.params["lstm.weight_hh_l0"]  # 16384 draws: the range is covered and centred
    assert w.max() > 0.99 * bound and w.min() < -0.99 * bound
    assert abs(w.mean()) < 0.02 * bound and abs(w.std() - bound / np.sqrt(3)) < 0.02 * bound
    same = StudentLSTM(8, hidden, 2, 3, seed=11, dtype=np.float64)
    other = StudentLSTM(8, hidden, 2, 3, seed=12, dtype=np.float64)
    single = StudentLSTM(8, hidden, 2, 3, rng=np.random.default_rng(11))
    for name in m.params:
        np.testing.assert_array_equal(m.params[name], same.params[name])
        assert not np.array_equal(m.params[name], other.params[name])
        np.testing.assert_array_equal(single.params[name], m.params[name].astype(np.float32))


@pytest.mark.conformance
def test_names_and_shapes_equal_the_torch_modules_state_dict():
    tr = pytest.importorskip("tests.torch_ref")
    ref = _torch_student(tr.torch, 6, 5, 2, 3, "mean")
    ours = StudentLSTM(6, 5, 2, 3)
    theirs = ref.state_dict()
    assert list(ours.params) == list(theirs)
    assert {n: v.shape for n, v in ours.params.items()} == {n: tuple(v.shape) for n, v in theirs.items()}
    assert ours.num_parameters() == sum(p.numel() for p in ref.parameters())


@given(S.batch, st.integers(3, 5), st.integers(2, 4), st.integers(2, 4), st.integers(1, 2),
       st.integers(2, 4), S.pool_modes, S.seeds)
def test_student_gradients_match_central_differences(b, t, i, h, layers, c, pooling, seed):
    # Sizes and step as in the gradcheck case (see STUDENT_STEP); B=T=H=1 is covered by the
    # PyTorch conformance test below, which has no finite-difference noise floor.
    errs = check_student(S.rng_from(seed), b, t, i, h, layers, c, pooling, step=STUDENT_STEP)
    assert max(errs.values()) < 1e-6, errs


@pytest.mark.conformance
@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-10), (np.float32, 1e-5)])
@pytest.mark.parametrize("layers", [1, 2, 3])
@pytest.mark.parametrize("pooling", ["mean", "last", "max"])
@pytest.mark.parametrize("b, t, i, h, c", [(4, 9, 6, 5, 3), (1, 1, 1, 1, 1)])
def test_student_matches_torch_logits_and_every_gradient(dtype, tol, layers, pooling,
                                                        b, t, i, h, c):
    tr = pytest.importorskip("tests.torch_ref")
    torch = tr.torch
    rng = np.random.default_rng(layers)
    model = StudentLSTM(i, h, layers, c, pooling, rng=rng, dtype=dtype)
    for v in model.params.values():  # larger than the default init: gates off their linear range
        v[...] = 0.7 * rng.standard_normal(v.shape)
    x = rng.standard_normal((b, t, i)).astype(dtype)
    dz = rng.standard_normal((b, c)).astype(dtype)
    z, cache = model.forward(x, train=True)
    grads, dx = model.backward(cache, dz, input_grad=True)

    ref = _torch_student(torch, i, h, layers, c, pooling)
    ref = ref.to(torch.float64 if dtype == np.float64 else torch.float32)
    ref.load_state_dict({n: torch.from_numpy(v) for n, v in model.state_dict().items()})
    xt = tr.to_torch(x, requires_grad=True)
    zt = ref(xt)
    zt.backward(tr.to_torch(dz))

    assert z.dtype == dtype and set(grads) == set(model.params)
    assert rel_error(z, tr.to_numpy(zt)) < tol
    assert rel_error(dx, tr.to_numpy(xt.grad)) < tol
    for name, p in ref.named_parameters():
        assert grads[name].dtype == dtype
        assert rel_error(grads[name], tr.to_numpy(p.grad)) < tol, name


def test_state_dict_is_a_copy_and_round_trips_through_load_state_dict():
    a = StudentLSTM(3, 4, 2, 2, seed=1)
    b = StudentLSTM(3, 4, 2, 2, seed=2)
    state = a.state_dict()
    state["fc.bias"][:] = 7.0
    assert not np.any(a.params["fc.bias"] == 7.0)
    b.load_state_dict(state)
    state["fc.weight"][:] = 9.0  # the model keeps its own copy
    assert not np.any(b.params["fc.weight"] == 9.0)
    np.testing.assert_array_equal(b.params["fc.bias"], np.full(2, 7.0, np.float32))
    x = np.random.default_rng(0).standard_normal((2, 5, 3)).astype(np.float32)
    a.params["fc.bias"][:] = 7.0
    np.testing.assert_array_equal(a.forward(x)[0], b.forward(x)[0])


def test_load_state_dict_casts_float64_values_to_the_model_dtype():
    src = StudentLSTM(3, 4, 1, 2, seed=5, dtype=np.float64)
    dst = StudentLSTM(3, 4, 1, 2, seed=6, dtype=np.float32)
    dst.load_state_dict(src.state_dict())
    for name, v in dst.params.items():
        assert v.dtype == np.float32
        np.testing.assert_array_equal(v, src.params[name].astype(np.float32))


@pytest.mark.parametrize("mutate, arg", [
    (lambda s: s.pop("lstm.bias_hh_l1"), "lstm.bias_hh_l1"),
    (lambda s: s.update({"lstm.weight_ih_l2": np.ones((16, 4))}), "lstm.weight_ih_l2"),
    (lambda s: s.update({"fc.weight": np.ones((2, 5), np.float32)}), "fc.weight"),
    (lambda s: s.update({"fc.bias": np.ones(2, np.int64)}), "fc.bias"),
    (lambda s: s["lstm.weight_hh_l0"].__setitem__((0, 0), np.nan), "lstm.weight_hh_l0"),
])
def test_load_state_dict_rejects_a_mismatch_and_changes_nothing(mutate, arg):
    m = StudentLSTM(3, 4, 2, 2, seed=1)
    before = m.state_dict()
    bad = StudentLSTM(3, 4, 2, 2, seed=2).state_dict()
    mutate(bad)
    with pytest.raises(InputError, match=arg):
        m.load_state_dict(bad)
    for name, v in before.items():
        np.testing.assert_array_equal(m.params[name], v)


def test_evaluation_forward_keeps_no_cache_and_backward_says_why():
    m = StudentLSTM(3, 4, 1, 2)
    x = np.zeros((1, 2, 3), np.float32)
    z, cache = m.forward(x)
    assert cache is None and z.shape == (1, 2)
    np.testing.assert_array_equal(z, m.forward(x, train=True)[0])
    with pytest.raises(InputError, match="train=True"):
        m.backward(cache, np.ones((1, 2), np.float32))


def test_training_forward_invalidates_the_previous_cache_and_evaluation_does_not():
    model = StudentLSTM(3, 4, 2, 2, seed=1, dtype=np.float64)
    rng = np.random.default_rng(0)
    x1, x2 = rng.standard_normal((2, 5, 3)), rng.standard_normal((2, 5, 3))
    dz = rng.standard_normal((2, 2))
    z1, c1 = model.forward(x1, train=True)
    reference = StudentLSTM(3, 4, 2, 2, seed=1, dtype=np.float64)
    expected = reference.backward(reference.forward(x1, train=True)[1], dz)
    model.forward(x2, train=False)  # validation between forward and backward: harmless
    got = model.backward(c1, dz)
    for name in expected:
        np.testing.assert_array_equal(got[name], expected[name])
    model.forward(x2, train=True)
    with pytest.raises(InputError, match="stale"):
        model.backward(c1, dz)


def test_deepcopy_has_its_own_parameters_and_no_workspace():
    import copy

    model = StudentLSTM(3, 4, 1, 2, seed=1, dtype=np.float64)
    x = np.random.default_rng(0).standard_normal((2, 5, 3))
    _, cache = model.forward(x, train=True)
    twin = copy.deepcopy(model)
    assert twin._workspace is None and model._workspace is not None
    twin.params["fc.bias"] += 1.0
    assert not np.array_equal(twin.params["fc.bias"], model.params["fc.bias"])
    twin.forward(x, train=True)
    model.backward(cache, np.ones((2, 2)))   # the twin's forward did not touch model's cache


def test_silent_input_gives_finite_logits_and_gradients():
    m = StudentLSTM(4, 3, 2, 2)
    z, cache = m.forward(np.zeros((2, 50, 4), np.float32), train=True)
    grads = m.backward(cache, np.ones((2, 2), np.float32))
    assert np.all(np.isfinite(z)) and all(np.all(np.isfinite(g)) for g in grads.values())


@pytest.mark.parametrize("call, arg", [
    (lambda m: m.forward(np.ones((2, 5, 4), np.float32)), "x"),                 # features
    (lambda m: m.forward(np.ones((2, 3), np.float32)), "x"),                    # 2-D
    (lambda m: m.forward(np.ones((2, 5, 3))), "x"),                             # float64
    (lambda m: m.forward(np.ones((2, 5, 3), np.int16)), "x"),                   # integer
    (lambda m: m.forward(np.full((2, 5, 3), np.nan, np.float32)), "x"),         # NaN
    (lambda m: m.backward(m.forward(np.ones((2, 5, 3), np.float32), train=True)[1],
                          np.ones((2, 3), np.float32)), "dz"),                  # classes
])
def test_student_rejects_bad_input_naming_the_argument(call, arg):
    with pytest.raises(InputError, match=arg):
        call(StudentLSTM(3, 4, 1, 2))


@pytest.mark.parametrize("kwargs, arg", [
    (dict(pooling="attention"), "pooling"),
    (dict(hidden_size=0), "hidden_size"),
    (dict(num_layers=1.5), "num_layers"),
    (dict(dtype=np.float16), "dtype"),
    (dict(rng=123), "rng"),
    (dict(seed=-1), "seed"),
])
def test_student_rejects_bad_options_naming_them(kwargs, arg):
    options = dict(input_size=3, hidden_size=4, num_layers=1, num_classes=2) | kwargs
    with pytest.raises(InputError, match=arg):
        StudentLSTM(**options)
