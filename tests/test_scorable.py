"""The scorer's one interface: catalogue specs reach it wrapped in ``CatalogueDataset``, which keys, tags and
checks their cells as the scorer always did."""

import pytest

from amuro import data
from amuro.core.errors import UserError
from amuro.core.settings import EvalSettings
from amuro.core.tracking import Tag
from amuro.models.targets import tuned_target
from amuro.scoring.cells import cell_key, cell_tags, check_cells, select_cells
from amuro.scoring.scorable import CatalogueDataset, ScorableDataset


def test_selected_catalogue_cells_are_scorable_datasets_keyed_and_tagged_as_their_specs():
    nli, qgen = data.get("synth-nli"), data.get("synth-qgen")
    settings = EvalSettings(shots=2, max_examples=6)
    cells = select_cells([nli, qgen], "all", settings.protocol)
    assert all(isinstance(dataset, CatalogueDataset) and isinstance(dataset, ScorableDataset) for dataset, _ in cells)
    assert [fmt for dataset, fmt in cells if dataset.name == "synth-nli"] == list(data.formats_for(nli))
    tuned = {"model": "tiny", "revision": "step600", "step": 600, "tokens": None, "tuning": "sft", "run_id": "r1"}
    target = tuned_target(**tuned, train_dataset="synth-nli", seed=settings.seed, train_seed=1)
    wrapped = {dataset.name: dataset for dataset, _ in cells}
    for spec in (nli, qgen):
        assert cell_key(target, wrapped[spec.name], "default", settings) == cell_key(target, spec, "default", settings)
    tags = {name: cell_tags(target, dataset, "default", settings) for name, dataset in wrapped.items()}
    assert tags["synth-nli"] == cell_tags(target, nli, "default", settings)
    assert [tags[name][Tag.RELATION] for name in ("synth-nli", "synth-qgen")] == ["in-domain", "cross-task"]
    assert tags["synth-qgen"][Tag.METRIC] == qgen.metric and tags["synth-qgen"][Tag.SHOTS] == "2"
    assert tags["synth-nli"][Tag.PROTOCOL] == "amuro" and tags["synth-nli"][Tag.TRAIN_SEED] == "1"
    with pytest.raises(UserError, match="lower --shots"):
        check_cells(cells, EvalSettings(shots=100_000, demos="first-k"))
