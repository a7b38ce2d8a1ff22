"""One seed's stages: the configuration digest that ties a model file to its run, soft
targets kept per kind, thresholds, and the orphan temporaries a resume removes."""

import json

import numpy as np
import pytest

from qdaed.errors import InputError
from qdaed.pipeline.presets import preset_config
from qdaed.pipeline.stages import (config_digest, eer_thresholds, remove_orphan_temporaries,
                                   targets_path)


def test_the_digest_follows_the_configuration_and_nothing_else():
    a, b = preset_config("tiny"), preset_config("tiny")
    assert config_digest(a) == config_digest(b) and len(config_digest(a)) == 64
    assert config_digest(a) != config_digest(a.merged({"train_quant": {"lr": 0.5}}))
    assert config_digest(a) != config_digest(a.merged({"seeds": 2}))


def test_targets_of_each_kind_have_their_own_files(tmp_path):
    paths = {targets_path(tmp_path, k, p) for k in ("cached", "oof") for p in ("train",
                                                                              "transfer")}
    assert len(paths) == 4
    assert targets_path(tmp_path, "oof", "train").name == "teacher.oof-targets-train.npy"


def test_thresholds_at_the_validation_eer_point_and_one_half_when_undefined():
    scores = np.array([[0.1, 0.2], [0.4, 0.3], [0.5, 0.9], [0.8, 0.1]])   # class 1 separable
    labels = np.array([[0, 0], [0, 0], [1, 0], [1, 0]], dtype=float)   # class 2: no positive
    t = eer_thresholds(scores, labels)
    assert t[1] == 0.5
    assert (scores[labels[:, 0] == 1, 0] >= t[0]).all()
    assert (scores[labels[:, 0] == 0, 0] < t[0]).all()


def test_orphan_temporaries_are_removed_and_nothing_else(tmp_path):
    (tmp_path / "models" / "seed0").mkdir(parents=True)
    keep = [tmp_path / "config.json", tmp_path / "models" / "seed0" / "student.safetensors"]
    gone = [tmp_path / "models" / "seed0" / ".student.safetensors.x1y2.tmp",
            tmp_path / "x_train.npy.tmp"]
    for p in keep + gone:
        p.write_text("x")
    assert remove_orphan_temporaries(tmp_path) == 2
    assert all(p.exists() for p in keep) and not any(p.exists() for p in gone)


def test_a_model_file_of_another_stage_is_not_reused(tiny_run, tmp_path):
    import shutil

    from qdaed.pipeline.run import run_pipeline
    from tests.helpers.configs import tiny_config

    src, _ = tiny_run
    out = tmp_path / "copy"
    shutil.copytree(src, out)
    seed0 = out / "models" / "seed0"
    student = (seed0 / "student.safetensors").read_bytes()
    (seed0 / "teacher.safetensors").write_bytes(student)     # a student posing as the teacher
    with pytest.raises(InputError, match="not this run's teacher model") as e:
        run_pipeline(tiny_config(), out, resume=True, quiet=True)
    assert "name 'student'" in str(e.value) and "schedule 'student'" in str(e.value)
    assert (seed0 / "teacher.safetensors").read_bytes() == student    # left as it was


def test_a_model_file_of_another_configuration_is_not_reused(tiny_run, tmp_path):
    import shutil

    from qdaed.pipeline.run import run_pipeline
    from tests.helpers.configs import tiny_config

    src, _ = tiny_run
    other = tiny_config().merged({"train_quant": {"lr": 0.5}})
    out = tmp_path / "copy"
    shutil.copytree(src, out)
    (out / "config.json").write_text(json.dumps({**other.to_dict(), "status": "started"}))
    with pytest.raises(InputError, match="config_sha256"):
        run_pipeline(other, out, resume=True, quiet=True)
