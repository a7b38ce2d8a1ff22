"""Soundscapes: events where the annotation says (to the sample), levels, placement, seeds."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from qdaed.data.soundscapes import SoundscapeOptions, build, place, sed_eval_rows
from qdaed.errors import DataError, InputError

RATE = 16000


def _clips(rng, n, seconds, scale, label=None):
    out = []
    for i in range(n):
        x = rng.uniform(0.5, 1.0, size=int(seconds * RATE)) * scale
        x *= rng.choice([-1.0, 1.0], size=x.size)     # never 0: the first and last samples show
        out.append((f"{label or 'bg'}{i}", x) if label is None else (f"{label}{i}", x, (label,)))
    return out


def _background_of(scape, negatives):
    samples = dict(negatives)
    bg = np.concatenate([samples[name] for name in scape.background])
    return bg[:scape.waveform.size]


OPTS = SoundscapeOptions(count=6, min_seconds=8.0, max_seconds=12.0, min_events=1,
                         max_events=3, min_gap=0.5, ebr_db=(0.0, 6.0), seed=7)


def test_each_event_is_its_clip_scaled_exactly_at_its_annotated_samples():
    rng = np.random.default_rng(0)
    negatives = _clips(rng, 5, 3.0, 0.01)
    positives = _clips(rng, 4, 1.5, 0.02, "dog") + _clips(rng, 3, 2.0, 0.02, "gunshot")
    sources = {name: x for name, x, _ in positives}
    for scape in build(negatives, positives, OPTS):
        residual = scape.waveform.astype(np.float64) - _background_of(scape, negatives)
        covered = np.zeros(scape.waveform.size, bool)
        for e in scape.events:
            a, b = e["onset_sample"], e["offset_sample"]
            x = sources[e["source"]]
            assert b - a == x.size
            np.testing.assert_allclose(residual[a:b], e["gain"] * x, rtol=1e-5, atol=1e-7)
            assert e["onset"] == a / RATE and e["offset"] == b / RATE
            assert e["class"] == e["source"].rstrip("0123456789")
            covered[a:b] = True
        assert np.all(np.abs(residual[~covered]) < 1e-7)       # nothing else was added


def test_event_level_is_ebr_db_above_the_background_it_covers():
    rng = np.random.default_rng(1)
    negatives = _clips(rng, 4, 5.0, 0.01)
    positives = _clips(rng, 3, 1.0, 0.3, "baby_cry")
    for scape in build(negatives, positives, OPTS):
        bg = _background_of(scape, negatives)
        for e in scape.events:
            a, b = e["onset_sample"], e["offset_sample"]
            ev = scape.waveform[a:b].astype(np.float64) - bg[a:b]
            ratio = 20 * np.log10(np.sqrt(np.mean(ev ** 2)) / np.sqrt(np.mean(bg[a:b] ** 2)))
            assert ratio == pytest.approx(e["ebr_db"], abs=1e-4)
            assert 0.0 <= e["ebr_db"] <= 6.0


def test_silent_background_keeps_the_event_at_its_own_level():
    negatives = [("silence", np.zeros(RATE * 20))]
    x = np.linspace(-0.5, 0.5, RATE)
    (scape,) = build(negatives, [("dog0", x, ("dog",))],
                     SoundscapeOptions(count=1, min_seconds=10, max_seconds=10, min_events=1,
                                       max_events=1, seed=3))
    (e,) = scape.events
    assert e["gain"] == 1.0
    w = scape.waveform
    np.testing.assert_array_equal(w[e["onset_sample"]:e["offset_sample"]], x.astype(np.float32))
    assert not w[:e["onset_sample"]].any() and not w[e["offset_sample"]:].any()


def test_a_loud_mix_is_scaled_into_minus_one_to_one_and_the_annotation_is_unchanged():
    rng = np.random.default_rng(2)
    negatives = _clips(rng, 2, 6.0, 0.9)
    positives = _clips(rng, 2, 1.0, 0.9, "dog")
    opts = SoundscapeOptions(count=2, min_seconds=5, max_seconds=5, min_events=1, max_events=1,
                             ebr_db=(10.0, 10.0), seed=1)
    for scape in build(negatives, positives, opts):
        assert np.max(np.abs(scape.waveform)) == pytest.approx(1.0)
        (e,) = scape.events
        assert e["offset_sample"] - e["onset_sample"] == RATE


@given(st.lists(st.integers(1, 500), min_size=1, max_size=8), st.integers(1, 3000),
       st.integers(0, 50), st.integers(0, 2 ** 32 - 1))
def test_place_gives_ordered_events_gap_apart_inside_or_none_when_they_cannot_fit(
        lengths, n, gap, seed):
    starts = place(lengths, n, gap, np.random.default_rng(seed))
    need = sum(lengths) + gap * (len(lengths) - 1)
    if need > n:
        assert starts is None
        return
    assert starts[0] >= 0 and starts[-1] + lengths[-1] <= n
    for i in range(len(lengths) - 1):
        assert starts[i] + lengths[i] + gap <= starts[i + 1]


def test_same_seed_same_samples_and_clips_are_used_up_before_any_repeats():
    rng = np.random.default_rng(4)
    negatives = _clips(rng, 6, 2.0, 0.01)
    positives = _clips(rng, 5, 0.5, 0.05, "dog")
    opts = SoundscapeOptions(count=4, min_seconds=6, max_seconds=6, min_events=2,
                             max_events=2, seed=11)
    a, b = build(negatives, positives, opts), build(negatives, positives, opts)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.waveform, y.waveform)
        assert x.events == y.events
    sources = [e["source"] for s in a for e in s.events]
    assert sorted(sources[:5]) == sorted(name for name, _, _ in positives)
    backgrounds = [n for s in a for n in s.background]
    assert sorted(backgrounds[:6]) == sorted(name for name, _ in negatives)
    other = build(negatives, positives, SoundscapeOptions(**{**opts.__dict__, "seed": 12}))
    assert any(x.waveform.size != y.waveform.size or not np.array_equal(x.waveform, y.waveform)
               for x, y in zip(a, other))


def test_sed_eval_rows_are_tab_separated_filename_onset_offset_label():
    negatives = [("silence", np.zeros(RATE * 4))]
    (scape,) = build(negatives, [("g", np.ones(RATE // 2) * 0.1, ("gunshot", "dog"))],
                     SoundscapeOptions(count=1, min_seconds=2, max_seconds=2, min_events=1,
                                       max_events=1, seed=5))
    rows = sed_eval_rows("s.wav", scape)
    on = scape.events[0]["onset_sample"]
    assert rows == [f"s.wav\t{on / RATE:.6f}\t{(on + RATE // 2) / RATE:.6f}\tgunshot",
                    f"s.wav\t{on / RATE:.6f}\t{(on + RATE // 2) / RATE:.6f}\tdog"]


def test_missing_negatives_or_positives_or_an_event_too_long_are_data_errors():
    x = np.ones(RATE) * 0.1
    with pytest.raises(DataError, match="negative clips"):
        build([], [("d", x, ("dog",))])
    with pytest.raises(DataError, match="positive clips"):
        build([("n", x)], [])
    with pytest.raises(DataError, match="does not fit"):
        build([("n", x)], [("d", np.ones(RATE * 5), ("dog",))],
              SoundscapeOptions(count=1, min_seconds=2, max_seconds=2, min_events=1,
                                max_events=1))


@pytest.mark.parametrize("field,value", [("max_seconds", 10.0), ("max_events", 1),
                                         ("ebr_db", (5.0, 1.0)), ("count", 0)])
def test_inconsistent_options_are_refused(field, value):
    base = {"min_seconds": 20.0, "min_events": 2}
    with pytest.raises(InputError, match=field):
        SoundscapeOptions(**{**base, field: value})
