"""Fixtures shared by the model-file and export tests."""

import numpy as np
import pytest
import soundfile as sf

from tests.io.detectors import resnet, student
from tests.strategies import rng_from


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """The bytes of three saved detectors: float student, 4-bit student, ResNet teacher."""
    d = tmp_path_factory.mktemp("saved")
    out = {}
    for key, det in (("float", student()), ("q4", student(4)), ("resnet", resnet())):
        det.save(d / key)
        out[key] = (d / key).read_bytes()
    return out


def _signal(rng, seconds, rate, channels=1):
    t = np.arange(int(seconds * rate)) / rate
    tone = 0.3 * np.sin(2 * np.pi * 440.0 * t) * (t % 0.7 < 0.35)
    x = tone[:, None] + 0.05 * rng.standard_normal((t.size, channels))
    return np.clip(x, -1, 1)


@pytest.fixture(scope="module")
def audio(tmp_path_factory):
    """Recordings of the kinds users have: 16 kHz mono, 96 kHz 6-channel, 8 kHz mono, 22.05 kHz
    stereo 24-bit, and one shorter than the test detectors' 0.4 s window."""
    d = tmp_path_factory.mktemp("audio")
    rng = rng_from(29)
    files = {}
    for name, seconds, rate, channels, subtype in (
            ("mono16k.wav", 3.1, 16000, 1, "PCM_16"), ("six96k.wav", 1.3, 96000, 6, "PCM_16"),
            ("mono8k.wav", 2.05, 8000, 1, "PCM_16"), ("stereo22k.flac", 1.7, 22050, 2, "PCM_24"),
            ("short.wav", 0.3, 16000, 1, "PCM_16")):
        sf.write(d / name, _signal(rng, seconds, rate, channels), rate, subtype=subtype)
        files[name] = str(d / name)
    return files
