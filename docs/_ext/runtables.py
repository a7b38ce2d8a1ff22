"""Tables of the committed runs (docs/results/runs/NAME/results.json), made at build time.

The results pages call :func:`report` in an executed cell: the tables are what
``qdaed.pipeline.report.results_markdown`` writes as a run's ``results.md``, computed again
from the run's ``results.json`` by the package being documented. Nothing is copied by hand.
"""

import json
from pathlib import Path

from IPython.display import Markdown

from qdaed.pipeline.report import results_markdown

RUNS = Path(__file__).resolve().parent.parent / "results" / "runs"


def load(name):
    """The results.json of the committed run ``name``."""
    return json.loads((RUNS / name / "results.json").read_text())


def report(name):
    """The run's results.md as Markdown, its headings turned into bold lines (a page's own
    headings make its table of contents)."""
    lines = []
    for line in results_markdown(load(name)).splitlines():
        if line.startswith("# "):
            continue
        if line.startswith("#"):
            line = "**" + line.lstrip("#").strip() + "**"
        lines.append(line)
    return Markdown("\n".join(lines))


def provenance(name):
    """One line: preset, seeds, qdaed and library versions, CPUs, as results.json records them."""
    r = load(name)
    v = r["versions"]
    return Markdown(
        f"Preset `{r['preset']}`, {r['config']['seeds']} seed(s), recipe "
        f"`{r['distill']['recipe']}` (T = {r['distill']['temperature']:g}, "
        f"λ = {r['distill']['lam']:g}); qdaed {v['qdaed']}, Python {v['python']}, NumPy "
        f"{v['numpy']}, Numba {v['numba']}, SciPy {v['scipy']}, {v['cpus']} CPUs "
        f"({v['machine']}).")


def comparison(name, model, reference):
    """The paired comparison of ``model`` against ``reference`` (results.json's record)."""
    for c in load(name)["comparisons"]:
        if c["model"] == model and c["reference"] == reference:
            return c
    raise KeyError(f"{name}: no comparison {model} − {reference}")
