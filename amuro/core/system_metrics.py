"""MLflow system metrics on the runs that do the work (finetune and eval cells).

MLflow's own monitor samples CPU, memory, disk and network (and NVIDIA GPUs, through ``nvidia-ml-py``) into
``system/*`` metrics. Cells turn it on unless
``MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING`` says otherwise, at an interval that suits how long the kind of run
lasts, unless ``MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL`` asks for another: a fine-tune (minutes to hours) every
15 s; an eval cell every 60 s, and since MLflow logs a sample only once its interval has passed, a cell shorter
than a minute logs none, which keeps the store's metric count in step with the runs' length rather than their
number. A sweep names each cell's machine with ``MLFLOW_SYSTEM_METRICS_NODE_ID`` (``system/<node>/*``).
"""

from __future__ import annotations

import logging
import os

import mlflow

ENABLE_ENV = "MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING"
INTERVAL_ENV = "MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL"
NODE_ENV = "MLFLOW_SYSTEM_METRICS_NODE_ID"
SAMPLING_SECONDS = {"finetune": 15.0, "eval": 60.0}
DEFAULT_SAMPLING_SECONDS = 15.0
# The interval amuro set last (inherited by the cells a sweep starts), so a user's own setting is told apart.
SET_BY_AMURO_ENV = "AMURO_SYSTEM_METRICS_INTERVAL_SET"


def _asked() -> str | None:
    """The sampling interval the user set, if any."""
    given = os.environ.get(INTERVAL_ENV)
    return given if given and given != os.environ.get(SET_BY_AMURO_ENV) else None


def sampling_interval(kind: str | None) -> float:
    """Seconds between samples for a run of this kind: the user's interval if one is set, else the kind's."""
    asked = _asked()
    return float(asked) if asked else SAMPLING_SECONDS.get(kind or "", DEFAULT_SAMPLING_SECONDS)


def monitoring(kind: str | None = None) -> bool:
    """Whether a run of this kind logs system metrics now (on by default), with its sampling interval in place."""
    if os.environ.get(ENABLE_ENV, "true").strip().lower() not in ("1", "true", "yes", "on"):
        return False
    if not _asked():
        mlflow.set_system_metrics_sampling_interval(sampling_interval(kind))
        os.environ[SET_BY_AMURO_ENV] = os.environ.get(INTERVAL_ENV, "")
    logging.getLogger("mlflow.system_metrics").setLevel(logging.WARNING)  # no start/stop lines per cell
    return True


def node_environment(node_id: str) -> dict[str, str]:
    """The environment naming a cell's node in its system metrics, unless the user named one already."""
    return {} if os.environ.get(NODE_ENV) else {NODE_ENV: node_id}
