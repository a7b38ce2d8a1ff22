"""``qdaed pipeline``: options → resolved config → :func:`qdaed.pipeline.run.run_pipeline`."""

from __future__ import annotations

from qdaed.commands.options import common
from qdaed.errors import InputError
from qdaed.io.paths import check_output_dir
from qdaed.pipeline.config import (RunConfig, choose_recipe, merge_dicts, option_overrides,
                                   read_config_dict)
from qdaed.pipeline.presets import PRESETS, preset_dict
from qdaed.pipeline.run import run_pipeline
from qdaed.train.recipes import MAX_TEMPERATURE, MIN_TEMPERATURE, RECIPES
from qdaed.validate import check_int


def _bits(text):
    """``8,4,2`` → [8, 4, 2] (the widths are checked by the config's QuantConfig)."""
    try:
        bits = [int(b) for b in text.split(",") if b.strip()]
    except ValueError:
        raise InputError.at("--bits", f"expected comma-separated integers such as 8,4,2, "
                                      f"got {text!r}") from None
    if not bits:
        raise InputError.at("--bits", "expected at least one bit width")
    return bits


def register(sub):
    p = sub.add_parser(
        "pipeline",
        help="run the paper's whole experiment (teacher, student, distillation, quantization)",
        description="Trains the teacher, the baseline and distilled students, and the k-bit "
                    "models (qd, ptq, qat) for every seed; writes results.json, results.md, "
                    "scores.csv, model files, config and log into --out.",
        # --seed None: the preset's (or --config's) first seed, which an option overrides
        parents=[common("out", "seeds", "seed", "jobs", "dask-scheduler", "resume", "quiet",
                        seed=None)],
    )
    p.add_argument("--preset", default="demo", help=f"one of {', '.join(PRESETS)} "
                   "(default demo: synthetic corpus, minutes on 2 cores)")
    p.add_argument("--config", metavar="FILE.json",
                   help="override any field of the preset's configuration with a JSON object "
                        "(any part of a run's config.json; options given here override it)")
    p.add_argument("--bits", help="comma-separated bit widths (default 8,4,2)")
    p.add_argument("--recipe", choices=list(RECIPES),
                   help="distillation recipe (default: transfer when the data has an "
                        "unlabelled transfer set, else paper; see qdaed.train.recipes): "
                        "paper = cached logits, T 2, λ 0.5; transfer = + unlabelled transfer "
                        "set, T 1, λ 0.9; oof = out-of-fold teacher targets; consistent = "
                        "on-the-fly teacher on augmented views")
    p.add_argument("--temperature", type=float,
                   help=f"distillation temperature T in [{MIN_TEMPERATURE:g}, "
                        f"{MAX_TEMPERATURE:g}] (default: the recipe's)")
    p.add_argument("--lam", type=float,
                   help="distillation weight λ in [0, 1] (default: the recipe's)")
    p.add_argument("--tune", action="store_true",
                   help="choose T and λ on the validation split (first seed) from a small grid")
    p.add_argument("--manifest", help="CSV manifest of real audio (instead of synthetic data): "
                                      "a path, or a shipped manifest's name (audioset, "
                                      "real_audio, real_corpus, real_corpus_transfer)")
    p.add_argument("--audio-root", help="folder the manifest's paths are relative to")
    p.add_argument("--max-freq", type=float,
                   help="band-limit control: mel filters end at this frequency (Hz)")
    p.add_argument("--equal-seconds", type=float,
                   help="equal-length control: cut/loop every clip to this many seconds")
    p.add_argument("--skip-missing", action="store_true",
                   help="train without the manifest's missing or unreadable clips (listed in "
                        "OUT/features/bad_audio.csv); without it such clips stop the run "
                        "before any training")
    p.add_argument("--clips", type=int, help="synthetic clips to generate (default: preset's)")
    p.add_argument("--corpus", choices=["v1", "v2"],
                   help="synthetic corpus: v2 (default; AudioSet-like noisy weak labels, test "
                        "metrics against the clean truth) or v1 (clean labels)")
    p.add_argument("--label-noise", metavar="MISSING[,FALSE_POSITIVE]",
                   help="corpus v2's label noise (default 0.2,0.02): the rate of missing "
                        "positives and of false positives, each in [0, 1); FALSE_POSITIVE "
                        "omitted: the preset's")
    p.add_argument("--transfer", type=int, metavar="N",
                   help="unlabelled synthetic transfer clips for distillation (default: the "
                        "preset's; 0 = none)")
    p.set_defaults(func=_run)


# config fields set by an option: an error in one names the option
_OPTION_OF = {"quant.bits": "--bits", "seeds": "--seeds", "seed": "--seed",
              "distill.temperature": "--temperature", "distill.lam": "--lam",
              "data.label_noise": "--label-noise", "data.n_transfer": "--transfer",
              "data.n_clips": "--clips", "data.max_freq": "--max-freq",
              "data.equal_seconds": "--equal-seconds", "data.corpus": "--corpus"}


def _option_overrides(args, base):
    """The command line's options as a partial config dict (applied over ``base``;
    :func:`~qdaed.pipeline.config.option_overrides` checks them)."""
    return option_overrides(
        base, seeds=args.seeds, seed=args.seed,
        bits=None if args.bits is None else _bits(args.bits), recipe=args.recipe,
        temperature=args.temperature, lam=args.lam, tune=args.tune, corpus=args.corpus,
        label_noise=args.label_noise, transfer=args.transfer, clips=args.clips,
        manifest=args.manifest, audio_root=args.audio_root, skip_missing=args.skip_missing,
        max_freq=args.max_freq, equal_seconds=args.equal_seconds)


def resolve_config(args):
    """The run's :class:`~qdaed.pipeline.config.RunConfig`: the preset, then ``--config``,
    then the options, merged and validated once (:func:`resolve_run` without the choice)."""
    return resolve_run(args)[0]


def resolve_run(args):
    """(RunConfig, recipe choice): the preset, then ``--config``, then the options; when
    neither --recipe nor the --config file names a recipe, the recipe that fits the data
    (:func:`~qdaed.pipeline.config.choose_recipe`)."""
    base = preset_dict(args.preset)
    given = read_config_dict(args.config) if getattr(args, "config", None) else {}
    base = merge_dicts(base, given)
    over = _option_overrides(args, base)
    given_distill = given.get("distill") if isinstance(given.get("distill"), dict) else {}
    named = args.recipe is not None or "recipe" in given_distill
    try:
        merged, choice = choose_recipe(merge_dicts(base, over), named,
                                       fixed={**given_distill, **over.get("distill", {})})
        return RunConfig.from_dict(merged), choice
    except InputError as exc:
        option = option_of(exc)
        if option is None:
            raise
        raise InputError.at(option, exc.reason) from None


def option_of(exc):
    """The option that set the config field an ``InputError`` names (its ``field``, as data),
    or None when no option sets it."""
    field = (exc.field or "").removeprefix("config.")
    for path, option in _OPTION_OF.items():
        if field == path or field.startswith(path + "."):
            return option
    return None


def _run(args):
    cfg, choice = resolve_run(args)
    check_output_dir("--out", args.out, inputs=[cfg.data.audio_root])
    jobs = check_int("--jobs", args.jobs, lo=0)
    scheduler = getattr(args, "dask_scheduler", None)
    run_pipeline(cfg, args.out, resume=args.resume, quiet=args.quiet,
                 jobs=1 if scheduler else jobs, feature_jobs=jobs, dask_scheduler=scheduler,
                 recipe_choice=choice)
    return 0
