"""The package's layers: every import of qdaed runs downward (docs/design/architecture.md).

``LAYERS`` is the rule, written once: a module may import modules of its own package (the
first entry of ``LAYERS`` that is a prefix of its name) and of packages on lower layers,
nothing on its own layer or above. Imports are read from the source with ``ast`` — at module
top, inside functions and under ``if TYPE_CHECKING`` alike — so the test sees what the code
says, not what one run happened to import.

Imports are written at the top of a module; inside a function only for the slow or optional
third-party packages of ``DEFERRED`` (and the package root's lazy ``qdaed.load``), each with a
comment on its line saying why.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "qdaed"

# layer -> the packages (or modules) on it, lowest first
LAYERS = {
    0: ["qdaed._version", "qdaed.errors"],
    1: ["qdaed.validate"],
    2: ["qdaed.kernels", "qdaed.io"],
    3: ["qdaed.nn", "qdaed.metrics", "qdaed.events", "qdaed.eventmetrics"],
    4: ["qdaed.models", "qdaed.data", "qdaed.stats"],
    5: ["qdaed.features", "qdaed.gradcheck", "qdaed.evaluation"],
    6: ["qdaed.integer"],
    7: ["qdaed.formats"],
    8: ["qdaed.streaming"],
    9: ["qdaed.detector", "qdaed.detection"],
    10: ["qdaed.train"],
    11: ["qdaed.pipeline", "qdaed.vectors"],
    12: ["qdaed.commands"],
    13: ["qdaed.cli"],
    14: ["qdaed.__main__", "qdaed"],     # the root only re-exports
}

# third-party packages a function may import on first use: optional extras, or (scipy.signal)
# measured at about half a second, which a 16 kHz file never needs
DEFERRED = ("torch", "onnx", "onnxruntime", "tflite_micro", "flatbuffers", "distributed", "dask",
            "matplotlib", "sed_eval", "sed_scores_eval", "scipy.signal")
# first-party imports made on first use: {module: {imported module: why}}
DEFERRED_FIRST_PARTY = {
    "qdaed": {"qdaed.detector": "`qdaed --help` must not load NumPy"},
    "qdaed.pipeline.report": {"qdaed.pipeline.plots": "it imports matplotlib, an extra"},
}


def _unit(module):
    """(layer, package) of a dotted module name: the longest entry of LAYERS naming it."""
    best = None
    for layer, names in LAYERS.items():
        for name in names:
            if module == name or (name != "qdaed" and module.startswith(name + ".")):
                if best is None or len(name) > len(best[1]):
                    best = (layer, name)
    return best


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        yield ".".join(parts), path


def _imports(module, path):
    """[(line, imported module, inside a function)] of every import of qdaed in the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    inner = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            inner.update(id(n) for n in ast.walk(node) if n is not node)
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([node.module] if node.module else []))
            # `from qdaed.x import y` names module qdaed.x.y when y is one
            names = []
            for a in node.names:
                sub = f"{base}.{a.name}"
                names.append(sub if _is_module(sub) else base)
        else:
            continue
        out += [(node.lineno, n, id(node) in inner) for n in names]
    return out


def _is_module(name):
    rel = Path(*name.split("."))
    return (PACKAGE.parent / rel).with_suffix(".py").is_file() or \
        (PACKAGE.parent / rel / "__init__.py").is_file()


def _first_party(name):
    return name == "qdaed" or name.startswith("qdaed.")


ALL = list(_modules())


def test_every_module_is_on_a_layer():
    assert [m for m, _ in ALL if _unit(m) is None] == []


@pytest.mark.parametrize("module,path", ALL, ids=[m for m, _ in ALL])
def test_imports_run_downward(module, path):
    layer, unit = _unit(module)
    upward = []
    for line, target, _ in _imports(module, path):
        if not _first_party(target):
            continue
        t_layer, t_unit = _unit(target)
        if t_unit != unit and t_layer >= layer:
            upward.append(f"{path.name}:{line} imports {target} (layer {t_layer}, "
                          f"{module} is on {layer})")
    assert upward == []


@pytest.mark.parametrize("module,path", ALL, ids=[m for m, _ in ALL])
def test_imports_inside_functions_are_only_the_deferred_ones(module, path):
    lines = path.read_text(encoding="utf-8").splitlines()
    wrong = []
    for line, target, inner in _imports(module, path):
        if not inner and _first_party(target):
            continue
        if not inner:
            continue
        allowed = (target in DEFERRED_FIRST_PARTY.get(module, {}) if _first_party(target) else
                   any(target == d or target.startswith(d + ".") for d in DEFERRED))
        commented = "#" in lines[line - 1] or lines[line - 2].strip().startswith("try:  #") \
            or "#" in lines[line - 2] and lines[line - 2].strip().startswith("try:")
        if not allowed:
            wrong.append(f"{path.name}:{line} imports {target} inside a function")
        elif not commented:
            wrong.append(f"{path.name}:{line}: say why {target} is imported on first use")
    assert wrong == []


def test_the_rule_catches_an_upward_import(tmp_path):
    assert _unit("qdaed.io.modelfile") == (2, "qdaed.io")
    assert _unit("qdaed.detector")[0] > _unit("qdaed.formats.header")[0]
    assert _unit("qdaed")[0] == max(LAYERS)


def test_no_command_imports_another_command():
    """Commands share code through qdaed.commands.options and the library, not each other."""
    shared = {"qdaed.commands", "qdaed.commands.options"}
    found = [f"{module} imports {target}" for module, path in ALL
             if module.startswith("qdaed.commands.") and module not in shared
             for _, target, _ in _imports(module, path)
             if target.startswith("qdaed.commands") and target not in shared]
    assert found == []
