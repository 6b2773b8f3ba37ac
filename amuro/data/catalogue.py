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
    labels = GENERATORS[task][1]
    register(
        DatasetSpec(
            name=f"synth-{task}",
            task=task,
            source="synthetic",
            path=f"{task}/town",
            labels=labels,
            trainable=True,
            train_size=None,
            in_domain_of=("synth-instruct",),
            description=_DESCRIPTIONS[task],
        )
    )
    register(
        DatasetSpec(
            name=f"synth-{task}-ood",
            task=task,
            source="synthetic",
            path=f"{task}/realm",
            labels=labels,
            trainable=False,
            train_size=None,
            description=_OOD_DESCRIPTIONS[task],
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
