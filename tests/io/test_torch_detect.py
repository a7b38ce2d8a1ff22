"""``examples/torch_detect.py``: a state_dict from ``qdaed export --torch`` and PyTorch give
``qdaed detect``'s JSON lines (window and file scores to 1e-5).

The example runs as a subprocess (torch, safetensors, numpy, scipy and soundfile; no qdaed:
a test checks its imports); qdaed's streaming scan gives the expected window scores."""

import json

import numpy as np

from tests.torch_ref import torch  # noqa: F401  (skips this module without torch)

from qdaed.cli import main  # noqa: E402
from qdaed.detector import Detector  # noqa: E402
from qdaed.streaming import scan_file  # noqa: E402
from tests.helpers.examples import run_example, third_party_imports  # noqa: E402

TOL = 1e-5


def _example(state, files, *options):
    return run_example("torch_detect.py", state, files, *options)


def test_the_example_prints_qdaed_detects_json_lines(torch_detector, audio, tmp_path, capsys):
    torch_detector.save(tmp_path / "m")
    assert main(["export", str(tmp_path / "m"), "--torch", str(tmp_path / "t.safetensors")]) == 0
    files = list(audio.values())
    status, theirs = _example(str(tmp_path / "t.safetensors"), files, "--windows")
    capsys.readouterr()
    assert main(["detect", str(tmp_path / "m"), *files, "--json", "--no-progress"]) == status == 0
    ours = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    det = Detector.load(tmp_path / "m")
    for t, o, f in zip(theirs, ours, files, strict=True):
        assert {k: t[k] for k in o if k != "scores"} == {k: v for k, v in o.items()
                                                         if k != "scores"}
        np.testing.assert_allclose([t["scores"][c] for c in det.classes],
                                   [o["scores"][c] for c in det.classes], rtol=0, atol=TOL)
        sc = scan_file(det, f)
        np.testing.assert_allclose(t["window_scores"], sc.scores, rtol=0, atol=TOL)
        np.testing.assert_allclose(t["window_times"], sc.window_times(), rtol=0, atol=1e-9)
    if "hidden_size" in det.model.config:          # a student: its state runs through gaps
        status, (theirs,) = _example(str(tmp_path / "t.safetensors"), [audio["mono16k.wav"]],
                                     "--windows", "--hop", "0.7")
        sc = scan_file(det, audio["mono16k.wav"], hop=70)
        np.testing.assert_allclose(theirs["window_scores"], sc.scores, rtol=0, atol=TOL)


def test_the_example_imports_no_qdaed():
    assert third_party_imports("torch_detect.py") == {"numpy", "safetensors", "scipy",
                                                      "soundfile", "torch"}
