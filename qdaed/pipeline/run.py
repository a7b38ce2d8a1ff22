"""``qdaed pipeline``: the paper's experiment end to end (docs/method/schedules.md).

For each seed: teacher → baseline student → distilled student → for each k: qd-{k}bit,
ptq-{k}bit, qat-{k}bit. Each finished model is written as a model file at once; each
training run checkpoints after every epoch, so ``--resume`` skips finished models and
continues the interrupted one exactly where it stopped.

Output directory layout:

    config.json        the resolved config (qdaed.pipeline.config) and "status": "started"
                       (written before any work, so that a run killed at any moment can be
                       resumed) or "finished"; --resume refuses a different config
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
import shutil
import sys
import time
from pathlib import Path

import numba
import numpy as np
import scipy

from qdaed._version import __version__
from qdaed.data.manifest import read_manifest
from qdaed.detector import Detector
from qdaed.errors import DataError, InputError, QdaedError
from qdaed.features.prepare import Normalizer, fix_length
from qdaed.io.atomic import atomic_write_text
from qdaed.io.strictjson import read_json_file
from qdaed.pipeline import eventeval, report
from qdaed.pipeline.config import DataConfig, RunConfig, read_config_dict
from qdaed.pipeline.executor import ExecutorSpec, JobRunner
from qdaed.pipeline.featuresets import load_dataset
from qdaed.pipeline.stages import (SeedStages, distilled_name, remove_orphan_temporaries,
                                   save_array)
from qdaed.pipeline.threads import pin_threads, threads_restored
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
    return {"qdaed": __version__, "python": platform.python_version(), "numpy": np.__version__,
            "numba": numba.__version__, "scipy": scipy.__version__,
            "machine": platform.machine(), "cpus": os.cpu_count()}


def out_path(out_dir):
    """``--out`` as a Path; an empty string is refused (it would write into the current
    directory)."""
    if not isinstance(out_dir, (str, os.PathLike)) or not os.fspath(out_dir).strip():
        raise InputError("--out: expected a directory name, got an empty string")
    return Path(out_dir)


def check_out_dir(out, cfg, resume):
    """Refuse an ``--out`` that is not this run's: a file, a non-empty directory that holds no
    qdaed run (no config.json), another run (unless resuming it with the same config), or no
    run to resume. Writes nothing."""
    cfg_path = out / "config.json"
    if out.exists() and not out.is_dir():
        raise InputError(f"--out: {out} exists and is not a directory")
    if cfg_path.is_file():
        if not resume:
            raise InputError(f"--out: {out} already holds a run (config.json); pass --resume "
                             f"to continue it or choose another directory")
        if read_config_dict(cfg_path) != cfg.to_dict():
            raise InputError(f"--resume: the config of {out} differs from this command's; "
                             f"resume with the same options or choose another --out")
        return
    if resume:
        raise InputError(f"--resume: {out} holds no config.json to resume from")
    if out.is_dir() and any(out.iterdir()):
        raise InputError(f"--out: {out} is not empty and holds no qdaed run (no config.json); "
                         f"choose a new or empty directory (nothing was written)")


def write_config(out, cfg, status):
    """config.json: the configuration and the run's status (started | finished)."""
    atomic_write_text(out / "config.json",
                      json.dumps({**cfg.to_dict(), "status": status}, indent=2) + "\n")


class _Start:
    """A new run's first writes, rolled back if the start fails with a user error (bad data,
    too small a split) before any training: the directory is left as it was, so the same
    command can be run again once the input is fixed."""

    def __init__(self, out, new_run):
        self.out, self.new_run = out, new_run
        self.created_dir = not out.exists()
        self.before = set() if self.created_dir else set(os.listdir(out))

    def __enter__(self):
        try:
            self.out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(f"--out: cannot create {self.out} ({exc.strerror or exc})") \
                from None
        return self

    def __exit__(self, kind, exc, tb):
        if kind is None or not self.new_run or not issubclass(kind, QdaedError):
            return False

        for name in set(os.listdir(self.out)) - self.before:
            p = self.out / name
            shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
        if self.created_dir:
            self.out.rmdir()
        return False


def run_pipeline(cfg, out_dir, resume=False, quiet=False, jobs=1, stop_after=None,
                 dask_scheduler=None, feature_jobs=0, recipe_choice=None):
    """Run every stage for every seed; return the results dict (also written to disk).

    cfg: a :class:`~qdaed.pipeline.config.RunConfig`. The seeds are independent jobs
    (:mod:`qdaed.pipeline.executor`): in this process (jobs = 1), on a local process pool
    (jobs > 1; 0 = one per core) or on a Dask cluster (dask_scheduler). Each job uses
    ``cfg.threads_per_job`` Numba/BLAS threads, so the model files and results are
    byte-identical whichever executor ran them. A shared teacher (``cfg.shared_teacher``)
    and its soft targets are made here, with ``cfg.threads_per_job`` threads too; on a local
    pool the seeds' student chains, which need no teacher, train meanwhile
    (:meth:`~qdaed.pipeline.executor.JobRunner.start`).
    stop_after: for tests of --resume — raise KeyboardInterrupt after that many training
    epochs in total (simulates an interruption; in-process runs only).
    recipe_choice: how the recipe was chosen (:func:`~qdaed.pipeline.config.choose_recipe`),
    logged and kept in results.json as ``recipe_choice``; None: the configured recipe.
    """
    if not isinstance(cfg, RunConfig):
        raise InputError(f"cfg: expected a RunConfig, got {type(cfg).__name__}")
    out = out_path(out_dir)
    check_out_dir(out, cfg, resume)
    spec = cfg.distill
    runner_spec = ExecutorSpec(jobs=jobs, dask_scheduler=dask_scheduler,
                               threads_per_job=cfg.threads_per_job)
    with JobRunner(runner_spec) as runner:   # an unreachable scheduler fails before any write
        with _Start(out, new_run=not resume):
            try:
                write_config(out, cfg, "started")
            except OSError as exc:
                raise InputError(f"--out: cannot write to {out} ({exc.strerror or exc})") \
                    from None
            log = Log(out / "log.txt", quiet=quiet)
            log(f"qdaed {__version__} pipeline, preset {cfg.preset}, recipe {spec.recipe}, "
                f"out {out}")
            if recipe_choice is None:
                recipe_choice = {"recipe": spec.recipe, "named": True,
                                 "reason": "as configured"}
            log(f"recipe {recipe_choice['recipe']}: {recipe_choice['reason']}")
            if resume:
                n = remove_orphan_temporaries(out)
                if n:
                    log(f"resume: removed {n} temporary file(s) an interruption left")
            data = load_dataset(cfg.data, cfg.features, cfg.classes, out, log,
                                jobs=feature_jobs)
            prep = _prepare_arrays(cfg, spec, data, out, log)
        epochs_left = [stop_after]
        extra = [DistillSpec.from_config(recipe_config(r)) for r in cfg.extra_recipes]
        seeds = cfg.seed_list
        where = runner_spec.workers if dask_scheduler is None else "a Dask cluster"
        # With one shared teacher each seed is two jobs (SeedStages.run's parts), so that
        # neither core idles while the last seed trains alone: the same models.
        parts = SeedStages.PARTS if cfg.shared_teacher and runner_spec.workers > 1 else (None,)

        def job(seed, part, temperature, lam):
            return (cfg, seed, str(out), resume, quiet, temperature, lam,
                    epochs_left[0] if jobs == 1 else None, log.t0, part)

        # The student chains need neither the teacher nor (T, λ) (the values passed are not
        # read): on a pool they start now, beside the teacher (JobRunner.start). The teacher,
        # and a tuning search, run here with the jobs' threads, so that the teacher is the same
        # bytes whatever the machine's core count and however the seeds run.
        early = [job(seed, "student", spec.temperature, spec.lam)
                 for seed in seeds] if parts[0] else []
        with runner.start(_seed_job, early) as sweep, threads_restored():
            pin_threads(cfg.threads_per_job)
            if early:
                log(f"{len(early)} job(s) (the student chain of each seed: no teacher needed) "
                    f"started beside the teacher, on {max(1, runner_spec.workers - 1)} "
                    f"worker(s)")
            if cfg.shared_teacher:
                SeedStages(cfg, spec, cfg.seed, out, log, resume, epochs_left).teacher_stage(
                    [spec, *extra])
            selection = _select_distillation(cfg, spec, out, log, resume)
            log(f"{len(seeds) * len(parts)} job(s) ({len(seeds)} seed(s)"
                f"{' x ' + ' and '.join(parts) if parts[0] else ''}) on {where} worker(s), "
                f"{cfg.threads_per_job} thread(s) each")
            sweep.finish([job(seed, part, selection["temperature"], selection["lam"])
                          for seed in seeds for part in reversed(parts)
                          if not (early and part == "student")],
                         progress=lambda done, total: log(f"seed jobs: {done}/{total} finished"))

    runs = []   # (seed, detector, test scores)
    for seed in seeds:
        for name in model_names(cfg):
            if name == "teacher" and cfg.shared_teacher and seed != cfg.seed:
                continue   # one teacher for every seed: reported once
            det = Detector.load(out / "models" / f"seed{seed}" / f"{name}.safetensors")
            runs.append((seed, det, det.scores(prep["x_test"])))
    _remove_empty_dirs(out / "checkpoints")
    test = prep["test"]
    test_clips = _test_clips(cfg, test)
    events = _event_recordings(cfg, prep["feature_options"], log, test_clips, out)
    groups = None if test_clips is None else [c.group or c.name for c in test_clips]
    results = report.build_results(cfg.classes, cfg.to_dict(), versions(), runs, test, log,
                                   events=events, groups=groups)
    results["distill"] = {**spec.to_config(), "temperature": selection["temperature"],
                          "lam": selection["lam"], "selection": selection}
    results["recipe_choice"] = recipe_choice
    results["test_labels"] = prep["test_labels"]
    report.write_outputs(out, results, runs, test, log)
    write_config(out, cfg, "finished")
    log(f"done: {out / 'results.md'}")
    return results


def _test_clips(cfg, test):
    """The manifest rows (``Clip``) of the test split's clips, in its order — for the group
    bootstrap (each clip's source recording: its ``group``, else the clip itself) and the
    soundscapes; None for the synthetic corpus. The manifest is read once, here."""
    if cfg.data.source != "manifest":
        return None
    row = {c.name: c for c in read_manifest(cfg.data.manifest, cfg.classes)}
    return [row[name] for name in test.clips]


def _remove_empty_dirs(root):
    """Remove ``root`` and its sub-folders where they hold no file (finished checkpoints)."""
    if root.is_dir():
        for d in sorted(root.glob("*"), reverse=True):
            if d.is_dir() and not any(d.iterdir()):
                d.rmdir()
        if not any(root.iterdir()):
            root.rmdir()


def model_names(cfg):
    names = ["teacher", "student", "distilled"]
    names += [distilled_name(r) for r in cfg.extra_recipes]
    for k in cfg.quant.bits:
        names += [f"qd-{k}bit", f"ptq-{k}bit", f"qat-{k}bit"]
    return names


def check_splits(parts, classes):
    """Every class needs a positive and a negative clip in the training, validation and test
    splits: the EER (and the thresholds chosen at the validation EER point) are undefined
    otherwise. ``parts``: {split name: FeatureSet}. Raises DataError before any training."""
    problems = []
    for split, part in parts.items():
        if len(part) == 0:
            problems.append(f"the {split} split is empty")
            continue
        labels = part.labels if split != "test" or part.clean_labels is None \
            else part.clean_labels
        for c, name in enumerate(classes):
            pos = int(np.sum(labels[:, c] == 1))
            if pos == 0 or pos == len(part):
                problems.append(f"{split}: {pos} of {len(part)} clips are {name}"
                                f" ({'no positive' if pos == 0 else 'no negative'})")
    if problems:
        raise DataError("a split is too small for the metrics (every class needs positive and "
                        "negative clips in train, validation and test): " + "; ".join(problems)
                        + "; use more clips or other split fractions")


def _prepare_arrays(cfg, spec, data, out, log):
    """Normalised split arrays written once to OUT/arrays (read by every seed job)."""
    train, val, test = (data.subset(s) for s in ("train", "validation", "test"))
    unl = data.subset("unlabeled") if "unlabeled" in set(data.splits) else None
    log(f"data: {len(train)} train / {len(val)} validation / {len(test)} test clips"
        f"{f' / {len(unl)} unlabelled' if unl is not None else ''}, "
        f"{data.features.shape[1]} frames x {data.features.shape[2]} bins")
    check_splits({"train": train, "validation": val, "test": test}, cfg.classes)
    if spec.transfer and (spec.lam > 0 or spec.tune) and unl is None:
        raise InputError(f"recipe {spec.recipe!r}: needs an unlabelled transfer set "
                         f"(--transfer N for the synthetic corpus, or manifest rows with split "
                         f"'unlabeled'), or a recipe without one (--recipe paper)")
    norm = Normalizer.fit(train.features)
    arrays = out / "arrays"
    arrays.mkdir(exist_ok=True)
    clean = getattr(test, "clean_labels", None)
    test_labels = "clean" if clean is not None and cfg.data.corpus == "v2" else "as given"
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
    if cfg.teacher.pretrain_clips:
        items.update(_pretraining_arrays(cfg, data.features.shape[1], norm, log))
    for name, a in items.items():
        save_array(arrays / f"{name}.npy", a)
    atomic_write_text(arrays / "meta.json", json.dumps({
        "frames": int(data.features.shape[1]), "feature_options": data.feature_options,
        "classes": list(cfg.classes)}) + "\n")
    return {"x_test": norm.apply(test.features), "test": test, "test_labels": test_labels,
            "feature_options": data.feature_options}


def _pretraining_arrays(cfg, frames, norm, log, jobs=0):
    """The teacher's synthetic pretraining clips (``teacher.pretrain_clips`` of corpus v2,
    its own seed ``synth_seed + 3``, split 90/10 into training and validation clips) through
    the run's front end — the same LFBE options, band limit included — cut or looped to the
    run's ``frames`` and normalised with the run's training statistics, so the network sees
    them exactly as it will see the run's clips."""
    seconds = cfg.data.equal_seconds or cfg.data.clip_seconds
    d = DataConfig(source="synth", corpus="v2", n_clips=cfg.teacher.pretrain_clips,
                   n_transfer=0, clip_seconds=seconds, synth_seed=cfg.data.synth_seed + 3,
                   split_fractions=(0.8, 0.1, 0.1), max_freq=cfg.data.max_freq)
    fs = load_dataset(d, cfg.features, cfg.classes, None, log, jobs=jobs)
    out = {}
    for split, name in (("train", "pretrain"), ("validation", "pretrain_val")):
        part = fs.subset(split)
        x = np.stack([fix_length(f, frames) for f in part.features])
        out[f"x_{name}"], out[f"y_{name}"] = norm.apply(x), part.labels
    log(f"teacher pretraining: {len(out['x_pretrain'])} + {len(out['x_pretrain_val'])} "
        f"synthetic clips (corpus v2, seed {d.synth_seed}), {cfg.teacher.pretrain_epochs} "
        f"epochs before the run's data")
    return out


def _event_recordings(cfg, feature_options, log, test_clips, out):
    """(recordings, description) for the event metrics (qdaed.pipeline.eventeval), or None."""
    if cfg.data.source == "manifest":
        recs = eventeval.manifest_recordings(cfg.data, cfg.event_eval, cfg.classes,
                                             feature_options, test_clips, out / "soundscapes")
        if recs:
            log(f"event metrics: {len(recs)} real soundscapes from the test split "
                f"({sum(r[1] for r in recs) / 16000:.0f} s, {out / 'soundscapes'}), every model")
    else:
        recs = eventeval.recordings(cfg.data, cfg.event_eval, cfg.classes, feature_options)
        if recs:
            log(f"event metrics: {len(recs)} synthetic recordings of {recs[0][1] / 16000:g} s, "
                f"every model")
    if not recs:
        return None
    return recs, eventeval.describe(cfg.data, cfg.event_eval, recs)


def _seed_job(cfg, seed, out, resume, quiet, temperature, lam, stop_after, t0=None, part=None):
    """One seed's stages, or one part of them (a job of the executor): trains and writes its
    model files."""
    out = Path(out)
    spec = dataclasses.replace(cfg.distill, temperature=temperature, lam=lam)
    log = Log(out / "log.txt", quiet=quiet, t0=t0)
    SeedStages(cfg, spec, seed, out, log, resume, [stop_after]).run(part)
    return seed


def _select_distillation(cfg, spec, out, log, resume):
    """(T, λ) for every seed: the recipe's, or with ``tune`` the pair of ``grid`` with the
    lowest validation mean EER of a distilled student of the first seed (never test)."""
    chosen = {"temperature": spec.temperature, "lam": spec.lam, "tuned": False}
    if not spec.tune:
        return chosen
    path = out / "arrays" / "distill_selection.json"
    if path.exists():
        return read_json_file(path, allow_nan=True)
    stages = SeedStages(cfg, spec, cfg.seed, out, log, resume, [None])
    table = []
    for t, lam in spec.grid:
        s = dataclasses.replace(spec, temperature=t, lam=lam)
        _, h = stages.train_distilled(name=f"tune-T{t:g}-lam{lam:g}", spec=s)
        best = min(h.val_mean_eer)
        table.append({"temperature": t, "lam": lam, "val_mean_eer": best})
        log(f"tuning: T = {t:g}, lam = {lam:g}: validation mean EER {best:.4f}")
    best = min(table, key=lambda r: r["val_mean_eer"])
    chosen = {"temperature": best["temperature"], "lam": best["lam"], "tuned": True,
              "on": f"validation split, seed {cfg.seed}", "grid": table}
    atomic_write_text(path, json.dumps(chosen, indent=1) + "\n")
    return chosen
