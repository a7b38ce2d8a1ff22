"""``qdaed.detection``: a file's result record, notes and skip reasons, files in order over a
process pool, and the CSV, text and summary line of results (expected values by hand)."""

import math

import numpy as np
import pytest
import soundfile as sf

from qdaed.data.audiofiles import Inputs
from qdaed.detection import (CSV_COLUMNS, FileResult, csv_rows, detect_file, input_notes,
                             result_text, results_csv, results_in_order, skip_reason,
                             summary_line)
from qdaed.errors import DataError
from qdaed.events import EventOptions
from qdaed.streaming import Bounds
from tests.helpers.detectors import student_detector

RECORD = {"file": "a.wav", "duration": 4.0, "windows": 8,
          "scores": {"dog": 0.25, "baby_cry": 0.5, "gunshot": 0.125},
          "detected": ["baby_cry"],
          "events": [{"class": "baby_cry", "onset": 0.5, "offset": 2.25, "score": 0.5}],
          "note": "2 channels mixed down to mono (their mean)"}
ERROR = {"file": "b.wav", "error": "b.wav: unreadable (Format not recognised.)"}


@pytest.mark.parametrize("channels,rate,notes", [
    (1, 16000, []),
    (1, 44100, []),
    (2, 48000, ["2 channels mixed down to mono (their mean)"]),
    (1, 8000, ["upsampled from 8000 Hz to 16000 Hz: the model sees nothing above 4000 Hz"]),
    (1, 11025, ["upsampled from 11025 Hz to 16000 Hz: the model sees nothing above 5512 Hz"]),
    (1, 96000, ["resampled from 96000 Hz to 16000 Hz"]),
    (6, 96000, ["6 channels mixed down to mono (their mean)",
                "resampled from 96000 Hz to 16000 Hz"]),
])
def test_input_notes(channels, rate, notes):
    assert input_notes(channels, rate) == notes


@pytest.mark.parametrize("message,reason", [
    ("missing", "missing"),
    ("not a regular file", "not a file"),
    ("unreadable (Format not recognised.)", "unreadable"),
    ("longer than --max-duration 10 s", "too long"),
    ("larger than --max-size", "too large"),
    ("holds non-finite samples", "non-finite samples"),
    ("missing, or else unreadable", "missing"),          # the first key of the table wins
    ("something else", "other"),
])
def test_skip_reason(message, reason):
    assert skip_reason(message) == reason


def test_csv_rows_of_a_record_and_of_an_error():
    note = "2 channels mixed down to mono (their mean)"
    assert csv_rows(RECORD) == [
        ["a.wav", "score", "dog", "0.25", 0, "", "", note],
        ["a.wav", "score", "baby_cry", "0.5", 1, "", "", note],
        ["a.wav", "score", "gunshot", "0.125", 0, "", "", note],
        ["a.wav", "event", "baby_cry", "0.5", 1, 0.5, 2.25, ""]]
    assert csv_rows(ERROR) == [["b.wav", "error", "", "", "", "", "", ERROR["error"]]]


def test_results_csv_is_the_header_then_every_records_rows():
    plain = {k: v for k, v in RECORD.items() if k not in ("events", "note")}
    assert results_csv([plain, ERROR]) == (
        "file,record,class,score,detected,onset,offset,message\n"
        "a.wav,score,dog,0.25,0,,,\n"
        "a.wav,score,baby_cry,0.5,1,,,\n"
        "a.wav,score,gunshot,0.125,0,,,\n"
        "b.wav,error,,,,,,b.wav: unreadable (Format not recognised.)\n")
    assert results_csv([]) == ",".join(CSV_COLUMNS) + "\n"


def test_result_text():
    assert result_text(RECORD) == (
        "a.wav: dog=0.250  baby_cry=0.500*  gunshot=0.125\n"
        "  note: 2 channels mixed down to mono (their mean)\n"
        "  baby_cry 0.50-2.25 s (peak 0.500)")
    assert result_text(ERROR) is None


def test_shown_drops_the_events_unless_asked():
    res = FileResult(RECORD)
    assert list(res.shown(False)) == ["file", "duration", "windows", "scores", "detected",
                                      "note"]
    assert res.shown(True) == RECORD
    assert res.table is None and res.reason is None


@pytest.mark.parametrize("files,reasons,found,line", [
    (3, [], Inputs(), "3 file(s) scored"),
    (3, ["unreadable", "missing", "unreadable"], Inputs(),
     "none of the 3 file(s) could be scored (missing 1, unreadable 2)"),
    (4, ["too long"], Inputs(ignored=2),
     "3 of 4 file(s) scored, 1 skipped (too long 1); 2 other file(s) in the folders are not "
     "audio by their extension"),
    (1, [], Inputs(empty=["e"], unreadable=[("u", "denied"), ("v", "denied")]),
     "1 file(s) scored; 2 folder(s) unreadable; 1 folder(s) without audio files"),
])
def test_summary_line(files, reasons, found, line):
    assert summary_line(files, reasons, found) == line


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    """A detector with a window of 100 frames (1.015 s) and four files: 6 s at 16 kHz, 3 s of
    44.1 kHz stereo, 0.25 s (shorter than a window), and one that is not audio."""
    d = tmp_path_factory.mktemp("detection")
    rng = np.random.default_rng(0)
    sf.write(d / "good.wav", rng.normal(scale=0.1, size=16000 * 6), 16000, subtype="PCM_16")
    sf.write(d / "stereo.flac", rng.normal(scale=0.1, size=(44100 * 3, 2)), 44100)
    sf.write(d / "short.wav", rng.normal(scale=0.1, size=4000), 16000, subtype="PCM_16")
    (d / "garbage.wav").write_bytes(b"RIFF not audio at all")
    return student_detector(frames=100), {p.stem: str(p) for p in d.iterdir()}


def test_detect_file_record(recordings):
    det, paths = recordings
    r = detect_file(det, paths["good"], event_options=EventOptions())
    assert list(r) == ["file", "duration", "windows", "scores", "detected", "events"]
    # 598 frames of 25 ms every 10 ms; windows of 100 every 50: starts 0 … 450, then 498
    assert r["file"] == paths["good"] and r["duration"] == 6.0 and r["windows"] == 11
    assert list(r["scores"]) == ["dog", "baby_cry", "gunshot"]
    assert all(isinstance(s, float) and 0 < s < 1 for s in r["scores"].values())
    assert r["detected"] == [c for c, t in zip(det.classes, det.thresholds)
                             if r["scores"][c] >= t]
    assert "events" not in detect_file(det, paths["good"])
    stereo = detect_file(det, paths["stereo"])
    assert stereo["duration"] == 3.0
    assert stereo["note"] == "2 channels mixed down to mono (their mean)"
    short = detect_file(det, paths["short"])
    assert short["windows"] == 1 and short["duration"] == 0.25
    assert short["note"] == ("shorter than one window (0.25 s < 1.01 s): its frames were "
                             "looped to the window's length, as in training")
    with pytest.raises(DataError, match="garbage.wav"):
        detect_file(det, paths["garbage"])
    with pytest.raises(DataError, match="max-duration"):
        detect_file(det, paths["good"], bounds=Bounds(max_seconds=5.0))


@pytest.mark.parametrize("jobs", [1, 2])
def test_results_in_order_keeps_the_order_and_skips_what_cannot_be_read(recordings, jobs):
    det, paths = recordings
    order = [paths["short"], paths["garbage"], paths["good"]]
    results = list(results_in_order(order, det, table=True, jobs=jobs))
    assert [r.record["file"] for r in results] == order
    assert [r.reason for r in results] == [None, "unreadable", None]
    bad = results[1]
    assert list(bad.record) == ["file", "error"] and bad.table is None
    assert bad.record["error"].startswith(paths["garbage"] + ": ")
    edges, scores = results[2].table
    assert scores.shape == (11, 3) and edges.shape == (12,)
    assert edges[0] == 0.0 and math.isclose(edges[-1], 6.0)
    assert results[2].record == detect_file(det, paths["good"])
    assert all(r.table is None for r in results_in_order(order, det, jobs=jobs))
