"""Pinning a model file's digest: ``qdaed info MODEL --sha256`` prints the SHA-256 of the whole
file (what sha256sum prints), ``Detector.load(path, expect_sha256=HEX)`` and ``qdaed
detect|evaluate|export --expect-sha256 HEX`` refuse any other file. The format's own digest
is recomputed by anyone who edits a file; the pinned one is not."""

import hashlib
import shutil
import subprocess

import numpy as np
import pytest
import soundfile as sf

import qdaed
from qdaed.cli import main
from qdaed.detector import Detector
from qdaed.errors import InputError, ModelFileError
from qdaed.io import modelfile
from tests.io import files
from tests.io.detectors import student


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    d = tmp_path_factory.mktemp("pin")
    student().save(d / "m.safetensors")
    path = d / "m.safetensors"
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def wav(tmp_path_factory):
    p = tmp_path_factory.mktemp("wav") / "a.wav"
    sf.write(p, (0.1 * np.random.default_rng(0).standard_normal(8000)).astype(np.float32),
             16000)
    return p


def _edited(tmp_path, model):
    """The model with a valid threshold changed and the format's digest recomputed: a
    tampered file that passes every check but a pinned digest."""
    p = tmp_path / "edited.safetensors"
    p.write_bytes(files.edit_document(model[0].read_bytes(),
                                      lambda d: d.update(thresholds=[0.01, 0.01, 0.01])))
    assert Detector.load(p).thresholds.tolist() == [0.01, 0.01, 0.01]
    return p


def test_info_sha256_prints_the_whole_files_digest_as_sha256sum_does(model, capsys):
    path, digest = model
    assert main(["info", str(path), "--sha256"]) == 0
    out = capsys.readouterr().out
    assert out == f"{digest}  {path}\n"
    if shutil.which("sha256sum"):
        assert out == subprocess.run(["sha256sum", str(path)], capture_output=True, text=True,
                                     check=True).stdout
    assert Detector.load(path).file_sha256 == digest
    # not the format's checksum of the document and tensors
    assert digest != modelfile.read_model_document(path)[2]["__metadata__"]["qdaed_sha256"]


def test_info_prints_both_digests_and_says_which_is_which(model, capsys):
    path, digest = model
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    inner = modelfile.read_model_document(path)[2]["__metadata__"]["qdaed_sha256"]
    assert f"sha256       {digest} (the whole file, as sha256sum prints it" in out
    assert f"checksum     {inner} (the format's SHA-256 of the document and tensors: detects " \
           f"accidental damage, not tampering)" in out


def test_info_sha256_of_a_damaged_file_is_an_error_not_a_digest(tmp_path, capsys):
    (tmp_path / "m").write_bytes(b"\0" * 64)
    assert main(["info", str(tmp_path / "m"), "--sha256"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "qdaed info: error:" in captured.err


def test_load_with_the_pinned_digest_gives_the_same_detector(model):
    path, digest = model
    plain = Detector.load(path)
    for pin in (digest, digest.upper()):
        det = Detector.load(path, expect_sha256=pin)
        assert det.file_sha256 == digest
        assert det.model.state_dict()["fc.weight"].tobytes() == \
            plain.model.state_dict()["fc.weight"].tobytes()
    assert qdaed.load(path, expect_sha256=digest).classes == plain.classes


def test_a_re_signed_edit_passes_the_formats_digest_but_not_a_pinned_one(tmp_path, model):
    path, digest = model
    edited = _edited(tmp_path, model)
    with pytest.raises(ModelFileError, match=f"edited.safetensors: its SHA-256 is "
                                             f"{hashlib.sha256(edited.read_bytes()).hexdigest()}"
                                             f", expected {digest} \\(the pinned digest\\)"):
        Detector.load(edited, expect_sha256=digest)


def test_a_pinned_digest_is_checked_before_anything_is_parsed(tmp_path, model, monkeypatch):
    p = tmp_path / "junk"
    p.write_bytes(b"\xff" * 100)             # not a safetensors file at all
    calls = []
    monkeypatch.setattr(modelfile, "parse_json", lambda *a, **k: calls.append(a))
    with pytest.raises(ModelFileError, match="the pinned digest"):
        Detector.load(p, expect_sha256=model[1])
    assert calls == []


def test_a_file_replaced_after_the_pinned_check_is_refused(tmp_path, model, monkeypatch):
    path, digest = model
    p = tmp_path / "m.safetensors"
    p.write_bytes(path.read_bytes())
    tampered = _edited(tmp_path, model).read_bytes()
    real = modelfile._check_pinned

    def swap_after_check(path_, f, expect):
        real(path_, f, expect)
        with open(p, "r+b") as g:          # same inode: the open file now reads these bytes
            g.write(tampered)
            g.truncate()
    monkeypatch.setattr(modelfile, "_check_pinned", swap_after_check)
    with pytest.raises(ModelFileError, match="the pinned digest"):
        Detector.load(p, expect_sha256=digest)


@pytest.mark.parametrize("pin", ["", "xyz", "a" * 63, "a" * 65, "g" * 64, " " + "a" * 63,
                                 "a" * 64 + "\n", 12345])
def test_a_malformed_pin_is_an_input_error(model, pin):
    with pytest.raises(InputError, match=r"expect_sha256 \(--expect-sha256\): expected a "
                                         r"SHA-256 digest, 64 hexadecimal digits"):
        Detector.load(model[0], expect_sha256=pin)


def test_detect_with_the_pinned_digest_scores_and_with_another_exits_2(tmp_path, model, wav,
                                                                       capsys):
    path, digest = model
    assert main(["detect", str(path), str(wav), "--json", "--expect-sha256", digest]) == 0
    assert '"scores"' in capsys.readouterr().out
    edited = _edited(tmp_path, model)
    assert main(["detect", str(edited), str(wav), "--expect-sha256", digest]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "the pinned digest" in captured.err
    assert "Traceback" not in captured.err
    assert main(["detect", str(path), str(wav), "--expect-sha256", "nothex"]) == 2
    assert "qdaed detect: error: expect_sha256 (--expect-sha256): expected a SHA-256" in \
        capsys.readouterr().err


def test_evaluate_and_export_refuse_a_file_other_than_the_pinned_one(tmp_path, model, wav,
                                                                     capsys):
    path, digest = model
    edited = _edited(tmp_path, model)
    manifest = tmp_path / "manifest.csv"
    manifest.write_text(f"path,labels,split\n{wav.name},dog,test\n")
    assert main(["evaluate", str(edited), "--manifest", str(manifest), "--audio-root",
                 str(wav.parent), "--expect-sha256", digest]) == 2
    assert "the pinned digest" in capsys.readouterr().err
    out = tmp_path / "t.safetensors"
    assert main(["export", str(edited), "--torch", str(out), "--expect-sha256", digest]) == 2
    assert "the pinned digest" in capsys.readouterr().err and not out.exists()
    assert main(["export", str(path), "--torch", str(out), "--expect-sha256", digest]) == 0
    assert out.exists()
