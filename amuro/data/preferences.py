"""Preference sets: a prompt and two answers, the chosen one and the rejected one (``--tuning dpo``).

An item is an ``Example`` of the ``preference`` task: its prompt in the ``prompt`` slot, and the pair as two
choices with the chosen answer gold, so a preference set is scored as two-way log-likelihood ranking (reward
accuracy: the share of pairs where the model prefers the chosen answer) and trained on with TRL's DPOTrainer.

``synth-prefs`` is built offline from the synthetic suite's second world (``realm``: knights, castles): each
item of the four tasks in its training (``default``) prompt format, the reference answer chosen, and rejected
a wrong label (inference, paraphrase) or another item's answer from the town world (summaries, questions),
an answer about the wrong world. Its pairs share no item with the supervised training sets (town), and its
held-out pairs come from the tasks' test splits. ``ultrafeedback`` is HuggingFaceH4/ultrafeedback_binarized,
whose ``chosen`` and ``rejected`` columns are whole conversations: the turns before the last reply make the
prompt, in the chat layout amuro's instruction tuning trains on, and the last replies are the pair.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from functools import lru_cache

from amuro.data import synthetic
from amuro.data.formats import TEMPLATES
from amuro.data.registry import register
from amuro.data.rows import register_preprocessor
from amuro.data.spec import DatasetSpec, Example

PREFERENCE_TASK = "preference"
PROMPT_TEMPLATES = {"default": "{prompt}"}
OFF_TOPIC = {"realm": "town", "town": "realm"}  # the world another item's rejected answer comes from
CHAT_MARKERS = {"system": "<|system|>\n", "user": "<|user|>\n", "assistant": "<|assistant|>\n"}


def chosen_and_rejected(example: Example) -> tuple[str, str]:
    """The pair of a preference item: its gold choice and the other one."""
    return example.choices[example.gold], example.choices[1 - example.gold]


def preference_mismatch(spec: DatasetSpec, tuning: str) -> str:
    """Why ``tuning`` cannot train on ``spec``: DPO needs preference pairs, and only DPO trains on them."""
    if tuning == "dpo":
        return (
            f"--tuning dpo needs preference pairs (prompt, chosen, rejected), and {spec.name} is a {spec.task} "
            "set: use --dataset synth-prefs (offline) or ultrafeedback"
        )
    return f"{spec.name} holds preference pairs: train on it with --tuning dpo, or use an {tuning} set"


def _rejected(rng: random.Random, example: Example, others: Sequence[Example]) -> str:
    if example.choices:
        return rng.choice([label for label in example.choices if label != example.target])
    while (other := rng.choice(others).target) == example.target:
        pass
    return other


@lru_cache(maxsize=8)
def synthetic_pairs(domain: str, split: str) -> tuple[Example, ...]:
    """The preference pairs of one split of ``domain``: the four synthetic tasks' items, interleaved."""
    rng = random.Random(f"prefs/{domain}/{split}")
    items: list[Example] = []
    for task in synthetic.GENERATORS:
        others = synthetic.generate(task, OFF_TOPIC[domain], split)
        for example in synthetic.generate(task, domain, split):
            prompt = TEMPLATES[task]["default"].format(**example.slots)
            chosen, rejected = example.target, _rejected(rng, example, others)
            items.append(
                Example(
                    item_id=f"prefs-{example.item_id}",
                    slots={"prompt": prompt},
                    target=chosen,
                    choices=(chosen, rejected),
                    gold=0,
                )
            )
    rng.shuffle(items)
    return tuple(items)


def chat_prompt(turns: Sequence[Mapping]) -> str:
    """Conversation turns in the chat layout of instruction tuning, ending where the assistant replies."""
    return (
        "".join(CHAT_MARKERS.get(str(t["role"]), "") + str(t["content"]).strip() + "\n" for t in turns)
        + (CHAT_MARKERS["assistant"])
    )


@register_preprocessor("preference_conversations")
def preference_conversations(row: dict) -> dict | None:
    """``chosen`` / ``rejected`` conversations sharing their turns before the last reply -> the prompt in the
    chat layout (``chat_prompt``), the two last replies, and the chosen one's index (0)."""
    chosen, rejected = row.get("chosen") or [], row.get("rejected") or []
    if not chosen or not rejected or chosen[-1].get("role") != "assistant":
        return None
    row["chat_prompt"] = chat_prompt(chosen[:-1])
    row["chosen_reply"] = str(chosen[-1].get("content") or "")
    row["rejected_reply"] = str(rejected[-1].get("content") or "")
    row["chosen_index"] = 0
    return row


register(
    DatasetSpec(
        name="synth-prefs",
        task=PREFERENCE_TASK,
        source="synthetic",
        path="prefs/realm",
        templates=PROMPT_TEMPLATES,
        trainable=True,
        train_size=6000,
        description="preference pairs of the four synthetic tasks (realm): the reference answer chosen, a wrong "
        "label or a town item's answer rejected",
    )
)
register(
    DatasetSpec(
        name="ultrafeedback",
        task=PREFERENCE_TASK,
        source="hub",
        path="HuggingFaceH4/ultrafeedback_binarized",
        splits={"train": "train_prefs", "test": "test_prefs"},
        fields={
            "prompt": "chat_prompt",
            "choices": "chosen_reply,rejected_reply",
            "gold": "chosen_index",
            "id": "prompt_id",
        },
        templates=PROMPT_TEMPLATES,
        preprocess="preference_conversations",
        trainable=True,
        description="UltraFeedback binarized: chat prompts with a chosen and a rejected reply (GPT-4 rated)",
        notes="the prompt is the conversation before the last reply, in the chat layout of instruction tuning",
    )
)
