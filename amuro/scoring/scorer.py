"""The scorer: batched, prefix-cached forward passes of a causal language model over many prompts.

It answers three questions (``amuro.scoring.cell_scoring`` turns them into item scores): each option's
log-likelihood after its context (``loglik``, lm-evaluation-harness's ``acc``), the next-token
log-probabilities of candidate tokens (``next-token``, the study's), and a greedy continuation (``generate``).

Speed comes from doing only the arithmetic the scores need: items are sorted by length and batched; the
token prefix all prompts of a cell share (the demonstrations) is encoded once and its key/value cache is
expanded over each batch; all continuations of an item are scored from one pass over its context.
Tokenization follows lm-evaluation-harness (whole strings, the context's trailing whitespace moved into the
continuation for ``loglik``), so its predictions can be compared one to one.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence

import torch
from tqdm.auto import tqdm

from amuro.core.errors import UserError
from amuro.scoring.kv_cache import expanded, preallocate

METHODS = ("next-token", "loglik", "generate")
CPU_BATCH_SIZE = 16
AUTO_START = 512
STOPS = ("default", "none")


def progress(iterable=None, **kwargs):
    """A tqdm bar; tqdm itself reads ``TQDM_DISABLE`` (and the other ``TQDM_*`` defaults) from the environment."""
    return tqdm(iterable, dynamic_ncols=True, **{"leave": False, **kwargs})


def common_prefix_length(sequences: Sequence[Sequence[int]]) -> int:
    """Length of the token prefix every sequence starts with."""
    if not sequences:
        return 0
    first, length = sequences[0], min(len(s) for s in sequences)
    for seq in sequences[1:]:
        i = 0
        while i < length and seq[i] == first[i]:
            i += 1
        length = i
    return length


class Scorer:
    """Batched, prefix-cached forward passes over one model: log-likelihoods, next-token logits, greedy text."""

    def __init__(
        self,
        model,
        tokenizer,
        *,
        batch_size: int | str | None = None,
        desc: str = "items",
        auto_start: int | None = None,
        truncate: bool = True,
    ):
        self.model, self.tokenizer = model, tokenizer
        self.desc = desc
        self.truncate = truncate  # False: a prompt longer than the positions is scored whole (the study's)
        self.on_batch = None  # called with (item indices, their answers) after each batch
        self.device = next(model.parameters()).device
        accelerated = self.device.type != "cpu"
        # ``auto`` (the default on an accelerator): start large and halve on out-of-memory, as the Trainer's
        # auto_find_batch_size does; a CPU has no such signal, so there it starts at the CPU default.
        self.auto = batch_size == "auto" or (batch_size is None and accelerated)
        if self.auto:
            self.batch_size = auto_start or (AUTO_START if accelerated else CPU_BATCH_SIZE)
        else:
            self.batch_size = int(batch_size or CPU_BATCH_SIZE)
        self.max_length = _max_length(model, tokenizer)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)
        # Models that compute the output layer on chosen positions only save most of its cost.
        self._keeps_logits = "logits_to_keep" in inspect.signature(model.forward).parameters

    def _report(self, indices: list[int], answers: list) -> None:
        if self.on_batch is not None:
            self.on_batch(indices, [answers[i] for i in indices])

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids with the tokenizer's own special tokens (a BOS where it adds one), as lm-evaluation-harness."""
        if not texts:
            return []
        return [list(ids) for ids in self.tokenizer(list(texts))["input_ids"]]

    # --- batching and forward passes ---------------------------------------------------------------------

    def _groups(self, contexts: list[list[int]], reserve: int):
        """Split items into those that fit after the shared prefix and overlong ones, each scored alone:
        left-truncated, or whole where ``truncate`` is off (refused for a model with a table of positions)."""
        fits = [i for i, ids in enumerate(contexts) if len(ids) + reserve <= self.max_length]
        long = [i for i, ids in enumerate(contexts) if len(ids) + reserve > self.max_length]
        groups = [(fits, [contexts[i] for i in fits])] if fits else []
        if long and not self.truncate:
            self._check_takes_longer(len(contexts[long[0]]) + reserve)
            return groups + [([i], [contexts[i]]) for i in long]
        keep = max(1, self.max_length - reserve)
        groups += [([i], [contexts[i][-keep:]]) for i in long]
        return groups

    def _check_takes_longer(self, length: int) -> None:
        """A model whose positions are a learned table (GPT-2's ``wpe``, OPT's) cannot read past it; rotary,
        ALiBi and relative positions can."""
        token_table = self.model.get_input_embeddings()
        tables = [
            module
            for module in self.model.modules()
            if isinstance(module, torch.nn.Embedding)
            and module is not token_table
            and self.max_length <= module.num_embeddings <= self.max_length + 2
        ]
        if tables:
            raise UserError(
                f"{self.desc}: a prompt of {length} tokens is longer than the model's {self.max_length} "
                "positions, and the study's protocol never truncates: lower --shots, or use --protocol amuro "
                "(which cuts prompts from the left)"
            )

    def _batches(self, contexts: list[list[int]], reserve: int):
        """Yield (item indices, shared prefix length, prefix cache, context tails) per batch, longest first."""
        bar = progress(total=len(contexts), desc=self.desc, unit="item")
        for indices, ids in self._groups(contexts, reserve):
            shared = min(common_prefix_length(ids), min(len(x) for x in ids) - 1)
            prefix = self._prefix_cache(ids[0][:shared])
            order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
            for start in range(0, len(order), self.batch_size):
                rows = order[start : start + self.batch_size]
                yield [indices[i] for i in rows], shared, prefix, [ids[i][shared:] for i in rows]
                bar.update(len(rows))
        bar.close()

    def _prefix_cache(self, ids: list[int]):
        if not ids:
            return None
        return self.model(input_ids=torch.tensor([ids], device=self.device), use_cache=True).cache

    def _run(self, input_ids, positions, mask, cache, keep: list[int]):
        """One forward pass; returns the logits at the ``keep`` positions only, and the grown cache."""
        keep_t = torch.tensor(keep, device=self.device)
        extra = {"logits_to_keep": keep_t} if self._keeps_logits else {}
        out = self.model(
            input_ids=input_ids.to(self.device),
            attention_mask=mask.to(self.device),
            position_ids=positions.to(self.device),
            cache=cache,
            use_cache=True,
            **extra,
        )
        logits = out.logits if self._keeps_logits else out.logits[:, keep_t]
        return logits.float(), out.cache

    def _context_passes(self, contexts: list[list[int]], reserve: int = 0):
        """Yield (item indices, last-token log-probs, cache, 2-D mask, lengths) per batch.

        ``cache`` holds the batch's keys and values (shared prefix included, right padding at the end of short
        rows), with room for ``reserve`` more tokens fed after it; ``lengths`` are the rows' true context lengths.
        """
        for indices, shared, prefix, tails in self._batches(contexts, reserve):
            width = max(len(t) for t in tails)
            input_ids = torch.full((len(tails), width), self.pad_id, dtype=torch.long)
            mask = torch.zeros((len(tails), shared + width), dtype=torch.long)
            mask[:, :shared] = 1
            for r, tail in enumerate(tails):
                input_ids[r, : len(tail)] = torch.tensor(tail)
                mask[r, shared : shared + len(tail)] = 1
            positions = (shared + torch.arange(width)).expand(len(tails), -1)
            last = [len(t) - 1 for t in tails]
            keep = sorted(set(last))
            logits, cache = self._run(input_ids, positions, mask, expanded(prefix, len(tails), width + reserve), keep)
            picked = logits[torch.arange(len(tails)), torch.tensor([keep.index(p) for p in last])]
            lengths = torch.tensor([shared + len(t) for t in tails])
            yield indices, torch.log_softmax(picked, -1), cache, mask, lengths

    def _continue(self, cache, mask, lengths, tokens: list[int]):
        """Feed one token after each cached row; returns its next-token log-probs, the cache and the mask."""
        input_ids = torch.tensor(tokens, dtype=torch.long)[:, None]
        full_mask = torch.cat([mask, torch.ones((len(tokens), 1), dtype=mask.dtype)], dim=1)
        logits, cache = self._run(input_ids, lengths[:, None], full_mask, cache, [0])
        return torch.log_softmax(logits[:, 0], -1), cache, full_mask

    # --- methods ------------------------------------------------------------------------------------------

    def _fitting(self, compute, *columns: Sequence) -> list:
        """``compute(*columns)``; with ``auto``, an out-of-memory batch halves the batch size and the rows not
        yet answered are computed again (the batches already answered are kept)."""
        if not self.auto:
            return compute(*columns)
        answers: dict[int, object] = {}
        outer = self.on_batch
        while True:
            missing = [at for at in range(len(columns[0])) if at not in answers]

            def keep(rows, values, missing=missing):
                answers.update((missing[r], v) for r, v in zip(rows, values))
                if outer is not None:
                    outer([missing[r] for r in rows], values)

            self.on_batch = keep
            try:
                compute(*[[column[at] for at in missing] for column in columns])
                break
            except torch.OutOfMemoryError:
                if self.batch_size == 1:
                    raise
                self.batch_size //= 2
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
            finally:
                self.on_batch = outer
        return [answers[at] for at in range(len(columns[0]))]

    def loglikelihoods(self, contexts: Sequence[str], options: Sequence[Sequence[str]]) -> list[list[float]]:
        """Sum of log-probabilities of each option continuing its context (lm-evaluation-harness ``acc``)."""
        return [[total for total, _ in item] for item in self.loglikelihoods_greedy(contexts, options)]

    def loglikelihoods_greedy(
        self, contexts: Sequence[str], options: Sequence[Sequence[str]]
    ) -> list[list[tuple[float, bool]]]:
        """Per option, (sum of its log-probabilities, whether greedy decoding would produce it)."""
        return self._fitting(self._loglikelihoods_greedy, contexts, options)

    @torch.inference_mode()
    def _loglikelihoods_greedy(
        self, contexts: Sequence[str], options: Sequence[Sequence[str]]
    ) -> list[list[tuple[float, bool]]]:
        """Per option, (sum of its log-probabilities, whether greedy decoding would produce it).

        All options of an item ride in one row after its context: each option's tokens see the context and
        their own earlier tokens only (a tree-shaped attention mask), so the context is computed once.
        """
        stripped = [c.rstrip() for c in contexts]
        context_ids = self.encode(stripped)
        whole = self.encode([c + o for c, opts in zip(contexts, options) for o in opts])
        conts, at = [], 0
        for ctx, opts in zip(context_ids, options):
            conts.append([whole[at + k][len(ctx) :] for k in range(len(opts))])
            at += len(opts)
        reserve = max((len(t) for item in conts for t in item), default=0)
        results: list[list[tuple[float, bool]]] = [[] for _ in contexts]
        for indices, shared, prefix, tails in self._batches(context_ids, reserve):
            rows = [self._tree_row(tail, conts[i], shared) for tail, i in zip(tails, indices)]
            width = max(len(r[0]) for r in rows)
            input_ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
            positions = torch.zeros((len(rows), width), dtype=torch.long)
            allowed = torch.zeros((len(rows), width, shared + width), dtype=torch.bool)
            allowed[:, :, :shared] = True
            for r, (ids, pos, see, _) in enumerate(rows):
                input_ids[r, : len(ids)] = torch.tensor(ids)
                positions[r, : len(ids)] = torch.tensor(pos)
                allowed[r, : len(ids), shared : shared + len(ids)] = see
                pad = torch.arange(len(ids), width)
                allowed[r, pad, shared + pad] = True  # padding attends to itself: no empty softmax rows
            dtype = self.model.dtype
            mask = torch.zeros(allowed.shape, dtype=dtype).masked_fill(~allowed, torch.finfo(dtype).min)
            keep = sorted({p for *_, spots in rows for spot in spots for p in spot})
            logits, _ = self._run(input_ids, positions, mask[:, None], expanded(prefix, len(rows), width), keep)
            logprobs = torch.log_softmax(logits, -1)
            column = {p: j for j, p in enumerate(keep)}
            for r, i in enumerate(indices):
                results[i] = [
                    self._option_score(logprobs[r, [column[p] for p in spot]], cont)
                    for spot, cont in zip(rows[r][3], conts[i])
                ]
            self._report(indices, results)
        return results

    @staticmethod
    def _option_score(logprobs, cont: list[int]) -> tuple[float, bool]:
        if not cont:
            return 0.0, True
        target = torch.tensor(cont, device=logprobs.device)
        picked = logprobs[torch.arange(len(cont), device=logprobs.device), target]
        return float(picked.sum()), bool((logprobs.argmax(-1) == target).all())

    @staticmethod
    def _tree_row(tail: list[int], options: list[list[int]], shared: int):
        """Tokens, positions, visibility and, per option, the positions whose logits predict its tokens."""
        c = len(tail)
        ids, positions = list(tail), [shared + j for j in range(c)]
        feeds = [option[:-1] for option in options]
        width = c + sum(len(f) for f in feeds)
        see = torch.zeros((width, width), dtype=torch.bool)
        see[:c, :c] = torch.ones((c, c), dtype=torch.bool).tril()
        spots = []
        for feed in feeds:
            at, n = len(ids), len(feed)
            ids += feed
            positions += [shared + c + j for j in range(n)]
            see[at : at + n, :c] = True
            see[at : at + n, at : at + n] = torch.ones((n, n), dtype=torch.bool).tril()
            spots.append([c - 1] + list(range(at, at + n)))
        return ids, positions, see, spots

    def next_token_logprobs(self, contexts: Sequence[str], candidates: Sequence[Sequence[int]]) -> list[list[float]]:
        """Per item, the best next-token log-prob among each label's candidate first tokens."""
        return self._fitting(lambda batch: self._next_token_logprobs(batch, candidates), contexts)

    @torch.inference_mode()
    def _next_token_logprobs(self, contexts: Sequence[str], candidates: Sequence[Sequence[int]]) -> list[list[float]]:
        results: list[list[float]] = [[] for _ in contexts]
        for indices, first, _, _, _ in self._context_passes(self.encode(contexts)):
            for b, i in enumerate(indices):
                results[i] = [max(float(first[b, t]) for t in tokens) for tokens in candidates]
            self._report(indices, results)
        return results

    def generate(
        self, contexts: Sequence[str], *, max_new_tokens: int, stops: Sequence[str] = (), finish=None
    ) -> list[str]:
        """Greedy continuations, ending at end of sequence, at ``max_new_tokens`` or before a stop string.

        ``finish(text, stops)`` makes the returned text from the decoded continuation (default: cut at the
        first stop string, stripped)."""
        return self._fitting(
            lambda batch: self._generate(batch, max_new_tokens, stops, finish or cut_at_stops), contexts
        )

    def _generate(self, contexts: Sequence[str], max_new_tokens: int, stops: Sequence[str], finish) -> list[str]:
        eos = _eos_ids(self.model, self.tokenizer)
        results = [""] * len(contexts)
        with torch.inference_mode():  # a generator's decorator would not cover the loop body
            for indices, first, cache, mask, lengths in self._context_passes(self.encode(contexts), max_new_tokens):
                cache = preallocate(cache, max_new_tokens)
                produced = [[] for _ in indices]
                rows = list(range(len(indices)))  # the batch's rows, as positions in ``indices``
                next_tokens = first.argmax(-1).tolist()
                for step in range(max_new_tokens):
                    done = set()
                    for r, b in enumerate(rows):
                        token = next_tokens[r]
                        if token in eos:
                            done.add(r)
                            continue
                        produced[b].append(token)
                        if stops and any(s in self.tokenizer.decode(produced[b]) for s in stops):
                            done.add(r)
                    if len(done) == len(rows) or step == max_new_tokens - 1:
                        break
                    if done:  # finished rows leave the batch: later steps compute only the rows still going
                        keep = [r for r in range(len(rows)) if r not in done]
                        selected = torch.tensor(keep, device=self.device)
                        cache.batch_select_indices(selected)
                        mask, lengths = mask[keep], lengths[keep]
                        rows, next_tokens = [rows[r] for r in keep], [next_tokens[r] for r in keep]
                    logprobs, cache, mask = self._continue(cache, mask, lengths + step, next_tokens)
                    next_tokens = logprobs.argmax(-1).tolist()
                for b, i in enumerate(indices):
                    results[i] = finish(self.tokenizer.decode(produced[b], skip_special_tokens=True), stops)
                self._report(indices, results)
        return results


def cut_at_stops(text: str, stops: Sequence[str]) -> str:
    """The text before the first stop string, stripped."""
    for stop in stops:
        if stop and stop in text:
            text = text[: text.index(stop)]
    return text.strip()


def _eos_ids(model, tokenizer) -> set[int]:
    """End-of-sequence ids of the tokenizer and of the model's generation config (some models list several)."""
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids = configured if isinstance(configured, list) else [configured]
    return {i for i in [*ids, tokenizer.eos_token_id] if i is not None}


def _max_length(model, tokenizer) -> int:
    for name in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        value = getattr(model.config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    limit = getattr(tokenizer, "model_max_length", None)
    return limit if isinstance(limit, int) and 0 < limit < 1_000_000 else 2048
