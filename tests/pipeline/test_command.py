"""`qdaed pipeline` and the model-file commands refuse bad input cleanly: exit status 2, a
message naming the problem, no traceback, and nothing already in --out destroyed."""

import pytest

from qdaed.cli import main


@pytest.fixture
def out_with_file(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    keep = out / "keep.txt"
    keep.write_text("precious")
    return out, keep


def run_cli(capsys, *argv):
    status = main(list(argv))
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return status, err


@pytest.mark.parametrize("args, needle", [
    (["--bits", "0"], "--bits"),
    (["--bits", "4,x"], "--bits"),
    (["--bits", "17"], "--bits"),
    (["--seed", "-1"], "--seed"),
    (["--seeds", "0"], "--seeds"),
    (["--temperature", "0"], "--temperature"),
    (["--temperature", "-2"], "--temperature"),
    (["--lam", "1.5"], "--lam"),
    (["--preset", "huge"], "--preset"),
    (["--manifest", "m.csv"], "--audio-root"),
])
def test_nonsensical_options_exit_2_and_keep_out_dir(capsys, out_with_file, args, needle):
    out, keep = out_with_file
    status, err = run_cli(capsys, "pipeline", "--preset", "tiny", "--out", str(out), *args)
    assert status == 2 and needle in err
    assert keep.read_text() == "precious"
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]


def write(path, text):
    path.write_text(text)
    return path


@pytest.mark.parametrize("manifest, needle", [
    ("", "empty manifest"),
    ("path,labels\n", "lists no clips"),
    ("path,split\na.wav,train\n", "labels"),
    ("path,labels\na.wav,cat\n", "unknown label"),
    ("path,labels\na.wav,dog\nb.wav,\n", "none of the 2 clip"),
])
def test_bad_manifests_exit_2_and_keep_out_dir(capsys, tmp_path, out_with_file, manifest,
                                                needle):
    out, keep = out_with_file
    m = write(tmp_path / "m.csv", manifest)
    status, err = run_cli(capsys, "pipeline", "--preset", "tiny", "--out", str(out),
                          "--manifest", str(m), "--audio-root", str(tmp_path), "--jobs", "1")
    assert status == 2 and needle in err, err
    assert keep.read_text() == "precious"
    assert not (out / "config.json").exists()


def test_existing_run_is_not_overwritten_without_resume(capsys, out_with_file):
    out, keep = out_with_file
    (out / "config.json").write_text('{"preset": "demo"}')
    status, err = run_cli(capsys, "pipeline", "--preset", "tiny", "--out", str(out))
    assert status == 2 and "already holds a run" in err
    assert (out / "config.json").read_text() == '{"preset": "demo"}'
    status, err = run_cli(capsys, "pipeline", "--preset", "tiny", "--out", str(out), "--resume")
    assert status == 2 and "differs" in err
    assert keep.read_text() == "precious"


def test_resume_without_a_run_is_refused(capsys, tmp_path):
    status, err = run_cli(capsys, "pipeline", "--preset", "tiny", "--resume",
                          "--out", str(tmp_path / "nothing"))
    assert status == 2 and "no config.json" in err


@pytest.mark.parametrize("command", ["info", "detect"])
def test_model_commands_refuse_a_file_that_is_not_a_model(capsys, tmp_path, command):
    bogus = write(tmp_path / "bogus.safetensors", "not a model")
    extra = [str(bogus)] if command == "detect" else []
    status, err = run_cli(capsys, command, str(bogus), *extra)
    assert status == 2 and "bogus.safetensors" in err
