"""The pipeline's data: the embedded synthetic corpus, or real audio listed in a manifest.

Both end as a :class:`~qdaed.train.dataset.FeatureSet` of raw LFBE (normalisation is fitted
later, on the training split only) with every clip brought to one length (the policy of
:func:`qdaed.train.dataset.fix_length`):

* synthetic: ``n_clips`` clips of ``clip_seconds`` from corpus seed ``synth_seed``; the last
  ``split_fractions[2]`` of them are test, the ``split_fractions[1]`` before them validation
  (clips are i.i.d., so contiguous blocks are fair);
* manifest: features through the cached feature store (``OUT/features``); the manifest's
  ``split`` column when every clip has one, otherwise a seeded split by ``group`` (a column
  naming the source recording, so no recording lands in two splits) or by clip; clip length =
  ``equal_seconds`` when set (the equal-length control), else the longest clip.

Controls for recording-channel confounds (real_audio's SOURCES.md): ``max_freq`` ends the mel
filters at that frequency (e.g. 4000 Hz, the Nyquist frequency of 8 kHz recordings), and
``equal_seconds`` gives every clip the same duration.
"""

from __future__ import annotations

import csv
import sys

import numpy as np

from qdaed.errors import DataError
from qdaed.features.lfbe import LfbeOptions, lfbe, num_frames
from qdaed.train.dataset import FeatureSet, fix_length

SAMPLE_RATE = 16000


def feature_options(cfg):
    """LFBE options of a run: the preset's bins and band, with the band-limit control."""
    f = cfg["features"]
    high = f["high_freq"] if cfg["data"]["max_freq"] is None else cfg["data"]["max_freq"]
    return LfbeOptions(num_mel_bins=f["num_mel_bins"], low_freq=f["low_freq"], high_freq=high)


def load_dataset(cfg, out, log, jobs=0):
    """FeatureSet of the run described by ``cfg`` (see the module docstring)."""
    opts = feature_options(cfg)
    if cfg["data"]["source"] == "synth":
        data = _synthetic(cfg, opts, log, jobs)
    else:
        data = _manifest(cfg, opts, out, log, jobs)
    data.feature_options = opts.to_dict()
    return data


def _fractions_split(n, fractions):
    n_test = int(round(fractions[2] * n))
    n_val = int(round(fractions[1] * n))
    splits = np.array(["train"] * n, dtype=object)
    splits[n - n_test - n_val:n - n_test] = "validation"
    splits[n - n_test:] = "test"
    return splits.astype(str)


def _synth_chunk(version, seed, seconds, start, n, opts_dict, frames, classes):
    """LFBE (n, frames, F) and clean targets (n, C) of clips start … start+n−1 (a pool job)."""
    from qdaed.data.synth import corpus_config, iter_corpus

    feats = np.empty((n, frames, opts_dict["num_mel_bins"]), dtype=np.float32)
    labels = np.zeros((n, len(classes)), dtype=np.float32)
    clips = iter_corpus(n, seed, corpus_config(version, seconds, SAMPLE_RATE), start=start)
    for i, clip in enumerate(clips):
        feats[i] = fix_length(lfbe(clip.waveform, SAMPLE_RATE, **opts_dict), frames)
        labels[i] = clip.targets(classes)
    return feats, labels


_CHUNK = 50


def _synthetic(cfg, opts, log, jobs=0):
    """The synthetic corpus: n_clips labelled clips (split by ``split_fractions``) and
    ``n_transfer`` more from the same generator (indices after them) as the ``unlabeled``
    transfer set. Corpus v2 gives the labelled clips observed labels with the configured
    label noise and keeps the truth in ``clean_labels``. Clips are made in chunks of 50 on a
    process pool (``jobs``; 0 = one per core), each chunk from its own seeds, so the result is
    the same for any number of processes."""
    from concurrent.futures import ProcessPoolExecutor
    import multiprocessing
    import os

    from qdaed.data.synth import LabelNoise, corpus_config, observe_labels

    d = cfg["data"]
    version = d.get("corpus", "v1")
    corpus_config(version, d["clip_seconds"])      # validates the version
    n, n_u, seconds = d["n_clips"], d.get("n_transfer", 0), d["clip_seconds"]
    classes = tuple(cfg["classes"])
    frames = num_frames(int(round(seconds * SAMPLE_RATE)), SAMPLE_RATE, opts)
    noise = LabelNoise(**d["label_noise"]) if version == "v2" else None
    log(f"synthetic corpus {version}: {n} clips of {seconds:g} s (seed {d['synth_seed']})"
        f"{f' + {n_u} unlabelled transfer clips' if n_u else ''}, {opts.num_mel_bins}-bin "
        f"LFBE" + (f"; label noise: missing {noise.missing}, false positives "
                   f"{noise.false_positive}" if noise else ""))
    total = n + n_u
    feats = np.empty((total, frames, opts.num_mel_bins), dtype=np.float32)
    clean = np.zeros((total, len(classes)), dtype=np.float32)
    chunks = [(s0, min(_CHUNK, total - s0)) for s0 in range(0, total, _CHUNK)]
    args = [(version, d["synth_seed"], seconds, s0, m, opts.to_dict(), frames, classes)
            for s0, m in chunks]
    workers = min(len(chunks), jobs or (len(os.sched_getaffinity(0))
                                        if hasattr(os, "sched_getaffinity") else os.cpu_count()))
    from tqdm import tqdm

    bar = tqdm(total=total, desc="synth+LFBE", unit="clip", file=sys.stderr, disable=None,
               leave=False)
    if workers <= 1:
        results = (_synth_chunk(*a) for a in args)
    else:
        pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
        results = pool.map(_synth_chunk, *zip(*args))
    try:
        for (s0, m), (f, y) in zip(chunks, results):
            feats[s0:s0 + m], clean[s0:s0 + m] = f, y
            bar.update(m)
    finally:
        bar.close()
        if workers > 1:
            pool.shutdown()
    labels = clean.copy()
    if noise is not None:
        for i in range(n):
            labels[i] = observe_labels(clean[i], noise, d["synth_seed"], i, classes)
    splits = np.concatenate([_fractions_split(n, d["split_fractions"]),
                             np.array(["unlabeled"] * n_u)]).astype(str)
    names = [f"synth_{d['synth_seed']}_{i:06d}" for i in range(total)]
    return FeatureSet(feats, labels, names, splits, classes, clean_labels=clean)


def _groups(manifest_path, clips):
    """The manifest's optional ``group`` column, one entry per clip (by CSV line), else None."""
    with open(manifest_path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    header = [h.strip() for h in rows[0]]
    if "group" not in header:
        return None
    col = header.index("group")
    return [rows[c.line - 1][col].strip() or c.name for c in clips]


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


def _manifest(cfg, opts, out, log, jobs):
    from qdaed.data.manifest import read_manifest
    from qdaed.features.store import extract_features, load_features

    d = cfg["data"]
    clips = read_manifest(d["manifest"], tuple(cfg["classes"]))
    if not clips:
        raise DataError(f"{d['manifest']}: the manifest lists no clips")
    log(f"manifest {d['manifest']}: {len(clips)} clips; features cached in {out / 'features'}")
    report = extract_features(clips, d["audio_root"], out / "features", opts,
                              jobs=None if jobs == 0 else jobs, manifest_name=d["manifest"])
    for clip, path, reason in report.bad:
        log(f"skipped {clip.name}: {reason}")
    log(f"features: {report.computed} computed, {report.reused} reused, "
        f"{len(report.bad)} skipped (listed in {out / 'features' / 'bad_audio.csv'})")
    used = [c for c, _, _ in report.items]
    raw = [load_features(p) for _, p, _ in report.items]
    if d["equal_seconds"] is not None:
        frames = num_frames(int(round(d["equal_seconds"] * SAMPLE_RATE)), SAMPLE_RATE, opts)
    else:
        frames = max(f.shape[0] for f in raw)
    feats = np.stack([fix_length(f, frames) for f in raw])
    labels = np.array([c.targets(tuple(cfg["classes"])) for c in used], dtype=np.float32)
    unl = np.array([c.split == "unlabeled" for c in used], dtype=bool)
    if all(c.split for c in used):
        splits = np.array([c.split for c in used])
    else:
        groups = _groups(d["manifest"], used) or [c.name for c in used]
        lab = np.flatnonzero(~unl)
        splits = np.array(["unlabeled"] * len(used), dtype=object)
        splits[lab] = _seeded_split([groups[i] for i in lab], d["split_fractions"],
                                    d["synth_seed"])
        splits = splits.astype(str)
    return FeatureSet(feats, labels, [c.name for c in used], splits, tuple(cfg["classes"]))
