"""Distillation recipes: how the student gets its soft targets (docs/method/schedules.md, issue 9).

A recipe is a :class:`DistillSpec`, built and validated once from the run configuration's
``distill`` section (``--recipe``, ``--temperature``, ``--lam``). Its fields are orthogonal:

    targets     where q = σ(z_t / T) comes from
                  cached      the teacher's logits on each training clip, computed once (the
                              paper's setting as we read it; Hinton et al. 2015)
                  oof         out-of-fold: K teachers on K folds of the training clips, each
                              clip's logits from the teacher that never trained on it, so the
                              targets are not memorised labels (stacking, Wolpert 1992)
                  on_the_fly  the frozen teacher (BN in eval mode) evaluated on every batch,
                              on the same augmented view as the student (Beyer et al. 2022)
    transfer    also distil on the run's unlabelled transfer set (soft term only; Buciluǎ,
                Caruana & Niculescu-Mizil 2006, "Model compression", who labelled synthetic
                transfer data with the teacher; Hinton et al. 2015 §2)
    augment     the batch augmentations of :mod:`qdaed.train.augment` (on_the_fly only)
    temperature, lam   T and λ of L = (1 − λ) L_hard + λ T² L_soft
    tune        choose (T, λ) from ``grid`` on the validation split (first seed), never on test

Named recipes (``--recipe``):

    paper       cached targets on the training clips, T = 2, λ = 0.5 (what qdaed did before)
    transfer    cached targets + the transfer set, T = 1, λ = 0.9: the values EfficientAT
                (Schmid et al. 2023) uses for sigmoid distillation on AudioSet; σ(z/T) with
                T > 1 pulls every multi-label target toward 0.5 (docs/method/losses.md)
    oof         out-of-fold targets (4 folds), T = 1, λ = 0.9; no transfer set, so it suits
                manifests without ``unlabeled`` rows (with ``transfer`` set, the fold
                teachers' mean logit scores the transfer clips)
    consistent  on-the-fly teacher on augmented views (mixup, shift, SpecAugment masks, gain)
                + the transfer set, T = 1, λ = 0.9
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field

from qdaed.errors import InputError
from qdaed.train.augment import Augment
from qdaed.validate import check_choice, check_float, check_int

TARGETS = ("cached", "oof", "on_the_fly")
# T below this overflows nothing but makes σ(z/T) a step function of the logits' rounding
MIN_TEMPERATURE = 0.05
MAX_TEMPERATURE = 100.0

CONSISTENT_AUGMENT = {"mixup_alpha": 0.4, "max_shift": 50, "time_masks": 2, "time_mask": 30,
                      "freq_masks": 2, "freq_mask": 8, "gain_db": 6.0}

# The presets' recipe, and what a run that did not name one uses when its data has no
# unlabelled transfer set (qdaed.pipeline.config.choose_recipe)
DEFAULT_RECIPE = "transfer"
NO_TRANSFER_RECIPE = "paper"

RECIPES = {
    "paper": {"targets": "cached", "transfer": False, "temperature": 2.0, "lam": 0.5},
    "transfer": {"targets": "cached", "transfer": True, "temperature": 1.0, "lam": 0.9},
    "oof": {"targets": "oof", "transfer": False, "temperature": 1.0, "lam": 0.9, "folds": 4},
    "consistent": {"targets": "on_the_fly", "transfer": True, "temperature": 1.0, "lam": 0.9,
                   "augment": CONSISTENT_AUGMENT},
}


@dataclass(frozen=True)
class DistillSpec:
    """One distillation recipe (see the module docstring)."""

    recipe: str = "transfer"
    targets: str = "cached"
    transfer: bool = True
    temperature: float = 1.0
    lam: float = 0.9
    folds: int = 4
    augment: Augment = field(default_factory=Augment)
    tune: bool = False
    grid: tuple = ((1.0, 0.5), (1.0, 0.9), (2.0, 0.5), (2.0, 0.9))

    def __post_init__(self):
        check_choice("recipe", self.recipe, (*RECIPES, "custom"))
        check_choice("targets", self.targets, TARGETS)
        check_temperature("temperature", self.temperature)
        check_float("lam", self.lam, lo=0.0, hi=1.0)
        check_int("folds", self.folds, lo=2, hi=20)
        if not isinstance(self.transfer, bool) or not isinstance(self.tune, bool):
            raise InputError("transfer, tune: expected true or false")
        if self.augment.enabled and self.targets != "on_the_fly":
            raise InputError("augment: needs targets 'on_the_fly' (cached or out-of-fold "
                             "logits belong to the clean clip, not to the augmented view)")
        for t, lam in self.grid:
            check_temperature("grid temperature", t)
            check_float("grid lam", lam, lo=0.0, hi=1.0)

    def to_config(self):
        d = asdict(self)
        d["grid"] = [list(p) for p in self.grid]
        return d

    @classmethod
    def from_config(cls, d):
        """From a run configuration's ``distill`` section (a dict), validated."""
        if not isinstance(d, dict):
            raise InputError(f"distill: expected an object, got {type(d).__name__}")
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(d) - known)
        if unknown:
            raise InputError(f"distill: unknown fields {unknown}; known: {sorted(known)}")
        d = dict(d)
        aug = d.pop("augment", None) or {}
        if not isinstance(aug, dict):
            raise InputError("distill.augment: expected an object")
        try:
            augment = Augment(**aug)
        except TypeError as e:
            raise InputError(f"distill.augment: {e}") from None
        grid = tuple(tuple(p) for p in d.pop("grid", cls.grid))
        if any(len(p) != 2 for p in grid):
            raise InputError("distill.grid: expected [temperature, lam] pairs")
        return cls(augment=augment, grid=grid, **d)


def check_temperature(name, t):
    """T in [0.05, 100]: below, σ(z/T) is a step function; the bound is checked up front."""
    return check_float(name, t, lo=MIN_TEMPERATURE, hi=MAX_TEMPERATURE)


def recipe_config(name):
    """The ``distill`` section of a run configuration for recipe ``name`` (a fresh dict)."""
    if name not in RECIPES:
        raise InputError(f"--recipe: expected one of {', '.join(RECIPES)}, got {name!r}")
    d = {"recipe": name, **copy.deepcopy(RECIPES[name])}
    return DistillSpec.from_config(d).to_config()
