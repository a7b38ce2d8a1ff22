import numpy as np
import pytest

from qdaed import gradcheck


def test_rel_error_is_zero_for_identical_and_positive_for_different():
    a = np.array([1.0, -2.0, 3.0])
    assert gradcheck.rel_error(a, a.copy()) == 0.0
    assert gradcheck.rel_error(a, a + np.array([0.0, 0.0, 0.3])) == pytest.approx(0.3 / 3.3)
    assert gradcheck.rel_error(np.zeros(3), np.zeros(3)) == 0.0


def test_numerical_gradient_matches_a_known_derivative():
    x = np.array([0.3, -1.2, 2.0])
    w = np.array([1.5, -0.5, 0.25])
    g = gradcheck.numerical_gradient(lambda: float(np.sum(w * np.sin(x))), x)
    np.testing.assert_allclose(g, w * np.cos(x), rtol=1e-8)


def test_numerical_gradient_refuses_float32():
    with pytest.raises(ValueError):
        gradcheck.numerical_gradient(lambda: 0.0, np.zeros(2, np.float32))


def test_every_registered_case_passes():
    rows = gradcheck.run(seed=1, repeats=1)
    assert rows, "no gradcheck cases registered"
    failed = [(op, err) for op, _, err, _, ok in rows if not ok]
    assert not failed


def test_cli_gradcheck_exits_zero_and_prints_table(capsys):
    from qdaed.cli import main

    assert main(["gradcheck", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    assert "max rel error" in out and "FAIL" not in out
