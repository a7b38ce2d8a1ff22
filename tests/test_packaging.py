"""Packaging: what setup.cfg and MANIFEST.in declare, (slow) what the built sdist and wheel
hold and whether the installed wheel runs, and the py.typed claim.

The fast tests read the configuration files; the slow one builds an sdist and a wheel from a
copy of the source tree with the installed setuptools (no download), checks both archives
against the tree, extracts the wheel into a folder of its own and runs ``qdaed`` from there,
outside the source tree. ``.ci/sdist-check`` goes further (a fresh virtual environment, the
README's commands).
"""

import configparser
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SETUP_CFG = ROOT / "setup.cfg"

pytestmark = pytest.mark.skipif(not SETUP_CFG.is_file(),
                                reason="needs the source tree (setup.cfg)")


def _cfg():
    cfg = configparser.ConfigParser()
    cfg.read(SETUP_CFG, encoding="utf-8")
    return cfg


def _lines(value):
    return [v.strip() for v in value.strip().splitlines() if v.strip() and
            not v.strip().startswith("#")]


def test_every_qdaed_subpackage_is_listed_and_the_manifests_are_mapped():
    cfg = _cfg()
    listed = _lines(cfg["options"]["packages"])
    found = sorted(".".join(p.relative_to(ROOT).parts) for p in (ROOT / "qdaed").rglob("*")
                   if p.is_dir() and (p / "__init__.py").is_file())
    assert sorted(listed) == sorted(["qdaed", *found, "qdaed.manifests"])
    mapping = dict(line.replace(" ", "").split("=") for line in
                   _lines(cfg["options"]["package_dir"]))
    assert mapping == {"qdaed.manifests": "data_manifests"}
    assert not (ROOT / "qdaed" / "manifests").exists()   # one copy: data_manifests/
    data = {k: v for k, v in cfg["options.package_data"].items()}
    assert data["qdaed.manifests"].replace(" ", "").split(",") == ["*.csv", "README.md"]
    assert data["qdaed"].strip() == "py.typed" and (ROOT / "qdaed" / "py.typed").is_file()


def test_licence_and_python_versions_are_declared_consistently():
    cfg = _cfg()
    meta = cfg["metadata"]
    assert meta["license_expression"].strip() == "MIT"
    assert (ROOT / meta["license_files"].strip()).read_text().startswith("MIT License")
    classifiers = _lines(meta["classifiers"])
    versions = [c.rsplit(":: ", 1)[1] for c in classifiers
                if c.startswith("Programming Language :: Python :: 3.")]
    assert versions == ["3.10", "3.11", "3.12", "3.13"]
    assert cfg["options"]["python_requires"].strip() == ">=3.10"
    assert not any(c.startswith("License ::") for c in classifiers)   # PEP 639: the expression
    assert "Operating System :: POSIX :: Linux" in classifiers


def test_manifest_in_grafts_every_top_level_folder_of_the_tree():
    text = (ROOT / "MANIFEST.in").read_text()
    grafted = {line.split()[1] for line in text.splitlines() if line.startswith("graft ")}
    assert {"tests", "bench", "data_manifests", ".ci", "examples"} <= grafted
    included = {w for line in text.splitlines() if line.startswith("include ")
                for w in line.split()[1:]}
    assert {"LICENSE", "CITATION.cff", "README.md", "setup.cfg", "pyproject.toml"} <= included


def test_citation_cites_the_paper():
    text = (ROOT / "CITATION.cff").read_text()
    for needle in ("cff-version: 1.2.0", "Compression of Acoustic Event Detection Models With "
                   "Quantized Distillation", "10.21437/Interspeech.2019-1747", "1907.00873",
                   "family-names: Shi", "family-names: Rozgic", "family-names: Matsoukas"):
        assert needle in text


# ------------------------------------------------------------------------ slow: build, run
def _tracked_files():
    """The files git tracks (with uncommitted new ones), or None outside a git work tree."""
    try:
        out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"],
                             cwd=ROOT, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return {f for f in out.splitlines() if (ROOT / f).is_file()}


@pytest.mark.slow
def test_sdist_holds_the_tree_and_the_installed_wheel_runs(tmp_path):
    setuptools = pytest.importorskip("setuptools")
    if int(setuptools.__version__.split(".")[0]) < 77:
        pytest.skip("building needs setuptools >= 77 (pyproject.toml)")
    src, dist = tmp_path / "src", tmp_path / "dist"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(
        ".git", "__pycache__", "*.py[cod]", "*.nbi", "*.nbc", ".hypothesis", ".pytest_cache",
        "runs", "build", "dist", "*.egg-info", ".venv"))
    subprocess.run([sys.executable, "-c",
                    "import sys; from setuptools import build_meta as b; d = sys.argv[1]; "
                    "b.build_sdist(d); b.build_wheel(d)", str(dist)],   # (they edit sys.argv)
                   cwd=src, check=True, capture_output=True)
    (sdist,), (wheel,) = dist.glob("*.tar.gz"), dist.glob("*.whl")

    with tarfile.open(sdist) as tf:
        top = tf.getnames()[0].split("/")[0]
        in_sdist = {n.split("/", 1)[1] for n in tf.getnames() if "/" in n}
    tracked = _tracked_files()
    if tracked is not None:
        missing = sorted(tracked - in_sdist - {".gitignore"})
        assert not missing, f"tracked files left out of the sdist: {missing}"
    for f in ("LICENSE", "CITATION.cff", "tests/strategies.py", "tests/conftest.py",
              "tests/torch_ref.py", "data_manifests/audioset.csv", ".ci/run", "bench/RESULTS.md"):
        assert f in in_sdist, f
    assert not any("__pycache__" in n or n.endswith((".nbi", ".nbc")) for n in in_sdist)
    assert top.startswith("qdaed-")

    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        meta = zf.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
        for f in ("audioset.csv", "real_audio.csv"):
            assert zf.read(f"qdaed/manifests/{f}") == (ROOT / "data_manifests" / f).read_bytes()
    assert "qdaed/py.typed" in names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert not any(n.startswith(("tests/", "bench/", "data_manifests/")) for n in names)
    assert "License-Expression: MIT" in meta and "Requires-Python: >=3.10" in meta

    # The wheel, extracted on its own (a pure-Python wheel is a zip of site-packages), run
    # from a folder outside the tree: the shipped manifests come from the package.
    site, work = tmp_path / "site", tmp_path / "work"
    zipfile.ZipFile(wheel).extractall(site)
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site)}

    def qdaed(*argv):
        return subprocess.run([sys.executable, "-m", "qdaed", *argv], cwd=work, env=env,
                              capture_output=True, text=True, timeout=600)

    r = qdaed("manifests", "path", "audioset")
    assert r.returncode == 0, r.stderr
    assert Path(r.stdout.strip()) == site / "qdaed" / "manifests" / "audioset.csv"
    r = qdaed("pipeline", "--preset", "tiny", "--seeds", "1", "--bits", "4", "--jobs", "1",
              "--quiet", "--out", str(work / "run"))
    assert r.returncode == 0, r.stderr[-2000:]
    assert (work / "run" / "results.md").is_file()
    assert not (ROOT / "qdaed" / "manifests").exists()


# ------------------------------------------------------------------------ py.typed
PUBLIC_API = {
    "qdaed.detector": ["Detector"],
    "qdaed.features.fbank": ["LfbeOptions", "make_options", "num_frames", "lfbe",
                            "window_function", "hz_to_mel", "mel_to_hz", "mel_filterbank"],
    "qdaed.metrics": ["roc_curve", "roc_auc", "equal_error_rate", "threshold_at_eer",
                      "average_precision", "compute_metrics"],
    "qdaed.io.modelfile": ["ModelFileContents", "digest", "encode_model", "write_model",
                           "read_model_document", "read_model"],
    "qdaed.io.strictjson": ["canonical_json", "parse_json", "json_depth", "read_json_file"],
    "qdaed.io.checkpoint": ["save_checkpoint", "load_checkpoint"],
    "qdaed.formats.sizes": ["accounted_bytes", "shape_bytes"],
    "qdaed.data.manifest": ["manifests_dir", "shipped_manifests", "shipped_manifest",
                            "resolve_manifest"],
}


def _unannotated(fn):
    import inspect

    fn = getattr(fn, "__wrapped__", fn)          # functools.lru_cache
    sig = inspect.signature(fn)
    missing = [p.name for p in sig.parameters.values()
               if p.name not in ("self", "cls") and p.annotation is inspect.Parameter.empty]
    if sig.return_annotation is inspect.Signature.empty:
        missing.append("return")
    return missing


def test_py_typed_claim_holds_for_the_public_api():
    """The package ships py.typed: every public function and method named here has a type
    hint on each parameter and on its return value."""
    import importlib
    import inspect

    gaps = {}
    for module, names in PUBLIC_API.items():
        mod = importlib.import_module(module)
        for name in names:
            obj = getattr(mod, name)
            if inspect.isclass(obj):
                members = [(f"{name}.{k}", v) for k, v in vars(obj).items()
                           if not k.startswith("_") and callable(getattr(v, "__func__", v))]
                if "__annotations__" not in vars(obj):
                    gaps[name] = ["fields"]
            else:
                members = [(name, obj)]
            for label, fn in members:
                missing = _unannotated(getattr(fn, "__func__", fn))
                if missing:
                    gaps[label] = missing
    assert not gaps, gaps
