"""Independent metric references built on scikit-learn and SciPy (skip without them)."""

import numpy as np


def sklearn_eer(s, y):
    """EER computed independently: scikit-learn's ROC (all distinct thresholds), the curve
    parametrised by point index, the root of FPR − FNR found by Brent's method."""
    from scipy.optimize import brentq
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(y, s, drop_intermediate=False)
    idx = np.arange(fpr.size, dtype=float)

    def gap(u):
        return np.interp(u, idx, fpr) - (1.0 - np.interp(u, idx, tpr))

    u = brentq(gap, 0.0, fpr.size - 1.0, xtol=1e-14)
    return float(np.interp(u, idx, fpr))
