"""bench/harness.py, the benchmarks' one timing harness and RESULTS.md writer: spread by hand,
the machine key from /proc/cpuinfo text, one part per machine (another machine's figures are
never touched, a section is replaced rather than repeated, code blocks are not headings)."""

import os
import sys

import pytest

from bench import harness

CPUINFO = """processor\t: 0
model name\t: Example CPU 9000
flags\t\t: fpu sse4_2 avx avx2 fma avx512f avx512bw avx512vl avx512_vnni
"""

OTHER = ("## Machine: Old CPU · sse4_2 avx avx2 fma\n\n### This run\n\nold header\n\n"
         "### ResNet teacher\n\nold figures: 1.20\n\n```\n# a comment, not a heading\n```\n")


def test_spread_quartiles_by_hand():
    s = harness.spread([5.0, 1.0, 4.0, 2.0, 3.0])
    assert (s.median, s.q1, s.q3, s.n, s.iqr) == (3.0, 2.0, 4.0, 5, 2.0)
    one = harness.spread([0.25])
    assert (one.median, one.q1, one.q3) == (0.25, 0.25, 0.25)
    assert harness.spread([0.001, 0.002, 0.003, 0.004, 0.005]).ms() == "3 [2–4]"
    with pytest.raises(ValueError):
        harness.spread([])


def test_time_calls_runs_warmup_then_repeats():
    calls = []
    times = harness.time_calls(lambda: calls.append(1), repeats=3, warmup=2)
    assert len(calls) == 5 and len(times) == 3 and all(t >= 0 for t in times)
    order = []
    out = harness.alternate({"a": lambda: order.append("a"), "b": lambda: order.append("b")},
                            rounds=2, repeats=1, warmup=1)
    assert order == ["a", "b", "a", "b", "a", "b"] and {k: len(v) for k, v in out.items()} == {
        "a": 2, "b": 2}


def test_machine_key_from_cpuinfo():
    assert harness.cpu_model(CPUINFO) == "Example CPU 9000"
    assert harness.vector_extensions(CPUINFO) == ["sse4_2", "avx", "avx2", "fma", "avx512f",
                                                  "avx512bw", "avx512vl", "avx512_vnni"]
    assert harness.machine_key(CPUINFO) == (
        "Example CPU 9000 · sse4_2 avx avx2 fma avx512f avx512bw avx512vl avx512_vnni")


def test_a_section_goes_to_this_machine_and_keeps_the_others(tmp_path):
    path = tmp_path / "RESULTS.md"
    path.write_text("# Benchmark results\n\nintro\n\n" + OTHER)
    key = "New CPU · avx2 fma avx512f"
    harness.write_section("## ResNet teacher\n\nnew figures: 0.90\n", str(path), key)
    harness.write_section("## StudentLSTM inference\n\nlstm: 0.80\n", str(path), key)
    harness.write_section("## ResNet teacher\n\nnewer figures: 0.85\n", str(path), key)
    text = path.read_text()
    assert text.endswith(OTHER)                            # the other machine, byte for byte
    mine = harness.read_machine(str(path), key)
    assert list(mine) == ["ResNet teacher", "StudentLSTM inference"]
    assert "newer figures: 0.85" in mine["ResNet teacher"] and "0.90" not in text
    assert [line for line in text.splitlines() if line.startswith("## Machine: ")] == [
        "## Machine: " + key, "## Machine: Old CPU · sse4_2 avx avx2 fma"]
    old = harness.read_machine(str(path), "Old CPU · sse4_2 avx avx2 fma")
    assert list(old) == ["This run", "ResNet teacher"]
    assert "# a comment, not a heading" in old["ResNet teacher"]


def test_rewriting_a_machine_with_its_own_sections_changes_nothing(tmp_path):
    path = tmp_path / "RESULTS.md"
    harness.write_machine([OTHER.split("\n", 2)[2]], str(path), "Old CPU · sse4_2 avx avx2 fma")
    first = path.read_text()
    key = "Old CPU · sse4_2 avx avx2 fma"
    harness.write_machine(list(harness.read_machine(str(path), key).values()), str(path), key)
    assert path.read_text() == first


def test_the_command_line_leaves_out_run_alls_internal_options(monkeypatch):
    monkeypatch.setattr("sys.argv", ["bench/x.py", "--repeats", "2", "--results", "/tmp/R.md",
                                     "--headlines=/tmp/h", "--write"])
    assert harness.command_line().endswith("--repeats 2 --write")


def test_early_args_parse_and_set_the_pools_only_when_run_as_main(monkeypatch):
    p = harness.parser("doc")
    assert harness.early_args(p, "bench.some_module") is None
    monkeypatch.setattr(sys, "argv", ["prog", "--threads", "3"])
    for var in harness.THREAD_VARS:
        monkeypatch.delenv(var, raising=False)
    args = harness.early_args(p, "__main__")
    assert args.threads == 3
    assert all(os.environ[var] == "3" for var in harness.THREAD_VARS)
