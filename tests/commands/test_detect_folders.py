"""``qdaed detect`` on many files: folders searched recursively, ``--jobs`` with the same
output, the summary line, the progress bar, notes on mixdown and resampling, and the names
and output checks of ``--events-tsv`` / ``--scores-dir``."""

import io
import json
import os
import sys

import numpy as np
import pytest
import soundfile as sf

from qdaed.cli import main
from qdaed.data.audiofiles import find_audio
from tests.helpers.detectors import student_detector, wav_header


def _noise(path, seconds, rate=16000, channels=1, seed=0):
    rng = np.random.default_rng(seed)
    shape = (int(seconds * rate),) if channels == 1 else (int(seconds * rate), channels)
    sf.write(path, rng.normal(scale=0.1, size=shape), rate, subtype="PCM_16")


@pytest.fixture
def tree(tmp_path):
    """A model whose thresholds are 1e-6 (every window of every class positive: one event per
    class and file) and a folder: a.wav, B.WAV, notes.txt, sub/c.flac, sub/deeper/d.ogg,
    sub/bad.wav (a header rate of 1 Hz), empty/ (no audio)."""
    det = student_detector(frames=100)
    det.thresholds = np.full(3, 1e-6)
    det.save(tmp_path / "m.safetensors")
    root = tmp_path / "audio"
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / "empty").mkdir()
    _noise(root / "a.wav", 2.5, seed=1)
    _noise(root / "B.WAV", 1.5, seed=2)
    (root / "notes.txt").write_text("not audio")
    sf.write(root / "sub" / "c.flac", np.zeros(16000 * 2), 16000)
    sf.write(root / "sub" / "deeper" / "d.ogg",
             np.random.default_rng(3).normal(scale=0.1, size=16000 * 2), 16000)
    (root / "sub" / "bad.wav").write_bytes(wav_header(1) + b"\0" * 32)
    return {"model": tmp_path / "m.safetensors", "root": root, "dir": tmp_path}


def run(capsys, *argv):
    status = main(["detect", *map(str, argv)])
    out = capsys.readouterr()
    return status, out.out, out.err


def test_a_folder_is_searched_recursively_by_extension_in_sorted_order(tree, capsys):
    status, out, err = run(capsys, tree["model"], tree["root"], "--json")
    files = [json.loads(line)["file"] for line in out.splitlines()]
    root = str(tree["root"])
    # code point order of the paths under the folder: upper case before lower case
    assert files == [os.path.join(root, n) for n in
                     ("B.WAV", "a.wav", "sub/bad.wav", "sub/c.flac", "sub/deeper/d.ogg")]
    assert status == 3
    last = err.strip().splitlines()[-1]
    assert last == ("qdaed detect: 4 of 5 file(s) scored, 1 skipped (sample rate 1); 1 other "
                    "file(s) in the folders are not audio by their extension")


def test_find_audio_keeps_files_given_by_themselves_whatever_their_name(tmp_path):
    (tmp_path / "x.txt").write_text("")
    found = find_audio([tmp_path / "x.txt", tmp_path / "missing.wav"])
    assert found.entries == [(str(tmp_path / "x.txt"), None),
                             (str(tmp_path / "missing.wav"), None)]
    assert found.ignored == 0 and found.empty == []


def test_a_folder_without_audio_is_status_2(tree, capsys):
    status, out, err = run(capsys, tree["model"], tree["root"] / "empty")
    assert status == 2 and out == ""
    assert err.strip() == ("qdaed detect: error: no audio file (.wav, .flac, .ogg) in "
                           f"{tree['root'] / 'empty'}")


def test_a_folder_without_audio_beside_files_is_named_in_the_summary(tree, capsys):
    status, _, err = run(capsys, tree["model"], tree["root"] / "empty", tree["root"] / "a.wav")
    assert status == 0
    assert err.strip().splitlines()[-1] == ("qdaed detect: 1 file(s) scored; 1 folder(s) "
                                            "without audio files")


def test_jobs_give_the_same_json_lines_as_one_process(tree, capsys):
    extra = [tree["dir"] / "missing.wav", "--json", "--events", "--hop", "0.3"]
    s1, one, _ = run(capsys, tree["model"], tree["root"], *extra, "--jobs", "1")
    s2, two, _ = run(capsys, tree["model"], tree["root"], *extra, "--jobs", "2")
    assert s1 == s2 == 3
    assert one == two and len(one.splitlines()) == 6
    assert "error" in json.loads(one.splitlines()[-1])


def test_summary_line_when_every_file_is_scored(tree, capsys):
    status, _, err = run(capsys, tree["model"], tree["root"] / "a.wav", tree["root"] / "B.WAV")
    assert status == 0 and err.strip().splitlines()[-1] == "qdaed detect: 2 file(s) scored"


def test_summary_line_names_every_reason(tree, capsys):
    status, _, err = run(capsys, tree["model"], tree["dir"] / "gone.wav",
                         tree["root"] / "sub" / "bad.wav", tree["dir"] / "gone2.flac")
    assert status == 2
    assert err.strip().splitlines()[-1] == ("qdaed detect: none of the 3 file(s) could be "
                                            "scored (missing 2, sample rate 1)")


class _Terminal(io.StringIO):
    def isatty(self):
        return True


@pytest.mark.parametrize("argv, bar", [([], True), (["--no-progress"], False)])
def test_progress_bar_on_a_terminal_unless_switched_off(tree, capsys, monkeypatch, argv, bar):
    term = _Terminal()
    monkeypatch.setattr(sys, "stderr", term)
    main(["detect", str(tree["model"]), str(tree["root"] / "a.wav"),
          str(tree["root"] / "B.WAV"), "--json", *argv])
    text = term.getvalue()
    assert ("detect:" in text and "file/s" in text) == bar, text
    assert len(capsys.readouterr().out.splitlines()) == 2      # stdout: the results only


def test_no_progress_bar_when_stderr_is_not_a_terminal(tree, capsys):
    _, _, err = run(capsys, tree["model"], tree["root"] / "a.wav", tree["root"] / "B.WAV")
    assert "file/s" not in err and "\r" not in err


@pytest.mark.parametrize("rate, channels, notes", [
    (16000, 1, []),
    (44100, 2, ["2 channels mixed down to mono (their mean)"]),
    (96000, 6, ["6 channels mixed down to mono (their mean)",
                "resampled from 96000 Hz to 16000 Hz"]),
    (8000, 1, ["upsampled from 8000 Hz to 16000 Hz: the model sees nothing above 4000 Hz"]),
    (37800, 1, ["resampled from 37800 Hz to 16000 Hz"]),
])
def test_a_note_when_a_file_is_mixed_down_or_resampled_from_an_unusual_rate(
        tree, capsys, rate, channels, notes):
    path = tree["dir"] / "x.wav"
    _noise(path, 1.5, rate=rate, channels=channels)
    _, out, _ = run(capsys, tree["model"], path, "--json")
    row = json.loads(out)
    assert (row["note"].split("; ") if "note" in row else []) == notes
    _, text, _ = run(capsys, tree["model"], path)
    assert [line[len("  note: "):] for line in text.splitlines()
            if line.startswith("  note: ")] == (["; ".join(notes)] if notes else [])


def test_a_short_file_keeps_its_note_beside_the_mixdown(tree, capsys):
    path = tree["dir"] / "short.wav"
    _noise(path, 0.3, rate=44100, channels=2)
    _, out, _ = run(capsys, tree["model"], path, "--json")
    note = json.loads(out)["note"].split("; ")
    assert "looped" in note[0] and note[1] == "2 channels mixed down to mono (their mean)"


# ---- names and outputs of --events-tsv and --scores-dir --------------------------------------

def test_events_tsv_names_files_by_folder_path_or_base_name(tree, capsys):
    tsv = tree["dir"] / "est.tsv"
    status, _, _ = run(capsys, tree["model"], tree["root"] / "sub", tree["root"] / "a.wav",
                       "--events-tsv", tsv)
    assert status == 3
    names = [line.split("\t")[0] for line in tsv.read_text().splitlines()[1:]]
    assert sorted(set(names)) == ["a.wav", "c.flac", "deeper/d.ogg"]
    assert names.count("a.wav") == 3                   # thresholds 1e-6: one event per class


def test_odd_file_names_survive_both_outputs(tree, capsys):
    odd = tree["dir"] / "odd"
    odd.mkdir()
    _noise(odd / "plain.wav", 1.5)
    os.rename(odd / "plain.wav", os.fsencode(odd) + b"/caf\xe9\tx.wav")
    status, _, _ = run(capsys, tree["model"], odd, "--events-tsv", tree["dir"] / "e.tsv",
                       "--scores-dir", tree["dir"] / "s")
    assert status == 0
    rows = (tree["dir"] / "e.tsv").read_text(encoding="utf-8").splitlines()
    assert {r.split("\t")[0] for r in rows[1:]} == {"caf\\xe9\\x09x.wav"}
    assert all(len(r.split("\t")) == 4 for r in rows)
    assert os.listdir(tree["dir"] / "s") == ["caf\\xe9\\x09x.tsv"]


def test_two_files_with_one_name_are_refused_before_any_work(tree, capsys):
    other = tree["dir"] / "other"
    other.mkdir()
    _noise(other / "a.wav", 1.5)
    for option in ("--events-tsv", "--scores-dir"):
        status, out, err = run(capsys, tree["model"], tree["root"] / "a.wav", other / "a.wav",
                               option, tree["dir"] / "x")
        assert status == 2 and out == "" and "would both be named 'a" in err
        assert len(err.strip().splitlines()) == 1
        assert not (tree["dir"] / "x").exists()


def test_one_stem_with_two_extensions_shares_a_score_table_and_is_refused(tree, capsys):
    _noise(tree["dir"] / "a.flac", 1.5)
    status, _, err = run(capsys, tree["model"], tree["root"] / "a.wav", tree["dir"] / "a.flac",
                         "--scores-dir", tree["dir"] / "s")
    assert status == 2 and "would both be named 'a.tsv'" in err
    # the event list keeps the extension: no clash there
    status, _, _ = run(capsys, tree["model"], tree["root"] / "a.wav", tree["dir"] / "a.flac",
                       "--events-tsv", tree["dir"] / "e.tsv")
    assert status == 0


@pytest.mark.parametrize("argv, needle", [
    (["--events-tsv", "{a}"], "--events-tsv {a}: is an input of this command"),
    (["--events-tsv", "{root}"], "--events-tsv {root}: is a directory"),
    (["--events-tsv", "{dir}/x.tsv", "--csv", "{dir}/x.tsv"], "both name"),
    (["--events-tsv", "{dir}/no/such/x.tsv"], "does not exist"),
    (["--scores-dir", "{a}"], "--scores-dir {a}: exists and is not a folder"),
    (["--scores-dir", ""], "--scores-dir: an empty path"),
    (["--scores-dir", "{root}"], "--scores-dir {root}: is an input of this command"),
    (["--jobs", "-1"], "--jobs"),
])
def test_output_paths_are_checked_before_any_work(tree, capsys, argv, needle):
    fill = {"a": tree["root"] / "a.wav", "root": tree["root"], "dir": tree["dir"]}
    argv = [a.format(**fill) for a in argv]
    status, out, err = run(capsys, tree["model"], tree["root"] / "a.wav", tree["root"], *argv)
    assert status == 2 and out == "" and needle.format(**fill) in err
    assert len(err.strip().splitlines()) == 1
