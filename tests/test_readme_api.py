"""The README's "Python API" example, run as written (model and recording paths replaced)."""

import re
from pathlib import Path

import numpy as np
import soundfile as sf

from tests.helpers.detectors import student_detector

README = Path(__file__).resolve().parent.parent / "README.md"


def test_python_api_example_runs(tmp_path, capsys):
    text = README.read_text()
    section = text[text.index("## Python API"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    det = student_detector(frames=100)
    model, wav = tmp_path / "m.safetensors", tmp_path / "recording.wav"
    det.save(model)
    sf.write(wav, np.random.default_rng(0).normal(scale=0.1, size=(22050 * 4, 2)), 22050,
             subtype="PCM_16")
    code = code.replace("runs/demo/models/seed0/qd-4bit.safetensors", str(model))
    code = code.replace('"recording.wav"', repr(str(wav)))
    env = {}
    exec(compile(code, "README.md", "exec"), env)
    out = capsys.readouterr().out
    assert "dog" in out
    assert env["scores"].shape == (3,) and env["frame_scores"].shape[1] == 3
    assert env["times"].shape == (env["window_scores"].shape[0], 2)
    # the scores equal what `qdaed detect` prints for the same file
    from qdaed.detection import detect_file
    from qdaed.streaming import Bounds

    got = detect_file(env["det"], wav, None, Bounds())["scores"]
    assert list(got.values()) == env["scores"].tolist()


def test_inference_does_not_import_training():
    import subprocess
    import sys

    code = ("import sys, numpy as np\nimport qdaed\nfrom qdaed.detector import Detector\n"
            "import qdaed.streaming, qdaed.events, qdaed.eventmetrics, qdaed.detection,"
            " qdaed.commands.detect\n"
            "print(sorted(m for m in sys.modules if m.startswith('qdaed.train')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"
