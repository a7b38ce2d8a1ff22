"""Seeds as executor jobs: the same results.json from the in-process path, a process pool and
a Dask LocalCluster; an unreachable scheduler writes nothing; `qdaed ablate` end to end."""

import json
import socket

import pytest

from qdaed.cli import main
from qdaed.errors import InputError
from qdaed.pipeline.presets import preset_config
from qdaed.pipeline.run import run_pipeline


def sweep_config():
    return preset_config("tiny").merged({"quant": {"bits": [4]}, "seeds": 2})


@pytest.fixture(scope="module")
def in_process(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep") / "here"
    run_pipeline(sweep_config(), out, quiet=True, jobs=1)
    return out


def same_outputs(a, b):
    for name in ("results.json", "scores.csv", "results.md"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    for p in sorted((a / "models").rglob("*.safetensors")):
        assert p.read_bytes() == (b / p.relative_to(a)).read_bytes(), p.name


def test_a_process_pool_gives_byte_identical_results(in_process, tmp_path):
    out = tmp_path / "pool"
    run_pipeline(sweep_config(), out, quiet=True, jobs=2)
    same_outputs(in_process, out)
    # on a pool each seed is two jobs (its student chain, its distilled chain); in-process one
    assert "4 job(s) (2 seed(s) x student and distilled) on 2 worker(s)" in (
        out / "log.txt").read_text()
    assert "2 job(s) (2 seed(s)) on 1 worker(s)" in (in_process / "log.txt").read_text()
    # the student chains started before the teacher, whose models they do not need
    log = (out / "log.txt").read_text()
    early = log.index("2 job(s) (the student chain of each seed: no teacher needed) started")
    assert early < log.index("seed 0 teacher:")
    assert "started" not in (in_process / "log.txt").read_text().split("teacher:")[0]


def test_a_dask_local_cluster_gives_byte_identical_results(in_process, tmp_path):
    distributed = pytest.importorskip("distributed")
    import logging

    logging.getLogger("distributed").setLevel(logging.ERROR)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None, silence_logs=logging.ERROR) as cluster:
        out = tmp_path / "dask"
        run_pipeline(sweep_config(), out, quiet=True, dask_scheduler=cluster.scheduler_address)
    same_outputs(in_process, out)
    results = json.loads((out / "results.json").read_text())
    assert [c["model"] for c in results["comparisons"]][:2] == ["distilled", "qd-4bit"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_scheduler_is_a_clear_error_and_writes_nothing(tmp_path, capsys):
    pytest.importorskip("distributed")
    out = tmp_path / "never"
    status = main(["pipeline", "--preset", "tiny", "--out", str(out), "--dask-scheduler",
                   f"tcp://127.0.0.1:{free_port()}"])
    err = capsys.readouterr().err
    assert status == 2 and "--dask-scheduler" in err and "Traceback" not in err
    assert not out.exists()


def test_ablate_writes_its_table_for_both_label_conditions(tmp_path, capsys):
    out = tmp_path / "abl"
    assert main(["ablate", "--preset", "tiny", "--seeds", "2", "--jobs", "1", "--quiet",
                 "--out", str(out)]) == 0
    summary = json.loads((out / "ablation.json").read_text())
    cells = {(c["labels"], c["cell"]) for c in summary["cells"]}
    assert cells == {(k, c) for k in ("clean", "noisy") for c in ("baseline", "paper", "recipe")}
    for c in summary["cells"]:
        assert len(c["per_seed"]) == 2 and c["ci95_half"] is not None
        if c["cell"] != "baseline":
            v = c["vs_baseline"]
            assert v["ci_low"] <= v["mean"] <= v["ci_high"]
    md = (out / "ablation.md").read_text()
    assert "| clean | baseline" in md and "| noisy | distilled, transfer recipe" in md
    clean = json.loads((out / "clean" / "config.json").read_text())
    noisy = json.loads((out / "noisy" / "config.json").read_text())
    assert clean["data"]["label_noise"] == {"missing": 0.0, "false_positive": 0.0}
    assert noisy["data"]["label_noise"]["missing"] == 0.2
    names = [m["name"] for m in json.loads((out / "noisy" / "results.json").read_text())["models"]]
    assert names == ["teacher", "student", "distilled", "distilled-paper"]


@pytest.mark.parametrize("argv, needle", [
    (["ablate", "--seeds", "1"], "an interval needs at least 2 seeds"),
    (["pipeline", "--preset", "tiny", "--temperature", "1e-300"], "--temperature"),
    (["pipeline", "--preset", "tiny", "--label-noise", "1.0"], "noise rate must be in [0, 1)"),
    (["pipeline", "--preset", "tiny", "--label-noise", "0.2,-0.1"], "noise rate"),
    (["pipeline", "--preset", "tiny", "--transfer", "-1"], "--transfer"),
    (["pipeline", "--preset", "tiny", "--transfer", "0", "--recipe", "transfer"], "needs an unlabelled transfer set"),
])
def test_bad_distillation_options_exit_2_and_write_nothing(tmp_path, capsys, argv, needle):
    out = tmp_path / "o"
    status = main([*argv, "--out", str(out)])
    err = capsys.readouterr().err
    assert status == 2 and needle in err and "Traceback" not in err, err
    assert not (out / "config.json").exists() and not (out / "models").exists()


def test_an_unknown_recipe_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["pipeline", "--recipe", "magic", "--out", str(tmp_path / "o")])
    assert e.value.code == 2 and "magic" in capsys.readouterr().err
    from qdaed.train.recipes import recipe_config
    with pytest.raises(InputError, match="--recipe"):
        recipe_config("magic")


def test_the_shared_teacher_trains_with_the_jobs_threads_whatever_the_caller_has(
        tmp_path, monkeypatch):
    # The teacher runs in this process: with threads_per_job threads (tiny: 1), not the
    # caller's, so that it is the same bytes on a machine of any core count.
    import qdaed.train.schedules as schedules
    from qdaed.pipeline.threads import pin_threads, thread_counts, threads_restored

    seen = []
    train = schedules.train_teacher

    def recording(*args, **kwargs):
        seen.append(thread_counts())
        return train(*args, **kwargs)

    monkeypatch.setattr(schedules, "train_teacher", recording)
    with threads_restored():
        before = pin_threads(2)
        run_pipeline(preset_config("tiny"), tmp_path / "run", quiet=True, jobs=1)
        after = thread_counts()
    assert len(seen) == 1
    assert seen[0]["numba"] == 1 and set(seen[0]["blas"].values()) == {1}
    assert after == before                       # the caller's threads are given back
