"""Hostile output paths and closed pipes, command by command: each case of the audit that found
``--csv`` overwriting the user's audio, tracebacks after every file was scored, and
``BrokenPipeError`` under ``| head -1`` (reproducers; each failed before the checks existed)."""

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from qdaed.cli import main
from tests.helpers.detectors import student_detector


@pytest.fixture
def model_and_audio(tmp_path):
    det = student_detector(frames=100)
    model = tmp_path / "m.safetensors"
    det.save(model)
    audio = tmp_path / "clip.wav"
    sf.write(audio, np.random.default_rng(0).normal(scale=0.1, size=16000 * 2), 16000,
             subtype="PCM_16")
    return model, audio


def _detect(capsys, *argv):
    status = main(["detect", *map(str, argv)])
    return status, capsys.readouterr()


@pytest.mark.parametrize("target", ["audio", "model"])
def test_csv_naming_an_input_is_refused_and_the_input_is_unchanged(model_and_audio, capsys,
                                                                   target):
    model, audio = model_and_audio
    victim = audio if target == "audio" else model
    before = victim.read_bytes()
    status, out = _detect(capsys, model, audio, "--csv", victim)
    assert status == 2
    assert "is an input of this command" in out.err and "Traceback" not in out.err
    assert out.out == ""                      # refused before any file was scored
    assert victim.read_bytes() == before


def test_csv_onto_a_fifo_is_refused_and_the_fifo_stays_a_fifo(model_and_audio, capsys):
    model, audio = model_and_audio
    fifo = audio.parent / "fifo"
    os.mkfifo(fifo)
    status, out = _detect(capsys, model, audio, "--csv", fifo)
    assert status == 2 and "is a FIFO" in out.err
    assert os.path.exists(fifo) and not os.path.isfile(fifo)


@pytest.mark.parametrize("case,message", [
    ("empty", "an empty path"),
    ("directory", "is a directory"),
    ("missing folder", "does not exist"),
    ("under a file", "is not a folder"),
])
def test_csv_to_an_unusable_path_is_an_error_before_scoring(model_and_audio, capsys, case,
                                                            message):
    model, audio = model_and_audio
    target = {"empty": "", "directory": audio.parent,
              "missing folder": audio.parent / "no" / "out.csv",
              "under a file": audio / "out.csv"}[case]
    status, out = _detect(capsys, model, audio, "--csv", target)
    assert status == 2 and message in out.err and out.out == ""


def test_a_non_utf8_file_name_is_written_with_backslash_x_escapes(model_and_audio, capsys):
    model, audio = model_and_audio
    raw = os.path.join(os.fsencode(audio.parent), b"chien-\xe9.wav")
    os.link(audio, raw)
    name = os.fsdecode(raw)
    table = audio.parent / "out.csv"
    status, out = _detect(capsys, model, name, "--json", "--csv", table)
    assert status == 0
    shown = os.fsdecode(os.fsencode(audio.parent)) + "/chien-\\xe9.wav"
    assert json.loads(out.out)["file"] == shown
    with open(table, encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["file"] for r in rows} == {shown}


def _cli_piped_to_head(*argv):
    """Run ``python -m qdaed.cli ARGV | head -c 1`` and return (qdaed's status, its stderr)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.Popen([sys.executable, "-m", "qdaed.cli", *map(str, argv)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    proc.stdout.read(1)
    proc.stdout.close()                      # the reader goes away, as `head -1` does
    err = proc.stderr.read().decode()
    return proc.wait(timeout=300), err


@pytest.mark.parametrize("flags", [[], ["--json"], ["--events"]])
def test_detect_into_a_closed_pipe_ends_quietly_with_status_141(model_and_audio, flags):
    model, audio = model_and_audio
    status, err = _cli_piped_to_head("detect", model, *[audio] * 400, *flags)
    assert "Traceback" not in err and "BrokenPipe" not in err
    assert status == 141


def test_info_into_a_closed_pipe_ends_quietly(model_and_audio):
    model, _ = model_and_audio
    # one byte is read, then the pipe closes; info's output is short, so it may finish
    # before noticing (status 0) — a traceback is never acceptable
    status, err = _cli_piped_to_head("info", model)
    assert "Traceback" not in err and status in (0, 141)


@pytest.mark.parametrize("argv,message", [
    (["export", "{model}", "--torch", "{model}"], "--torch {model}: is an input"),
    (["export", "{model}", "--onnx", "{model}"], "--onnx {model}: is an input"),
    (["export", "{model}", "--torch", "{dir}/x", "--onnx", "{dir}/x"], "both name"),
    (["export", "{model}", "--torch", ""], "--torch: an empty path"),
    (["import", "{model}", "--arch", "student", "--manifest", "{audio}", "--audio-root",
      "{dir}", "--out", "{model}"], "--out {model}: is an input"),
    (["vectors", "check", "{dir}", "--outputs", "{dir}", "--json", "{dir}"],
     "is a directory"),
    (["vectors", "export", "{audio}"], "exists and is not a folder"),
    (["features", "{audio}", "--out", "{audio}"], "exists and is not a folder"),
    (["synth", "--n", "4", "--out", "{audio}/sub"], "is not a folder"),
    (["pipeline", "--preset", "tiny", "--out", "{audio}"], "exists and is not a folder"),
    (["ablate", "--out", "{audio}"], "exists and is not a folder"),
    (["manifests", "build", "--audioset", "{dir}", "--out", "{audio}"], "is an input"),
])
def test_every_option_that_writes_refuses_an_unsafe_path_first(model_and_audio, capsys, argv,
                                                               message):
    model, audio = model_and_audio
    fill = {"model": model, "audio": audio, "dir": audio.parent}
    before = {p: p.read_bytes() for p in (model, audio)}
    listing = sorted(audio.parent.iterdir())
    status = main([a.format(**fill) for a in argv])
    err = capsys.readouterr().err
    assert status == 2, err
    assert message.format(**fill) in err and "Traceback" not in err
    assert {p: p.read_bytes() for p in (model, audio)} == before
    assert sorted(audio.parent.iterdir()) == listing        # nothing written beside them
