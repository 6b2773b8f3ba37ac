"""The command line: outputs, logging, the HTML report and bad input."""

import base64
import io
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from planted import EMPTY_EXPERIMENT, EXPERIMENT, MODEL, free_port

from analysis.cli import cli

ROOT = Path(__file__).resolve().parents[2]


def invoke(*args):
    return CliRunner().invoke(cli, [str(arg) for arg in args], catch_exceptions=False)


def analysis_runs(uri, name):
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    return client.search_runs(
        [experiment.experiment_id],
        f"tags.\"amuro.kind\" = 'analysis' and tags.\"mlflow.runName\" = 'analysis-{name}'",
    )


def test_gains_as_json_with_missing_partners_on_stderr(store):
    result = invoke("gains", "--experiment", EXPERIMENT, "--tracking-uri", store.uri, "--format", "json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert len(rows) == 10
    [in_domain] = [
        r
        for r in rows
        if (r["train_dataset"], r["eval_dataset"], r["step"], r["format"]) == ("alpha", "alpha", 100, "default")
    ]
    assert in_domain["gain"] == pytest.approx(0.4) and in_domain["rel_gain"] == pytest.approx(1.0)
    assert in_domain["ci_method"] == "paired-bootstrap"
    delta = [r for r in rows if r["eval_dataset"] == "delta"][0]
    assert delta["rel_gain"] is None  # NaN: the base score is 0
    assert "Warning: 1 older finished run" in result.stderr
    assert "Missing partners: 2 run(s)" in result.stderr
    assert store.runs["alpha-alpha-300"] in result.stderr


def test_table_output_and_by_group_csv(store):
    table = invoke("learned", "--experiment", EXPERIMENT, "--tracking-uri", store.uri)
    assert table.exit_code == 0
    assert re.search(r"beta\s+amuro\s+nli\s+100\s+200\s+0\.5000\s+0\.7000\s+2\s+0\.6644\s.*pre-training", table.stdout)
    by_group = invoke(
        "gains", "--by-group", "--no-paired", "--format", "csv", "--experiment", EXPERIMENT, "--tracking-uri", store.uri
    )
    frame = pd.read_csv(io.StringIO(by_group.stdout))
    assert list(frame.columns) == ["model", "protocol", "step", "group", "mean_gain", "n"]
    assert list(frame["mean_gain"].round(6)) == [0.40, 0.10, 0.45, 0.05]


def test_experiment_defaults_to_the_environment(store, monkeypatch):
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", EXPERIMENT)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store.uri)
    result = invoke("transfer", "--format", "csv")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == "train_task,eval_task,mean_gain,n"
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME")
    result = CliRunner().invoke(cli, ["transfer"])
    assert result.exit_code == 1
    assert "no experiment named 'amuro-char'" in result.output


def test_out_file_and_log(sqlite_store, tmp_path):
    out = tmp_path / "sensitivity.csv"
    result = invoke(
        "sensitivity",
        "--experiment",
        EXPERIMENT,
        "--tracking-uri",
        sqlite_store.uri,
        "--model",
        MODEL,
        "--out",
        out,
        "--log",
    )
    assert result.exit_code == 0, result.output
    assert result.stdout == ""  # the table went to the file, MLflow's notices to stderr
    assert len(pd.read_csv(out)) == 17
    [run] = analysis_runs(sqlite_store.uri, "sensitivity")
    assert run.info.status == "FINISHED"
    assert run.data.tags["amuro.model"] == MODEL
    from mlflow import MlflowClient

    artifacts = {a.path for a in MlflowClient(sqlite_store.uri).list_artifacts(run.info.run_id)}
    assert artifacts == {"sensitivity.csv", "sensitivity.json", "score-by-format.png"}


def test_report_embeds_figures_and_is_logged(store, tmp_path):
    out = tmp_path / "report.html"
    result = invoke("report", "--experiment", EXPERIMENT, "--tracking-uri", store.uri, "--out", out)
    assert result.exit_code == 0, result.output
    page = out.read_text()
    images = re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", page)
    assert len(images) == 8
    for encoded in images:
        png = base64.b64decode(encoded)
        assert png.startswith(b"\x89PNG") and len(png) > 5000
    for heading in ["Gains", "Forgetting", "Transfer", "Prompt sensitivity", "Missing partners"]:
        assert f"<h2>{heading}</h2>" in page
    assert "paired-bootstrap" in page and "pre-training" in page
    from mlflow import MlflowClient

    runs = analysis_runs(store.uri, "report")
    assert runs, "the report is logged to an analysis run"
    artifacts = {a.path for a in MlflowClient(store.uri).list_artifacts(runs[0].info.run_id)}
    assert {
        "report.html",
        "score-by-step.png",
        "gain-by-group.png",
        "transfer.png",
        "score-by-format.png",
        "gains.csv",
        "learned.csv",
    } <= artifacts


def test_python_dash_m(sqlite_store):
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "analysis",
            "forgetting",
            "--experiment",
            EXPERIMENT,
            "--tracking-uri",
            sqlite_store.uri,
            "--format",
            "csv",
            "--no-paired",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    frame = pd.read_csv(io.StringIO(completed.stdout))
    assert sorted(frame["forgetting"].round(6)) == [-0.10, -0.05, 0.0, 0.05, 0.10]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--experiment", "nope"], "no experiment named 'nope'"),
        (["--experiment", EMPTY_EXPERIMENT], "no finished eval runs (tag amuro.kind=eval) in experiment(s) no-evals"),
        (
            ["--experiment", EXPERIMENT, "--model", "other"],
            "no finished eval runs (tag amuro.kind=eval) for model 'other'",
        ),
    ],
)
def test_bad_input_is_one_line_error(sqlite_store, args, message):
    result = CliRunner().invoke(cli, ["gains", "--tracking-uri", sqlite_store.uri, *args])
    assert result.exit_code == 1
    assert result.output.startswith("Error: ") and message in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1


def test_unreachable_server_and_missing_database(tmp_path):
    uri = f"http://127.0.0.1:{free_port()}"
    start = time.monotonic()
    result = CliRunner().invoke(cli, ["report", "--tracking-uri", uri, "--out", str(tmp_path / "r.html")])
    assert time.monotonic() - start < 30
    assert result.exit_code == 1
    assert result.output.strip() == (f"Error: cannot reach the tracking server at {uri} (ConnectionError)")
    missing = f"sqlite:///{tmp_path / 'nothing.db'}"
    result = CliRunner().invoke(cli, ["learned", "--tracking-uri", missing])
    assert result.exit_code == 1 and "no tracking database at" in result.output
    assert not (tmp_path / "nothing.db").exists()
