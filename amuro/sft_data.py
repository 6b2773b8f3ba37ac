"""Training features for fine-tuning: completion-only labels, chat turns, and dynamic padding.

Supervised fine-tuning renders each example in the ``default`` prompt format and learns only the answer:
prompt tokens are labelled ``-100`` (ignored by the loss), answer tokens and the appended EOS are learned.
Instruction tuning renders conversations in the Tulu v2 chat layout and learns only the assistant turns::

    <|user|>
    {user message}
    <|assistant|>
    {assistant reply}<eos>
"""

from __future__ import annotations

from collections.abc import Sequence

from amuro.errors import UserError
from amuro.tasks import DatasetSpec, Example, render
from amuro.tasks.formats import answer_text, continuation

IGNORE = -100
TRAINING_FORMAT = "default"
ROLE_MARKERS = {"system": "<|system|>\n", "user": "<|user|>\n", "assistant": "<|assistant|>\n"}


def completion_features(tokenizer, prompt: str, answer: str, max_length: int) -> dict[str, list[int]]:
    """Token ids and labels of one prompt + answer: the loss sees only the answer and EOS.

    Prompt and answer are tokenized separately so the boundary is exact; a prompt too long for
    ``max_length`` loses its beginning (its end, which leads into the answer, is kept).
    """
    prompt_ids = tokenizer(prompt)["input_ids"]
    answer_ids = tokenizer(continuation(prompt, answer), add_special_tokens=False)["input_ids"]
    answer_ids = (answer_ids + [tokenizer.eos_token_id])[:max_length]
    room = max_length - len(answer_ids)
    prompt_ids = prompt_ids[max(0, len(prompt_ids) - room):] if room > 0 else []
    return {"input_ids": prompt_ids + answer_ids, "labels": [IGNORE] * len(prompt_ids) + answer_ids}


def chat_segments(messages: Sequence[dict], eos: str) -> list[tuple[str, bool]]:
    """A conversation as (text, learned) pieces in the Tulu v2 layout; only assistant replies are learned."""
    pieces: list[tuple[str, bool]] = []
    for message in messages:
        role = message["role"]
        if role not in ROLE_MARKERS:
            raise UserError(f"chat message role {role!r} is not supported: use system, user or assistant")
        if role == "assistant":
            pieces += [(ROLE_MARKERS[role], False), (message["content"] + eos, True), ("\n", False)]
        else:
            pieces.append((f"{ROLE_MARKERS[role]}{message['content']}\n", False))
    return pieces


def chat_features(tokenizer, messages: Sequence[dict], max_length: int) -> dict[str, list[int]]:
    """Token ids and labels of one conversation, cut at ``max_length`` (later turns are dropped first)."""
    input_ids: list[int] = []
    labels: list[int] = []
    for number, (text, learned) in enumerate(chat_segments(messages, tokenizer.eos_token)):
        ids = tokenizer(text, add_special_tokens=number == 0)["input_ids"]
        input_ids += ids
        labels += ids if learned else [IGNORE] * len(ids)
    return {"input_ids": input_ids[:max_length], "labels": labels[:max_length]}


def training_features(spec: DatasetSpec, examples: Sequence[Example], tokenizer,
                      max_length: int) -> list[dict[str, list[int]]]:
    """Features of a training set; examples with nothing left to learn after truncation are dropped."""
    features = []
    for example in examples:
        if spec.kind == "chat":
            if not example.messages:
                raise UserError(f"dataset {spec.name} item {example.item_id} has no chat messages: "
                                "a chat dataset needs a messages field")
            item = chat_features(tokenizer, example.messages, max_length)
        else:
            item = completion_features(tokenizer, render(spec, example, TRAINING_FORMAT),
                                       answer_text(spec, example), max_length)
        if any(label != IGNORE for label in item["labels"]):
            features.append(item)
    if not features:
        raise UserError(f"no example of {spec.name} fits in max_length={max_length} tokens with its answer: "
                        "raise --max-length")
    return features


class PadToLongest:
    """Pad a batch to its longest example (or to ``pad_to`` when set): labels with -100, mask with 0."""

    def __init__(self, pad_token_id: int, pad_to: int | None = None) -> None:
        self.pad_token_id = pad_token_id
        self.pad_to = pad_to

    def __call__(self, batch: Sequence[dict]) -> dict:
        import torch

        width = self.pad_to or max(len(item["input_ids"]) for item in batch)
        input_ids = torch.full((len(batch), width), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(batch), width), IGNORE, dtype=torch.long)
        attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, item in enumerate(batch):
            length = len(item["input_ids"])
            input_ids[row, :length] = torch.tensor(item["input_ids"])
            labels[row, :length] = torch.tensor(item["labels"])
            attention_mask[row, :length] = 1
        return {"input_ids": input_ids, "labels": labels, "attention_mask": attention_mask}
