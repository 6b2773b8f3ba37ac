"""An lm-evaluation-harness model class backed by amuro's scorer.

lm-eval builds the requests (its documents, few-shot sampler, ``doc_to_text`` / ``doc_to_choice`` /
``doc_to_target``) and computes its metrics; this class answers the requests with ``Scorer``: the
continuations of one context share a single pass over it, and the prefix every context of a batch shares is
found from the requests themselves and encoded once. Tokenization and truncation follow lm-eval's ``hf``
model, so the two give the same predictions. Imported only when lm-eval tasks are scored (the ``lmeval``
extra).
"""

from __future__ import annotations

import json

from lm_eval.api.model import LM
from lm_eval.models.utils import handle_stop_sequences, normalize_gen_kwargs, postprocess_generated_text

from amuro.core.errors import UserError
from amuro.scoring.resume import ScoredSoFar, remembered, request_key
from amuro.scoring.scorer import Scorer

DEFAULT_MAX_GEN_TOKS = 256  # lm-eval's ``hf`` model's default generation budget


class AmuroLM(LM):
    """``loglikelihood`` and ``generate_until`` through amuro's batched, prefix-cached scorer."""

    def __init__(
        self, model, tokenizer, *, batch_size: int | str | None = None, known: ScoredSoFar | None = None
    ) -> None:
        super().__init__()
        self.scorer = Scorer(model, tokenizer, batch_size=batch_size, desc="lm-eval requests")
        self.tokenizer = tokenizer
        self.known = known  # answers a killed run of the same cell already computed

    def loglikelihood(self, requests, disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        """Requests grouped by context, so all continuations of a context are scored from one pass over it, and
        the contexts by task: lm-eval asks for every task's requests at once, and the prefix the contexts of
        one task share (its few-shot examples, its description) is encoded once per task, where the tasks
        together share next to nothing."""
        pairs = [request.args for request in requests]
        if any(not context for context, _ in pairs):
            raise UserError(
                "an lm-eval request has an empty context (a perplexity-style task): amuro scores "
                "tasks whose documents give a prompt; run that task with lm-eval's own models"
            )
        slots: dict[str, list[int]] = {}
        by_task: dict[str | None, list[str]] = {}
        for at, (request, (context, _)) in enumerate(zip(requests, pairs)):
            if context not in slots:
                by_task.setdefault(getattr(request, "task_name", None), []).append(context)
            slots.setdefault(context, []).append(at)
        answers: list[tuple[float, bool]] = [(0.0, False)] * len(pairs)
        for contexts in by_task.values():
            options = [[pairs[at][1] for at in slots[context]] for context in contexts]
            keys = [request_key("loglikelihood", context, opts) for context, opts in zip(contexts, options)]
            scored = remembered(self.scorer, self.known, keys, self.scorer.loglikelihoods_greedy, contexts, options)
            for context, values in zip(contexts, scored):
                for at, (loglik, greedy) in zip(slots[context], values):
                    answers[at] = (float(loglik), bool(greedy))
        for request, answer in zip(requests, answers):
            self.cache_hook.add_partial("loglikelihood", request.args, answer)
        return answers

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False) -> list[float]:
        raise UserError(
            "lm-eval perplexity tasks (loglikelihood_rolling) are not scored by amuro: choose "
            "multiple_choice, loglikelihood or generate_until tasks"
        )

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        """Greedy generation per group of equal generation settings, cut at the stop sequences as lm-eval does."""
        eos = (
            self.tokenizer.decode(self.tokenizer.eos_token_id, skip_special_tokens=False)
            if self.tokenizer.eos_token_id is not None
            else None
        )
        groups: dict[str, list[int]] = {}
        for at, request in enumerate(requests):
            groups.setdefault(json.dumps(request.args[1], sort_keys=True, default=str), []).append(at)
        answers = [""] * len(requests)
        for members in groups.values():
            kwargs = normalize_gen_kwargs(dict(requests[members[0]].args[1]), DEFAULT_MAX_GEN_TOKS)
            if kwargs.get("do_sample"):
                raise UserError(
                    "an lm-eval task samples its generations (do_sample: true): amuro generates "
                    "greedily; set do_sample: false in the task's generation_kwargs"
                )
            until = handle_stop_sequences(kwargs.pop("until", None), eos=eos)
            contexts = [requests[at].args[0] for at in members]
            keys = [request_key("generate_until", *requests[at].args) for at in members]
            texts = remembered(
                self.scorer,
                self.known,
                keys,
                lambda batch: self.scorer.generate(
                    batch,
                    max_new_tokens=kwargs["max_gen_toks"],
                    stops=until,
                    finish=lambda text, stops: postprocess_generated_text(text, stops, None),
                ),
                contexts,
            )
            for at, text in zip(members, texts):
                answers[at] = text
                self.cache_hook.add_partial("generate_until", requests[at].args, text)
        return answers
