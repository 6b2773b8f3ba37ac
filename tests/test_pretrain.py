import subprocess

import pytest
from click.testing import CliRunner
from mlflow.tracking import MlflowClient
from series_settings import SMALL_SERIES
from sweeps import mlflow_run, store_env

from amuro.cli import main
from amuro.commands.pretrain import checkpoint_steps, pretrain
from amuro.core import tracking
from amuro.core.errors import UserError
from amuro.core.settings import PretrainSettings
from amuro.models.series import local_series


def test_checkpoint_schedule_is_dense_early_and_ends_at_last_step():
    assert checkpoint_steps(600, 5) == [38, 75, 150, 300, 600]
    assert checkpoint_steps(5, 5) == [1, 2, 3, 4, 5]
    gaps = [b - a for a, b in zip(checkpoint_steps(1000, 6), checkpoint_steps(1000, 6)[1:])]
    assert gaps == sorted(gaps)


def test_pretrain_run_follows_contract_and_is_reused(tracking_uri, capsys):
    settings = dict(SMALL_SERIES, steps=30)
    run_id = pretrain(PretrainSettings(series="unit", experiment="p", **settings))
    client = MlflowClient()
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags["amuro.kind"] == "pretrain" and run.data.tags["amuro.model"] == "unit"
    assert run.data.tags["amuro.run_key"]
    losses = [m.value for m in client.get_metric_history(run_id, "train_loss")]
    assert len(losses) >= 3 and losses[-1] < losses[0]
    tokens = client.get_metric_history(run_id, "checkpoint_tokens")
    assert [m.step for m in tokens] == checkpoint_steps(30, 4)
    artifacts = {a.path for a in client.list_artifacts(run_id, "series")}
    assert "series/manifest.json" in artifacts and len(artifacts) == 5
    series = local_series(run.data.tags["amuro.series_dir"])
    assert [c.step for c in series.checkpoints] == checkpoint_steps(30, 4)
    assert pretrain(PretrainSettings(series="unit", experiment="p", **settings)) == run_id
    assert f"reusing finished run {run_id}" in capsys.readouterr().out
    experiment_id = client.get_experiment_by_name("p").experiment_id
    assert len(client.search_runs([experiment_id])) == 1


@pytest.mark.parametrize(
    "args, message",
    [
        (["--steps", "abc"], "steps takes a whole number, got 'abc'"),
        (["--steps", "10", "--num-checkpoints", "20"], "num_checkpoints must be between 1 and steps"),
        (["--series", "../x"], "series name '../x' is not valid"),
        (["--corpus", "/no/such/corpus.txt"], "corpus /no/such/corpus.txt does not exist"),
        (["--hidden-size", "30", "--heads", "4"], "must be divisible by heads"),
    ],
)
def test_bad_input_is_one_line_and_non_zero(tracking_uri, args, message):
    result = CliRunner().invoke(main, ["pretrain", "--experiment", "bad", *args])
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit)


def test_unwritable_series_folder_is_a_user_error(tracking_uri, tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("AMURO_HOME", str(blocker))
    with pytest.raises(UserError, match="cannot write the series folder"):
        pretrain(PretrainSettings(series="nowhere", experiment="p", **dict(SMALL_SERIES, steps=5)))
    experiment_id = tracking.connect("p")
    runs = MlflowClient().search_runs([experiment_id])
    assert [r.info.status for r in runs] == ["FAILED"]


@pytest.mark.slow
def test_mlflow_run_entry_point(tmp_path):
    """The MLproject entry point trains once, then reuses; a wrong type fails without a traceback."""
    env = store_env(tmp_path, AMURO_HOME=str(tmp_path))
    command = mlflow_run("pretrain", {**SMALL_SERIES, "steps": 12}, "--experiment-name", "amuro-char")
    first = subprocess.run(command, env=env, capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert first.returncode == 0, first.stderr[-3000:]
    second = subprocess.run(command, env=env, capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "reusing finished run" in second.stdout + second.stderr
    import mlflow

    mlflow.set_tracking_uri(env["MLFLOW_TRACKING_URI"])
    try:
        client = MlflowClient()
        experiment_id = client.get_experiment_by_name("amuro-char").experiment_id
        pretrain_runs = client.search_runs([experiment_id], "tags.`amuro.kind` = 'pretrain'")
        assert len(pretrain_runs) == 1 and pretrain_runs[0].info.status == "FINISHED"
        assert len(local_series(pretrain_runs[0].data.tags["amuro.series_dir"]).checkpoints) == 4
        launchers = client.search_runs([experiment_id], "tags.`amuro.kind` = 'group'")
        assert {r.data.tags["amuro.result_run_id"] for r in launchers} == {pretrain_runs[0].info.run_id}
    finally:
        mlflow.set_tracking_uri(None)
    bad = subprocess.run(
        mlflow_run("pretrain", {"steps": "abc"}, "--experiment-name", "amuro-char"),
        env=env,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert bad.returncode != 0
    assert "steps takes a whole number, got 'abc'" in bad.stderr and "Traceback" not in bad.stderr.split("mlflow")[0]
