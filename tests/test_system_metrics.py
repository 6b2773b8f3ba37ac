"""System metrics: finetune and eval cells log MLflow's system/* metrics, sampled as often as asked."""

from mlflow.tracking import MlflowClient

from amuro.commands.finetune import finetune
from amuro.core.settings import FinetuneSettings
from amuro.core.system_metrics import node_environment
from amuro.core.train_settings import TrainSettings


def test_finetune_logs_system_metrics(tracking_uri, small_series, monkeypatch):
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "0.05")  # several samples in a second-long run
    run_id = finetune(
        FinetuneSettings(
            experiment="sys",
            model=small_series,
            dataset="synth-nli",
            train=TrainSettings(epochs=1, max_train_examples=24, batch_size=8),
            evaluate=False,
        )
    )
    client = MlflowClient()
    system = {key for key in client.get_run(run_id).data.metrics if key.startswith("system/")}
    assert {"system/cpu_utilization_percentage", "system/system_memory_usage_megabytes"} <= system
    history = client.get_metric_history(run_id, "system/cpu_utilization_percentage")
    assert len(history) >= 2 and all(0 <= point.value <= 100 * 64 for point in history)


def test_system_metrics_can_be_turned_off(tracking_uri, small_series, monkeypatch):
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "0.2")
    monkeypatch.setenv("MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING", "false")
    run_id = finetune(
        FinetuneSettings(
            experiment="sys",
            model=small_series,
            dataset="synth-nli",
            train=TrainSettings(epochs=1, max_train_examples=8, batch_size=8),
            evaluate=False,
        )
    )
    assert not [key for key in MlflowClient().get_run(run_id).data.metrics if key.startswith("system/")]


def test_a_node_id_given_by_the_user_wins(monkeypatch):
    monkeypatch.delenv("MLFLOW_SYSTEM_METRICS_NODE_ID", raising=False)
    assert node_environment("host-a") == {"MLFLOW_SYSTEM_METRICS_NODE_ID": "host-a"}
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_NODE_ID", "gpu-node-3")
    assert node_environment("host-a") == {}


def test_the_interval_suits_the_kind_of_run_unless_the_user_sets_one(monkeypatch):
    from amuro.core.system_metrics import INTERVAL_ENV, monitoring, sampling_interval

    monkeypatch.delenv(INTERVAL_ENV, raising=False)
    assert monitoring("eval") and sampling_interval("eval") == 60.0  # a cell under a minute logs no sample
    assert monitoring("finetune") and sampling_interval("finetune") == 15.0
    monkeypatch.setenv(INTERVAL_ENV, "2")
    assert monitoring("eval") and sampling_interval("eval") == sampling_interval("finetune") == 2.0
