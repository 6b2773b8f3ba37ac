"""The study's three prompt formats per task, few-shot assembly and stop strings."""

from __future__ import annotations

import string
from collections.abc import Sequence

from amuro.core.errors import unknown
from amuro.data.spec import DatasetSpec, Example

FORMATS = ("default", "instruct", "io")
# Result versions of prompt rendering per task family (templates, few-shot assembly, answer text, stop
# strings): bump a family's when a change alters its prompts; its eval cells are then scored again.
TEMPLATE_VERSIONS = {"nli": 1, "paraphrase": 1, "summary": 1, "qgen": 1, "mc": 1, "chat": 1}
DEMO_SEPARATOR = "\n\n"

TEMPLATES: dict[str, dict[str, str]] = {
    "nli": {
        "default": "### Input_1: {premise}\n ### Input_2: {hypothesis}\n ### Inference: ",
        "instruct": "Consider the following texts: Text 1: {premise} Text 2: {hypothesis} The relation is ",
        "io": "{premise} {hypothesis}",
    },
    "paraphrase": {
        "default": "### Input_1: {s1}\n ### Input_2: {s2}\n ### Paraphrase Classification: ",
        "instruct": "Let's compare the two sentences: Sentence_1: {s1} Sentence_2: {s2} Are they paraphrasing?: ",
        "io": "{s1} {s2}",
    },
    "summary": {
        "default": "### Input: {document}\n ### Summary: ",
        "instruct": "Please read the following text: {document} Provide a summary: ",
        "io": "{document}",
    },
    "qgen": {
        "default": "### Input: {context}\n ### Answer: {answer}\n ### Question: ",
        "instruct": "Given the context: {context} And the answer: {answer} Generate a suitable question: ",
        "io": "{context} {answer}",
    },
    "mc": {
        "default": "Question: {question}\nAnswer:",
    },
}


def _templates(spec: DatasetSpec) -> dict[str, str]:
    options = {**TEMPLATES.get(spec.task, {}), **spec.templates}
    return {f: t for f, t in options.items() if not spec.formats or f in spec.formats}


def template(spec: DatasetSpec, fmt: str) -> str:
    options = _templates(spec)
    if fmt not in options:
        raise unknown(f"prompt format for {spec.name}", fmt, options)
    return options[fmt]


def formats_for(spec: DatasetSpec) -> tuple[str, ...]:
    options = _templates(spec)
    return tuple(f for f in FORMATS if f in options) + tuple(sorted(set(options) - set(FORMATS)))


def slots_of(tmpl: str) -> tuple[str, ...]:
    return tuple(name for _, name, _, _ in string.Formatter().parse(tmpl) if name)


def render(spec: DatasetSpec, example: Example, fmt: str) -> str:
    """The prompt for one item, without its answer."""
    return template(spec, fmt).format(**example.slots)


def join(prompt: str, answer: str) -> str:
    """Prompt and answer as one demonstration; a space separates them unless the prompt ends in one."""
    if not prompt or prompt[-1].isspace() or answer[:1].isspace():
        return prompt + answer
    return prompt + " " + answer


def continuation(prompt: str, answer: str) -> str:
    """The text that follows ``prompt`` in ``join(prompt, answer)``."""
    return join(prompt, answer)[len(prompt) :]


def answer_text(spec: DatasetSpec, example: Example) -> str:
    if spec.kind == "multiple_choice":
        return example.choices[example.gold]
    return example.target


def few_shot_prefix(spec: DatasetSpec, demos: Sequence[Example], fmt: str, *, verbatim: bool = False) -> str:
    """Demonstrations joined with their answers, ending with the separator before the scored item.

    ``verbatim`` lays them out as the study's code does: ``prompt + completion + "\n"`` each, nothing added
    (the multiple-choice suites keep the harness layout, which the study's evaluation of them used)."""
    if verbatim and spec.kind != "multiple_choice":
        return "".join(render(spec, demo, fmt) + answer_text(spec, demo) + "\n" for demo in demos)
    blocks = [join(render(spec, demo, fmt), answer_text(spec, demo)) for demo in demos]
    return "".join(block + DEMO_SEPARATOR for block in blocks)


def stop_strings(spec: DatasetSpec, fmt: str) -> tuple[str, ...]:
    """A blank line, and the template's whole literal opening (``### Input:``, ``Given the context:``) at the
    start of a line: where the next demonstration-like block would begin. Words of the opening elsewhere in
    the text (a question that contains "Given") do not stop."""
    opening = template(spec, fmt).split("{", 1)[0].strip()
    return tuple(s for s in (DEMO_SEPARATOR, "\n" + opening if opening else "") if s)
