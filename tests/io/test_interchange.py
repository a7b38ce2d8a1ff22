"""Export to PyTorch and ONNX, import from PyTorch: checked against torch and ONNX Runtime.

The torch modules are built here from torch.nn (the constructions the README documents), the
ONNX graphs run in ONNX Runtime: neither is qdaed's code."""

import csv
import json
import struct

import numpy as np
import pytest
import soundfile as sf

from tests.torch_ref import torch  # noqa: E402  (skips this module without torch)

import safetensors.numpy  # noqa: E402
import safetensors.torch  # noqa: E402

from qdaed.cli import main  # noqa: E402
from qdaed.detector import Detector  # noqa: E402
from qdaed.features.fbank import lfbe  # noqa: E402
from qdaed.features.prepare import fix_length  # noqa: E402
from qdaed.models.predict import predict_logits  # noqa: E402
from tests.io.detectors import resnet, student  # noqa: E402
from bench.torch_resnet import TorchResNet  # noqa: E402
from tests.strategies import rng_from  # noqa: E402

pytestmark = pytest.mark.conformance


class TorchStudent(torch.nn.Module):
    """The construction the export's state_dict loads into (README, qdaed.formats.interchange)."""

    def __init__(self, input_size, hidden_size, num_layers, num_classes, pooling="mean"):
        super().__init__()
        self.lstm = torch.nn.LSTM(input_size, hidden_size, num_layers, batch_first=True)
        self.fc = torch.nn.Linear(hidden_size, num_classes)
        self.pooling = pooling

    def forward(self, x):
        y, _ = self.lstm(x)
        p = {"mean": lambda: y.mean(1), "last": lambda: y[:, -1],
             "max": lambda: y.amax(1)}[self.pooling]()
        return self.fc(p)


def torch_module(det):
    cfg = det.model.config
    if "hidden_size" in cfg:
        return TorchStudent(**cfg)
    return TorchResNet(cfg["depth"], cfg["num_classes"], cfg["in_channels"], cfg["width"])


DETECTORS = {
    "float student": lambda: student(None, hidden=12, layers=2),
    "4-bit student": lambda: student(4, hidden=12, layers=2, pooling="max"),
    "3-bit student, buckets, last": lambda: student(3, hidden=6, pooling="last", group=7),
    "ResNet-18 teacher": lambda: resnet(18, width=4),
    "ResNet-50 teacher": lambda: resnet(50, width=2),
}


def _inputs(det, n=4, seed=1):
    """Raw LFBE (N, frames, F) float32, as a caller would cut it."""
    bins = det.normalizer.mean.size
    rng = rng_from(seed)
    return np.stack([fix_length((3 * rng.standard_normal((t, bins)) - 5).astype(np.float32),
                                det.frames) for t in (det.frames, 17, 60, 33)[:n]])


@pytest.mark.parametrize("which", list(DETECTORS))
def test_torch_export_loads_strictly_and_gives_qdaeds_logits(tmp_path, which):
    det = DETECTORS[which]()
    det.save(tmp_path / "m")
    assert main(["export", str(tmp_path / "m"), "--torch", str(tmp_path / "t.safetensors")]) == 0
    state = safetensors.torch.load_file(str(tmp_path / "t.safetensors"))
    assert all(v.dtype == torch.float32 for v in state.values())
    module = torch_module(det)
    assert str(module.load_state_dict(state, strict=True)) == "<All keys matched successfully>"
    module.eval()
    x = det.prepare(list(_inputs(det)))
    with torch.no_grad():
        t = torch.from_numpy(x if "hidden_size" in det.model.config else x[:, None])
        theirs = module(t).numpy()
    ours = predict_logits(Detector.load(tmp_path / "m").model, x)
    np.testing.assert_allclose(theirs, ours, rtol=0, atol=1e-5)
    # the metadata carries what a state_dict cannot
    with open(tmp_path / "t.safetensors", "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        meta = json.loads(json.loads(f.read(n))["__metadata__"]["qdaed_export"])
    np.testing.assert_array_equal(np.array([float(v) for v in meta["normalizer_mean"]],
                                           np.float32), det.normalizer.mean)
    assert meta["classes"] == list(det.classes) and meta["frames"] == det.frames


@pytest.mark.parametrize("which", list(DETECTORS))
def test_onnx_export_scores_in_onnx_runtime_match_qdaed(tmp_path, which):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    import onnx as onnx_mod

    det = DETECTORS[which]()
    det.save(tmp_path / "m")
    assert main(["export", str(tmp_path / "m"), "--onnx", str(tmp_path / "m.onnx")]) == 0
    model = onnx_mod.load(str(tmp_path / "m.onnx"))
    ops = {n.op_type for n in model.graph.node}
    if "hidden_size" in det.model.config:
        assert "LSTM" in ops
    else:
        assert {"Conv", "BatchNormalization", "MaxPool", "GlobalAveragePool", "Gemm"} <= ops
    inits = {i.name: onnx_mod.numpy_helper.to_array(i) for i in model.graph.initializer}
    for name, q in Detector.load(tmp_path / "m").quantized.items():
        assert inits[f"{name}.codes"].dtype == np.uint8      # integer codes in the graph
        assert name not in inits                              # no float copy of the weights
    sess = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    raw = _inputs(det)
    (theirs,) = sess.run(["scores"], {"lfbe": raw})
    assert theirs.shape == (4, 3) and theirs.dtype == np.float32
    ours = Detector.load(tmp_path / "m").scores(det.prepare(list(raw)))
    np.testing.assert_allclose(theirs, ours, rtol=0, atol=1e-5)
    props = {p.key: p.value for p in model.metadata_props}
    assert json.loads(props["classes"]) == list(det.classes)


def test_export_needs_a_target_and_a_good_model(tmp_path, capsys):
    student().save(tmp_path / "m")
    assert main(["export", str(tmp_path / "m")]) == 2
    (tmp_path / "bad").write_bytes(b"x" * 20)
    assert main(["export", str(tmp_path / "bad"), "--torch", str(tmp_path / "t")]) == 2
    assert "Traceback" not in capsys.readouterr().err
    assert not (tmp_path / "t").exists()


# --------------------------------------------------------------------------- import


def _corpus(root, n=24, seconds=0.6, seed=0):
    """Noise clips with tones for some classes; manifest with train/validation/test splits."""
    rng = rng_from(seed)
    rows = []
    for i in range(n):
        labels = [c for c, f in zip(("dog", "baby_cry", "gunshot"), (300, 900, 2500))
                  if rng.random() < 0.5]
        t = np.arange(int(seconds * 16000)) / 16000
        wav = 0.05 * rng.standard_normal(t.size)
        for c, f in zip(("dog", "baby_cry", "gunshot"), (300, 900, 2500)):
            if c in labels:
                wav += 0.3 * np.sin(2 * np.pi * f * t)
        sf.write(root / f"c{i}.wav", wav.astype(np.float32), 16000, subtype="FLOAT")
        split = "train" if i < 12 else "validation" if i < 18 else "test"
        rows.append([f"c{i}.wav", ";".join(labels), split])
    # every class has positives and negatives in validation
    with open(root / "m.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "labels", "split"])
        w.writerows(rows)
    return root / "m.csv"


@pytest.mark.parametrize("arch", ["student", "resnet"])
def test_import_then_detect_gives_the_torch_networks_scores(tmp_path, capsys, arch):
    from qdaed.metrics import threshold_at_eer

    torch.manual_seed(0)
    if arch == "student":
        net = TorchStudent(32, 10, 2, 3)
        opts = ["--num-mel-bins", "32"]
    else:
        net = TorchResNet(18, 3, 1, 4)
        for m in net.modules():          # non-trivial running statistics
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
        opts = ["--num-mel-bins", "32", "--equal-seconds", "0.6"]
    net.eval()
    safetensors.torch.save_file({k: v.contiguous() for k, v in net.state_dict().items()},
                                str(tmp_path / "net.safetensors"))
    manifest = _corpus(tmp_path)
    assert main(["import", str(tmp_path / "net.safetensors"), "--arch", arch, "--manifest",
                 str(manifest), "--audio-root", str(tmp_path), "--out", str(tmp_path / "m"),
                 "--preset", "tiny", "--jobs", "1", *opts]) == 0
    det = Detector.load(tmp_path / "m")
    assert det.info["schedule"] == "imported"
    assert det.info["imported"]["from"] == "net.safetensors"
    capsys.readouterr()
    wavs = [str(tmp_path / f"c{i}.wav") for i in (18, 19, 20)]
    assert main(["detect", str(tmp_path / "m"), *wavs, "--json"]) == 0
    got = [json.loads(line) for line in capsys.readouterr().out.splitlines()]

    # the torch network on the same features, normalised with the file's mean and std
    plain = safetensors.numpy.load_file(str(tmp_path / "m"))
    mean, std = plain["normalizer.mean"], plain["normalizer.std"]

    def torch_scores(paths):
        feats = [fix_length(lfbe(sf.read(p, dtype="float32")[0], 16000, num_mel_bins=32),
                            det.frames) for p in paths]
        x = ((np.stack(feats) - mean) / std).astype(np.float32)
        with torch.no_grad():
            t = torch.from_numpy(x if arch == "student" else x[:, None])
            return torch.sigmoid(net(t)).numpy().astype(np.float64)

    expected = torch_scores(wavs)
    for row, want in zip(got, expected):
        np.testing.assert_allclose([row["scores"][c] for c in det.classes], want, atol=1e-5)
    # normalisation: the training clips' per-bin mean; thresholds: validation EER point
    train = [str(tmp_path / f"c{i}.wav") for i in range(12)]
    frames = np.concatenate([fix_length(lfbe(sf.read(p, dtype="float32")[0], 16000,
                                             num_mel_bins=32), det.frames) for p in train])
    np.testing.assert_allclose(mean, frames.mean(axis=0), rtol=1e-5, atol=1e-4)
    val = [str(tmp_path / f"c{i}.wav") for i in range(12, 18)]
    rows = list(csv.reader(open(manifest)))[1:]
    vs = torch_scores(val)
    for j, c in enumerate(det.classes):
        y = np.array([c in rows[i][1].split(";") for i in range(12, 18)], float)
        want = threshold_at_eer(vs[:, j], y) if 0 < y.sum() < y.size else 0.5
        assert det.thresholds[j] == pytest.approx(want, abs=1e-5)


def test_import_refuses_a_state_of_another_shape(tmp_path, capsys):
    torch.manual_seed(0)
    net = TorchStudent(32, 10, 1, 3)
    safetensors.torch.save_file(net.state_dict(), str(tmp_path / "net.safetensors"))
    manifest = _corpus(tmp_path, n=6)
    base = ["import", str(tmp_path / "net.safetensors"), "--manifest", str(manifest),
            "--audio-root", str(tmp_path), "--out", str(tmp_path / "m"), "--preset", "tiny"]
    for extra, match in [(["--arch", "resnet"], "no tensor 'conv1.weight'"),
                         (["--arch", "student", "--hidden-size", "11"],
                          "--hidden-size: 11, but the state_dict's hidden size is 10"),
                         (["--arch", "student", "--classes", "a,b"], "2 names"),
                         (["--arch", "student", "--num-mel-bins", "40"], "input size is 32")]:
        assert main(base + extra) == 2
        err = capsys.readouterr().err
        assert match in err and "Traceback" not in err
    assert not (tmp_path / "m").exists()
