"""``synth-instruct``: an offline instruction-tuning mixture built from the synthetic suite's training sets.

Each item is a one-turn conversation: a natural-language instruction wrapping one example of a synthetic
task (several phrasings per task, so the model cannot key on one wording), and the example's answer as the
assistant reply. The four tasks are interleaved in a seeded order. The ``train`` role draws on the tasks'
training splits and ``validation`` on their validation splits, so no evaluation item is ever trained on.
"""

from __future__ import annotations

import random
from functools import lru_cache

from amuro.data import synthetic
from amuro.data.spec import Example

INSTRUCTIONS: dict[str, tuple[str, ...]] = {
    "nli": (
        "Read the two statements below. Does the first one imply the second, contradict it, or neither? "
        "Answer with one word: entailment, contradiction or neutral.\n\nStatement 1: {premise}\n"
        "Statement 2: {hypothesis}",
        "Premise: {premise}\nHypothesis: {hypothesis}\n\nIf the premise is true, is the hypothesis true "
        "(entailment), false (contradiction), or impossible to tell (neutral)?",
        'Given that "{premise}", what can we say about the claim "{hypothesis}"? Reply with entailment, '
        "neutral or contradiction.",
    ),
    "paraphrase": (
        "Do these two sentences describe exactly the same event? Answer yes or no.\n\n"
        "Sentence 1: {s1}\nSentence 2: {s2}",
        "Is the second sentence a paraphrase of the first? Reply with yes or no.\n\nFirst: {s1}\nSecond: {s2}",
        '"{s1}" and "{s2}": do they mean the same thing? Say yes or no.',
    ),
    "summary": (
        "Summarize the following story in one sentence.\n\n{document}",
        "Read this short story and give its gist in a single sentence.\n\nStory: {document}",
        "{document}\n\nWhat is this story about? Answer in one sentence.",
    ),
    "qgen": (
        "Here is a short text and an answer. Write the question that the answer responds to.\n\n"
        "Text: {context}\nAnswer: {answer}",
        'Context: {context}\n\nWrite a question about the context whose answer is "{answer}".',
        "Make up the question for this answer, using the text.\nText: {context}\nAnswer: {answer}",
    ),
}


@lru_cache(maxsize=8)
def mixture(domain: str, split: str) -> tuple[Example, ...]:
    """The instruction conversations of one split of ``domain`` (``town``), all four tasks interleaved."""
    items: list[Example] = []
    for task, phrasings in INSTRUCTIONS.items():
        for number, example in enumerate(synthetic.generate(task, domain, split)):
            instruction = phrasings[number % len(phrasings)].format(**example.slots)
            items.append(
                Example(
                    item_id=f"instruct-{example.item_id}",
                    slots={},
                    target=example.target,
                    messages=(
                        {"role": "user", "content": instruction},
                        {"role": "assistant", "content": example.target},
                    ),
                )
            )
    random.Random(f"instruct/{domain}/{split}").shuffle(items)
    return tuple(items)
