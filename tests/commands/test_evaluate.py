"""``qdaed evaluate --events --json`` on a synthetic corpus whose onsets are the truth."""

import json

import numpy as np

from qdaed.cli import main
from qdaed.data.synth import SynthConfig, write_corpus
from qdaed.detector import Detector
from qdaed.eventmetrics import event_metrics, manifest_events
from qdaed.features.fbank import lfbe
from tests.helpers.detectors import energy_detector


def test_evaluate_events_json(tmp_path, capsys):
    cfg = SynthConfig(duration=8.0, classes=("baby_cry",), event_count_probs=(0.2, 0.8),
                      distractor_count_probs=(1.0,), backgrounds=("pink",), snr_db=(30, 30))
    rows = write_corpus(tmp_path, 6, seed=3, config=cfg, validation_fraction=0.0,
                        test_fraction=0.0)
    import soundfile as sf

    wav, _ = sf.read(tmp_path / rows[0]["path"])
    det = energy_detector(np.percentile(lfbe(wav, 16000, num_mel_bins=32), 20, axis=0))
    det.thresholds = np.array([1.0, 0.5, 1.0])    # only baby_cry can fire
    det.save(tmp_path / "energy.safetensors")
    status = main(["evaluate", str(tmp_path / "energy.safetensors"), "--manifest",
                   str(tmp_path / "manifest.csv"), "--audio-root", str(tmp_path), "--jobs", "1",
                   "--events", "--hop", "0.01", "--median", "1", "--min-gap", "0.7", "--json"])
    assert status == 0
    res = json.loads(capsys.readouterr().out)
    assert res["clips"] == 6 and set(res) >= {"auc", "eer", "ap", "precision", "recall", "f1"}
    ev = res["events"]["event"]
    truth = manifest_events(tmp_path / "manifest.csv", det.classes)
    n_true = sum(len(v) for v in truth.values())
    assert n_true >= 3 and ev["overall"]["tp"] + ev["overall"]["fn"] == n_true
    assert ev["overall"]["f1"] > 0.8, ev["overall"]
    # the same numbers from the detector's events and the manifest's truth directly
    loaded = Detector.load(tmp_path / "energy.safetensors")
    files = []
    for r in rows:
        w, sr = sf.read(tmp_path / r["path"], dtype="float64")
        files.append((truth[r["path"]], loaded.events(w, sr, hop=0.01, median=1, min_gap=0.7),
                      len(w) / sr))
    assert event_metrics(files, det.classes) == res["events"]
