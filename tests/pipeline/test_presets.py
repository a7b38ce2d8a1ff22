"""The presets: every one builds a valid RunConfig, and each says what it promises."""

import pytest

from qdaed.errors import InputError
from qdaed.pipeline.presets import PRESETS, preset_config, preset_dict


def test_the_four_presets():
    assert PRESETS == ("tiny", "demo", "real", "paper")


@pytest.mark.parametrize("name", PRESETS)
def test_a_preset_names_itself_and_is_a_fresh_copy(name, tmp_path):
    a, b = preset_dict(name), preset_dict(name)
    assert a["preset"] == name and a == b
    a["data"]["n_clips"] = 1
    assert preset_dict(name)["data"]["n_clips"] != 1
    assert preset_config(name, audio_root=tmp_path).preset == name


def test_real_reads_the_shipped_real_corpus_with_the_controls_and_needs_an_audio_root(tmp_path):
    with pytest.raises(InputError, match="preset real: needs the folder"):
        preset_config("real")
    real = preset_config("real", audio_root=tmp_path)
    assert real.data.source == "manifest" and real.data.audio_root == str(tmp_path)
    assert real.data.manifest.endswith("real_corpus_transfer.csv")
    assert real.distill.recipe == "transfer" and real.distill.transfer
    assert (real.data.max_freq, real.data.equal_seconds) == (4000.0, 4.0)
    assert real.seeds >= 5 and real.event_eval.recordings == 20


def test_demo_and_paper_have_the_shapes_the_readme_states():
    demo, paper = preset_config("demo"), preset_config("paper")
    assert demo.seeds == 5 and demo.data.n_clips == 3000 and demo.data.n_transfer == 2000
    assert (demo.teacher.depth, demo.teacher.width) == (18, 16)
    assert (demo.student.hidden_size, demo.student.num_layers) == (32, 1)
    assert (paper.teacher.depth, paper.teacher.width) == (50, 64)
    assert (paper.student.hidden_size, paper.student.num_layers) == (512, 2)
    assert paper.data.clip_seconds == 10.0 and not paper.shared_teacher
    assert demo.distill.recipe == "transfer" and demo.quant.bits == (8, 4, 2)


def test_an_unknown_preset_is_an_input_error():
    with pytest.raises(InputError, match="--preset: expected one of tiny, demo, real, paper"):
        preset_config("huge")
