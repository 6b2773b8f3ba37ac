"""Which cells each finding reads: the study's own dataset pairs and checkpoints, a groups
file of one's own, shots and format, and the cells left out as degenerate."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from analysis.pairing import is_base
from analysis.published.ids import MAIN_STEP, SINGLE_CLASS_SETS
from analysis.published.ids import MODEL as STUDY_MODEL

# A pair is (eval dataset, training dataset); a training dataset of None means every
# training set the eval dataset is in-domain for.
Pair = tuple[str, "str | None"]

# The study's notebook (analysis/gen_paper_figs.ipynb), in catalogue names: SciQ of the
# multiple-choice table is sciq_mc, Tulu is tulu_v2, CNN is cnn_dailymail.
PAPER_FINE_TUNING: tuple[Pair, ...] = (
    ("mnli_matched", "mnli"),
    ("paws", "paws"),
    ("xsum", "xsum"),
    ("mnli_mismatched", "mnli"),
    ("xlsum", "xsum"),
    ("socialiqa", "socialiqa"),
    ("boolq", "tulu_v2"),
)
# SciQ is listed twice in the notebook, so it counts twice.
PAPER_PRE_TRAINING: tuple[Pair, ...] = (
    ("sciq_mc", "tulu_v2"),
    ("hellaswag", "tulu_v2"),
    ("arc_challenge", "tulu_v2"),
    ("arc_easy", "tulu_v2"),
    ("openbookqa", "tulu_v2"),
    ("sciq_mc", "tulu_v2"),
)
PAPER_OUT_OF_DOMAIN: tuple[Pair, ...] = (
    ("rte", "mnli"),
    ("gpt3nli", "mnli"),
    ("cnn_dailymail", "xsum"),
    ("qqp", "paws"),
    ("stsb", "paws"),
    ("tweetqa", "socialiqa"),
    ("sciq", "socialiqa"),
)
PAPER_CROSS_TASK: tuple[Pair, ...] = (
    ("xsum", "mnli"),
    ("socialiqa", "mnli"),
    ("xsum", "paws"),
    ("socialiqa", "paws"),
    ("paws", "xsum"),
    ("mnli_matched", "xsum"),
    ("mnli_matched", "socialiqa"),
    ("paws", "socialiqa"),
)
PAPER_SENSITIVITY: tuple[Pair, ...] = (
    ("mnli_matched", "mnli"),
    ("paws", "paws"),
    ("xsum", "xsum"),
    ("socialiqa", "socialiqa"),
)
PAPER_SHOTS = 4
TRAINING_FORMAT = "default"
STUDY_CHECKPOINTS = (1000, 18000, 342000, 424000, 505000, 592000, 738000, MAIN_STEP)
FINE_TUNING, PRE_TRAINING = "fine_tuning", "pre_training"
DEGENERATE_COLUMNS = ["model", "step", "eval_dataset", "format", "shots", "protocol", "reason"]
_CELL = ["model", "step", "eval_dataset", "format", "shots", "protocol"]


class FindingsError(ValueError):
    """Input the findings cannot be measured on; its message is one line for the user."""


@dataclass(frozen=True)
class Groups:
    """The two groups of finding (ii) as dataset pairs, and where they came from."""

    fine_tuning: tuple[Pair, ...]
    pre_training: tuple[Pair, ...]
    origin: str  # "paper", "file", or "trend test"


def read_groups(path: str | Path) -> Groups:
    """A YAML file of two lists, ``fine_tuning`` and ``pre_training``; each item is an eval
    dataset (paired with every training set it is in-domain for) or ``[eval, train]``."""
    import yaml

    try:
        content = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as error:
        raise FindingsError(f"cannot read groups file {path}: {_first_line(error)}") from None
    if not isinstance(content, dict) or not {FINE_TUNING, PRE_TRAINING} <= set(content):
        raise FindingsError(
            f"groups file {path} must be a mapping with the lists {FINE_TUNING} and "
            f"{PRE_TRAINING}, e.g. '{FINE_TUNING}: [mnli_matched, [boolq, tulu_v2]]'"
        )
    return Groups(_pairs(content[FINE_TUNING], path), _pairs(content[PRE_TRAINING], path), "file")


def _pairs(items, path) -> tuple[Pair, ...]:
    if not isinstance(items, list) or not items:
        raise FindingsError(f"groups file {path}: each group must be a non-empty list")
    pairs = []
    for item in items:
        if isinstance(item, str):
            pairs.append((item, None))
        elif isinstance(item, list) and len(item) == 2 and all(isinstance(i, str) for i in item):
            pairs.append((item[0], item[1]))
        else:
            raise FindingsError(
                f"groups file {path}: {item!r} is neither a dataset name nor a pair [eval dataset, training dataset]"
            )
    return tuple(pairs)


def _first_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def check_groups_exist(groups: Groups, cells: pd.DataFrame) -> None:
    """A groups file naming a dataset the store holds no tuned cell of is an error."""
    known_eval, known_train = set(cells["eval_dataset"]), set(cells["train_dataset"])
    for eval_dataset, train_dataset in groups.fine_tuning + groups.pre_training:
        if eval_dataset not in known_eval or (train_dataset and train_dataset not in known_train):
            name = eval_dataset if eval_dataset not in known_eval else train_dataset
            raise FindingsError(
                f"the groups file names {name!r}, of which this store holds no tuned cell; "
                f"eval datasets there: {', '.join(sorted(known_eval)) or 'none'}"
            )


def select_pairs(cells: pd.DataFrame, pairs: tuple[Pair, ...], relations=("in-domain",)) -> pd.DataFrame:
    """The cells of the listed pairs, one copy per listing (a pair listed twice counts twice),
    with the column ``unit`` naming the pair. A pair without a training set takes every
    training set it has a cell of in ``relations``."""
    chosen = []
    for index, (eval_dataset, train_dataset) in enumerate(pairs):
        rows = cells[cells["eval_dataset"] == eval_dataset]
        rows = rows[rows["train_dataset"] == train_dataset] if train_dataset else rows[rows["relation"].isin(relations)]
        for train, group in rows.groupby("train_dataset"):
            chosen.append(group.assign(unit=f"{eval_dataset}/{train}#{index}"))
    if not chosen:
        return cells.iloc[0:0].assign(unit=pd.Series(dtype=object))
    return pd.concat(chosen, ignore_index=True)


def holds_any(cells: pd.DataFrame, pairs: tuple[Pair, ...]) -> bool:
    return not select_pairs(cells, pairs).empty


def study_checkpoints(cells: pd.DataFrame) -> pd.DataFrame:
    """The study's eight checkpoints where the series is the study's own; else every one."""
    own = cells["model"] != STUDY_MODEL
    return cells[own | cells["step"].isin(STUDY_CHECKPOINTS)]


def usual_shots(cells: pd.DataFrame, preferred: int = PAPER_SHOTS) -> int | None:
    """``preferred`` when cells were scored with it, else the shot count most cells have."""
    if cells.empty:
        return None
    if (cells["shots"] == preferred).any():
        return preferred
    return int(cells["shots"].value_counts().sort_index().idxmax())


def degenerate_cells(runs: pd.DataFrame, predictions=None) -> pd.DataFrame:
    """Cells whose references hold a single class, so a score measures the answer's bias, not
    the ability: the released rows of sets the study scored on unlabelled splits, and any
    accuracy run whose ``predictions.json`` references are all one label."""
    published = runs[(runs["origin"] == "published") & runs["eval_dataset"].isin(SINGLE_CLASS_SETS)]
    found = [published.assign(reason=published["eval_dataset"].map(SINGLE_CLASS_SETS))]
    if predictions is not None:
        found.append(_single_class_runs(runs, predictions))
    table = pd.concat(found, ignore_index=True).reindex(columns=DEGENERATE_COLUMNS)
    return table.drop_duplicates(_CELL).sort_values(_CELL, kind="stable").reset_index(drop=True)


def _single_class_runs(runs: pd.DataFrame, predictions) -> pd.DataFrame:
    scored = runs[
        (runs["origin"] != "published") & (runs["metric"] == "accuracy") & runs["has_predictions"].astype(bool)
    ]
    # One run per cell is enough: every run of a cell scored the same references.
    scored = scored.assign(_base=is_base(scored)).sort_values("_base", ascending=False)
    scored = scored.drop_duplicates(_CELL)
    predictions.prefetch(scored["run_id"])
    single = []
    for index, run_id in zip(scored.index, scored["run_id"]):
        table = predictions.get(run_id)
        if (
            table is not None
            and "reference" in table
            and len(table) > 1
            and table["reference"].astype(str).nunique() == 1
        ):
            single.append(index)
    rows = scored.loc[single]
    return rows.assign(reason="every reference is one label: the score measures how often the model answers it")


def drop_degenerate(frame: pd.DataFrame, degenerate: pd.DataFrame) -> pd.DataFrame:
    """``frame`` without the rows of degenerate cells (matched on model, step, eval dataset,
    format, shots and protocol)."""
    if degenerate.empty or frame.empty:
        return frame
    flagged = flag_degenerate(frame, degenerate)
    return flagged[~flagged["degenerate"]].drop(columns="degenerate")


def flag_degenerate(frame: pd.DataFrame, degenerate: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with a boolean column ``degenerate``."""
    keys = degenerate[_CELL].astype({"step": "int64", "shots": "int64"})
    marked = frame.merge(keys.assign(_flag=True), on=_CELL, how="left")
    marked.index = frame.index
    return marked.assign(degenerate=marked.pop("_flag").notna())
