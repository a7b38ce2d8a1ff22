"""Whole-file, streaming inference: audio of any length in, window and frame scores out.

Memory does not grow with the file's length: the audio is read in blocks, and every stage
keeps only what the next block needs.

    blocks of samples (native rate, mono)                       AudioSource / array_blocks
      → StreamingResampler   polyphase FIR to 16 kHz, output sample by output sample
      → StreamingLfbe        frames as soon as their samples are in (qdaed.features.fbank)
      → normalisation        the model's per-bin mean/std
      → StudentStream        the LSTM over each block, (h, c) carried to the next block
        or TeacherWindows    the ResNet on each window (it has no state to carry)
        or IntegerStream     with ``integer=True``: the int8 student (qdaed.integer.streaming)
                             on the frames quantized to int8, its (h, c) carried likewise
      → window scores        a window of the training length W frames every ``hop`` frames

Windows: starts 0, hop, 2·hop, … while the window fits, plus one window ending at the last
frame when the regular ones do not end there (so the end of the file is scored too). The
file's score is, per class, the maximum of its window scores.

Student, mean pooling (the default head): the clip logit of the training computation is
z = W_fc · mean_t h_t + b = mean_t (W_fc h_t + b), so with frame logits z_t = W_fc h_t + b
the logit of the window [s, s + W) is (P[s + W] − P[s]) / W with the running sums
P[k] = Σ_{t<k} z_t (float64): one pass over the file for any hop, instead of re-running the
network on every window. Max pooling keeps the last W frames of h and takes the maximum per
unit; "last" pooling is the frame logit at the window's last frame.

What the stream computes, exactly: the LSTM runs once over the whole file from a zero state,
so the state at a window's first frame carries what came before it. In training every clip
starts from a zero state; the first window of a file is therefore the training computation
exactly, and later windows condition on the past (an LSTM with forget gates forgets it at a
rate the model learned). The teacher re-runs each window from scratch and is the training
computation on every window.

A file shorter than one window (T < W frames) is treated as in training
(``qdaed.features.prepare.fix_length``): its frames are looped to W and scored once; the
result says so (``Scan.short``, a ``note`` in ``qdaed detect``'s output). Frame scores of
such a file are those of its own T frames (the looped run's first T frames).

Chunking does not change the numbers beyond float32 rounding (the tests compare with the
whole-sequence computation): resampling is computed per output sample, LFBE per frame, and the
LSTM's recurrence is sequential; only the batching of the per-frame products differs.

Bounds, checked from the file's header before anything is allocated
(:class:`qdaed.data.audiostream.Bounds`, re-exported here as the README names it):
sample rate in [1 kHz, 384 kHz], at most 256 channels, a duration and a file size limit.

About 440 lines, a third of them this text: the windows of both networks and the Scan API read
best beside each other (reading and bounds, the resampler and the streaming LFBE are modules
of their own).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from qdaed.data.audiostream import AudioSource, Bounds, waveform_source
from qdaed.data.rates import SAMPLE_RATE
from qdaed.data.resampler import StreamingResampler
from qdaed.errors import DataError, InputError
from qdaed.features.fbank import make_options
from qdaed.features.prepare import fix_length
from qdaed.features.streaming import StreamingLfbe, window_ends
from qdaed.integer import streaming as integer_streaming
from qdaed.models.predict import checked_logits, model_input, model_overflow
from qdaed.nn import lstm
from qdaed.nn.losses import sigmoid
from qdaed.validate import check_float, check_int

TEACHER_BATCH = 8                           # windows per ResNet forward


# ------------------------------------------------------------------------------------------
# networks over a stream


def _split_student(model):
    lstm_p = {n[5:]: v for n, v in model.params.items() if n.startswith("lstm.")}
    return lstm_p, model.params["fc.weight"], model.params["fc.bias"]


class StudentStream:
    """The LSTM over consecutive blocks of normalised frames, (h, c) carried between blocks:
    ``push(x (T, F))`` returns the top layer's h (T, H) and the frame logits
    z_t = W_fc h_t + b (T, C), both in the model's dtype."""

    def __init__(self, model):
        self.model = model
        self.lstm_p, self.w_fc, self.b_fc = _split_student(model)
        self.lstm = lstm.Inference(self.lstm_p, 1)  # (h, c) start at zeros, carried on

    def push(self, x):
        if x.shape[0] == 0:
            return (np.empty((0, self.model.hidden_size), self.model.dtype),
                    np.empty((0, self.model.num_classes), self.model.dtype))
        y = self.lstm.run(x[None].astype(self.model.dtype))[0]
        return y, y @ self.w_fc.T + self.b_fc


class _Tail:
    """The last ``keep`` rows of a per-frame array (and the rows of the current block) with
    their absolute frame indices: ``extend(block)`` then ``rows(a, b)`` for frames [a, b)."""

    def __init__(self, keep, width, dtype):
        self.keep, self.data, self.start = keep, np.empty((0, width), dtype), 0

    def extend(self, block):
        self.data = np.concatenate([self.data, block]) if self.data.size else block.copy()

    def rows(self, a, b):
        return self.data[a - self.start:b - self.start]

    def trim(self, end):
        cut = max(0, self.data.shape[0] - self.keep)
        self.data, self.start = self.data[cut:], self.start + cut


class StudentWindows:
    """Window logits of the student from its frame outputs, per pooling mode (module
    docstring); ``push(y, z)`` returns [(start, logits (C,) float64)] of the windows ending in
    the block, ``finish()`` the window ending at the last frame if no regular one does."""

    def __init__(self, model, window, hop):
        self.mode, self.window, self.hop = model.pooling, window, hop
        self.w_fc = model.params["fc.weight"].astype(np.float64)
        self.b_fc = model.params["fc.bias"].astype(np.float64)
        self.t = 0
        c, h = model.num_classes, model.hidden_size
        if self.mode == "mean":       # P[k] for k in the last W + 1 frame boundaries
            self.tail = _Tail(window + 1, c, np.float64)
            self.tail.extend(np.zeros((1, c)))
        else:
            self.tail = _Tail(window, h if self.mode == "max" else c, np.float32)

    def _logits(self, starts):
        w = self.window
        if self.mode == "mean":
            p = self.tail
            return [(p.rows(s + w, s + w + 1)[0] - p.rows(s, s + 1)[0]) / w for s in starts]
        if self.mode == "last":
            return [self.tail.rows(s + w - 1, s + w)[0].astype(np.float64) for s in starts]
        return [self.w_fc @ self.tail.rows(s, s + w).max(axis=0).astype(np.float64) + self.b_fc
                for s in starts]

    def push(self, y, z):
        n = z.shape[0]
        if self.mode == "mean":
            self.tail.extend(self.tail.data[-1] + np.cumsum(z.astype(np.float64), axis=0))
        else:
            self.tail.extend(y if self.mode == "max" else z)
        ends = window_ends(self.t, self.t + n, self.window, self.hop)
        self.t += n
        out = list(zip((ends - self.window).tolist(), self._logits(ends - self.window)))
        self.tail.trim(self.t)
        return out

    def finish(self):
        s = self.t - self.window
        if s >= 0 and s % self.hop:
            return list(zip([s], self._logits([s])))
        return []


class TeacherWindows:
    """Window logits of the ResNet: each window's normalised frames through the network
    (``TEACHER_BATCH`` windows per forward). Same interface as :class:`StudentWindows`,
    ``push(x)`` with the block's normalised frames."""

    def __init__(self, model, window, hop, width):
        self.model, self.window, self.hop = model, window, hop
        self.tail = _Tail(window, width, np.float32)
        self.t = 0
        self.pending = []
        self.starts = []       # of every window asked for, in order

    def _run(self, starts, flush=False):
        self.pending += [self.tail.rows(s, s + self.window) for s in starts]
        out = []
        while self.pending and (flush or len(self.pending) >= TEACHER_BATCH):
            batch, self.pending = self.pending[:TEACHER_BATCH], self.pending[TEACHER_BATCH:]
            x = np.stack(batch).astype(self.model.dtype)
            z, _ = self.model.forward(model_input(self.model, x), train=False)
            out += [row.astype(np.float64) for row in z]
        return out

    def push(self, x):
        self.tail.extend(x)
        ends = window_ends(self.t, self.t + x.shape[0], self.window, self.hop)
        self.t += x.shape[0]
        self.starts += (ends - self.window).tolist()
        logits = self._run((ends - self.window).tolist())
        self.tail.trim(self.t)
        return logits

    def finish(self):
        s = self.t - self.window
        extra = [s] if s >= 0 and s % self.hop else []
        self.starts += extra
        return self._run(extra, flush=True)


# ------------------------------------------------------------------------------------------
# the scan of one file


@dataclasses.dataclass
class Scan:
    """What one pass over a recording gives.

    starts: (N,) first frame of each window (W = ``window`` frames, 10 ms apart by default);
    logits: (N, C) float64 window logits; ``scores`` = σ(logits);
    frame_logits: (T, C) the student's per-frame logits W_fc h_t + b (with ``frames=True``),
        else None;
    short: the file had fewer than W frames and was looped to W as in training (one window);
    channels: the recording's channel count before the mixdown to mono.
    integer_scores: with the integer student (``integer=True``), its (N, C) window scores
        (s + 128) / 256 of its int8 outputs, and logits its int8 logits dequantized.
    """

    sample_rate: int
    samples: int
    num_frames: int
    window: int
    hop: int
    frame_shift: float
    frame_length: float
    starts: np.ndarray
    logits: np.ndarray
    frame_logits: np.ndarray | None
    short: bool
    channels: int = 1
    # the integer student's window scores (int8 dequantized), which replace σ(logits)
    integer_scores: np.ndarray | None = None

    @property
    def duration(self):
        """Seconds of audio in the file (its own sample count and rate)."""
        return self.samples / self.sample_rate

    @property
    def scores(self):
        return sigmoid(self.logits) if self.integer_scores is None else self.integer_scores

    @property
    def file_scores(self):
        """(C,) the maximum over windows of each class's score."""
        return self.scores.max(axis=0)

    @property
    def frame_scores(self):
        return None if self.frame_logits is None else sigmoid(self.frame_logits.astype(
            np.float64))

    def window_times(self):
        """(N, 2) onset and offset in seconds of the samples each window's frames cover
        (for a short file: the whole file)."""
        if self.short:
            return np.array([[0.0, self.duration]])
        on = self.starts * self.frame_shift
        off = (self.starts + self.window - 1) * self.frame_shift + self.frame_length
        return np.stack([on, np.minimum(off, self.duration)], axis=1)

    def note(self):
        if not self.short:
            return None
        return (f"shorter than one window ({self.duration:.2f} s < "
                f"{(self.window - 1) * self.frame_shift + self.frame_length:.2f} s): "
                "its frames were looped to the window's length, as in training")


def hop_frames(detector, hop_seconds=None):
    """The hop in frames: ``hop_seconds`` / frame shift rounded (at least 1 frame), or half a
    window (rounded down, at least 1) when None."""
    shift = detector.features.get("frame_shift_ms", 10.0) / 1000.0
    if hop_seconds is None:
        return max(1, detector.frames // 2)
    hop_seconds = check_float("hop", hop_seconds, 0.0, lo_open=True)
    return max(1, int(round(hop_seconds / shift)))


def scan(detector, rate, blocks, *, hop=None, frames=False, name="audio", samples=None,
         integer=False):
    """Run ``detector`` over a recording given as blocks of mono samples at ``rate``.

    hop: window hop in frames (default half a window); frames: keep the student's frame
    logits (``Scan.frame_logits``; InputError for a ResNet, which has none).
    samples: the recording's length in samples if known (else counted).
    integer: score with the detector's integer student (``Detector.integer``; InputError if it
    has none): its int8 LSTM over the same frames, state carried across blocks, and its int8
    window outputs (``Scan.integer_scores``; :mod:`qdaed.integer.streaming`).
    """
    rs = StreamingResampler(rate, SAMPLE_RATE)
    fb = StreamingLfbe(detector.features, SAMPLE_RATE)
    counted = [0]

    def feature_blocks():
        for block in blocks:
            counted[0] += block.size
            yield fb.push(rs.push(block))
        yield fb.push(rs.finish())
        yield fb.finish()

    def too_short():
        return DataError(f"{name}: too short ({counted[0]} samples at {rate} Hz; need at "
                         f"least one LFBE frame, {fb.length} samples at {SAMPLE_RATE} Hz)")

    return scan_features(detector, feature_blocks(), rate=rate, hop=hop, frames=frames,
                         samples=lambda: counted[0] if samples is None else samples,
                         too_short=too_short, integer=integer)


def scan_features(detector, feature_blocks, *, rate=SAMPLE_RATE, samples, hop=None,
                  frames=False, too_short=None, integer=False):
    """:func:`scan` from the recording's raw LFBE, given as blocks of frames (T_i, F) (the
    pipeline computes a recording's LFBE once for all its models); samples: the recording's
    length in samples at ``rate`` (a number, or a function called at the end). Non-finite
    logits are the model file's fault (``ModelFileError``, :func:`checked_logits`)."""
    with np.errstate(over="ignore", invalid="ignore"), model_overflow():
        sc = _scan_features(detector, feature_blocks, rate=rate, samples=samples, hop=hop,
                            frames=frames, too_short=too_short, integer=integer)
    checked_logits(sc.logits)
    if sc.frame_logits is not None:
        checked_logits(sc.frame_logits)
    return sc


def _scan_features(detector, feature_blocks, *, rate, samples, hop, frames, too_short,
                   integer=False):
    model, window = detector.model, int(detector.frames)
    is_student = getattr(model, "input_layout", "BTF") == "BTF"
    if frames and not is_student:
        raise InputError("frames: the ResNet teacher has no frame-level outputs (it scores "
                         "whole windows); use window scores")
    hop = max(1, detector.frames // 2) if hop is None else check_int("hop", hop, lo=1)
    norm = detector.normalizer
    student = integer_student(detector, frames) if integer else None
    int_scores = []
    if student is not None:
        stream = integer_streaming.IntegerStream(student)
        pool = integer_streaming.IntegerWindows(student, window, hop)
    elif is_student:
        stream, pool = StudentStream(model), StudentWindows(model, window, hop)
    else:
        pool = TeacherWindows(model, window, hop, norm.mean.size)
    head, n_head, total = [], 0, 0       # head: the raw frames while fewer than a window
    starts, logits, frame_logits = [], [], []
    for feats in feature_blocks:
        if feats.shape[0] == 0:
            continue
        if n_head < window:
            head.append(feats)
            n_head += feats.shape[0]
        total += feats.shape[0]
        x = norm.apply(feats)
        if student is not None:
            out = pool.push(stream.push(student.quantize_input(x)))
            starts.extend(s for s, _, _ in out)
            logits.extend(v for _, v, _ in out)
            int_scores.extend(v for _, _, v in out)
        elif is_student:
            y, z = stream.push(x)
            out = pool.push(y, z)
            starts.extend(s for s, _ in out)
            logits.extend(v for _, v in out)
            if frames:
                frame_logits.append(z)
        else:
            logits.extend(pool.push(x))
    if total == 0:
        raise too_short() if too_short else DataError("features: no frame")
    short = total < window
    if short and student is not None:
        x = norm.apply(fix_length(np.concatenate(head), window))[None]
        out = student.forward(student.quantize_input(x))
        starts, logits = [0], [student.fc.output.dequantize(out.logits[0])]
        int_scores = [student.output.dequantize(out.scores[0])]
    elif student is not None:
        out = pool.finish()
        starts.extend(s for s, _, _ in out)
        logits.extend(v for _, v, _ in out)
        int_scores.extend(v for _, _, v in out)
    elif short:
        x = norm.apply(fix_length(np.concatenate(head), window))[None].astype(model.dtype)
        z, _ = model.forward(model_input(model, x), train=False)
        starts, logits = [0], [z[0].astype(np.float64)]
    elif is_student:
        out = pool.finish()
        starts.extend(s for s, _ in out)
        logits.extend(v for _, v in out)
    else:
        logits.extend(pool.finish())
        starts = pool.starts
    opts = make_options(**detector.features)
    return Scan(sample_rate=rate, samples=samples() if callable(samples) else samples,
                num_frames=total, window=window, hop=hop,
                frame_shift=opts.frame_shift_ms / 1000.0,
                frame_length=opts.frame_length_ms / 1000.0,
                starts=np.asarray(starts, dtype=np.int64),
                logits=np.asarray(logits, dtype=np.float64).reshape(len(starts), -1),
                frame_logits=(np.concatenate(frame_logits) if frames else None), short=short,
                integer_scores=(None if student is None else np.asarray(
                    int_scores, np.float64).reshape(len(starts), -1)))


def integer_student(detector, frames=False):
    """The detector's integer student, or InputError (none stored; frame outputs asked)."""
    if detector.integer is None:
        raise InputError("--integer: the model file holds no integer student; store one with "
                         "`qdaed export MODEL --calibration MANIFEST --audio-root DIR "
                         "--calibrated-model OUT.safetensors`")
    if frames:
        raise InputError("frames: the integer student has window outputs only")
    return detector.integer


def scan_file(detector, path, *, hop=None, frames=False, bounds=None, integer=False):
    """:func:`scan` of an audio file read block by block (:class:`AudioSource`)."""
    if integer:
        integer_student(detector, frames)       # before the file is opened
    src = AudioSource(path, bounds)
    sc = scan(detector, src.rate, iter(src), hop=hop, frames=frames, name=src.name,
              integer=integer)
    sc.channels = src.channels
    return sc


def scan_waveform(detector, waveform, sample_rate, *, hop=None, frames=False, bounds=None,
                  integer=False):
    """:func:`scan` of an in-memory waveform, in the blocks a file of it would be read in."""
    rate, n, blocks = waveform_source(waveform, sample_rate, bounds)
    sc = scan(detector, rate, blocks, hop=hop, frames=frames, samples=n, integer=integer)
    shape = np.shape(waveform)
    sc.channels = int(shape[1]) if len(shape) == 2 else 1
    return sc


# Bounds is the README's ``qdaed.streaming.Bounds`` (``Detector.scan(..., bounds=Bounds(...))``)
__all__ = ["Bounds", "Scan", "StudentStream", "StudentWindows", "TeacherWindows", "hop_frames",
           "integer_student", "scan", "scan_features", "scan_file", "scan_waveform"]
