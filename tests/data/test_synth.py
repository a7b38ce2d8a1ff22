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


# ---------------------------------------------------------------------------------------------
# corpus v1 pinned, corpus v2 (noisy weak labels), label noise

from qdaed.data import synth  # noqa: E402
from qdaed.data.synth import (LabelNoise, corpus_clip, corpus_config, format_events,  # noqa: E402
                              iter_corpus, observe_labels, parse_label_noise)

# sha256 of pcm16 bytes + repr((labels, events, background, sample_rate)) of clips made by the
# code before corpus v2 existed (git ee6fc9c), as (seed, index, duration): v1 must not change.
V1_CLIPS = {
    (0, 0, 2.0): "4861b0873a303ddba9350887823eff3e8656d6842909499bfb2bb5f3398abab5",
    (0, 7, 2.0): "9afd29c0fcbe48ceb1736f5d56c71a9876fd18f8656844a7806facd8a8a24feb",
    (20190701, 3, 3.0): "f0761b4b6fd880b1ab53bb84fc98599338520c5842be32a66663ecb566c58b00",
    (5, 1, 10.0): "21fff32caaa9d659887ce43aaae2828ce6027888ff31cc1b47ba7455117d6485",
}
# sha256 of the wav files write_corpus(OUT, 3, seed=11, duration=1.5) wrote at git ee6fc9c
V1_WAVS = {
    "synth_11_000000.wav": "f124ad13e33a957a25e7dd092cefb93cd356031455ef0dbd779bc38164a4683b",
    "synth_11_000001.wav": "d30353d327375a7f960cd57c60578c1e9102abe6e1819e2fcfb2ddc90c69309e",
    "synth_11_000002.wav": "8a19bbf125c056f4107324715a393e797cb1f698e09792e43074ba223c37f382",
}


def clip_digest(clip):
    m = hashlib.sha256(clip.pcm16.tobytes())
    m.update(repr((clip.labels, format_events(clip.events), clip.background,
                   clip.sample_rate)).encode())
    return m.hexdigest()


@pytest.mark.parametrize("key", list(V1_CLIPS))
def test_corpus_v1_clips_are_the_clips_of_the_code_before_v2(key):
    seed, i, duration = key
    made = [generate_clip(clip_rng(seed, i), SynthConfig(duration=duration)),
            corpus_clip(seed, i, corpus_config("v1", duration)),
            next(iter_corpus(1, seed, corpus_config("v1", duration), start=i))]
    for clip in made:
        assert clip_digest(clip) == V1_CLIPS[key]
        assert clip.observed_labels == clip.labels


def test_corpus_v1_wav_files_are_the_files_of_the_code_before_v2(tmp_path):
    rows = write_corpus(tmp_path, 3, seed=11, duration=1.5)
    got = {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
           for p in sorted((tmp_path / "audio").glob("*.wav"))}
    assert got == V1_WAVS
    assert [r["labels"] for r in rows] == ["dog;gunshot", "baby_cry", "dog;baby_cry"]
    assert all(r["labels"] == r["clean_labels"] for r in rows)


NOISY = LabelNoise(missing=0.4, false_positive=0.15)


def test_v2_keeps_v1s_events_and_grades_the_target_snrs_lower():
    v1, v2 = corpus_config("v1", 2.0), corpus_config("v2", 2.0)
    assert v2.snr_db == (-15.0, 10.0) and v2.distractor_snr_db == v1.distractor_snr_db
    lows = []
    for i in range(12):
        a, b = corpus_clip(4, i, v1), corpus_clip(4, i, v2)
        assert a.labels == b.labels and a.background == b.background
        assert [(e.kind, e.onset, e.duration) for e in a.events] == \
               [(e.kind, e.onset, e.duration) for e in b.events]
        for ea, eb in zip(a.events, b.events):
            if ea.label is None:
                assert ea.snr_db == eb.snr_db
            else:   # the same uniform draw mapped from (-8, 10) onto (-15, 10)
                u = (ea.snr_db + 8.0) / 18.0
                assert abs(eb.snr_db - (-15.0 + 25.0 * u)) < 0.03
                lows.append(eb.snr_db)
    assert min(lows) < -8.0


def test_label_noise_never_changes_the_audio_and_zero_noise_observes_the_truth():
    quiet = corpus_config("v2", 1.0, label_noise={"missing": 0.0, "false_positive": 0.0})
    loud = corpus_config("v2", 1.0, label_noise=NOISY)
    assert not quiet.label_noise.active and loud.label_noise.active
    flipped = 0
    for i in range(30):
        a, b = corpus_clip(9, i, quiet), corpus_clip(9, i, loud)
        assert np.array_equal(a.pcm16, b.pcm16) and a.events == b.events
        assert a.labels == b.labels == a.observed_labels
        flipped += b.observed_labels != b.labels
    assert flipped > 0


def test_generate_clip_alone_observes_the_truth_unless_given_the_noise_generator():
    cfg = corpus_config("v2", 1.0, label_noise=LabelNoise(0.9, 0.9))
    plain = generate_clip(clip_rng(2, 0), cfg)
    assert plain.observed_labels == plain.labels
    noisy = generate_clip(clip_rng(2, 0), cfg, noise_rng=synth.noise_rng(2, 0))
    assert noisy.observed_labels == corpus_clip(2, 0, cfg).observed_labels
    with pytest.raises(InputError, match="noise_rng"):
        generate_clip(clip_rng(2, 0), cfg, noise_rng=5)


def test_corpus_clips_observe_what_observe_labels_draws_without_audio():
    cfg = corpus_config("v2", 1.0, label_noise=NOISY)
    for clip, i in zip(iter_corpus(25, 3, cfg), range(25)):
        want = observe_labels(np.array(clip.targets(CLASSES), dtype=np.float32), NOISY, 3, i)
        assert clip.observed_targets(CLASSES) == tuple(int(v) for v in want)
        assert clip.observed_targets(("gunshot",)) == (int(want[2]),)


def noisy_labels(n, noise, classes=CLASSES, p=0.35, seed=21):
    clean = (np.random.default_rng(seed).random((n, len(classes))) < p).astype(np.float32)
    obs = np.stack([observe_labels(clean[i], noise, seed, i, classes) for i in range(n)])
    return clean, obs


def within(observed_rate, rate, count):
    return abs(observed_rate - rate) <= 4 * np.sqrt(rate * (1 - rate) / count) + 1e-12


def test_per_class_missing_rates_from_a_dict_and_false_positives_on_negatives_only():
    noise = LabelNoise(missing={"dog": 0.3, "gunshot": 0.1}, false_positive=0.02)
    assert noise.missing == (0.3, 0.0, 0.1)
    clean, obs = noisy_labels(6000, noise)
    for c, rate in enumerate((0.3, 0.0, 0.1)):
        pos = clean[:, c] == 1
        assert within(np.mean(obs[pos, c] == 0), rate, pos.sum()), CLASSES[c]
    neg = clean == 0
    assert within(np.mean(obs[neg] == 1), 0.02, neg.sum())
    assert np.all(obs[:, 1][clean[:, 1] == 1] == 1)           # rate 0: never missing
    changed = obs != clean
    assert np.all(clean[changed & (obs == 1)] == 0)           # additions only on negatives
    assert np.all(clean[changed & (obs == 0)] == 1)           # removals only on positives


def test_one_class_gets_the_same_draws_as_in_the_full_class_list():
    noise = LabelNoise(0.25, 0.05)
    clean, obs = noisy_labels(800, noise, classes=("gunshot",))
    full = np.stack([observe_labels(np.array([0, 0, clean[i, 0]], dtype=np.float32), noise,
                                    21, i) for i in range(800)])
    np.testing.assert_array_equal(obs[:, 0], full[:, 2])
    assert 0 < (obs != clean).sum()


def test_raising_a_rate_only_adds_flips():
    lo, hi = LabelNoise(0.1, 0.01), LabelNoise(0.3, 0.05)
    clean, a = noisy_labels(2000, lo)
    _, b = noisy_labels(2000, hi)
    assert np.all((a != clean) <= (b != clean)) and (b != clean).sum() > (a != clean).sum()


def test_zero_rates_observe_exactly_the_truth():
    clean, obs = noisy_labels(300, LabelNoise(0.0, 0.0))
    np.testing.assert_array_equal(obs, clean)
    clean, obs = noisy_labels(300, None)
    np.testing.assert_array_equal(obs, clean)


@pytest.mark.parametrize("kwargs, field", [
    ({"missing": 1.0}, "missing"), ({"missing": -0.01}, "missing"),
    ({"missing": float("nan")}, "missing"), ({"missing": "0.2"}, "missing"),
    ({"missing": True}, "missing"), ({"false_positive": 1.0}, "false_positive"),
    ({"false_positive": -1e-9}, "false_positive"), ({"false_positive": None}, "false_positive"),
    ({"missing": (0.1, 1.2, 0.1)}, r"missing\[baby_cry\]"),
    ({"missing": {"gunshot": 2.0}}, r"missing\[gunshot\]"),
])
def test_bad_noise_rates_are_input_errors_naming_the_field(kwargs, field):
    with pytest.raises(InputError, match=rf"^{field}: a noise rate must be in \[0, 1\)"):
        LabelNoise(**kwargs)


def test_label_noise_from_an_options_text():
    assert parse_label_noise("0.3") == {"missing": 0.3, "false_positive": 0.02}
    assert parse_label_noise("0.3", default_false_positive=0.1) == {"missing": 0.3,
                                                                     "false_positive": 0.1}
    assert parse_label_noise(" 0,0.05") == {"missing": 0.0, "false_positive": 0.05}
    for text, message in (("a,b", "--noise: expected MISSING[,FALSE_POSITIVE] such as "
                                  "0.2,0.02, got 'a,b'"),
                          ("0.1,0.1,0.1", "--noise: expected one or two rates, got "
                                          "'0.1,0.1,0.1'"),
                          ("1", "--noise: missing: a noise rate must be in [0, 1), got 1.0")):
        with pytest.raises(InputError) as err:
            parse_label_noise(text, "--noise")
        assert str(err.value) == message


def test_bad_noise_shapes_and_corpus_configs_are_input_errors():
    with pytest.raises(InputError, match="one per class"):
        LabelNoise(missing=(0.1, 0.2))
    with pytest.raises(InputError, match="unknown class"):
        LabelNoise(missing={"cat": 0.1})
    with pytest.raises(InputError, match="unknown field"):
        LabelNoise.of({"missing": 0.1, "fp": 0.1})
    with pytest.raises(InputError, match="corpus"):
        corpus_config("v3", 1.0)
    with pytest.raises(InputError, match="v1 has clean labels"):
        corpus_config("v1", 1.0, label_noise=LabelNoise())
    with pytest.raises(InputError, match="targets"):
        observe_labels([1, 0], LabelNoise(), 0, 0)
    assert corpus_config("v1", 1.0, label_noise={"missing": 0, "false_positive": 0}) == \
        SynthConfig(duration=1.0)
    assert corpus_config("v2", 1.0).label_noise == LabelNoise(0.2, 0.02)
    assert corpus_config("v2", 1.0, snr_db=(-20.0, 0.0)).snr_db == (-20.0, 0.0)
    assert LabelNoise(missing=[0.2] * 3).to_dict() == {
        "missing": {"dog": 0.2, "baby_cry": 0.2, "gunshot": 0.2}, "false_positive": 0.02}
    assert LabelNoise().to_dict() == {"missing": 0.2, "false_positive": 0.02}


def test_v2_corpus_files_are_deterministic_with_observed_and_clean_labels(tmp_path):
    cfg = corpus_config("v2", 1.0, label_noise=NOISY)
    rows = write_corpus(tmp_path / "a", 20, seed=6, config=cfg, n_transfer=4)
    write_corpus(tmp_path / "b", 20, seed=6, config=cfg, n_transfer=4)
    assert digest(tmp_path / "a") == digest(tmp_path / "b")
    clips = list(iter_corpus(24, 6, cfg))
    assert [r["split"] for r in rows] == ["train"] * 16 + ["validation"] * 2 + ["test"] * 2 \
        + ["unlabeled"] * 4
    for r, clip in zip(rows, clips):
        assert r["clean_labels"] == ";".join(clip.labels)
        want = clip.labels if r["split"] == "unlabeled" else clip.observed_labels
        assert r["labels"] == ";".join(want)
    assert any(r["labels"] != r["clean_labels"] for r in rows)
    parsed = read_manifest(tmp_path / "a" / "manifest.csv")
    assert [c.clean_labels for c in parsed] == [clip.labels for clip in clips]
    with open(tmp_path / "a" / "events.csv", newline="") as fh:
        events = list(csv.DictReader(fh))
    by_path = {r["path"]: r for r in rows}
    for e in events:
        observed = by_path[e["path"]]["labels"].split(";")
        assert e["observed"] == ("" if not e["label"] else str(int(e["label"] in observed)))
    assert {e["observed"] for e in events} == {"", "0", "1"}


def test_transfer_clips_are_the_next_indices_and_n_transfer_zero_adds_none(tmp_path):
    rows = write_corpus(tmp_path / "t", 5, seed=2, duration=1.0, n_transfer=3)
    assert [r["path"] for r in rows[5:]] == [f"audio/synth_2_{i:06d}.wav" for i in (5, 6, 7)]
    plain = write_corpus(tmp_path / "p", 8, seed=2, duration=1.0)
    for i in (5, 6, 7):
        assert (tmp_path / "t" / rows[i]["path"]).read_bytes() == \
            (tmp_path / "p" / plain[i]["path"]).read_bytes()
    rows = write_corpus(tmp_path / "z", 5, seed=2, duration=1.0, n_transfer=0)
    assert "unlabeled" not in {r["split"] for r in rows}
    with pytest.raises(InputError, match="n_transfer"):
        write_corpus(tmp_path / "z", 5, seed=2, duration=1.0, n_transfer=-1)


def test_synth_command_corpus_v2_with_noise_and_transfer(tmp_path, capsys):
    out = tmp_path / "v2"
    assert main(["synth", "--n", "10", "--seed", "3", "--out", str(out), "--duration", "1",
                 "--corpus", "v2", "--label-noise", "0.5,0.2", "--transfer", "2",
                 "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "corpus v2" in text and "missing positives 50%, false positives 20%" in text
    clips = read_manifest(out / "manifest.csv")
    assert [c.split for c in clips][-3:] == ["test", "unlabeled", "unlabeled"]
    cfg = corpus_config("v2", 1.0, label_noise=LabelNoise(0.5, 0.2))
    for c, clip in zip(clips, iter_corpus(12, 3, cfg)):
        assert c.clean_labels == clip.labels
    for argv, needle in [(["--corpus", "v1", "--label-noise", "0.2"], "only corpus v2"),
                         (["--corpus", "v2", "--label-noise", "1.5"],
                          "a noise rate must be in [0, 1)"),
                         (["--corpus", "v2", "--label-noise", "x"], "MISSING"),
                         (["--transfer", "-1"], "--transfer")]:
        assert main(["synth", "--n", "2", "--out", str(tmp_path / "bad"), *argv]) == 2
        assert needle in capsys.readouterr().err
