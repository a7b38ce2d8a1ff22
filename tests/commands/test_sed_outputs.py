"""``qdaed detect --events-tsv / --scores-dir`` and ``qdaed evaluate --reference-tsv``: the
files the field's evaluation tools read, read by those tools (sed_eval, sed_scores_eval:
skipped where they do not install) and by qdaed, with the same metrics."""

import io
import json
import math
import os
import sys
import types
from contextlib import redirect_stderr, redirect_stdout

import numpy as np
import pytest
import soundfile as sf

from qdaed.cli import main
from qdaed.data.synth import SynthConfig, write_corpus
from qdaed.errors import DataError, InputError
from qdaed.eventmetrics import event_metrics, manifest_events
from qdaed.features.fbank import lfbe
from qdaed.io.sedformats import (events_tsv, read_events_tsv, score_file_name, score_table,
                                 tsv_text)
from tests.helpers.detectors import energy_detector

HOP = "0.05"


def _import(name):
    # sed_eval's container library imports pkg_resources, which setuptools >= 81 lacks; it
    # uses it only for a version lookup (see qdaed.pipeline.eventeval.sed_scores_eval_module)
    sys.modules.setdefault("pkg_resources", types.ModuleType("pkg_resources"))
    return pytest.importorskip(name)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Six 8 s recordings in audio/ (one in audio/sub/) whose event onsets are the truth (a
    dog, a gunshot, two baby cries, two files without events), the reference event list
    ref.tsv (a row without events for a file without any), and a model that fires on
    loudness, as baby_cry only: true and false positives and misses."""
    root = tmp_path_factory.mktemp("sed")
    cfg = SynthConfig(duration=8.0, classes=("dog", "baby_cry", "gunshot"),
                      event_count_probs=(0.4, 0.6),
                      distractor_count_probs=(1.0,), backgrounds=("pink",), snr_db=(30, 30))
    rows = write_corpus(root, 6, seed=7, config=cfg, validation_fraction=0.0,
                        test_fraction=0.0, progress=False)
    os.makedirs(root / "audio" / "sub")
    moved = rows[-1]["path"].replace("audio/", "audio/sub/")
    os.replace(root / rows[-1]["path"], root / moved)
    truth = manifest_events(root / "manifest.csv", ("dog", "baby_cry", "gunshot"))
    names = {r["path"]: r["path"][len("audio/"):] for r in rows}
    names[rows[-1]["path"]] = moved[len("audio/"):]
    lines = ["filename\tonset\toffset\tevent_label"]
    for path, name in names.items():
        lines += [f"{name}\t{e['onset']}\t{e['offset']}\t{e['class']}" for e in truth[path]]
        if not truth[path]:
            lines.append(f"{name}\t\t\t")
    (root / "ref.tsv").write_text("\n".join(lines) + "\n")
    wav, _ = sf.read(root / rows[0]["path"])
    det = energy_detector(np.percentile(lfbe(wav, 16000, num_mel_bins=32), 20, axis=0))
    det.thresholds = np.array([1.0, 0.5, 1.0])    # only baby_cry can fire
    det.save(root / "energy.safetensors")
    durations = {name: sf.info(root / "audio" / name).duration for name in names.values()}
    assert sorted(e["class"] for p in names for e in truth[p]) == \
        ["baby_cry", "baby_cry", "dog", "gunshot"]
    assert sum(not truth[p] for p in names) == 2
    return {"root": root, "model": root / "energy.safetensors", "ref": root / "ref.tsv",
            "names": sorted(names.values()), "durations": durations, "det": det,
            "truth": {names[p]: truth[p] for p in names}}


@pytest.fixture(scope="module")
def detected(corpus, tmp_path_factory):
    """``qdaed detect`` on the folder with --events-tsv, --scores-dir and --json."""
    out = tmp_path_factory.mktemp("out")
    argv = ["detect", str(corpus["model"]), str(corpus["root"] / "audio"), "--json",
            "--hop", HOP, "--median", "1", "--events", "--events-tsv", str(out / "est.tsv"),
            "--scores-dir", str(out / "scores"), "--no-progress"]
    so, se = io.StringIO(), io.StringIO()
    with redirect_stdout(so), redirect_stderr(se):
        status = main(argv)
    assert status == 0, se.getvalue()
    return {"out": out, "rows": [json.loads(line) for line in so.getvalue().splitlines()],
            "err": se.getvalue()}


def _qdaed_files(corpus, detected):
    """[(reference, estimate, duration)] per file from the TSV files, read by qdaed."""
    ref = read_events_tsv(corpus["ref"])
    est = read_events_tsv(detected["out"] / "est.tsv")
    return [(ref[n], est.get(n, []), corpus["durations"][n]) for n in corpus["names"]]


def test_events_tsv_holds_the_json_events_with_folder_relative_names(corpus, detected):
    text = (detected["out"] / "est.tsv").read_text()
    assert text.splitlines()[0] == "filename\tonset\toffset\tevent_label"
    est = read_events_tsv(detected["out"] / "est.tsv")
    by_name = dict(zip(corpus["names"], detected["rows"]))
    assert [r["file"] for r in detected["rows"]] == \
        [str(corpus["root"] / "audio" / n) for n in corpus["names"]]
    assert any("/" in n for n in corpus["names"])          # sub/… found recursively
    for name, row in by_name.items():
        want = [{k: e[k] for k in ("class", "onset", "offset")} for e in row["events"]]
        assert est.get(name, []) == want
    assert sum(len(v) for v in est.values()) >= 3


def test_score_tables_are_the_window_scores_over_the_window_stretches(corpus, detected):
    det = corpus["det"]
    name = corpus["names"][0]
    table = (detected["out"] / "scores" / score_file_name(name)).read_text().splitlines()
    assert table[0] == "onset\toffset\tdog\tbaby_cry\tgunshot"
    values = np.array([[float(v) for v in line.split("\t")] for line in table[1:]])
    wav, sr = sf.read(corpus["root"] / "audio" / name, dtype="float64")
    times, scores = det.window_scores(wav, sr, hop=float(HOP))
    np.testing.assert_array_equal(values[:, 2:], scores)             # exactly (repr)
    assert values[0, 0] == 0.0 and values[-1, 1] == pytest.approx(len(wav) / sr)
    np.testing.assert_array_equal(values[1:, 0], values[:-1, 1])   # no gap, no overlap
    centres = times.mean(axis=1)
    np.testing.assert_allclose(values[1:, 0], (centres[1:] + centres[:-1]) / 2)
    assert sorted(os.listdir(detected["out"] / "scores")) == \
        sorted(score_file_name(n) for n in corpus["names"])
    assert "sub%2F" in "".join(os.listdir(detected["out"] / "scores"))


@pytest.mark.conformance
def test_sed_eval_reads_the_event_lists_and_agrees_with_qdaed(corpus, detected):
    sed_eval = _import("sed_eval")
    ref_list = sed_eval.io.load_event_list(str(corpus["ref"]))
    est_list = sed_eval.io.load_event_list(str(detected["out"] / "est.tsv"))
    classes = list(corpus["det"].classes)
    seg = sed_eval.sound_event.SegmentBasedMetrics(classes, time_resolution=1.0)
    evb = sed_eval.sound_event.EventBasedMetrics(classes, t_collar=0.2,
                                                 percentage_of_length=0.5)
    for name in corpus["names"]:
        ref = [dict(e) for e in ref_list if e.filename == name and e.event_label]
        est = [dict(e) for e in est_list if e.filename == name]
        seg.evaluate(ref, est, evaluated_length_seconds=corpus["durations"][name])
        evb.evaluate(ref, est)
    ours = event_metrics(_qdaed_files(corpus, detected), corpus["det"].classes)
    for kind, theirs in (("segment", seg.results()), ("event", evb.results())):
        o = theirs["overall"]["f_measure"]
        assert ours[kind]["overall"]["f1"] == pytest.approx(o["f_measure"], abs=1e-12)
        assert ours[kind]["overall"]["precision"] == pytest.approx(o["precision"], abs=1e-12)
        assert ours[kind]["overall"]["recall"] == pytest.approx(o["recall"], abs=1e-12)
        for c in classes:
            f1 = theirs["class_wise"][c]["f_measure"]["f_measure"]
            if ours[kind]["class"][c]["f1"] is None:
                assert math.isnan(f1)
            else:
                assert ours[kind]["class"][c]["f1"] == pytest.approx(f1, abs=1e-12)
    o = ours["event"]["overall"]
    assert o["tp"] > 0 and o["fp"] > 0 and o["fn"] > 0       # every kind of count occurs


@pytest.mark.conformance
def test_sed_scores_eval_reads_the_score_tables_and_agrees_with_qdaed(corpus, detected):
    _import("sed_scores_eval")
    from sed_scores_eval import collar_based, segment_based

    det = corpus["det"]
    scores_dir = detected["out"] / "scores"
    thresholds = dict(zip(det.classes, map(float, det.thresholds)))
    # sed_scores_eval names a score table and a reference by the file name without extension
    # and flat: the reference of the file in sub/ is renamed as its table is
    ref = {}
    for name, events in read_events_tsv(corpus["ref"]).items():
        ref[score_file_name(name)[:-len(".tsv")]] = [(e["onset"], e["offset"], e["class"])
                                                     for e in events]
    durations = {score_file_name(n)[:-len(".tsv")]: d for n, d in corpus["durations"].items()}
    ours = event_metrics(_qdaed_files(corpus, detected), det.classes)
    f, p, r, stats = collar_based.fscore(str(scores_dir), ref, thresholds, onset_collar=0.2,
                                         offset_collar=0.2, offset_collar_rate=0.5)
    for kind in ("event", "segment"):
        if kind == "segment":
            f, p, r, stats = segment_based.fscore(str(scores_dir), ref, durations, thresholds,
                                                  segment_length=1.0)
        for c in det.classes:
            o = ours[kind]["class"][c]
            assert (stats[c]["tps"], stats[c]["fps"], stats[c]["n_ref"]) == \
                (o["tp"], o["fp"], o["tp"] + o["fn"]), (kind, c)
        assert f["baby_cry"] == pytest.approx(ours[kind]["class"]["baby_cry"]["f1"],
                                              abs=1e-12)
        assert f["micro_average"] == pytest.approx(ours[kind]["overall"]["f1"], abs=1e-12)


def test_evaluate_with_a_reference_tsv_and_no_manifest(corpus, detected, capsys):
    status = main(["evaluate", str(corpus["model"]), "--reference-tsv", str(corpus["ref"]),
                   "--audio-root", str(corpus["root"] / "audio"), "--jobs", "1", "--hop", HOP,
                   "--median", "1", "--json"])
    assert status == 0
    res = json.loads(capsys.readouterr().out)
    assert res["clips"] == len(corpus["names"]) and res["reference"] == str(corpus["ref"])
    assert res["events"] == event_metrics(_qdaed_files(corpus, detected),
                                          corpus["det"].classes)


def test_evaluate_reference_tsv_matches_manifest_paths_by_file_name(corpus, detected, capsys):
    # the manifest's paths are audio/NAME (the sub/ file is not there any more: skipped);
    # ref.tsv names the files without audio/
    status = main(["evaluate", str(corpus["model"]), "--manifest",
                   str(corpus["root"] / "manifest.csv"), "--reference-tsv", str(corpus["ref"]),
                   "--audio-root", str(corpus["root"]), "--jobs", "1", "--hop", HOP,
                   "--median", "1", "--json"])
    assert status == 3                   # the moved file is missing from the manifest's place
    res = json.loads(capsys.readouterr().out)
    flat = [n for n in corpus["names"] if "/" not in n]
    assert res["clips"] == len(flat)
    files = [f for f, n in zip(_qdaed_files(corpus, detected), corpus["names"]) if n in flat]
    assert res["events"] == event_metrics(files, corpus["det"].classes)


def test_evaluate_refuses_a_reference_tsv_that_names_no_clip(corpus, tmp_path, capsys):
    other = tmp_path / "other.tsv"
    other.write_text("filename\tonset\toffset\tevent_label\nnope.wav\t1\t2\tbaby_cry\n")
    status = main(["evaluate", str(corpus["model"]), "--manifest",
                   str(corpus["root"] / "manifest.csv"), "--reference-tsv", str(other),
                   "--audio-root", str(corpus["root"]), "--jobs", "1"])
    err = capsys.readouterr().err
    assert status == 2 and "names none of the 6 clip(s)" in err
    assert "features" not in err                     # refused before any work


def test_evaluate_needs_a_manifest_or_a_reference(corpus, capsys):
    status = main(["evaluate", str(corpus["model"]), "--audio-root", str(corpus["root"])])
    assert status == 2 and "--reference-tsv" in capsys.readouterr().err


# ---- the formats by hand ---------------------------------------------------------------------

def test_read_events_tsv_without_header_and_with_empty_rows(tmp_path):
    p = tmp_path / "a.tsv"
    p.write_text("x.wav\t0.5\t1.5\tdog\n\ny.wav\nx.wav\t2\t3\tgunshot\n")
    assert read_events_tsv(p) == {"x.wav": [{"class": "dog", "onset": 0.5, "offset": 1.5},
                                            {"class": "gunshot", "onset": 2.0, "offset": 3.0}],
                                  "y.wav": []}
    p.write_text("event_label\tfilename\toffset\tonset\textra\ndog\tx.wav\t2\t1\tq\n")
    assert read_events_tsv(p) == {"x.wav": [{"class": "dog", "onset": 1.0, "offset": 2.0}]}


@pytest.mark.parametrize("text, needle", [
    ("filename\tonset\tevent_label\nx.wav\t1\tdog\n", "lacks the column(s) offset"),
    ("x.wav\tone\t2\tdog\n", "line 1: onset 'one'"),
    ("x.wav\t1\tinf\tdog\n", "line 1: offset 'inf'"),
    ("x.wav\t3\t2\tdog\n", "offset 2 is before onset 3"),
    ("x.wav\t1\t2\n", "expected onset, offset and event_label"),
    ("\t1\t2\tdog\n", "no file name"),
    ("", "empty"),
])
def test_read_events_tsv_refuses_malformed_lists(tmp_path, text, needle):
    p = tmp_path / "bad.tsv"
    p.write_text(text)
    with pytest.raises(DataError) as info:
        read_events_tsv(p)
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_names_that_would_break_a_row_are_escaped():
    assert tsv_text("a\tb\nc\rd.wav") == "a\\x09b\\x0ac\\x0dd.wav"
    assert tsv_text(os.fsdecode(b"caf\xe9.wav")) == "caf\\xe9.wav"
    text = events_tsv([("a\tb.wav", [{"class": "dog", "onset": 0.1, "offset": 0.1 + 0.2}]),
                       ("quiet.wav", [])])
    assert text.splitlines() == ["filename\tonset\toffset\tevent_label",
                                 "a\\x09b.wav\t0.1\t0.30000000000000004\tdog"]


def test_score_file_names_are_flat_and_drop_only_the_extension():
    assert score_file_name("a.wav") == "a.tsv"
    assert score_file_name("x.y.flac") == "x.y.tsv"
    assert score_file_name("sub/dir.d/clip") == "sub%2Fdir.d%2Fclip.tsv"
    assert score_file_name("sub.d/clip.ogg") == "sub.d%2Fclip.tsv"


def test_score_table_rows_share_their_boundaries():
    text = score_table(np.array([0.0, 0.5, 1.25]), np.array([[0.1, 0.9], [0.2, 1 / 3]]),
                       ("dog", "gunshot"))
    assert text.splitlines() == ["onset\toffset\tdog\tgunshot", "0.0\t0.5\t0.1\t0.9",
                                 f"0.5\t1.25\t0.2\t{1 / 3!r}"]
    with pytest.raises(InputError, match="edges"):
        score_table(np.array([0.0, 1.0]), np.zeros((2, 2)), ("dog", "gunshot"))
    assert math.isclose(float(text.splitlines()[2].split("\t")[3]), 1 / 3, rel_tol=0)
