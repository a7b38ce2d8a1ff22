"""``qdaed ablate``: the ablation of :mod:`qdaed.pipeline.ablation` from the command line."""

from __future__ import annotations

import argparse

from qdaed.commands.options import common
from qdaed.errors import InputError
from qdaed.io.paths import check_output_dir
from qdaed.pipeline.ablation import __doc__ as ABLATION_DOC
from qdaed.pipeline.ablation import ablation_markdown, run_ablation
from qdaed.pipeline.presets import PRESETS, preset_dict
from qdaed.train.recipes import RECIPES
from qdaed.validate import check_int


def description():
    """The ablation module docstring's paragraphs after the title, as written (the list of
    files included): the whole text, not its first paragraph only."""
    return "\n\n".join(ABLATION_DOC.strip().split("\n\n")[1:])


def register(sub):
    synthetic = [n for n in PRESETS if preset_dict(n)["data"]["source"] == "synth"]
    p = sub.add_parser("ablate", help="when does distillation help? baseline / paper recipe / "
                                      "a recipe x clean / noisy labels x seeds",
                       description=description(),
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       # --seeds 5: an interval per cell needs at least 2 seeds
                       parents=[common("out", "seeds", "seed", "jobs", "dask-scheduler",
                                       "resume", "quiet", seeds=5)])
    p.add_argument("--preset", default="demo",
                   help=f"pipeline preset, a synthetic one: {', '.join(synthetic)} "
                        "(default demo)")
    p.add_argument("--recipe", default="transfer",
                   choices=[r for r in RECIPES if r != "paper"],
                   help="the distillation recipe of the third cell (default transfer)")
    p.set_defaults(func=_run)


def _run(args):
    seeds = check_int("--seeds", args.seeds, lo=1)
    if seeds < 2:
        raise InputError(f"--seeds: an interval needs at least 2 seeds, got {seeds}")
    jobs = check_int("--jobs", args.jobs, lo=0)
    check_output_dir("--out", args.out)
    summary = run_ablation(args.out, args.preset, args.recipe, seeds,
                           check_int("--seed", args.seed, lo=0),
                           jobs=1 if args.dask_scheduler else jobs,
                           dask_scheduler=args.dask_scheduler, resume=args.resume,
                           quiet=args.quiet, feature_jobs=jobs)
    print(ablation_markdown(summary))
    return 0
