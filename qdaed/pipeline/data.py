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
        data = _synthetic(cfg, opts, log)
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


def _synthetic(cfg, opts, log):
    from qdaed.data.synth import iter_corpus

    d = cfg["data"]
    n, seconds = d["n_clips"], d["clip_seconds"]
    frames = num_frames(int(round(seconds * SAMPLE_RATE)), SAMPLE_RATE, opts)
    log(f"synthetic corpus: {n} clips of {seconds:g} s (seed {d['synth_seed']}), "
        f"{opts.num_mel_bins}-bin LFBE")
    feats = np.empty((n, frames, opts.num_mel_bins), dtype=np.float32)
    labels = np.zeros((n, len(cfg["classes"])), dtype=np.float32)
    names = []
    from tqdm import tqdm

    clips = iter_corpus(n, d["synth_seed"], duration=seconds, sample_rate=SAMPLE_RATE)
    for i, clip in enumerate(tqdm(clips, total=n, desc="synth+LFBE", unit="clip",
                                  file=sys.stderr, disable=None, leave=False)):
        feats[i] = fix_length(lfbe(clip.waveform, SAMPLE_RATE, **opts.to_dict()), frames)
        labels[i] = clip.targets(tuple(cfg["classes"]))
        names.append(f"synth_{d['synth_seed']}_{i:06d}")
    return FeatureSet(feats, labels, names, _fractions_split(n, d["split_fractions"]),
                      tuple(cfg["classes"]))


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
    if all(c.split for c in used):
        splits = np.array([c.split for c in used])
    else:
        groups = _groups(d["manifest"], used) or [c.name for c in used]
        splits = _seeded_split(groups, d["split_fractions"], d["synth_seed"])
    return FeatureSet(feats, labels, [c.name for c in used], splits, tuple(cfg["classes"]))
