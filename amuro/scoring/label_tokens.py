"""The next-token candidates of classification labels: the first token of each label word (amuro's) or every
sub-token of each (the study's ``np.concatenate(tokenizer(force_words).input_ids)``)."""

from __future__ import annotations

from collections.abc import Sequence

from amuro.data import DatasetSpec, Example


def label_words(spec: DatasetSpec, items: Sequence[Example]) -> tuple[str, ...]:
    if spec.labels:
        return spec.labels
    from_choices = tuple(dict.fromkeys(w for ex in items for w in ex.choices))
    return from_choices or tuple(dict.fromkeys(ex.target for ex in items))


def every_subtoken(tokenizer, words: Sequence[str]) -> tuple[list[int], list[int]]:
    """The study's candidates: ``np.concatenate(tokenizer(force_words).input_ids)`` with ``force_words`` each
    label word then each with a leading space, and for each candidate the index of the label it belongs to."""
    force_words = [*words, *(" " + word for word in words)]
    candidates, owners = [], []
    for number, ids in enumerate(tokenizer(force_words)["input_ids"]):
        candidates += list(ids)
        owners += [number % len(words)] * len(ids)
    return candidates, owners


def first_tokens(tokenizer, words: Sequence[str]) -> list[list[int]]:
    """Each label word's first token, with and without a leading space (distinct ids, space-less first)."""
    out = []
    for word in words:
        ids = [tokenizer(text, add_special_tokens=False)["input_ids"] for text in (word, " " + word)]
        out.append(list(dict.fromkeys(i[0] for i in ids if i)))
    return out
