"""A finished run's test split, rebuilt: the normalised features and labels its models were
scored on (a run stores its training and validation arrays, not its test features).

    x, y, names = run_test_split(run_dir, audio_root=None, manifest=None, jobs=1)

* Synthetic corpus: the test clips are the last ``split_fractions[2]`` of the ``n_clips``
  labelled clips of the run's corpus (``qdaed.pipeline.featuresets``); exactly those clips are
  generated again from the run's config (corpus, seed, clip length, label noise; every clip
  has its own seeds, so they are the same clips), with their clean labels (the truth the run's
  test metrics use).
* Manifest: the test clips are those the run's ``scores.csv`` lists, in its order (the order of
  the run's test split), looked up in the run's manifest (``--manifest`` overrides a manifest
  path that no longer exists; a manifest of the same file name shipped with qdaed is used when
  the recorded path is gone) and read from the run's audio root (or ``audio_root``); their
  LFBE is computed in a temporary folder, so the run is not written to. Labels: the
  manifest's clean labels where it has the column, else its labels, as in the run.

Every clip is cut or looped to the run's frame count (``arrays/meta.json``) and normalised
with the run's statistics (``arrays/norm_mean.npy``, ``norm_std.npy``). The rebuilt split is
checked against the run's own record: the clip names and labels must be those of
``scores.csv``, and the float model ``check_model`` (default ``distilled``) of the first seed
must give the scores ``scores.csv`` holds (within ``SCORE_TOLERANCE``): other audio, another
manifest or another qdaed feature code is a DataError, not a silently different test set.
"""

from __future__ import annotations

import csv
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

from qdaed.data.manifest import read_manifest, resolve_manifest, shipped_manifests
from qdaed.data.rates import SAMPLE_RATE
from qdaed.data.synth import LabelNoise
from qdaed.detector import Detector
from qdaed.errors import DataError, InputError
from qdaed.features.fbank import LfbeOptions, num_frames
from qdaed.features.prepare import Normalizer, fix_length
from qdaed.features.store import extract_features, load_features
from qdaed.pipeline.config import read_config
from qdaed.pipeline.featuresets import _CHUNK, _map_chunks, feature_options, synth_workers

SCORE_TOLERANCE = 1e-5


def _read_run(run_dir):
    run = Path(run_dir)
    for need in ("config.json", "scores.csv", "arrays/meta.json", "arrays/norm_mean.npy",
                 "arrays/norm_std.npy"):
        if not (run / need).is_file():
            raise InputError(f"{run}: not a finished qdaed pipeline run (no {need})")
    cfg = read_config(run / "config.json")
    status = json.loads((run / "config.json").read_text()).get("status")
    if status != "finished":
        raise InputError(f"{run}: the run is not finished (status {status!r})")
    meta = json.loads((run / "arrays" / "meta.json").read_text())
    return run, cfg, meta


def recorded_scores(run):
    """{(seed, model): (clip names in order, labels (N, C), scores (N, C))} of scores.csv."""
    rows = {}
    with open(Path(run) / "scores.csv", newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header != ["seed", "model", "clip", "class", "label", "score"]:
            raise DataError(f"{run}/scores.csv: unexpected header {header}")
        for seed, model, clip, _, label, score in reader:
            rows.setdefault((int(seed), model), []).append((clip, int(label), float(score)))
    out = {}
    for key, r in rows.items():
        names = list(dict.fromkeys(c for c, _, _ in r))
        n = len(names)
        if len(r) % n:
            raise DataError(f"{run}/scores.csv: rows of {key} are not clips x classes")
        C = len(r) // n
        out[key] = (names, np.array([v for _, v, _ in r], np.float64).reshape(n, C),
                    np.array([v for _, _, v in r], np.float64).reshape(n, C))
    return out


def _synthetic_test(cfg, meta, jobs):
    d = cfg.data
    n = d.n_clips
    n_test = int(round(d.split_fractions[2] * n))
    start = n - n_test
    opts = feature_options(d, cfg.features)
    frames = num_frames(int(round(d.clip_seconds * SAMPLE_RATE)), SAMPLE_RATE, opts)
    if frames != int(meta["frames"]):
        raise DataError(f"the run's config gives {frames} frames per clip, its arrays "
                        f"{meta['frames']}")
    noise = None if d.corpus != "v2" else LabelNoise.of(d.label_noise or LabelNoise()).to_dict()
    chunks = [(s0, min(_CHUNK, n - s0)) for s0 in range(start, n, _CHUNK)]
    args = [(d.corpus, d.synth_seed, d.clip_seconds, s0, m, opts.to_dict(), frames,
             tuple(cfg.classes), noise) for s0, m in chunks]
    feats, clean = [], []
    for f, _, t in _map_chunks(args, synth_workers(jobs, n_test, d.clip_seconds)):
        feats.append(f)
        clean.append(t)
    names = [f"synth_{d.synth_seed}_{i:06d}" for i in range(start, n)]
    return np.concatenate(feats), np.concatenate(clean).astype(np.float64), names


def _manifest_path(recorded, override):
    if override is not None:
        return resolve_manifest(override)
    if os.path.isfile(recorded):
        return recorded
    name = Path(recorded).stem
    shipped = shipped_manifests()
    if name in shipped:
        print(f"the run's manifest {recorded} is gone; using the shipped manifest {name} "
              f"({shipped[name]})", file=sys.stderr)
        return shipped[name]
    raise InputError(f"the run's manifest {recorded} is gone; give it with --manifest")


def _manifest_test(cfg, meta, names, manifest, audio_root, jobs):
    path = _manifest_path(cfg.data.manifest, manifest)
    root = audio_root if audio_root is not None else cfg.data.audio_root
    if root is None or not os.path.isdir(root):
        raise InputError(f"--audio-root: {root} is not a folder (the run's audio root; give "
                         f"the folder its manifest's paths are relative to)")
    rows = {c.name: c for c in read_manifest(path, cfg.classes)}
    missing = [n for n in names if n not in rows]
    if missing:
        raise DataError(f"{path}: {len(missing)} of the run's {len(names)} test clips are not "
                        f"in the manifest (first: {missing[0]})")
    clips = [rows[n] for n in names]
    opts = LfbeOptions(**meta["feature_options"])
    with tempfile.TemporaryDirectory() as tmp:
        report = extract_features(clips, root, tmp, opts, jobs=jobs, progress=False,
                                  manifest_name=path)
        if report.bad:
            clip, _, reason = report.bad[0]
            raise DataError(f"{len(report.bad)} of the {len(clips)} test clips cannot be read "
                            f"under {root} (first: {clip.name}: {reason})")
        feats = np.stack([fix_length(load_features(p), int(meta["frames"]))
                          for _, p, _ in report.items])
    clean = any(c.clean_labels is not None for c in clips)
    y = np.array([c.clean_targets(cfg.classes) if clean else c.targets(cfg.classes)
                  for c in clips], np.float64)
    return feats, y, names


def run_test_split(run_dir, *, audio_root=None, manifest=None, jobs=1, check_model="distilled"):
    """(x (N, frames, F) float32 normalised, y (N, C) float64, clip names) of a finished run's
    test split (module docstring)."""
    run, cfg, meta = _read_run(run_dir)
    if cfg.data.source != "manifest" and (audio_root is not None or manifest is not None):
        raise InputError("--audio-root, --manifest: the run uses the synthetic corpus, which "
                         "is generated again from its config")
    recorded = recorded_scores(run)
    seed = cfg.seed_list[0]
    if (seed, check_model) not in recorded:
        raise DataError(f"{run}/scores.csv: no scores of model {check_model!r}, seed {seed}")
    names, labels, scores = recorded[(seed, check_model)]
    if cfg.data.source == "manifest":
        feats, y, got = _manifest_test(cfg, meta, names, manifest, audio_root, jobs)
    else:
        feats, y, got = _synthetic_test(cfg, meta, jobs)
    if got != names or not np.array_equal(y, labels):
        raise DataError(f"{run}: the rebuilt test split differs from the run's (scores.csv "
                        f"lists {len(names)} clips; rebuilt {len(got)}, "
                        f"{'same' if got == names else 'other'} names, "
                        f"{'same' if np.array_equal(y, labels) else 'other'} labels)")
    norm = Normalizer(np.load(run / "arrays" / "norm_mean.npy", allow_pickle=False),
                      np.load(run / "arrays" / "norm_std.npy", allow_pickle=False))
    x = norm.apply(feats)
    det = Detector.load(run / "models" / f"seed{seed}" / f"{check_model}.safetensors")
    diff = float(np.max(np.abs(det.scores(x) - scores)))
    if diff > SCORE_TOLERANCE:
        raise DataError(f"{run}: the rebuilt test features do not reproduce the run's scores "
                        f"({check_model}, seed {seed}: a score differs by {diff:.3g}); other "
                        f"audio, manifest or feature code than the run's")
    return x, y, names


__all__ = ["run_test_split", "recorded_scores", "SCORE_TOLERANCE"]
