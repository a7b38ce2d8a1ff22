"""The ``qdaed`` command's start-up: ``--help`` imports no command module."""

import argparse
import importlib
import subprocess
import sys

from qdaed.cli import COMMANDS, build_parser, command_module, main


def test_every_module_registers_the_listed_help():
    for verb, text in COMMANDS.items():
        sub = argparse.ArgumentParser().add_subparsers()
        importlib.import_module(command_module(verb)).register(sub)
        (action,) = sub._choices_actions
        assert (action.dest, action.help) == (verb, text)


def test_help_loads_no_numerical_library():
    code = ("import sys\nfrom qdaed.cli import main\ntry:\n    main(['--help'])\n"
            "except SystemExit:\n    pass\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('numpy', 'scipy', 'numba', 'soundfile')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"
    assert "detect" in out and "pipeline" in out


def test_full_parser_and_unknown_command(capsys):
    assert build_parser().parse_args(["detect", "m", "a.wav"]).func is not None
    assert main([]) == 2
    try:
        main(["nonsense"])
    except SystemExit as exc:
        assert exc.code == 2
