"""``qdaed diagnose RUN``: why distillation did or did not help in a finished pipeline run.

Reads the run directory (its arrays, teacher, students and training histories) and writes
``diagnosis.json`` and ``diagnosis.md`` beside results.md:

1. the teacher's calibration on its own training clips against the validation (and transfer)
   clips — Brier score 1/(NC) Σ (q − y)², expected calibration error over 10 equal-width bins
   of q (Σ_bins |bin| / NC · |mean q − mean y|), mean |q − y| and mean EER, with q = σ(z_t):
   a teacher that memorised its training clips has q ≈ y there, so its soft targets carry
   little beyond the labels;
2. what the soft targets carry beyond the labels: the share of (clip, class) pairs where the
   teacher disagrees with the label (|q − y| > 0.5), and — corpus v2, where the truth is known
   — the teacher's mean q on the positives the labels miss (clean 1, observed 0);
3. the weighting of the two loss terms: the norms of (1 − λ) ∂L_hard/∂z and λT² ∂L_soft/∂z
   for a freshly initialised student on the training clips, for the run's (T, λ) and the
   paper recipe's (2, 0.5);
4. early stopping: per seed and student, the best epoch, its validation EER, the validation
   EER of the last epoch, and the test EER, with the validation split's size;
5. the teacher's margin on the validation split: per class, the teacher's EER against the
   baseline students' (their deployed, early-stopped models; mean over seeds) and the relative
   margin (e_student − e_teacher) / e_student — what distillation could gain if the student
   matched the teacher exactly; negative where the teacher is the worse model. The test split
   is never used for it;
6. the comparisons of the results table on the validation split, paired by seed: distilled −
   student, qd-4bit − distilled, qat-4bit − qd-4bit (every width the run has), each model's
   validation mean EER being that of its deployed (early-stopped) epoch, with the 95%
   t-interval over seeds. This is what a recipe, a (T, λ) or any knob may be chosen on
   (early stopping picked these very epochs, so the values are optimistic for every model
   alike); the test split is never read.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from qdaed.detector import Detector
from qdaed.errors import InputError
from qdaed.io.atomic import atomic_write_text
from qdaed.io.strictjson import read_json_file
from qdaed.metrics import compute_metrics
from qdaed.models.predict import predict_logits
from qdaed.nn import losses
from qdaed.nn.losses import sigmoid
from qdaed.pipeline.config import read_config
from qdaed.pipeline.stages import targets_path
from qdaed.stats import paired_comparison
from qdaed.train import schedules as S


def calibration(z, y):
    """{brier, ece, mean_abs, mean_eer} of sigmoid scores σ(z) (N, C) against labels y (N, C)."""
    q = sigmoid(np.asarray(z, dtype=np.float64))
    y = np.asarray(y, dtype=np.float64)
    bins = np.clip((q * 10).astype(int), 0, 9)
    ece = sum(float((bins == b).sum()) / q.size * abs(q[bins == b].mean() - y[bins == b].mean())
              for b in range(10) if (bins == b).any())
    eer = compute_metrics(q, y)["eer"]["mean"]
    return {"brier": float(np.mean((q - y) ** 2)), "ece": float(ece),
            "mean_abs": float(np.mean(np.abs(q - y))),
            "mean_eer": None if not np.isfinite(eer) else float(eer),
            "disagree": float(np.mean(np.abs(q - y) > 0.5))}


def gradient_scales(z_student, z_teacher, y, temperature, lam):
    """Frobenius norms of the two terms of ∂L/∂z_s (docs/method/losses.md)."""
    _, hc = losses.hard_forward(z_student, y)
    _, sc = losses.soft_forward(z_student, z_teacher, temperature)
    hard = losses.hard_backward(hc, 1.0 - lam)
    soft = losses.soft_backward(sc, lam * temperature ** 2)
    return {"temperature": temperature, "lam": lam, "hard": float(np.linalg.norm(hard)),
            "soft": float(np.linalg.norm(soft))}


def teacher_margin(teacher_scores, student_scores, y, classes):
    """The teacher's margin over the baseline students on one split (section 5 above).

    teacher_scores (N, C); student_scores: one (N, C) array per seed; y (N, C) labels.
    Returns {class or "mean": {teacher, student, relative}} (EERs as fractions; a class whose
    labels lack positives or negatives is left out, "mean" is over the classes that remain)."""
    t = compute_metrics(teacher_scores, y)["eer"]
    s = [compute_metrics(sc, y)["eer"] for sc in student_scores]
    if not s:
        raise InputError("teacher_margin: needs the scores of at least one student")
    out = {c: {"teacher": float(t[str(i)]), "student": float(np.mean([e[str(i)] for e in s]))}
           for i, c in enumerate(classes) if np.isfinite(t[str(i)])}
    if out:
        out["mean"] = {k: float(np.mean([v[k] for v in out.values()]))
                       for k in ("teacher", "student")}
    for v in out.values():
        v["relative"] = (None if v["student"] == 0
                         else (v["student"] - v["teacher"]) / v["student"])
    return out


def diagnose(run_dir):
    run = Path(run_dir)
    if not (run / "results.json").is_file() or not (run / "arrays").is_dir():
        raise InputError(f"{run}: not a finished qdaed pipeline run (needs results.json and "
                         f"arrays/)")
    cfg = read_config(run / "config.json")
    results = read_json_file(run / "results.json", allow_nan=True)
    a = {p.stem: np.load(p, allow_pickle=False) for p in (run / "arrays").glob("*.npy")}
    seed0 = cfg.seed
    teacher = Detector.load(run / "models" / f"seed{seed0}" / "teacher.safetensors")
    z_tr = np.load(targets_path(run / "models" / f"seed{seed0}", cfg.distill.targets, "train"),
                   allow_pickle=False)
    z_fit = predict_logits(teacher.model, a["x_train"])   # the teacher's own output (not OOF)
    z_va = predict_logits(teacher.model, a["x_val"])
    out = {"run": str(run), "recipe": results.get("distill", {}).get("recipe"),
           "n_train": int(a["x_train"].shape[0]), "n_val": int(a["x_val"].shape[0])}
    cal = {"train (observed labels)": calibration(z_fit, a["y_train"]),
           "validation (observed labels)": calibration(z_va, a["y_val"])}
    if "y_train_clean" in a:
        cal["train (clean truth)"] = calibration(z_fit, a["y_train_clean"])
        cal["validation (clean truth)"] = calibration(z_va, a["y_val_clean"])
    if not np.array_equal(z_tr, z_fit):
        cal["train, the soft targets used (out of fold)"] = calibration(z_tr, a["y_train"])
    out["teacher_calibration"] = cal
    if "y_train_clean" in a:
        missed = (a["y_train_clean"] == 1) & (a["y_train"] == 0)
        q_fit = sigmoid(z_fit)
        kept, neg = (a["y_train_clean"] == 1) & (a["y_train"] == 1), a["y_train_clean"] == 0
        out["missing_positives"] = {
            "count": int(missed.sum()),
            "mean_q_labelled_positives": float(q_fit[kept].mean()) if kept.any() else None,
            "mean_q_true_negatives": float(q_fit[neg].mean()) if neg.any() else None,
            "mean_q_teacher_on_its_training_clips": float(sigmoid(z_fit)[missed].mean())
            if missed.any() else None,
            "mean_q_soft_targets_used": float(sigmoid(z_tr)[missed].mean())
            if missed.any() else None,
        }
    student = S.new_student(S.Split(a["x_train"], a["y_train"], a["x_val"], a["y_val"]),
                            dataclasses.asdict(cfg.student), seed0)
    z_s = predict_logits(student, a["x_train"])
    dist = results.get("distill", cfg.distill.to_config())
    out["gradient_scales_at_init"] = [
        gradient_scales(z_s, z_tr, a["y_train"], dist["temperature"], dist["lam"]),
        gradient_scales(z_s, z_tr, a["y_train"], 2.0, 0.5)]
    test_eer = {(m["name"], s): e for m in results["models"]
                for s, e in _per_seed(m["eer"]["mean"], cfg)}
    stops = []
    for seed in cfg.seed_list:
        for name in ("student", "distilled", *[f"distilled-{r}" for r in cfg.extra_recipes]):
            hp = run / "models" / f"seed{seed}" / f"{name}.history.json"
            if hp.is_file():
                h = read_json_file(hp, allow_nan=True)
                stops.append({"seed": seed, "model": name, "best_epoch": h["best_epoch"] + 1,
                              "epochs_run": len(h["val_mean_eer"]),
                              "val_eer_best": min(h["val_mean_eer"]),
                              "val_eer_last": h["val_mean_eer"][-1],
                              "test_eer": test_eer.get((name, seed))})
    out["early_stopping"] = stops
    out["validation_comparisons"] = validation_comparisons(run, cfg)
    students = [run / "models" / f"seed{seed}" / "student.safetensors" for seed in cfg.seed_list]
    s_val = [sigmoid(predict_logits(Detector.load(p).model, a["x_val"]))
             for p in students if p.is_file()]
    if s_val:
        labels = {"observed labels": a["y_val"]}
        if "y_val_clean" in a:
            labels["clean truth"] = a["y_val_clean"]
        out["teacher_margin"] = {k: teacher_margin(sigmoid(z_va), s_val, y, list(cfg.classes))
                                 for k, y in labels.items()}
        out["teacher_margin_students"] = len(s_val)
    atomic_write_text(run / "diagnosis.json", json.dumps(out, indent=1) + "\n")
    atomic_write_text(run / "diagnosis.md", diagnosis_markdown(out))
    return out


def validation_comparisons(run, cfg):
    """Item 6 of the module docstring: [{model, reference, seeds, model_mean, reference_mean,
    mean, ci95 (None with one seed), relative}] from the models' training histories."""
    val = {}
    for seed in cfg.seed_list:
        for p in (run / "models" / f"seed{seed}").glob("*.history.json"):
            name = p.name[:-len(".history.json")]
            val.setdefault(name, {})[seed] = min(read_json_file(p, allow_nan=True)["val_mean_eer"])
    pairs = [("distilled", "student")]
    for k in cfg.quant.bits:
        pairs += [(f"qd-{k}bit", "distilled"), (f"qat-{k}bit", f"qd-{k}bit")]
    out = []
    for model, ref in pairs:
        seeds = sorted(set(val.get(model, {})) & set(val.get(ref, {})))
        if not seeds:
            continue
        a, b = [val[ref][s] for s in seeds], [val[model][s] for s in seeds]
        row = {"model": model, "reference": ref, "seeds": seeds,
               "model_mean": float(np.mean(b)), "reference_mean": float(np.mean(a)),
               "mean": float(np.mean(np.subtract(b, a))), "ci95": None,
               "relative": float((np.mean(b) - np.mean(a)) / np.mean(a))}
        if len(seeds) >= 2:
            pc = paired_comparison(a, b)
            row.update(ci95=[pc["ci_low"], pc["ci_high"]], p_value=pc["p_value"])
        out.append(row)
    return out


def _per_seed(v, cfg):
    seeds = cfg.seed_list
    if isinstance(v, dict):
        return list(zip(seeds, v["per_seed"]))
    return [(seeds[0], v)]


def diagnosis_markdown(d):
    pct = lambda v: "n/a" if v is None else f"{100 * v:.1f}"   # noqa: E731
    lines = [f"# Distillation diagnosis — `{d['run']}`", "",
             f"{d['n_train']} training / {d['n_val']} validation clips; recipe "
             f"`{d['recipe']}`.", "", "## The teacher's calibration", "",
             "| clips (labels) | Brier | ECE | mean abs(q − y) | disagree (%) | mean EER (%) |",
             "|---|---:|---:|---:|---:|---:|"]
    for k, c in d["teacher_calibration"].items():
        lines.append(f"| {k} | {c['brier']:.4f} | {c['ece']:.4f} | {c['mean_abs']:.4f} | "
                     f"{pct(c['disagree'])} | {pct(c['mean_eer'])} |")
    m = d.get("missing_positives")
    if m and m["count"]:
        lines += ["", f"Positives the labels miss on training clips: {m['count']}; the "
                      f"teacher's mean q on them: {m['mean_q_teacher_on_its_training_clips']:.3f}"
                      f" (its own output), {m['mean_q_soft_targets_used']:.3f} (the soft "
                      f"targets the student got); for comparison, on labelled positives "
                      f"{m['mean_q_labelled_positives']:.3f} and on true negatives "
                      f"{m['mean_q_true_negatives']:.3f}."]
    elif m:
        lines += ["", "No positive is missing from the training labels (label noise off)."]
    lines += ["", "## Gradient scale of the two loss terms (fresh student, training clips)", "",
              "| T | λ | ‖(1 − λ) ∂L_hard/∂z‖ | ‖λT² ∂L_soft/∂z‖ |", "|---:|---:|---:|---:|"]
    for g in d["gradient_scales_at_init"]:
        lines.append(f"| {g['temperature']:g} | {g['lam']:g} | {g['hard']:.4g} | "
                     f"{g['soft']:.4g} |")
    lines += ["", "## Early stopping", "",
              "| seed | model | best epoch / run | val EER best (%) | val EER last (%) | "
              "test EER (%) |", "|---:|---|---:|---:|---:|---:|"]
    for s in d["early_stopping"]:
        lines.append(f"| {s['seed']} | {s['model']} | {s['best_epoch']} / {s['epochs_run']} | "
                     f"{pct(s['val_eer_best'])} | {pct(s['val_eer_last'])} | "
                     f"{pct(s['test_eer'])} |")
    if d.get("validation_comparisons"):
        lines += ["", "## Comparisons on the validation split (what choices may be made on)",
                  "", "Each model's validation mean EER at its deployed (early-stopped) epoch, "
                  "paired by seed; 95% t-interval over seeds. The test split is not read.", "",
                  "| model | reference | model (%) | reference (%) | Δ (points) | 95% interval "
                  "| relative |", "|---|---|---:|---:|---:|---:|---:|"]
        for c in d["validation_comparisons"]:
            ci = "—" if c["ci95"] is None else \
                f"[{100 * c['ci95'][0]:+.1f}, {100 * c['ci95'][1]:+.1f}]"
            lines.append(f"| {c['model']} | {c['reference']} | {pct(c['model_mean'])} | "
                         f"{pct(c['reference_mean'])} | {100 * c['mean']:+.1f} | {ci} | "
                         f"{100 * c['relative']:+.1f}% |")
    if d.get("teacher_margin"):
        lines += ["", "## The teacher's margin on the validation split", "",
                  f"Teacher against the mean of {d['teacher_margin_students']} baseline "
                  "students (their deployed models); relative = (student − teacher) / student, "
                  "the most distillation could gain if the student matched the teacher.", "",
                  "| labels | class | teacher EER (%) | student EER (%) | relative |",
                  "|---|---|---:|---:|---:|"]
        for labels, m in d["teacher_margin"].items():
            for c, v in m.items():
                rel = "n/a" if v["relative"] is None else f"{100 * v['relative']:+.1f}%"
                lines.append(f"| {labels} | {c} | {pct(v['teacher'])} | {pct(v['student'])} "
                             f"| {rel} |")
    return "\n".join(lines) + "\n"
