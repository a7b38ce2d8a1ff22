"""The stages of one seed, and the one place where a finished stage is reused (``--resume``).

Stages, in order (docs/method/schedules.md): teacher (and its soft targets) → student → distilled
(→ distilled-{recipe} for ``extra_recipes``) → for each k: qd-{k}bit, ptq-{k}bit, qat-{k}bit.
:meth:`SeedStages.stage` runs one: when its model file exists it is reused only if the file's
header names this stage, this seed and this run's configuration (the SHA-256 of config.json's
configuration); a file from another stage, seed or configuration is an error, never silently
taken (e.g. a student copied to ``teacher.safetensors``). Otherwise the stage trains —
continuing its checkpoint after an interruption — and its model file is written at once.

Soft targets (cached logits of the teacher) sit beside the teacher's model file, one pair per
kind of target: ``teacher.{kind}-targets-train.npy`` (N_train, C) and
``teacher.{kind}-targets-transfer.npy`` (N_u, C), kind ``cached`` or ``oof``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os

import numpy as np

from qdaed.detector import Detector
from qdaed.errors import InputError
from qdaed.features.prepare import Normalizer
from qdaed.io.atomic import atomic_open, atomic_write_text
from qdaed.io.strictjson import read_json_file
from qdaed.metrics import threshold_at_eer
from qdaed.train import schedules as S
from qdaed.train.loop import Distillation
from qdaed.train.recipes import DistillSpec, recipe_config


def config_digest(cfg):
    """SHA-256 of a RunConfig's canonical JSON: what a model file's header ties it to."""
    text = json.dumps(cfg.to_dict(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def eer_thresholds(scores, labels):
    """Per-class decision thresholds at the validation EER point; 0.5 for a class whose
    validation split lacks positives or negatives (the EER point is undefined there)."""
    return np.array([threshold_at_eer(s, y) if 0 < y.sum() < y.size else 0.5
                     for s, y in zip(scores.T, labels.T)])


def save_array(path, array):
    """np.save (no pickle), atomically."""
    with atomic_open(path, "wb") as f:
        np.save(f, np.ascontiguousarray(array), allow_pickle=False)


def load_array(path):
    return np.load(path, allow_pickle=False)


def targets_path(teacher_dir, kind, part):
    """Where the teacher's soft targets of ``kind`` (cached | oof) on ``part`` (train |
    transfer) are kept."""
    return teacher_dir / f"teacher.{kind}-targets-{part}.npy"


def distilled_name(recipe=None):
    return "distilled" if recipe is None else f"distilled-{recipe}"


class SeedStages:
    """The stages of one seed of a run in ``out`` (arrays prepared by the run)."""

    def __init__(self, cfg, spec, seed, out, log, resume, epochs_left):
        """cfg: RunConfig; spec: the DistillSpec with the run's chosen (T, λ);
        epochs_left: [n or None], shared count of epochs before a simulated interruption."""
        self.cfg, self.spec, self.seed, self.out = cfg, spec, seed, out
        self.log, self.resume, self.epochs_left = log, resume, epochs_left
        self.digest = config_digest(cfg)
        arrays = out / "arrays"
        self.split = S.Split(*(load_array(arrays / f"{n}.npy")
                               for n in ("x_train", "y_train", "x_val", "y_val")))
        self.norm = Normalizer(load_array(arrays / "norm_mean.npy"),
                               load_array(arrays / "norm_std.npy"))
        tpath = arrays / "x_transfer.npy"
        self.x_transfer = load_array(tpath) if tpath.exists() else None
        self.meta = read_json_file(arrays / "meta.json", allow_nan=True)
        self.models_dir = out / "models" / f"seed{seed}"
        self.ckpt_dir = out / "checkpoints" / f"seed{seed}"
        self.models_dir.mkdir(parents=True, exist_ok=True)
        self.ckpt_dir.mkdir(parents=True, exist_ok=True)
        self._teacher = None

    # -- the one stage runner ---------------------------------------------------------------
    def stage(self, name, schedule, bits, train, models_dir=None):
        """The Detector of stage ``name``: its model file when a matching one exists, else
        ``train()`` → (model, {name: QuantizedTensor}, History or None), written at once."""
        path = (models_dir or self.models_dir) / f"{name}.safetensors"
        if path.exists():
            det = Detector.load(path)
            self._check_header(path, det, name, schedule, bits)
            self.log(f"seed {self.seed} {name}: finished earlier, loaded {path.name}")
            return det
        model, quantized, history = train()
        return self._finish(path, name, schedule, bits, model, quantized, history)

    def _check_header(self, path, det, name, schedule, bits):
        want = {"name": name, "schedule": schedule, "bits": bits,
                "seed": self._stage_seed(name), "config_sha256": self.digest}
        got = {k: det.info.get(k) for k in want}
        if got != want:
            diff = ", ".join(f"{k} {got[k]!r} (this run: {want[k]!r})"
                             for k in want if got[k] != want[k])
            raise InputError(f"{path}: not this run's {name} model ({diff}); remove the file "
                             f"to train it again, or use another --out")

    def _stage_seed(self, name):
        return self.cfg.seed if name == "teacher" and self.cfg.shared_teacher else self.seed

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

    def _finish(self, path, name, schedule, bits, model, quantized, history):
        cfg = self.cfg
        x_val, y_val = self.split.val
        det = Detector(model, self.norm, self.meta["frames"], tuple(cfg.classes),
                       self.meta["feature_options"], np.zeros(len(cfg.classes)), quantized,
                       {"name": name, "schedule": schedule, "bits": bits,
                        "seed": self._stage_seed(name), "config_sha256": self.digest})
        det.thresholds = eer_thresholds(det.scores(x_val), y_val)
        if history is not None:  # beside the model file, which holds only what inference needs
            atomic_write_text(path.with_name(f"{name}.history.json"), json.dumps({
                "train_loss": history.train_loss, "val_mean_eer": history.val_mean_eer,
                "best_epoch": history.best_epoch}, indent=1) + "\n")
        det.save(path)
        ckpt = self.ckpt_dir / f"{name}.ckpt"
        if ckpt.exists():
            ckpt.unlink()
        self.log(f"seed {self.seed} {name}: {det.num_parameters()} params, "
                 f"{det.accounted_bytes()} bytes -> {path.name}")
        return det

    # -- the teacher and its soft targets ---------------------------------------------------
    def teacher_dir(self):
        return self.out / "models" / f"seed{self._stage_seed('teacher')}"

    def teacher_stage(self, specs):
        """Train (or load) the teacher and write the soft targets every spec of ``specs``
        needs (cached and/or out-of-fold; on-the-fly targets need none)."""
        cfg = self.cfg
        tdir = self.teacher_dir()
        tdir.mkdir(parents=True, exist_ok=True)
        teacher = self.stage("teacher", "teacher", None, lambda: _with_quantized(S.train_teacher(
            self.split, dataclasses.asdict(cfg.teacher), cfg.schedule("train_teacher", self.seed),
            pretrain=self._pretraining(), pretrain_progress=self._fit_kw(
                "teacher-pretrain")["progress"], **self._fit_kw("teacher"))), models_dir=tdir)
        self._teacher = teacher
        for kind in sorted({s.targets for s in specs} - {"on_the_fly"}):
            z_path = targets_path(tdir, kind, "train")
            u_path = targets_path(tdir, kind, "transfer")
            if z_path.exists() and (self.x_transfer is None or u_path.exists()):
                continue
            if kind == "oof":
                folds = next(s.folds for s in specs if s.targets == "oof")
                self.log(f"seed {self.seed}: out-of-fold targets from {folds} fold teachers")
                z, z_u, _ = S.out_of_fold_teacher_logits(
                    self.split, dataclasses.asdict(cfg.teacher),
                    cfg.schedule("train_teacher", self.seed), folds, self.x_transfer,
                    fold_fit_kw=lambda k: self._fit_kw(f"teacher-fold{k}"))
            else:
                z = S.teacher_logits(teacher.model, self.split.x_train)
                z_u = (None if self.x_transfer is None
                       else S.teacher_logits(teacher.model, self.x_transfer))
            if z_u is not None:
                save_array(u_path, z_u)
            save_array(z_path, z)      # last: its presence means the pair is complete
        return teacher

    def _pretraining(self):
        """(Split of the synthetic pretraining clips, epochs), or None (no pretraining)."""
        if not self.cfg.teacher.pretrain_clips:
            return None
        arrays = self.out / "arrays"
        split = S.Split(*(load_array(arrays / f"{n}.npy") for n in (
            "x_pretrain", "y_pretrain", "x_pretrain_val", "y_pretrain_val")))
        return split, self.cfg.teacher.pretrain_epochs

    @property
    def teacher(self):
        if self._teacher is None:
            self._teacher = Detector.load(self.teacher_dir() / "teacher.safetensors")
        return self._teacher

    def _targets(self, spec):
        """(z on the training clips, z_u on the transfer clips or None) of ``spec``'s kind."""
        if spec.targets == "on_the_fly":
            return None, None
        tdir = self.teacher_dir()
        z = load_array(targets_path(tdir, spec.targets, "train"))
        use_transfer = spec.transfer and self.x_transfer is not None
        return z, load_array(targets_path(tdir, spec.targets, "transfer")) if use_transfer \
            else None

    def distillation(self, spec):
        """(the :class:`~qdaed.train.loop.Distillation` of a recipe — cached or on-the-fly
        targets, T, λ, the transfer set — and its augmentation keywords for fit())."""
        z, z_u = self._targets(spec)
        teacher = self.teacher.model if spec.targets == "on_the_fly" else None
        transfer = ((self.x_transfer, z_u)
                    if spec.transfer and self.x_transfer is not None and spec.lam > 0 else None)
        aug = ({"augment": spec.augment, "bin_scale": 1.0 / self.norm.std}
               if spec.targets == "on_the_fly" and spec.augment.enabled else {})
        return Distillation(spec.temperature, spec.lam, teacher_logits=z, teacher=teacher,
                            transfer=transfer), aug

    def train_distilled(self, name="distilled", spec=None):
        """(model, History) of a distilled student (no model file; the tuning uses it)."""
        distill, aug = self.distillation(spec or self.spec)
        return S.train_distilled(self.split, dataclasses.asdict(self.cfg.student),
                                 self.cfg.schedule("train_student", self.seed), distill,
                                 **aug, **self._fit_kw(name))

    # -- every stage of the seed --------------------------------------------------------------
    PARTS = ("student", "distilled")

    def run(self, part=None):
        """Train the seed's models: every one (``part`` None), or one of the two chains that
        share nothing but the data and the teacher: "student" (the baseline student and
        qat-k, trained from it) or "distilled" (the distilled students, qd-k and ptq-k from
        them). Every stage has its own seeds, so a model is the same whichever way the
        stages are grouped into jobs (with the same threads per job)."""
        if part not in (None, *self.PARTS):
            raise InputError(f"part: expected one of {self.PARTS} or None, got {part!r}")
        cfg, seed, split = self.cfg, self.seed, self.split
        extra = {r: DistillSpec.from_config(recipe_config(r)) for r in cfg.extra_recipes}
        if not cfg.shared_teacher:
            self.teacher_stage([self.spec, *extra.values()])
        if part != "distilled":
            student = self.stage("student", "student", None, lambda: _with_quantized(
                S.train_student(split, dataclasses.asdict(cfg.student),
                                cfg.schedule("train_student", seed), **self._fit_kw("student"))))
        if part != "student":
            distilled = self.stage("distilled", "distilled", None, lambda: _with_quantized(
                self.train_distilled()))
            for r, spec in extra.items():   # the ablation's other recipes, same seed
                name = distilled_name(r)
                self.stage(name, f"distilled ({r} recipe)", None, lambda: _with_quantized(
                    self.train_distilled(name, spec)))
            distill, aug = self.distillation(self.spec)
        for k in cfg.quant.bits:
            qspec = cfg.quant.spec(k)
            tcfg = cfg.schedule("train_quant", seed)
            if part != "student":
                name = f"qd-{k}bit"
                self.stage(name, "quantized distillation", k, lambda: _reorder(
                    S.quantized_distillation(distilled.model, split, tcfg, distill, qspec,
                                             **aug, **self._fit_kw(name))))
                self.stage(f"ptq-{k}bit", "post-training quantization", k, lambda: (
                    *S.post_training_quantization(distilled.model, qspec), None))
            if part != "distilled":
                name = f"qat-{k}bit"
                self.stage(name, "quantization-aware training", k, lambda: _reorder(
                    S.quantization_aware_training(student.model, split, tcfg, qspec,
                                                  **self._fit_kw(name))))


def _with_quantized(model_history):
    """(model, History) of a float schedule → (model, {}, History)."""
    model, history = model_history
    return model, {}, history


def _reorder(model_history_quantized):
    """(model, History, quantized) of a quantized schedule → (model, quantized, History)."""
    model, history, quantized = model_history_quantized
    return model, quantized, history


def remove_orphan_temporaries(out):
    """Temporary files an interrupted atomic write left in a run directory (``.NAME.*.tmp``
    of qdaed.io.atomic, ``*.ckpt.tmp``): removed on start; returns how many."""
    n = 0
    for root, _, files in os.walk(out):
        for f in files:
            if f.endswith(".tmp"):
                os.remove(os.path.join(root, f))
                n += 1
    return n
