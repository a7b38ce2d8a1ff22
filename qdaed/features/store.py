"""Feature store: LFBE of every clip of a manifest, cached on disk and reused.

Layout of the output folder::

    OUT/options.json        LFBE options, sample rate and store version of this folder
    OUT/cache/ab/abcd….npy  one (frames, mel bins) float32 array per clip (no pickle)
    OUT/features.csv        the manifest's clips that were usable: clip, labels, split,
                            the cached array's path (relative to OUT) and its frame count
    OUT/bad_audio.csv       the clips left out and why (always written; header only if none)

Cache key: sha256 of a JSON document holding the audio file's sha256 (of its bytes, so a
renamed or copied file is still a hit and an edited file is a miss), every LFBE option, the
target sample rate and ``STORE_VERSION`` (bumped whenever the arithmetic of the front end or of
the resampler changes). Each array is written atomically (temporary file, fsync, rename), so an
interrupted run leaves no half-written entry and the next run carries on where it stopped.

Work is spread over a process pool (``jobs``, default all cores); with ``jobs=1`` everything
runs in this process. Progress goes to stderr (tqdm). Dither, when asked for, is seeded from
the cache key, so a cached entry is reproducible.

Bad clips (see ``qdaed.data.audio`` for the cases) are listed in ``bad_audio.csv`` and in the
returned report, and skipped; ``strict=True`` turns any of them into one ``DataError`` that
names every bad file. A manifest with no usable clip is always a ``DataError``.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
import json
import os
import sys

import numpy as np
from tqdm import tqdm

from qdaed.data.audio import MAX_CLIP_SECONDS, load_clip, read_bytes
from qdaed.data.manifest import Clip, resolve_audio, write_manifest
from qdaed.data.rates import SAMPLE_RATE
from qdaed.errors import DataError, InputError
from qdaed.features.fbank import LfbeOptions, lfbe, mel_filterbank
from qdaed.io.atomic import atomic_open, atomic_write_text
from qdaed.validate import check_int

STORE_VERSION = 1


@dataclasses.dataclass
class StoreReport:
    """What :func:`extract_features` did. ``items`` are usable clips, ``bad`` the skipped ones.

    items: list of (Clip, absolute feature path, frames).
    bad:   list of (Clip, audio path, reason).
    """

    items: list
    bad: list
    computed: int
    reused: int

    def summary(self):
        n = len(self.items) + len(self.bad)
        return (f"{n} clip(s): {self.computed} computed, {self.reused} reused from the cache, "
                f"{len(self.bad)} skipped")


def options_document(options, sample_rate):
    """The JSON-ready description of a feature configuration (part of every cache key)."""
    return {"store_version": STORE_VERSION, "sample_rate": int(sample_rate),
            "lfbe": options.to_dict()}


def cache_key(audio_sha256, options, sample_rate):
    """Hex sha256 of the audio content hash and the feature configuration."""
    doc = {"audio_sha256": audio_sha256, **options_document(options, sample_rate)}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def cache_path(cache_dir, key):
    return os.path.join(cache_dir, key[:2], key + ".npy")


def save_features(path, array):
    """Write one float32 array as ``.npy`` atomically (no pickle), creating its folder."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with atomic_open(path, "wb") as fh:
        np.save(fh, np.ascontiguousarray(array, dtype=np.float32), allow_pickle=False)


def load_features(path):
    """Load one cached feature array (``allow_pickle=False``)."""
    return np.load(path, allow_pickle=False)


def _cached_frames(path, num_mel_bins):
    """Frame count of a valid cache entry, or None when absent or unusable (then recompute)."""
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError):
        return None
    if arr.ndim != 2 or arr.shape[1] != num_mel_bins or arr.dtype != np.float32:
        return None
    return int(arr.shape[0])


def features_of_file(audio_path, cache_dir, options, sample_rate,
                     max_seconds=MAX_CLIP_SECONDS):
    """Compute or reuse one clip's features: ("ok", path, frames, reused) or ("bad", reason).

    Runs in the worker processes; returns plain tuples (cheap to send back) and turns every
    problem with the audio into a "bad" result rather than an exception.
    """
    try:
        data = read_bytes(audio_path, max_seconds)
        key = cache_key(hashlib.sha256(data).hexdigest(), options, sample_rate)
        out = cache_path(cache_dir, key)
        frames = _cached_frames(out, options.num_mel_bins)
        if frames is not None:
            return ("ok", out, frames, True)
        length = options.frame_sizes(sample_rate)[0] if options.snip_edges else 1
        x = load_clip(audio_path, sample_rate, min_samples=length, data=data,
                      max_seconds=max_seconds)
        rng = np.random.default_rng(int(key[:16], 16)) if options.dither > 0 else None
        feats = lfbe(x, sample_rate, rng=rng, options=options)
    except (DataError, InputError) as exc:
        return ("bad", str(exc))
    save_features(out, feats)
    return ("ok", out, int(feats.shape[0]), False)


def _work(args):
    return features_of_file(*args)


def extract_features(clips, audio_root, out_dir, options=None, *, sample_rate=SAMPLE_RATE,
                     jobs=0, strict=False, progress=True, manifest_name="manifest",
                     max_seconds=MAX_CLIP_SECONDS):
    """Features for every clip of a manifest; writes OUT (see the module docstring).

    clips: list of ``qdaed.data.manifest.Clip`` (from ``read_manifest``).
    max_seconds: longest clip accepted (from its header; longer ones are skipped as bad).
    jobs: worker processes (0: one per core, as every ``--jobs`` of qdaed; 1: in this
    process).
    Returns a :class:`StoreReport`.
    """
    options = options or LfbeOptions()
    sample_rate = check_int("sample_rate", sample_rate, lo=1)
    jobs = check_int("jobs", jobs, lo=0) or (os.cpu_count() or 1)
    # catch impossible option combinations once, here, rather than once per clip
    _, _, nfft = options.frame_sizes(sample_rate)
    mel_filterbank(sample_rate, nfft, options.num_mel_bins, options.low_freq, options.high_freq,
                   options.mel_scale, options.mel_norm)
    if not clips:
        raise DataError(f"{manifest_name}: the manifest lists no clips")

    out_dir = os.fspath(out_dir)
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise DataError(f"{out_dir}: the feature folder exists and is not a directory")
    cache_dir = os.path.join(out_dir, "cache")
    os.makedirs(cache_dir, exist_ok=True)
    atomic_write_text(os.path.join(out_dir, "options.json"),
                      json.dumps(options_document(options, sample_rate), indent=2,
                                 sort_keys=True) + "\n")
    paths = [resolve_audio(c, audio_root) for c in clips]
    tasks = [(p, cache_dir, options, sample_rate, max_seconds) for p in paths]

    bar = tqdm(total=len(tasks), desc="features", unit="clip", file=sys.stderr,
               disable=not progress, dynamic_ncols=True)
    results = []
    try:
        if jobs == 1 or len(tasks) == 1:
            for t in tasks:
                results.append(_work(t))
                bar.update()
        else:
            chunk = max(1, min(32, len(tasks) // (4 * jobs)))
            with concurrent.futures.ProcessPoolExecutor(max_workers=jobs) as pool:
                for r in pool.map(_work, tasks, chunksize=chunk):
                    results.append(r)
                    bar.update()
    finally:
        bar.close()

    items, bad, computed, reused = [], [], 0, 0
    for clip, path, r in zip(clips, paths, results):
        if r[0] == "ok":
            items.append((clip, r[1], r[2]))
            reused += r[3]
            computed += not r[3]
        else:
            reason = r[1]
            if not clip.path and "missing" in reason:
                reason += (f" (also tried {clip.ytid}.wav|flac|ogg and Y{clip.ytid}.*; see "
                           "qdaed.data.manifest for the naming convention)")
            bad.append((clip, path, reason))
    report = StoreReport(items, bad, computed, reused)
    _write_index(out_dir, items)
    _write_bad_report(out_dir, bad)

    if strict and bad:
        listing = "\n".join(f"  line {c.line}: {reason}" for c, _, reason in bad)
        raise DataError(f"{manifest_name}: {len(bad)} of {len(clips)} clip(s) unusable "
                        f"(--strict):\n{listing}")
    if not items:
        first = "\n".join(f"  line {c.line}: {reason}" for c, _, reason in bad[:10])
        more = f"\n  … and {len(bad) - 10} more" if len(bad) > 10 else ""
        raise DataError(f"{manifest_name}: none of the {len(clips)} clip(s) is usable "
                        f"(report: {os.path.join(out_dir, 'bad_audio.csv')}):\n{first}{more}")
    return report


def _clip_columns(clip: Clip):
    return {"path": clip.path or "", "ytid": clip.ytid or "",
            "start_seconds": "" if clip.start_seconds is None else f"{clip.start_seconds:.3f}",
            "labels": ";".join(clip.labels), "split": clip.split or "",
            "manifest_line": clip.line}


def _write_index(out_dir, items):
    rows = [{**_clip_columns(c), "features": os.path.relpath(p, out_dir), "frames": n}
            for c, p, n in items]
    write_manifest(os.path.join(out_dir, "features.csv"), rows,
                   ("path", "ytid", "start_seconds", "labels", "split", "features", "frames",
                    "manifest_line"))


def _write_bad_report(out_dir, bad):
    rows = [{**_clip_columns(c), "audio_file": p, "reason": reason} for c, p, reason in bad]
    write_manifest(os.path.join(out_dir, "bad_audio.csv"), rows,
                   ("manifest_line", "path", "ytid", "start_seconds", "audio_file", "reason"))
