"""``--batch-size auto``: halve on out-of-memory and keep the answers already computed; bad values are one line."""

import pytest
import torch
from click.testing import CliRunner

from amuro import data
from amuro.cli import main
from amuro.core.settings import EvalSettings
from amuro.data import few_shot_prefix, render
from amuro.models.series import local_series
from amuro.scoring.cells import demos_and_items
from amuro.scoring.scorer import Scorer


class RowLimit:
    """The model's forward raises CUDA's out-of-memory error for batches of more than ``rows`` rows."""

    def __init__(self, model, rows: int) -> None:
        self.model, self.rows, self.batches = model, rows, []
        self.forward = model.forward

    def __call__(self, *args, **kwargs):
        batch = kwargs["input_ids"].shape[0]
        self.batches.append(batch)
        if batch > self.rows:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return self.forward(*args, **kwargs)


@pytest.fixture(scope="module")
def prompts(small_series):
    model, tokenizer = local_series(small_series).last.load()
    spec = data.get("synth-nli")
    demos, items = demos_and_items(spec, EvalSettings(shots=2, max_examples=12))
    prefix = few_shot_prefix(spec, demos, "default")
    return model, tokenizer, [prefix + render(spec, ex, "default") for ex in items]


@pytest.mark.parametrize("method", ["loglikelihoods", "next_token_logprobs", "generate"])
def test_auto_halves_on_out_of_memory_and_answers_as_batch_size_one(prompts, monkeypatch, method):
    model, tokenizer, texts = prompts
    args = {
        "loglikelihoods": ([[" entailment", " neutral", " contradiction"]] * len(texts),),
        "next_token_logprobs": ([[5], [9], [17]],),
        "generate": (),
    }[method]
    kwargs = {"max_new_tokens": 5} if method == "generate" else {}
    expected = getattr(Scorer(model, tokenizer, batch_size=1), method)(texts, *args, **kwargs)
    limit = RowLimit(model, rows=3)
    monkeypatch.setattr(model, "forward", limit)
    scorer = Scorer(model, tokenizer, batch_size="auto", auto_start=16)
    answers = getattr(scorer, method)(texts, *args, **kwargs)
    assert scorer.batch_size == 2 and {12, 8, 4, 2} <= set(limit.batches)
    if method == "generate":
        assert answers == expected
    else:
        flat = [value for item in answers for value in item]
        assert flat == pytest.approx([value for item in expected for value in item], abs=1e-4)


def test_cpu_default_is_sixteen_and_one_row_that_does_not_fit_is_an_error(prompts, monkeypatch):
    model, tokenizer, texts = prompts
    assert Scorer(model, tokenizer).batch_size == 16 and not Scorer(model, tokenizer).auto
    monkeypatch.setattr(model, "forward", RowLimit(model, rows=0))
    with pytest.raises(torch.OutOfMemoryError):
        Scorer(model, tokenizer, batch_size="auto", auto_start=4).next_token_logprobs(texts, [[5]])


@pytest.mark.parametrize("value", ["0", "-3", "big", "1.5"])
def test_bad_batch_size_is_one_line(tracking_uri, value):
    result = CliRunner().invoke(main, ["pretrain-eval", "--experiment", "bs", "--batch-size", value])
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert errors == [f"Error: batch_size takes a positive whole number or 'auto', got '{value}'"]
