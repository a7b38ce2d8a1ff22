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
from qdaed.pipeline.data import load_dataset
from qdaed.train import schedules as S
from qdaed.train.dataset import Normalizer
from qdaed.train.loop import QuantSpec, TrainConfig


class Log:
    """Prints progress to stderr and appends it to log.txt."""

    def __init__(self, path, quiet=False):
        self.path, self.quiet, self.t0 = path, quiet, time.perf_counter()

    def __call__(self, msg):
        line = f"[{time.perf_counter() - self.t0:7.1f}s] {msg}"
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


def run_pipeline(cfg, out_dir, resume=False, quiet=False, jobs=0, stop_after=None):
    """Run every schedule for every seed; return the results dict (also written to disk).

    stop_after: for tests of --resume — raise KeyboardInterrupt after that many training
    epochs in total (simulates an interruption).
    """
    out = Path(out_dir)
    check_out_dir(out, cfg, resume)
    out.mkdir(parents=True, exist_ok=True)
    log = Log(out / "log.txt", quiet=quiet)
    log(f"qdaed {__version__} pipeline, preset {cfg['preset']}, out {out}")
    data = load_dataset(cfg, out, log, jobs=jobs)
    # written once the data is known to be usable, so a failed start blocks no re-run
    if not (out / "config.json").exists():
        atomic_write_text(out / "config.json", json.dumps(cfg, indent=2) + "\n")
    train, val, test = (data.subset(s) for s in ("train", "validation", "test"))
    log(f"data: {len(train)} train / {len(val)} validation / {len(test)} test clips, "
        f"{data.features.shape[1]} frames x {data.features.shape[2]} bins")
    norm = Normalizer.fit(train.features)
    split = S.Split(norm.apply(train.features), train.labels, norm.apply(val.features),
                    val.labels)
    x_test = norm.apply(test.features)
    epochs_left = [stop_after]

    runs = []   # (seed, name, schedule, bits, detector, test scores)
    for seed in range(cfg["seed"], cfg["seed"] + cfg["seeds"]):
        ctx = _SeedRun(cfg, seed, out, split, norm, data, log, resume, epochs_left)
        for det in ctx.run():
            runs.append((seed, det, det.scores(x_test)))
    _remove_empty_dirs(out / "checkpoints")
    results = report.build_results(cfg, versions(), runs, test, log)
    report.write_outputs(out, results, runs, test, log)
    log(f"done: {out / 'results.md'}")
    return results


class _SeedRun:
    """The schedules of one seed, each skipped when its model file already exists."""

    def __init__(self, cfg, seed, out, split, norm, data, log, resume, epochs_left):
        self.cfg, self.seed, self.split, self.norm, self.data = cfg, seed, split, norm, data
        self.log, self.resume, self.epochs_left = log, resume, epochs_left
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
        det = Detector(model, self.norm, self.data.features.shape[1], tuple(cfg["classes"]),
                       self.data.feature_options, np.zeros(len(cfg["classes"])), quantized,
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

    def run(self):
        cfg, seed, split = self.cfg, self.seed, self.split
        dist = cfg["distill"]

        if self._path("teacher").exists():
            teacher = self._load("teacher")
        else:
            m, h = S.train_teacher(split, cfg["teacher"], _train_cfg(cfg, "train_teacher", seed),
                                   **self._fit_kw("teacher"))
            teacher = self._finish("teacher", "teacher", None, m, {}, h)
        yield teacher
        z_teacher = S.teacher_logits(teacher.model, split.x_train)

        if self._path("student").exists():
            student = self._load("student")
        else:
            m, h = S.train_student(split, cfg["student"], _train_cfg(cfg, "train_student", seed),
                                   **self._fit_kw("student"))
            student = self._finish("student", "student", None, m, {}, h)
        yield student

        if self._path("distilled").exists():
            distilled = self._load("distilled")
        else:
            m, h = S.train_distilled(split, cfg["student"], _train_cfg(cfg, "train_student", seed),
                                     z_teacher, dist["temperature"], dist["lam"],
                                     **self._fit_kw("distilled"))
            distilled = self._finish("distilled", "distilled", None, m, {}, h)
        yield distilled

        qcfg = cfg["quant"]
        for k in qcfg["bits"]:
            spec = QuantSpec(k, group=qcfg["group"], symmetric=qcfg["symmetric"])
            tcfg = _train_cfg(cfg, "train_quant", seed)
            name = f"qd-{k}bit"
            if self._path(name).exists():
                yield self._load(name)
            else:
                m, h, q = S.quantized_distillation(distilled.model, split, tcfg, z_teacher,
                                                   dist["temperature"], dist["lam"], spec,
                                                   **self._fit_kw(name))
                yield self._finish(name, "quantized distillation", k, m, q, h)
            name = f"ptq-{k}bit"
            if self._path(name).exists():
                yield self._load(name)
            else:
                m, q = S.post_training_quantization(distilled.model, spec)
                yield self._finish(name, "post-training quantization", k, m, q, None)
            name = f"qat-{k}bit"
            if self._path(name).exists():
                yield self._load(name)
            else:
                m, h, q = S.quantization_aware_training(student.model, split, tcfg, spec,
                                                        **self._fit_kw(name))
                yield self._finish(name, "quantization-aware training", k, m, q, h)
