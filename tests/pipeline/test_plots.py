"""The pipeline's figures: every model, every seed, DET axes to 99%, curves and sizes."""

import json

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from qdaed.pipeline import plots  # noqa: E402
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


@pytest.fixture
def figures(monkeypatch):
    """The figures the module would save, {file name: matplotlib figure}, kept open."""
    saved = {}
    monkeypatch.setattr(plots, "_save", lambda fig, path: saved.__setitem__(path.name, fig))
    yield saved
    for fig in saved.values():
        plots.plt.close(fig)


def _write_history(out, name, seed, eers, best_epoch):
    folder = out / "models" / f"seed{seed}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.history.json").write_text(json.dumps(
        {"train_loss": [1.0 / (i + 1) for i in range(len(eers))], "val_mean_eer": eers,
         "best_epoch": best_epoch}))


def _kept_dots(fig):
    """(x, y) of every single-point 'o' marker of the validation panel."""
    ax = fig.axes[1]
    return sorted((float(ln.get_xdata()[0]), float(ln.get_ydata()[0])) for ln in ax.lines
                  if ln.get_marker() == "o" and len(ln.get_xdata()) == 1)


def test_training_plot_marks_the_kept_epoch_counting_from_one(tmp_path, figures):
    # best_epoch counts from 0: 0 is the first epoch (plotted at 1), 2 the third (at 3)
    _write_history(tmp_path, "student", 0, [0.10, 0.20, 0.30, 0.40], best_epoch=0)
    _write_history(tmp_path, "teacher", 0, [0.50, 0.40, 0.05, 0.30], best_epoch=2)
    _write_history(tmp_path, "distilled", 0, [0.50, 0.40], best_epoch=-1)   # none kept
    assert plots.write_training(tmp_path)
    assert _kept_dots(figures["training.png"]) == [(1.0, 10.0), (3.0, 5.0)]


def test_training_plot_epoch_ticks_are_integers(tmp_path, figures):
    _write_history(tmp_path, "student", 0, [0.3, 0.2, 0.25], best_epoch=1)
    plots.write_training(tmp_path)
    fig = figures["training.png"]
    fig.canvas.draw()
    for ax in fig.axes:
        lo, hi = ax.get_xlim()
        ticks = [t for t in ax.get_xticks() if lo <= t <= hi]
        assert ticks and all(float(t).is_integer() for t in ticks), ticks


def test_kept_epoch_of_histories_without_a_kept_epoch():
    assert plots.kept_epoch({"val_mean_eer": [0.2], "best_epoch": -1}) is None
    assert plots.kept_epoch({"val_mean_eer": [0.2], "best_epoch": 1}) is None
    assert plots.kept_epoch({"val_mean_eer": [0.2]}) is None
    assert plots.kept_epoch({"val_mean_eer": [0.25], "best_epoch": 0}) == (1, 25.0)


def _results(per_seed):
    """A results.json stand-in: three models of one size, a teacher, a student and a
    distilled student of one size, with the given EERs per seed for every model."""
    models = [("teacher", None, 40000), ("student", None, 4000), ("distilled", None, 4000),
              ("qd-4bit", 4, 600), ("ptq-4bit", 4, 600), ("qat-4bit", 4, 600)]
    eer = (lambda i: {"mean": {"mean": None, "per_seed": [v + i / 100 for v in per_seed]}}
           if len(per_seed) > 1 else {"mean": per_seed[0] + i / 100})
    return {"config": {}, "models": [{"name": n, "bits": b, "bytes": s, "eer": eer(i)}
                                     for i, (n, b, s) in enumerate(models)]}


def test_size_plot_one_seed_promises_no_interval(tmp_path, figures):
    plots.write_size(tmp_path, _results([0.2]))
    fig = figures["size.png"]
    title = fig.axes[0].get_title()
    assert "one seed" in title and "interval" in title and "t-interval" not in title
    assert all(p[4] == 0.0 for p in plots.size_points(_results([0.2])))


def test_size_plot_several_seeds_draws_intervals(tmp_path, figures):
    res = _results([0.2, 0.3, 0.25])
    plots.write_size(tmp_path, res)
    assert "mean over 3 seeds" in figures["size.png"].axes[0].get_title()
    half = plots.size_points(res)[0][4]
    # 95% t-interval of (0.2, 0.3, 0.25): t(0.975, 2) = 4.3027 × s / sqrt(3), s = 0.05
    assert half == pytest.approx(100 * 4.302653 * 0.05 / np.sqrt(3), rel=1e-5)


def test_size_plot_names_every_model_once_and_spreads_equal_sizes(tmp_path, figures):
    res = _results([0.2])
    plots.write_size(tmp_path, res)
    fig = figures["size.png"]
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend == [m["name"] for m in res["models"]]
    assert not [t for t in fig.axes[0].texts]          # no labels written beside points
    xs = [p[2] for p in plots.size_points(res)]
    assert len(set(xs)) == len(xs)                     # no two markers on one x
    assert xs[3] == pytest.approx(600 / 1.04) and xs[4] == 600 and \
        xs[5] == pytest.approx(600 * 1.04)
    assert xs[1] == pytest.approx(4000 * 1.04 ** -0.5) and \
        xs[2] == pytest.approx(4000 * 1.04 ** 0.5)
    # the legend sits outside the axes: no entry covers a marker
    fig.canvas.draw()
    box = fig.axes[0].get_legend().get_window_extent()
    assert box.x0 >= fig.axes[0].get_window_extent().x1
