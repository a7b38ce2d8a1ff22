"""Event metrics of every model of a pipeline run, on long synthetic recordings.

The pipeline's test clips have the training length, so each is exactly one window: no
sliding, no event boundaries to find. For segment- and event-based metrics the run also
synthesises ``recordings`` longer recordings (``length`` × the clip length each, default
10 × 3 s = 30 s for the demo) from the run's corpus version with a corpus seed of its own
(``synth_seed + 1``, so no recording repeats a training clip), whose event onsets and
durations are the truth. Each model scans them as ``qdaed detect --events`` does (default
hop and event options) and :mod:`qdaed.eventmetrics` scores the events: segment-based F1
(1 s) and event-based F1 (collar 0.2 s, offset 50 %), overall (micro) and macro.

Configuration: the run's :class:`~qdaed.pipeline.config.EventEvalConfig` (``event_eval``:
``{"recordings": 10, "length": 10}``; ``{"recordings": 0}`` switches it off). Manifest runs
have no onsets: nothing is computed.
"""

from __future__ import annotations

from qdaed.eventmetrics import event_metrics
from qdaed.events import scan_events
from qdaed.features.fbank import lfbe
from qdaed.streaming import scan_features

SAMPLE_RATE = 16000


def recordings(data, event_eval, classes, feature_options):
    """[(raw LFBE (T, F), samples, reference events)] of the run's event recordings, or []
    (manifest data, or switched off). data: DataConfig; event_eval: EventEvalConfig."""
    from qdaed.data.synth import corpus_config, iter_corpus

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


def model_event_metrics(det, recs):
    """Event metrics of one detector on the recordings."""
    files = []
    for feats, samples, truth in recs:
        sc = scan_features(det, [feats], samples=samples)
        files.append((truth, scan_events(sc, det.thresholds, det.classes), samples / SAMPLE_RATE))
    return event_metrics(files, det.classes)


def describe(data, event_eval, recs):
    return {"recordings": len(recs), "seconds_each": data.clip_seconds * event_eval.length,
            "corpus": data.corpus, "corpus_seed": data.synth_seed + 1,
            "reference_events": int(sum(len(t) for _, _, t in recs)),
            "hop": "half a window", "median": 3, "segment_resolution": 1.0, "collar": 0.2,
            "offset_percentage": 0.5,
            "labels": "clean truth (the generator's events)"}


__all__ = ["recordings", "model_event_metrics", "describe"]
