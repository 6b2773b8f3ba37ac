"""``python -m analysis import-published``: the study's released tables as eval runs of the
contract, imported once however often it runs; and gains on them."""

import json
import math

import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import run_analysis

from analysis.cli import cli
from analysis.published.tables import DATA

EXPERIMENT = "amuro-char-published"
PER_FORMAT, MULTIPLE_CHOICE = DATA / "all_perf_table.csv", DATA / "official_eval_table.csv"
SUITES = ["arc_easy", "arc_challenge", "boolq", "hellaswag", "openbookqa", "sciq_mc"]


def released(path) -> pd.DataFrame:
    return pd.read_csv(path, index_col=0)


def all_runs(uri: str) -> dict[str, dict]:
    """run id -> status, tags, metrics and params of every run in the experiment."""
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    found, token = {}, None
    while True:
        page = client.search_runs([experiment.experiment_id], max_results=1000, page_token=token)
        for run in page:
            found[run.info.run_id] = {
                "status": run.info.status,
                "tags": run.data.tags,
                "metrics": run.data.metrics,
                "params": run.data.params,
            }
        token = page.token
        if not token:
            return found


def catalogue_name(raw: str, multiple_choice: bool) -> tuple[str, str]:
    """(eval dataset, format) as the catalogue names a released eval-dataset column value."""
    if multiple_choice:
        return {"sciq": "sciq_mc", "rte": "rte_mc", "qqp": "qqp_mc"}.get(raw, raw), "default"
    name, prompt_format = raw, "default"
    for suffix, suffix_format in (("_instruct", "instruct"), ("_inputoutput", "io")):
        if raw.endswith(suffix):
            name, prompt_format = raw[: -len(suffix)], suffix_format
    return {"cnn": "cnn_dailymail"}.get(name, name.lower()), prompt_format


def test_importing_twice_gives_the_same_runs(published_store):
    uri, directory = published_store["uri"], published_store["directory"]
    rows = len(released(PER_FORMAT)) + len(released(MULTIPLE_CHOICE))
    assert f"Imported {rows} published run(s)" in published_store["output"]
    assert "(0 already there)" in published_store["output"]
    first = all_runs(uri)
    assert len(first) == rows

    again = run_analysis("import-published", cwd=directory)
    assert again.returncode == 0, again.stderr
    assert f"Imported 0 published run(s) into experiment {EXPERIMENT}" in again.stderr
    assert f"({rows} already there)" in again.stderr
    assert again.stdout == ""
    assert all_runs(uri) == first


def test_runs_follow_the_contract(published_store):
    runs = all_runs(published_store["uri"])
    assert {run["status"] for run in runs.values()} == {"FINISHED"}
    by_row = {
        (
            run["tags"]["amuro.published_table"],
            run["tags"]["amuro.published_id"],
            run["tags"]["amuro.eval_dataset"],
            run["tags"]["amuro.format"],
        ): run
        for run in runs.values()
    }
    assert len(by_row) == len(runs)
    checked = set()
    for path, kind in ((PER_FORMAT, "per-format"), (MULTIPLE_CHOICE, "multiple-choice")):
        for row in released(path).itertuples(index=False):
            model_id, raw, score = row.model_id, row[1], row.Performance
            dataset, prompt_format = catalogue_name(raw, kind == "multiple-choice")
            run = by_row[(kind, model_id, dataset, prompt_format)]
            tags, metrics = run["tags"], run["metrics"]
            assert tags["amuro.kind"] == "eval" and tags["amuro.origin"] == "published"
            assert tags["amuro.protocol"] == "study"
            assert "2408.06663" in tags["amuro.reference"]  # the study's arXiv id
            assert tags["amuro.model"] == "allenai/OLMo-1B-hf"
            assert metrics["score"] == pytest.approx(score, abs=1e-15)
            if kind == "per-format":
                se = row.std  # the released bootstrap standard error
                assert tags["amuro.ci_method"] == "normal-from-se"
            else:  # no std released: the binomial one of the validation split
                se = math.sqrt(score * (1 - score) / metrics["n"])
                assert tags["amuro.ci_method"] == "normal-binomial"
                assert score * metrics["n"] == pytest.approx(round(score * metrics["n"]))
            assert metrics["score_se"] == pytest.approx(se, abs=1e-15)
            assert metrics["score_ci_low"] == pytest.approx(score - 1.96 * se, abs=1e-12)
            assert metrics["score_ci_high"] == pytest.approx(score + 1.96 * se, abs=1e-12)
            checked.add(id(run))
    assert len(checked) == len(runs)

    def tags_of(kind, model_id, dataset, prompt_format="default"):
        return by_row[(kind, model_id, dataset, prompt_format)]["tags"]

    # Dataset names as the catalogue has them, formats from the suffixes.
    cnn = tags_of("per-format", "olmo1b_checkpoint-1000_original_hf_4shots", "cnn_dailymail", "instruct")
    assert (cnn["amuro.task"], cnn["amuro.metric"], cnn["amuro.shots"]) == ("summary", "rougeL", "4")
    io = tags_of("per-format", "olmo1b_checkpoint-1000_original_hf_4shots", "mnli_matched", "io")
    assert (io["amuro.step"], io["amuro.tuning"], io["amuro.relation"]) == ("1000", "none", "base")
    sciq = tags_of("multiple-choice", "checkpoint-1000", "sciq_mc")
    assert (sciq["amuro.task"], sciq["amuro.shots"]) == ("mc", "4")
    qgen = tags_of("per-format", "olmo1b_checkpoint-1000_original_hf_4shots", "sciq")
    assert qgen["amuro.task"] == "qgen"  # the other table's sciq is question generation
    # Tuned rows: checkpoint, training set and tuning from the id; main is its last step.
    tuned = tags_of("per-format", "olmo1b_hf_ckpt18000_paws_3epoch_2e-6_4shots", "qqp")
    assert (tuned["amuro.step"], tuned["amuro.tuning"], tuned["amuro.train_dataset"], tuned["amuro.relation"]) == (
        "18000",
        "sft",
        "paws",
        "out-of-domain",
    )
    tulu = tags_of("multiple-choice", "olmo1b_hf_main_tulu_5epoch_2e-6", "arc_easy")
    assert (
        tulu["amuro.revision"],
        tulu["amuro.step"],
        tulu["amuro.tuning"],
        tulu["amuro.train_dataset"],
        tulu["amuro.relation"],
    ) == ("main", "738020", "it", "tulu_v2", "in-domain")
    params = by_row[("multiple-choice", "olmo1b_hf_main_tulu_5epoch_2e-6", "arc_easy", "default")]["params"]
    assert params == {"epochs": "5", "learning_rate": "2e-6"}


def _step(model_id: str) -> int:
    if model_id.startswith(("olmo1b_original_hf", "olmo1b_hf_main_")):
        return 738020
    digits = model_id.split("ckpt")[-1] if "ckpt" in model_id else model_id.split("-")[-1]
    return int(digits.split("_")[0])


def instruction_tuning_pairs() -> dict[tuple[int, str], float]:
    """(step, suite) -> tuned − base, from the released multiple-choice table itself."""
    table = released(MULTIPLE_CHOICE)
    table["dataset"] = table["eval dataset"].map(lambda raw: catalogue_name(raw, True)[0])
    table["step"] = table["model_id"].map(_step)
    tuned = table[table["model_id"].str.contains("_tulu_")]
    base = table[~table["model_id"].str.contains("_tulu_")]
    merged = tuned.merge(base, on=["step", "dataset"], suffixes=("_tuned", "_base"))
    return {(row.step, row.dataset): row.Performance_tuned - row.Performance_base for row in merged.itertuples()}


def test_gains_count_instruction_tuning_pairs_as_in_domain(published_store):
    expected = instruction_tuning_pairs()
    suites = {dataset for _, dataset in expected}
    assert suites >= set(SUITES)
    result = CliRunner().invoke(
        cli,
        [
            "gains",
            "--experiment",
            EXPERIMENT,
            "--tracking-uri",
            published_store["uri"],
            "--format",
            "json",
        ],
    )
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    tulu = {
        (row["step"], row["eval_dataset"]): row
        for row in rows
        if row["train_dataset"] == "tulu_v2" and row["eval_dataset"] in suites
    }
    assert set(tulu) == set(expected)
    for key, gain in expected.items():
        row = tulu[key]
        assert (row["tuning"], row["relation"], row["shots"]) == ("it", "in-domain", 4)
        assert row["gain"] == pytest.approx(gain, abs=1e-12)
        assert row["ci_method"] == "normal-se" and row["ci_low"] < row["gain"] < row["ci_high"]

    by_group = CliRunner().invoke(
        cli,
        [
            "gains",
            "--by-group",
            "--experiment",
            EXPERIMENT,
            "--tracking-uri",
            published_store["uri"],
            "--format",
            "json",
        ],
    )
    assert by_group.exit_code == 0, by_group.output
    groups = pd.DataFrame(json.loads(by_group.stdout))
    in_domain = pd.DataFrame([row for row in rows if row["relation"] == "in-domain"])
    assert set(tulu) <= {(row.step, row.eval_dataset) for row in in_domain.itertuples()}
    # Every in-domain gain, the instruction-tuning pairs among them, counts in one group.
    groups["total"] = groups["mean_gain"] * groups["n"]
    per_step = groups.groupby("step")[["n", "total"]].sum()
    expected_per_step = in_domain.groupby("step")["gain"].agg(n="size", total="sum")
    pd.testing.assert_frame_equal(per_step, expected_per_step, check_dtype=False, check_exact=False, atol=1e-9)


def test_a_table_with_an_unknown_id_is_one_line_and_logs_nothing(tmp_path):
    good = tmp_path / "good.csv"
    good.write_text(
        ",model_id,eval dataset,Performance,std\n0,olmo1b_checkpoint-1000_original_hf_4shots,paws,0.55,0.005\n"
    )
    bad = tmp_path / "bad.csv"
    bad.write_text(
        ",model_id,eval dataset,Performance,std\n"
        "0,olmo1b_checkpoint-18000_original_hf_4shots,paws,0.56,0.005\n"
        "1,olmo1b_hf_ckpt1000_squad_3epoch_2e-6_4shots,paws,0.60,0.005\n"
    )
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    imported = CliRunner().invoke(cli, ["import-published", "--tracking-uri", uri, "--table", str(good)])
    assert imported.exit_code == 0, imported.output
    before = all_runs(uri)
    assert len(before) == 1

    refused = run_analysis("import-published", "--table", "bad.csv", cwd=tmp_path)
    assert refused.returncode == 1
    assert "Traceback" not in refused.stderr
    [line] = refused.stderr.strip().splitlines()
    assert line.startswith("Error: bad.csv row 1: unknown model id 'olmo1b_hf_ckpt1000_squad_3epoch_2e-6_4shots'")
    assert "TRAIN: mnli, paws, xsum, socialiqa, tulu" in line  # what an id may name
    assert line.endswith("correct the row or leave it out")
    # Nothing of the bad table was logged (not even its good row), nothing logged was lost.
    assert all_runs(uri) == before
