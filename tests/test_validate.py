"""The argument checks every public layer calls: clear InputErrors naming the argument."""

import numpy as np
import pytest

from qdaed.errors import InputError
from qdaed.validate import check_array, check_choice, check_float, check_int, check_same_dtype


def test_check_int_accepts_integers_in_range_and_refuses_the_rest():
    assert check_int("n", np.int64(3), lo=0, hi=3) == 3 and type(check_int("n", 3)) is int
    for bad, match in [(True, "an integer"), (2.0, "an integer"), ("3", "an integer"),
                       (-1, r"\[0, inf\]"), (4, r"\[0, 3\]")]:
        with pytest.raises(InputError, match=f"n: expected {match}" if "[" not in match
                           else match):
            check_int("n", bad, lo=0, hi=3 if bad == 4 else None)


def test_check_float_refuses_non_finite_and_out_of_range():
    assert check_float("t", "2.5") == 2.5
    for bad in (float("nan"), float("inf"), None, "x"):
        with pytest.raises(InputError, match="t: expected"):
            check_float("t", bad)
    with pytest.raises(InputError, match="> 0"):
        check_float("t", 0.0, lo=0.0, lo_open=True)
    with pytest.raises(InputError, match="<= 1"):
        check_float("t", 1.5, hi=1.0)


def test_check_choice_lists_the_choices():
    assert check_choice("mode", "a", ("a", "b")) == "a"
    with pytest.raises(InputError, match="mode: expected one of 'a', 'b', got 'c'"):
        check_choice("mode", "c", ("a", "b"))


def test_check_array_refuses_what_would_be_cast_silently():
    x = np.ones((2, 3), np.float32)
    assert check_array("x", x, ndim=2, shape=(None, 3)) is not None
    cases = [(np.ones((2, 3), np.int64), {}, "float32 or float64"),
             (x, {"dtype": np.float64}, "expected dtype float64"),
             (x, {"ndim": 3}, "3 dimensions"), (x, {"shape": (2, 4)}, r"\(2, 4\)"),
             (np.ones((0, 3)), {}, "non-empty"), (np.array([1.0, np.nan]), {}, "NaN"),
             ([1.0], {}, "numpy array")]
    for value, kw, match in cases:
        with pytest.raises(InputError, match=match):
            check_array("x", value, **kw)
    assert check_array("x", np.array([np.inf]), finite=False)[0] == np.inf


def test_check_same_dtype():
    a, b = np.ones(2, np.float32), np.ones(2, np.float64)
    assert check_same_dtype(a=a, b=None) == np.float32
    with pytest.raises(InputError, match="share one dtype"):
        check_same_dtype(a=a, b=b)
