"""Audio reading: every bad case is a DataError with a reason; odd rates/channels are handled."""

import numpy as np
import pytest
import soundfile as sf

from qdaed.data.audio import load_clip, resample, to_mono, wav_truncation
from qdaed.errors import DataError
from tests.data.bad_files import tone, write_bad_files, write_good_files


@pytest.mark.parametrize("case", ["missing", "empty", "truncated", "unreadable", "too_short",
                                  "non_finite", "no_samples"])
def test_each_bad_file_is_a_data_error_naming_file_and_reason(tmp_path, case):
    rel, reason = write_bad_files(tmp_path)[case]
    with pytest.raises(DataError) as err:
        load_clip(tmp_path / rel, min_samples=400)
    assert rel in str(err.value) and reason in str(err.value)


def test_unusual_rates_channels_and_formats_come_out_mono_16k_float32(tmp_path):
    files = write_good_files(tmp_path)
    for name, rel in files.items():
        x = load_clip(tmp_path / rel, min_samples=400)
        assert x.dtype == np.float32 and x.ndim == 1
        expected = 8000 if name == "silent" else 9600  # 0.5 s / 0.6 s at 16 kHz
        assert abs(x.size - expected) <= 1, name


def test_resampled_tone_keeps_its_frequency_and_level(tmp_path):
    sf.write(tmp_path / "a.wav", tone(1.0, 44100, freq=1000.0), 44100, subtype="FLOAT")
    x = load_clip(tmp_path / "a.wav").astype(np.float64)
    spec = np.abs(np.fft.rfft(x[2000:14000] * np.hanning(12000)))
    peak_hz = np.argmax(spec) * 16000 / 12000
    assert abs(peak_hz - 1000.0) < 2.0
    assert np.sqrt(np.mean(x[2000:14000] ** 2)) == pytest.approx(0.3 / np.sqrt(2), rel=0.01)


def test_mixdown_is_the_channel_mean_so_duplicated_mono_is_unchanged():
    a = np.random.default_rng(0).standard_normal(100)
    assert np.array_equal(to_mono(np.stack([a, a], axis=1)), a)
    assert np.allclose(to_mono(np.stack([a, -a, a], axis=1)), a / 3)


def test_resample_is_identity_at_the_target_rate_and_scales_length_otherwise():
    x = np.random.default_rng(1).standard_normal(22050)
    assert resample(x, 16000) is x or np.array_equal(resample(x, 16000), x)
    assert resample(x, 22050).size == 16000


def test_wav_truncation_ignores_streaming_placeholders():
    import io
    import struct
    buf = io.BytesIO()
    sf.write(buf, tone(0.1), 16000, format="WAV", subtype="PCM_16")
    data = bytearray(buf.getvalue())
    assert wav_truncation(bytes(data)) is None
    i = data.find(b"data")
    data[i + 4:i + 8] = struct.pack("<I", 0xFFFFFFFF)
    assert wav_truncation(bytes(data)) is None
    assert wav_truncation(buf.getvalue()[:-10]) is not None


def test_sample_rate_bounds_in_whole_clip_reads(tmp_path):
    """A header rate of 1 Hz (or 384,001 Hz) is a bad file, not a x16,000 resampling."""
    import soundfile as sf

    from qdaed.data.audio import load_clip
    from qdaed.errors import DataError

    for rate, ok in ((1, False), (999, False), (1000, True), (384000, True), (384001, False)):
        path = tmp_path / f"r{rate}.wav"
        sf.write(path, np.zeros(max(rate, 1000)), rate, subtype="PCM_16")
        if ok:
            assert load_clip(path).dtype == np.float32
        else:
            with pytest.raises(DataError, match="sample rate"):
                load_clip(path)
