"""One (dataset, prompt format) cell scored item by item: prompts, the scorer's answers, item scores.

Classification items are scored by one of three methods (``next-token``, ``loglik``, ``generate``, see
``amuro.scoring.scorer``), multiple-choice items by log-likelihood ranking, generation items greedily with
ROUGE-L. Each result carries what ``predictions.json`` logs per item.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from amuro.core.protocol import protocol as protocol_rules
from amuro.core.settings import EvalSettings
from amuro.data import DatasetSpec, Example, few_shot_prefix, render, stop_strings
from amuro.data.formats import continuation
from amuro.scoring.label_tokens import every_subtoken, first_tokens, label_words
from amuro.scoring.metrics import accuracy, rouge_l

# Result versions of the scoring methods (with the scorer and KV cache they run on): bump a method's when a
# change alters its answers or log-likelihoods; its eval cells are then scored again. ``loglik`` also ranks
# multiple-choice options, ``generate`` also answers generation tasks, ``lm-eval`` is lm-eval's requests
# answered by ``amuro.scoring.lmeval_model``.
SCORING_VERSIONS = {"next-token": 1, "loglik": 1, "generate": 1, "lm-eval": 1}


@dataclass(frozen=True)
class ItemResult:
    """One scored item: a row of the ``predictions.json`` table."""

    item_id: str
    prediction: str
    reference: str
    item_score: float
    # Choice items: the options, each one's log-likelihood and that divided by its length in characters (as
    # lm-evaluation-harness's acc_norm). Every item: the sha256 of its prompt and its demonstrations' ids.
    options: tuple[str, ...] = ()
    option_loglik: tuple[float, ...] = ()
    option_loglik_norm: tuple[float, ...] = ()
    prompt_hash: str = ""
    demo_ids: tuple[str, ...] = ()


def score_cell(
    model,
    tokenizer,
    spec: DatasetSpec,
    fmt: str,
    demos: Sequence[Example],
    items: Sequence[Example],
    settings: EvalSettings,
    known=None,
    item_demos: Sequence[Sequence[Example]] | None = None,
) -> list[ItemResult]:
    """Score ``items`` few-shot (``demos`` before each, or ``item_demos``, one list per item) in prompt format
    ``fmt``; one result per item, in order.

    ``settings`` give the classification method, batch size, generation budget and stop rule; their protocol
    decides the demonstrations' layout, the next-token candidates and ROUGE-L's stemming.

    ``known`` (``amuro.scoring.resume.ScoredSoFar``) holds answers already computed by item id: only the
    other items are scored, and each batch is reported to it."""
    from amuro.scoring.resume import remembered
    from amuro.scoring.scorer import Scorer  # torch: only a process that scores imports it

    rules = protocol_rules(settings.protocol)
    method = settings.method
    per_item = [demos] * len(items) if item_demos is None else item_demos
    verbatim = rules.templates == "verbatim"
    prefixes = {id(d): few_shot_prefix(spec, d, fmt, verbatim=verbatim) for d in per_item}
    prompts = [prefixes[id(d)] + render(spec, ex, fmt) for d, ex in zip(per_item, items)]
    scorer = Scorer(
        model,
        tokenizer,
        batch_size=settings.batch_size,
        desc=f"{spec.name} [{fmt}]",
        truncate=rules.truncation == "left",
    )
    stops = stop_strings(spec, fmt) if settings.stop_rule == "default" else ()
    logged = [{"demo_ids": tuple(d.item_id for d in demos)} for demos in per_item]
    ids = [ex.item_id for ex in items]

    def generated(budget: int) -> list[str]:
        return remembered(scorer, known, ids, lambda p: scorer.generate(p, max_new_tokens=budget, stops=stops), prompts)

    def loglikelihoods(options) -> list[list[float]]:
        answers = remembered(scorer, known, ids, scorer.loglikelihoods_greedy, prompts, options)
        return [[total for total, _ in item] for item in answers]

    if spec.kind == "generation":
        predictions = generated(settings.max_new_tokens)
        references = [ex.target for ex in items]
        return _results(
            items,
            prompts,
            predictions,
            references,
            rouge_l(predictions, references, stemming=rules.rouge_stemming),
            logged,
        )
    if spec.kind == "multiple_choice":
        scores = loglikelihoods([[continuation(p, c) for c in ex.choices] for p, ex in zip(prompts, items)])
        picks = [_argmax(s) for s in scores]
        predictions = [ex.choices[k] for ex, k in zip(items, picks)]
        references = [ex.choices[ex.gold] for ex in items]
        return _results(
            items,
            prompts,
            predictions,
            references,
            [float(k == ex.gold) for ex, k in zip(items, picks)],
            logged,
            [ex.choices for ex in items],
            scores,
        )
    labels = label_words(spec, items)
    references = [ex.target for ex in items]
    scores = None
    if method == "generate":
        predictions = generated(max(len(t) for t in scorer.encode([" " + w for w in labels])) + 2)
    elif method == "loglik":
        scores = loglikelihoods([[continuation(p, w) for w in labels] for p in prompts])
        predictions = [labels[_argmax(s)] for s in scores]
    elif method == "next-token" and rules.label_tokens == "every-subtoken":
        candidates, owners = every_subtoken(tokenizer, labels)
        flat = remembered(
            scorer, known, ids, lambda p: scorer.next_token_logprobs(p, [[t] for t in candidates]), prompts
        )
        predictions = [labels[owners[_argmax(s)]] for s in flat]  # the earliest best candidate, as np.argmax
        scores = [[max(v for v, o in zip(s, owners) if o == k) for k in range(len(labels))] for s in flat]
    elif method == "next-token":
        candidates = first_tokens(tokenizer, labels)
        scores = remembered(scorer, known, ids, lambda p: scorer.next_token_logprobs(p, candidates), prompts)
        predictions = [labels[_argmax(s)] for s in scores]
    else:
        from amuro.core.errors import unknown
        from amuro.scoring.scorer import METHODS

        raise unknown("scoring method", method, METHODS)
    return _results(
        items,
        prompts,
        predictions,
        references,
        accuracy(predictions, references),
        logged,
        [labels] * len(items) if scores is not None else None,
        scores,
    )


def _argmax(values: Sequence[float]) -> int:
    return max(range(len(values)), key=lambda k: (values[k], -k))


def prompt_hash(prompt: str) -> str:
    """sha256 of a prompt, as lm-evaluation-harness's ``prompt_hash``."""
    return hashlib.sha256(prompt.encode("utf-8")).hexdigest()


def _results(
    items, prompts, predictions, references, scores, logged, options=None, option_scores=None
) -> list[ItemResult]:
    results = []
    for at, (ex, prompt, p, r, s) in enumerate(zip(items, prompts, predictions, references, scores)):
        extra = dict(logged[at], prompt_hash=prompt_hash(prompt))
        if options is not None:
            values = tuple(float(v) for v in option_scores[at])
            extra.update(
                options=tuple(options[at]),
                option_loglik=values,
                option_loglik_norm=tuple(v / max(1, len(o)) for v, o in zip(values, options[at])),
            )
        results.append(ItemResult(ex.item_id, p, r, float(s), **extra))
    return results
