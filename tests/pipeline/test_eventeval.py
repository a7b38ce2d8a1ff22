"""Event metrics of manifest runs: real soundscapes from the test split only, as written."""

import csv
import json

import numpy as np
import soundfile as sf

from qdaed.data.manifest import read_manifest
from qdaed.pipeline import eventeval
from qdaed.pipeline.config import EventEvalConfig
from qdaed.pipeline.presets import preset_config


def test_manifest_soundscapes_use_only_test_clips_and_are_written_as_annotated(tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "c").mkdir()
    spec = [("train", "dog"), ("train", ""), ("validation", "gunshot")] + \
        [("test", "")] * 6 + [("test", "dog"), ("test", "baby_cry;gunshot"), ("test", "dog")]
    with open(tmp_path / "c" / "manifest.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "labels", "split"])
        for i, (split, labels) in enumerate(spec):
            sf.write(tmp_path / "c" / f"{i}.wav", rng.normal(scale=0.05, size=16000 * 3),
                     16000, subtype="FLOAT")
            w.writerow([f"{i}.wav", labels, split])
    manifest = tmp_path / "c" / "manifest.csv"
    with open(manifest, newline="") as fh:
        rows = list(csv.DictReader(fh))
    test = [r["path"] for r in rows if r["split"] == "test"]
    cfg = preset_config("tiny").merged({"data": dict(
        source="manifest", manifest=str(manifest), audio_root=str(tmp_path / "c"),
        n_transfer=0)})
    out = tmp_path / "soundscapes"
    test_clips = [c for c in read_manifest(manifest, cfg.classes) if c.split == "test"]
    recs = eventeval.manifest_recordings(cfg.data, EventEvalConfig(recordings=3),
                                         cfg.classes, {"num_mel_bins": 32}, test_clips, out)
    assert len(recs) == 3
    doc = json.loads((out / "soundscapes.json").read_text())
    table = list(csv.DictReader(open(out / "annotations.tsv", newline=""), delimiter="\t"))
    labels = {r["path"]: set(filter(None, r["labels"].split(";"))) for r in rows}
    for (feats, samples, truth), entry in zip(recs, doc["soundscapes"]):
        assert set(entry["background"]) <= set(test)
        assert all(not labels[b] for b in entry["background"])      # negatives only
        for e in entry["events"]:
            assert e["source"] in test and e["class"] in labels[e["source"]]
        wav, rate = sf.read(out / entry["file"], dtype="float32")
        assert rate == 16000 and wav.size == samples == entry["samples"]
        assert 30 * 16000 <= samples <= 60 * 16000
        assert feats.shape[1] == 32
        mine = [r for r in table if r["filename"] == entry["file"]]
        assert [(r["event_label"], float(r["onset"]), float(r["offset"])) for r in mine] == \
            [(t["class"], round(t["onset"], 6), round(t["offset"], 6)) for t in truth]
        assert [t["onset"] for t in truth] == [e["onset_sample"] / 16000 for e in entry["events"]]


def test_no_soundscapes_when_switched_off_or_for_synthetic_runs(tmp_path):
    cfg = preset_config("tiny")
    assert eventeval.manifest_recordings(cfg.data, EventEvalConfig(recordings=3), cfg.classes,
                                         {}, [], tmp_path / "s") == []
    assert not (tmp_path / "s").exists()


def _perfect_tables(truth, duration, classes, step=0.1):
    """Scores of an oracle: 1 inside each reference event of its class, 0 elsewhere."""
    edges = np.round(np.arange(0.0, duration + 1e-9, step), 6)
    mid = 0.5 * (edges[:-1] + edges[1:])
    s = np.zeros((mid.size, len(classes)))
    for e in truth:
        s[(mid >= e["onset"]) & (mid < e["offset"]), classes.index(e["class"])] = 1.0
    return edges, s


def test_psds_of_an_oracle_is_one_and_of_a_silent_detector_is_zero():
    if eventeval.sed_scores_eval_module() is None:
        import pytest
        pytest.skip("sed_scores_eval not installed (extra 'sed')")
    classes = ["dog", "baby_cry", "gunshot"]
    truth = [[{"class": "dog", "onset": 1.0, "offset": 3.0},
              {"class": "gunshot", "onset": 5.0, "offset": 5.5}],
             [{"class": "baby_cry", "onset": 0.5, "offset": 4.0},
              {"class": "dog", "onset": 6.0, "offset": 7.0}]]
    files = [(t, 10.0) for t in truth]
    oracle = [_perfect_tables(t, 10.0, classes) for t in truth]
    got = eventeval.psds(oracle, files, classes)
    assert got["psds1"] == 1.0 and got["psds2"] == 1.0
    silent = [(edges, np.zeros_like(s)) for edges, s in oracle]
    assert eventeval.psds(silent, files, classes) == {"psds1": 0.0, "psds2": 0.0}
    # one class always on: its false positives cost, the others are still found perfectly
    noisy = [(edges, np.where(np.arange(3) == 0, 1.0, s)) for edges, s in oracle]
    assert 0.0 <= eventeval.psds(noisy, files, classes)["psds1"] < 1.0
