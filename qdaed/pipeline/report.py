"""The pipeline's outputs: results.json, results.md (the paper-style table), scores.csv, plots.

scores.csv holds every test score at full precision (``repr`` of the float64), so every metric
in results.json can be recomputed from it exactly (the tests do).
"""

from __future__ import annotations

import csv
import io
import json

import numpy as np

from qdaed.io.atomic import atomic_write_bytes
from qdaed.metrics import METRICS, compute_metrics


def _json_float(v):
    """NaN (a metric undefined for a class, e.g. no positives in the test split) → null."""
    return None if not np.isfinite(v) else float(v)


def _aggregate(values):
    """One seed: the value; several: {"mean", "std" (sample, ddof=1), "per_seed"}.
    Undefined values (NaN) are written as null and left out of mean and std."""
    if len(values) == 1:
        return _json_float(values[0])
    arr = np.array(values, dtype=np.float64)
    arr = arr[np.isfinite(arr)]
    if arr.size < 2:
        return {"mean": _json_float(arr[0]) if arr.size else None, "std": None,
                "per_seed": [_json_float(v) for v in values]}
    arr = np.array(values, dtype=np.float64)
    return {"mean": float(np.mean(arr)), "std": float(np.std(arr, ddof=1)),
            "per_seed": [_json_float(v) for v in values]}


def build_results(cfg, versions, runs, test, log=None):
    """runs: list of (seed, Detector, test scores (N, C)). Returns the results.json dict."""
    classes = list(cfg["classes"])
    by_name = {}
    for seed, det, scores in runs:
        by_name.setdefault(det.info["name"], []).append((seed, det, scores))
    sizes = {name: rows[0][1].accounted_bytes() for name, rows in by_name.items()}
    teacher_bytes, student_bytes = sizes.get("teacher"), sizes.get("student")
    models = []
    for name, rows in by_name.items():
        det = rows[0][1]
        per_seed = [compute_metrics(scores, test.labels, classes) for _, _, scores in rows]
        entry = {
            "name": name,
            "schedule": det.info.get("schedule"),
            "bits": det.info.get("bits"),
            "params": det.num_parameters(),
            "bytes": sizes[name],
            "ratio_to_teacher": sizes[name] / teacher_bytes if teacher_bytes else None,
            "ratio_to_fp_student": sizes[name] / student_bytes if student_bytes else None,
        }
        for metric in METRICS:
            entry[metric] = {c: _aggregate([m[metric][c] for m in per_seed])
                             for c in [*classes, "mean"]}
        models.append(entry)
    return {"preset": cfg["preset"], "config": cfg, "versions": versions, "models": models}


def _mean_of(v):
    return v["mean"] if isinstance(v, dict) else v


def _fmt(v, pct=False):
    if isinstance(v, dict):
        if v["std"] is None:
            return _fmt(v["mean"], pct)
        return f"{_fmt(v['mean'], pct)} ± {_fmt(v['std'], pct)}"
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "n/a"
    return f"{100 * v:.1f}" if pct else f"{v:.3f}"


def results_markdown(results):
    """The paper-style table and the relative EER change of distilled against student."""
    classes = list(results["config"]["classes"])
    seeds = results["config"]["seeds"]
    lines = [f"# qdaed pipeline — preset `{results['preset']}`", "",
             f"Test-split metrics; {seeds} seed(s){' (mean ± std)' if seeds > 1 else ''}. "
             "EER and AUC per class; sizes per DESIGN 2.7 (float32 tensors at 4 bytes; "
             "k-bit tensors as packed codes + 8 bytes per group).", "",
             "| model | bits | params | size (bytes) | % of teacher | % of FP student | "
             + " | ".join(f"EER {c} (%)" for c in classes) + " | mean EER (%) | mean AUC |",
             "|---|---:|---:|---:|---:|---:|" + "---:|" * (len(classes) + 2)]
    for m in results["models"]:
        row = [m["name"], str(m["bits"] or 32), f"{m['params']:,}", f"{m['bytes']:,}",
               _fmt(m["ratio_to_teacher"], pct=True), _fmt(m["ratio_to_fp_student"], pct=True)]
        row += [_fmt(m["eer"][c], pct=True) for c in classes]
        row += [_fmt(m["eer"]["mean"], pct=True), _fmt(m["auc"]["mean"])]
        lines.append("| " + " | ".join(row) + " |")
    by = {m["name"]: m for m in results["models"]}
    if "student" in by and "distilled" in by:
        s, d = _mean_of(by["student"]["eer"]["mean"]), _mean_of(by["distilled"]["eer"]["mean"])
        if s > 0:
            lines += ["", f"Relative mean-EER change of `distilled` against `student`: "
                          f"{100 * (d - s) / s:+.1f}% (paper: −15%)."]
    for name in ("qd-4bit", "qd-2bit", "qd-8bit"):
        if name in by and by[name]["ratio_to_teacher"] is not None:
            m = by[name]
            lines.append(f"`{name}` is {100 * m['ratio_to_teacher']:.2f}% of the teacher and "
                         f"{100 * m['ratio_to_fp_student']:.1f}% of the FP student "
                         f"(paper: 2% and 12%).")
            break
    return "\n".join(lines) + "\n"


def scores_csv(runs, test, classes):
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["seed", "model", "clip", "class", "label", "score"])
    for seed, det, scores in runs:
        for i, clip in enumerate(test.clips):
            for j, c in enumerate(classes):
                w.writerow([seed, det.info["name"], clip, c, int(test.labels[i, j]),
                            repr(float(scores[i, j]))])
    return buf.getvalue()


def write_outputs(out, results, runs, test, log=None):
    classes = list(results["config"]["classes"])
    atomic_write_bytes(out / "results.json", (json.dumps(results, indent=2) + "\n").encode())
    atomic_write_bytes(out / "results.md", results_markdown(results).encode())
    atomic_write_bytes(out / "scores.csv", scores_csv(runs, test, classes).encode())
    try:
        from qdaed.pipeline.plots import write_plots
    except ImportError:  # matplotlib is an optional extra
        if log is not None:
            log("matplotlib not installed: no ROC/DET plots (pip install 'qdaed[plot]')")
        return
    write_plots(out, runs, test, classes)
