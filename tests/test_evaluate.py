"""Each scoring method against a direct computation with the model, item by item, without caches or batches."""

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM, DynamicCache

from amuro import data
from amuro.core.errors import UserError
from amuro.core.settings import EvalSettings
from amuro.data import DatasetSpec, Example, few_shot_prefix, render, stop_strings
from amuro.data.formats import continuation
from amuro.models.series import local_series
from amuro.scoring.cell_scoring import first_tokens, score_cell
from amuro.scoring.cells import demos_and_items
from amuro.scoring.scorer import Scorer, common_prefix_length, cut_at_stops


@pytest.fixture(scope="module")
def trained(small_series):
    return local_series(small_series).last.load()


@pytest.fixture(scope="module")
def sharp(small_series):
    """The small series' architecture with large random weights: confident, varied greedy text."""
    location = local_series(small_series).last.location
    config = AutoConfig.from_pretrained(location)
    config.initializer_range = 0.6
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config).eval()
    _, tokenizer = local_series(small_series).last.load()
    return model, tokenizer


def encode(tokenizer, text):
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def loglik_of_ids(model, context_ids, option_ids):
    with torch.no_grad():
        logprobs = torch.log_softmax(model(torch.tensor([context_ids + option_ids])).logits[0].float(), -1)
    return sum(float(logprobs[len(context_ids) - 1 + k, t]) for k, t in enumerate(option_ids))


def direct_loglik(model, tokenizer, context, option):
    """lm-evaluation-harness's definition: trailing context whitespace moves into the continuation."""
    context_ids = encode(tokenizer, context.rstrip())
    return loglik_of_ids(model, context_ids, encode(tokenizer, context + option)[len(context_ids) :])


def prompts_for(spec_name, fmt="default", shots=3, items=6):
    spec = data.get(spec_name)
    demos, examples = demos_and_items(spec, EvalSettings(shots=shots, max_examples=items))
    prefix = few_shot_prefix(spec, demos, fmt)
    return spec, demos, examples, [prefix + render(spec, ex, fmt) for ex in examples]


def test_loglik_matches_direct_computation(trained):
    model, tokenizer = trained
    spec, demos, items, prompts = prompts_for("synth-nli")
    options = [[continuation(p, w) for w in spec.labels] for p in prompts]
    batched = Scorer(model, tokenizer, batch_size=4).loglikelihoods(prompts, options)
    for prompt, opts, got in zip(prompts, options, batched):
        want = [direct_loglik(model, tokenizer, prompt, o) for o in opts]
        assert got == pytest.approx(want, abs=2e-4)
    results = score_cell(model, tokenizer, spec, "default", demos, items, EvalSettings(method="loglik", batch_size=4))
    for result, scores in zip(results, batched):
        assert result.prediction == spec.labels[max(range(3), key=lambda k: (scores[k], -k))]
        assert result.item_score == float(result.prediction == result.reference)


def test_multi_token_options_and_overlong_contexts(sharp):
    model, tokenizer = sharp
    _, _, _, prompts = prompts_for("synth-paraphrase", shots=2, items=5)
    options = [[" it is the same event", " no", " they differ in one detail"] for _ in prompts]
    scorer = Scorer(model, tokenizer, batch_size=2)
    got = scorer.loglikelihoods(prompts, options)
    for prompt, opts, row in zip(prompts, options, got):
        assert row == pytest.approx([direct_loglik(model, tokenizer, prompt, o) for o in opts], rel=1e-4, abs=1e-3)
    scorer.max_length = 40  # every item is now too long: scored alone on its last context tokens
    got = scorer.loglikelihoods(prompts[:2], options[:2])
    contexts = [encode(tokenizer, p.rstrip()) for p in prompts[:2]]
    conts = [[encode(tokenizer, p + o)[len(c) :] for o in opts] for p, c, opts in zip(prompts, contexts, options)]
    keep = 40 - max(len(t) for row in conts for t in row)
    for context, row_conts, row in zip(contexts, conts, got):
        assert len(context) > keep
        assert row == pytest.approx([loglik_of_ids(model, context[-keep:], t) for t in row_conts], rel=1e-4, abs=1e-3)


def test_next_token_matches_direct_computation(sharp):
    model, tokenizer = sharp
    spec, demos, items, prompts = prompts_for("synth-nli")
    candidates = first_tokens(tokenizer, spec.labels)
    assert all(len(c) >= 1 for c in candidates)
    results = score_cell(model, tokenizer, spec, "default", demos, items, EvalSettings(batch_size=4))
    for prompt, result in zip(prompts, results):
        with torch.no_grad():
            logits = model(torch.tensor([encode(tokenizer, prompt)])).logits[0, -1]
        best = [max(float(logits[t]) for t in tokens) for tokens in candidates]
        assert result.prediction == spec.labels[max(range(len(best)), key=lambda k: (best[k], -k))]


def direct_greedy(model, tokenizer, prompt, max_new_tokens):
    ids = torch.tensor([encode(tokenizer, prompt)])
    with torch.no_grad():
        out = model.generate(
            ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
        )
    return tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)


@pytest.mark.parametrize("stop", ["default", "none"])
def test_generation_matches_greedy_generate_and_stops(sharp, stop):
    model, tokenizer = sharp
    spec, demos, items, prompts = prompts_for("synth-qgen", shots=2, items=5)
    results = score_cell(
        model, tokenizer, spec, "default", demos, items, EvalSettings(stop=stop, max_new_tokens=24, batch_size=3)
    )
    stops = stop_strings(spec, "default") if stop == "default" else ()
    assert stops == (("\n\n", "\n### Input:") if stop == "default" else ())
    for prompt, result in zip(prompts, results):
        raw = direct_greedy(model, tokenizer, prompt, 24)
        assert result.prediction == cut_at_stops(raw, stops)
        assert not any(s in result.prediction for s in ("\n\n", "\n### Input:")) or stop == "none"
    assert any(r.prediction for r in results)


def test_rows_that_finish_early_leave_the_batch_and_the_rest_is_unchanged(sharp, monkeypatch):
    model, tokenizer = sharp
    _, _, _, prompts = prompts_for("synth-qgen", shots=2, items=6)
    selections = []
    select = DynamicCache.batch_select_indices
    monkeypatch.setattr(
        DynamicCache, "batch_select_indices", lambda cache, rows: (selections.append(len(rows)), select(cache, rows))[1]
    )
    stops = ("e",)  # random weights: rows hit a common letter after different numbers of tokens
    got = Scorer(model, tokenizer, batch_size=6).generate(prompts, max_new_tokens=16, stops=stops)
    assert got == [cut_at_stops(direct_greedy(model, tokenizer, prompt, 16), stops) for prompt in prompts]
    assert selections and selections == sorted(selections, reverse=True) and selections[-1] < len(prompts)


def test_generate_method_for_labels(sharp):
    model, tokenizer = sharp
    spec, demos, items, prompts = prompts_for("synth-paraphrase", shots=2, items=4)
    results = score_cell(model, tokenizer, spec, "default", demos, items, EvalSettings(method="generate"))
    budget = max(len(encode(tokenizer, " " + w)) for w in spec.labels) + 2
    for prompt, result in zip(prompts, results):
        expected = cut_at_stops(direct_greedy(model, tokenizer, prompt, budget), stop_strings(spec, "default"))
        assert result.prediction == expected
        assert result.item_score == float(expected.lower().strip(" .") == result.reference)


def test_multiple_choice_ranks_options_by_loglik(trained):
    model, tokenizer = trained
    spec = DatasetSpec(name="tiny-mc", task="mc", source="local", path="unused")
    items = [
        Example(f"q{i}", {"question": q}, target="", choices=tuple(c), gold=g)
        for i, (q, c, g) in enumerate(
            [
                ("What does Anna do for a living?", ["baker", "a castle", "blue"], 0),
                ("Where does Ben live?", ["Milltown", "a knight", "seven"], 0),
                ("What pet does Clara have?", ["a pony", "Riverton", "chess"], 0),
            ]
        )
    ]
    results = score_cell(model, tokenizer, spec, "default", items[:1], items[1:], EvalSettings())
    prefix = few_shot_prefix(spec, items[:1], "default")
    for ex, result in zip(items[1:], results):
        prompt = prefix + render(spec, ex, "default")
        scores = [direct_loglik(model, tokenizer, prompt, continuation(prompt, c)) for c in ex.choices]
        assert result.prediction == ex.choices[max(range(3), key=lambda k: (scores[k], -k))]
        assert result.reference == ex.choices[ex.gold]


def test_batches_and_prefix_cache_do_not_change_scores(trained):
    model, tokenizer = trained
    spec, demos, items, prompts = prompts_for("synth-nli", items=7)
    options = [[continuation(p, w) for w in spec.labels] for p in prompts]
    one = Scorer(model, tokenizer, batch_size=1).loglikelihoods(prompts, options)
    many = Scorer(model, tokenizer, batch_size=16).loglikelihoods(prompts, options)
    assert all(a == pytest.approx(b, abs=2e-4) for a, b in zip(one, many))
    ids = Scorer(model, tokenizer).encode(prompts)
    assert common_prefix_length(ids) >= len(encode(tokenizer, few_shot_prefix(spec, demos, "default"))) - 2


def test_demonstrations_never_among_scored_items():
    spec = data.get("synth-nli")
    demos, items = demos_and_items(spec, EvalSettings(shots=8, max_examples=50, seed=3))
    assert len(demos) == 8 and len(items) == 50
    assert not {d.item_id for d in demos} & {i.item_id for i in items}
    assert not {tuple(d.slots.items()) for d in demos} & {tuple(i.slots.items()) for i in items}
    again, _ = demos_and_items(spec, EvalSettings(shots=8, max_examples=50, seed=3))
    other, _ = demos_and_items(spec, EvalSettings(shots=8, max_examples=50, seed=4))
    assert again == demos and other != demos
    first_k, _ = demos_and_items(spec, EvalSettings(shots=4, demos="first-k", max_examples=10))
    assert first_k == data.load_examples(spec, "test")[:4]  # the study's first k rows, whichever items are sampled


def test_shots_larger_than_training_split_is_a_user_error():
    with pytest.raises(UserError, match=r"shots \(2001\) is larger than the training split of synth-nli"):
        demos_and_items(data.get("synth-nli"), EvalSettings(shots=2001))


def test_cut_at_stops():
    assert cut_at_stops(" Who is Anna?\n\n### Input: x", ("\n\n", "###")) == "Who is Anna?"
    assert cut_at_stops("a ### b\n\nc", ("\n\n", "###")) == "a"
    assert cut_at_stops("  plain  ", ()) == "plain"


def test_stop_strings_are_the_whole_opening_after_a_newline():
    from amuro.data import get

    qgen = get("synth-qgen")
    assert stop_strings(qgen, "instruct") == ("\n\n", "\nGiven the context:")
    assert stop_strings(qgen, "default") == ("\n\n", "\n### Input:")
    assert stop_strings(qgen, "io") == ("\n\n",)
    stops = stop_strings(qgen, "instruct")
    assert cut_at_stops(" Given the rain, who stayed home?", stops) == "Given the rain, who stayed home?"
    assert cut_at_stops(" Who stayed?\nGiven the context: more", stops) == "Who stayed?"
    assert cut_at_stops(" What did ### mean?\n### Input: x", stop_strings(qgen, "default")) == "What did ### mean?"
