"""ROC and DET plots of the pipeline's test scores (needs the optional matplotlib extra).

One panel per class; one curve per model of the first seed. The DET plot draws the
false-negative rate against the false-positive rate on normal-deviate axes (Martin et al.
1997), where the EER is the crossing with the diagonal.
"""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from scipy.stats import norm  # noqa: E402

from qdaed.io.atomic import atomic_write_bytes  # noqa: E402
from qdaed.metrics import roc_curve  # noqa: E402

SHOWN = ("teacher", "student", "distilled", "qd-8bit", "qd-4bit", "qd-2bit")


def _save(fig, path):
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def write_plots(out, runs, test, classes):
    first = runs[0][0]
    curves = [(det.info["name"], scores) for seed, det, scores in runs
              if seed == first and det.info["name"] in SHOWN]
    for kind in ("roc", "det"):
        fig, axes = plt.subplots(1, len(classes), figsize=(4.2 * len(classes), 4.0),
                                 squeeze=False)
        for ax, (j, cls) in zip(axes[0], enumerate(classes)):
            y = test.labels[:, j]
            if y.min() == y.max():
                ax.set_title(f"{cls}: undefined (one label value)")
                continue
            for name, scores in curves:
                _, fpr, tpr = roc_curve(scores[:, j], y)
                if kind == "roc":
                    ax.plot(fpr, tpr, label=name)
                else:
                    eps = 1e-4
                    ax.plot(norm.ppf(np.clip(fpr, eps, 1 - eps)),
                            norm.ppf(np.clip(1 - tpr, eps, 1 - eps)), label=name)
            if kind == "roc":
                ax.plot([0, 1], [1, 0], ":", color="grey", lw=0.8)
                ax.set_xlabel("false-positive rate")
                ax.set_ylabel("true-positive rate")
            else:
                ticks = np.array([0.01, 0.02, 0.05, 0.1, 0.2, 0.4])
                ax.set_xticks(norm.ppf(ticks), [f"{100 * t:g}" for t in ticks])
                ax.set_yticks(norm.ppf(ticks), [f"{100 * t:g}" for t in ticks])
                lim = norm.ppf([0.005, 0.6])
                ax.set_xlim(*lim)
                ax.set_ylim(*lim)
                ax.plot(lim, lim, ":", color="grey", lw=0.8)
                ax.set_xlabel("false-positive rate (%)")
                ax.set_ylabel("false-negative rate (%)")
            ax.set_title(cls)
            ax.legend(fontsize=7)
        fig.suptitle(f"{kind.upper()} on the test split (seed {first})")
        fig.tight_layout()
        _save(fig, out / f"{kind}.png")
