"""Streaming inference (qdaed.streaming): chunked = whole-sequence, windows, bounds."""

import tracemalloc

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import resample_poly

from qdaed.data.audiostream import AudioSource, Bounds, waveform_source
from qdaed.data.resampler import StreamingResampler
from qdaed.detector import Detector
from qdaed.errors import DataError, InputError
from qdaed.features.fbank import lfbe
from qdaed.features.streaming import StreamingLfbe
from qdaed.models import ResNet
from qdaed.nn import lstm
from qdaed.streaming import scan, scan_file
from tests import naive
from tests.helpers.detectors import BINS, student_detector, wav_header


def chunks(x, sizes):
    out, i, k = [], 0, 0
    while i < x.size:
        n = sizes[k % len(sizes)]
        out.append(x[i:i + n])
        i, k = i + n, k + 1
    return out


def whole_frame_logits(det, x16):
    """The whole-sequence computation: LFBE of the whole signal, one LSTM pass, the head."""
    f = lfbe(x16, 16000, **det.features)
    xn = det.normalizer.apply(f)[None]
    p = det.model.params
    (y, _), _ = lstm.forward({k[5:]: v for k, v in p.items() if k.startswith("lstm.")}, xn)
    return f, y[0], y[0] @ p["fc.weight"].T + p["fc.bias"]


# ---- resampling -----------------------------------------------------------------------------

@pytest.mark.parametrize("rate", [1000, 8000, 11025, 22050, 44100, 48000, 96000, 384000,
                                  16000])
def test_streaming_resampler_equals_resample_poly(rate):
    rng = np.random.default_rng(rate)
    x = rng.normal(size=int(rate * 0.37) + 3)
    want = resample_poly(x, *(np.array([16000, rate]) // np.gcd(16000, rate)))
    rs = StreamingResampler(rate)
    got = np.concatenate([rs.push(c) for c in chunks(x, [1, 977, 4096, 13])] + [rs.finish()])
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def test_streaming_resampler_holds_little_input():
    rs = StreamingResampler(44100)
    for c in chunks(np.zeros(44100 * 5), [4096]):
        rs.push(c)
        assert rs.buf.size < 4096 + 2 * rs.half // rs.up + 2


# ---- LFBE -------------------------------------------------------------------------------------

@pytest.mark.parametrize("snip", [True, False])
@pytest.mark.parametrize("n", [400, 401, 1234, 16000 * 2 + 77])
def test_streaming_lfbe_equals_lfbe(snip, n):
    rng = np.random.default_rng(n)
    x = rng.normal(scale=0.1, size=n)
    opts = {"num_mel_bins": BINS, "snip_edges": snip}
    want = lfbe(x, 16000, **opts)
    fb = StreamingLfbe(opts)
    got = np.concatenate([fb.push(c) for c in chunks(x, [160, 1, 999, 4000])] + [fb.finish()])
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-5)


# ---- the student over a stream -----------------------------------------------------------------

@pytest.mark.parametrize("hop", [1, 7, 25, 50])
def test_student_stream_equals_whole_sequence(hop):
    det = student_detector(frames=50)
    rng = np.random.default_rng(hop)
    x = rng.normal(scale=0.2, size=16000 * 4 + 123)
    sc = scan(det, 16000, iter(chunks(x, [3000, 17, 16000])), hop=hop, frames=True)
    f, _, z = whole_frame_logits(det, x)
    assert sc.num_frames == f.shape[0]
    np.testing.assert_allclose(sc.frame_logits, z, rtol=0, atol=2e-5)
    starts = naive.window_starts(f.shape[0], 50, hop)
    assert sc.starts.tolist() == starts
    # running sums against the mean of each window, computed window by window
    np.testing.assert_allclose(sc.logits, naive.window_means(z, starts, 50), rtol=0, atol=2e-5)


@pytest.mark.parametrize("pooling", ["max", "last"])
def test_other_poolings_equal_direct_windows(pooling):
    det = student_detector(frames=30, pooling=pooling)
    x = np.random.default_rng(3).normal(scale=0.2, size=16000 * 2)
    sc = scan(det, 16000, iter(chunks(x, [5000])), hop=11)
    _, y, z = whole_frame_logits(det, x)
    p = det.model.params
    for s, got in zip(sc.starts, sc.logits):
        if pooling == "max":
            want = y[s:s + 30].max(axis=0) @ p["fc.weight"].T + p["fc.bias"]
        else:
            want = z[s + 29]
        np.testing.assert_allclose(got, want, rtol=0, atol=2e-5)


def test_first_window_is_the_training_computation():
    """A file of exactly one window: the score of Detector.scores on its LFBE."""
    det = student_detector(frames=98)
    x = np.random.default_rng(4).normal(scale=0.2, size=16000)   # 98 frames
    f = lfbe(x, 16000, **det.features)
    assert f.shape[0] == 98
    sc = scan(det, 16000, iter([x]))
    assert len(sc.starts) == 1 and not sc.short
    np.testing.assert_allclose(sc.scores[0], det.scores(det.prepare([f]))[0], atol=1e-6)


def test_short_file_is_looped_as_in_training():
    det = student_detector(frames=200)
    x = np.random.default_rng(5).normal(scale=0.2, size=8000)   # 48 frames
    sc = det.scan(x, 16000, frames=True)
    assert sc.short and "looped" in sc.note() and sc.starts.tolist() == [0]
    f = lfbe(x, 16000, **det.features)
    np.testing.assert_allclose(sc.scores[0], det.scores(det.prepare([f]))[0], atol=1e-6)
    assert sc.frame_scores.shape == (48, 3)
    np.testing.assert_allclose(sc.window_times(), [[0.0, 0.5]])


def test_single_frame_window_and_single_frame_file():
    """W = 1 frame (every frame its own window) and T = 1 (one 25 ms frame)."""
    det = student_detector(frames=1, layers=1)
    x = np.random.default_rng(6).normal(scale=0.2, size=400)
    sc = det.scan(x, 16000, hop=0.01, frames=True)
    assert sc.num_frames == 1 and sc.starts.tolist() == [0] and not sc.short
    np.testing.assert_allclose(sc.logits, sc.frame_logits, atol=1e-6)
    with pytest.raises(DataError, match="too short"):
        det.scan(x[:399], 16000)


def test_silence_gives_finite_equal_scores():
    det = student_detector(frames=50)
    x = np.zeros(16000 * 3)
    sc = det.scan(x, 16000)
    assert np.isfinite(sc.scores).all()
    # the first window starts from the zero state, as in training ...
    f = lfbe(x, 16000, **det.features)
    np.testing.assert_allclose(sc.scores[0], det.scores(det.prepare([f[:50]]))[0], atol=1e-6)
    # ... the later ones from the state the silence before them left: all the same
    np.testing.assert_allclose(sc.scores[2:], sc.scores[1:2].repeat(len(sc.scores) - 2, 0),
                               atol=1e-5)


def test_teacher_windows_equal_running_each_window():
    m = ResNet(depth=18, num_classes=3, width=4, seed=0)
    rng = np.random.default_rng(7)
    det = Detector.from_state_dict(m.state_dict(), classes=("a", "b", "c"), frames=40,
                                   architecture="ResNet", config=m.config,
                                   features={"num_mel_bins": 32},
                                   normalizer=(rng.normal(-4, 1, 32), np.ones(32)))
    x = rng.normal(scale=0.2, size=16000 * 2 + 500)
    sc = scan(det, 16000, iter(chunks(x, [4000, 77])), hop=13)
    f = lfbe(x, 16000, **det.features)
    starts = naive.window_starts(f.shape[0], 40, 13)
    assert sc.starts.tolist() == starts and len(starts) > 8
    want = det.scores(det.normalizer.apply(np.stack([f[s:s + 40] for s in starts])))
    np.testing.assert_allclose(sc.scores, want, atol=1e-5)
    with pytest.raises(InputError, match="frame-level"):
        det.frame_scores(x, 16000)


def test_resampled_input_equals_whole_pipeline():
    det = student_detector(frames=60)
    x = np.random.default_rng(8).normal(scale=0.2, size=44100 * 3)
    sc = det.scan(x, 44100, frames=True)
    _, _, z = whole_frame_logits(det, resample_poly(x, 160, 441))
    np.testing.assert_allclose(sc.frame_logits, z, rtol=0, atol=5e-5)


# ---- files and bounds --------------------------------------------------------------------------

def test_file_and_array_give_identical_scores(tmp_path):
    det = student_detector(frames=50)
    x = np.random.default_rng(9).normal(scale=0.2, size=(22050 * 3, 2))
    path = tmp_path / "s.wav"
    sf.write(path, x, 22050, subtype="PCM_16")
    wav, sr = sf.read(path, dtype="float64")
    a = scan_file(det, path)
    b = det.scan(wav, sr)
    assert np.array_equal(a.logits, b.logits)
    assert np.array_equal(det.predict(wav, sr), a.file_scores)


@pytest.mark.parametrize("rate", [1, 999, 384001, 2 ** 31 - 1])
def test_sample_rate_out_of_bounds_refused(tmp_path, rate):
    path = tmp_path / "r.wav"
    path.write_bytes(wav_header(rate) + b"\0" * 32)
    with pytest.raises(DataError, match="sample rate|unreadable"):
        AudioSource(path)
    with pytest.raises(DataError, match="sample rate"):
        waveform_source(np.zeros(5000), rate)


@pytest.mark.parametrize("rate", [1000, 384000])
def test_sample_rate_bounds_accepted(rate):
    det = student_detector(frames=20)
    assert det.predict(np.random.default_rng(0).normal(size=rate // 2) * 0.1, rate).shape == (3,)


def test_duration_and_size_bounds_refused_before_reading(tmp_path):
    path = tmp_path / "long.wav"
    sf.write(path, np.zeros(16000 * 3), 16000, subtype="PCM_16")
    with pytest.raises(DataError, match="--max-duration"):
        AudioSource(path, Bounds(max_seconds=2.0))
    with pytest.raises(DataError, match="--max-size"):
        AudioSource(path, Bounds(max_bytes=1000))
    # a 100 GiB sparse file is refused by its size, without reading it
    big = tmp_path / "sparse.wav"
    with open(big, "wb") as fh:
        fh.write(wav_header(16000, data_bytes=0xFFFFFFFF))
        fh.truncate(100 * 1024 ** 3)
    with pytest.raises(DataError, match="--max-size"):
        AudioSource(big)
    too_many = tmp_path / "ch.wav"
    too_many.write_bytes(wav_header(16000, channels=300, data_bytes=600) + b"\0" * 600)
    with pytest.raises(DataError, match="channels|unreadable"):
        AudioSource(too_many)


def test_truncated_and_non_finite_files(tmp_path):
    path = tmp_path / "t.wav"
    path.write_bytes(wav_header(16000, data_bytes=10000) + b"\0" * 100)
    with pytest.raises(DataError, match="truncated"):
        AudioSource(path)
    nan = tmp_path / "nan.wav"
    x = np.zeros(4000, np.float32)
    x[3000] = np.nan
    sf.write(nan, x, 16000, subtype="FLOAT")
    with pytest.raises(DataError, match="non-finite"):
        scan_file(student_detector(), nan)


def test_memory_does_not_grow_with_the_file(tmp_path):
    """Peak memory of a scan is the same for a 1-minute and a 4-minute file (15 and 61 MB
    as float64 samples), and far below either."""
    det = student_detector(frames=100, layers=1)
    rng = np.random.default_rng(0)
    peaks = []
    for minutes in (1, 4):
        path = tmp_path / f"long{minutes}.wav"
        with sf.SoundFile(path, "w", 16000, 1, "PCM_16") as f:
            for _ in range(6 * minutes):
                f.write(rng.normal(scale=0.1, size=160000))
        tracemalloc.start()
        sc = scan_file(det, path)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        assert sc.num_frames == 6000 * minutes - 2
    assert peaks[1] < 1.1 * peaks[0] + 1_000_000, peaks
    assert peaks[1] < 15_000_000, peaks
