"""``qdaed export --onnx --with-frontend`` and ``examples/onnx_detect.py``: audio in, the
scores of ``qdaed detect`` out, with ONNX Runtime and without qdaed.

The example script runs as a subprocess (it imports onnxruntime, numpy, scipy and soundfile
only; a test checks that); its window and file scores are compared with qdaed's streaming
scan, which computes them with its own front end and networks, not with the graph."""

import json
import os
import sys

import numpy as np
import pytest

from qdaed.cli import main
from qdaed.detector import Detector
from qdaed.streaming import scan_file
from tests.helpers.examples import run_example, third_party_imports
from tests.io.detectors import student

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

TOL = 1e-5


@pytest.fixture(scope="module")
def exported(onnx_detector, tmp_path_factory):
    d = tmp_path_factory.mktemp("onnx")
    onnx_detector.save(d / "m.safetensors")
    assert main(["export", str(d / "m.safetensors"), "--onnx", str(d / "m.onnx"),
                 "--with-frontend"]) == 0
    return str(d / "m.safetensors"), str(d / "m.onnx")


def _driver(onnx_path, files, *options):
    return run_example("onnx_detect.py", onnx_path, files, *options)


def _qdaed_detect(capsys, model, files, *options):
    capsys.readouterr()
    status = main(["detect", model, *files, "--json", "--no-progress", *options])
    return status, [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_the_driver_prints_qdaed_detects_json_lines(exported, audio, capsys):
    model, onnx_path = exported
    files = list(audio.values())
    status, theirs = _driver(onnx_path, files, "--windows")
    qstatus, ours = _qdaed_detect(capsys, model, files)
    assert status == qstatus == 0
    det = Detector.load(model)
    for t, o, f in zip(theirs, ours, files, strict=True):
        assert {k: t[k] for k in o if k != "scores"} == {k: v for k, v in o.items()
                                                         if k != "scores"}
        np.testing.assert_allclose([t["scores"][c] for c in det.classes],
                                   [o["scores"][c] for c in det.classes], rtol=0, atol=TOL)
        sc = scan_file(det, f)          # what qdaed detect ran: its window scores and times
        np.testing.assert_allclose(t["window_scores"], sc.scores, rtol=0, atol=TOL)
        np.testing.assert_allclose(t["window_times"], sc.window_times(), rtol=0, atol=1e-9)
    assert "note" in theirs[-1] and "looped" in theirs[-1]["note"]          # short.wav
    assert "6 channels mixed down" in theirs[1]["note"]


def test_any_hop_carries_the_state_as_qdaed_does(exported, audio):
    model, onnx_path = exported
    det = Detector.load(model)
    # 0.7 s: longer than the 0.4 s window, the student's state runs through the gaps
    for hop in ("0.13", "0.7") if "hidden_size" in det.model.config else ("0.13",):
        status, (theirs,) = _driver(onnx_path, [audio["mono16k.wav"]], "--windows", "--hop",
                                    hop)
        assert status == 0
        sc = scan_file(det, audio["mono16k.wav"], hop=round(float(hop) / 0.01))
        np.testing.assert_allclose(theirs["window_scores"], sc.scores, rtol=0, atol=TOL)


def test_driver_reports_bad_files_like_qdaed_detect(audio, tmp_path):
    student().save(tmp_path / "m")
    onnx_path = str(tmp_path / "m.onnx")
    assert main(["export", str(tmp_path / "m"), "--onnx", onnx_path, "--with-frontend"]) == 0
    (tmp_path / "bad.wav").write_bytes(b"RIFF not audio")
    status, out = _driver(onnx_path, [str(tmp_path / "bad.wav"), audio["mono16k.wav"]])
    assert status == 3 and "error" in out[0] and "scores" in out[1]
    status, out = _driver(onnx_path, [str(tmp_path / "bad.wav")])
    assert status == 2


def test_the_driver_imports_no_qdaed():
    assert third_party_imports("onnx_detect.py") == {"numpy", "onnxruntime", "scipy",
                                                     "soundfile"}


def test_graph_inputs_outputs_and_metadata(tmp_path):
    import onnx

    student(None, hidden=12, layers=2).save(tmp_path / "m")
    assert main(["export", str(tmp_path / "m"), "--onnx", str(tmp_path / "m.onnx"),
                 "--with-frontend"]) == 0
    model = onnx.load(str(tmp_path / "m.onnx"))
    assert [i.name for i in model.graph.input] == ["samples", "h", "c", "advance"]
    assert [o.name for o in model.graph.output] == ["scores", "h_next", "c_next"]
    ops = {n.op_type for n in model.graph.node}
    assert {"Gather", "ReduceMean", "MatMul", "Log", "LSTM"} <= ops
    props = {p.key: p.value for p in model.metadata_props}
    assert (props["sample_rate"], props["frame_length"], props["frame_shift"],
            props["window_frames"], props["hop_frames"]) == ("16000", "400", "160", "40", "20")


def _bad_export(tmp_path, capsys, *argv, model=None):
    (model or student()).save(tmp_path / "m")
    capsys.readouterr()
    status = main(["export", str(tmp_path / "m"), *argv])
    err = capsys.readouterr().err
    assert status == 2 and "Traceback" not in err
    assert sorted(os.listdir(tmp_path)) == ["m"]          # nothing written
    return err


def test_with_frontend_needs_onnx(tmp_path, capsys):
    err = _bad_export(tmp_path, capsys, "--with-frontend", "--torch", str(tmp_path / "t"))
    assert "--with-frontend: needs --onnx" in err


def test_without_the_onnx_package_nothing_is_written(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)          # import onnx raises ImportError
    err = _bad_export(tmp_path, capsys, "--torch", str(tmp_path / "t"), "--onnx",
                      str(tmp_path / "o.onnx"), "--with-frontend")
    assert "needs the onnx package" in err


def test_centred_frames_are_refused(tmp_path, capsys):
    # (a model file's front end has no dither: load refuses it, so the graph never meets it)
    err = _bad_export(tmp_path, capsys, "--torch", str(tmp_path / "t"), "--onnx",
                      str(tmp_path / "o.onnx"), "--with-frontend",
                      model=student(features={"snip_edges": False}))
    assert "snip_edges" in err
