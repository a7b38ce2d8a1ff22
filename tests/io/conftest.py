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


# The detectors the interchange examples are checked on (examples/onnx_detect.py through
# ``export --onnx --with-frontend``, examples/torch_detect.py through ``export --torch``):
# name -> (the examples that run it, a fresh detector). torch_detect.py implements the HTK
# mel filterbank only; the ONNX graph every front-end option.
INTERCHANGE_DETECTORS = {
    "float student, 2 layers": (("onnx", "torch"), lambda: student(None, hidden=12, layers=2)),
    "4-bit student, max pooling": (("onnx", "torch"),
                                   lambda: student(4, hidden=12, layers=2, pooling="max")),
    "3-bit student, buckets, last": (("onnx", "torch"),
                                     lambda: student(3, hidden=6, pooling="last", group=7)),
    "ResNet-18 teacher": (("onnx", "torch"), lambda: resnet(18, width=4)),
    "ResNet-50 teacher": (("torch",), lambda: resnet(50, width=2)),
    # every front-end option the graph implements, away from qdaed's defaults
    "student, another front end": (("onnx",), lambda: student(None, hidden=8, features=dict(
        window="hamming", fft_size=None, frame_length_ms=32.0, mel_scale="slaney",
        mel_norm="slaney", use_power=False, int16_scale=True, remove_dc=False,
        preemphasis=0.0, high_freq=-400.0, low_freq=60.0))),
    "student, no log": (("onnx",), lambda: student(None, hidden=8, features=dict(
        window="blackman", blackman_coeff=0.4, use_log=False, preemphasis=0.5))),
}


def _run_by(example):
    return [name for name, (examples, _) in INTERCHANGE_DETECTORS.items() if example in examples]


@pytest.fixture(scope="module", params=_run_by("onnx"))
def onnx_detector(request):
    """Each detector of ``INTERCHANGE_DETECTORS`` that examples/onnx_detect.py runs (a new
    one, not saved; the test's id names it)."""
    return INTERCHANGE_DETECTORS[request.param][1]()


@pytest.fixture(params=_run_by("torch"))
def torch_detector(request):
    """Each detector of ``INTERCHANGE_DETECTORS`` that examples/torch_detect.py runs (a new
    one, not saved; the test's id names it)."""
    return INTERCHANGE_DETECTORS[request.param][1]()
