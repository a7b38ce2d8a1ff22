"""``qdaed pipeline``: the paper's experiment end to end (DESIGN 2.6–2.8).

For each seed: teacher → baseline student → distilled student → for each k: qd-{k}bit,
ptq-{k}bit, qat-{k}bit. Each finished model is written as a model file at once; each
training run checkpoints after every epoch, so ``--resume`` skips finished models and
continues the interrupted one exactly where it stopped.

Output directory layout:

    config.json        the resolved config (refused on --resume if it differs)
    log.txt            what was printed
    results.json       metrics, sizes and ratios of every model (mean/std/per_seed for >1 seed)
    results.md         the paper-style table
    scores.csv         seed,model,clip,class,label,score for every test clip, class and model
    models/seed{s}/{name}.safetensors
    models/seed{s}/{name}.history.json  per-epoch training loss and validation mean EER
    checkpoints/seed{s}/{name}.ckpt   (removed once the model file is written)
    features/          cached LFBE (manifest runs)
    roc.png, det.png   when matplotlib is installed
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from qdaed import __version__
from qdaed.detector import Detector
from qdaed.errors import InputError
from qdaed.io.atomic import atomic_write_text
from qdaed.metrics import threshold_at_eer
from qdaed.pipeline import report
from qdaed.pipeline.featuresets import load_dataset
from qdaed.train import schedules as S
from qdaed.features.prepare import Normalizer
from qdaed.train.loop import QuantSpec, TrainConfig
from qdaed.train.recipes import DistillSpec, recipe_config


class Log:
    """Prints progress to stderr and appends it to log.txt."""

    def __init__(self, path, quiet=False, t0=None):
        """t0: the run's start (time.time()), so that seed jobs count from it too."""
        self.path, self.quiet = path, quiet
        self.t0 = time.time() if t0 is None else t0

    def __call__(self, msg):
        line = f"[{time.time() - self.t0:7.1f}s] {msg}"
        if not self.quiet:
            print(line, file=sys.stderr, flush=True)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(line + "\n")


def versions():
    import numba
    import scipy

    return {"qdaed": __version__, "python": platform.python_version(), "numpy": np.__version__,
            "numba": numba.__version__, "scipy": scipy.__version__,
            "machine": platform.machine(), "cpus": os.cpu_count()}


def check_out_dir(out, cfg, resume):
    """Refuse to overwrite an earlier run unless resuming the same config. Writes nothing."""
    cfg_path = out / "config.json"
    if out.exists() and not out.is_dir():
        raise InputError(f"--out: {out} exists and is not a directory")
    if cfg_path.exists():
        if not resume:
            raise InputError(f"--out: {out} already holds a run (config.json); pass --resume "
                             f"to continue it or choose another directory")
        old = json.loads(cfg_path.read_text())
        if old != json.loads(json.dumps(cfg)):
            raise InputError(f"--resume: the config of {out} differs from this command's; "
                             f"resume with the same options or choose another --out")
    elif resume:
        raise InputError(f"--resume: {out} holds no config.json to resume from")


def eer_thresholds(scores, labels):
    """Per-class decision thresholds at the validation EER point; 0.5 for a class whose
    validation split lacks positives or negatives (the EER point is undefined there)."""
    return np.array([threshold_at_eer(s, y) if 0 < y.sum() < y.size else 0.5
                     for s, y in zip(scores.T, labels.T)])


def _remove_empty_dirs(root):
    """Remove ``root`` and its sub-folders where they hold no file (finished checkpoints)."""
    if root.is_dir():
        for d in sorted(root.glob("*"), reverse=True):
            if d.is_dir() and not any(d.iterdir()):
                d.rmdir()
        if not any(root.iterdir()):
            root.rmdir()


def _train_cfg(cfg, key, seed):
    return TrainConfig(**{**cfg[key], "seed": seed})


def _save_array(path, array):
    """np.save, atomically (a temporary file, then rename)."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        np.save(f, np.ascontiguousarray(array), allow_pickle=False)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _load_array(path):
    return np.load(path, allow_pickle=False)


def _seeds(cfg):
    return list(range(cfg["seed"], cfg["seed"] + cfg["seeds"]))


def run_pipeline(cfg, out_dir, resume=False, quiet=False, jobs=1, stop_after=None,
                 dask_scheduler=None, feature_jobs=0):
    """Run every schedule for every seed; return the results dict (also written to disk).

    The seeds are independent jobs (:mod:`qdaed.pipeline.executor`): in this process
    (jobs = 1), on a local process pool (jobs > 1; 0 = one per core) or on a Dask cluster
    (dask_scheduler). Each job uses ``cfg["threads_per_job"]`` Numba/BLAS threads, so the
    model files and results are byte-identical whichever executor ran them. A shared teacher
    (``cfg["shared_teacher"]``) and its soft targets are made first, here.
    stop_after: for tests of --resume — raise KeyboardInterrupt after that many training
    epochs in total (simulates an interruption; in-process runs only).
    """
    from qdaed.pipeline.executor import ExecutorSpec, JobRunner

    out = Path(out_dir)
    check_out_dir(out, cfg, resume)
    spec = DistillSpec.from_config(cfg["distill"])
    runner_spec = ExecutorSpec(jobs=jobs, dask_scheduler=dask_scheduler,
                               threads_per_job=cfg["threads_per_job"])
    with JobRunner(runner_spec) as runner:   # an unreachable scheduler fails before any write
        out.mkdir(parents=True, exist_ok=True)
        log = Log(out / "log.txt", quiet=quiet)
        log(f"qdaed {__version__} pipeline, preset {cfg['preset']}, recipe {spec.recipe}, "
            f"out {out}")
        data = load_dataset(cfg, out, log, jobs=feature_jobs)
        prep = _prepare_arrays(cfg, spec, data, out, log)
        # written once the data is known to be usable, so a failed start blocks no re-run
        if not (out / "config.json").exists():
            atomic_write_text(out / "config.json", json.dumps(cfg, indent=2) + "\n")
        epochs_left = [stop_after]
        if cfg["shared_teacher"]:
            _SeedRun(cfg, spec, cfg["seed"], out, log, resume, epochs_left).teacher_stage()
        selection = _select_distillation(cfg, spec, out, log, resume)
        seeds = _seeds(cfg)
        log(f"{len(seeds)} seed job(s) on {runner_spec.workers if dask_scheduler is None else 'a Dask cluster'}"
            f" worker(s), {cfg['threads_per_job']} thread(s) each")
        args = [(cfg, seed, str(out), resume, quiet, selection["temperature"],
                 selection["lam"], epochs_left[0] if jobs == 1 else None, log.t0)
                for seed in seeds]
        runner.run(_seed_job, args, progress=lambda done, total: log(
            f"seed jobs: {done}/{total} finished"))

    runs = []   # (seed, detector, test scores)
    for seed in seeds:
        for name in model_names(cfg):
            if name == "teacher" and cfg["shared_teacher"] and seed != cfg["seed"]:
                continue   # one teacher for every seed: reported once
            det = Detector.load(out / "models" / f"seed{seed}" / f"{name}.safetensors")
            runs.append((seed, det, det.scores(prep["x_test"])))
    _remove_empty_dirs(out / "checkpoints")
    test = prep["test"]
    results = report.build_results(cfg, versions(), runs, test, log)
    results["distill"] = {**spec.to_config(), "temperature": selection["temperature"],
                          "lam": selection["lam"], "selection": selection}
    results["test_labels"] = prep["test_labels"]
    report.write_outputs(out, results, runs, test, log)
    log(f"done: {out / 'results.md'}")
    return results


def model_names(cfg):
    names = ["teacher", "student", "distilled"]
    names += [f"distilled-{r}" for r in cfg.get("extra_recipes", [])]
    for k in cfg["quant"]["bits"]:
        names += [f"qd-{k}bit", f"ptq-{k}bit", f"qat-{k}bit"]
    return names


def _prepare_arrays(cfg, spec, data, out, log):
    """Normalised split arrays written once to OUT/arrays (read by every seed job)."""
    train, val, test = (data.subset(s) for s in ("train", "validation", "test"))
    unl = data.subset("unlabeled") if "unlabeled" in set(data.splits) else None
    log(f"data: {len(train)} train / {len(val)} validation / {len(test)} test clips"
        f"{f' / {len(unl)} unlabelled' if unl is not None else ''}, "
        f"{data.features.shape[1]} frames x {data.features.shape[2]} bins")
    if spec.transfer and (spec.lam > 0 or spec.tune) and unl is None:
        raise InputError(f"recipe {spec.recipe!r}: needs an unlabelled transfer set "
                         f"(--transfer N for the synthetic corpus, or manifest rows with split "
                         f"'unlabeled'), or a recipe without one (--recipe paper)")
    norm = Normalizer.fit(train.features)
    arrays = out / "arrays"
    arrays.mkdir(exist_ok=True)
    clean = getattr(test, "clean_labels", None)
    test_labels = "clean" if clean is not None and cfg["data"].get("corpus") == "v2" else \
        "as given"
    if clean is not None:
        test = dataclasses.replace(test, labels=np.asarray(clean, dtype=np.float32))
    items = {"x_train": norm.apply(train.features), "y_train": train.labels,
             "x_val": norm.apply(val.features), "y_val": val.labels,
             "norm_mean": norm.mean, "norm_std": norm.std}
    if spec.transfer and unl is not None:
        items["x_transfer"] = norm.apply(unl.features)
    for name, part in (("train", train), ("val", val)):   # the truth, for `qdaed diagnose`
        if part.clean_labels is not None:
            items[f"y_{name}_clean"] = part.clean_labels
    for name, a in items.items():
        _save_array(arrays / f"{name}.npy", a)
    atomic_write_text(arrays / "meta.json", json.dumps({
        "frames": int(data.features.shape[1]), "feature_options": data.feature_options,
        "classes": list(cfg["classes"])}) + "\n")
    return {"x_test": norm.apply(test.features), "test": test, "test_labels": test_labels}


def _seed_job(cfg, seed, out, resume, quiet, temperature, lam, stop_after, t0=None):
    """One seed's schedules (a job of the executor): trains and writes its model files."""
    out = Path(out)
    spec = dataclasses.replace(DistillSpec.from_config(cfg["distill"]), temperature=temperature,
                               lam=lam)
    log = Log(out / "log.txt", quiet=quiet, t0=t0)
    _SeedRun(cfg, spec, seed, out, log, resume, [stop_after]).run()
    return seed


def _select_distillation(cfg, spec, out, log, resume):
    """(T, λ) for every seed: the recipe's, or with ``tune`` the pair of ``grid`` with the
    lowest validation mean EER of a distilled student of the first seed (never test)."""
    chosen = {"temperature": spec.temperature, "lam": spec.lam, "tuned": False}
    if not spec.tune:
        return chosen
    path = out / "arrays" / "distill_selection.json"
    if path.exists():
        return json.loads(path.read_text())
    ctx = _SeedRun(cfg, spec, cfg["seed"], out, log, resume, [None])
    table = []
    for t, lam in spec.grid:
        s = dataclasses.replace(spec, temperature=t, lam=lam)
        ctx.spec = s
        _, h = ctx.train_distilled_student(name=f"tune-T{t:g}-lam{lam:g}")
        best = min(h.val_mean_eer)
        table.append({"temperature": t, "lam": lam, "val_mean_eer": best})
        log(f"tuning: T = {t:g}, lam = {lam:g}: validation mean EER {best:.4f}")
    best = min(table, key=lambda r: r["val_mean_eer"])
    chosen = {"temperature": best["temperature"], "lam": best["lam"], "tuned": True,
              "on": f"validation split, seed {cfg['seed']}", "grid": table}
    atomic_write_text(path, json.dumps(chosen, indent=1) + "\n")
    return chosen


class _SeedRun:
    """The schedules of one seed, each skipped when its model file already exists."""

    def __init__(self, cfg, spec, seed, out, log, resume, epochs_left):
        self.cfg, self.spec, self.seed, self.out = cfg, spec, seed, out
        self.log, self.resume, self.epochs_left = log, resume, epochs_left
        arrays = out / "arrays"
        self.split = S.Split(*(_load_array(arrays / f"{n}.npy")
                               for n in ("x_train", "y_train", "x_val", "y_val")))
        self.norm = Normalizer(_load_array(arrays / "norm_mean.npy"),
                               _load_array(arrays / "norm_std.npy"))
        tpath = arrays / "x_transfer.npy"
        self.x_transfer = _load_array(tpath) if spec.transfer and tpath.exists() else None
        self.meta = json.loads((arrays / "meta.json").read_text())
        self.models_dir = out / "models" / f"seed{seed}"
        self.ckpt_dir = out / "checkpoints" / f"seed{seed}"
        self.models_dir.mkdir(parents=True, exist_ok=True)
        self.ckpt_dir.mkdir(parents=True, exist_ok=True)

    # a model file written means that schedule finished
    def _path(self, name):
        return self.models_dir / f"{name}.safetensors"

    def _fit_kw(self, name):
        def progress(rec):
            self.log(f"seed {self.seed} {name}: epoch {rec['epoch']}/{rec['epochs']} "
                     f"loss {rec['loss']:.4f} val mean EER {rec['val_mean_eer']:.4f}")
            if self.epochs_left[0] is not None:
                self.epochs_left[0] -= 1
                if self.epochs_left[0] <= 0:
                    raise KeyboardInterrupt
        return {"checkpoint": str(self.ckpt_dir / f"{name}.ckpt"), "resume": self.resume,
                "progress": progress}

    def _finish(self, name, schedule, bits, model, quantized, history):
        cfg = self.cfg
        x_val, y_val = self.split.val
        det = Detector(model, self.norm, self.meta["frames"], tuple(cfg["classes"]),
                       self.meta["feature_options"], np.zeros(len(cfg["classes"])), quantized,
                       {"name": name, "schedule": schedule, "bits": bits, "seed": self.seed})
        det.thresholds = eer_thresholds(det.scores(x_val), y_val)
        if history is not None:  # beside the model file, which holds only what inference needs
            atomic_write_text(self.models_dir / f"{name}.history.json", json.dumps({
                "train_loss": history.train_loss, "val_mean_eer": history.val_mean_eer,
                "best_epoch": history.best_epoch}, indent=1) + "\n")
        det.save(self._path(name))
        ckpt = self.ckpt_dir / f"{name}.ckpt"
        if ckpt.exists():
            ckpt.unlink()
        self.log(f"seed {self.seed} {name}: {det.num_parameters()} params, "
                 f"{det.accounted_bytes()} bytes -> {self._path(name).name}")
        return det

    def _load(self, name):
        det = Detector.load(self._path(name))
        self.log(f"seed {self.seed} {name}: finished earlier, loaded {self._path(name).name}")
        return det

    # -- the teacher and its soft targets ----------------------------------------------------
    def _teacher_dir(self):
        seed = self.cfg["seed"] if self.cfg["shared_teacher"] else self.seed
        return self.out / "models" / f"seed{seed}"

    def teacher_stage(self):
        """Train (or load) the teacher and write its soft targets beside it:
        ``teacher.targets-train.npy`` (N_train, C) and ``teacher.targets-transfer.npy``."""
        cfg, split, spec = self.cfg, self.split, self.spec
        tdir = self._teacher_dir()
        tpath = tdir / "teacher.safetensors"
        if tpath.exists():
            teacher = Detector.load(tpath)
            self.log(f"seed {self.seed} teacher: finished earlier, loaded {tpath.name}")
        else:
            m, h = S.train_teacher(split, cfg["teacher"], _train_cfg(cfg, "train_teacher",
                                                                      self.seed),
                                   **self._fit_kw("teacher"))
            teacher = self._finish("teacher", "teacher", None, m, {}, h)
        z_path, u_path = tdir / "teacher.targets-train.npy", tdir / "teacher.targets-transfer.npy"
        if spec.targets == "oof" and not z_path.exists():
            self.log(f"seed {self.seed}: out-of-fold targets from {spec.folds} fold teachers")
            z, z_u, _ = S.out_of_fold_teacher_logits(
                split, cfg["teacher"], _train_cfg(cfg, "train_teacher", self.seed), spec.folds,
                self.x_transfer, fold_fit_kw=lambda k: self._fit_kw(f"teacher-fold{k}"))
            _save_array(z_path, z)
            if z_u is not None:
                _save_array(u_path, z_u)
        elif not z_path.exists():
            _save_array(z_path, S.teacher_logits(teacher.model, split.x_train))
            if self.x_transfer is not None:
                _save_array(u_path, S.teacher_logits(teacher.model, self.x_transfer))
        return teacher

    def _teacher_targets(self, teacher):
        tdir = self._teacher_dir()
        z = _load_array(tdir / "teacher.targets-train.npy")
        u_path = tdir / "teacher.targets-transfer.npy"
        z_u = _load_array(u_path) if self.x_transfer is not None else None
        return z, z_u

    def _distill_kw(self, teacher, z_u, spec=None):
        """fit() keywords of the recipe: cached or on-the-fly targets, transfer, augment."""
        spec = spec or self.spec
        kw = {"temperature": spec.temperature, "lam": spec.lam}
        if spec.targets == "on_the_fly":
            kw["teacher"] = teacher.model
            if spec.augment.enabled:
                kw["augment"], kw["bin_scale"] = spec.augment, 1.0 / self.norm.std
        if spec.transfer and self.x_transfer is not None and spec.lam > 0:
            kw["transfer"] = (self.x_transfer, None if spec.targets == "on_the_fly" else z_u)
        return kw

    def train_distilled_student(self, name="distilled", spec=None):
        spec = spec or self.spec
        teacher = self._teacher
        z, z_u = self._teacher_targets(teacher)
        kw = {**self._distill_kw(teacher, z_u, spec), **self._fit_kw(name)}
        return S.train_distilled(self.split, self.cfg["student"],
                                 _train_cfg(self.cfg, "train_student", self.seed),
                                 None if spec.targets == "on_the_fly" else z,
                                 kw.pop("temperature"), kw.pop("lam"), **kw)

    @property
    def _teacher(self):
        if getattr(self, "_teacher_det", None) is None:
            self._teacher_det = Detector.load(self._teacher_dir() / "teacher.safetensors")
        return self._teacher_det

    def run(self):
        cfg, seed, split = self.cfg, self.seed, self.split
        if cfg["shared_teacher"]:
            teacher = self._teacher
        else:
            teacher = self._teacher_det = self.teacher_stage()
        z, z_u = self._teacher_targets(teacher)

        if self._path("student").exists():
            student = self._load("student")
        else:
            m, h = S.train_student(split, cfg["student"], _train_cfg(cfg, "train_student", seed),
                                   **self._fit_kw("student"))
            student = self._finish("student", "student", None, m, {}, h)

        if self._path("distilled").exists():
            distilled = self._load("distilled")
        else:
            m, h = self.train_distilled_student()
            distilled = self._finish("distilled", "distilled", None, m, {}, h)
        for r in cfg.get("extra_recipes", []):   # the ablation's other recipes, same seed
            name = f"distilled-{r}"
            if not self._path(name).exists():
                m, h = self.train_distilled_student(
                    name, DistillSpec.from_config(recipe_config(r)))
                self._finish(name, f"distilled ({r} recipe)", None, m, {}, h)

        qcfg = cfg["quant"]
        dkw = self._distill_kw(teacher, z_u)
        z_cached = None if self.spec.targets == "on_the_fly" else z
        for k in qcfg["bits"]:
            spec = QuantSpec(k, group=qcfg["group"], symmetric=qcfg["symmetric"])
            tcfg = _train_cfg(cfg, "train_quant", seed)
            name = f"qd-{k}bit"
            if not self._path(name).exists():
                kw = dict(dkw)
                m, h, q = S.quantized_distillation(distilled.model, split, tcfg, z_cached,
                                                   kw.pop("temperature"), kw.pop("lam"), spec,
                                                   **kw, **self._fit_kw(name))
                self._finish(name, "quantized distillation", k, m, q, h)
            name = f"ptq-{k}bit"
            if not self._path(name).exists():
                m, q = S.post_training_quantization(distilled.model, spec)
                self._finish(name, "post-training quantization", k, m, q, None)
            name = f"qat-{k}bit"
            if not self._path(name).exists():
                m, h, q = S.quantization_aware_training(student.model, split, tcfg, spec,
                                                        **self._fit_kw(name))
                self._finish(name, "quantization-aware training", k, m, q, h)
