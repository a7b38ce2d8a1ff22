"""The pipeline's figures (the optional matplotlib extra: ``pip install ".[plot]"``).

roc.png, det.png  one panel per class, one curve per model (every model, ptq and qat
                  included): the median over seeds of the curves interpolated on a common
                  grid, the band between the lowest and highest seed, the mean EER over seeds
                  in the legend. DET: false-negative against false-positive rate on
                  normal-deviate axes (Martin et al. 1997) from 0.1% to 99%, where the EER is
                  the crossing with the diagonal.
training.png      training loss and validation mean EER per epoch (1, 2, ...) from the history
                  files (models/seed*/NAME.history.json, whose best_epoch counts from 0), one
                  line per model and seed, a dot at the epoch whose weights were kept.
size.png          the paper's compression story: mean EER against accounted bytes on a log
                  scale, every model and bit width, named in the legend; with several seeds
                  the mean over seeds with a 95% t-interval, with one seed that seed's value
                  and no bar. Models of one size are drawn a few percent apart.
"""

from __future__ import annotations

import io
import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
from scipy.stats import norm  # noqa: E402

from qdaed.io.atomic import atomic_write_bytes  # noqa: E402
from qdaed.io.strictjson import read_json_file
from qdaed.metrics import compute_metrics, roc_curve  # noqa: E402
from qdaed.stats import t_half_width  # noqa: E402

FAMILY_COLOURS = {"teacher": "black", "student": "tab:blue", "distilled": "tab:green",
                  "qd": "tab:red", "ptq": "tab:orange", "qat": "tab:purple"}
BIT_STYLES = {8: "-", 4: "--", 2: ":"}
GRID = np.linspace(0.0, 1.0, 201)
DET_GRID = norm.cdf(np.linspace(norm.ppf(0.001), norm.ppf(0.99), 200))
DET_TICKS = np.array([0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 0.9, 0.95, 0.99])


def _save(fig, path):
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def style(name):
    """(colour, line style) of a model name: colour by schedule, style by bit width."""
    m = re.fullmatch(r"(qd|ptq|qat)-(\d+)bit", name)
    if m:
        return FAMILY_COLOURS[m.group(1)], BIT_STYLES.get(int(m.group(2)), "-.")
    return FAMILY_COLOURS.get(name.split("-")[0], "grey"), "-"


def roc_on_grid(scores, labels, grid=GRID):
    """TPR at each FPR of ``grid`` of the piecewise-linear ROC (the upper envelope where
    the FPR repeats)."""
    _, fpr, tpr = roc_curve(scores, labels)
    return np.interp(grid, fpr, tpr)


def by_model(runs):
    """{name: [(seed, detector, scores)]} in run order."""
    out = {}
    for seed, det, scores in runs:
        out.setdefault(det.info["name"], []).append((seed, det, scores))
    return out


def write_roc_det(out, runs, test, classes):
    models = by_model(runs)
    eers = {n: [compute_metrics(s, test.labels, classes)["eer"] for _, _, s in rows]
            for n, rows in models.items()}
    for kind in ("roc", "det"):
        fig, axes = plt.subplots(1, len(classes), figsize=(5.0 * len(classes), 4.8),
                                 squeeze=False)
        for ax, (j, cls) in zip(axes[0], enumerate(classes)):
            y = test.labels[:, j]
            if y.min() == y.max():
                ax.set_title(f"{cls}: undefined (one label value)")
                continue
            for name, rows in models.items():
                colour, ls = style(name)
                grid = GRID if kind == "roc" else DET_GRID
                tpr = np.array([roc_on_grid(s[:, j], y, grid) for _, _, s in rows])
                med, lo, hi = np.median(tpr, 0), tpr.min(0), tpr.max(0)
                eer = np.nanmean([e[cls] for e in eers[name]])
                label = f"{name} (EER {100 * eer:.1f}%)"
                if kind == "roc":
                    ax.plot(grid, med, ls, color=colour, lw=1.2, label=label)
                    if len(rows) > 1:
                        # where= given: matplotlib 3.6.0 fails without it (a 0-d mask)
                        ax.fill_between(grid, lo, hi, where=np.ones(grid.size, bool),
                                        color=colour, alpha=0.12, lw=0)
                else:
                    eps = 1e-4
                    px = norm.ppf(grid)
                    fnr = [np.clip(1 - v, eps, 1 - eps) for v in (med, hi, lo)]
                    ax.plot(px, norm.ppf(fnr[0]), ls, color=colour, lw=1.2, label=label)
                    if len(rows) > 1:
                        ax.fill_between(px, norm.ppf(fnr[1]), norm.ppf(fnr[2]),
                                        where=np.ones(px.size, bool), color=colour,
                                        alpha=0.12, lw=0)
            if kind == "roc":
                ax.plot([0, 1], [1, 0], ":", color="grey", lw=0.8)
                ax.set_xlabel("false-positive rate")
                ax.set_ylabel("true-positive rate")
            else:
                ticks = norm.ppf(DET_TICKS)
                labels = [f"{100 * t:g}" for t in DET_TICKS]
                ax.set_xticks(ticks, labels, fontsize=7)
                ax.set_yticks(ticks, labels, fontsize=7)
                lim = norm.ppf([0.001, 0.99])
                ax.set_xlim(*lim)
                ax.set_ylim(*lim)
                ax.plot(lim, lim, ":", color="grey", lw=0.8)
                ax.set_xlabel("false-positive rate (%)")
                ax.set_ylabel("false-negative rate (%)")
            ax.set_title(cls)
            ax.legend(fontsize=6)
        seeds = sorted({seed for seed, _, _ in runs})
        fig.suptitle(f"{kind.upper()} on the test split: median over {len(seeds)} seed(s), "
                     f"band = lowest to highest seed")
        fig.tight_layout()
        _save(fig, out / f"{kind}.png")


def read_histories(out):
    """{name: [(seed, history dict)]} from models/seed*/NAME.history.json."""
    found = {}
    for path in sorted((out / "models").glob("seed*/*.history.json")):
        seed = int(path.parent.name[4:])
        name = path.name[:-len(".history.json")]
        found.setdefault(name, []).append((seed, read_json_file(path, allow_nan=True)))
    return found


def kept_epoch(history):
    """(epoch as plotted, counting from 1; validation mean EER in %) of the epoch whose
    weights were kept, or None. A history's ``best_epoch`` counts from 0 (-1: none kept)."""
    be = history.get("best_epoch")
    eers = history.get("val_mean_eer", [])
    if be is None or not 0 <= int(be) < len(eers) or eers[int(be)] is None:
        return None
    return int(be) + 1, 100 * float(eers[int(be)])


def write_training(out):
    hist = read_histories(out)
    if not hist:
        return False
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.2))
    for name, rows in hist.items():
        colour, ls = style(name)
        for k, (seed, h) in enumerate(rows):
            ep = np.arange(1, len(h["train_loss"]) + 1)
            lab = name if k == 0 else None
            a.plot(ep, h["train_loss"], ls, color=colour, lw=0.9, alpha=0.8, label=lab)
            b.plot(ep, 100 * np.asarray(h["val_mean_eer"], float), ls, color=colour, lw=0.9,
                   alpha=0.8, label=lab)
            kept = kept_epoch(h)
            if kept is not None:
                b.plot([kept[0]], [kept[1]], "o", color=colour, ms=3)
    for ax in (a, b):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    a.set_xlabel("epoch")
    a.set_ylabel("training loss")
    a.set_yscale("log")
    b.set_xlabel("epoch")
    b.set_ylabel("validation mean EER (%)")
    b.legend(fontsize=6, ncol=2)
    fig.suptitle("Training curves (one line per model and seed; dots: the epoch kept)")
    fig.tight_layout()
    _save(fig, out / "training.png")
    return True


def size_points(results):
    """[(name, bits, x, mean EER %, half-width %, seeds)] of size.png: x the accounted bytes,
    models of one size spread 4% apart (in model order, centred on the true size); the mean
    over the seeds' EERs and the 95% t half-width (0 with one seed)."""
    sizes = [m["bytes"] for m in results["models"]]
    points = []
    for i, m in enumerate(results["models"]):
        same = [j for j, b in enumerate(sizes) if b == m["bytes"]]
        k = same.index(i) - (len(same) - 1) / 2
        v = m["eer"]["mean"]
        if isinstance(v, dict):
            vals = np.array([x for x in v["per_seed"] if x is not None], float)
        else:
            vals = np.array([] if v is None else [v], float)
        mean = float(vals.mean()) if vals.size else np.nan
        half = t_half_width(vals, 0.95) if vals.size > 1 else 0.0
        points.append((m["name"], m["bits"], m["bytes"] * 1.04 ** k, 100 * mean, 100 * half,
                       int(vals.size)))
    return points


def write_size(out, results):
    fig, ax = plt.subplots(figsize=(8.5, 5.0))
    points = size_points(results)
    for name, bits, x, mean, half, _ in points:
        colour, _ = style(name)
        marker = {8: "s", 4: "^", 2: "v"}.get(bits, "o")
        ax.errorbar([x], [mean], yerr=[[half], [half]] if half > 0 else None, fmt=marker,
                    color=colour, capsize=3, ms=6, label=name)
    ax.set_xscale("log")
    ax.set_xlabel("accounted size (bytes a device stores, log scale; docs/method/size.md)")
    ax.set_ylabel("mean EER over classes (%)")
    seeds = max((p[5] for p in points), default=1)
    what = (f"mean over {seeds} seeds, bars: 95% t-interval over seeds" if seeds > 1
            else "one seed (no interval)")
    ax.set_title(f"Test mean EER against model size: {what}\n"
                 "(models of one size drawn 4% apart)", fontsize=10)
    ax.grid(True, which="both", lw=0.3, alpha=0.5)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    fig.tight_layout()
    _save(fig, out / "size.png")


def write_plots(out, runs, test, classes, results=None):
    """Every figure of the module docstring (size.png needs ``results``)."""
    write_roc_det(out, runs, test, classes)
    write_training(out)
    if results is not None:
        write_size(out, results)
