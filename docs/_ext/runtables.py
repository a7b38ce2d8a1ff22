"""Tables of the committed runs (docs/results/runs/NAME/results.json), made at build time.

The results pages call :func:`report` in an executed cell: the tables are what
``qdaed.pipeline.report.results_markdown`` writes as a run's ``results.md``, computed again
from the run's ``results.json`` by the package being documented. Nothing is copied by hand.
"""

import json
from pathlib import Path


RUNS = Path(__file__).resolve().parent.parent / "results" / "runs"


def load(name):
    """The results.json of the committed run ``name``."""
    return json.loads((RUNS / name / "results.json").read_text())


def Markdown(text):
    from IPython.display import Markdown as M   # only in the docs build (ipykernel)
    return M(text)


def report(name):
    """The run's results.md as Markdown, its headings turned into bold lines (a page's own
    headings make its table of contents)."""
    from qdaed.pipeline.report import results_markdown

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


SUMMARY_ROWS = (("teacher", None), ("student", None), ("distilled", "student"),
                ("qd-4bit", "distilled"), ("ptq-4bit", "qd-4bit"), ("qat-4bit", "qd-4bit"))


def _signed(x):
    return f"{x:+.1f}".replace("-", "−")


def summary_table(name, rows=SUMMARY_ROWS):
    """The README's results table: bytes, mean EER over seeds and the paired difference with its
    95% t-interval, from the run's results.json (a test compares the README with this)."""
    r = load(name)
    models = {m["name"]: m for m in r["models"]}
    out = ["| model | bits | bytes | mean EER (%) | Δ mean EER against | points, 95% interval |",
           "|---|---:|---:|---:|---|---:|"]
    for model, ref in rows:
        m = models[model]
        eer = m["eer"]["mean"]
        value = (f"{100 * eer['mean']:.1f} ± {100 * eer['std']:.1f}" if isinstance(eer, dict)
                 else f"{100 * eer:.1f}")
        diff = ""
        if ref is not None:
            c = comparison(name, model, ref)
            lo, hi = c["ci95"]
            diff = f"{_signed(100 * c['mean'])} [{_signed(100 * lo)}, {_signed(100 * hi)}]"
        out.append(f"| {model} | {m['bits'] or 32} | {m['bytes']:,} | {value} | "
                   f"{ref or ''} | {diff} |")
    return "\n".join(out)


def ablation(name="ablation"):
    """The committed ablation's table, as ``qdaed ablate`` writes ``ablation.md``, made again
    from its ``ablation.json`` by ``qdaed.pipeline.ablation.ablation_markdown``."""
    from qdaed.pipeline.ablation import ablation_markdown

    summary = json.loads((RUNS / name / "ablation.json").read_text())
    lines = [line for line in ablation_markdown(summary).splitlines() if not line.startswith("# ")]
    return Markdown("\n".join(lines))


def ablation_cell(labels, cell, name="ablation"):
    """One cell of the committed ablation (its ablation.json record)."""
    summary = json.loads((RUNS / name / "ablation.json").read_text())
    for c in summary["cells"]:
        if c["labels"] == labels and c["cell"] == cell:
            return c
    raise KeyError(f"{name}: no cell {labels}/{cell}")
