"""The pipeline's figures: every model, every seed, DET axes to 99%, curves and sizes."""

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from qdaed.pipeline.plots import DET_GRID, read_histories, roc_on_grid, style  # noqa: E402


def test_tiny_run_writes_every_figure(tiny_run):
    out, results = tiny_run
    for name in ("roc.png", "det.png", "training.png", "size.png"):
        assert (out / name).stat().st_size > 10_000, name
    hist = read_histories(out)
    assert {"teacher", "student", "distilled"} <= set(hist)
    assert "ptq-4bit" not in hist      # post-training quantization does not train


def test_det_grid_reaches_99_percent_and_roc_interpolation():
    assert DET_GRID[0] == pytest.approx(0.001) and DET_GRID[-1] == pytest.approx(0.99)
    s = np.array([0.9, 0.8, 0.3, 0.1])
    y = np.array([1, 0, 1, 0])
    # ROC points (0,0) (0,.5) (.5,.5) (.5,1) (1,1)
    np.testing.assert_allclose(roc_on_grid(s, y, np.array([0.0, 0.25, 0.75, 1.0])),
                               [0.5, 0.5, 1.0, 1.0])


def test_styles_distinguish_schedule_and_bits():
    assert style("qd-4bit") != style("ptq-4bit") != style("qd-2bit")
    assert style("teacher")[0] == "black"
