"""``report --compare-to``: a reproduction beside the study's published results, cell by cell
and finding by finding; and what it says when there is nothing to compare with."""

import html
import io
import math

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import run_analysis
from contract import Cell, Plant

from analysis.beside import SUMMARY_COLUMNS
from analysis.cli import cli
from analysis.published.tables import DATA

PUBLISHED = "amuro-char-published"
REPRODUCTION = "reproduction"
MODEL = "allenai/OLMo-1B-hf"
TASKS = {"paws": "paraphrase", "qqp": "paraphrase", "socialiqa": "qgen", "xsum": "summary", "rte": "nli"}
FIRST, LAST = 1000, 738000
SE = 0.005  # the reproduction's standard error, every run
# The reproduction's cells, at both checkpoints, 4-shot: (train set, eval set, format).
CELLS = [
    ("none", "paws", "default"),
    ("none", "paws", "instruct"),
    ("none", "socialiqa", "default"),
    ("none", "socialiqa", "instruct"),
    ("none", "qqp", "default"),
    ("none", "xsum", "default"),
    ("paws", "paws", "default"),
    ("paws", "paws", "instruct"),  # in-domain
    ("paws", "qqp", "default"),  # out-of-domain
    ("paws", "xsum", "default"),  # cross-task
    ("socialiqa", "socialiqa", "default"),
    ("socialiqa", "socialiqa", "instruct"),
    ("socialiqa", "xsum", "default"),
]


def paper_scores() -> dict[tuple, tuple[float, float]]:
    """(step, train, eval, format) -> the released (score, std), from the table itself."""
    table = pd.read_csv(DATA / "all_perf_table.csv", index_col=0).set_index(["model_id", "eval dataset"])
    scores = {}
    for step in (FIRST, LAST):
        for train, dataset, fmt in CELLS:
            model_id = (
                f"olmo1b_checkpoint-{step}_original_hf_4shots"
                if train == "none"
                else f"olmo1b_hf_ckpt{step}_{train}_3epoch_2e-6_4shots"
            )
            row = table.loc[(model_id, dataset + ("_instruct" if fmt == "instruct" else ""))]
            scores[(step, train, dataset, fmt)] = (float(row["Performance"]), float(row["std"]))
    return scores


def reproduction_score(key, paper: float) -> float:
    """What the reproduction scored: below the paper, tuned cells more so at the last
    checkpoint and in the instruct format (so every finding differs between the sides)."""
    step, train, _, fmt = key
    if train == "none":
        return 0.98 * paper
    return paper * (0.97 if step == FIRST else 0.90) * (0.95 if fmt == "instruct" else 1.0)


def findings_by_hand(scores: dict[tuple, tuple[float, float]]) -> dict[str, float]:
    """Findings (i), (iii) and (iv) under the paper's definitions (analysis/findings), on
    ``scores``: (step, train, eval, format) -> (score, standard error). Of the study's pairs
    these cells hold, learned in fine-tuning: paws and socialiqa (none learned in
    pre-training, so (ii) cannot be measured); cross-task: xsum tuned on paws; prompt
    sensitivity: paws and socialiqa in two formats."""

    def score(step, train, dataset, fmt="default"):
        return scores[(step, train, dataset, fmt)][0]

    def gain(step, train, dataset, fmt="default"):
        return score(step, train, dataset, fmt) - score(step, "none", dataset, fmt)

    latent = np.mean([gain(LAST, t, t) - gain(FIRST, t, t) for t in ("paws", "socialiqa")])
    cross_task = np.mean([-gain(step, "paws", "xsum") for step in (FIRST, LAST)])
    # Tuned std across the two formats (population std of two values: half their distance).
    tuned_std = {
        step: np.mean([abs(score(step, t, t) - score(step, t, t, "instruct")) / 2 for t in ("paws", "socialiqa")])
        for step in (FIRST, LAST)
    }
    return {"i": latent, "iii": cross_task, "iv": tuned_std[LAST] - max(tuned_std.values())}


@pytest.fixture
def reproduction(published_store) -> dict:
    """The published store (this test's copy) with a reproduction experiment beside it that
    shares every cell of ``CELLS`` with the paper, plus one cell the paper does not have."""
    plant = Plant(published_store["uri"], REPRODUCTION, MODEL, TASKS, protocol="study")
    paper = paper_scores()
    yours = {}
    for key, (published, _) in paper.items():
        step, train, dataset, fmt = key
        yours[key] = (reproduction_score(key, published), SE)
        plant.log(Cell(step, train, dataset, fmt, shots=4), yours[key][0], SE)
    plant.log(Cell(FIRST, "none", "rte", "io", shots=4), 0.5, SE)  # not in the paper
    return {**published_store, "paper": paper, "yours": yours}


def html_tables(page: str) -> list[pd.DataFrame]:
    return pd.read_html(io.StringIO(page))


def test_report_puts_the_reproduction_beside_the_paper(reproduction, tmp_path):
    out = tmp_path / "report.html"
    result = CliRunner().invoke(
        cli,
        [
            "report",
            "--experiment",
            REPRODUCTION,
            "--tracking-uri",
            reproduction["uri"],
            "--compare-to",
            PUBLISHED,
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    page = out.read_text()
    for heading in [
        "Beside the published results: the four findings",
        "Shared cells, yours beside the paper's",
        "(i) Latent gains, both sides",
        "(ii) Learned in fine-tuning against learned in pre-training, both sides",
        "(iii) Forgetting, both sides",
        "(iv) Prompt sensitivity by checkpoint, both sides",
    ]:
        assert f"<h2>{html.escape(heading)}</h2>" in page
    assert f"{len(reproduction['paper'])} cell(s) you share with {PUBLISHED}" in page
    tables = html_tables(page)

    # Per shared cell: both scores, yours − paper and its interval from both errors.
    [shared] = [t for t in tables if {"yours", "paper", "difference"} <= set(t.columns)]
    assert len(shared) == len(reproduction["paper"])  # rte io is the reproduction's alone
    for row in shared.itertuples(index=False):
        key = (row.step, row.train_dataset, row.eval_dataset, row.format)
        paper, paper_se = reproduction["paper"][key]
        yours = reproduction["yours"][key][0]
        half_width = 1.96 * math.sqrt(SE**2 + paper_se**2)
        assert (row.model, row.shots, row.protocol, row.ci_method) == (MODEL, 4, "study", "normal-se")
        assert (row.yours, row.paper, row.difference) == pytest.approx(
            (yours, paper, yours - paper), abs=5.1e-5
        )  # the page shows 4 decimals
        assert (row.ci_low, row.ci_high) == pytest.approx(
            (yours - paper - half_width, yours - paper + half_width), abs=5.1e-5
        )

    # The four findings' verdicts, each on both sides, over the shared cells.
    [summary] = [t for t in tables if list(t.columns) == SUMMARY_COLUMNS]
    assert summary[["finding", "definitions"]].values.tolist() == [
        [finding, definitions] for definitions in ("paper", "amuro") for finding in ("i", "ii", "iii", "iv")
    ]
    yours = findings_by_hand(reproduction["yours"])
    paper = findings_by_hand(reproduction["paper"])
    files = logged_tables(reproduction["uri"], tmp_path / "logged")
    logged = files["published-findings.csv"].set_index(["definitions", "finding"])
    for finding in ("i", "iv"):
        assert logged.loc[("paper", finding), "value_yours"] == pytest.approx(yours[finding], abs=1e-12)
        assert logged.loc[("paper", finding), "value_paper"] == pytest.approx(paper[finding], abs=1e-12)
    assert (logged.loc[("paper", "ii"), ["verdict_yours", "verdict_paper"]] == "untestable").all()
    forgetting = files["published-forgetting.csv"].set_index(["definitions", "relation", "train_dataset"])
    cross_task = forgetting.loc[("paper", "cross-task", "all")]
    assert cross_task["forgetting_yours"] == pytest.approx(yours["iii"], abs=1e-12)
    assert cross_task["forgetting_paper"] == pytest.approx(paper["iii"], abs=1e-12)
    assert not np.allclose(list(yours.values()), list(paper.values()), atol=1e-3)

    # The comparison tables, at full precision, on the analysis run the report is logged to.
    logged = files["published-shared.csv"]
    assert len(logged) == len(shared)
    for row in logged.itertuples(index=False):
        key = (row.step, row.train_dataset, row.eval_dataset, row.format)
        assert row.difference == pytest.approx(reproduction["yours"][key][0] - reproduction["paper"][key][0], abs=1e-12)


def logged_tables(uri: str, folder) -> dict[str, pd.DataFrame]:
    """The report's comparison tables as logged on its analysis run."""
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(REPRODUCTION)
    [run] = client.search_runs([experiment.experiment_id], "tags.\"amuro.kind\" = 'analysis'")
    assert run.data.params["compare_to"] == PUBLISHED
    folder.mkdir()
    return {
        name: pd.read_csv(client.download_artifacts(run.info.run_id, name, str(folder)))
        for name in ("published-findings.csv", "published-shared.csv", "published-forgetting.csv")
    }


def test_compare_to_an_experiment_without_published_runs(tmp_path):
    """One line naming the experiment and the fix, whether it does not exist or holds only
    runs of one's own; no report is written."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    plant = Plant(uri, REPRODUCTION, MODEL, TASKS, protocol="study")
    plant.log(Cell(FIRST, "none", "paws", shots=4), 0.55, SE)
    plant.log(Cell(FIRST, "paws", "paws", shots=4), 0.80, SE)
    own = run_analysis("report", "--experiment", REPRODUCTION, "--compare-to", REPRODUCTION, cwd=tmp_path)
    assert own.returncode == 1
    assert "Traceback" not in own.stderr
    assert own.stderr.strip() == (
        f"Error: experiment 'reproduction' at {uri} holds no published results "
        "(amuro.origin=published); import them first: python -m analysis import-published "
        "--experiment reproduction"
    )
    missing = CliRunner().invoke(
        cli,
        [
            "report",
            "--experiment",
            REPRODUCTION,
            "--tracking-uri",
            uri,
            "--compare-to",
            "nope",
            "--out",
            str(tmp_path / "nope.html"),
        ],
    )
    assert missing.exit_code == 1
    [line] = missing.output.strip().splitlines()
    assert line.startswith("Error: experiment 'nope' at ")
    assert line.endswith("import them first: python -m analysis import-published --experiment nope")
    assert not (tmp_path / "amuro-report.html").exists() and not (tmp_path / "nope.html").exists()
