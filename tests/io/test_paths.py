"""qdaed.io.paths: output paths refused before any work, and the escape of non-UTF-8 names."""

import os
import socket

import pytest

from qdaed.errors import InputError
from qdaed.io.paths import check_output_dir, check_output_file, display_path


def test_display_path_escapes_each_non_utf8_byte_as_backslash_x():
    name = os.fsdecode(b"caf\xe9-\xff.wav")
    assert display_path(name) == "caf\\xe9-\\xff.wav"
    assert display_path(name).encode("utf-8")      # writable as UTF-8


def test_display_path_leaves_valid_utf8_names_unchanged():
    assert display_path("chien-\u00e9t\u00e9 \u72ac.wav") == "chien-\u00e9t\u00e9 \u72ac.wav"
    assert display_path(b"plain.wav") == "plain.wav"


def test_an_empty_output_path_is_refused():
    with pytest.raises(InputError, match="--csv: an empty path"):
        check_output_file("--csv", "")


def test_an_input_of_the_command_is_refused_under_any_name(tmp_path):
    audio = tmp_path / "clip.wav"
    audio.write_bytes(b"RIFF")
    link = tmp_path / "link.wav"
    link.symlink_to(audio)
    hard = tmp_path / "hard.wav"
    os.link(audio, hard)
    for name in (audio, link, hard, tmp_path / "." / "clip.wav"):
        with pytest.raises(InputError, match="is an input of this command"):
            check_output_file("--csv", str(name), inputs=[str(audio)])
    assert audio.read_bytes() == b"RIFF"


def test_a_new_file_in_an_existing_folder_and_an_unrelated_regular_file_are_accepted(tmp_path):
    old = tmp_path / "old.csv"
    old.write_text("x")
    assert check_output_file("--csv", str(tmp_path / "new.csv"),
                             inputs=[str(old)]) == str(tmp_path / "new.csv")
    assert check_output_file("--csv", str(old), inputs=[str(tmp_path / "new.csv")])


def test_a_directory_fifo_and_socket_are_refused(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(InputError, match="is a directory"):
        check_output_file("--csv", str(tmp_path))
    with pytest.raises(InputError, match="is a FIFO"):
        check_output_file("--csv", str(fifo))
    sock_path = tmp_path / "s"
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(sock_path))
        with pytest.raises(InputError, match="is a socket"):
            check_output_file("--csv", str(sock_path))
    with pytest.raises(InputError, match="is a device"):
        check_output_file("--csv", os.devnull)


def test_a_missing_folder_or_a_file_used_as_folder_is_refused(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        check_output_file("--csv", str(tmp_path / "no" / "out.csv"))
    plain = tmp_path / "plain"
    plain.write_text("")
    with pytest.raises(InputError, match="is not a folder"):
        check_output_file("--csv", str(plain / "out.csv"))


def test_a_folder_without_write_permission_is_refused(tmp_path, monkeypatch):
    # os.access answers for the real user; as root (CI) every folder is writable, so the
    # answer is replaced here to exercise the refusal itself
    monkeypatch.setattr(os, "access", lambda p, mode: os.fspath(p) != str(tmp_path))
    with pytest.raises(InputError, match="is not writable"):
        check_output_file("--csv", str(tmp_path / "out.csv"))
    with pytest.raises(InputError, match="is not writable"):
        check_output_dir("--out", str(tmp_path / "new"))


def test_two_outputs_naming_one_file_are_refused(tmp_path):
    with pytest.raises(InputError, match="--onnx and --torch: both name"):
        check_output_file("--onnx", str(tmp_path / "x"), others=[("--torch", str(tmp_path / "x"))])


def test_a_dangling_symlink_is_a_path_that_may_be_written(tmp_path):
    link = tmp_path / "dangling.csv"
    link.symlink_to(tmp_path / "nowhere")
    assert check_output_file("--csv", str(link)) == str(link)


def test_output_dir_refuses_empty_a_file_and_an_input_and_accepts_new_nested_folders(tmp_path):
    plain = tmp_path / "plain"
    plain.write_text("")
    with pytest.raises(InputError, match="--out: an empty path"):
        check_output_dir("--out", "")
    with pytest.raises(InputError, match="exists and is not a folder"):
        check_output_dir("--out", str(plain))
    with pytest.raises(InputError, match="is not a folder"):
        check_output_dir("--out", str(plain / "a" / "b"))
    with pytest.raises(InputError, match="is an input of this command"):
        check_output_dir("--out", str(tmp_path), inputs=[str(tmp_path)])
    assert check_output_dir("--out", str(tmp_path / "a" / "b")) == str(tmp_path / "a" / "b")
