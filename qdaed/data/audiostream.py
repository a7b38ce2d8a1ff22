"""Audio of any length, read in blocks: the bounds a file must keep, checked from its header
before a sample is decoded (:class:`Bounds`), a file opened for block reading
(:class:`AudioSource`) and an in-memory waveform cut into the same blocks
(:func:`waveform_source`). Streaming detection (:mod:`qdaed.streaming`) reads its input here;
clips decoded whole for the front end go through :mod:`qdaed.data.audio`.

Bounds: sample rate in [1 kHz, 384 kHz], at most 256 channels, a duration and a file size limit.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import soundfile as sf

from qdaed.data.audio import check_not_truncated, to_mono, wav_file_truncation
from qdaed.data.rates import MAX_SAMPLE_RATE, MIN_SAMPLE_RATE
from qdaed.errors import DataError, InputError
from qdaed.validate import check_float, check_int

MAX_CHANNELS = 256
DEFAULT_MAX_SECONDS = 24 * 3600.0          # 24 hours
DEFAULT_MAX_BYTES = 16 * 1024 ** 3         # 16 GiB on disk
BLOCK_VALUES = 1 << 17                      # samples × channels read per block (1 MiB float64)


@dataclasses.dataclass(frozen=True)
class Bounds:
    """What a file may be before any of it is decoded: sample rate in [min_rate, max_rate],
    at most ``max_channels`` channels, at most ``max_seconds`` of audio and ``max_bytes`` on
    disk. The defaults (1 kHz – 384 kHz, 256 channels, 24 h, 16 GiB) are qdaed's choices;
    ``qdaed detect --max-duration / --max-size`` change the last two."""

    max_seconds: float = DEFAULT_MAX_SECONDS
    max_bytes: int = DEFAULT_MAX_BYTES
    min_rate: int = MIN_SAMPLE_RATE
    max_rate: int = MAX_SAMPLE_RATE
    max_channels: int = MAX_CHANNELS

    def __post_init__(self):
        check_float("max_seconds", self.max_seconds, 0.0, lo_open=True)
        check_int("max_bytes", self.max_bytes, lo=1)

    def check_rate(self, rate, name):
        if not self.min_rate <= rate <= self.max_rate:
            raise DataError(f"{name}: sample rate {rate} Hz is outside [{self.min_rate}, "
                            f"{self.max_rate}] Hz; refused (resample it first if it is real)")

    def check_length(self, samples, rate, channels, name):
        if channels < 1 or channels > self.max_channels:
            raise DataError(f"{name}: {channels} channels; expected 1 to {self.max_channels}")
        if samples <= 0:
            raise DataError(f"{name}: empty (0 samples)")
        seconds = samples / rate
        if seconds > self.max_seconds:
            raise DataError(f"{name}: {seconds:.0f} s of audio is more than the limit of "
                            f"{self.max_seconds:.0f} s (--max-duration)")


class AudioSource:
    """An audio file opened for block reading, checked against :class:`Bounds` from its
    header (size, rate, channels, duration) before a sample is decoded.

    ``rate``, ``channels``, ``frames`` (samples per channel) are the header's; iterating
    yields mono float64 blocks (the mean over channels, samples in [−1, 1] as soundfile
    scales integer PCM) of at most ``block`` samples, each checked for NaN/inf.
    """

    def __init__(self, path, bounds=None, block=None):
        self.name = name = os.fspath(path)
        bounds = bounds or Bounds()
        if not os.path.exists(name):
            raise DataError(f"{name}: missing (no such file)")
        if not os.path.isfile(name):
            raise DataError(f"{name}: not a regular file")
        size = os.path.getsize(name)
        if size == 0:
            raise DataError(f"{name}: empty (0 bytes)")
        if size > bounds.max_bytes:
            raise DataError(f"{name}: {size} bytes is more than the limit of "
                            f"{bounds.max_bytes} bytes (--max-size)")
        try:
            with open(name, "rb") as fh:
                cut = wav_file_truncation(fh, size)
        except OSError as exc:
            raise DataError(f"{name}: unreadable ({exc.strerror or exc})") from None
        check_not_truncated(cut, name)
        try:
            info = sf.info(os.fsencode(name))      # bytes: any file name, UTF-8 or not
        except (sf.LibsndfileError, RuntimeError, ValueError, TypeError, OSError) as exc:
            reason = getattr(exc, "error_string", None) or str(exc)
            raise DataError(f"{name}: unreadable ({reason.strip()})") from None
        self.rate, self.channels, self.frames = int(info.samplerate), int(info.channels), \
            int(info.frames)
        bounds.check_rate(self.rate, name)
        bounds.check_length(self.frames, self.rate, self.channels, name)
        self.block = block or max(1, BLOCK_VALUES // self.channels)

    @property
    def duration(self):
        return self.frames / self.rate

    def __iter__(self):
        try:
            with sf.SoundFile(os.fsencode(self.name)) as f:
                while True:
                    x = f.read(self.block, dtype="float64", always_2d=True)
                    if x.shape[0] == 0:
                        break
                    if not np.isfinite(x).all():
                        bad = int((~np.isfinite(x)).sum())
                        raise DataError(f"{self.name}: {bad} non-finite sample(s) (NaN or "
                                        f"infinity)")
                    yield to_mono(x)
        except (sf.LibsndfileError, RuntimeError) as exc:
            reason = getattr(exc, "error_string", None) or str(exc)
            raise DataError(f"{self.name}: unreadable ({reason.strip()})") from None


def waveform_source(waveform, sample_rate, bounds=None, name="waveform"):
    """(rate, iterator of mono float64 blocks) for an in-memory waveform, cut into the blocks
    an :class:`AudioSource` of the same channel count reads, so results are identical.

    waveform: (n,) or (n, channels) float32/float64 in [−1, 1], or int16 (scaled by 1/32768
    as soundfile scales PCM_16).
    """
    bounds = bounds or Bounds()
    rate = check_int("sample_rate", sample_rate, lo=1)
    x = np.asarray(waveform)
    if x.dtype == np.int16:
        x = x.astype(np.float64) / 32768.0
    elif x.dtype.kind != "f":
        raise InputError(f"{name}: expected float samples in [-1, 1] or int16, got dtype "
                         f"{x.dtype}")
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2:
        raise InputError(f"{name}: expected shape (samples,) or (samples, channels), got "
                         f"{x.shape}")
    bounds.check_rate(rate, name)
    bounds.check_length(x.shape[0], rate, x.shape[1], name)
    if not np.isfinite(x).all():
        raise InputError(f"{name}: contains NaN or infinity")
    block = max(1, BLOCK_VALUES // x.shape[1])

    def blocks():
        for i in range(0, x.shape[0], block):
            yield to_mono(np.asarray(x[i:i + block], dtype=np.float64))

    return rate, x.shape[0], blocks()


__all__ = ["AudioSource", "Bounds", "BLOCK_VALUES", "DEFAULT_MAX_BYTES", "DEFAULT_MAX_SECONDS",
           "MAX_CHANNELS", "waveform_source"]
