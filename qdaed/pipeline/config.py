"""The typed configuration of a ``qdaed pipeline`` run, built and validated once.

A run's configuration is a :class:`RunConfig`: frozen dataclasses for the data, the LFBE
options, the two architectures, the three training schedules, the distillation recipe
(:class:`~qdaed.train.recipes.DistillSpec`), the quantization and the seeds. It is built
from a preset (:mod:`qdaed.pipeline.presets`), an optional ``--config FILE.json`` and the
command-line options, in that order, by :func:`RunConfig.from_dict` on the merged dict — the
one place where every field is checked (unknown fields are refused with the known ones
listed). ``to_dict()`` gives it back as JSON: what config.json holds and what ``--config``
accepts, so a run's config.json, edited, is a valid ``--config`` for the next run.

Each layer below takes the typed pieces it needs (the data layer a :class:`DataConfig`, the
schedules a :class:`~qdaed.train.loop.TrainConfig`, the quantizer a
:class:`~qdaed.train.loop.QuantSpec`), never the whole configuration read by string keys.

About 520 lines, on purpose: every section's dataclass with its checks, and the rules that
turn command-line options into configuration fields (:func:`option_overrides`), are the one
place a run's configuration is defined and validated; split, the checks would drift apart.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from qdaed.data.manifest import CLASSES, resolve_manifest
from qdaed.data.synth import LabelNoise, parse_label_noise
from qdaed.errors import InputError
from qdaed.io.strictjson import parse_json
from qdaed.models.quantized import QuantSpec
from qdaed.pipeline.featuresets import transfer_set_size
from qdaed.train.loop import TrainConfig
from qdaed.train.recipes import (NO_TRANSFER_RECIPE, DistillSpec, RECIPES, check_temperature,
                                 recipe_config)
from qdaed.validate import check_choice, check_float, check_int

SOURCES = ("synth", "manifest")
CORPORA = ("v1", "v2")
POOLINGS = ("mean", "last", "max")
TEACHER_DEPTHS = (18, 34, 50)
MAX_BITS = 16


def _optional_float(name, value, lo, hi):
    return None if value is None else check_float(name, value, lo=lo, hi=hi)


def _optional_str(name, value):
    if value is not None and (not isinstance(value, str) or not value):
        raise InputError.at(name, f"expected a non-empty string or null, got {value!r}")
    return value


def _bool(name, value):
    if not isinstance(value, bool):
        raise InputError.at(name, f"expected true or false, got {value!r}")
    return value


@dataclass(frozen=True)
class DataConfig:
    """Where the clips come from (qdaed.pipeline.featuresets has the details)."""

    source: str = "synth"           # synth | manifest
    corpus: str = "v2"              # synthetic corpus: v2 (noisy weak labels, clean truth) | v1
    label_noise: dict = field(default_factory=lambda: {"missing": 0.2, "false_positive": 0.02})
    n_clips: int = 1000
    n_transfer: int = 2000          # unlabelled synthetic transfer clips (distillation only)
    clip_seconds: float = 3.0
    synth_seed: int = 20190701
    split_fractions: tuple = (0.6, 0.2, 0.2)   # train, validation, test (synthetic; manifests
    manifest: str = None                       # without a split column)
    audio_root: str = None
    max_freq: float = None          # band-limit control: mel filters stop here (Hz)
    equal_seconds: float = None     # equal-length control: every clip cut/looped to this
    skip_missing: bool = False      # manifest: train without missing/unreadable clips (else
                                    # the run is refused before training)

    def __post_init__(self):
        check_choice("source", self.source, SOURCES)
        check_choice("corpus", self.corpus, CORPORA)
        if not isinstance(self.label_noise, dict) or set(self.label_noise) - {
                "missing", "false_positive"}:
            raise InputError.at("label_noise", f"expected an object with 'missing' and "
                                f"'false_positive', got {self.label_noise!r}")
        try:
            LabelNoise(**self.label_noise)      # the rates' checks live with the corpus
        except InputError as exc:
            raise exc.within("label_noise") from None
        check_int("n_clips", self.n_clips, lo=10, hi=10_000_000)
        check_int("n_transfer", self.n_transfer, lo=0, hi=1_000_000)
        check_float("clip_seconds", self.clip_seconds, lo=0.05, hi=3600.0)
        check_int("synth_seed", self.synth_seed, lo=0, hi=2**63 - 1)
        fr = self.split_fractions
        if (not isinstance(fr, (list, tuple)) or len(fr) != 3
                or any(check_float("split_fractions", f, lo=0.0, hi=1.0) <= 0 for f in fr)
                or abs(sum(fr) - 1.0) > 1e-9):
            raise InputError.at("split_fractions", f"expected three positive fractions (train, "
                                f"validation, test) summing to 1, got {fr!r}")
        object.__setattr__(self, "split_fractions", tuple(float(f) for f in fr))
        _optional_str("manifest", self.manifest)
        _optional_str("audio_root", self.audio_root)
        if self.source == "manifest" and (self.manifest is None or self.audio_root is None):
            raise InputError("source 'manifest': needs manifest and audio_root")
        _optional_float("max_freq", self.max_freq, 100.0, 1e6)
        _optional_float("equal_seconds", self.equal_seconds, 0.05, 3600.0)
        _bool("skip_missing", self.skip_missing)


@dataclass(frozen=True)
class FeaturesConfig:
    """LFBE options of the run (the rest are qdaed.features.fbank's defaults)."""

    num_mel_bins: int = 64
    low_freq: float = 20.0
    high_freq: float = 8000.0

    def __post_init__(self):
        check_int("num_mel_bins", self.num_mel_bins, lo=1, hi=512)
        check_float("low_freq", self.low_freq, lo=0.0)
        check_float("high_freq", self.high_freq, lo=self.low_freq, lo_open=True)


@dataclass(frozen=True)
class TeacherConfig:
    """ResNet teacher: depth (18, 34, 50) and stem width (docs/method/resnet.md); ``pretrain_clips`` > 0
    pretrains it on that many clips of the synthetic corpus (v2, through the run's own front
    end and normalisation, cut or looped to the run's clip length) for ``pretrain_epochs``
    epochs before its training on the run's data (0: no pretraining)."""

    depth: int = 18
    width: int = 16
    pretrain_clips: int = 0
    pretrain_epochs: int = 6

    def __post_init__(self):
        check_choice("depth", self.depth, TEACHER_DEPTHS)
        check_int("width", self.width, lo=1, hi=1024)
        if check_int("pretrain_clips", self.pretrain_clips, lo=0, hi=1_000_000) and \
                self.pretrain_clips < 50:
            raise InputError.at("pretrain_clips", f"0 (off) or at least 50 (a validation split "
                                f"with every class), got {self.pretrain_clips}")
        check_int("pretrain_epochs", self.pretrain_epochs, lo=1, hi=1000)


@dataclass(frozen=True)
class StudentConfig:
    """LSTM student (docs/method/lstm.md)."""

    hidden_size: int = 32
    num_layers: int = 1
    pooling: str = "mean"

    def __post_init__(self):
        check_int("hidden_size", self.hidden_size, lo=1, hi=8192)
        check_int("num_layers", self.num_layers, lo=1, hi=16)
        check_choice("pooling", self.pooling, POOLINGS)


@dataclass(frozen=True)
class QuantConfig:
    """k-bit quantization of the qd, ptq and qat models (docs/method/quantization.md): the bit widths, and one
    :class:`~qdaed.train.loop.QuantSpec` per width (``spec(k)``); ``seed`` seeds stochastic
    rounding."""

    bits: tuple = (8, 4, 2)
    group: object = "row"
    symmetric: bool = False
    rounding: str = "nearest"
    seed: int = 0

    def __post_init__(self):
        if not isinstance(self.bits, (list, tuple)):
            raise InputError.at("bits", f"expected a list of bit widths, got {self.bits!r}")
        bits = tuple(check_int("bits", k, lo=1, hi=MAX_BITS) for k in self.bits)
        if len(set(bits)) != len(bits):
            raise InputError.at("bits", f"a bit width is listed twice in {list(bits)}")
        object.__setattr__(self, "bits", bits)
        if not (self.group in ("tensor", "row") or (isinstance(self.group, int)
                                                    and not isinstance(self.group, bool)
                                                    and self.group >= 1)):
            raise InputError.at("group", f"expected 'tensor', 'row' or a bucket size >= 1, got "
                                f"{self.group!r}")
        _bool("symmetric", self.symmetric)
        check_choice("rounding", self.rounding, ("nearest", "stochastic"))
        check_int("seed", self.seed, lo=0, hi=2**63 - 1)
        if self.symmetric and 1 in bits:
            raise InputError.at("bits", "the symmetric quantizer needs at least 2 bits")

    def spec(self, bits):
        return QuantSpec(bits, group=self.group, symmetric=self.symmetric,
                         rounding=self.rounding, seed=self.seed)


@dataclass(frozen=True)
class EventEvalConfig:
    """Event metrics on long synthetic recordings (qdaed.pipeline.eventeval): ``recordings``
    of ``length`` × the clip length each; 0 recordings switch it off."""

    recordings: int = 10
    length: int = 10

    def __post_init__(self):
        check_int("recordings", self.recordings, lo=0, hi=10_000)
        check_int("length", self.length, lo=1, hi=10_000)


@dataclass(frozen=True)
class RunConfig:
    """Everything a run depends on; config.json is ``to_dict()``."""

    preset: str = "custom"
    classes: tuple = CLASSES
    data: DataConfig = field(default_factory=DataConfig)
    features: FeaturesConfig = field(default_factory=FeaturesConfig)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    student: StudentConfig = field(default_factory=StudentConfig)
    train_teacher: TrainConfig = field(default_factory=TrainConfig)
    train_student: TrainConfig = field(default_factory=TrainConfig)
    train_quant: TrainConfig = field(default_factory=TrainConfig)
    distill: DistillSpec = field(default_factory=DistillSpec)
    quant: QuantConfig = field(default_factory=QuantConfig)
    shared_teacher: bool = True     # one teacher (first seed) distils every seed's students
    threads_per_job: int = 1        # Numba/BLAS threads of each seed job (results depend on it)
    seed: int = 0                   # first training seed
    seeds: int = 3                  # number of seeds: seed, seed + 1, …
    extra_recipes: tuple = ()       # more distilled students (distilled-{recipe}), same seeds
    event_eval: EventEvalConfig = field(default_factory=EventEvalConfig)

    def __post_init__(self):
        if not isinstance(self.preset, str):
            raise InputError.at("preset", f"expected a name, got {self.preset!r}")
        if (not isinstance(self.classes, (list, tuple)) or tuple(self.classes) != CLASSES):
            raise InputError.at("classes", f"this qdaed detects {list(CLASSES)}, got "
                                f"{self.classes!r}")
        object.__setattr__(self, "classes", tuple(self.classes))
        for name in ("train_teacher", "train_student", "train_quant"):
            cfg = getattr(self, name)
            if cfg.seed != 0:
                raise InputError(f"{name}.seed: set by the run's seed and seeds, not per "
                                 f"schedule")
            try:
                cfg.validate()
            except InputError as exc:
                raise exc.within(name) from None
        _bool("shared_teacher", self.shared_teacher)
        if self.teacher.pretrain_clips and "oof" in (self.distill.targets, *[
                RECIPES[r]["targets"] for r in self.extra_recipes if r in RECIPES]):
            raise InputError.at("teacher.pretrain_clips", "the out-of-fold teachers are not "
                                "pretrained; use another recipe, or pretrain_clips 0")
        check_int("threads_per_job", self.threads_per_job, lo=1, hi=1024)
        check_int("seed", self.seed, lo=0, hi=2**31 - 1)
        check_int("seeds", self.seeds, lo=1, hi=10_000)
        if not isinstance(self.extra_recipes, (list, tuple)):
            raise InputError.at("extra_recipes", f"expected a list of recipe names, got "
                                f"{self.extra_recipes!r}")
        for r in self.extra_recipes:
            check_choice("extra_recipes", r, tuple(RECIPES))
        object.__setattr__(self, "extra_recipes", tuple(self.extra_recipes))
        d = self.data
        if d.max_freq is not None and d.max_freq > self.features.high_freq:
            raise InputError.at("data.max_freq", f"{d.max_freq:g} Hz is above the mel filters' "
                                f"high_freq ({self.features.high_freq:g} Hz)")
        if self.distill.transfer and d.source == "synth" and d.n_transfer == 0:
            raise InputError.at("distill", f"recipe {self.distill.recipe!r} needs an unlabelled "
                                f"transfer set (--transfer N > 0), or a recipe without one "
                                f"(--recipe paper, oof)")

    # -- derived values ---------------------------------------------------------------------
    @property
    def seed_list(self):
        return list(range(self.seed, self.seed + self.seeds))

    def schedule(self, name, seed):
        """The TrainConfig of schedule ``name`` (train_teacher, …) for one seed."""
        return dataclasses.replace(getattr(self, name), seed=seed)

    # -- JSON ---------------------------------------------------------------------------------
    def to_dict(self):
        out = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, DistillSpec):
                v = v.to_config()
            elif isinstance(v, TrainConfig):
                v = {k: x for k, x in dataclasses.asdict(v).items() if k != "seed"}
            elif dataclasses.is_dataclass(v):
                v = dataclasses.asdict(v)
            out[f.name] = _jsonable(v)
        return out

    @classmethod
    def from_dict(cls, d, where="config"):
        """Strictly from a dict (a preset merged with ``--config`` and options)."""
        return _build(cls, d, where)

    def merged(self, overrides, where="config"):
        """A new configuration: ``overrides`` (a partial dict) merged into this one."""
        return RunConfig.from_dict(merge_dicts(self.to_dict(), overrides), where)


def _jsonable(v):
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    return v


_NESTED = {"data": DataConfig, "features": FeaturesConfig, "teacher": TeacherConfig,
           "student": StudentConfig, "train_teacher": TrainConfig,
           "train_student": TrainConfig, "train_quant": TrainConfig, "quant": QuantConfig,
           "event_eval": EventEvalConfig}


def _build(cls, d, where):
    if not isinstance(d, dict):
        raise InputError.at(where, f"expected an object, got {type(d).__name__}")
    if cls is DistillSpec:
        try:
            return DistillSpec.from_config(d)
        except InputError as e:
            raise e.within(where) from None
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(d) - set(names))
    if unknown:
        raise InputError.at(where, f"unknown field(s) {unknown}; known: {sorted(names)}")
    kw = {}
    for name, value in d.items():
        sub = DistillSpec if (cls is RunConfig and name == "distill") else (
            _NESTED.get(name) if cls is RunConfig else None)
        kw[name] = _build(sub, value, f"{where}.{name}") if sub else value
    try:
        return cls(**kw)
    except InputError as e:
        raise (e if str(e).startswith(where) else e.within(where)) from None


def merge_dicts(base, over):
    """Deep merge: ``over``'s values replace ``base``'s; nested objects merge key by key."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict) and k != "label_noise":
            out[k] = merge_dicts(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def choose_recipe(d, named, fixed=None):
    """(config dict, choice) of a run whose recipe was not named: the configured recipe
    (the presets': ``transfer``) when the data has an unlabelled transfer set or the recipe needs
    none; otherwise ``paper`` (cached targets on the training clips, no transfer set), with the
    distill fields the user set (``fixed``: e.g. --lam) applied over it.

    d: a merged config dict (preset, --config, options); named: True when --recipe or the
    --config file named a recipe (it is then kept, and a recipe that cannot run stays an
    error). choice: ``{"recipe", "named", "transfer_clips", "reason"}``, for the log and
    results.json. The data is looked at before any work: the synthetic corpus's n_transfer, a
    manifest's rows with split ``unlabeled`` (qdaed.pipeline.featuresets.transfer_set_size).
    """
    data = _build(DataConfig, d.get("data", {}), "config.data")
    distill = _build(DistillSpec, d.get("distill", {}), "config.distill")
    n = transfer_set_size(data)
    where = (f"manifest {data.manifest}" if data.source == "manifest"
             else "the synthetic corpus")
    choice = {"recipe": distill.recipe, "named": bool(named), "transfer_clips": int(n)}
    if named:
        choice["reason"] = "as requested"
        return d, choice
    if not distill.transfer or n > 0:
        choice["reason"] = "the default" + (f"; {where} has {n} unlabelled transfer clips"
                                            if distill.transfer else "")
        return d, choice
    d = {**d, "distill": merge_dicts(recipe_config(NO_TRANSFER_RECIPE), fixed or {})}
    how = ("no rows with split 'unlabeled'" if data.source == "manifest"
           else "no transfer clips (n_transfer 0)")
    choice.update(recipe=NO_TRANSFER_RECIPE, reason=(
        f"no recipe was named, and the default "
        f"({distill.recipe}) needs an unlabelled transfer set, but {where} has {how}; "
        f"--recipe names another"))
    return d, choice


def option_overrides(base, *, seeds=None, seed=None, bits=None, recipe=None, temperature=None,
                     lam=None, tune=False, corpus=None, label_noise=None, transfer=None,
                     clips=None, manifest=None, audio_root=None, skip_missing=False,
                     max_freq=None, equal_seconds=None):
    """The ``qdaed pipeline`` options as a partial config dict, checked against each other and
    against ``base``.

    Each value is its option's (``--seeds`` … ``--equal-seconds``); None (False for the
    flags) where the option was not given. The rules: a manifest needs its audio folder,
    a preset of real recordings needs ``audio_root`` and takes no synthetic-corpus option
    (corpus, label noise, transfer, clips), nor does ``manifest``; only corpus v2 has label
    noise; the temperature is in range.

    Parameters
    ----------
    base : dict
        The configuration the options apply over (the preset merged with ``--config``).
    seeds, seed : int, optional
        The number of seeds and the first seed.
    bits : list of int, optional
        Bit widths (checked by :class:`QuantConfig`).
    recipe : str, optional
        A distillation recipe of :data:`~qdaed.train.recipes.RECIPES`: its whole
        ``distill`` section.
    temperature, lam : float, optional
        Distillation temperature and weight, over the recipe's.
    tune : bool
        Choose T and λ on the validation split.
    corpus : str, optional
        The synthetic corpus, ``"v1"`` or ``"v2"``.
    label_noise : str, optional
        Corpus v2's label noise, ``"MISSING[,FALSE_POSITIVE]"``
        (:func:`~qdaed.data.synth.parse_label_noise`; FALSE_POSITIVE omitted: ``base``'s).
    transfer, clips : int, optional
        Synthetic transfer clips and clips.
    manifest : str, optional
        A manifest's path or a shipped manifest's name
        (:func:`~qdaed.data.manifest.resolve_manifest`).
    audio_root : str or os.PathLike, optional
        The folder of the manifest's (or the preset's manifest's) recordings.
    skip_missing : bool
        Train without missing or unreadable clips.
    max_freq, equal_seconds : float, optional
        The band-limit and equal-length controls.

    Returns
    -------
    dict
        The fields the options set (``seeds``, ``seed``, ``quant``, ``data``, ``distill``),
        to merge over ``base`` (:func:`merge_dicts`).

    Raises
    ------
    InputError
        An option that does not go with the others or with ``base``; raised with the
        option's name as ``field`` (:meth:`~qdaed.errors.InputError.at`) where the message
        names one option.
    """
    over, data, distill = {}, {}, {}
    if seeds is not None:
        over["seeds"] = seeds
    if seed is not None:
        over["seed"] = seed
    if bits is not None:
        over["quant"] = {"bits": bits}
    if recipe is not None:
        distill.update(recipe_config(recipe))
    if temperature is not None:
        distill["temperature"] = check_temperature("--temperature", temperature)
    if lam is not None:
        distill["lam"] = lam
    if tune:
        distill["tune"] = True
    if corpus is not None:
        data["corpus"] = corpus
    if label_noise is not None:
        if data.get("corpus", base["data"]["corpus"]) != "v2":
            raise InputError.at("--label-noise", "only corpus v2 has label noise (corpus v1's "
                                                 "labels are clean)")
        data["label_noise"] = parse_label_noise(label_noise, "--label-noise",
                                                base["data"]["label_noise"]["false_positive"])
    if transfer is not None:
        data["n_transfer"] = transfer
    if clips is not None:
        data["n_clips"] = clips
    synthetic = {"--corpus": corpus, "--label-noise": label_noise, "--transfer": transfer,
                 "--clips": clips}
    preset_reads_manifest = base["data"]["source"] == "manifest"
    if manifest is not None and audio_root is None:
        raise InputError("--manifest and --audio-root go together")
    if audio_root is not None and manifest is None and not preset_reads_manifest:
        raise InputError("--manifest and --audio-root go together (or a preset of real "
                         "recordings: --preset real --audio-root DIR)")
    if preset_reads_manifest and manifest is None:
        if audio_root is None:
            raise InputError.at("--audio-root", f"preset {base.get('preset')} trains on the real "
                                f"recordings its manifest ({base['data']['manifest']}) lists; "
                                f"give the folder that holds them (for the real corpus: the "
                                f"folder with audio/urbansound8k, audio/donateacry, "
                                f"audio/esc10)")
        for option, value in synthetic.items():
            if value is not None:
                raise InputError.at(option, f"applies to the synthetic corpus, not to preset "
                                            f"{base.get('preset')}'s recordings")
        data.update(manifest=resolve_manifest(base["data"]["manifest"]),
                    audio_root=str(audio_root))
    if manifest is not None:
        for option, value in synthetic.items():
            if value is not None:
                raise InputError.at(option, "applies to the synthetic corpus, not to "
                                            "--manifest (a manifest's transfer set is its rows "
                                            "with split 'unlabeled')")
        data.update(source="manifest", manifest=resolve_manifest(manifest),
                    audio_root=str(audio_root), n_transfer=0)
    if skip_missing:
        data["skip_missing"] = True
    if max_freq is not None:
        data["max_freq"] = max_freq
    if equal_seconds is not None:
        data["equal_seconds"] = equal_seconds
    if data:
        over["data"] = data
    if distill:
        over["distill"] = distill
    return over


def read_config_dict(path):
    """The dict of a JSON configuration file: a run's config.json (its ``status`` dropped) or
    a ``--config`` file holding any part of one (merged onto a preset by the caller)."""
    try:
        d = parse_json(Path(path).read_bytes())   # strict: no NaN, no duplicate keys
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot read the configuration ({exc})") from None
    if not isinstance(d, dict):
        raise InputError(f"{path}: expected a JSON object, got {type(d).__name__}")
    d.pop("status", None)
    return d


def read_config(path):
    """The :class:`RunConfig` of a run's config.json."""
    return RunConfig.from_dict(read_config_dict(path), where=str(path))
