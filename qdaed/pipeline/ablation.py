"""The ablation behind ``qdaed ablate``: when does distillation help? (issue 9, docs/guides/ablation.md)

Cells: {baseline student; distillation as in the paper (cached logits on the training clips,
T = 2, λ = 0.5); distillation with a recipe (default ``transfer``)} × {clean labels; noisy
labels} × N seeds, on the synthetic corpus v2 (the same audio in both label conditions; the
noisy one has the corpus's default missing-positive and false-positive rates, the clean one
none). Test metrics always use the clean ground truth. Each label condition is one pipeline run
(``OUT/clean``, ``OUT/noisy``: the usual results.json, results.md, scores.csv and model files)
with no quantized models; its students are paired by seed. This command writes

    ablation.json   per cell: mean EER per seed, mean, 95% t-interval; the paired comparisons
    ablation.md     the table
    ablation.png    mean EER with 95% intervals per cell (with matplotlib)
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np

from qdaed.errors import InputError
from qdaed.io.atomic import atomic_write_bytes
from qdaed.pipeline.presets import preset_config, preset_dict
from qdaed.pipeline.run import run_pipeline
from qdaed.stats import paired_comparison, t_half_width
from qdaed.train.recipes import RECIPES, recipe_config

LABELS = {"clean": {"missing": 0.0, "false_positive": 0.0}, "noisy": None}
CELLS = (("baseline", "student"), ("paper", "distilled-paper"), ("recipe", "distilled"))


def ablation_configs(preset, recipe, seeds, seed=0):
    """{label condition: pipeline config} of the ablation."""
    if recipe == "paper":
        raise InputError("--recipe: the ablation already holds the paper's recipe; choose "
                         f"another of {', '.join(r for r in RECIPES if r != 'paper')}")
    if preset_dict(preset)["data"]["source"] != "synth":
        raise InputError(f"--preset {preset}: the ablation compares clean and noisy labels of "
                         f"the synthetic corpus; choose a synthetic preset (tiny, demo, paper)")
    out = {}
    for cond, noise in LABELS.items():
        data = {"corpus": "v2"} if noise is None else {"corpus": "v2", "label_noise": dict(noise)}
        out[cond] = preset_config(preset).merged({
            "data": data, "quant": {"bits": []}, "distill": recipe_config(recipe),
            "extra_recipes": ["paper"], "seeds": seeds, "seed": seed})
    return out


def summarise(results_by_cond, recipe):
    """The ablation table from the two pipelines' results dicts."""
    cells = []
    for cond, res in results_by_cond.items():
        by = {m["name"]: m for m in res["models"]}
        for cell, name in CELLS:
            eer = by[name]["eer"]["mean"]
            per_seed = eer["per_seed"] if isinstance(eer, dict) else [eer]
            arr = np.array(per_seed, dtype=float)
            half = t_half_width(arr) if arr.size >= 2 else None
            entry = {"labels": cond, "cell": cell, "model": name,
                     "recipe": {"baseline": None, "paper": "paper", "recipe": recipe}[cell],
                     "per_seed": per_seed, "mean": float(arr.mean()), "ci95_half": half}
            if cell != "baseline" and arr.size >= 2:
                base = by["student"]["eer"]["mean"]["per_seed"]
                entry["vs_baseline"] = paired_comparison(base, per_seed)
            cells.append(entry)
    return {"recipe": recipe, "cells": cells,
            "test_labels": "clean ground truth in both conditions"}


def ablation_markdown(summary):
    lines = ["# qdaed ablate: when does distillation help?", "",
             f"Synthetic corpus v2; training and validation labels clean or noisy, test labels "
             f"always the clean ground truth. Recipe: `{summary['recipe']}`. Mean EER over "
             f"seeds with 95% t-intervals; Δ = distilled − baseline, paired by seed "
             f"(negative = better).", "",
             "| labels | student | mean EER (%) | 95% interval | Δ vs baseline (points) | "
             "95% interval of Δ | p | relative | verdict |",
             "|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for c in summary["cells"]:
        ci = ("—" if c["ci95_half"] is None else
              f"[{100 * (c['mean'] - c['ci95_half']):.1f}, {100 * (c['mean'] + c['ci95_half']):.1f}]")
        name = {"baseline": "baseline (hard labels)", "paper": "distilled, paper recipe",
                "recipe": f"distilled, {summary['recipe']} recipe"}[c["cell"]]
        row = [c["labels"], name, f"{100 * c['mean']:.1f}", ci]
        v = c.get("vs_baseline")
        if v is None:
            row += ["—"] * 5
        else:
            sig = not (v["ci_low"] <= 0 <= v["ci_high"])
            row += [f"{100 * v['mean']:+.1f}", f"[{100 * v['ci_low']:+.1f}, {100 * v['ci_high']:+.1f}]",
                    "< 0.001" if v["p_value"] < 0.001 else f"{v['p_value']:.3f}",
                    "n/a" if v["relative"] is None else f"{100 * v['relative']:+.1f}%",
                    "significant" if sig else "not significant"]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def _plot(summary, path):
    try:
        import matplotlib  # here: an optional extra, slow to import; plots only
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # here: as matplotlib above
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    conds = list(dict.fromkeys(c["labels"] for c in summary["cells"]))
    width = 0.26
    for i, (cell, _) in enumerate(CELLS):
        rows = [next(c for c in summary["cells"] if c["labels"] == k and c["cell"] == cell)
                for k in conds]
        x = np.arange(len(conds)) + (i - 1) * width
        ax.bar(x, [100 * r["mean"] for r in rows], width,
               yerr=[100 * (r["ci95_half"] or 0) for r in rows], capsize=4,
               label={"baseline": "baseline", "paper": "distilled (paper)",
                      "recipe": f"distilled ({summary['recipe']})"}[cell])
    ax.set_xticks(np.arange(len(conds)), [f"{k} labels" for k in conds])
    ax.set_ylabel("test mean EER (%) vs clean truth")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return True


def run_ablation(out, preset="demo", recipe="transfer", seeds=5, seed=0, jobs=1,
                 dask_scheduler=None, resume=False, quiet=False, feature_jobs=0):
    out = Path(out)
    if str(out) in ("", "."):
        raise InputError("--out: expected a directory for the ablation")
    cfgs = ablation_configs(preset, recipe, seeds, seed)
    results = {cond: run_pipeline(cfg, out / cond, resume=resume, quiet=quiet, jobs=jobs,
                                  dask_scheduler=dask_scheduler, feature_jobs=feature_jobs)
               for cond, cfg in cfgs.items()}
    summary = summarise(results, recipe)
    atomic_write_bytes(out / "ablation.json", (json.dumps(summary, indent=2) + "\n").encode())
    atomic_write_bytes(out / "ablation.md", ablation_markdown(summary).encode())
    _plot(summary, out / "ablation.png")
    return summary
