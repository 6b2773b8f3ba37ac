"""Training features for fine-tuning: completion-only labels, chat turns, and dynamic padding.

Supervised fine-tuning renders each example in the ``default`` prompt format and learns only the answer:
prompt tokens are labelled ``-100`` (ignored by the loss), answer tokens and the appended EOS are learned.
With ``train_shots`` > 0, each training sequence holds 1 to ``train_shots + 1`` examples laid out exactly as a
few-shot prompt (blank-line separated), every answer learned and EOS after the last: the model learns the task
in the layout it is scored in, at no extra token cost. ``train_shots=0`` is one example per sequence.
Instruction tuning renders conversations in the Tulu v2 chat layout and learns only the assistant turns::

    <|user|>
    {user message}
    <|assistant|>
    {assistant reply}<eos>
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from amuro.core.errors import UserError
from amuro.data import DatasetSpec, Example, render
from amuro.data.formats import DEMO_SEPARATOR, answer_text, continuation

IGNORE = -100
# Result version of the training features (labels, packing, chat layout): bump it when a change alters the
# tokens or labels a model is trained on; every fine-tune is then trained again.
RESULT_VERSION = 1
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
    prompt_ids = prompt_ids[max(0, len(prompt_ids) - room) :] if room > 0 else []
    return {"input_ids": prompt_ids + answer_ids, "labels": [IGNORE] * len(prompt_ids) + answer_ids}


_SPACES = (" ", "\n", "\t")


def study_completion_features(tokenizer, prompt: str, completion: str, max_length: int) -> dict[str, list[int]]:
    """The study's ``encode_with_prompt_completion_format``: prompt, completion and EOS tokenized as one string
    (a space between them when neither side has one), cut from the right at ``max_length``; the first
    ``len(tokenizer(prompt without its last whitespace))`` tokens are masked."""
    if not prompt.endswith(_SPACES) and not completion.startswith(_SPACES):
        text = prompt + " " + completion
    else:
        text = prompt + completion
    input_ids = list(tokenizer(text + tokenizer.eos_token, max_length=max_length, truncation=True)["input_ids"])
    masked_prompt = prompt[:-1] if prompt.endswith(_SPACES) else prompt
    masked = len(tokenizer(masked_prompt, max_length=max_length, truncation=True)["input_ids"])
    return {"input_ids": input_ids, "labels": [IGNORE] * min(masked, len(input_ids)) + input_ids[masked:]}


def _study_chat_text(messages: Sequence[dict], eos: str) -> str:
    text = ""
    for message in messages:
        role = message["role"]
        if role not in ROLE_MARKERS:
            raise UserError(f"chat message role {role!r} is not supported: use system, user or assistant")
        text += ROLE_MARKERS[role] + message["content"].strip() + (eos if role == "assistant" else "") + "\n"
    return text


def study_chat_features(tokenizer, messages: Sequence[dict], max_length: int) -> dict[str, list[int]]:
    """The study's ``encode_with_messages_format``: the conversation as one stripped string; every non-assistant
    message, and the ``<|assistant|>`` marker after it, masked by the token count of the text up to it."""

    def count(text: str) -> int:
        return len(tokenizer(text, max_length=max_length, truncation=True)["input_ids"])

    input_ids = list(
        tokenizer(_study_chat_text(messages, tokenizer.eos_token).strip(), max_length=max_length, truncation=True)[
            "input_ids"
        ]
    )
    labels = list(input_ids)
    for index, message in enumerate(messages):
        if message["role"] == "assistant":
            continue
        start = 0 if index == 0 else count(_study_chat_text(messages[:index], tokenizer.eos_token))
        so_far = _study_chat_text(messages[: index + 1], tokenizer.eos_token)
        if index < len(messages) - 1 and messages[index + 1]["role"] == "assistant":
            so_far += ROLE_MARKERS["assistant"]
        end = count(so_far)
        labels[start:end] = [IGNORE] * len(labels[start:end])
        if end >= max_length:
            break
    return {"input_ids": input_ids, "labels": labels}


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


def few_shot_features(tokenizer, blocks: Sequence[tuple[str, str]], max_length: int) -> dict[str, list[int]] | None:
    """(prompt, answer) blocks as one few-shot sequence, every answer learned; None if it exceeds max_length."""
    input_ids: list[int] = []
    labels: list[int] = []
    for number, (prompt, answer) in enumerate(blocks):
        prompt = (DEMO_SEPARATOR if number else "") + prompt
        prompt_ids = tokenizer(prompt, add_special_tokens=number == 0)["input_ids"]
        answer_ids = tokenizer(continuation(prompt, answer), add_special_tokens=False)["input_ids"]
        if number == len(blocks) - 1:
            answer_ids = answer_ids + [tokenizer.eos_token_id]
        input_ids += prompt_ids + answer_ids
        labels += [IGNORE] * len(prompt_ids) + answer_ids
    return {"input_ids": input_ids, "labels": labels} if len(input_ids) <= max_length else None


def _groups(count: int, train_shots: int, seed: int) -> list[list[int]]:
    """Example indices, shuffled and cut into groups of 1 to train_shots + 1."""
    rng = random.Random(f"pack/{seed}")
    order = list(range(count))
    rng.shuffle(order)
    groups = []
    while order:
        size = rng.randint(1, train_shots + 1)
        groups.append(order[:size])
        order = order[size:]
    return groups


def _completion_items(
    spec: DatasetSpec, examples: Sequence[Example], tokenizer, max_length: int, train_shots: int, seed: int
) -> list[dict[str, list[int]]]:
    blocks = [(render(spec, example, TRAINING_FORMAT), answer_text(spec, example)) for example in examples]
    if train_shots == 0:
        return [completion_features(tokenizer, prompt, answer, max_length) for prompt, answer in blocks]
    items = []
    for group in _groups(len(blocks), train_shots, seed):
        packed = few_shot_features(tokenizer, [blocks[i] for i in group], max_length)
        # a group too long for max_length falls back to one example per sequence
        items += [packed] if packed else [completion_features(tokenizer, *blocks[i], max_length) for i in group]
    return items


def training_features(
    spec: DatasetSpec,
    examples: Sequence[Example],
    tokenizer,
    max_length: int,
    *,
    train_shots: int = 0,
    seed: int = 0,
    tokenization: str = "split",
) -> list[dict[str, list[int]]]:
    """Features of a training set; sequences with nothing left to learn after truncation are dropped.

    ``tokenization`` ``one-string`` encodes each example as the study's code does (no packing)."""
    one_string = tokenization == "one-string"
    if spec.kind == "chat":
        for example in examples:
            if not example.messages:
                raise UserError(
                    f"dataset {spec.name} item {example.item_id} has no chat messages: "
                    "a chat dataset needs a messages field"
                )
        encode = study_chat_features if one_string else chat_features
        items = [encode(tokenizer, example.messages, max_length) for example in examples]
    elif one_string:
        items = [
            study_completion_features(
                tokenizer, render(spec, example, TRAINING_FORMAT), answer_text(spec, example), max_length
            )
            for example in examples
        ]
    else:
        items = _completion_items(spec, examples, tokenizer, max_length, train_shots, seed)
    features = [item for item in items if any(label != IGNORE for label in item["labels"])]
    if not features:
        raise UserError(
            f"no example of {spec.name} fits in max_length={max_length} tokens with its answer: raise --max-length"
        )
    return features


def padding_collator(tokenizer, pad_to: int | None = None):
    """``DataCollatorForSeq2Seq`` padding on the right, whatever side the tokenizer pads prompts on: to the
    batch's longest example (or to ``pad_to``), labels with -100, attention mask 0."""
    import copy

    from transformers import DataCollatorForSeq2Seq

    right = copy.copy(tokenizer)  # the model's tokenizer is saved with it: its padding side stays as it was
    right.padding_side = "right"
    return DataCollatorForSeq2Seq(
        right, padding="max_length" if pad_to else "longest", max_length=pad_to, label_pad_token_id=IGNORE
    )
