"""``qdaed export MODEL --tflite OUT.tflite``: from the integer student stored in the model
file, or calibrated on a manifest's clips; the file run in TFLite Micro's interpreter gives
the integer path's scores exactly; bad input is a one-line qdaed error, exit 2, nothing
written."""

import os

import numpy as np
import pytest
import soundfile as sf

from qdaed.cli import main
from qdaed.detector import Detector
from qdaed.features.fbank import LfbeOptions, lfbe
from qdaed.formats.tflite_export import export_tflite
from qdaed.integer import calibrate
from tests.integer.cases import run_tflm
from tests.io.detectors import resnet, student

runtime = pytest.importorskip("tflite_micro.python.tflite_micro.runtime")


def _corpus(root, n=5, seconds=0.6):
    """n noise clips of rising loudness; the first n − 1 in the train split."""
    rng = np.random.default_rng(4)
    lines = ["path,labels,split"]
    for k in range(n):
        wav = (0.02 * (k + 1) * rng.standard_normal(int(16000 * seconds))).astype(np.float32)
        sf.write(root / f"c{k}.wav", wav, 16000, subtype="FLOAT")
        lines.append(f"c{k}.wav,dog,{'train' if k < n - 1 else 'test'}")
    (root / "manifest.csv").write_text("\n".join(lines) + "\n")
    return root / "manifest.csv"


def _features(det, root, names):
    """The clips prepared as the detector's inputs, from the front end directly."""
    opts = LfbeOptions(**det.features)
    feats = [lfbe(sf.read(root / n, dtype="float64")[0], 16000, **opts.to_dict())
             for n in names]
    return det.prepare(feats)


@pytest.fixture()
def model(tmp_path):
    det = student(hidden=6, layers=2, bins=16, frames=30)
    det.save(tmp_path / "m.safetensors")
    return det, tmp_path / "m.safetensors"


def test_export_calibrates_on_the_first_train_clips_and_the_tflite_runs_bit_exact_in_tflm(
        tmp_path, model, capsys):
    det, path = model
    manifest = _corpus(tmp_path)
    out, calibrated = tmp_path / "s.tflite", tmp_path / "c.safetensors"
    assert main(["export", str(path), "--tflite", str(out), "--calibration", str(manifest),
                 "--audio-root", str(tmp_path), "--clips", "3", "--calibrated-model",
                 str(calibrated)]) == 0
    assert "calibrated the integer student on 3 clip(s)" in capsys.readouterr().out
    stored = Detector.load(calibrated).integer
    # the first three train clips (not the test clip, not the fourth)
    expected = calibrate(det, _features(det, tmp_path, ["c0.wav", "c1.wav", "c2.wav"]))
    assert stored.input == expected.input and stored.fc.output == expected.fc.output
    assert [la.cell_power for la in stored.layers] == [la.cell_power for la in expected.layers]
    x = stored.quantize_input(_features(det, tmp_path, ["c4.wav"]))
    (scores,) = run_tflm(runtime, out.read_bytes(), [x])
    assert scores.dtype == np.int8
    assert np.array_equal(scores, stored.forward(x).scores)


def test_export_without_calibration_writes_the_stored_integer_student(tmp_path, model):
    det, _ = model
    rng = np.random.default_rng(0)
    det.integer = calibrate(det, rng.standard_normal((3, 30, 16)).astype(np.float32))
    det.save(tmp_path / "int.safetensors")
    out = tmp_path / "s.tflite"
    assert main(["export", str(tmp_path / "int.safetensors"), "--tflite", str(out),
                 "--batch", "2"]) == 0
    assert out.read_bytes() == export_tflite(det.integer, 30, 2)
    x = rng.integers(-128, 128, (2, 30, 16)).astype(np.int8)
    (scores,) = run_tflm(runtime, out.read_bytes(), [x])
    assert np.array_equal(scores, det.integer.forward(x).scores)


def _refused(capsys, tmp_path, argv, message, before):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert sorted(os.listdir(tmp_path)) == before


def test_export_tflite_of_a_teacher_is_refused_and_writes_nothing(tmp_path, capsys):
    resnet().save(tmp_path / "t.safetensors")
    manifest = _corpus(tmp_path, 2)
    before = sorted(os.listdir(tmp_path))
    _refused(capsys, tmp_path, ["export", str(tmp_path / "t.safetensors"), "--tflite",
                                str(tmp_path / "t.tflite"), "--calibration", str(manifest),
                                "--audio-root", str(tmp_path)],
             "holds a ResNet (a teacher); only a StudentLSTM", before)


def test_export_of_a_last_pooling_student_is_refused(tmp_path, capsys):
    student(hidden=4, bins=16, pooling="last").save(tmp_path / "m.safetensors")
    manifest = _corpus(tmp_path, 2)
    before = sorted(os.listdir(tmp_path))
    _refused(capsys, tmp_path, ["export", str(tmp_path / "m.safetensors"), "--tflite",
                                str(tmp_path / "t.tflite"), "--calibration", str(manifest),
                                "--audio-root", str(tmp_path)], "needs mean pooling", before)


def test_export_tflite_of_a_model_without_integer_student_and_no_calibration_is_refused(
        tmp_path, model, capsys):
    _, path = model
    before = sorted(os.listdir(tmp_path))
    _refused(capsys, tmp_path, ["export", str(path), "--tflite", str(tmp_path / "t.tflite"),
                                "--torch", str(tmp_path / "t.safetensors")],
             "holds no integer student; calibrate one with --calibration", before)


def test_export_tflite_into_a_missing_folder_is_refused_before_any_work(tmp_path, model,
                                                                        capsys):
    _, path = model
    before = sorted(os.listdir(tmp_path))
    _refused(capsys, tmp_path, ["export", str(path), "--tflite",
                                str(tmp_path / "missing" / "t.tflite"), "--calibration",
                                str(tmp_path / "no-such-manifest.csv"), "--audio-root",
                                str(tmp_path)], "--tflite", before)


def test_export_of_ranges_the_int8_logistic_cannot_take_is_refused_and_writes_nothing(
        tmp_path, capsys):
    det = student(hidden=6, bins=16, frames=30)
    state = det.model.state_dict()
    state["fc.weight"] = np.full_like(state["fc.weight"], 3000.0)   # logits of ±1e4
    det.model.load_state_dict(state)
    det.save(tmp_path / "m.safetensors")
    manifest = _corpus(tmp_path, 3)
    before = sorted(os.listdir(tmp_path))
    _refused(capsys, tmp_path, ["export", str(tmp_path / "m.safetensors"), "--tflite",
                                str(tmp_path / "t.tflite"), "--calibrated-model",
                                str(tmp_path / "c.safetensors"), "--calibration",
                                str(manifest), "--audio-root", str(tmp_path)],
             "cannot be represented (integer.logits.scale", before)


def test_export_calibration_options_without_calibration_are_refused(tmp_path, model, capsys):
    _, path = model
    before = sorted(os.listdir(tmp_path))
    _refused(capsys, tmp_path, ["export", str(path), "--tflite", str(tmp_path / "t.tflite"),
                                "--audio-root", str(tmp_path)],
             "--audio-root: needs --calibration MANIFEST", before)
    _refused(capsys, tmp_path, ["export", str(path), "--tflite", str(tmp_path / "t.tflite"),
                                "--calibration", "x.csv"], "needs --audio-root DIR", before)
    _refused(capsys, tmp_path, ["export", str(path), "--tflite", str(tmp_path / "t.tflite"),
                                "--tflite", str(path)], "is an input of this command", before)
