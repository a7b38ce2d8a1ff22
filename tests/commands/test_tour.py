"""A scripted tour of every ``qdaed`` command, as a new user would take it: each command listed
by ``qdaed --help`` with ``--help``, with small real inputs (a synthetic corpus, a folder of
recordings holding a 96 kHz 6-channel file, an 8 kHz mono file and a file that is not audio,
tiny models) and with a bad input. Every step must end with the expected exit status (0
for work done, 2 for a user error; 3 for ``detect``/``evaluate`` when some files could not be
read) and no traceback on stderr. The commands that train or need a finished run
(``pipeline``, ``ablate``, ``diagnose``, ``integer-accuracy``) and ``gradcheck`` are
exercised by their own tests; here they get their help and a bad input (``pipeline``,
``diagnose`` and ``gradcheck`` also a small real run in the slow tour). A command added to
``qdaed --help`` without a step here fails the tour."""

import json
import os
import re

import pytest
import soundfile as sf

from qdaed.cli import main
from tests.io.detectors import resnet, student
from tests.strategies import rng_from


def _commands(capsys):
    """The command names ``qdaed --help`` lists."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    listing = text.split("positional arguments:")[1].split("options:")[0]
    return re.findall(r"^    (\S+)", listing, flags=re.M)


@pytest.fixture(scope="module")
def place(tmp_path_factory):
    d = tmp_path_factory.mktemp("tour")
    rng = rng_from(27)
    rec = d / "recordings"
    (rec / "field" / "day2").mkdir(parents=True)
    for name, seconds, rate, channels in (("field/a16k.wav", 2.0, 16000, 1),
                                          ("field/day2/six96k.wav", 1.2, 96000, 6),
                                          ("mono8k.flac", 1.5, 8000, 1)):
        x = 0.1 * rng.standard_normal((int(seconds * rate), channels))
        sf.write(rec / name, x, rate)
    (rec / "notes.txt").write_text("not audio")
    student(None, hidden=8, bins=64).save(d / "student.safetensors")
    resnet(18, width=4, bins=64).save(d / "teacher.safetensors")
    return d


class Tour:
    def __init__(self, place, capsys):
        self.place, self.capsys, self.log = place, capsys, []

    def __call__(self, expected, *argv):
        args = [str(a) for a in argv]
        self.capsys.readouterr()
        try:
            status = main(args)
        except SystemExit as exc:          # argparse: --help (0) and usage errors (2)
            status = exc.code
        out, err = self.capsys.readouterr()
        assert "Traceback" not in err, (args, err)
        assert status == expected, (args, status, err[-2000:])
        if "--help" not in args:
            self.log.append(args[0])
        return out, err


def test_tour_of_every_command(place, capsys):
    p = place
    tour = Tour(p, capsys)
    commands = _commands(capsys)
    assert len(commands) >= 13 and "detect" in commands
    for command in commands:
        tour(0, command, "--help")
    corpus = p / "corpus"
    tour(0, "synth", "--n", 12, "--duration", 1.0, "--out", corpus, "--no-progress")
    manifest = corpus / "manifest.csv"
    tour(2, "synth", "--n", 0, "--out", p / "nocorpus")
    tour(0, "features", manifest, "--audio-root", corpus, "--out", p / "feats",
         "--no-progress")
    tour(2, "features", p / "no_manifest.csv", "--audio-root", corpus, "--out", p / "f2")
    for model in ("student", "teacher"):
        m = p / f"{model}.safetensors"
        out, _ = tour(0, "detect", m, p / "recordings", "--json", "--no-progress")
        lines = [json.loads(line) for line in out.splitlines()]
        assert len(lines) == 3 and all("scores" in r for r in lines)
        assert any("6 channels" in r.get("note", "") for r in lines)
        assert any("upsampled from 8000 Hz" in r.get("note", "") for r in lines)
        tour(0, "detect", m, p / "recordings" / "mono8k.flac", "--events",
             "--events-tsv", p / f"{model}.tsv", "--scores-dir", p / f"{model}_scores")
        tour(3, "detect", m, p / "recordings", p / "recordings" / "notes.txt")
        tour(2, "detect", m, p / "nothing_here.wav")
        tour(0, "evaluate", m, "--manifest", manifest, "--audio-root", corpus)
        tour(2, "evaluate", m, "--manifest", manifest, "--audio-root", p / "nowhere")
        tour(0, "info", m)
        tour(0, "export", m, "--torch", p / f"{model}.torch")
        # without the onnx package (an optional extra) --onnx is a user error
        onnx = 0 if _has("onnx") else 2
        tour(onnx, "export", m, "--onnx", p / f"{model}.onnx")
        tour(onnx, "export", m, "--onnx", p / f"{model}.audio.onnx", "--with-frontend")
        tour(2, "export", m, "--with-frontend", "--torch", p / f"{model}.never")
        assert not (p / f"{model}.never").exists()
    tour(2, "info", p / "recordings" / "notes.txt")
    tour(0, "import", p / "student.torch", "--arch", "student", "--manifest", manifest,
         "--audio-root", corpus, "--out", p / "imported.safetensors", "--num-mel-bins", 64)
    tour(2, "import", p / "student.torch", "--arch", "resnet", "--manifest", manifest,
         "--audio-root", corpus, "--out", p / "imported2.safetensors")
    tour(0, "manifests", "path")
    tour(2, "manifests", "path", "no_such_manifest")
    tour(0, "vectors", "list")
    tour(0, "vectors", "export", p / "vectors", "--cases", "linear*")
    tour(2, "vectors", "check", p / "vectors", "--outputs", p / "no_outputs")
    tour(2, "diagnose", p / "recordings")
    tour(2, "ablate", "--out", p / "abl", "--preset", "no_such_preset")
    tour(2, "pipeline", "--out", p / "run", "--preset", "no_such_preset")
    tour(2, "gradcheck", "--repeats", 0)
    tour(2, "integer-accuracy", p / "recordings")          # not a pipeline run
    assert set(commands) - set(tour.log) == set()           # each command beyond its --help


def _has(module):
    try:
        __import__(module)
    except ImportError:
        return False
    return True


@pytest.mark.slow
def test_tour_of_the_training_commands(place, capsys):
    """pipeline on the tiny preset and gradcheck, run for real; diagnose on the run."""
    tour = Tour(place, capsys)
    tour(0, "pipeline", "--preset", "tiny", "--out", place / "run", "--quiet")
    tour(0, "diagnose", place / "run")
    tour(0, "gradcheck")
    models = sorted((place / "run" / "models").rglob("*.safetensors"))
    assert models
    tour(0, "detect", models[0], place / "recordings", "--json", "--no-progress")
