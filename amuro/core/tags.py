"""Tag names of the tracking contract (docs/tracking-contract.md), their values, and search filters over them."""

from __future__ import annotations

from collections.abc import Mapping

from amuro.core.errors import UserError

PREFIX = "amuro."


class Tag:
    """Tag names: the contract's (docs/tracking-contract.md) and the bookkeeping ones beside it."""

    KIND = "amuro.kind"
    MODEL = "amuro.model"
    REVISION = "amuro.revision"
    STEP = "amuro.step"
    TOKENS = "amuro.tokens"
    MODEL_PARAMS = "amuro.model_params"
    TUNING = "amuro.tuning"
    TRAIN_DATASET = "amuro.train_dataset"
    EVAL_DATASET = "amuro.eval_dataset"
    TASK = "amuro.task"
    RELATION = "amuro.relation"
    FORMAT = "amuro.format"
    SHOTS = "amuro.shots"
    METRIC = "amuro.metric"
    SEED = "amuro.seed"
    SOURCE_RUN_ID = "amuro.source_run_id"
    RUN_KEY = "amuro.run_key"
    PROTOCOL = "amuro.protocol"
    TRAIN_SEED = "amuro.train_seed"
    ORIGIN = "amuro.origin"
    REFERENCE = "amuro.reference"
    HEARTBEAT = "amuro.heartbeat"
    # group runs and the launcher run of ``mlflow run``
    ENTRY_POINT = "amuro.entry_point"
    GROUP_RUN_ID = "amuro.group_run_id"
    RESULT_RUN_ID = "amuro.result_run_id"
    # who is running a run, and why a run failed
    HOST = "amuro.host"
    PID = "amuro.pid"
    PID_START = "amuro.pid_start"
    ERROR = "amuro.error"
    # what a run holds
    SERIES_DIR = "amuro.series_dir"
    MODEL_ID = "amuro.model_id"
    REF_KEY = "amuro.ref_key"
    TRIAL = "amuro.trial"
    PARENT_RUN_ID = "mlflow.parentRunId"
    # on a sweep or group run: ``amuro.reused.<run id>`` names a finished run one of its cells reused
    REUSED_PREFIX = "amuro.reused."


# The tags ``contract_tags`` writes, by their short names (``kind`` for ``amuro.kind``).
CONTRACT_TAGS = (
    "kind",
    "model",
    "revision",
    "step",
    "tokens",
    "model_params",
    "tuning",
    "train_dataset",
    "eval_dataset",
    "task",
    "relation",
    "format",
    "shots",
    "metric",
    "seed",
    "source_run_id",
    "run_key",
)


def tag_value(value: object) -> str:
    """Contract tag values are strings; numbers in plain decimal, unknowns empty."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def contract_tags(**values: object) -> dict[str, str]:
    """``contract_tags(kind="eval", step=400)`` -> ``{"amuro.kind": "eval", "amuro.step": "400"}``."""
    unknown = set(values) - set(CONTRACT_TAGS)
    if unknown:
        raise ValueError(f"not contract tags: {sorted(unknown)}")
    return {PREFIX + name: tag_value(value) for name, value in values.items()}


def quoted(value: object) -> str:
    """A string literal of MLflow's search grammar (which has no escapes: the other quote is used)."""
    text = tag_value(value)
    if "'" not in text:
        return f"'{text}'"
    if '"' not in text:
        return f'"{text}"'
    raise UserError(f"cannot search for {text!r}: a value holding both kinds of quote cannot be searched for")


def tag_filter(tags: Mapping[str, object] | None = None, *, status: str | None = None) -> str:
    """``tags.`amuro.kind` = 'eval' and ... and attributes.status = 'FINISHED'`` from full tag names."""
    terms = [f"tags.`{name}` = {quoted(value)}" for name, value in (tags or {}).items()]
    if status:
        terms.append(f"attributes.status = {quoted(status)}")
    return " and ".join(terms)
