"""The example drivers under examples/ (onnx_detect.py, torch_detect.py): run one as a user
would, and read which packages it imports."""

import ast
import json
import os
import subprocess
import sys

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "examples")


def run_example(script, model, files, *options):
    """(exit status, its JSON lines) of ``python examples/SCRIPT MODEL FILES... OPTIONS`` in a
    fresh interpreter without PYTHONPATH (so not even a stray qdaed on the path helps it),
    from the model's folder; a traceback on stderr fails the calling test."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, os.path.join(EXAMPLES, script), model, *files,
                           *options], capture_output=True, text=True, env=env,
                          cwd=os.path.dirname(model))
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.returncode, [json.loads(line) for line in proc.stdout.splitlines()]


def third_party_imports(script):
    """The top-level packages outside the standard library that examples/SCRIPT imports."""
    with open(os.path.join(EXAMPLES, script), encoding="utf-8") as f:
        tree = ast.parse(f.read())
    names = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import)
             for a in n.names}
    names |= {n.module.split(".")[0] for n in ast.walk(tree)
              if isinstance(n, ast.ImportFrom) and n.module}
    return names - set(sys.stdlib_module_names) - {"__future__"}
