"""The study's four findings as claims, each measured under two sets of definitions, with a
value, a 95% interval and a verdict (``supported``, ``not supported``, ``mixed``, or
``untestable`` where the store lacks what the measure needs) and ``where`` it holds.

The findings (the study's abstract): (i) pre-training improves the model in a latent way that
fine-tuning reveals; (ii) datasets not learned in pre-training gain more from fine-tuning than
those learned in it; (iii) fine-tuning may forget domain knowledge and tasks not tuned on;
(iv) tuned models are sensitive to the prompt format, less so with more pre-training.

``paper``: the study's own computation (its notebook ``analysis/gen_paper_figs.ipynb``, cells
6, 7, 14-17, 24-29 and 34-35, on the tables of ``analysis/produce_tables.py``): the default
prompt format, 4 shots, the raw change tuned − base per (eval, training) dataset pair, its
eight checkpoints (1000 ... 738000 and main) for OLMo-1B, and hand-picked pairs:

- (i) latent gain at a checkpoint = mean over the learned-in-fine-tuning pairs of
  gain(checkpoint) − gain(first checkpoint); summary: its value at the last checkpoint.
- (ii) learned in fine-tuning: (mnli_matched, mnli), (mnli_mismatched, mnli), (paws, paws),
  (xsum, xsum), (xlsum, xsum), (socialiqa, socialiqa), (boolq, tulu_v2); learned in
  pre-training: (sciq_mc, tulu_v2) twice, (hellaswag, tulu_v2), (arc_challenge, tulu_v2),
  (arc_easy, tulu_v2), (openbookqa, tulu_v2). gap per checkpoint = mean raw change of the
  first group − of the second; summary: the mean gap over checkpoints.
- (iii) forgetting = base − tuned, mean over checkpoints and pairs, per relation: out-of-domain
  (rte, gpt3nli on mnli; cnn_dailymail on xsum; qqp, stsb on paws; tweetqa, sciq on socialiqa)
  and cross-task (xsum, socialiqa on mnli and paws; paws, mnli_matched on xsum and socialiqa).
- (iv) per checkpoint, the mean over (mnli_matched, mnli), (paws, paws), (xsum, xsum),
  (socialiqa, socialiqa) of the tuned score's population std across the default, instruct and
  io formats; the claim is its fall from the checkpoint where it peaks to the last one.

A part of the grid holds under ``paper`` when its point estimate points the claimed way, as
the study judged; the 95% interval beside it is a bootstrap over the dataset pairs. For
another series, ``--groups FILE`` names the two groups of (ii) (and of (i)); without it, and
without the study's datasets, the groups come from amuro's trend test, with a note. Pairs of
the study's datasets that a store lacks are left out; a store holding none of them is judged
on every cell its relation tags select.

``amuro``: the same claims, measured honestly: groups from a trend test over the whole base
series (``analysis.learned``: the slope of the base score against log10(step) with its
interval, not two endpoints); every checkpoint; gains with their own intervals, drawn into a
two-level bootstrap (dataset pairs, then each cell's sampling noise); forgetting separately
for out-of-domain and cross-task and per training set; sensitivity as the slope of the std
across formats against log10(step) over the checkpoints from which tuning gains (the mean
in-domain gain's interval above zero there and at every later checkpoint). A part holds when
its 95% interval lies on the claimed side of zero.

Verdicts: (i), (ii) must hold at every checkpoint (``mixed`` where only at some; ``where``
says ``from step X on`` when those are the later ones); (iii) says tuning *may* forget, so it
is supported where any part forgets and ``where`` names the parts; (iv) is supported when the
std falls from the first checkpoint, ``mixed`` when only from a later one.

Degenerate cells (references of a single class: the released QQP and STS-B rows; any run
whose ``predictions.json`` references are all one label) are left out unless asked for.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from analysis.compare import gains
from analysis.findings.claims import (
    DEFINITION_CHOICES,
    DEFINITIONS,
    DETAILS,
    FINDINGS,
    STATEMENTS,
    SUMMARY_COLUMNS,
    Definitions,
)
from analysis.findings.measures import (
    FORGETTING_RELATIONS,
    Scope,
    forgetting,
    group_gap,
    latent,
    sensitivity,
)
from analysis.findings.scope import (
    PAPER_CROSS_TASK,
    PAPER_FINE_TUNING,
    PAPER_OUT_OF_DOMAIN,
    PAPER_PRE_TRAINING,
    PAPER_SENSITIVITY,
    FindingsError,
    Groups,
    check_groups_exist,
    degenerate_cells,
    drop_degenerate,
    flag_degenerate,
    holds_any,
    read_groups,
    select_pairs,
    study_checkpoints,
    usual_shots,
)
from analysis.findings.sizes import across_sizes, model_sizes
from analysis.learned import PRE_TRAINING, learned

__all__ = [
    "DETAILS",
    "FINDINGS",
    "STATEMENTS",
    "SUMMARY_COLUMNS",
    "Findings",
    "FindingsError",
    "FindingsSettings",
    "flag_degenerate",
    "measure_findings",
]


@dataclass(frozen=True)
class FindingsSettings:
    definitions: str = "both"
    groups_file: str | None = None
    keep_degenerate: bool = False


@dataclass
class Findings:
    summary: pd.DataFrame  # SUMMARY_COLUMNS, one row per finding, definitions, model, protocol
    details: dict[str, pd.DataFrame]  # DETAILS -> the table behind each finding
    degenerate: pd.DataFrame  # the degenerate cells and why (left out unless kept)
    notes: list[str] = field(default_factory=list)
    sizes: pd.DataFrame = field(default_factory=pd.DataFrame)  # the summary across series of known size


def measure_findings(runs: pd.DataFrame, settings: FindingsSettings = FindingsSettings(), predictions=None) -> Findings:
    """The four findings on ``runs`` (eval runs as ``analysis.runs`` loads them)."""
    if settings.definitions not in DEFINITION_CHOICES:
        raise FindingsError(f"unknown definitions {settings.definitions!r}; choose {', '.join(DEFINITION_CHOICES)}")
    chosen = [DEFINITIONS[name] for name in ("paper", "amuro") if settings.definitions in (name, "both")]
    groups_file = read_groups(settings.groups_file) if settings.groups_file else None
    degenerate = degenerate_cells(runs, predictions)
    cells = gains(runs, predictions).table
    if not settings.keep_degenerate:
        cells = drop_degenerate(cells, degenerate)
    if cells.empty:
        raise FindingsError(
            "no tuned eval runs paired with their base checkpoint: the findings "
            "compare tuned models with their base, so run finetune and "
            "crosseval (or amuro sweep) first"
        )
    if groups_file:
        check_groups_exist(groups_file, cells)
    trend = learned(runs)
    labels = _checkpoint_labels(runs)
    rows, details, notes = [], {name: [] for name in DETAILS}, []
    for (model, protocol), model_cells in cells.groupby(["model", "protocol"], sort=True):
        for definitions in chosen:
            scope = _scope(model, protocol, model_cells, labels, definitions)
            groups = _groups(scope, definitions, groups_file, trend, notes)
            measured = _measure(scope, definitions, groups)
            for name, (row, detail) in zip(DETAILS, measured):
                rows.append(row)
                details[name].append(detail)
    summary = pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
    tables = {name: pd.concat(parts, ignore_index=True) if parts else pd.DataFrame() for name, parts in details.items()}
    return Findings(summary, tables, degenerate, notes, across_sizes(summary, model_sizes(runs)))


def _measure(scope: Scope, definitions: Definitions, groups: Groups):
    paper = definitions.name == "paper"
    cells = scope.at_training_format()
    sensitivity_pairs = PAPER_SENSITIVITY if paper and holds_any(cells, PAPER_SENSITIVITY) else None
    return [
        latent(scope, definitions, groups.fine_tuning),
        group_gap(scope, definitions, groups.fine_tuning, groups.pre_training),
        forgetting(scope, definitions, _forgetting_scopes(cells, paper)),
        sensitivity(scope, definitions, sensitivity_pairs),
    ]


def _scope(model, protocol, cells, labels, definitions: Definitions) -> Scope:
    if definitions.name == "paper":
        cells = study_checkpoints(cells)
    at_training_format = cells[cells["format"] == "default"]
    shots = usual_shots(at_training_format if not at_training_format.empty else cells)
    steps = tuple(sorted(int(step) for step in cells["step"].unique()))
    names = {step: labels.get((model, step), f"step {step}") for step in steps}
    return Scope(model, protocol, cells, steps, names, shots)


def _groups(scope: Scope, definitions: Definitions, groups_file: Groups | None, trend, notes: list[str]) -> Groups:
    paper_pairs = PAPER_FINE_TUNING + PAPER_PRE_TRAINING
    if definitions.name == "paper":
        if groups_file:
            return groups_file
        if holds_any(scope.at_training_format(), paper_pairs):
            return Groups(PAPER_FINE_TUNING, PAPER_PRE_TRAINING, "paper")
        notes.append(
            f"{scope.model} ({scope.protocol}): none of the study's datasets, so the "
            "paper definitions use the groups of amuro's trend test; give "
            "--groups FILE to name them"
        )
    own = trend[(trend["model"] == scope.model) & (trend["protocol"] == scope.protocol)]
    rising = own["learned_in"] == PRE_TRAINING
    return Groups(
        tuple((name, None) for name in own.loc[~rising, "eval_dataset"]),
        tuple((name, None) for name in own.loc[rising, "eval_dataset"]),
        "trend test",
    )


def _forgetting_scopes(cells: pd.DataFrame, paper: bool) -> dict[str, pd.DataFrame]:
    if paper and holds_any(cells, PAPER_OUT_OF_DOMAIN + PAPER_CROSS_TASK):
        return {
            "out-of-domain": select_pairs(cells, PAPER_OUT_OF_DOMAIN),
            "cross-task": select_pairs(cells, PAPER_CROSS_TASK),
        }
    return {
        relation: cells[cells["relation"] == relation].assign(
            unit=lambda frame: frame["eval_dataset"] + "/" + frame["train_dataset"]
        )
        for relation in FORGETTING_RELATIONS
    }


def _checkpoint_labels(runs: pd.DataFrame) -> dict[tuple[str, int], str]:
    named = runs.drop_duplicates(["model", "step"])
    return {
        (model, int(step)): "main" if revision == "main" else f"step {int(step)}"
        for model, step, revision in zip(named["model"], named["step"], named["revision"])
    }
