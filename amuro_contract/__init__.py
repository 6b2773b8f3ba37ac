"""The tracking contract (docs/tracking-contract.md) as names: tags, metrics, artifacts and the cell key.

Both sides import it: ``amuro`` writes runs with these names and ``analysis`` reads them. It is plain Python
with no imports, so the analysis stays free of torch and of the rest of amuro. Change a name here and in
docs/tracking-contract.md together, never in a copy.
"""

PREFIX = "amuro."


class Tag:
    """Tag names: the contract's and the bookkeeping ones beside it."""

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
    # which code made a run: the amuro release, the git commit of a checkout, and each result version
    CODE_VERSION = "amuro.code_version"
    GIT_COMMIT = "amuro.git_commit"
    VERSION_PREFIX = "amuro.version."
    # group runs and the launcher run of ``mlflow run``
    ENTRY_POINT = "amuro.entry_point"
    GROUP_RUN_ID = "amuro.group_run_id"
    RESULT_RUN_ID = "amuro.result_run_id"
    # who is running a run, and why a run failed
    HEARTBEAT = "amuro.heartbeat"
    CLAIM = "amuro.claim"  # pending, won or lost
    HOST = "amuro.host"
    PID = "amuro.pid"
    PID_START = "amuro.pid_start"
    CELL = "amuro.cell"  # the sweep cell a run was made by
    ERROR = "amuro.error"
    # what a run holds
    SERIES_DIR = "amuro.series_dir"
    MODEL_ID = "amuro.model_id"
    REF_KEY = "amuro.ref_key"
    TRIAL = "amuro.trial"
    CHECKPOINT_STEP = "amuro.checkpoint_step"
    PARENT_RUN_ID = "mlflow.parentRunId"
    # on a sweep or group run: ``amuro.reused.<run id>`` names a run one of its cells took from another invocation
    REUSED_PREFIX = "amuro.reused."
    # a score imported from a published table
    CI_METHOD = "amuro.ci_method"
    PUBLISHED_ID = "amuro.published_id"
    PUBLISHED_TABLE = "amuro.published_table"


# The tags every contract writer sets, by their short names (``kind`` for ``amuro.kind``).
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

# The components whose version enters a run's key, by run kind; each is tagged ``amuro.version.<component>``.
VERSIONED = {
    "eval": ("rendering", "scoring", "metric"),
    "finetune": ("rendering", "features", "trainer"),
    "pretrain": ("pretrain",),
}
EVAL_VERSION_TAGS = tuple(VERSIONED["eval"])

# Eval runs' tags the analysis reads, by short name: the contract's, then protocol, replicates and provenance.
_FIRST_BOOKKEEPING = CONTRACT_TAGS.index("source_run_id")
EVAL_TAG_COLUMNS = (
    *CONTRACT_TAGS[1:_FIRST_BOOKKEEPING],  # model ... seed
    *("train_seed", "protocol", "origin", "reference"),
    *CONTRACT_TAGS[_FIRST_BOOKKEEPING:],  # source_run_id, run_key
    *("code_version", "git_commit"),
    *(f"version.{component}" for component in EVAL_VERSION_TAGS),
)
# Tags whose absence means a value.
TAG_DEFAULTS = {"protocol": "amuro", "origin": "run"}


class Metric:
    """Metric names of an eval run."""

    SCORE = "score"  # the primary metric, in [0, 1]
    CI_LOW = "score_ci_low"
    CI_HIGH = "score_ci_high"
    CI_MID = "score_ci_mid"  # the midpoint of the bootstrap interval, the figure the study reports
    SE = "score_se"
    N = "n"


EVAL_METRICS = (Metric.SCORE, Metric.CI_LOW, Metric.CI_HIGH, Metric.SE, Metric.N, Metric.CI_MID)
# Names an earlier release logged a metric under (published imports of that release).
FORMER_METRIC_NAMES = {Metric.CI_MID: "score_midpoint"}


class Artifact:
    """Artifact paths of the contract's runs."""

    PREDICTIONS = "predictions.json"  # eval: one row per item, logged with mlflow.log_table
    MODEL = "model"  # finetune: the tuned weights
    PROMPT = "prompt.txt"  # eval: the first item's full prompt


# Columns ``predictions.json`` has at least; ``item_id`` is stable for a dataset across runs.
PREDICTION_COLUMNS = ("item_id", "prediction", "reference", "item_score")
# Dataset inputs of an eval run that hold the scored items (``mlflow.data.context``).
EVAL_CONTEXT = "eval"

# One evaluated configuration; several finished runs of the same cell are re-runs. Rows that differ only in
# train_seed are seed replicates of one cell. The revision tells apart checkpoints of one step (OLMo-2's stage-2
# ingredients and the model souped from them).
CELL_KEY = (
    "model",
    "revision",
    "step",
    "tuning",
    "train_dataset",
    "eval_dataset",
    "format",
    "shots",
    "seed",
    "protocol",
    "origin",
    "train_seed",
)
