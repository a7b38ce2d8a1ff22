"""The state protocol (qdaed.models.state): StudentLSTM and ResNet load and save state the same
way, with the same errors."""

import numpy as np
import pytest

from qdaed.errors import InputError
from qdaed.models import ResNet, StudentLSTM

MODELS = [lambda: StudentLSTM(3, 4, 1, 2, seed=1), lambda: ResNet(18, width=4, seed=1)]


@pytest.mark.parametrize("make", MODELS, ids=["student", "resnet"])
def test_load_copies_in_place_and_state_dict_copies_out(make):
    m, other = make(), make()
    for v in other._state_arrays().values():
        v[...] = 0.25
    before = {n: id(a) for n, a in m._state_arrays().items()}
    state = other.state_dict()
    m.load_state_dict(state)
    assert {n: id(a) for n, a in m._state_arrays().items()} == before   # the same arrays
    for n, v in m.state_dict().items():
        np.testing.assert_array_equal(v, 0.25)
        v[...] = 1.0                                                    # a copy
    assert all((a == 0.25).all() for a in m._state_arrays().values())


@pytest.mark.parametrize("make", MODELS, ids=["student", "resnet"])
@pytest.mark.parametrize("edit, match", [
    (lambda s, n: s.pop(n), r"state: names do not match .*: missing 1 \("),
    (lambda s, n: s.__setitem__("nonsense.weight", np.zeros(1)), r"unexpected 1 \(nonsense"),
    (lambda s, n: s.__setitem__(n, np.zeros(7)), r"state\['.*'\]: expected shape"),
    (lambda s, n: s.__setitem__(n, s[n].astype(np.int64)), "expected floating-point values"),
    (lambda s, n: s.__setitem__(n, np.full(s[n].shape, 1e300)), "contains NaN or infinity"),
])
def test_the_same_errors_and_nothing_changed(make, edit, match):
    m = make()
    before = m.state_dict()
    state = make().state_dict()
    edit(state, next(iter(state)))
    with pytest.raises(InputError, match=match):
        m.load_state_dict(state)
    for n, v in m.state_dict().items():
        np.testing.assert_array_equal(v, before[n])
