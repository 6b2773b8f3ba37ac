"""Checkpoints that share a step (OLMo-2's three stage-2 ingredients and the model souped from them) are
cells apart in the analysis: none is dropped as a re-run, and each tuned model pairs with its own base."""

import warnings

from contract import Cell, Plant

from analysis.pairing import pair_with_base
from analysis.runs import DuplicateRunsWarning, load_eval_runs

MODEL = "allenai/OLMo-2-1124-7B"
STEP = 940577
REVISIONS = [
    "stage2-ingredient1-step11931-tokens50B",
    "stage2-ingredient2-step11931-tokens50B",
    "stage2-ingredient3-step11931-tokens50B",
    "main",
]


def test_ingredients_and_main_at_one_step_are_four_cells_each_paired_with_its_own_base(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    plant = Plant(uri, "olmo2", MODEL, {"synth-nli": "nli"})
    base_of, tuned_of = {}, {}
    for i, revision in enumerate(REVISIONS):
        base_of[revision] = plant.log(Cell(STEP, "none", "synth-nli"), 0.40 + i / 100, 0.01)
        tuned_of[revision] = plant.log(Cell(STEP, "synth-nli", "synth-nli"), 0.60 + i / 100, 0.01)
        for run_id in (base_of[revision], tuned_of[revision]):
            plant.client.set_tag(run_id, "amuro.revision", revision)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DuplicateRunsWarning)
        runs = load_eval_runs("olmo2", uri)
    assert len(runs) == 8 and set(runs["revision"]) == set(REVISIONS) and set(runs["step"]) == {STEP}
    pairs, unpaired = pair_with_base(runs)
    assert unpaired.empty and len(pairs) == 4
    assert dict(zip(pairs["run_id"], pairs["run_id_base"])) == {tuned_of[r]: base_of[r] for r in REVISIONS}
