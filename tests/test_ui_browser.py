"""The study in the MLflow UI, seen by a real browser: a real ``mlflow server`` over a store from a small run,
opened in headless Chromium; the runs table shows the datasets and the chart view draws score against step."""

import re
import shutil
import subprocess

import pytest
from mlflow.tracking import MlflowClient

from amuro.commands.finetune import finetune
from amuro.commands.pretrain_eval import pretrain_eval
from amuro.core import tracking
from amuro.core.local_server import LocalServer
from amuro.core.settings import EvalSettings, FinetuneSettings, PretrainEvalSettings
from amuro.core.train_settings import TrainSettings

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium)")


def _browse(url: str, *args: str, budget_ms: int = 20000) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            CHROMIUM,
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--window-size=1600,1000",
            f"--virtual-time-budget={budget_ms}",
            *args,
            url,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )


def _page_text(url: str, wanted: list[str]) -> str:
    """The rendered page as text, once it shows everything wanted: the app loads its data after starting, and
    on a busy machine the charts need more virtual time, so each attempt waits twice as long."""
    for budget_ms in (20000, 40000, 80000, 160000):
        html = _browse(url, "--dump-dom", budget_ms=budget_ms).stdout
        text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", re.sub(r"<(style|script).*?</\1>", "", html, flags=re.S)))
        if all(word in text for word in wanted):
            return text
    return text


@pytest.fixture
def ui(tracking_uri, small_series, tmp_path):
    """A store with a pretrain-eval invocation and a finetune run, served by ``mlflow server``."""
    pretrain_eval(
        PretrainEvalSettings(
            experiment="ui",
            model=small_series,
            checkpoints="all",
            datasets="synth-nli",
            eval=EvalSettings(max_examples=4, shots=1, bootstrap=50),
        )
    )
    run_id = finetune(
        FinetuneSettings(
            experiment="ui",
            model=small_series,
            dataset="synth-nli",
            train=TrainSettings(epochs=1, max_train_examples=8, batch_size=8),
            evaluate=False,
        )
    )
    with LocalServer(tmp_path / "mlflow.db", tmp_path / "mlruns", serve_artifacts=False) as server:
        yield f"{server.uri}/#/experiments/{tracking.connect('ui')}/runs", run_id


def test_runs_table_shows_datasets_and_chart_view_draws_score_against_step(ui, tmp_path):
    page, finetune_run = ui
    (train,) = MlflowClient().get_run(finetune_run).inputs.dataset_inputs
    dataset = f"synth-nli ({train.dataset.digest})"
    table = _page_text(page, ["Training runs", dataset])
    assert "Training runs" in table  # the model-training view, not the GenAI overview
    assert "Dataset" in table and f"{dataset} train" in table
    assert "finetune small@step" in table and "pretrain-eval small (4 checkpoints x 1 cells)" in table

    charts = page + "?compareRunsMode=CHART"
    chart_text = _page_text(charts, ["base/synth-nli/default", "Step"])
    assert "base/synth-nli/default" in chart_text and "Step" in chart_text
    assert "pretrain-eval small (4 checkpoints x 1 cells) (base/synth-nli/default)" in chart_text  # its line
    screenshot = tmp_path / "chart.png"
    _browse(charts, f"--screenshot={screenshot}")
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and screenshot.stat().st_size > 20_000
