"""The verdicts follow the data: planted stores where each finding is true, false, or true on
part of the grid only, measured under both definitions; and bad input, one line each."""

import warnings

import pytest
from conftest import run_analysis
from contract import Cell, Plant
from session_files import locked, shared_folder

from analysis.findings import FindingsSettings, measure_findings
from analysis.runs import load_eval_runs

MODEL = "toy-lm"
STEPS = [100, 200, 400, 800]
FORMATS = {"default": 0.0, "instruct": 1.0, "io": 2.0}  # format penalty, in units of d(step)
# Two sets the base never learns, two it learns in pre-training; one twin of each task.
TASKS = {"ft_a": "nli", "ft_b": "nli", "pt_a": "mc", "pt_b": "mc", "twin_nli": "nli", "twin_mc": "mc"}
SE = 0.004


def base_score(dataset: str, index: int) -> float:
    rising = dataset.startswith("pt") or dataset == "twin_mc"
    return 0.30 + (0.08 * index if rising else 0.0) + (0.01 if dataset.endswith("b") else 0.0)


def plant(uri: str, experiment: str, *, fine_tuning_gain, pre_training_gain, forgetting, format_spread) -> None:
    """In-domain gains per checkpoint index, forgetting per relation, and the spread of the
    tuned score across formats per checkpoint index (the base has none)."""
    store = Plant(uri, experiment, MODEL, TASKS)
    for index, step in enumerate(STEPS):
        for dataset in TASKS:
            for fmt in FORMATS if dataset in ("ft_a", "ft_b") else ["default"]:
                store.log(Cell(step, "none", dataset, fmt, shots=4), base_score(dataset, index), SE)
        for train in ("ft_a", "ft_b", "pt_a", "pt_b"):
            gain = (fine_tuning_gain if train.startswith("ft") else pre_training_gain)[index]
            for fmt, penalty in (FORMATS if train.startswith("ft") else {"default": 0.0}).items():
                tuned = base_score(train, index) + gain - penalty * format_spread[index]
                store.log(Cell(step, train, train, fmt, shots=4), tuned, SE)
            for twin in ("twin_nli", "twin_mc"):
                relation = "out-of-domain" if TASKS[twin] == TASKS[train] else "cross-task"
                store.log(
                    Cell(step, train, twin, "default", shots=4), base_score(twin, index) - forgetting[relation], SE
                )


SCENARIOS = {
    "true": dict(
        fine_tuning_gain=[0.10, 0.15, 0.20, 0.25],
        pre_training_gain=[0.02, 0.02, 0.02, 0.02],
        forgetting={"out-of-domain": 0.05, "cross-task": 0.08},
        format_spread=[0.10, 0.08, 0.06, 0.04],
    ),
    "false": dict(
        fine_tuning_gain=[0.20, 0.18, 0.16, 0.14],
        pre_training_gain=[0.30, 0.30, 0.30, 0.30],
        forgetting={"out-of-domain": -0.05, "cross-task": -0.08},
        format_spread=[0.02, 0.04, 0.06, 0.08],
    ),
    # (i) and (ii) hold from step 400 on (tuning gains there), only cross-task forgets, and
    # the spread across formats peaks at step 200.
    "partly": dict(
        fine_tuning_gain=[0.0, -0.05, 0.20, 0.25],
        pre_training_gain=[0.10, 0.10, 0.03, 0.03],
        forgetting={"out-of-domain": -0.05, "cross-task": 0.08},
        format_spread=[0.0, 0.10, 0.06, 0.02],
    ),
}
EXPECTED = {
    "true": {
        "i": ("supported", "every checkpoint"),
        "ii": ("supported", "every checkpoint"),
        "iii": ("supported", "everywhere"),
        "iv": ("supported", "every checkpoint"),
    },
    "false": {
        "i": ("not supported", "nowhere"),
        "ii": ("not supported", "nowhere"),
        "iii": ("not supported", "nowhere"),
        "iv": ("not supported", "nowhere"),
    },
    "partly": {
        "i": ("mixed", "from step 400 on"),
        "ii": ("mixed", "from step 400 on"),
        "iii": ("supported", "cross-task only"),
        "iv": ("mixed", "from step 200 on"),
    },
}


@pytest.fixture(scope="session")
def planted_store(tmp_path_factory) -> str:
    """Every scenario in one store, planted once for all test workers and only read after."""
    root = shared_folder(tmp_path_factory)
    database, done = root / "findings-planted.db", root / "findings-planted.done"
    with locked(root / "findings-planted.lock"):
        if not done.exists():
            database.unlink(missing_ok=True)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                for name, scenario in SCENARIOS.items():
                    plant(f"sqlite:///{database}", name, **scenario)
            done.touch()
    return f"sqlite:///{database}"


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_verdicts_follow_the_planted_truth(planted_store, scenario):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        runs = load_eval_runs(scenario, planted_store)
    measured = measure_findings(runs, FindingsSettings("both"))
    assert "none of the study's datasets" in measured.notes[0]
    for row in measured.summary.itertuples(index=False):
        verdict, where = EXPECTED[scenario][row.finding]
        if row.definitions == "amuro" and row.finding in ("iii",) and scenario == "true":
            where = "everywhere"
        if row.definitions == "amuro" and row.finding == "iv" and scenario == "partly":
            where = "from step 400 on, where tuning gains"
        if row.definitions == "amuro" and row.finding == "iii" and scenario == "partly":
            where = "cross-task (ft_a, ft_b, pt_a, pt_b) only"
        assert (row.verdict, row.where) == (verdict, where), (row.finding, row.definitions)
        if verdict == "supported":
            assert row.ci_low <= row.value <= row.ci_high


def test_groups_come_from_the_trend_test(planted_store):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        runs = load_eval_runs("true", planted_store)
    groups = measure_findings(runs, FindingsSettings("amuro")).details["groups"]
    assert (groups["n_fine_tuning"] == 2).all() and (groups["n_pre_training"] == 2).all()
    assert groups["gap"].tolist() == pytest.approx([0.08, 0.13, 0.18, 0.23])


def test_a_groups_file_names_the_paper_groups(planted_store, tmp_path):
    groups = tmp_path / "groups.yaml"
    groups.write_text("fine_tuning: [ft_a]\npre_training: [[pt_a, pt_a], pt_b]\n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        runs = load_eval_runs("true", planted_store)
    measured = measure_findings(runs, FindingsSettings("paper", str(groups)))
    detail = measured.details["groups"]
    assert detail["gap"].tolist() == pytest.approx([0.08, 0.13, 0.18, 0.23])
    assert (detail["n_fine_tuning"] == 1).all() and not measured.notes


@pytest.mark.parametrize(
    "args, message",
    [
        (["--definitions", "strict"], "Error: unknown --definitions 'strict'; choose one of paper, amuro, both"),
        (
            ["--detail", "gains"],
            "Error: unknown --detail 'gains'; choose one of latent, groups, forgetting, sensitivity",
        ),
        (["--groups", "GROUPS"], "Error: the groups file names 'arc_easy', of which this store holds no tuned cell"),
        (["--experiment", "base-only"], "Error: no tuned eval runs paired with their base checkpoint"),
    ],
)
def test_bad_input_is_one_line(planted_store, tmp_path, args, message):
    groups = tmp_path / "groups.yaml"
    groups.write_text("fine_tuning: [ft_a]\npre_training: [arc_easy]\n")
    store = planted_store
    if "base-only" in args:
        store = f"sqlite:///{tmp_path}/base-only.db"
        Plant(store, "base-only", MODEL, TASKS).log(Cell(100, "none", "ft_a"), 0.5, SE)
    args = [str(groups) if arg == "GROUPS" else arg for arg in args]
    experiment = [] if "--experiment" in args else ["--experiment", "true"]
    completed = run_analysis("findings", "--tracking-uri", store, *experiment, *args, cwd=tmp_path)
    assert completed.returncode == 1
    lines = [line for line in completed.stderr.splitlines() if line.startswith("Error")]
    assert len(lines) == 1 and lines[0].startswith(message), completed.stderr
    assert "Traceback" not in completed.stderr and completed.stdout == ""
