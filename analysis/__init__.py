"""Analysis of pre-training x fine-tuning runs, read from the tracking server only.

Everything is computed from eval runs (tag ``amuro.kind = eval``) through the tracking
contract, so it works for any runs that follow it. Definitions: docs/entry-points/analyze.md.

Commands (also ``amuro analyze ...`` and the MLproject entry point ``analyze``)::

    python -m analysis gains        --experiment NAME [--by-group] [--relation R ...]
    python -m analysis forgetting   --experiment NAME
    python -m analysis transfer     --experiment NAME
    python -m analysis sensitivity  --experiment NAME
    python -m analysis learned      --experiment NAME [--prompt-format default]
    python -m analysis findings     --experiment NAME [--definitions paper|amuro|both]
                                    [--detail latent|groups|forgetting|sensitivity]
                                    [--groups FILE] [--keep-degenerate]
    python -m analysis report       --experiment NAME [--out amuro-report.html]

Common options: ``--tracking-uri URI`` (default: MLflow's own resolution,
``MLFLOW_TRACKING_URI``), ``--model M`` (one checkpoint series), ``--format table|csv|json``,
``--out FILE``, ``--log`` (record the outputs as artifacts of a new run tagged
``amuro.kind=analysis``), ``--no-paired`` (intervals from standard errors only),
``--cache-dir`` (prediction tables, default ``$AMURO_HOME/predictions``, else
``~/.cache/amuro/predictions``). ``--experiment``
may be repeated; it defaults to ``MLFLOW_EXPERIMENT_NAME``, else ``amuro-char``.

- ``gains``: gain = score(tuned) − score(base) at the same checkpoint, eval dataset, prompt
  format and shots; ``rel_gain`` = gain / base. ``ci_method`` says how the 95% interval was
  made: ``paired-bootstrap`` (3000 resamples of item_id, seed 0, percentile) when both runs
  logged ``predictions.json``, else ``normal-se`` (gain ± 1.96·sqrt(se₁² + se₂²)).
  ``--by-group`` gives the mean in-domain gain per checkpoint for datasets learned in
  pre-training vs in fine-tuning.
- ``forgetting``: score(base) − score(tuned) on out-of-domain and cross-task runs.
- ``transfer``: mean gain by (task tuned on) x (task evaluated).
- ``sensitivity``: spread, population std and default-format gap across prompt formats.
- ``learned``: ``pre-training`` when the base score's least-squares slope against log10(step),
  over every checkpoint, has its 95% interval above zero, else ``fine-tuning``.
- ``findings``: the study's four findings as claims, each under the paper's definitions and
  amuro's, with a value, a 95% interval, a verdict and where it holds (definitions in
  ``analysis.findings``).
- ``report``: one self-contained HTML page, the findings first, then the figures and tables;
  also logged to an analysis run so it opens from the MLflow UI.

Runs without a partner are printed (on stderr) as missing, never dropped silently. Only
FINISHED runs count; of several finished runs of one cell the newest is used, with a warning.

Python use::

    from analysis import load_eval_runs, PredictionTables, gains
    runs = load_eval_runs("amuro-char", "http://127.0.0.1:5000")
    result = gains(runs, PredictionTables("http://127.0.0.1:5000"))
    result.table, result.missing
"""

from analysis.compare import Paired, forgetting, gains, transfer
from analysis.findings import FindingsSettings, measure_findings
from analysis.learned import gains_by_group, learned
from analysis.predictions import PredictionTables
from analysis.runs import load_eval_runs
from analysis.sensitivity import sensitivity

__all__ = [
    "FindingsSettings",
    "Paired",
    "PredictionTables",
    "forgetting",
    "gains",
    "gains_by_group",
    "learned",
    "load_eval_runs",
    "measure_findings",
    "sensitivity",
    "transfer",
]
