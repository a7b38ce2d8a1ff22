"""Reading audio files for the front end: decode, check, mix down to mono, resample to 16 kHz.

Every file goes through :func:`load_clip`, which either returns a clean mono float32 waveform
at the target rate or raises ``DataError`` with a one-line reason. The reasons, and what is
done about each case:

=====================  ==========================================================  ==========
case                   how it is detected                                          outcome
=====================  ==========================================================  ==========
missing                the path does not exist (or is not a file)                  skipped
empty                  0 bytes on disk, or a header with 0 samples                 skipped
unreadable             libsndfile cannot open or decode it (wrong format, garbage)  skipped
truncated              WAV whose ``data`` chunk declares more bytes than the file  skipped
                       holds (libsndfile would silently return the part present)
non-finite             NaN or ±inf samples (float WAV/FLAC)                        skipped
too short              fewer samples than one LFBE frame after resampling          skipped
bad sample rate        outside [1 kHz, 384 kHz]                                    skipped
larger than 2 GiB      the file's size, before reading it (clips are read whole)   skipped
longer than 1 hour     the header's frames / rate, before reading or decoding      skipped
                       (``MAX_CLIP_SECONDS``; ``qdaed features --max-duration``)
out of memory          decoding or resampling raises ``MemoryError``               skipped
other sample rate      any rate ≠ 16 kHz                                           resampled
several channels       2+ channels                                                 mean mix
=====================  ==========================================================  ==========

Clips are decoded whole (float64, then resampled), so a clip costs about 8 bytes per sample
per channel at its own rate plus the same again at 16 kHz: the 1-hour bound keeps one clip
under about 1.5 GB at 48 kHz stereo, and a file whose header declares more (a 10-hour
recording, or a sparse file with a forged header) is refused from its header alone, before
its bytes are read. ``qdaed detect`` reads recordings of any length in blocks instead
(``qdaed.streaming``).

"Skipped" means the caller (the feature store) lists the file and reason in its bad-audio
report and leaves it out, or, with ``--strict``, stops with one error naming every bad file.

Resampling is ``scipy.signal.resample_poly`` with up/down = target/gcd, rate/gcd (polyphase,
Kaiser-windowed FIR, scipy's defaults); mixdown is the mean over channels, so a mono file
copied to both channels is unchanged. Samples are floats in [−1, 1] (soundfile's scaling of
integer PCM: int16 / 32768).
"""

from __future__ import annotations

import io
import os
import struct

import numpy as np
import soundfile as sf

from qdaed.data.rates import MAX_SAMPLE_RATE, MIN_SAMPLE_RATE, SAMPLE_RATE
from qdaed.data.resampler import resample
from qdaed.errors import DataError

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg")
# Whole-file reads (the feature store hashes each clip's bytes) refuse larger files before
# reading them; detection reads in blocks instead (qdaed.streaming).
MAX_READ_BYTES = 2 * 1024 ** 3
# Longest clip decoded whole (seconds of audio, from the header, checked before reading).
MAX_CLIP_SECONDS = 3600.0


def check_duration(source, name, max_seconds=MAX_CLIP_SECONDS):
    """Refuse, from the header alone, audio longer than ``max_seconds``. ``source``: a path
    or a file object; a header libsndfile cannot parse passes here (decoding reports it)."""
    if isinstance(source, (str, bytes, os.PathLike)):
        source = os.fsencode(source)          # bytes: any file name, UTF-8 or not
    try:
        info = sf.info(source)
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError, OSError):
        return
    if info.samplerate > 0 and info.frames / info.samplerate > max_seconds:
        raise DataError(f"{name}: its header declares {info.frames / info.samplerate:.0f} s of "
                        f"audio, more than the {max_seconds:.0f} s a clip may have "
                        f"(--max-duration; qdaed detect reads long recordings in blocks)")


def read_bytes(path, max_seconds=MAX_CLIP_SECONDS):
    """The file's bytes; ``DataError`` when it is missing, not a file, empty, or its header
    declares more than ``max_seconds`` of audio (checked before the bytes are read)."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise DataError(f"{path}: missing (no such file)")
    if not os.path.isfile(path):
        raise DataError(f"{path}: not a regular file")
    if os.path.getsize(path) > MAX_READ_BYTES:
        raise DataError(f"{path}: {os.path.getsize(path)} bytes is more than the "
                        f"{MAX_READ_BYTES} bytes a clip may have (qdaed detect reads long "
                        f"recordings in blocks)")
    check_duration(path, path, max_seconds)
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except MemoryError:
        raise DataError(f"{path}: not enough memory to read it") from None
    except OSError as exc:
        raise DataError(f"{path}: unreadable ({exc.strerror or exc})") from None
    if not data:
        raise DataError(f"{path}: empty (0 bytes)")
    return data


def _truncation(read, size):
    """(declared, present) data-chunk sizes of a RIFF/WAVE file of ``size`` bytes whose data
    chunk is cut short, else None; ``read(pos, n)`` gives the file's bytes [pos, pos + n)."""
    head = read(0, 12)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    pos = 12
    while pos + 8 <= size:
        hdr = read(pos, 8)
        if len(hdr) < 8:
            return None
        tag, chunk = hdr[:4], struct.unpack("<I", hdr[4:])[0]
        if tag == b"data":
            present = size - pos - 8
            if chunk in (0, 0xFFFFFFFF) or chunk <= present:
                return None
            return chunk, present
        pos += 8 + chunk + (chunk & 1)  # chunks are word-aligned
    return None


def wav_truncation(data):
    """For RIFF/WAVE bytes, (declared, present) data-chunk sizes if the chunk is cut short.

    Returns None when the bytes are not a RIFF WAV, the sizes agree, or the size field is a
    streaming placeholder (0 or 0xFFFFFFFF, written by recorders that never seek back).
    """
    return _truncation(lambda pos, n: data[pos:pos + n], len(data))


def wav_file_truncation(fh, size):
    """:func:`wav_truncation` of an open binary file of ``size`` bytes, reading only the chunk
    headers (long recordings are read in blocks, :mod:`qdaed.data.audiostream`)."""
    def read(pos, n):
        fh.seek(pos)
        return fh.read(n)

    return _truncation(read, size)


def check_not_truncated(cut, name):
    """DataError naming ``name`` when ``cut`` (:func:`wav_truncation`'s answer) is not None."""
    if cut is not None:
        raise DataError(f"{name}: truncated (WAV header declares {cut[0]} bytes of audio, "
                        f"the file holds {cut[1]})")


def decode(data, name, max_seconds=MAX_CLIP_SECONDS):
    """Decode audio bytes to (samples (n, channels) float64, sample rate); ``DataError`` if bad."""
    check_not_truncated(wav_truncation(data), name)
    check_duration(io.BytesIO(data), name, max_seconds)
    try:
        samples, rate = sf.read(io.BytesIO(data), dtype="float64", always_2d=True)
    except MemoryError:
        raise DataError(f"{name}: not enough memory to decode it") from None
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError) as exc:
        reason = getattr(exc, "error_string", None) or str(exc)
        raise DataError(f"{name}: unreadable ({reason.strip()})") from None
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise DataError(f"{name}: sample rate {rate} Hz is outside [{MIN_SAMPLE_RATE}, "
                        f"{MAX_SAMPLE_RATE}] Hz; refused (resample it first if it is real)")
    if samples.shape[0] == 0 or samples.shape[1] == 0:
        raise DataError(f"{name}: empty (0 samples decoded)")
    if not np.isfinite(samples).all():
        bad = int((~np.isfinite(samples)).sum())
        raise DataError(f"{name}: {bad} non-finite sample(s) (NaN or infinity)")
    return samples, int(rate)


def to_mono(samples):
    """Mean over channels of a (n, channels) array → (n,)."""
    return samples.mean(axis=1) if samples.shape[1] > 1 else samples[:, 0]


def load_clip(path, sample_rate=SAMPLE_RATE, *, min_samples=1, data=None,
              max_seconds=MAX_CLIP_SECONDS):
    """Mono float32 waveform of an audio file at ``sample_rate``; ``DataError`` if unusable.

    min_samples: fewer samples than this after resampling (e.g. one LFBE frame, 400) is an
        error ("too short").
    data: the file's bytes when the caller has read them already (the feature store hashes
        them), so the file is read once.
    max_seconds: longest clip accepted, from the header (``MAX_CLIP_SECONDS``).
    """
    name = os.fspath(path)
    if data is None:
        data = read_bytes(name, max_seconds)
    samples, rate = decode(data, name, max_seconds)
    try:
        x = resample(to_mono(samples), rate, sample_rate)
    except MemoryError:
        raise DataError(f"{name}: not enough memory to resample it") from None
    if x.size < min_samples:
        raise DataError(f"{name}: too short ({x.size} samples at {sample_rate} Hz after "
                        f"resampling; need at least {min_samples}, one frame)")
    if not np.isfinite(x).all():  # cannot happen from finite input, but never pass NaN on
        raise DataError(f"{name}: resampling produced non-finite samples")
    return x.astype(np.float32)
