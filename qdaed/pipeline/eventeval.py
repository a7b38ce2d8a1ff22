"""Event metrics of every model of a pipeline run, on long synthetic recordings.

The pipeline's test clips have the training length, so each is exactly one window: no
sliding, no event boundaries to find. For segment- and event-based metrics the run also
synthesises ``recordings`` longer recordings (``length`` × the clip length each, default
10 × 3 s = 30 s for the demo) from the run's corpus version with a corpus seed of its own
(``synth_seed + 1``, so no recording repeats a training clip), whose event onsets and
durations are the truth. Each model scans them as ``qdaed detect --events`` does (default
hop and event options) and :mod:`qdaed.eventmetrics` scores the events: segment-based F1
(1 s) and event-based F1 (collar 0.2 s, offset 50 %), overall (micro) and macro.

Manifest runs (real recordings) have no onsets in their clips; for them the run builds
``recordings`` real soundscapes of 30–60 s from the TEST split's clips only
(:mod:`qdaed.data.soundscapes`: the test negatives end to end as background, test positives
placed into it at known samples; ``length`` does not apply), with the equal-length control
applied to each clip as in training, and writes them to ``OUT/soundscapes/`` (float WAV files,
``annotations.tsv`` in sed_eval's ``filename onset offset event_label`` format, and
``soundscapes.json``: the options and, per file, the background clips and each event's source
clip, samples, gain and level) so that any tool can score them again.

Configuration: the run's :class:`~qdaed.pipeline.config.EventEvalConfig` (``event_eval``:
``{"recordings": 10, "length": 10}``; ``{"recordings": 0}`` switches it off).
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import importlib.util
import json
import os
import sys
import types

import numpy as np
import soundfile as sf

from qdaed.data.audio import load_clip
from qdaed.data.manifest import resolve_audio
from qdaed.data.rates import SAMPLE_RATE
from qdaed.data.soundscapes import SoundscapeOptions, build, sed_eval_rows
from qdaed.data.synth import corpus_config, iter_corpus
from qdaed.errors import DataError
from qdaed.evaluation import evaluate_events
from qdaed.features.fbank import lfbe
from qdaed.io.atomic import atomic_open, atomic_write_text
from qdaed.streaming import scan_features


def recordings(data, event_eval, classes, feature_options):
    """[(raw LFBE (T, F), samples, reference events)] of the run's event recordings, or []
    (manifest data, or switched off). data: DataConfig; event_eval: EventEvalConfig."""
    if data.source != "synth" or not event_eval.recordings:
        return []
    noise = data.label_noise if data.corpus == "v2" else None
    config = corpus_config(data.corpus, data.clip_seconds * event_eval.length, SAMPLE_RATE,
                           label_noise=noise)
    classes = tuple(classes)
    out = []
    for clip in iter_corpus(event_eval.recordings, data.synth_seed + 1, config):
        truth = [{"class": e.label, "onset": e.onset, "offset": round(e.onset + e.duration, 4)}
                 for e in clip.events if e.label in classes]
        out.append((lfbe(clip.waveform, SAMPLE_RATE, **feature_options), clip.waveform.size,
                    truth))
    return out


def soundscape_options(data, event_eval):
    """The soundscapes of a manifest run: ``recordings`` of them, seeded from the run's data
    seed (``synth_seed + 2``)."""
    return SoundscapeOptions(count=event_eval.recordings, seed=data.synth_seed + 2)


def manifest_recordings(data, event_eval, classes, feature_options, clips, out_dir):
    """[(raw LFBE (T, F), samples, reference events)] of real soundscapes built from the test
    split's ``clips`` (the manifest's ``Clip`` rows), written to ``out_dir``; [] when switched
    off."""
    if data.source != "manifest" or not event_eval.recordings:
        return []
    negatives, positives = [], []
    for clip in clips:
        x = load_clip(resolve_audio(clip, data.audio_root), SAMPLE_RATE)
        if data.equal_seconds is not None:           # the equal-length control, as in training
            x = np.resize(x, int(round(data.equal_seconds * SAMPLE_RATE)))
        if clip.labels:
            positives.append((clip.name, x, tuple(c for c in classes if c in clip.labels)))
        else:
            negatives.append((clip.name, x))
    try:
        scapes = build(negatives, positives, soundscape_options(data, event_eval))
    except DataError as exc:
        raise DataError(f"event metrics on the test split: {exc}") from None
    os.makedirs(out_dir, exist_ok=True)
    rows, out = ["filename\tonset\toffset\tevent_label"], []
    for i, s in enumerate(scapes):
        name = f"soundscape_{i:03d}.wav"
        with atomic_open(os.path.join(out_dir, name), "wb") as fh:
            sf.write(fh, s.waveform, SAMPLE_RATE, subtype="FLOAT", format="WAV")
        rows += sed_eval_rows(name, s)
        truth = [{"class": e["class"], "onset": e["onset"], "offset": e["offset"]}
                 for e in s.events]
        out.append((lfbe(s.waveform, SAMPLE_RATE, **feature_options), s.waveform.size, truth))
    atomic_write_text(os.path.join(out_dir, "annotations.tsv"), "\n".join(rows) + "\n")
    sources = [{"file": f"soundscape_{i:03d}.wav", "samples": int(s.waveform.size),
                "background": s.background,
                "events": [{k: e[k] for k in ("class", "onset_sample", "offset_sample", "source",
                                               "gain", "ebr_db")} for e in s.events]}
               for i, s in enumerate(scapes)]
    atomic_write_text(os.path.join(out_dir, "soundscapes.json"), json.dumps(
        {"options": dataclasses.asdict(soundscape_options(data, event_eval)),
         "sample_rate": SAMPLE_RATE, "soundscapes": sources}, indent=1) + "\n")
    return out


def model_event_metrics(det, recs):
    """Event metrics of one detector on the recordings: sed_eval's segment- and event-based F1
    (:mod:`qdaed.eventmetrics`) and, where ``sed_scores_eval`` is installed, PSDS."""
    result = evaluate_events(det, [
        (i, truth, functools.partial(scan_features, det, [feats], samples=samples))
        for i, (feats, samples, truth) in enumerate(recs)], skip_unreadable=False)
    out = result.metrics
    scores = psds(result.tables, [(t, d) for t, _, d in result.files], det.classes)
    if scores is not None:
        out.update(scores)
    return out


# PSDS scenarios of DCASE 2021-2023 task 4 (Bilen et al. 2020): detection- and ground-truth
# intersection criteria, cross-trigger criterion, its weight, the instability weight, and
# the largest effective false-positive rate per hour
PSDS_SCENARIOS = {
    "psds1": {"dtc_threshold": 0.7, "gtc_threshold": 0.7, "cttc_threshold": None,
              "alpha_ct": 0.0, "alpha_st": 1.0, "max_efpr": 100.0},
    "psds2": {"dtc_threshold": 0.1, "gtc_threshold": 0.1, "cttc_threshold": 0.3,
              "alpha_ct": 0.5, "alpha_st": 1.0, "max_efpr": 100.0},
}


def sed_scores_eval_module():
    """``sed_scores_eval`` (optional extra ``sed``), or None when it is not installed. Its
    dependency sed_eval imports ``pkg_resources``, which setuptools >= 81 no longer ships and
    which it uses only for a version lookup: an empty stand-in module is registered first when
    the real one is absent."""
    if "pkg_resources" not in sys.modules and importlib.util.find_spec("pkg_resources") is None:
        sys.modules["pkg_resources"] = types.ModuleType("pkg_resources")
    try:
        return importlib.import_module("sed_scores_eval")
    except ImportError:
        return None


def psds(tables, files, classes):
    """PSDS1 and PSDS2 of window scores, computed by sed_scores_eval (None without it).

    tables: per recording, (edges (N + 1,), scores (N, C)): window k scores the stretch
    [edges_k, edges_k+1) it stands for (:func:`qdaed.events.window_edges`), which is what
    ``qdaed detect --events`` thresholds; files: per recording, (reference events, duration).
    """
    sse = sed_scores_eval_module()
    if sse is None:
        return None
    from sed_scores_eval.base_modules.scores import create_score_dataframe  # here: optional

    scores, truth, durations = {}, {}, {}
    for i, ((edges, s), (ref, dur)) in enumerate(zip(tables, files)):
        key = f"r{i:04d}"
        scores[key] = create_score_dataframe(np.asarray(s, np.float64), np.asarray(edges),
                                             list(classes))
        truth[key] = [(e["onset"], e["offset"], e["class"]) for e in ref]
        durations[key] = float(dur)
    out = {}
    for name, kw in PSDS_SCENARIOS.items():
        value = sse.intersection_based.psds(scores, truth, durations, unit_of_time="hour", **kw)[0]
        out[name] = float(value)
    return out


def describe(data, event_eval, recs):
    if data.source == "manifest":
        opts = soundscape_options(data, event_eval)
        return {"recordings": len(recs), "kind": "real soundscapes from the test split",
                "seconds_each": [opts.min_seconds, opts.max_seconds],
                "seconds_total": round(sum(r[1] for r in recs) / SAMPLE_RATE, 3),
                "soundscape_seed": opts.seed, "events_each": [opts.min_events, opts.max_events],
                "event_to_background_db": list(opts.ebr_db), "min_gap": opts.min_gap,
                "reference_events": int(sum(len(t) for _, _, t in recs)),
                "hop": "half a window", "median": 3, "segment_resolution": 1.0, "collar": 0.2,
                "offset_percentage": 0.5, "files": "soundscapes/ (annotations.tsv)",
                "labels": "the test clips' weak labels; an event spans its whole clip"}
    return {"recordings": len(recs), "seconds_each": data.clip_seconds * event_eval.length,
            "corpus": data.corpus, "corpus_seed": data.synth_seed + 1,
            "reference_events": int(sum(len(t) for _, _, t in recs)),
            "hop": "half a window", "median": 3, "segment_resolution": 1.0, "collar": 0.2,
            "offset_percentage": 0.5,
            "labels": "clean truth (the generator's events)"}


__all__ = ["recordings", "manifest_recordings", "model_event_metrics", "describe", "psds"]
