"""The documentation stays true: the README's results table is the committed run's, the code
the README and the guide show is one, every docs page the package cites exists, and the docs
build fails on a failing executed check or a broken internal link."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
sys.path.insert(0, str(DOCS / "_ext"))

import runtables  # noqa: E402


def test_readme_results_table_is_the_committed_demo_run():
    assert runtables.summary_table("demo") in (ROOT / "README.md").read_text()


def test_the_python_api_example_is_the_same_in_the_readme_and_the_guide():
    def example(text):
        return re.search(r"## Python API\n+```python\n(.*?)```", text, re.S).group(1)

    assert example((ROOT / "README.md").read_text()) == \
        example((DOCS / "guides" / "detecting.md").read_text())


def test_every_docs_page_cited_in_the_package_and_tests_exists():
    cited = set()
    for folder in ("qdaed", "tests", "bench", "examples"):
        for f in (ROOT / folder).rglob("*.py"):
            cited |= set(re.findall(r"docs/[\w/]+\.md", f.read_text()))
    assert cited, "no docs page cited"
    missing = sorted(c for c in cited if not (ROOT / c).is_file())
    assert missing == []


def test_no_reference_to_the_design_notes_file():
    """The team's design notes are not shipped; the package cites docs pages instead."""
    hits = [f"{f}:{i}" for folder in ("qdaed", "tests") for f in (ROOT / folder).rglob("*.py")
            for i, line in enumerate(f.read_text().splitlines(), 1)
            if re.search(r"[D]ESIGN [0-9§]", line)]
    assert hits == []


def _build(tmp_path, page):
    """sphinx-build -W with the project's own docs/conf.py on a one-page site."""
    pytest.importorskip("myst_nb")
    src = tmp_path / "src"
    src.mkdir()
    conf = DOCS / "conf.py"
    (src / "conf.py").write_text(f"__file__ = {str(conf)!r}\n"
                                 "exec(compile(open(__file__).read(), __file__, 'exec'))\n")
    (src / "index.md").write_text("# Index\n\n```{toctree}\npage\n```\n")
    (src / "page.md").write_text(page)
    return subprocess.run([sys.executable, "-m", "sphinx", "-W", "-q", "-b", "html", str(src),
                           str(tmp_path / "out")], capture_output=True, text=True, timeout=300)


HEADER = "---\nfile_format: mystnb\nkernelspec:\n  name: python3\n---\n\n# Page\n\n"


def test_a_failing_executed_check_fails_the_docs_build(tmp_path):
    run = _build(tmp_path, HEADER + "```{code-cell} python\nassert 1 + 1 == 3, 'drift'\n```\n")
    assert run.returncode != 0
    out = run.stdout + run.stderr
    assert "ExecutionError" in out and "page.md" in out   # the page whose check failed


def test_a_broken_internal_link_fails_the_docs_build(tmp_path):
    run = _build(tmp_path, "# Page\n\nSee {doc}`no-such-page`.\n")
    assert run.returncode != 0
    assert "no-such-page" in run.stdout + run.stderr


def test_a_passing_page_builds(tmp_path):
    run = _build(tmp_path, HEADER + "```{code-cell} python\nassert 1 + 1 == 2\n```\n")
    assert run.returncode == 0, run.stdout + run.stderr


def test_source_under_its_autodoc_entry_leaves_the_docstring_out(tmp_path):
    """The method pages show a function's docstring once: ``literalinclude :no-docstring:``
    (docs/_ext/sourceinclude.py) cuts it from the source shown under the autodoc entry."""
    (tmp_path / "mod.py").write_text(
        'def f(x):\n    """DOCSTRING-MARK, one line\n\n    and a second paragraph."""\n'
        '    y = x + 1\n    return y\n')
    run = _build(tmp_path, "# Page\n\n```{literalinclude} ../mod.py\n:language: python\n"
                           ":pyobject: f\n:no-docstring:\n```\n")
    assert run.returncode == 0, run.stdout + run.stderr
    html = (tmp_path / "out" / "page.html").read_text()
    assert "DOCSTRING-MARK" not in html and "second paragraph" not in html
    assert "def" in html and "return" in html
