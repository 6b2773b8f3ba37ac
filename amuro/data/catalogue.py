"""Built-in catalogue entries: the synthetic suite (offline default), then the study's real datasets."""

from __future__ import annotations

from amuro.data.registry import register
from amuro.data.spec import DatasetSpec
from amuro.data.synthetic import GENERATORS

_DESCRIPTIONS = {
    "nli": "premise/hypothesis inference about people of a small town",
    "paraphrase": "do two event sentences say the same (word swaps, PAWS-like)",
    "summary": "one-sentence gist of a short story (XSum-like)",
    "qgen": "write the question a context and answer belong to (SocialIQA-like)",
}
_OOD_DESCRIPTIONS = {
    "nli": "inference in another world (knights, castles), other sentence patterns",
    "paraphrase": "paraphrase judgements in another world and vocabulary",
    "summary": "highlight-style summaries of stories from another world (CNN/DM-like)",
    "qgen": "questions about another world, with distractor sentences",
}


def _synthetic(task: str) -> None:
    """Each task's town set (trained on, in-domain for instruction tuning) and its other-world set."""
    for suffix, world, trained, description in (
        ("", "town", True, _DESCRIPTIONS[task]),
        ("-ood", "realm", False, _OOD_DESCRIPTIONS[task]),
    ):
        register(
            DatasetSpec(
                name=f"synth-{task}{suffix}",
                task=task,
                source="synthetic",
                path=f"{task}/{world}",
                labels=GENERATORS[task][1],
                trainable=trained,
                train_size=None,
                in_domain_of=("synth-instruct",) if trained else (),
                description=description,
            )
        )


for _task in GENERATORS:
    _synthetic(_task)

register(
    DatasetSpec(
        name="synth-instruct",
        task="chat",
        source="synthetic",
        path="instruct/town",
        splits={"train": "train", "validation": "validation"},
        trainable=True,
        train_size=6000,
        description="instruction mixture: the four synthetic tasks as natural-language instructions (chat)",
    )
)

# isort: off
from amuro.data import study  # noqa: E402,F401  (registers the study's datasets)
from amuro.data import preferences  # noqa: E402,F401  (then the preference sets)
# isort: on
