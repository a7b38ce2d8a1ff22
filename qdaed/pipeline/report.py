"""The pipeline's outputs: results.json, results.md (the paper-style table), scores.csv, plots.

scores.csv holds every test score at full precision (``repr`` of the float64), so every metric
in results.json can be recomputed from it exactly (the tests do).

results.json's "comparisons" pair two models by seed (the pipeline gives one seed the same split,
batch order and initialisation for every model) on the mean EER, as model minus reference
(negative = the model's EER is lower = better): distilled vs student, and for each k
qd-{k}bit vs distilled, ptq-{k}bit vs qd-{k}bit, qat-{k}bit vs qd-{k}bit (qdaed.stats).
"""

from __future__ import annotations

import csv
import io
import json
import re

import numpy as np

from qdaed.io.atomic import atomic_write_bytes
from qdaed.metrics import DECISION_METRICS, METRICS, compute_metrics, decision_metrics
from qdaed.pipeline.eventeval import model_event_metrics
from qdaed.stats import (bootstrap_mean_eer_difference, group_bootstrap_mean_eer_difference,
                         paired_comparison, paired_differences)

# Fixed, so results.json is byte-identical between runs of one config.
BOOTSTRAP_RESAMPLES = 1000
BOOTSTRAP_SEED = 0
CONFIDENCE = 0.95


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


def build_results(classes, config, versions, runs, test, log=None, events=None, groups=None):
    """classes: the class names; config: the run's configuration as JSON (RunConfig.to_dict());
    runs: list of (seed, Detector, test scores (N, C)); events: (recordings, description) of
    :mod:`qdaed.pipeline.eventeval`, or None; groups: the source recording of each test clip
    (manifest runs), or None. Returns the results.json dict."""
    classes = list(classes)
    by_name = {}
    for seed, det, scores in runs:
        by_name.setdefault(det.info["name"], []).append((seed, det, scores))
    sizes = {name: rows[0][1].accounted_bytes() for name, rows in by_name.items()}
    teacher_bytes, student_bytes = sizes.get("teacher"), sizes.get("student")
    models = []
    metrics_of = {}
    recs = events[0] if events else []
    for name, rows in by_name.items():
        det = rows[0][1]
        per_seed = [{**compute_metrics(scores, test.labels, classes),
                     **(decision_metrics(scores, test.labels, d.thresholds, classes)
                        if hasattr(d, "thresholds") else {})}
                    for _, d, scores in rows]
        metrics_of[name] = per_seed
        entry = {
            "name": name,
            "schedule": det.info.get("schedule"),
            "bits": det.info.get("bits"),
            "params": det.num_parameters(),
            "bytes": sizes[name],
            "ratio_to_teacher": sizes[name] / teacher_bytes if teacher_bytes else None,
            "ratio_to_fp_student": sizes[name] / student_bytes if student_bytes else None,
        }
        for metric in (*METRICS, *(m for m in DECISION_METRICS if m in per_seed[0])):
            entry[metric] = {c: _aggregate([m[metric][c] for m in per_seed])
                             for c in [*classes, "mean"]}
        if recs:
            ev = [model_event_metrics(d, recs) for _, d, _ in rows]
            entry["events"] = {f"{kind}_{stat}": _aggregate(
                [_nan(e[kind]["overall"]["f1"] if stat == "f1" else e[kind]["macro_f1"])
                 for e in ev]) for kind in ("segment", "event") for stat in ("f1", "macro_f1")}
            for name in ("psds1", "psds2"):          # with sed_scores_eval installed
                if all(name in e for e in ev):
                    entry["events"][name] = _aggregate([e[name] for e in ev])
        models.append(entry)
    comparisons = _comparisons(by_name, metrics_of, test.labels, log, groups)
    out = {"preset": config.get("preset"), "config": config, "versions": versions,
           "models": models, "comparisons": comparisons}
    if events:
        out["event_evaluation"] = events[1]
    return out


def _nan(v):
    return float("nan") if v is None else v


def comparison_pairs(names):
    """(model, reference) pairs of the models present, in report order."""
    bits = []
    for name in names:
        m = re.fullmatch(r"(?:qd|ptq|qat)-(\d+)bit", name)
        if m and int(m.group(1)) not in bits:
            bits.append(int(m.group(1)))
    pairs = [("distilled", "student")]
    extra = [n for n in names if n.startswith("distilled-")]   # the ablation's other recipes
    pairs += [(n, "student") for n in extra] + [("distilled", n) for n in extra]
    for k in bits:
        pairs += [(f"qd-{k}bit", "distilled"), (f"ptq-{k}bit", f"qd-{k}bit"),
                  (f"qat-{k}bit", f"qd-{k}bit")]
    return [(m, r) for m, r in pairs if m in names and r in names]


def _comparisons(by_name, metrics_of, labels, log, groups=None):
    """The "comparisons" list of results.json (module docstring); [] when the test labels
    leave the mean EER undefined (no class with both positives and negatives).

    Which interval carries the verdict ("significant"): on synthetic data, the t-interval
    over seeds (the test split is large and fresh from the generator; the seeds are the
    variance that matters). With ``groups`` (real recordings, whose test split holds a few
    source recordings per class), both the t-interval over seeds (training variance) and the
    group bootstrap — source recordings resampled, Δ averaged over seeds (test-sampling
    variance) — must exclude 0; the clip bootstrap is reported but treats clips of one
    recording as independent, which they are not."""
    pos = np.asarray(labels).sum(axis=0)
    if not np.any((pos > 0) & (pos < len(labels))):
        if log is not None:
            log("statistics: no test class has both positives and negatives; no comparisons")
        return []
    out = []
    for model, ref in comparison_pairs(list(by_name)):
        eer_m = {seed: m["eer"]["mean"] for (seed, _, _), m in zip(by_name[model],
                                                                   metrics_of[model])}
        eer_r = {seed: m["eer"]["mean"] for (seed, _, _), m in zip(by_name[ref],
                                                                   metrics_of[ref])}
        scores_m = {seed: s for seed, _, s in by_name[model]}
        scores_r = {seed: s for seed, _, s in by_name[ref]}
        seeds = sorted(set(eer_m) & set(eer_r))
        a, b = [eer_r[s] for s in seeds], [eer_m[s] for s in seeds]
        entry = {"model": model, "reference": ref, "metric": "mean EER",
                 "difference": "model minus reference", "seeds": seeds}
        if len(seeds) >= 2:
            pc = paired_comparison(a, b, CONFIDENCE)
            entry.update(per_seed=pc["per_seed"], mean=pc["mean"], std=pc["std"],
                         ci95=[pc["ci_low"], pc["ci_high"]], p_value=pc["p_value"],
                         relative=pc["relative"])
        else:
            d = paired_differences(a, b)
            entry.update(per_seed=[float(v) for v in d], mean=float(d.mean()), std=None,
                         ci95=None, p_value=None,
                         relative=(float(d.mean()) / a[0]) if a[0] != 0 else None)
        boot = bootstrap_mean_eer_difference([scores_r[s] for s in seeds],
                                             [scores_m[s] for s in seeds], labels,
                                             n_boot=BOOTSTRAP_RESAMPLES, seed=BOOTSTRAP_SEED,
                                             confidence=CONFIDENCE)
        entry.update(
            bootstrap_ci95=(None if boot["ci_low"] is None
                            else [boot["ci_low"], boot["ci_high"]]),
            bootstrap_resamples=boot["n_boot"], bootstrap_seed=boot["seed"],
            bootstrap_undefined_fraction=boot["undefined_fraction"],
            significant=(None if entry["ci95"] is None
                         else not (entry["ci95"][0] <= 0.0 <= entry["ci95"][1])),
            verdict_rule="t-interval over seeds excludes 0")
        if groups is not None:
            gb = group_bootstrap_mean_eer_difference(
                [scores_r[s] for s in seeds], [scores_m[s] for s in seeds], labels, groups,
                n_boot=BOOTSTRAP_RESAMPLES, seed=BOOTSTRAP_SEED, confidence=CONFIDENCE)
            gci = None if gb["ci_low"] is None else [gb["ci_low"], gb["ci_high"]]
            entry.update(group_bootstrap_ci95=gci, group_bootstrap_groups=gb["groups"],
                         group_bootstrap_undefined_fraction=gb["undefined_fraction"],
                         verdict_rule="t-interval over seeds and group bootstrap over source "
                                      "recordings both exclude 0")
            if entry["significant"] is not None:
                entry["significant"] = bool(entry["significant"] and gci is not None
                                            and not (gci[0] <= 0.0 <= gci[1]))
        out.append(entry)
    return out


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


def _pts(v):
    """An EER difference in percentage points, signed."""
    return "n/a" if v is None else f"{100 * v:+.1f}"


def _interval(ci):
    return "—" if ci is None else f"[{_pts(ci[0])}, {_pts(ci[1])}]"


def _p(p):
    if p is None:
        return "—"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def _verdict(c):
    if c["significant"] is None:
        return "1 seed: no interval"
    return "significant" if c["significant"] else "not significant"


def _comparison_lines(comparisons):
    """The "Paired comparisons" table of results.md."""
    if not comparisons:
        return []
    c0 = comparisons[0]
    grouped = "group_bootstrap_ci95" in c0
    lines = ["", "## Paired comparisons", "",
             "Δ = model − reference in mean EER (percentage points; negative = lower EER = "
             "better), paired by seed (same split, batch order and initialisation). 95% "
             "t-interval over seeds and two-sided paired t-test p; bootstrap: percentile "
             f"interval over {c0['bootstrap_resamples']} resamples of the test clips (seed "
             f"{c0['bootstrap_seed']}), Δ averaged over seeds."]
    if grouped:
        lines[-1] += (f" Group bootstrap: the same, resampling the "
                      f"{c0['group_bootstrap_groups']} source recordings of the test split "
                      f"instead of clips (clips of one recording are not independent). "
                      f"**The verdict needs both the t-interval over seeds (training "
                      f"variance) and the group bootstrap (test-sampling variance) to exclude "
                      f"0**; the clip bootstrap is shown for comparison only.")
    else:
        lines[-1] += " \"not significant\": the t-interval contains 0."
    if c0["bootstrap_undefined_fraction"] > 0:
        lines.append(f"{100 * c0['bootstrap_undefined_fraction']:.1f}% of the bootstrap "
                     "resamples left a class without positives or negatives and were skipped.")
    if grouped and c0["group_bootstrap_undefined_fraction"] > 0:
        lines.append(f"{100 * c0['group_bootstrap_undefined_fraction']:.1f}% of the group "
                     "bootstrap's resamples left a class without positives or negatives and "
                     "were skipped.")
    lines += ["", "| model | reference | mean Δ EER (points) | 95% t-interval | p | "
                  "bootstrap 95% interval | " + ("group bootstrap 95% | " if grouped else "")
              + "relative change | verdict |",
              "|---|---|---:|---:|---:|---:|" + ("---:|" if grouped else "") + "---:|---|"]
    for c in comparisons:
        rel = "n/a" if c["relative"] is None else f"{100 * c['relative']:+.1f}%"
        group = f"{_interval(c['group_bootstrap_ci95'])} | " if grouped else ""
        lines.append(f"| {c['model']} | {c['reference']} | {_pts(c['mean'])} | "
                     f"{_interval(c['ci95'])} | {_p(c['p_value'])} | "
                     f"{_interval(c['bootstrap_ci95'])} | {group}{rel} | {_verdict(c)} |")
    return lines


def results_markdown(results):
    """The paper-style table, the relative EER change of distilled against student and the
    paired comparisons (results["comparisons"]) with their intervals and verdicts."""
    classes = list(results["config"]["classes"])
    seeds = results["config"]["seeds"]
    lines = [f"# qdaed pipeline — preset `{results['preset']}`", "",
             f"Test-split metrics; {seeds} seed(s){' (mean ± std)' if seeds > 1 else ''}. "
             "EER and AUC per class; sizes per docs/method/size.md (float32 tensors at 4 bytes; "
             "k-bit tensors as packed codes + 8 bytes per group)."]
    data = results["config"].get("data", {})
    if data.get("source", "synth") == "synth" and data.get("corpus") == "v2":
        noise = data.get("label_noise") or {}
        missing = noise.get("missing", 0)
        rates = list(missing) if isinstance(missing, (list, tuple)) else [missing]
        if any(rates) or noise.get("false_positive", 0):
            lines += ["", f"Training and validation used the corpus's noisy labels (missing "
                          f"positives {missing}, false positives "
                          f"{noise.get('false_positive', 0)}); test metrics are computed "
                          f"against the clean ground truth."]
        else:
            lines += ["", "Corpus v2 with its label noise switched off: training, validation "
                          "and test labels are the clean ground truth."]
    lines += ["", "| model | bits | params | size (bytes) | % of teacher | % of FP student | "
             + " | ".join(f"EER {c} (%)" for c in classes) + " | mean EER (%) | mean AUC |",
             "|---|---:|---:|---:|---:|---:|" + "---:|" * (len(classes) + 2)]
    for m in results["models"]:
        row = [m["name"], str(m["bits"] or 32), f"{m['params']:,}", f"{m['bytes']:,}",
               _fmt(m["ratio_to_teacher"], pct=True), _fmt(m["ratio_to_fp_student"], pct=True)]
        row += [_fmt(m["eer"][c], pct=True) for c in classes]
        row += [_fmt(m["eer"]["mean"], pct=True), _fmt(m["auc"]["mean"])]
        lines.append("| " + " | ".join(row) + " |")
    comparisons = results.get("comparisons", [])
    by = {m["name"]: m for m in results["models"]}
    if "student" in by and "distilled" in by:
        s, d = _mean_of(by["student"]["eer"]["mean"]), _mean_of(by["distilled"]["eer"]["mean"])
        if s is not None and d is not None and s > 0:
            line = (f"Relative mean-EER change of `distilled` against `student`: "
                    f"{100 * (d - s) / s:+.1f}% (paper: −15%)")
            c = next((c for c in comparisons
                      if (c["model"], c["reference"]) == ("distilled", "student")), None)
            if c is not None and c["ci95"] is not None and "group_bootstrap_ci95" in c:
                line += (f"; Δ {_pts(c['mean'])} points, 95% t-interval {_interval(c['ci95'])}, "
                         f"group bootstrap {_interval(c['group_bootstrap_ci95'])}: "
                         f"{_verdict(c)}")
            elif c is not None and c["ci95"] is not None:
                line += (f"; Δ {_pts(c['mean'])} points, 95% t-interval {_interval(c['ci95'])}, "
                         f"bootstrap {_interval(c['bootstrap_ci95'])}: {_verdict(c)}")
            elif c is not None:
                line += (f"; Δ {_pts(c['mean'])} points (1 seed: no interval), "
                         f"bootstrap {_interval(c['bootstrap_ci95'])}")
            lines += ["", line + "."]
    for name in ("qd-4bit", "qd-2bit", "qd-8bit"):
        if name in by and by[name]["ratio_to_teacher"] is not None:
            m = by[name]
            lines.append(f"`{name}` is {100 * m['ratio_to_teacher']:.2f}% of the teacher and "
                         f"{100 * m['ratio_to_fp_student']:.1f}% of the FP student "
                         f"(paper: 2% and 12%).")
            break
    lines += _decision_lines(results)
    lines += _comparison_lines(comparisons)
    return "\n".join(lines) + "\n"


def _decision_lines(results):
    """Precision/recall/F1 at the stored thresholds and the event metrics, one row a model."""
    models = results["models"]
    if not models or "f1" not in models[0]:
        return []
    has_events = "events" in models[0]
    ev = results.get("event_evaluation", {})
    lines = ["", "## Decisions and events", "",
             "Precision, recall and F1 of the decisions at each model's stored thresholds (the "
             "validation EER point), mean over classes, on the test clips."]
    if has_events:
        if isinstance(ev.get("seconds_each"), list):      # real soundscapes (manifest runs)
            what = (f"{ev.get('recordings')} real soundscapes of "
                    f"{ev['seconds_each'][0]:g}–{ev['seconds_each'][1]:g} s built from the test "
                    f"clips only (`soundscapes/`; an event spans its whole weakly labelled "
                    f"clip)")
        else:
            what = (f"{ev.get('recordings')} synthetic recordings of "
                    f"{ev.get('seconds_each'):g} s")
        lines[-1] += (f" Segment-based (1 s) and event-based (collar 0.2 s, offset 50%) F1 of "
                      f"`qdaed detect --events` on {what} ({ev.get('reference_events')} "
                      f"reference events; sed_eval's definitions, micro-averaged).")
    has_psds = has_events and "psds1" in models[0]["events"]
    if has_psds:
        lines[-1] += (" PSDS1 and PSDS2 (DCASE task 4's scenarios, threshold-free, from the "
                      "window scores) computed by sed_scores_eval.")
    head = "| model | precision | recall | F1 |" + (" segment F1 | event F1 |" if has_events
                                                  else "") + (" PSDS1 | PSDS2 |" if has_psds
                                                              else "")
    lines += ["", head, "|---|" + "---:|" * (3 + 2 * has_events + 2 * has_psds)]
    for m in models:
        row = [m["name"], _fmt(m["precision"]["mean"]), _fmt(m["recall"]["mean"]),
               _fmt(m["f1"]["mean"])]
        if has_events:
            row += [_fmt(m["events"]["segment_f1"]), _fmt(m["events"]["event_f1"])]
        if has_psds:
            row += [_fmt(m["events"]["psds1"]), _fmt(m["events"]["psds2"])]
        lines.append("| " + " | ".join(row) + " |")
    return lines


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
    try:   # here: qdaed.pipeline.plots imports matplotlib, an optional extra
        from qdaed.pipeline.plots import write_plots
    except ImportError:  # matplotlib is an optional extra
        if log is not None:
            log("matplotlib not installed: no plots (ROC, DET, training curves, EER against "
                "bytes); pip install 'qdaed[plot]'")
        return
    write_plots(out, runs, test, classes, results)
