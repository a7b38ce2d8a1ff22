"""``qdaed evaluate MODEL --manifest CSV --audio-root DIR``: metrics of a model file on a
manifest's clips: AUC, EER, AP, and precision/recall/F1 at the model's stored thresholds;
with ``--events``, segment- and event-based F1 (sed_eval's definitions) against the
manifest's event onsets and durations.

``--reference-tsv TSV``: the reference events from a sed_eval event list (DCASE's annotation
format, ``qdaed.io.sedformats``) instead of the manifest's ``events`` column; a row's filename
names a clip by its manifest path, or by its file name when that is unique among the clips.
Without ``--manifest`` the clips are the event list's files under ``--audio-root``, each
labelled with the classes of its events (events of other labels are left out).

Exit status: 0 every clip evaluated; 3 some clips could not be read (listed; the metrics are
over the others); 2 a usage, manifest or model-file error, or no clip readable.
"""

from __future__ import annotations

import json
import sys
import tempfile

import numpy as np

from qdaed.commands.options import EVENT_OPTIONS, check_event_options, common
from qdaed.data.manifest import read_manifest, resolve_audio, resolve_manifest
from qdaed.detector import Detector
from qdaed.errors import DataError, InputError
from qdaed.evaluation import evaluate_events, match_reference, reference_clips
from qdaed.eventmetrics import manifest_events
from qdaed.events import EventOptions
from qdaed.features.fbank import LfbeOptions
from qdaed.features.store import extract_features, load_features
from qdaed.io.paths import check_output_dir
from qdaed.io.sedformats import read_events_tsv
from qdaed.io.strictjson import nan_to_none
from qdaed.metrics import compute_metrics, decision_metrics
from qdaed.streaming import hop_frames, scan_file
from qdaed.validate import check_int

EXIT_SOME_FAILED = 3


def register(sub):
    p = sub.add_parser("evaluate", help="metrics of a model file on a manifest's clips (clip "
                                        "and event metrics)", parents=[common("jobs", "expect-sha256", *EVENT_OPTIONS)])
    p.add_argument("model", help="model file (qdaed pipeline, qdaed import)")
    p.add_argument("--manifest", help="CSV manifest (path or ytid, labels): a path, or a "
                                      "shipped manifest's name (audioset, real_audio, "
                                      "real_corpus, real_corpus_transfer); needed unless "
                                      "--reference-tsv is given")
    p.add_argument("--reference-tsv", metavar="TSV",
                   help="reference events as sed_eval's event list (filename, onset, offset, "
                        "event_label, tab-separated; what detect --events-tsv writes): implies "
                        "--events; with --manifest they replace its events column, without it "
                        "the clips are the list's files under --audio-root, labelled with the "
                        "classes of their events")
    p.add_argument("--audio-root", required=True, help="folder the manifest's paths are in")
    p.add_argument("--split", help="evaluate only this split of the manifest (e.g. test)")
    p.add_argument("--features-dir", help="feature cache folder (default: a temporary one)")
    p.add_argument("--events", action="store_true",
                   help="also detect events over each whole file (qdaed detect --events) and "
                        "score them against the manifest's 'events' column: segment-based F1 "
                        "(1 s segments) and event-based F1 (collar 0.2 s, offset 50%%)")
    p.add_argument("--json", action="store_true", help="print the metrics as one JSON object")
    p.set_defaults(func=_run)


def _run(args):
    jobs = check_int("--jobs", args.jobs, lo=0)
    if args.manifest is None and args.reference_tsv is None:
        raise InputError("give --manifest, --reference-tsv, or both")
    if args.manifest is not None:
        args.manifest = resolve_manifest(args.manifest)
    if args.reference_tsv is not None:
        args.events = True
        reference = read_events_tsv(args.reference_tsv)
    check_event_options(args)
    if args.features_dir is not None:
        check_output_dir("--features-dir", args.features_dir, inputs=[args.audio_root])
    det = Detector.load(args.model, expect_sha256=args.expect_sha256)
    if args.manifest is not None:
        clips = read_manifest(args.manifest, det.classes)
    else:
        clips = reference_clips(reference, det.classes)
    source = args.manifest or args.reference_tsv
    if args.split:
        clips = [c for c in clips if c.split == args.split]
        if not clips:
            if args.manifest is None:
                raise InputError("--split: the clips of --reference-tsv have no split; give "
                                 "a --manifest with a split column")
            raise DataError(f"{args.manifest}: no clip in split {args.split!r}")
    truth = None
    if args.reference_tsv is not None:
        truth = match_reference(reference, clips, det.classes, args.reference_tsv)
    elif args.events:
        truth = manifest_events(args.manifest, det.classes)
    with tempfile.TemporaryDirectory() as tmp:
        report = extract_features(clips, args.audio_root, args.features_dir or tmp,
                                  LfbeOptions(**det.features), jobs=jobs,
                                  manifest_name=source)
        feats = [load_features(p) for _, p, _ in report.items]
    for clip, _, reason in report.bad:
        print(f"skipped {clip.name}: {reason}", file=sys.stderr)
    if not feats:
        raise DataError(f"{source}: none of the {len(clips)} clip(s) could be read")
    labels = np.array([c.clean_targets(det.classes) for c, _, _ in report.items],
                      dtype=np.float64)
    scores = det.scores(det.prepare(feats))
    m = compute_metrics(scores, labels, list(det.classes))
    m.update(decision_metrics(scores, labels, det.thresholds, list(det.classes)))
    result = {"model": args.model, "manifest": args.manifest, "split": args.split,
              "clips": len(feats), "skipped": len(report.bad), **m}
    if args.reference_tsv is not None:
        result["reference"] = args.reference_tsv
    if args.events:
        hop = hop_frames(det, args.hop)
        ev = evaluate_events(det, [
            (c.name, truth.get(c.path, []),
             lambda c=c: scan_file(det, resolve_audio(c, args.audio_root), hop=hop))
            for c, _, _ in report.items],
            EventOptions(args.median, args.min_gap, args.min_duration))
        for name, reason in ev.unreadable:
            print(f"skipped {name} (events): {reason}", file=sys.stderr)
        result["events"] = ev.metrics
    if args.json:
        print(json.dumps(nan_to_none(result)))
    else:
        print(f"{len(feats)} clips evaluated ({len(report.bad)} skipped); labels: the "
              "manifest's clean_labels where given, else labels")
        print(f"{'class':<10} {'AUC':>7} {'EER':>7} {'AP':>7} {'P':>7} {'R':>7} {'F1':>7}")
        for c in [*det.classes, "mean"]:
            print(f"{c:<10} " + " ".join(f"{m[k][c]:7.4f}" for k in
                                         ("auc", "eer", "ap", "precision", "recall", "f1")))
        if args.events:
            print("(P, R, F1 at the thresholds stored in the model)")
            for kind in ("segment", "event"):
                o = result["events"][kind]["overall"]
                fmt = (lambda v: "n/a" if v is None else f"{v:.4f}")
                print(f"{kind}-based: F1 {fmt(o['f1'])}  P {fmt(o['precision'])}  "
                      f"R {fmt(o['recall'])}  (TP {o['tp']}, FP {o['fp']}, FN {o['fn']}); "
                      f"macro F1 {fmt(result['events'][kind]['macro_f1'])}")
    return EXIT_SOME_FAILED if report.bad else 0
