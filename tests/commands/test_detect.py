"""``qdaed detect``: whole files, JSON/CSV output, batches with bad files, exit statuses."""

import csv
import json

import numpy as np
import pytest
import soundfile as sf

import qdaed
from qdaed.cli import main
from tests.helpers.detectors import student_detector, wav_header


@pytest.fixture
def files(tmp_path):
    det = student_detector(frames=100)
    model = tmp_path / "m.safetensors"
    det.save(model)
    rng = np.random.default_rng(0)
    good = tmp_path / "good.wav"
    sf.write(good, rng.normal(scale=0.1, size=16000 * 6), 16000, subtype="PCM_16")
    stereo = tmp_path / "stereo.flac"
    sf.write(stereo, rng.normal(scale=0.1, size=(44100 * 3, 2)), 44100)
    short = tmp_path / "short.wav"
    sf.write(short, rng.normal(scale=0.1, size=4000), 16000, subtype="PCM_16")
    bad = tmp_path / "bad.wav"
    bad.write_bytes(wav_header(1) + b"\0" * 32)          # a header rate of 1 Hz
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"RIFF not audio at all")
    return {"model": model, "good": good, "stereo": stereo, "short": short, "bad": bad,
            "garbage": garbage, "missing": tmp_path / "missing.wav", "dir": tmp_path}


def run(capsys, *argv):
    status = main(["detect", *map(str, argv)])
    out = capsys.readouterr()
    return status, out.out, out.err


def test_json_scores_equal_the_python_api(files, capsys):
    status, out, _ = run(capsys, files["model"], files["good"], files["stereo"], "--json")
    assert status == 0
    rows = [json.loads(line) for line in out.splitlines()]
    det = qdaed.load(files["model"])
    for row, key in zip(rows, ("good", "stereo")):
        wav, sr = sf.read(files[key], dtype="float64")
        want = det.predict(wav, sr)
        assert [row["scores"][c] for c in det.classes] == want.tolist()   # exactly
        assert row["detected"] == [c for c, s, t in zip(det.classes, want, det.thresholds)
                                   if s >= t]
        assert row["windows"] == len(det.scan(wav, sr).starts)
    assert rows[0]["duration"] == 6.0 and "note" not in rows[0]


def test_a_bad_file_never_aborts_the_batch(files, capsys):
    status, out, err = run(capsys, files["model"], files["bad"], files["good"],
                           files["garbage"], files["missing"], files["short"], "--json",
                           "--events", "--csv", files["dir"] / "out.csv")
    assert status == 3
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["file"] for r in rows] == [str(files[k]) for k in
                                         ("bad", "good", "garbage", "missing", "short")]
    assert "sample rate 1 Hz" in rows[0]["error"]
    assert "unreadable" in rows[2]["error"] and "missing" in rows[3]["error"]
    assert set(rows[1]) >= {"scores", "detected", "events"} and "error" not in rows[1]
    assert "looped" in rows[4]["note"]
    assert "2 of 5 file(s) scored, 3 skipped (missing 1, sample rate 1, unreadable 1)" in err
    with open(files["dir"] / "out.csv", newline="") as fh:
        table = list(csv.DictReader(fh))
    assert [r["record"] for r in table if r["file"] == str(files["bad"])] == ["error"]
    scores = {r["class"]: float(r["score"]) for r in table
              if r["file"] == str(files["good"]) and r["record"] == "score"}
    assert scores == rows[1]["scores"]
    events = [r for r in table if r["file"] == str(files["good"]) and r["record"] == "event"]
    assert len(events) == len(rows[1]["events"])


def test_no_file_scored_is_status_2(files, capsys):
    status, _, err = run(capsys, files["model"], files["missing"])
    assert status == 2 and "missing" in err and "none of the 1 file" in err


@pytest.mark.parametrize("option", [["--hop", "0"], ["--hop", "nan"], ["--median", "2"],
                                    ["--min-gap", "-1"], ["--max-duration", "0"],
                                    ["--max-size", "0"]])
def test_bad_options_are_status_2(files, capsys, option):
    status, _, err = run(capsys, files["model"], files["good"], *option)
    assert status == 2 and option[0] in err


def test_bounds_options(files, capsys):
    status, out, _ = run(capsys, files["model"], files["good"], files["short"],
                         "--max-duration", "5", "--json")
    assert status == 3 and "--max-duration" in json.loads(out.splitlines()[0])["error"]


def test_text_output_and_events(files, capsys):
    status, out, _ = run(capsys, files["model"], files["good"], "--events", "--hop", "0.25",
                         "--median", "1")
    assert status == 0 and out.startswith(f"{files['good']}: dog=")


def test_missing_model_is_status_2(files, capsys):
    status, _, err = run(capsys, files["dir"] / "nope.safetensors", files["good"])
    assert status == 2 and "nope.safetensors" in err
