"""The four findings on the study's released results: under the paper's definitions they give
the numbers of the study's notebook (``analysis/gen_paper_figs.ipynb``), computed here
independently from the shipped CSVs the way the notebook computes them."""

import io

import numpy as np
import pandas as pd
import pytest
from conftest import run_analysis

from analysis.findings import FindingsSettings, measure_findings
from analysis.published.tables import DATA

PUBLISHED = "amuro-char-published"
CHECKPOINTS = ["1000", "18000", "342000", "424000", "505000", "592000", "738000", "main"]
MAIN_STEP = 738020
LEARNING_RATES = {"xsum": "2e-7", "socialiqa": "2e-6", "mnli": "2e-6", "paws": "2e-6", "tulu": "2e-6"}
MULTIPLE_CHOICE = {"boolq", "openbookqa", "arc_challenge", "arc_easy", "hellaswag", "sciq"}


def by_training_set(**eval_datasets: str) -> list[tuple[str, str]]:
    """The notebook's (eval dataset, training dataset) pairs, in its names, from each training set's eval
    datasets (space-separated)."""
    return [(eval_dataset, train) for train, names in eval_datasets.items() for eval_dataset in names.split()]


FINE_TUNING_PAIRS = by_training_set(
    mnli="mnli_matched mnli_mismatched", paws="paws", xsum="xsum xlsum", socialiqa="socialiqa", tulu="boolq"
)
PRE_TRAINING_PAIRS = by_training_set(tulu="sciq hellaswag arc_challenge arc_easy openbookqa sciq")
CROSS_TASK_PAIRS = by_training_set(
    mnli="xsum socialiqa", paws="xsum socialiqa", xsum="paws mnli_matched", socialiqa="mnli_matched paws"
)
OUT_OF_DOMAIN_PAIRS = by_training_set(mnli="rte gpt3nli", xsum="cnn", paws="qqp stsb", socialiqa="tweetqa sciq")


def notebook_changes(pairs, multiple_choice=MULTIPLE_CHOICE) -> pd.DataFrame:
    """Cells 16 and 24 of the notebook: per checkpoint, the raw change tuned − base of each
    (eval dataset, training dataset) pair, from both released tables concatenated."""
    table = pd.concat(
        [pd.read_csv(DATA / "all_perf_table.csv"), pd.read_csv(DATA / "official_eval_table.csv")], ignore_index=True
    )
    rows = []
    for checkpoint in CHECKPOINTS:
        for eval_dataset, train in pairs:
            if eval_dataset in multiple_choice:
                base_id = "olmo1b_original_hf" if checkpoint == "main" else f"checkpoint-{checkpoint}"
                tuned_id = f"olmo1b_hf_{'main' if checkpoint == 'main' else 'ckpt' + checkpoint}_tulu_5epoch_2e-6"
            else:
                base_id = (
                    "olmo1b_original_hf_4shots"
                    if checkpoint == "main"
                    else f"olmo1b_checkpoint-{checkpoint}_original_hf_4shots"
                )
                tuned_id = (
                    f"olmo1b_hf_{'main' if checkpoint == 'main' else 'ckpt' + checkpoint}"
                    f"_{train}_3epoch_{LEARNING_RATES[train]}_4shots"
                )
            base = table[(table["model_id"] == base_id) & (table["eval dataset"] == eval_dataset)]
            tuned = table[(table["model_id"] == tuned_id) & (table["eval dataset"] == eval_dataset)]
            if len(base) == 1 and len(tuned) == 1:
                rows.append(
                    (
                        MAIN_STEP if checkpoint == "main" else int(checkpoint),
                        eval_dataset,
                        tuned["Performance"].item() - base["Performance"].item(),
                    )
                )
    return pd.DataFrame(rows, columns=["step", "eval_dataset", "change"])


def findings_csv(store, *args) -> tuple[pd.DataFrame, str]:
    completed = run_analysis("findings", "--experiment", PUBLISHED, "--format", "csv", *args, cwd=store["directory"])
    assert completed.returncode == 0, completed.stderr
    return pd.read_csv(io.StringIO(completed.stdout)), completed.stderr


@pytest.fixture
def paper_findings(published_store, published_runs) -> dict:
    """The summary as the command writes it in CSV; the tables behind it from the Python API."""
    summary, stderr = findings_csv(published_store, "--definitions", "paper")
    measured = measure_findings(published_runs, FindingsSettings("paper"))
    return {"summary": summary.set_index("finding"), "stderr": stderr, **measured.details}


def test_paper_definitions_give_the_notebooks_numbers(paper_findings):
    summary = paper_findings["summary"]
    assert list(summary.columns) == "definitions model protocol measure value ci_low ci_high verdict where".split()
    # (ii): the gap per checkpoint is the notebook's, at every one of its eight checkpoints.
    fine = notebook_changes(FINE_TUNING_PAIRS).groupby("step")["change"].mean()
    pre = notebook_changes(PRE_TRAINING_PAIRS).groupby("step")["change"].mean()
    groups = paper_findings["groups"].set_index("step")
    assert list(groups.index) == sorted(fine.index) and len(groups) == 8
    np.testing.assert_allclose(groups["gain_fine_tuning"], fine.sort_index(), rtol=0, atol=1e-9)
    np.testing.assert_allclose(groups["gain_pre_training"], pre.sort_index(), rtol=0, atol=1e-9)
    np.testing.assert_allclose(groups["gap"], (fine - pre).sort_index(), rtol=0, atol=1e-9)
    assert (groups["gap"] > 0).all() and groups["gap"].iloc[0] == pytest.approx(0.014, abs=5e-4)
    assert summary.loc["ii", "value"] == pytest.approx((fine - pre).mean(), abs=1e-9)
    assert summary.loc["ii", ["verdict", "where"]].tolist() == ["supported", "every checkpoint"]

    # (i): gain at each checkpoint − gain at the first, over the learned-in-fine-tuning pairs.
    latent = paper_findings["latent"].set_index("step")["latent_gain"]
    np.testing.assert_allclose(latent, (fine - fine.iloc[0]).iloc[1:], rtol=0, atol=1e-9)
    assert summary.loc["i", "verdict"] == "supported"

    # (iii): cross-task forgets (the notebook's two cross-task bars), out-of-domain gains.
    forgetting = paper_findings["forgetting"].set_index("relation")["forgetting"]
    cross = notebook_changes(CROSS_TASK_PAIRS, multiple_choice=set())
    out = notebook_changes(
        [pair for pair in OUT_OF_DOMAIN_PAIRS if pair[0] not in ("qqp", "stsb")], multiple_choice=set()
    )
    assert forgetting["cross-task"] == pytest.approx(-cross["change"].mean(), abs=1e-9)
    assert forgetting["out-of-domain"] == pytest.approx(-out["change"].mean(), abs=1e-9)
    assert forgetting["cross-task"] > 0 > forgetting["out-of-domain"]
    assert summary.loc["iii", ["verdict", "where"]].tolist() == ["supported", "cross-task only"]

    # (iv): the tuned models' std across formats peaks at step 342000 and is lower at main.
    sensitivity = paper_findings["sensitivity"].set_index("step")["tuned_std"]
    assert sensitivity.idxmax() == 342000 and sensitivity[MAIN_STEP] < sensitivity[342000]
    assert summary.loc["iv", ["verdict", "where"]].tolist() == ["mixed", "from step 342000 on"]
    assert summary.loc["iv", "value"] == pytest.approx(sensitivity[MAIN_STEP] - sensitivity[342000])


def test_released_qqp_and_stsb_are_degenerate_and_left_out(paper_findings, published_runs):
    stderr = paper_findings["stderr"]
    assert "left out (--keep-degenerate keeps them)" in stderr
    assert "qqp (allenai/OLMo-1B-hf, 16 cell(s))" in stderr and "stsb (" in stderr
    kept = measure_findings(published_runs, FindingsSettings("paper", keep_degenerate=True))
    out = notebook_changes(OUT_OF_DOMAIN_PAIRS, multiple_choice=set())
    forgetting = kept.details["forgetting"].set_index("relation")
    assert forgetting.loc["out-of-domain", "forgetting"] == pytest.approx(-out["change"].mean(), abs=1e-9)
    assert set(kept.degenerate["eval_dataset"]) == {"qqp", "stsb"}


def test_amuro_definitions_on_the_released_results(published_runs):
    measured = measure_findings(published_runs, FindingsSettings("amuro"))
    summary = measured.summary.set_index("finding")
    assert set(summary["definitions"]) == {"amuro"}
    assert summary.loc["ii", ["verdict", "where"]].tolist() == ["mixed", "from step 342000 on"]
    assert summary.loc["ii", "ci_low"] > 0
    assert summary.loc["iii", "verdict"] == "supported"
    assert "cross-task (mnli, paws)" in summary.loc["iii", "where"]
    forgetting = measured.details["forgetting"]
    mnli = forgetting[(forgetting["relation"] == "cross-task") & (forgetting["train_dataset"] == "mnli")]
    assert (mnli["n_forgot"].item(), mnli["n_cells"].item()) == (23, 26)
    assert mnli["forgetting"].item() == pytest.approx(0.063, abs=5e-4)


def test_the_readme_commands(published_store):
    """The findings commands of docs/entry-points/analyze.md, as written, where the study was imported."""
    folder = published_store["directory"]
    shown = run_analysis("findings", "--experiment", PUBLISHED, cwd=folder)
    assert shown.returncode == 0, shown.stderr
    for finding in ("(i) ", "(ii) ", "(iii) ", "(iv) "):
        assert f"\n{finding}" in "\n" + shown.stdout
    assert "  paper  SUPPORTED: cross-task only" in shown.stdout
    written = run_analysis(
        "findings",
        "--experiment",
        PUBLISHED,
        "--definitions",
        "paper",
        "--detail",
        "groups",
        "--out",
        "groups.csv",
        cwd=folder,
    )
    assert written.returncode == 0 and written.stdout == ""
    assert len(pd.read_csv(folder / "groups.csv")) == 8
    (folder / "my-groups.yaml").write_text(
        "fine_tuning: [mnli_matched, [boolq, tulu_v2]]\npre_training: [hellaswag, arc_easy]\n"
    )
    own = run_analysis(
        "findings",
        "--experiment",
        PUBLISHED,
        "--groups",
        "my-groups.yaml",
        "--definitions",
        "paper",
        "--detail",
        "groups",
        "--format",
        "csv",
        cwd=folder,
    )
    assert own.returncode == 0, own.stderr
    groups = pd.read_csv(io.StringIO(own.stdout)).set_index("step")
    fine = notebook_changes([("mnli_matched", "mnli"), ("boolq", "tulu")]).groupby("step")["change"]
    pre = notebook_changes([("hellaswag", "tulu"), ("arc_easy", "tulu")]).groupby("step")["change"]
    np.testing.assert_allclose(groups["gap"], (fine.mean() - pre.mean()).sort_index(), atol=1e-9)
