"""MLflow system metrics on the runs that do the work (finetune and eval cells).

MLflow's own monitor samples CPU, memory, disk and network (and NVIDIA GPUs when ``nvidia-ml-py`` is
installed: ``pip install -e '.[gpu]'``) into ``system/*`` metrics. Cells turn it on unless
``MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING`` says otherwise, and sample every few seconds unless
``MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL`` sets the interval, so short eval cells get a sample too.
A sweep names each cell's machine with ``MLFLOW_SYSTEM_METRICS_NODE_ID`` (``system/<node>/*``).
"""

from __future__ import annotations

import logging
import os

import mlflow

ENABLE_ENV = "MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING"
INTERVAL_ENV = "MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL"
NODE_ENV = "MLFLOW_SYSTEM_METRICS_NODE_ID"
CELL_SAMPLING_SECONDS = 5.0


def monitoring() -> bool:
    """Whether cells log system metrics now (on by default), with the cells' sampling interval in place."""
    if os.environ.get(ENABLE_ENV, "true").strip().lower() not in ("1", "true", "yes", "on"):
        return False
    if not os.environ.get(INTERVAL_ENV):
        mlflow.set_system_metrics_sampling_interval(CELL_SAMPLING_SECONDS)
    logging.getLogger("mlflow.system_metrics").setLevel(logging.WARNING)  # no start/stop lines per cell
    return True


def node_environment(node_id: str) -> dict[str, str]:
    """The environment naming a cell's node in its system metrics, unless the user named one already."""
    return {} if os.environ.get(NODE_ENV) else {NODE_ENV: node_id}
