"""Small hand-made detectors and WAV headers for the streaming, events, README and command tests."""

import struct

import numpy as np

from qdaed.detector import Detector
from qdaed.models import StudentLSTM

BINS = 24       # mel bins of student_detector
F = 32          # mel bins of energy_detector


def student_detector(frames=50, hidden=8, layers=2, pooling="mean", seed=0, scale=3.0):
    m = StudentLSTM(BINS, hidden, layers, 3, pooling, seed=seed)
    rng = np.random.default_rng(seed + 100)
    state = {k: (v * scale).astype(np.float32) for k, v in m.state_dict().items()}
    return Detector.from_state_dict(
        state, classes=("dog", "baby_cry", "gunshot"), frames=frames,
        config=dict(input_size=BINS, hidden_size=hidden, num_layers=layers, num_classes=3,
                    pooling=pooling),
        features={"num_mel_bins": BINS},
        normalizer=(rng.normal(-4, 1, BINS), rng.uniform(1, 2, BINS)),
        thresholds=[0.5, 0.4, 0.6])


def energy_detector(mu, theta=3.0, k=3.0, frames=10):
    """A hand-set StudentLSTM that fires on loudness: forget gate shut, input and output
    gates open, g = tanh(k·(mean_f x − θ)) with x = LFBE − μ, so h_t ≈ tanh(g_t) and the frame
    logit 8·h_t is positive where the frame is θ (natural-log units) above μ on average."""
    w_ih, b = np.zeros((4, F), np.float32), np.zeros(4, np.float32)
    b[0], b[1], b[3] = 20, -20, 20
    w_ih[2, :], b[2] = k / F, -k * theta
    state = {"lstm.weight_ih_l0": w_ih, "lstm.weight_hh_l0": np.zeros((4, 1), np.float32),
             "lstm.bias_ih_l0": b, "lstm.bias_hh_l0": np.zeros(4, np.float32),
             "fc.weight": np.full((3, 1), 8, np.float32), "fc.bias": np.zeros(3, np.float32)}
    return Detector.from_state_dict(state, classes=("dog", "baby_cry", "gunshot"),
                                    frames=frames, features={"num_mel_bins": F},
                                    normalizer=(mu, np.ones(F)), thresholds=[0.5] * 3)


def wav_header(rate, channels=1, data_bytes=32, bits=16):
    block = channels * bits // 8
    fmt = struct.pack("<HHIIHH", 1, channels, rate, rate * block, block, bits)
    return (b"RIFF" + struct.pack("<I", min(36 + data_bytes, 0xFFFFFFFF)) + b"WAVEfmt " + struct.pack("<I", 16)
            + fmt + b"data" + struct.pack("<I", data_bytes))
