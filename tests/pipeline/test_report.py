"""results.json "comparisons" and the results.md comparison table: hand cases with stand-in
detectors, and a two-seed tiny pipeline recomputed from its scores.csv."""

import csv
import json
import math
import re
from types import SimpleNamespace

import numpy as np
import pytest
from scipy import stats as sps

from qdaed.metrics import compute_metrics
from qdaed.pipeline.report import build_results, results_markdown
from qdaed.pipeline.run import run_pipeline
from tests.helpers.configs import tiny_config

# --------------------------------------------------------------------------- stand-in runs

CLASSES = ["dog", "baby_cry"]
# 8 test clips; dog: 4 positives then 4 negatives; baby_cry: no positives (undefined, so every
# mean EER is the dog EER).
LABELS = np.array([[1, 0]] * 4 + [[0, 0]] * 4, dtype=np.float32)
PERFECT = np.array([0.9, 0.8, 0.7, 0.6, 0.1, 0.2, 0.3, 0.4])    # dog EER 0
EQUAL = np.full(8, 0.5)                                          # dog EER ½
REVERSED = -PERFECT                                              # dog EER 1
# On every resample with both a positive and a negative the dog EERs stay 0, ½ and 1.


class FakeDetector:
    def __init__(self, name):
        self.info = {"name": name, "schedule": name, "bits": 4 if "bit" in name else None}

    def num_parameters(self):
        return 10

    def accounted_bytes(self):
        return 40


def _cfg(seeds, corpus=None, noise=None):
    data = {"source": "synth"}
    if corpus is not None:
        data["corpus"] = corpus
        data["label_noise"] = noise or {"missing": 0.2, "false_positive": 0.02}
    return {"preset": "hand", "classes": CLASSES, "seeds": seeds, "data": data}


def _runs(per_model):
    """per_model: {name: [dog scores of seed 0, seed 1, ...]} → the runs list of run_pipeline."""
    runs = []
    for name, dog_per_seed in per_model.items():
        det = FakeDetector(name)
        for seed, dog in enumerate(dog_per_seed):
            runs.append((seed, det, np.stack([dog, np.linspace(0, 1, 8)], axis=1)))
    return runs


def _results(per_model, seeds, corpus=None, noise=None):
    test = SimpleNamespace(labels=LABELS, clips=[f"c{i}" for i in range(8)])
    cfg = _cfg(seeds, corpus, noise)
    return build_results(cfg["classes"], cfg, {}, _runs(per_model), test)


THREE_SEEDS = {
    "student": [EQUAL, REVERSED, EQUAL],        # EER ½, 1, ½
    "distilled": [PERFECT, EQUAL, EQUAL],       # EER 0, ½, ½  → d = −½, −½, 0
    "qd-4bit": [PERFECT, EQUAL, EQUAL],         # identical to distilled → d = 0, 0, 0
}


def test_comparisons_by_hand_over_three_seeds():
    comps = _results(THREE_SEEDS, 3)["comparisons"]
    # ptq-/qat- absent: only the pairs whose two models exist
    assert [(c["model"], c["reference"]) for c in comps] == [("distilled", "student"),
                                                              ("qd-4bit", "distilled")]
    c = comps[0]
    assert c["metric"] == "mean EER" and c["seeds"] == [0, 1, 2]
    assert c["per_seed"] == [-0.5, -0.5, 0.0]
    assert c["mean"] == pytest.approx(-1 / 3, abs=1e-15)
    sd = math.sqrt(1 / 12)             # ((1/6)² + (1/6)² + (1/3)²) / 2 = 1/12
    half = sps.t.ppf(0.975, 2) * sd / math.sqrt(3)
    assert c["ci95"] == pytest.approx([-1 / 3 - half, -1 / 3 + half], abs=1e-14)
    assert c["p_value"] == pytest.approx(2 * sps.t.sf((1 / 3) / (sd / math.sqrt(3)), 2),
                                         rel=1e-12)
    assert c["relative"] == pytest.approx((1 / 3 - 2 / 3) / (2 / 3), abs=1e-15)
    # every defined resample gives Δ = mean(−½, −½, 0) exactly
    assert c["bootstrap_ci95"] == pytest.approx([-1 / 3, -1 / 3], abs=1e-15)
    assert c["bootstrap_resamples"] == 1000
    assert 0 < c["bootstrap_undefined_fraction"] < 0.05   # 2·(½)^8 ≈ 0.008 expected
    assert c["significant"] is False                      # the interval contains 0

    same = comps[1]
    assert same["per_seed"] == [0.0, 0.0, 0.0] and same["ci95"] == [0.0, 0.0]
    assert same["p_value"] == 1.0 and same["bootstrap_ci95"] == [0.0, 0.0]
    assert same["significant"] is False


def test_constant_improvement_is_significant():
    comps = _results({"student": [EQUAL, EQUAL], "distilled": [PERFECT, PERFECT]},
                     2)["comparisons"]
    c = comps[0]
    assert c["per_seed"] == [-0.5, -0.5] and c["ci95"] == [-0.5, -0.5]
    assert c["p_value"] == 0.0 and c["significant"] is True
    assert c["bootstrap_ci95"] == [-0.5, -0.5]


def test_one_seed_gives_differences_without_intervals():
    r = _results({"student": [EQUAL], "distilled": [PERFECT]}, 1)
    c = r["comparisons"][0]
    assert c["per_seed"] == [-0.5] and c["mean"] == -0.5
    assert c["ci95"] is None and c["p_value"] is None and c["significant"] is None
    assert c["bootstrap_ci95"] == [-0.5, -0.5]
    md = results_markdown(r)
    row = next(line for line in md.splitlines() if line.startswith("| distilled | student |"))
    assert row.endswith("| 1 seed: no interval |")
    assert "| -50.0 | — | — | [-50.0, -50.0] | -100.0% |" in row


def test_markdown_table_and_verdicts():
    r = _results(THREE_SEEDS, 3)
    md = results_markdown(r)
    assert "## Paired comparisons" in md
    assert md.index("| qd-4bit | 4 |") < md.index("## Paired comparisons")   # after the table
    rows = {tuple(line.split(" | ")[:2]): line for line in md.splitlines()
            if re.match(r"\| (distilled|qd-4bit) \| (student|distilled) \|", line)}
    d = rows[("| distilled", "student")]
    lo, hi = r["comparisons"][0]["ci95"]
    assert f"| -33.3 | [{100 * lo:+.1f}, {100 * hi:+.1f}] |" in d
    assert d.endswith("| not significant |")
    assert rows[("| qd-4bit", "distilled")].endswith("| +0.0 | [+0.0, +0.0] | 1.000 | "
                                                    "[+0.0, +0.0] | +0.0% | not significant |")
    rel = next(line for line in md.splitlines() if line.startswith("Relative mean-EER change"))
    assert rel.startswith("Relative mean-EER change of `distilled` against `student`: -50.0% "
                          "(paper: −15%); Δ -33.3 points, 95% t-interval [")
    assert rel.endswith("bootstrap [-33.3, -33.3]: not significant.")
    md_sig = results_markdown(_results({"student": [EQUAL, EQUAL],
                                        "distilled": [PERFECT, PERFECT]}, 2))
    assert "| -50.0 | [-50.0, -50.0] | < 0.001 | [-50.0, -50.0] | -100.0% | significant |" \
        in md_sig


def test_noisy_label_sentence_only_for_corpus_v2():
    sentence = ("Training and validation used the corpus's noisy labels (missing positives "
                "0.2, false positives 0.02); test metrics are computed against the clean "
                "ground truth.")
    assert sentence in results_markdown(_results(THREE_SEEDS, 3, corpus="v2"))
    off = results_markdown(_results(THREE_SEEDS, 3, corpus="v2",
                                    noise={"missing": 0.0, "false_positive": 0.0}))
    assert sentence not in off and "label noise switched off" in off
    assert sentence not in results_markdown(_results(THREE_SEEDS, 3, corpus="v1"))
    assert sentence not in results_markdown(_results(THREE_SEEDS, 3))


def test_results_are_identical_between_builds():
    a = json.dumps(_results(THREE_SEEDS, 3), indent=2)
    assert json.dumps(_results(THREE_SEEDS, 3), indent=2) == a


def test_no_comparisons_when_no_class_is_defined():
    test = SimpleNamespace(labels=np.zeros((8, 2), dtype=np.float32), clips=list("abcdefgh"))
    r = build_results(CLASSES, _cfg(1), {}, _runs({"student": [EQUAL], "distilled": [PERFECT]}), test)
    assert r["comparisons"] == []
    assert "Paired comparisons" not in results_markdown(r)


# --------------------------------------------------------------------------- tiny pipeline


@pytest.fixture(scope="module")
def two_seed_run(tmp_path_factory):
    cfg = tiny_config().merged({"seeds": 2})
    out = tmp_path_factory.mktemp("tiny2")
    run_pipeline(cfg, out, quiet=True)
    return out


def _scores_by_run(path):
    """{(seed, model): (scores (N, C), labels (N, C))} in the file's clip order."""
    rows = {}
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            rows.setdefault((int(r["seed"]), r["model"]), {}).setdefault(r["clip"], {})[
                r["class"]] = (int(r["label"]), float(r["score"]))
    out = {}
    for key, clips in rows.items():
        table = list(clips.values())
        classes = list(table[0])
        out[key] = (np.array([[c[k][1] for k in classes] for c in table]),
                    np.array([[c[k][0] for k in classes] for c in table]))
    return out


def test_two_seed_pipeline_comparisons_recompute_from_scores_csv(two_seed_run):
    out = two_seed_run
    results = json.loads((out / "results.json").read_text())
    runs = _scores_by_run(out / "scores.csv")
    comps = results["comparisons"]
    assert [(c["model"], c["reference"]) for c in comps] == [
        ("distilled", "student"), ("qd-4bit", "distilled"), ("ptq-4bit", "qd-4bit"),
        ("qat-4bit", "qd-4bit")]
    for c in comps:
        assert c["seeds"] == [0, 1]
        eer = {name: [compute_metrics(*runs[(s, name)])["eer"]["mean"] for s in (0, 1)]
               for name in (c["model"], c["reference"])}
        d = np.array(eer[c["model"]]) - np.array(eer[c["reference"]])
        assert c["per_seed"] == d.tolist()
        assert c["mean"] == pytest.approx(d.mean(), abs=1e-15)
        if d[0] == d[1]:
            assert c["ci95"] == [d[0], d[0]]
        else:
            half = sps.t.ppf(0.975, 1) * np.std(d, ddof=1) / math.sqrt(2)
            assert c["ci95"] == pytest.approx([d.mean() - half, d.mean() + half], abs=1e-12)
            assert c["p_value"] == pytest.approx(
                sps.ttest_rel(eer[c["model"]], eer[c["reference"]]).pvalue, rel=1e-10)
        assert c["significant"] == (not c["ci95"][0] <= 0 <= c["ci95"][1])

    # the bootstrap of the first comparison, by a plain loop over the documented resamples
    c = comps[0]
    labels = runs[(0, "student")][1]
    n = labels.shape[0]
    defined = (labels.sum(0) > 0) & (labels.sum(0) < n)
    idx = np.random.default_rng(c["bootstrap_seed"]).integers(
        0, n, size=(c["bootstrap_resamples"], n))
    deltas, skipped = [], 0
    for row in idx:
        pos = labels[row][:, defined].sum(0)
        if np.any((pos == 0) | (pos == n)):
            skipped += 1
            continue
        deltas.append(np.mean([
            compute_metrics(runs[(s, "distilled")][0][row], labels[row])["eer"]["mean"]
            - compute_metrics(runs[(s, "student")][0][row], labels[row])["eer"]["mean"]
            for s in (0, 1)]))
    assert c["bootstrap_undefined_fraction"] == skipped / len(idx)
    assert c["bootstrap_ci95"] == pytest.approx(np.percentile(deltas, [2.5, 97.5]).tolist(),
                                                abs=1e-12)

    md = (out / "results.md").read_text()
    assert "## Paired comparisons" in md
    for c in comps:
        verdict = "not significant" if not c["significant"] else "significant"
        assert re.search(rf"^\| {c['model']} \| {c['reference']} \| .* \| {verdict} \|$", md,
                         re.M), c["model"]


def test_with_source_recordings_the_verdict_needs_the_group_bootstrap_to_exclude_zero_too():
    # four recordings of two clips each (a dog positive and a negative); the distilled model
    # ranks three recordings perfectly and reverses the fourth: dog EER ¼ on the whole split
    # (Δ −¼ on both seeds: the seed interval is [−¼, −¼]), but a resample holding the fourth
    # recording twice or more (P ≈ 0.26) gives Δ ≥ 0, so the group interval contains 0
    distilled = np.array([0.9, 0.8, 0.7, 0.2, 0.1, 0.15, 0.25, 0.85])
    groups = ["r1", "r2", "r3", "r4", "r1", "r2", "r3", "r4"]
    test = SimpleNamespace(labels=LABELS, clips=[f"c{i}" for i in range(8)])
    cfg = _cfg(2)
    runs = _runs({"student": [EQUAL, EQUAL], "distilled": [distilled, distilled]})
    plain = build_results(CLASSES, cfg, {}, runs, test)["comparisons"][0]
    assert plain["per_seed"] == [-0.25, -0.25] and plain["significant"] is True
    assert "group_bootstrap_ci95" not in plain
    r = build_results(CLASSES, cfg, {}, runs, test, groups=groups)
    c = r["comparisons"][0]
    assert c["ci95"] == [-0.25, -0.25] and c["group_bootstrap_groups"] == 4
    lo, hi = c["group_bootstrap_ci95"]
    assert lo < 0.0 <= hi
    assert c["significant"] is False and "group bootstrap" in c["verdict_rule"]
    md = results_markdown(r)
    assert "The verdict needs both the t-interval over seeds" in md
    row = next(line for line in md.splitlines() if line.startswith("| distilled | student |"))
    assert row.endswith("| not significant |") and row.count("[") == 3
    # every recording its own perfect ranking: the group interval agrees with the seeds
    good = build_results(CLASSES, cfg, {}, _runs({"student": [EQUAL, EQUAL],
                                                  "distilled": [PERFECT, PERFECT]}), test,
                         groups=groups)["comparisons"][0]
    assert good["group_bootstrap_ci95"] == [-0.5, -0.5] and good["significant"] is True
