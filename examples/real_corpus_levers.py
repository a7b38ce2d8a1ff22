"""Two distillation levers tried on the real corpus, on the validation split only.

Given a finished run of the real corpus with the ``transfer`` recipe and a shared teacher
(``qdaed pipeline --manifest real_corpus_transfer --audio-root ../shared/data/real_corpus
--recipe transfer --max-freq 4000 --equal-seconds 4 --seeds 5 --out RUN``), this script trains
distilled students of the run's seeds with another source of soft targets and prints each
student's validation mean EER (best epoch, as the run's own histories record it) beside the
run's ``student`` and ``distilled`` of the same seed, then the paired differences with their
95% t-intervals over seeds (:func:`qdaed.stats.paired_comparison`). The test split is never
read.

Levers (``--lever``):

ensemble-logit, ensemble-prob
    An ensemble of teachers as the soft target: the run's teacher (seed 0) and ``--teachers``
    − 1 more trained with the run's teacher configuration and seeds 1, 2, ...; the students
    learn the mean of their logits (``-logit``) or the logit of the mean of their
    probabilities (``-prob``) on the training and transfer clips. T and λ are the run's.
consistent-augteacher
    Consistent teaching with a teacher trained on the augmentations it teaches with: a teacher
    trained with the ``consistent`` recipe's augmentations (mixup, shift, SpecAugment masks,
    gain), then students distilled on the fly on augmented views (T 1, λ 0.9, transfer clips).
consistent
    The same students with the run's own teacher (trained without augmentation).

Usage::

    python examples/real_corpus_levers.py RUN --lever ensemble-prob --out ensemble.json

The output JSON holds, per seed, the three validation EERs, and the comparisons; extra
teachers' logits are cached beside it (``OUT.teachers/``) so the two ensemble variants train
them once. Seeds, configuration and data come from RUN; results are identical on one machine.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np

from qdaed.detector import Detector
from qdaed.io.atomic import atomic_write_text
from qdaed.models import ResNet
from qdaed.pipeline.config import RunConfig
from qdaed.stats import paired_comparison
from qdaed.train import schedules as S
from qdaed.train.augment import Augment
from qdaed.train.loop import Distillation, fit
from qdaed.train.recipes import CONSISTENT_AUGMENT

LEVERS = ("ensemble-logit", "ensemble-prob", "consistent-augteacher", "consistent")


def run_config(run):
    d = json.loads((run / "config.json").read_text())
    d.pop("status", None)
    return RunConfig.from_dict(d)


def ensemble_targets(logits, mode):
    """Mean logit, or the logit of the mean probability, of several teachers (K, N, C)."""
    z = np.asarray(logits, dtype=np.float64)
    if mode == "logit":
        return z.mean(axis=0).astype(np.float32)
    p = (1.0 / (1.0 + np.exp(-z))).mean(axis=0).clip(1e-6, 1 - 1e-6)
    return np.log(p / (1 - p)).astype(np.float32)


def teacher_logits(run, cfg, split, x_transfer, seed, cache):
    """(train, transfer) logits of the teacher of ``seed``: the run's for its first seed,
    otherwise trained here with the run's teacher configuration (cached in ``cache``)."""
    if seed == cfg.seed:
        d = run / "models" / f"seed{seed}"
        return (np.load(d / "teacher.cached-targets-train.npy"),
                np.load(d / "teacher.cached-targets-transfer.npy"))
    a, b = cache / f"teacher{seed}-train.npy", cache / f"teacher{seed}-transfer.npy"
    if not (a.exists() and b.exists()):
        t0 = time.time()
        model, hist = S.train_teacher(split, {"depth": cfg.teacher.depth,
                                              "width": cfg.teacher.width},
                                      cfg.schedule("train_teacher", seed))
        cache.mkdir(exist_ok=True)
        np.save(a, S.teacher_logits(model, split.x_train))
        np.save(b, S.teacher_logits(model, x_transfer))
        print(f"teacher seed {seed}: validation mean EER {min(hist.val_mean_eer):.4f} "
              f"({time.time() - t0:.0f} s)", flush=True)
    return np.load(a), np.load(b)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--lever", choices=LEVERS, required=True)
    ap.add_argument("--teachers", type=int, default=5, help="ensemble size (default 5)")
    ap.add_argument("--out", type=Path, required=True, help="results JSON")
    args = ap.parse_args(argv)
    run, cfg = args.run, run_config(args.run)
    arr = lambda name: np.load(run / "arrays" / f"{name}.npy")  # noqa: E731
    split = S.Split(arr("x_train"), arr("y_train"), arr("x_val"), arr("y_val"))
    x_transfer = arr("x_transfer")
    seeds = [cfg.seed + i for i in range(cfg.seeds)]
    fit_kw, extra = {}, {}
    if args.lever.startswith("ensemble"):
        cache = args.out.with_suffix(".teachers")
        zs = [teacher_logits(run, cfg, split, x_transfer, cfg.seed + k, cache)
              for k in range(args.teachers)]
        mode = args.lever.split("-")[1]
        z, z_u = (ensemble_targets([t[i] for t in zs], mode) for i in (0, 1))
        make = lambda: Distillation(cfg.distill.temperature, cfg.distill.lam,  # noqa: E731
                                    teacher_logits=z, transfer=(x_transfer, z_u))
    else:
        fit_kw = {"augment": Augment(**CONSISTENT_AUGMENT), "bin_scale": 1.0 / arr("norm_std")}
        if args.lever == "consistent-augteacher":
            teacher = ResNet(depth=cfg.teacher.depth, num_classes=split.y_train.shape[1],
                             in_channels=1, width=cfg.teacher.width, seed=cfg.seed)
            hist = fit(teacher, split.train, split.val, cfg.schedule("train_teacher", cfg.seed),
                       **fit_kw)
            extra["teacher_val_mean_eer"] = min(hist.val_mean_eer)
            print(f"augmented teacher: validation mean EER {min(hist.val_mean_eer):.4f}",
                  flush=True)
        else:
            teacher = Detector.load(run / "models" / f"seed{cfg.seed}" /
                                    "teacher.safetensors").model
        make = lambda: Distillation(1.0, 0.9, teacher=teacher,  # noqa: E731
                                    transfer=(x_transfer, None))
    per_seed = {}
    for s in seeds:
        _, hist = S.train_distilled(split, dataclasses.asdict(cfg.student),
                                    cfg.schedule("train_student", s), make(), **fit_kw)
        own = {n: min(json.loads((run / "models" / f"seed{s}" / f"{n}.history.json")
                                 .read_text())["val_mean_eer"]) for n in ("student", "distilled")}
        per_seed[s] = {args.lever: min(hist.val_mean_eer), **own}
        print(s, per_seed[s], flush=True)
    comparisons = {
        f"{args.lever} - {b}": paired_comparison([per_seed[s][b] for s in seeds],
                                                 [per_seed[s][args.lever] for s in seeds])
        for b in ("student", "distilled")}
    atomic_write_text(args.out, json.dumps({"run": str(run), "lever": args.lever, **extra,
                                            "per_seed": per_seed, "comparisons": comparisons},
                                           indent=1) + "\n")
    for k, c in comparisons.items():
        print(f"{k}: {100 * c['mean']:+.2f} points [{100 * c['ci_low']:+.2f}, "
              f"{100 * c['ci_high']:+.2f}]")


if __name__ == "__main__":
    main()
