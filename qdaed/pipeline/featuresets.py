"""The pipeline's data: the embedded synthetic corpus, or real audio listed in a manifest.

Both end as a :class:`~qdaed.train.dataset.FeatureSet` of raw LFBE (normalisation is fitted
later, on the training split only) with every clip brought to one length (the policy of
:func:`qdaed.features.prepare.fix_length`):

* synthetic: ``n_clips`` clips of ``clip_seconds`` of corpus ``corpus`` (v1: clean labels;
  v2: noisy weak labels with ``label_noise``, clean truth kept; qdaed.data.synth) from corpus
  seed ``synth_seed``; the last ``split_fractions[2]`` of them are test, the
  ``split_fractions[1]`` before them validation (clips are i.i.d., so contiguous blocks are
  fair); then ``n_transfer`` more clips of the same generator with split ``unlabeled`` (the
  transfer set);
* manifest: features through the cached feature store (``OUT/features``); the manifest's
  ``split`` column when every clip has one, otherwise a seeded split by ``group`` (a column
  naming the source recording, so no recording lands in two splits) or by clip; a manifest
  whose ``group`` has rows in two splits is refused (qdaed.data.splits); clip length =
  ``equal_seconds`` when set (the equal-length control), else the longest clip. Rows with
  split ``unlabeled`` stay the transfer set; a ``clean_labels`` column gives the truth.

``FeatureSet.labels`` are what training and validation see (v2: noisy); ``clean_labels`` the
ground truth for the test metrics (synthetic: always, equal to ``labels`` under v1; manifest:
from its ``clean_labels`` column, None without one). The ``unlabeled`` rows' labels are their truth, kept for analysis only:
no loss may train on them.

Controls for recording-channel confounds (real_audio's SOURCES.md): ``max_freq`` ends the mel
filters at that frequency (e.g. 4000 Hz, the Nyquist frequency of 8 kHz recordings), and
``equal_seconds`` gives every clip the same duration.
"""

from __future__ import annotations

import collections
import hashlib
import multiprocessing
import sys
from concurrent.futures import ProcessPoolExecutor

import numpy as np
from tqdm import tqdm

from qdaed.data.manifest import UNLABELED, read_manifest
from qdaed.data.rates import SAMPLE_RATE
from qdaed.data.splits import check_manifest_groups
from qdaed.data.synth import CORPORA, LabelNoise, corpus_config, iter_corpus
from qdaed.errors import DataError, InputError
from qdaed.features.fbank import LfbeOptions, lfbe, num_frames
from qdaed.features.prepare import fix_length
from qdaed.features.store import extract_features, load_features
from qdaed.pipeline.threads import available_cores, pin_threads
from qdaed.train.dataset import FeatureSet
from qdaed.validate import check_float, check_int



def feature_options(data, features):
    """LFBE options of a run (a :class:`~qdaed.pipeline.config.DataConfig` and
    :class:`~qdaed.pipeline.config.FeaturesConfig`): the bins and band, with the band-limit
    control ``data.max_freq``."""
    high = features.high_freq if data.max_freq is None else data.max_freq
    return LfbeOptions(num_mel_bins=features.num_mel_bins, low_freq=features.low_freq,
                       high_freq=high)


def load_dataset(data, features, classes, out, log, jobs=0):
    """FeatureSet of a run's ``data`` (see the module docstring)."""
    opts = feature_options(data, features)
    if data.source == "synth":
        fs = _synthetic(data, tuple(classes), opts, log, jobs)
    else:
        if data.n_transfer:
            raise InputError("data.n_transfer: applies to the synthetic corpus; a manifest's "
                             "transfer set is its rows with split 'unlabeled'")
        fs = _manifest(data, tuple(classes), opts, out, log, jobs)
    fs.feature_options = opts.to_dict()
    return fs


def transfer_set_size(data):
    """Clips of a run's unlabelled transfer set, known before any audio is read: the synthetic
    corpus's ``n_transfer``, or a manifest's rows with split ``unlabeled`` (the manifest is
    parsed; a malformed one is the DataError it would be later)."""
    if data.source == "synth":
        return data.n_transfer
    return sum(c.split == UNLABELED for c in read_manifest(data.manifest))


def _fractions_split(n, fractions):
    n_test = int(round(fractions[2] * n))
    n_val = int(round(fractions[1] * n))
    splits = np.array(["train"] * n, dtype=object)
    splits[n - n_test - n_val:n - n_test] = "validation"
    splits[n - n_test:] = "test"
    return splits.astype(str)


def _synth_chunk(version, seed, seconds, start, n, opts_dict, frames, classes,
                 label_noise=None):
    """LFBE (n, frames, F), observed targets (n, C) and clean targets (n, C) of clips
    start … start+n−1 of corpus ``version`` (a pool job; the serial path runs it too)."""
    feats = np.empty((n, frames, opts_dict["num_mel_bins"]), dtype=np.float32)
    observed = np.zeros((n, len(classes)), dtype=np.float32)
    clean = np.zeros((n, len(classes)), dtype=np.float32)
    config = corpus_config(version, seconds, SAMPLE_RATE, label_noise=label_noise)
    for i, clip in enumerate(iter_corpus(n, seed, config, start=start)):
        feats[i] = fix_length(lfbe(clip.waveform, SAMPLE_RATE, **opts_dict), frames)
        observed[i] = clip.observed_targets(classes)
        clean[i] = clip.targets(classes)
    return feats, observed, clean


_CHUNK = 25          # clips per pool job: ~1 s of work at 3 s clips; progress moves per job
_SERIAL_SECONDS = 120.0   # below this much audio a pool's start-up costs more than it saves


def synth_workers(jobs, total_clips, seconds):
    """Processes for ``total_clips`` synthetic clips of ``seconds`` s: ``jobs``, at most one
    per chunk; jobs 0 = every usable core, except 1 (this process) when the corpus holds
    less than ``_SERIAL_SECONDS`` of audio."""
    jobs = check_int("jobs", jobs, lo=0)
    chunks = -(-total_clips // _CHUNK)
    if jobs == 0:
        jobs = 1 if total_clips * seconds < _SERIAL_SECONDS else available_cores()
    return max(1, min(chunks, jobs))


def _synthetic(d, classes, opts, log, jobs=0):
    """The synthetic corpus: ``n_clips`` labelled clips (split by ``split_fractions``) and
    ``n_transfer`` more from the same generator at indices n_clips … n_clips+n_transfer−1
    (never one of the labelled clips) with split ``unlabeled``: the transfer set.

    ``labels``: what training and validation see; corpus v2: the observed labels, with the
    configured ``label_noise`` (ignored by v1); ``clean_labels``: the ground truth, for the
    test metrics. The transfer clips' labels are their clean truth, kept for analysis only:
    no loss may use them (they enter distillation's soft term through the teacher).

    Clips are made in chunks of ``_CHUNK`` on a process pool (``jobs``; 0 = one per core;
    spawn start method, one BLAS thread per worker); every clip comes from its own seeds
    (qdaed.data.synth), so the arrays are byte-identical for any number of processes (a
    test checks it). Memory: the result, (n_clips + n_transfer) x frames x bins float32,
    plus at most a few chunks in flight.
    """
    version = d.corpus
    if version not in CORPORA:
        raise InputError(f"data.corpus: expected one of {', '.join(CORPORA)}, got {version!r}")
    n = check_int("data.n_clips", d.n_clips, lo=1)
    n_u = check_int("data.n_transfer", d.n_transfer, lo=0)
    seconds = check_float("data.clip_seconds", d.clip_seconds, lo=0.0, lo_open=True)
    seed = check_int("data.synth_seed", d.synth_seed, lo=0)
    frames = num_frames(int(round(seconds * SAMPLE_RATE)), SAMPLE_RATE, opts)
    noise = None
    if version == "v2":      # label_noise absent: v2's default, as corpus_config's
        noise = LabelNoise.of(d.label_noise or LabelNoise())
    total = n + n_u
    workers = synth_workers(jobs, total, seconds)
    log(f"synthetic corpus {version}: {n} clips of {seconds:g} s (seed {seed})"
        f"{f' + {n_u} unlabelled transfer clips' if n_u else ''}, {opts.num_mel_bins}-bin "
        f"LFBE, {workers} process(es)"
        + (f"; label noise: {noise.describe()}" if noise is not None else ""))
    feats = np.empty((total, frames, opts.num_mel_bins), dtype=np.float32)
    observed = np.zeros((total, len(classes)), dtype=np.float32)
    clean = np.zeros((total, len(classes)), dtype=np.float32)
    chunks = [(s0, min(_CHUNK, total - s0)) for s0 in range(0, total, _CHUNK)]
    noise_arg = None if noise is None else noise.to_dict()
    args = [(version, seed, seconds, s0, m, opts.to_dict(), frames, classes, noise_arg)
            for s0, m in chunks]

    bar = tqdm(total=total, desc="synth+LFBE", unit="clip", file=sys.stderr,
               disable=True if getattr(log, "quiet", False) else None, leave=False)
    try:
        for (s0, m), (f, y, t) in zip(chunks, _map_chunks(args, workers)):
            feats[s0:s0 + m], observed[s0:s0 + m], clean[s0:s0 + m] = f, y, t
            bar.update(m)
    finally:
        bar.close()
    labels = np.concatenate([observed[:n], clean[n:]])
    if noise is not None and noise.active:
        pos, neg = clean[:n] == 1, clean[:n] == 0
        log(f"label noise: {int((pos & (labels[:n] == 0)).sum())} of {int(pos.sum())} positive "
            f"labels missing, {int((neg & (labels[:n] == 1)).sum())} of {int(neg.sum())} "
            f"negative (clip, class) pairs labelled positive; test metrics use the clean truth")
    splits = np.concatenate([_fractions_split(n, d.split_fractions),
                             np.array([UNLABELED] * n_u)]).astype(str)
    names = [f"synth_{seed}_{i:06d}" for i in range(total)]
    return FeatureSet(feats, labels, names, splits, classes, clean_labels=clean)


def _map_chunks(args, workers):
    """Results of ``_synth_chunk(*a)`` for every ``a`` of ``args``, in order: in this process
    (workers == 1) or on a spawn pool of ``workers`` processes with at most 2 × workers jobs
    in flight (memory stays bounded however many clips)."""
    if workers <= 1:
        for a in args:
            yield _synth_chunk(*a)
        return

    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=pin_threads, initargs=(1,))
    pending, todo = collections.deque(), iter(args)
    try:
        for a in todo:
            pending.append(pool.submit(_synth_chunk, *a))
            if len(pending) >= 2 * workers:
                break
        while pending:
            result = pending.popleft().result()
            for a in todo:
                pending.append(pool.submit(_synth_chunk, *a))
                break
            yield result
    finally:
        for f in pending:
            f.cancel()
        pool.shutdown(wait=True, cancel_futures=True)


def _seeded_split(keys, fractions, seed):
    """Assign whole groups to splits at random (seeded), aiming at ``fractions`` of clips."""
    uniq = sorted(set(keys))
    order = np.random.default_rng(seed).permutation(len(uniq))
    sizes = {k: 0 for k in uniq}
    for k in keys:
        sizes[k] += 1
    total, acc, which = len(keys), 0, {}
    bounds = np.cumsum(fractions)[:2] * total
    for i in order:
        k = uniq[i]
        which[k] = "train" if acc < bounds[0] else "validation" if acc < bounds[1] else "test"
        acc += sizes[k]
    return np.array([which[k] for k in keys])


def _manifest(d, classes, opts, out, log, jobs):
    clips = read_manifest(d.manifest, classes)
    if not clips:
        raise DataError(f"{d.manifest}: the manifest lists no clips")
    check_manifest_groups(clips, d.manifest)     # before any audio is read
    log(f"manifest {d.manifest}: {len(clips)} clips; features cached in {out / 'features'}")
    report = extract_features(clips, d.audio_root, out / "features", opts,
                              jobs=jobs, manifest_name=d.manifest,
                              progress=not getattr(log, "quiet", False))
    if report.bad and not d.skip_missing:
        listing = "\n".join(f"  line {c.line}: {reason}" for c, _, reason in report.bad[:10])
        more = f"\n  … and {len(report.bad) - 10} more" if len(report.bad) > 10 else ""
        raise DataError(f"{d.manifest}: {len(report.bad)} of {len(clips)} clip(s) missing or "
                        f"unreadable under {d.audio_root}; nothing was trained and --out is "
                        f"as it was. Fix them, or run with --skip-missing to train on the "
                        f"others (they are then listed in OUT/features/bad_audio.csv):\n"
                        f"{listing}{more}")
    for clip, path, reason in report.bad:
        log(f"skipped {clip.name}: {reason}")
    log(f"features: {report.computed} computed, {report.reused} reused, "
        f"{len(report.bad)} skipped (listed in {out / 'features' / 'bad_audio.csv'})")
    used = [c for c, _, _ in report.items]
    raw = [load_features(p) for _, p, _ in report.items]
    _refuse_duplicate_audio(d.manifest, used, raw)
    if d.equal_seconds is not None:
        frames = num_frames(int(round(d.equal_seconds * SAMPLE_RATE)), SAMPLE_RATE, opts)
    else:
        frames = max(f.shape[0] for f in raw)
    feats = np.stack([fix_length(f, frames) for f in raw])
    labels = np.array([c.targets(classes) for c in used], dtype=np.float32)
    clean = None
    if any(c.clean_labels is not None for c in used):    # a clean_labels column
        clean = np.array([c.clean_targets(classes) for c in used], dtype=np.float32)
    unl = np.array([c.split == UNLABELED for c in used], dtype=bool)
    if all(c.split for c in used):
        splits = np.array([c.split for c in used])
    else:
        groups = [c.group or c.name for c in used]
        lab = np.flatnonzero(~unl)
        splits = np.array([UNLABELED] * len(used), dtype=object)
        splits[lab] = _seeded_split([groups[i] for i in lab], d.split_fractions,
                                    d.synth_seed)
        splits = splits.astype(str)
    if unl.any():
        log(f"manifest: {int(unl.sum())} clips with split '{UNLABELED}' (transfer set; their "
            f"labels are never trained on)")
    return FeatureSet(feats, labels, [c.name for c in used], splits, classes,
                      clean_labels=clean)


def _refuse_duplicate_audio(manifest, clips, raw):
    """Two rows whose audio gives the same LFBE (the same recording under two names) could
    land in two splits: a DataError naming both rows."""
    seen = {}
    for clip, feats in zip(clips, raw):
        key = hashlib.sha256(np.ascontiguousarray(feats).tobytes()).hexdigest()
        if key in seen:
            first = seen[key]
            raise DataError(f"{manifest}, line {clip.line}: {clip.name!r} has the same audio as "
                            f"{first.name!r} (line {first.line}); list each recording once")
        seen[key] = clip
