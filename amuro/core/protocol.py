"""The two protocols: ``study`` (Amuro & Char's code, byte for byte) and ``amuro`` (the default, with fixes).

Every place where they differ is one field of ``Protocol``, declared with its two values; its metadata says what
each protocol does and why amuro differs. The table "study | amuro | why" in docs/protocols.md lists the same
fields (a test keeps them equal). The layers read the values they need (``protocol("study").label_tokens``),
never the protocol's name.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from amuro.core.errors import unknown

PROTOCOLS = ("amuro", "study")
DEFAULT_PROTOCOL = "amuro"


def differs(values: tuple, study: str, amuro: str, why: str):
    """A field where the protocols differ: its (study, amuro) values, what each does, and why amuro differs."""
    return field(metadata={"values": dict(zip(("study", "amuro"), values)), "study": study, "amuro": amuro, "why": why})


@dataclass(frozen=True)
class Protocol:
    name: str
    templates: str = differs(
        ("verbatim", "corrected"),
        "verbatim, quirks included: question generation shows every candidate answer (Social IQa `Answer A: "
        "… Answer B: …Answer C: …`; SciQ the correct answer and the three distractors as `Answer A`–`D`), "
        "missing spaces (before `Answer C:`/`Answer D:`, before `Generate`), `Let’s` (U+2019); the formats "
        "the study had (no `io` for CNN, SciQ, TweetQA, RTE, GPT3NLI, QQP, STS-B)",
        "question generation shows the correct answer only; single spaces; ASCII `Let's`; every format",
        "showing the distractors as answers asks a different task than the one trained (Social IQa's "
        "training prompt had them too, so both change together)",
    )
    demonstrations: str = differs(
        ("first-k", "train"),
        '`first-k`: the first k items of the scored split, each `prompt + completion + "\\n"`, and scored too',
        "`train`: seeded from the train split, never scored; joined with a space, separated by a blank line",
        "scoring the demonstrations themselves inflates the score by k items the model has the answer to",
    )
    mc_demonstrations: str = differs(
        ("catwalk", "as-demos"),
        "catwalk's draw (OLMo's evaluation, which the study ran its multiple-choice suites through): for the item "
        "at row i of the scored split, `random.Random(i).sample(train split, k + 1)`, the item itself left out, the "
        "first k kept; each item its own demonstrations",
        "as `--demos` says, like every other task",
        "one draw per cell keeps the shared prefix (and its cache) and makes the demonstrations a setting of the "
        "cell; `--demos` still names either rule",
    )
    stop: str = differs(
        ("none", "default"),
        "`none`: 60 new tokens or end of sequence",
        "`default`: also a blank line or the template's opening at a line start",
        "a base model continues with the next made-up demonstration, which ROUGE-L counts",
    )
    label_tokens: str = differs(
        ("every-subtoken", "first-token"),
        "`every-subtoken`: every token of `tokenizer(force_words).input_ids` (each label word with and "
        "without a leading space), argmax mapped back to its word",
        "`first-token`: each label word's first token, with and without a leading space",
        "a later sub-token (`ail` of `entailment`) is not a prediction of its word",
    )
    truncation: str = differs(
        ("none", "left"),
        "`none`: a prompt longer than the model's positions is scored in full (the tokenizer call in "
        "`eval/utils.py` passes no `truncation=True`); a model with a fixed table of positions cannot take it, "
        "which is an error naming the cell",
        "`left`: such a prompt loses its beginning, keeping the item and its end",
        "a model without rotary or relative positions cannot read past its table; cutting the oldest demonstration "
        "text keeps every cell scoreable",
    )
    rouge_stemming: bool = differs(
        (False, True),
        "no (HF `evaluate`'s `rouge` default)",
        "yes (Porter stemmer)",
        "a question's inflections (`helps`/`helped`) are the same answer",
    )
    scored_splits: str = differs(
        ("study", "labelled"),
        "RTE's train split with the three NLI words (label 1 → neutral); TweetQA's train split; the "
        "multiple-choice suites on validation",
        "RTE validation, two-way (`entailment`/`contradiction`); TweetQA validation; ARC, OpenBookQA and SciQ on test",
        "scoring RTE's train split as three-way makes `not_entailment` always `neutral`; train splits are for training",
    )
    train_subset: str = differs(
        ("datasets-shuffle", "seeded-shuffle"),
        "`datasets`' `shuffle(seed=42).select(range(6000))` (NumPy's `default_rng(42).permutation`); Tulu "
        "`int(n * 0.05)` of the same permutation",
        "Python's `random.Random(42)` shuffle; Tulu `round(n * 0.05)`",
        "either is a seeded sample of the same size; amuro keeps the sample it has always drawn, so its runs stay "
        "comparable across versions",
    )
    micro_batch: str = differs(
        ("1x8", "preset"),
        "1 example × 8 accumulation steps (the `amuro-char` preset's other settings, seed 42)",
        "the preset's batch (`tiny`: 4 × 1; `amuro-char`: 8 × 1), seed 0",
        "a batch of 8 is the same update with fewer steps",
    )
    loss_weighting: str = differs(
        ("example", "token"),
        "`example`: each example's mean token loss, weighted equally",
        "`token`: every answer token weighted equally across the accumulated batch (the Trainer's)",
        "short answers (labels) and long ones (summaries) then count by their length, as in pre-training",
    )
    training_tokenization: str = differs(
        ("one-string", "split"),
        "`one-string`: prompt, completion and EOS tokenized as one string; the first "
        "`len(tokenizer(prompt[:-1]))` tokens masked; cut from the right at the maximum length",
        "`split`: prompt and answer tokenized apart (an exact boundary); a long prompt loses its beginning",
        "the joint tokenization can merge the prompt's last space into the answer's first token, and a right "
        "cut drops the answer",
    )


AMURO = Protocol(
    name="amuro",
    templates="corrected",
    demonstrations="train",
    mc_demonstrations="as-demos",
    stop="default",
    label_tokens="first-token",
    truncation="left",
    rouge_stemming=True,
    scored_splits="labelled",
    train_subset="seeded-shuffle",
    micro_batch="preset",
    loss_weighting="token",
    training_tokenization="split",
)


def _protocol(name: str) -> Protocol:
    return Protocol(name=name, **{f.name: f.metadata["values"][name] for f in fields(Protocol) if f.metadata})


STUDY, AMURO = _protocol("study"), _protocol("amuro")
_BY_NAME = {"study": STUDY, "amuro": AMURO}
STUDY_TRAIN_SEED = 42
STUDY_MICRO_BATCH = {"batch_size": 1, "grad_accum": 8}


def protocol(name: str) -> Protocol:
    try:
        return _BY_NAME[name]
    except KeyError:
        raise unknown("protocol", name, PROTOCOLS) from None


def differences() -> list[tuple[str, str, str, str]]:
    """(setting, study, amuro, why) for every place the protocols differ."""
    return [
        (f.name, f.metadata["study"], f.metadata["amuro"], f.metadata["why"]) for f in fields(Protocol) if f.metadata
    ]
