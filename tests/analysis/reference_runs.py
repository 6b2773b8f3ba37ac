"""The study's released OLMo-1B results as an eval-runs frame, the shape ``load_eval_runs``
returns (4-shot runs of the numbered checkpoints; ``main`` is left out because its step is
not given)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.runs import RUN_COLUMNS

_ROOT = Path(__file__).resolve().parents[2]
RESULTS = next(
    (path for path in (
        shared / "reference/amuro-char-results/all_perf_table.csv"
        for shared in (_ROOT / "shared", _ROOT.parent / "shared")
    ) if path.exists()),
    _ROOT / "shared/reference/amuro-char-results/all_perf_table.csv",
)
MODEL = "allenai/OLMo-1B-hf"
TASKS = {
    "mnli": "nli", "mnli_matched": "nli", "mnli_mismatched": "nli", "rte": "nli",
    "gpt3nli": "nli", "paws": "paraphrase", "qqp": "paraphrase", "stsb": "paraphrase",
    "xsum": "summary", "xlsum": "summary", "cnn": "summary", "socialiqa": "qgen",
    "tweetqa": "qgen", "sciq": "qgen",
}
BASE = re.compile(r"olmo1b_checkpoint-(\d+)_original_hf_4shots$")
TUNED = re.compile(r"olmo1b_hf_ckpt(\d+)_([a-z]+)_\d+epoch_[\d.e-]+_4shots$")
FORMATS = {"_instruct": "instruct", "_inputoutput": "io"}


def _format(name: str) -> tuple[str, str]:
    for suffix, prompt_format in FORMATS.items():
        if name.endswith(suffix):
            return name[: -len(suffix)], prompt_format
    return name, "default"


def _relation(train: str, dataset: str) -> str:
    if train == "none":
        return "base"
    if dataset == train or dataset == f"{train}_matched":
        return "in-domain"
    same_task = TASKS.get(train) is not None and TASKS.get(train) == TASKS.get(dataset)
    return "out-of-domain" if same_task else "cross-task"


def reference_runs(path: Path = RESULTS) -> pd.DataFrame:
    rows = []
    for index, record in pd.read_csv(path, index_col=0).iterrows():
        if base := BASE.match(record["model_id"]):
            step, tuning, train = int(base[1]), "none", "none"
        elif tuned := TUNED.match(record["model_id"]):
            step, train = int(tuned[1]), tuned[2]
            tuning = "it" if train == "tulu" else "sft"
        else:
            continue
        dataset, prompt_format = _format(record["eval dataset"])
        score, se = float(record["Performance"]), float(record["std"])
        task = TASKS.get(dataset, "instruction-following")
        rows.append({
            "run_id": f"reference-{index}", "experiment": "amuro-char-reference",
            "model": MODEL, "revision": f"step{step}", "step": step, "tokens": pd.NA,
            "tuning": tuning, "train_dataset": train, "eval_dataset": dataset, "task": task,
            "relation": _relation(train, dataset), "format": prompt_format, "shots": 4,
            "metric": "rougeL" if task in ("summary", "qgen") else "accuracy", "seed": 0,
            "source_run_id": "", "run_key": record["model_id"], "score": score,
            "score_ci_low": score - 1.96 * se, "score_ci_high": score + 1.96 * se,
            "score_se": se, "n": np.nan, "start_time": index, "has_predictions": False,
        })
    frame = pd.DataFrame(rows, columns=RUN_COLUMNS)
    return frame.astype({"tokens": "Int64", "seed": "Int64"})
