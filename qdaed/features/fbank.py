"""Log mel filterbank energies (LFBE), Kaldi's ``compute-fbank-feats`` in vectorised NumPy.

For a waveform x at sample rate r (already mono and resampled, see ``qdaed.data.audio``),
with frame length L = r·frame_length_ms/1000, shift S = r·frame_shift_ms/1000, FFT size N:

    frame t:      x_t[n] = x[t·S + n],  n = 0..L−1       (snip_edges: only frames that fit,
                                                          T = 1 + ⌊(len(x) − L)/S⌋)
    dither:       x_t[n] += d · ε_t[n],  ε ~ N(0, 1)     (d = 0 by default: deterministic)
    DC removal:   x_t[n] −= mean_n x_t[n]
    pre-emphasis: x_t[n] −= p · x_t[n−1]  (n ≥ 1),  x_t[0] −= p · x_t[0]
    window:       x_t[n] *= w[n]          (povey: w = (½ − ½cos(2πn/(L−1)))^0.85)
    spectrum:     P_t[k] = |Σ_n x_t[n] e^{−2πikn/N}|²,  k = 0..N/2  (zero-padded to N)
    mel:          E_t[m] = Σ_k P_t[k] · W[k, m],      m = 0..M−1
    log:          LFBE_t[m] = ln max(E_t[m], floor)   (floor = float32 eps ≈ 1.19e-7)

W holds M triangular filters equally spaced on the mel scale between low_freq and high_freq
(HTK mel: mel(f) = 1127 ln(1 + f/700), each triangle 0 at its neighbours' centres and 1 at its
own, evaluated at the FFT bin centres k·r/N for k < N/2 as Kaldi does; the Nyquist bin gets no
weight). Output shape (T, M), float32; the arithmetic inside is float64.

Defaults are qdaed's choices (docs/method/lfbe.md; the paper does not give its LFBE settings): 16 kHz,
25 ms / 10 ms, snip edges, DC removal, pre-emphasis 0.97, Povey window, 512-point FFT, 64 HTK
mel bins over 20–8000 Hz, natural log floored at float32 eps, no dither, samples in [−1, 1].
Every one is a keyword option of :func:`lfbe` (see :class:`LfbeOptions`).

Where other tools differ (pitfalls when comparing numbers):

* Dither: Kaldi's default is 1.0 (int16 scale), kaldi-native-fbank's 3e-5, torchaudio's 0.0,
  qdaed's 0.0. With ``dither > 0`` pass ``rng`` (a ``numpy.random.Generator``); the noise is drawn
  per frame, as Kaldi does, so overlapping frames see independent noise.
* Sample scale: Kaldi reads int16 samples as floats in [−32768, 32767]; qdaed (and most Python
  code) uses [−1, 1]. ``int16_scale=True`` multiplies by 32768 first, which adds
  2·ln 32768 ≈ 20.79 to every log energy above the floor.
* Mel scale: Kaldi and HTK use 1127 ln(1 + f/700) with unnormalised triangles (qdaed's default);
  librosa's default is Slaney's scale (linear below 1 kHz) with area-normalised triangles:
  ``mel_scale="slaney", mel_norm="slaney"`` gives that bank, built the way kaldi-native-fbank's
  ``is_librosa`` mode builds it (triangles in Hz, Nyquist bin included).
* Window: ``"povey"`` (Kaldi default), ``"hamming"``, ``"hanning"`` (symmetric, Kaldi's),
  ``"hann"`` (periodic, torch's), ``"sine"``, ``"blackman"`` (``blackman_coeff``),
  ``"rectangular"``.
* ``snip_edges=False``: Kaldi's alternative framing, T = ⌊(len(x) + S/2)/S⌋ frames centred on
  t·S + S/2, with the signal reflected at both ends.
"""

from __future__ import annotations

import dataclasses
import functools

from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import ArrayLike, NDArray

from qdaed.data.rates import SAMPLE_RATE
from qdaed.errors import InputError
from qdaed.validate import check_array, check_choice, check_float, check_int

FLOAT32_EPS = float(np.finfo(np.float32).eps)
WINDOWS = ("povey", "hamming", "hanning", "hann", "sine", "blackman", "rectangular")
MEL_SCALES = ("htk", "slaney")
MEL_NORMS = (None, "slaney")
INT16_SCALE = 32768.0


@dataclasses.dataclass(frozen=True)
class LfbeOptions:
    """Every choice of the LFBE front end; the defaults are qdaed's (docs/method/lfbe.md).

    frame_length_ms, frame_shift_ms: frame length and hop in milliseconds (25, 10).
    snip_edges: True keeps only frames that fit in the signal (Kaldi default); False uses
        Kaldi's centred framing with reflection at the ends.
    remove_dc: subtract each frame's mean.
    preemphasis: coefficient p in [0, 1] of x[n] − p·x[n−1] (0 disables it).
    window: one of ``WINDOWS``; blackman_coeff is used by "blackman" only.
    fft_size: zero-padded FFT length N (even, ≥ the frame length); None means the next power
        of two (Kaldi's round_to_power_of_two; 512 for 400-sample frames).
    num_mel_bins: number M of triangular filters (≥ 3, as Kaldi requires).
    low_freq, high_freq: band edges in Hz; high_freq ≤ 0 means Nyquist + high_freq (Kaldi).
    mel_scale: "htk" (Kaldi) or "slaney" (librosa's default scale).
    mel_norm: None, or "slaney" to scale each triangle by 2/(right − left) in Hz (librosa).
    use_power: True for |X|², False for |X| (magnitude) before the filterbank.
    use_log: False returns the mel energies without the log (the floor is still applied).
    log_floor: energies below it are raised to it before the log (float32 eps).
    dither: standard deviation of Gaussian noise added to each frame (needs ``rng``).
    int16_scale: multiply the samples by 32768 first (Kaldi's int16 convention).
    """

    frame_length_ms: float = 25.0
    frame_shift_ms: float = 10.0
    snip_edges: bool = True
    remove_dc: bool = True
    preemphasis: float = 0.97
    window: str = "povey"
    blackman_coeff: float = 0.42
    fft_size: int | None = 512
    num_mel_bins: int = 64
    low_freq: float = 20.0
    high_freq: float = 8000.0
    mel_scale: str = "htk"
    mel_norm: str | None = None
    use_power: bool = True
    use_log: bool = True
    log_floor: float = FLOAT32_EPS
    dither: float = 0.0
    int16_scale: bool = False

    def __post_init__(self) -> None:
        check_float("frame_length_ms", self.frame_length_ms, 0.0, lo_open=True)
        check_float("frame_shift_ms", self.frame_shift_ms, 0.0, lo_open=True)
        check_float("preemphasis", self.preemphasis, 0.0, 1.0)
        check_choice("window", self.window, WINDOWS)
        check_float("blackman_coeff", self.blackman_coeff)
        if self.fft_size is not None:
            check_int("fft_size", self.fft_size, lo=2)
            if self.fft_size % 2:
                raise InputError(f"fft_size: expected an even number, got {self.fft_size}")
        check_int("num_mel_bins", self.num_mel_bins, lo=3)
        check_float("low_freq", self.low_freq, 0.0)
        check_float("high_freq", self.high_freq)
        check_choice("mel_scale", self.mel_scale, MEL_SCALES)
        check_choice("mel_norm", self.mel_norm, MEL_NORMS)
        check_float("log_floor", self.log_floor, 0.0, lo_open=True)
        check_float("dither", self.dither, 0.0)
        for name in ("snip_edges", "remove_dc", "use_power", "use_log", "int16_scale"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise InputError(f"{name}: expected True or False, got {getattr(self, name)!r}")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (keys sorted by the caller when hashing)."""
        return dataclasses.asdict(self)

    def frame_sizes(self, sample_rate: int) -> tuple[int, int, int]:
        """(frame length L, frame shift S, FFT size N) in samples at ``sample_rate``."""
        # Kaldi truncates r·ms/1000 to an integer; the tiny offset keeps 16000·0.025 = 400
        # from becoming 399 through binary rounding.
        length = int(sample_rate * self.frame_length_ms / 1000.0 + 1e-9)
        shift = int(sample_rate * self.frame_shift_ms / 1000.0 + 1e-9)
        if length < 2 or shift < 1:
            raise InputError(
                f"frame_length_ms/frame_shift_ms: {self.frame_length_ms}/{self.frame_shift_ms} ms "
                f"at {sample_rate} Hz give {length}/{shift} samples; need at least 2/1")
        if self.fft_size is None:
            nfft = 1 << (length - 1).bit_length()
        else:
            nfft = self.fft_size
            if nfft < length:
                raise InputError(f"fft_size: expected at least the frame length ({length} "
                                 f"samples at {sample_rate} Hz), got {nfft}")
        return length, shift, nfft


def make_options(**options: Any) -> LfbeOptions:
    """``LfbeOptions(**options)``, with an unknown name reported as an ``InputError``."""
    names = {f.name for f in dataclasses.fields(LfbeOptions)}
    unknown = sorted(set(options) - names)
    if unknown:
        raise InputError(f"lfbe: unknown option(s) {', '.join(unknown)}; "
                         f"known: {', '.join(sorted(names))}")
    return LfbeOptions(**options)


def num_frames(num_samples: int, sample_rate: int, options: LfbeOptions | None = None) -> int:
    """Number of frames T that :func:`lfbe` returns for ``num_samples`` samples."""
    opts = options or LfbeOptions()
    length, shift, _ = opts.frame_sizes(sample_rate)
    if opts.snip_edges:
        return 0 if num_samples < length else 1 + (num_samples - length) // shift
    return (num_samples + shift // 2) // shift


def lfbe(waveform: NDArray[np.floating], sample_rate: int = SAMPLE_RATE, *,
         rng: np.random.Generator | None = None, **options: Any) -> NDArray[np.float32]:
    """Log mel filterbank energies of a mono waveform: (T, num_mel_bins) float32.

    Kaldi's fbank, frame by frame (every step is written out in the module docstring)::

        x_t[n] = x[t·S + n], n < L        T = 1 + ⌊(len(x) − L)/S⌋ frames
        x_t −= mean(x_t);  x_t[n] −= p·x_t[n−1];  x_t *= w   (DC, pre-emphasis, window)
        P_t[k] = |Σ_n x_t[n] e^{−2πikn/N}|²,   k = 0..N/2
        LFBE_t[m] = ln max(Σ_k P_t[k] W[k, m], floor)

    Parameters
    ----------
    waveform : ndarray
        1-D float32/float64 array, samples in [−1, 1] (or int16-scaled floats with
        ``int16_scale=False`` if you want Kaldi's numbers from Kaldi's input).
    sample_rate : int
        In Hz; the frame sizes and filter positions follow from it. qdaed resamples everything
        to 16 kHz before calling this (``qdaed.data.audio.read_audio``).
    rng : numpy.random.Generator, optional
        Required when ``dither > 0``.
    **options
        The fields of :class:`LfbeOptions` (or ``options=LfbeOptions(...)``).

    Returns
    -------
    ndarray
        (T, M) float32 log energies, M = ``num_mel_bins``. A waveform shorter than one frame
        raises ``InputError`` (snip_edges=True).
    """
    if "options" in options:
        opts = options.pop("options")
        if options or not isinstance(opts, LfbeOptions):
            raise InputError("lfbe: pass either options=LfbeOptions(...) or keyword options, "
                             "not both")
    else:
        opts = make_options(**options)
    sample_rate = check_int("sample_rate", sample_rate, lo=1)
    x = check_array("waveform", waveform, ndim=1).astype(np.float64, copy=False)
    length, shift, nfft = opts.frame_sizes(sample_rate)
    if opts.dither > 0 and not isinstance(rng, np.random.Generator):
        raise InputError("rng: dither > 0 needs a numpy.random.Generator (rng=...), "
                         f"got {type(rng).__name__}")
    if opts.int16_scale:
        x = x * INT16_SCALE

    frames = _frames(x, length, shift, opts.snip_edges)
    if frames.shape[0] == 0:
        raise InputError(f"waveform: {x.size} samples is shorter than one frame "
                         f"({length} samples = {opts.frame_length_ms} ms at {sample_rate} Hz)")
    return lfbe_of_frames(frames, sample_rate, opts, rng=rng)


def lfbe_of_frames(frames, sample_rate, opts, *, rng=None):
    """The LFBE (T, M) float32 of frames already cut from the signal.

    Every step after the framing of :func:`lfbe`, each frame on its own, so that a stream cut
    into chunks of frames gives the rows :func:`lfbe` gives (``qdaed.streaming``)::

        x_t −= mean(x_t);  x_t[n] −= p·x_t[n−1];  x_t *= w
        LFBE_t[m] = ln max(Σ_k |DFT_N(x_t)[k]|² W[k, m], floor)

    Parameters
    ----------
    frames : ndarray
        (T, L) samples (int16-scaled if ``opts.int16_scale``), L the frame length of ``opts``
        at ``sample_rate``.
    sample_rate : int
        In Hz.
    opts : LfbeOptions
        The front end's options.
    rng : numpy.random.Generator, optional
        Required when ``opts.dither > 0``.

    Returns
    -------
    ndarray
        (T, M) float32.
    """
    length, _, nfft = opts.frame_sizes(sample_rate)
    if frames.ndim != 2 or frames.shape[1] != length:
        raise InputError(f"frames: expected (T, {length}), got {frames.shape}")
    if opts.dither > 0 and not isinstance(rng, np.random.Generator):
        raise InputError("rng: dither > 0 needs a numpy.random.Generator (rng=...), "
                         f"got {type(rng).__name__}")
    frames = np.array(frames, dtype=np.float64)  # a writable copy of the strided view
    if opts.dither > 0 and isinstance(rng, np.random.Generator):   # checked above
        frames += opts.dither * rng.standard_normal(frames.shape)
    if opts.remove_dc:
        frames -= frames.mean(axis=1, keepdims=True)
    if opts.preemphasis != 0.0:
        # right-hand side is evaluated before assignment, so every term uses the input frame
        frames[:, 1:] -= opts.preemphasis * frames[:, :-1]
        frames[:, 0] *= 1.0 - opts.preemphasis
    frames *= window_function(opts.window, length, opts.blackman_coeff)

    spectrum = np.fft.rfft(frames, n=nfft, axis=1)
    power = spectrum.real ** 2 + spectrum.imag ** 2
    if not opts.use_power:
        power = np.sqrt(power)
    bank = mel_filterbank(sample_rate, nfft, opts.num_mel_bins, opts.low_freq, opts.high_freq,
                          opts.mel_scale, opts.mel_norm)
    energies = np.maximum(power @ bank, opts.log_floor)
    if opts.use_log:
        energies = np.log(energies)
    return energies.astype(np.float32)


def _frames(x, length, shift, snip_edges):
    """(T, L) view (snip_edges) or gathered copy (centred, reflected) of the frames of x."""
    if snip_edges:
        if x.size < length:
            return np.empty((0, length))
        return sliding_window_view(x, length)[::shift]
    count = (x.size + shift // 2) // shift
    if count == 0:
        return np.empty((0, length))
    starts = shift * np.arange(count) + shift // 2 - length // 2
    idx = starts[:, None] + np.arange(length)[None, :]
    # reflect around both ends (−1 → 0, n → n−1), repeatedly for signals shorter than a frame
    n = x.size
    while True:
        low, high = idx < 0, idx >= n
        if not (low.any() or high.any()):
            break
        idx = np.where(low, -idx - 1, idx)
        idx = np.where(high, 2 * n - 1 - idx, idx)
    return x[idx]


@functools.lru_cache(maxsize=32)
def window_function(name: str, length: int, blackman_coeff: float = 0.42
                    ) -> NDArray[np.float64]:
    """The length-L analysis window ``name`` (Kaldi's definitions; "hann" is periodic)."""
    check_choice("window", name, WINDOWS)
    n = np.arange(length, dtype=np.float64)
    a = 2.0 * np.pi / (length if name == "hann" else length - 1)
    if name in ("hanning", "hann"):
        w = 0.5 - 0.5 * np.cos(a * n)
    elif name == "povey":
        w = (0.5 - 0.5 * np.cos(a * n)) ** 0.85
    elif name == "hamming":
        w = 0.54 - 0.46 * np.cos(a * n)
    elif name == "sine":
        w = np.sin(0.5 * a * n)
    elif name == "blackman":
        w = blackman_coeff - 0.5 * np.cos(a * n) + (0.5 - blackman_coeff) * np.cos(2 * a * n)
    else:
        w = np.ones(length)
    w.setflags(write=False)
    return w


def hz_to_mel(f: ArrayLike, scale: str = "htk") -> NDArray[np.float64]:
    """HTK: 1127 ln(1 + f/700). Slaney: f/(200/3) below 1 kHz, 15 + 27 ln(f/1000)/ln 6.4 above."""
    f = np.asarray(f, dtype=np.float64)
    if scale == "htk":
        return 1127.0 * np.log1p(f / 700.0)
    lin = f / (200.0 / 3.0)
    log = 15.0 + np.log(np.maximum(f, 1e-12) / 1000.0) * 27.0 / np.log(6.4)
    return np.where(f < 1000.0, lin, log)


def mel_to_hz(m: ArrayLike, scale: str = "htk") -> NDArray[np.float64]:
    """Inverse of :func:`hz_to_mel`."""
    m = np.asarray(m, dtype=np.float64)
    if scale == "htk":
        return 700.0 * np.expm1(m / 1127.0)
    return np.where(m < 15.0, m * (200.0 / 3.0), 1000.0 * np.exp((m - 15.0) * np.log(6.4) / 27.0))


@functools.lru_cache(maxsize=32)
def mel_filterbank(sample_rate: int, nfft: int, num_bins: int, low_freq: float,
                   high_freq: float, scale: str = "htk", norm: str | None = None
                   ) -> NDArray[np.float64]:
    """(N/2 + 1, M) matrix W of triangular filters, so that mel energies = power @ W.

    "htk" (Kaldi): triangles in mel at FFT bin centres k·r/N for k < N/2 (Kaldi leaves the
    Nyquist bin out); filter m rises from 0 at mel edge m to 1 at edge m+1 and falls to 0 at
    edge m+2, the M + 2 edges equally spaced in mel(f) = 1127 ln(1 + f/700) between low_freq
    and high_freq. "slaney" scale: triangles in Hz between mel-spaced edges, Nyquist bin
    included (kaldi-native-fbank's is_librosa mode). norm "slaney": ×2/(right − left) in Hz.

    Parameters
    ----------
    sample_rate : int
        r, in Hz.
    nfft : int
        N, the FFT size.
    num_bins : int
        M, the number of filters.
    low_freq, high_freq : float
        The band in Hz; high_freq ≤ 0 is an offset from the Nyquist frequency.
    scale : {"htk", "slaney"}
        The mel scale.
    norm : {None, "slaney"}
        Area normalisation of the triangles.

    Returns
    -------
    ndarray
        (N/2 + 1, M) float64, read-only (cached).
    """
    nyquist = 0.5 * sample_rate
    high = high_freq if high_freq > 0 else nyquist + high_freq
    if not (0.0 <= low_freq < nyquist and 0.0 < high <= nyquist and high > low_freq):
        raise InputError(
            f"low_freq/high_freq: need 0 <= low_freq < high_freq <= Nyquist ({nyquist:g} Hz at "
            f"{sample_rate} Hz), got {low_freq:g}/{high:g} Hz; resample to 16 kHz first "
            "(qdaed.data.audio) or lower high_freq")
    mel_low, mel_high = hz_to_mel(low_freq, scale), hz_to_mel(high, scale)
    delta = (mel_high - mel_low) / (num_bins + 1)
    edges = mel_low + delta * np.arange(num_bins + 2)  # left/centre/right of bin m: m, m+1, m+2
    left, centre, right = edges[:-2], edges[1:-1], edges[2:]
    bins = np.arange(nfft // 2 + 1)
    freq = bins * (sample_rate / nfft)
    if scale == "htk":
        x: np.ndarray = hz_to_mel(freq, "htk")[:, None]
        usable = (bins < nfft // 2)[:, None]
    else:
        x = freq[:, None]
        left, centre, right = (mel_to_hz(v, "slaney") for v in (left, centre, right))
        usable = np.ones_like(x, dtype=bool)
    rising = (x - left) / (centre - left)
    falling = (right - x) / (right - centre)
    weights = np.where(x <= centre, rising, falling)
    weights = np.where(usable & (x > left) & (x < right), weights, 0.0)
    if norm == "slaney":
        lo_hz = left if scale != "htk" else mel_to_hz(left, "htk")
        hi_hz = right if scale != "htk" else mel_to_hz(right, "htk")
        weights = weights * (2.0 / (hi_hz - lo_hz))
    empty = np.flatnonzero(~(weights > 0).any(axis=0))
    if empty.size:
        raise InputError(f"num_mel_bins: {num_bins} filters between {low_freq:g} and {high:g} Hz "
                         f"leave bin(s) {empty.tolist()} without any FFT bin; use fewer bins or a "
                         "larger fft_size")
    weights.setflags(write=False)
    return weights
