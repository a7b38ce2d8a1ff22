"""Events from window scores (qdaed.events) and the event timing on synthetic clips."""

import numpy as np
import pytest

from qdaed.data.synth import SynthConfig, generate_clip
from qdaed.errors import InputError
from qdaed.eventmetrics import matches
from qdaed.events import EventOptions, events_from_windows, median_filter, runs, window_edges
from qdaed.features.fbank import lfbe
from tests.helpers.detectors import F, energy_detector


@pytest.mark.parametrize("kind", ["dog", "baby_cry", "gunshot"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_events_on_synthetic_clips_fall_within_the_collar(kind, seed):
    """One event of the synthetic generator (its onset and duration are the truth) at +30 dB
    in pink noise: the detected event matches it under sed_eval's collars (onset ±0.2 s,
    offset ±max(0.2 s, half its length))."""
    cfg = SynthConfig(duration=12.0, classes=(kind,), event_count_probs=(0, 1.0),
                      distractor_count_probs=(1.0,), backgrounds=("pink",), snr_db=(30, 30))
    clip = generate_clip(np.random.default_rng(seed), cfg)
    det = energy_detector(np.percentile(lfbe(clip.waveform, 16000, num_mel_bins=F), 20, axis=0))
    found = [e for e in det.events(clip.waveform, 16000, hop=0.01, median=1, min_gap=0.7)
             if e["class"] == kind]
    truth = clip.events[0]
    ref = {"class": kind, "onset": truth.onset, "offset": truth.onset + truth.duration}
    assert len(found) == 1, found
    assert matches(ref, found[0]), (ref, found)
    assert abs(found[0]["onset"] - ref["onset"]) < 0.05


def test_silence_gives_no_events():
    det = energy_detector(np.full(F, -10.0))
    assert det.events(np.zeros(16000 * 2), 16000, hop=0.05) == []


def test_median_filter_and_runs():
    d = np.array([0, 1, 0, 0, 1, 1, 0, 1, 1, 1, 0], bool)
    assert median_filter(d, 1).tolist() == d.tolist()
    assert median_filter(d, 3).astype(int).tolist() == [0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 0]
    # the ends repeat the first/last value: a run at the very start survives
    assert median_filter(np.array([1, 1, 0, 0, 0], bool), 5).astype(int).tolist() == \
        [1, 1, 0, 0, 0]
    assert runs(d) == [(1, 1), (4, 5), (7, 9)]
    assert runs(np.zeros(3, bool)) == [] and runs(np.ones(2, bool)) == [(0, 1)]


def test_window_tiling():
    times = np.array([[0.0, 2.0], [1.0, 3.0], [2.0, 4.0], [2.5, 4.5]])
    np.testing.assert_allclose(window_edges(times, 4.6), [0.0, 1.5, 2.5, 3.25, 4.6])


def test_events_from_windows_by_hand():
    times = np.array([[k * 1.0, k * 1.0 + 2.0] for k in range(6)])   # centres 1 … 6
    scores = np.array([[0.1, 0.9], [0.8, 0.9], [0.9, 0.2], [0.2, 0.1], [0.7, 0.1],
                       [0.2, 0.95]])
    th = np.array([0.5, 0.5])
    ev = events_from_windows(times, scores, th, ("a", "b"), 7.0, EventOptions(median=1))
    # edges 0, 1.5, 2.5, 3.5, 4.5, 5.5, 7
    assert ev == [{"class": "b", "onset": 0.0, "offset": 2.5, "score": 0.9},
                  {"class": "a", "onset": 1.5, "offset": 3.5, "score": 0.9},
                  {"class": "a", "onset": 4.5, "offset": 5.5, "score": 0.7},
                  {"class": "b", "onset": 5.5, "offset": 7.0, "score": 0.95}]
    merged = events_from_windows(times, scores, th, ("a", "b"), 7.0,
                                 EventOptions(median=1, min_gap=1.01, min_duration=1.6))
    assert merged == [{"class": "b", "onset": 0.0, "offset": 2.5, "score": 0.9},
                      {"class": "a", "onset": 1.5, "offset": 5.5, "score": 0.9}]


@pytest.mark.parametrize("bad", [dict(median=2), dict(median=0), dict(min_gap=-1.0),
                                 dict(min_duration=float("nan"))])
def test_bad_event_options(bad):
    with pytest.raises(InputError):
        EventOptions(**bad)
