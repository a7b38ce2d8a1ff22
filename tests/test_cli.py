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


def _options_without_help(parser, prefix):
    """(command, option) of every argument of ``parser`` and its sub-parsers, at any depth,
    whose help text is missing or empty."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _options_without_help(sub, f"{prefix} {name}")
        elif not isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
            if not (action.help or "").strip():
                yield prefix, "/".join(action.option_strings) or action.dest


def test_every_option_of_every_command_has_help():
    assert list(_options_without_help(build_parser(), "qdaed")) == []


def test_the_help_walker_finds_an_option_without_help():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers().add_parser("x").add_subparsers().add_parser("y")
    sub.add_argument("--bare")
    sub.add_argument("--blank", help=" ")
    sub.add_argument("--fine", help="documented")
    assert list(_options_without_help(parser, "p")) == [("p x y", "--bare"),
                                                        ("p x y", "--blank")]


def test_ablate_help_lists_every_file_it_writes(capsys):
    try:
        main(["ablate", "--help"])
    except SystemExit as exc:
        assert exc.code == 0
    out = capsys.readouterr().out
    assert "This command writes" in out
    for name in ("ablation.json", "ablation.md", "ablation.png"):
        assert name in out
