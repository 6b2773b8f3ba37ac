"""Which items a cell scores (a seeded sample), the study's demonstrations for multiple choice (catwalk's draw),
and the study's untruncated prompts."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch
from hubdata import FIXTURES, local_study_data
from mlflow.tracking import MlflowClient
from transformers import AutoModelForCausalLM, AutoTokenizer, GPT2Config, GPT2LMHeadModel

from amuro.commands.pretrain_eval import pretrain_eval
from amuro.core import tracking
from amuro.core.errors import UserError
from amuro.core.settings import EvalSettings, PretrainEvalSettings
from amuro.data import get, load_examples, render
from amuro.data.formats import continuation, few_shot_prefix
from amuro.data.protocol import for_protocol
from amuro.scoring.cell_items import cell_examples, item_rows
from amuro.scoring.cell_scoring import score_cell
from amuro.scoring.scorer import Scorer


def _last_checkpoint(small_series, **config):
    folder = Path(small_series) / sorted(p.name for p in Path(small_series).iterdir() if p.is_dir())[-1]
    return AutoModelForCausalLM.from_pretrained(folder, **config).eval(), AutoTokenizer.from_pretrained(folder)


def test_max_examples_is_a_seeded_sample_shared_by_every_checkpoint(tracking_uri, small_series):
    quick = dict(max_examples=4, shots=0, bootstrap=50)
    for seed in (0, 1):
        pretrain_eval(
            PretrainEvalSettings(
                experiment="items",
                model=small_series,
                checkpoints="2",
                datasets="synth-nli",
                formats="default",
                eval=EvalSettings(seed=seed, **quick),
            )
        )
    client = MlflowClient()
    runs = client.search_runs([tracking.connect("items")], "tags.`amuro.kind` = 'eval'")
    items, digests = {}, {}
    for run in runs:
        path = client.download_artifacts(run.info.run_id, "predictions.json")
        table = json.loads(Path(path).read_text())
        ids = tuple(row[table["columns"].index("item_id")] for row in table["data"])
        seed = run.data.params["seed"]
        items.setdefault(seed, set()).add(ids)
        digests.setdefault(seed, set()).add(run.data.params["item_rows_digest"])
        assert run.data.params["item_sample"].startswith("random.Random('items/<seed>/<dataset>')")
        assert run.data.params["item_rows"].startswith("4 of ")
    assert len(runs) == 4 and sorted(items) == ["0", "1"]
    assert all(len(found) == 1 for found in [*items.values(), *digests.values()])  # every checkpoint, same items
    assert items["0"] != items["1"] and digests["0"] != digests["1"]  # another seed, another sample
    pool = load_examples(get("synth-nli"), "test")
    rows = item_rows(len(pool), EvalSettings(seed=0, **quick), "synth-nli")
    assert items["0"] == {tuple(pool[r].item_id for r in rows)} and rows != [0, 1, 2, 3]


@pytest.fixture(scope="module")
def study_data(tmp_path_factory):
    with local_study_data(tmp_path_factory) as root:
        yield root


def test_study_multiple_choice_demonstrations_are_catwalks_draw(study_data):
    """catwalk's Task.get_fewshot_instances(k, random_seed=i, exceptions=instance), written out on the rows."""
    spec = for_protocol(get("arc_easy"), "study")
    chosen = cell_examples(spec, EvalSettings(shots=2, protocol="study"))
    train, scored = FIXTURES["arc_easy"][1]["train"], FIXTURES["arc_easy"][1]["validation"]
    for i, demos in enumerate(chosen.item_demos):
        expected = [row for row in random.Random(i).sample(train, 3) if row != scored[i]][:2]
        assert [d.item_id for d in demos] == [row["id"] for row in expected]
    assert chosen.demos == [] and len({tuple(d.item_id for d in demos) for demos in chosen.item_demos}) > 1
    # --demos still names a rule for every task; under amuro multiple choice follows --demos
    assert cell_examples(spec, EvalSettings(shots=2, protocol="study", demos="first-k")).item_demos is None
    assert cell_examples(get("arc_easy"), EvalSettings(shots=2, demos="first-k")).item_demos is None


def test_study_protocol_scores_a_prompt_longer_than_the_context_whole(small_series):
    model, tokenizer = _last_checkpoint(small_series, max_position_embeddings=32)
    spec = for_protocol(get("synth-nli"), "study")
    pool = load_examples(spec, "test")
    demos, items = pool[:4], pool[4:6]
    study = score_cell(model, tokenizer, spec, "default", demos, items, EvalSettings(protocol="study", method="loglik"))
    for result, item in zip(study, items):
        context = few_shot_prefix(spec, demos, "default", verbatim=True) + render(spec, item, "default")
        options = [continuation(context, word) for word in result.options]
        assert len(tokenizer(context).input_ids) > 32
        start = len(tokenizer(context.rstrip()).input_ids)
        for option, value in zip(options, result.option_loglik):
            ids = tokenizer(context + option).input_ids
            with torch.no_grad():  # the whole prompt, by hand
                logprobs = torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0].float(), -1)
            whole = sum(logprobs[t - 1, ids[t]].item() for t in range(start, len(ids)))
            assert value == pytest.approx(whole, abs=2e-3)
        cut = Scorer(model, tokenizer).loglikelihoods([context], [options])[0]  # amuro's: cut from the left
        assert cut != pytest.approx(list(result.option_loglik), abs=1e-3)


def test_study_protocol_refuses_a_long_prompt_for_a_table_of_positions(small_series):
    _, tokenizer = _last_checkpoint(small_series)
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=16, n_embd=16, n_layer=1, n_head=2)
    model = GPT2LMHeadModel(config).eval()
    long = "one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen"
    scorer = Scorer(model, tokenizer, truncate=False, desc="synth-nli [default]")
    refusal = r"^synth-nli \[default\]: a prompt of \d+ tokens is longer than the model's 16 positions"
    with pytest.raises(UserError, match=refusal):
        scorer.loglikelihoods([long], [[" yes"]])
