"""Synthetic corpus: determinism, ground truth consistency, options and the written files."""

import csv
import hashlib

import numpy as np
import pytest
import soundfile as sf

from qdaed.cli import main
from qdaed.data.manifest import CLASSES, read_manifest
from qdaed.data.synth import (DISTRACTORS, EVENT_MAKERS, SynthConfig, clip_rng, generate_clip,
                              generate_corpus, write_corpus)
from qdaed.errors import InputError


def digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_same_seed_writes_byte_identical_files_and_another_seed_does_not(tmp_path):
    write_corpus(tmp_path / "a", 6, seed=11, duration=1.5)
    write_corpus(tmp_path / "b", 6, seed=11, duration=1.5)
    write_corpus(tmp_path / "c", 6, seed=12, duration=1.5)
    a, b, c = digest(tmp_path / "a"), digest(tmp_path / "b"), digest(tmp_path / "c")
    assert a == b and len(a) == 8  # 6 wav + manifest + events
    wav_a = sorted(v for k, v in a.items() if k.endswith(".wav"))
    wav_c = sorted(v for k, v in c.items() if k.endswith(".wav"))
    assert not set(wav_a) & set(wav_c)


def test_clip_depends_only_on_seed_and_index_not_on_corpus_size():
    small = generate_corpus(3, seed=4, duration=1.0)
    big = generate_corpus(5, seed=4, duration=1.0)
    for x, y in zip(small, big):
        assert np.array_equal(x.pcm16, y.pcm16) and x.events == y.events


def test_written_file_reads_back_as_the_in_memory_waveform(tmp_path):
    write_corpus(tmp_path, 2, seed=3, duration=1.0, validation_fraction=0, test_fraction=0)
    clips = generate_corpus(2, seed=3, duration=1.0)
    for i, clip in enumerate(clips):
        x, sr = sf.read(tmp_path / "audio" / f"synth_3_{i:06d}.wav", dtype="float32")
        assert sr == 16000 and np.array_equal(x, clip.waveform)


def test_labels_are_exactly_the_target_events_and_counts_bounded():
    clips = generate_corpus(40, seed=0, duration=2.0)
    n_events = []
    for c in clips:
        assert c.labels == tuple(k for k in CLASSES if any(e.label == k for e in c.events))
        targets = [e for e in c.events if e.label]
        assert len(targets) <= 3 and len(c.events) - len(targets) <= 3
        assert all(e.kind in DISTRACTORS for e in c.events if e.label is None)
        for e in c.events:
            assert 0 <= e.onset and e.onset + e.duration <= 2.0 + 1e-3
        n_events.append(len(targets))
        assert c.waveform.shape == (32000,) and np.abs(c.waveform).max() <= 1.0
    assert set(n_events) == {0, 1, 2, 3}
    assert all(any(k in c.labels for c in clips) for k in CLASSES)


def test_snr_and_count_options_are_honoured():
    cfg = SynthConfig(duration=1.0, event_count_probs=(0, 0, 0, 1), distractor_count_probs=(1,),
                      snr_db=(3.0, 3.0), classes=("gunshot",))
    clip = generate_clip(np.random.default_rng(0), cfg)
    assert [e.kind for e in clip.events] == ["gunshot"] * 3
    assert all(e.snr_db == 3.0 for e in clip.events) and clip.labels == ("gunshot",)


def test_event_snr_is_measured_against_background_power():
    # an event at +20 dB dominates: the clip's power is ~100x the quiet start's
    cfg = SynthConfig(duration=8.0, event_count_probs=(0, 1), distractor_count_probs=(1,),
                      snr_db=(20.0, 20.0), classes=("baby_cry",))
    clip = generate_clip(np.random.default_rng(2), cfg)
    e = clip.events[0]
    x = clip.waveform.astype(np.float64)
    inside = x[int(e.onset * 16000):int((e.onset + e.duration) * 16000)]
    outside = np.concatenate([x[:int(e.onset * 16000)], x[int((e.onset + e.duration) * 16000):]])
    assert outside.size > 16000
    ratio_db = 10 * np.log10(np.mean(inside ** 2) / np.mean(outside ** 2))
    assert 17 < ratio_db < 23


def test_every_event_maker_is_finite_and_not_silent():
    rng = np.random.default_rng(9)
    for name, make in EVENT_MAKERS.items():
        for _ in range(3):
            x = make(rng, 16000)
            assert np.isfinite(x).all() and np.abs(x).max() > 0, name


def test_bad_config_and_generator_are_input_errors():
    with pytest.raises(InputError, match="snr_db"):
        SynthConfig(snr_db=(5, -5))
    with pytest.raises(InputError, match="event_count_probs"):
        SynthConfig(event_count_probs=(0.5, 0.6))
    with pytest.raises(InputError, match="classes"):
        SynthConfig(classes=("cat",))
    with pytest.raises(InputError, match="rng"):
        generate_clip(42)
    with pytest.raises(InputError, match="seed"):
        clip_rng(-1, 0)


def test_synth_command_writes_manifest_with_ground_truth(tmp_path, capsys):
    out = tmp_path / "s"
    assert main(["synth", "--n", "10", "--seed", "1", "--out", str(out), "--duration", "1",
                 "--no-progress"]) == 0
    clips = read_manifest(out / "manifest.csv")
    assert [c.split for c in clips] == ["train"] * 8 + ["validation", "test"]
    with open(out / "events.csv", newline="") as fh:
        events = list(csv.DictReader(fh))
    with open(out / "manifest.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    for clip, row in zip(clips, rows):
        mine = [e for e in events if e["path"] == clip.path]
        assert set(clip.labels) == {e["label"] for e in mine if e["label"]}
        assert len(row["events"].split("|")) == len(mine) if mine else row["events"] == ""
    assert main(["synth", "--n", "0", "--out", str(out)]) == 2
