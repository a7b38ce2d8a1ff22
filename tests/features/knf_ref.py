"""kaldi-native-fbank, for conformance tests only. Importing this module skips the test module
when it is absent; CI installs it."""

import numpy as np
import pytest

knf = pytest.importorskip("kaldi_native_fbank")

# qdaed option -> how to set the same thing on knf.FbankOptions
_FRAME = {"frame_length_ms": "frame_length_ms", "frame_shift_ms": "frame_shift_ms",
          "snip_edges": "snip_edges", "remove_dc": "remove_dc_offset",
          "preemphasis": "preemph_coeff", "window": "window_type",
          "blackman_coeff": "blackman_coeff"}
_MEL = {"num_mel_bins": "num_bins", "low_freq": "low_freq", "high_freq": "high_freq"}


def knf_fbank(waveform, sample_rate=16000, **options):
    """kaldi-native-fbank's fbank with every default that differs from qdaed's set explicitly:
    dither 0 (knf: 3e-5), 64 bins 20–8000 Hz (knf: 23 bins, high_freq 0), no energy column.
    knf does not rescale samples: fed [-1, 1] floats it works on [-1, 1], like qdaed's default."""
    o = knf.FbankOptions()
    o.frame_opts.samp_freq = float(sample_rate)
    o.frame_opts.dither = 0.0
    o.frame_opts.snip_edges = True
    o.frame_opts.remove_dc_offset = True
    o.frame_opts.preemph_coeff = 0.97
    o.frame_opts.window_type = "povey"
    o.frame_opts.round_to_power_of_two = True
    o.mel_opts.num_bins = 64
    o.mel_opts.low_freq = 20.0
    o.mel_opts.high_freq = 8000.0
    o.use_energy = False
    o.use_log_fbank = True
    o.use_power = True
    for name, value in options.items():
        if name in _FRAME:
            setattr(o.frame_opts, _FRAME[name], value)
        elif name in _MEL:
            setattr(o.mel_opts, _MEL[name], value)
        elif name == "fft_size":  # knf knows only "next power of two" or "the frame length"
            length = int(sample_rate * o.frame_opts.frame_length_ms / 1000 + 1e-9)
            pow2 = 1 << (length - 1).bit_length()
            assert value in (None, length, pow2), "knf cannot do this fft_size"
            o.frame_opts.round_to_power_of_two = value != length
        elif name == "mel_scale":
            o.mel_opts.is_librosa = value == "slaney"
            o.mel_opts.norm = ""
        elif name == "mel_norm":
            o.mel_opts.norm = value or ""
        elif name == "use_power":
            o.use_power = value
        else:
            raise KeyError(name)
    f = knf.OnlineFbank(o)
    f.accept_waveform(float(sample_rate), np.asarray(waveform, dtype=np.float32).tolist())
    f.input_finished()
    return np.array([f.get_frame(i) for i in range(f.num_frames_ready)], dtype=np.float32)


def p999(a, b):
    """99.9th percentile of |a - b| (the acceptance figure of docs/method/lfbe.md)."""
    assert a.shape == b.shape, (a.shape, b.shape)
    return float(np.percentile(np.abs(a.astype(np.float64) - b), 99.9))
