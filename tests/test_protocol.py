"""``--protocol study``: the study's prompts byte for byte, its label candidates, ROUGE-L, subsets and loss."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from hubdata import FIXTURES, SHARED_FIXTURES, local_study_data

from amuro.cli import main
from amuro.core.errors import UserError
from amuro.core.protocol import differences, protocol
from amuro.core.settings import EvalSettings, FinetuneSettings, SweepSettings
from amuro.data import formats_for, get, load_examples, render
from amuro.data.formats import few_shot_prefix
from amuro.data.loading import sample_size, shuffled
from amuro.data.protocol import for_protocol
from amuro.scoring.cell_scoring import score_cell
from amuro.scoring.cells import demos_and_items
from amuro.scoring.label_tokens import every_subtoken, first_tokens
from amuro.scoring.metrics import bootstrap, rouge_l
from amuro.training.features import IGNORE, study_chat_features, study_completion_features
from amuro.training.trainer import per_example_loss

ROOT = Path(__file__).resolve().parents[1]


# --- the study's code, written out (open_instruct/format_generalization.py), for one row each ----------------


def _summary(document):
    return {
        "default": lambda r: "### Input: " + r[document] + "\n ### Summary: ",
        "instruct": lambda r: f"Please read the following text: {r[document]} Provide a summary: ",
        "io": lambda r: r[document],
    }


def _nli(a, b):
    return {
        "default": lambda r: "### Input_1: " + r[a] + "\n ### Input_2: " + r[b] + "\n ### Inference: ",
        "instruct": lambda r: f"Consider the following texts: Text 1: {r[a]} Text 2: {r[b]} The relation is ",
        "io": lambda r: f"{r[a]} {r[b]}",
    }


def _paraphrase(a, b):
    return {
        "default": lambda r: "### Input_1: " + r[a] + "\n ### Input_2: " + r[b] + "\n ### Paraphrase Classification: ",
        "instruct": lambda r: (
            f"Let’s compare the two sentences: Sentence_1: {r[a]} Sentence_2: {r[b]} Are they paraphrasing?: "
        ),
        "io": lambda r: f"{r[a]} {r[b]}",
    }


def _only(builders, *names):
    return {name: builders[name] for name in names}


STUDY_PROMPTS = {
    "xsum": _summary("document"),
    "xlsum": _summary("text"),
    "cnn_dailymail": _only(_summary("article"), "default", "instruct"),
    "socialiqa": {
        "default": lambda r: (
            "### Input: "
            + r["context"]
            + "\n ### Answer: Answer A: "
            + r["answerA"]
            + " Answer B: "
            + r["answerB"]
            + "Answer C: "
            + r["answerC"]
            + "\n ### Question: "
        ),
        "instruct": lambda r: (
            "Given the context: "
            + r["context"]
            + " And the answer: Answer A: "
            + r["answerA"]
            + " Answer B: "
            + r["answerB"]
            + "Answer C: "
            + r["answerC"]
            + "Generate a suitable question: "
        ),
        "io": lambda r: r["context"] + r["answerA"] + r["answerB"] + r["answerC"],
    },
    "sciq": {
        "default": lambda r: (
            "### Input: "
            + r["support"]
            + "\n ### Answer: Answer A: "
            + r["correct_answer"]
            + " Answer B: "
            + r["distractor1"]
            + " Answer C: "
            + r["distractor2"]
            + "Answer D: "
            + r["distractor3"]
            + "\n ### Question: "
        ),
        "instruct": lambda r: (
            "Given the context: "
            + r["support"]
            + " And the answer: Answer A: "
            + r["correct_answer"]
            + " Answer B: "
            + r["distractor1"]
            + "Answer C: "
            + r["distractor2"]
            + "Answer D: "
            + r["distractor3"]
            + "Generate a suitable question: "
        ),
    },
    "tweetqa": {
        "default": lambda r: "### Input: " + r["Tweet"] + "\n ### Answer: " + r["Answer"][0] + "\n ### Question: ",
        "instruct": lambda r: (
            "Given the context: " + r["Tweet"] + " And the answer: " + r["Answer"][0] + "Generate a suitable question: "
        ),
    },
    "mnli": _nli("premise", "hypothesis"),
    "mnli_matched": _nli("premise", "hypothesis"),
    "mnli_mismatched": _nli("premise", "hypothesis"),
    "rte": _only(_nli("sentence1", "sentence2"), "default", "instruct"),
    "gpt3nli": _only(_nli("text_a", "text_b"), "default", "instruct"),
    "paws": _paraphrase("sentence1", "sentence2"),
    "qqp": _only(_paraphrase("question1", "question2"), "default", "instruct"),
    "stsb": _only(_paraphrase("sentence1", "sentence2"), "default", "instruct"),
}
# The study's completion for the same row (its ``text_label`` / target column).
STUDY_COMPLETIONS = {
    "rte": lambda r: "neutral" if r["label"] == 1 else "entailment",
    "socialiqa": lambda r: r["question"],
}
FIRST_SCORED_ROW = {"sciq": 1}  # SciQ's first test row has no support paragraph (left out, see docs/protocols.md)


@pytest.fixture(scope="module")
def study_data(tmp_path_factory):
    with local_study_data(tmp_path_factory) as root:
        yield root


def _raw_row(spec, role: str, index: int) -> dict:
    rows = FIXTURES[SHARED_FIXTURES.get(spec.name, spec.name)][1][spec.splits[role]]
    return rows[index]


@pytest.mark.parametrize("name", sorted(STUDY_PROMPTS))
def test_study_prompts_are_the_study_codes_strings_byte_for_byte(study_data, name):
    spec = for_protocol(get(name), "study")
    role = "train" if name == "mnli" else "test"
    builders = STUDY_PROMPTS[name]
    assert formats_for(spec) == tuple(builders)
    index = FIRST_SCORED_ROW.get(name, 0)
    example = load_examples(spec, role, protocol="study")[0]
    row = _raw_row(spec, role, index)
    for fmt, build in builders.items():
        assert render(spec, example, fmt).encode() == build(row).encode(), (name, fmt)
    if name in STUDY_COMPLETIONS:
        assert example.target == STUDY_COMPLETIONS[name](row)


def test_study_quirks_are_kept(study_data):
    social = load_examples(for_protocol(get("socialiqa"), "study"), "test", protocol="study")[0]
    assert "Answer B: to leaveAnswer C: to sleepGenerate" in render(
        for_protocol(get("socialiqa"), "study"), social, "instruct"
    )
    paws = for_protocol(get("paws"), "study")
    assert "Let\u2019s compare" in render(paws, load_examples(paws, "test")[0], "instruct")
    assert "Let's compare" in render(get("paws"), load_examples(get("paws"), "test")[0], "instruct")
    assert render(get("socialiqa"), load_examples(get("socialiqa"), "test")[0], "default") == (
        "### Input: Robin helped friend 0.\n ### Answer: to be kind\n ### Question: "
    )
    rte = for_protocol(get("rte"), "study")
    assert rte.splits["test"] == "train" and [e.target for e in load_examples(rte, "test")] == [
        "entailment",
        "neutral",
        "neutral",
        "entailment",
    ]
    assert for_protocol(get("tweetqa"), "study").splits["test"] == "train"
    assert for_protocol(get("arc_easy"), "study").splits["test"] == "validation"
    assert for_protocol(get("xsum"), "study") == get("xsum") and for_protocol(get("rte"), "amuro") == get("rte")


def test_study_demonstrations_are_the_first_items_prepended_unchanged_and_scored(study_data):
    spec = for_protocol(get("socialiqa"), "study")
    settings = EvalSettings(shots=2, protocol="study", max_examples=3)
    demos, items = demos_and_items(spec, settings)
    assert settings.demo_source == "first-k" and settings.stop_rule == "none"
    assert [d.item_id for d in demos] == [i.item_id for i in items[:2]]
    rows = FIXTURES["socialiqa"][1]["validation"]
    build = STUDY_PROMPTS["socialiqa"]["instruct"]
    prefix = "".join(build(r) + r["question"] + "\n" for r in rows[:2])  # eval/predict.py's prefix_prompt
    prompt = few_shot_prefix(spec, demos, "instruct", verbatim=True) + render(spec, items[0], "instruct")
    assert prompt.encode() == (prefix + build(rows[0])).encode()


# --- classification candidates, ROUGE-L, the interval midpoint ------------------------------------------------


def test_label_candidates_are_every_subtoken_of_each_word_with_and_without_a_space(small_series):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(
        Path(small_series) / sorted(p.name for p in Path(small_series).iterdir() if p.is_dir())[0]
    )
    words = ("entailment", "neutral", "contradiction")
    force_words = ["entailment", "neutral", "contradiction", " entailment", " neutral", " contradiction"]
    candidates, owners = every_subtoken(tokenizer, words)
    assert candidates == np.concatenate(tokenizer(force_words).input_ids).tolist()
    lengths = [len(ids) for ids in tokenizer(force_words).input_ids]
    assert owners == [n % 3 for n, length in enumerate(lengths) for _ in range(length)]
    assert max(lengths) > 1 and len(candidates) > sum(len(t) for t in first_tokens(tokenizer, words))


def test_study_next_token_prediction_matches_the_studys_argmax(small_series):
    """eval/utils.get_next_word_predictions + convert_pred_ids, written out, on the same prompts."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = Path(small_series) / sorted(p.name for p in Path(small_series).iterdir() if p.is_dir())[-1]
    model, tokenizer = AutoModelForCausalLM.from_pretrained(folder), AutoTokenizer.from_pretrained(folder)
    spec = for_protocol(get("synth-nli"), "study")
    items = load_examples(spec, "test")[:6]
    results = score_cell(model, tokenizer, spec, "default", [], items, EvalSettings(protocol="study"))
    force_words = ["entailment", "neutral", "contradiction", " entailment", " neutral", " contradiction"]
    unconcatenated = tokenizer(force_words).input_ids
    candidate_ids = np.concatenate(unconcatenated).tolist()
    owner = [index for index, ids in enumerate(unconcatenated) for _ in ids]
    for item, result in zip(items, results):
        ids = tokenizer([render(spec, item, "default")], return_tensors="pt").input_ids
        with torch.no_grad():
            probs = torch.softmax(model(input_ids=ids).logits[:, -1, :], dim=-1)[:, candidate_ids]
        expected = force_words[owner[int(torch.argmax(probs, dim=-1))]]
        assert result.prediction == expected.strip()


def test_study_rouge_l_is_unstemmed_as_evaluate_computes_it():
    from rouge_score import rouge_scorer

    predictions, references = ["Why did Robin helps them?", "who wins"], ["Why did Robin help?", "who won game 3?"]
    unstemmed = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)  # evaluate's rouge.py, its default
    assert rouge_l(predictions, references, stemming=False) == [
        unstemmed.score(r, p)["rougeL"].fmeasure for p, r in zip(predictions, references)
    ]
    assert rouge_l(predictions, references, stemming=False)[0] < rouge_l(predictions, references)[0]
    assert protocol("study").rouge_stemming is False and protocol("amuro").rouge_stemming is True


def test_interval_midpoint_is_logged_beside_the_mean():
    estimate = bootstrap([1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0], resamples=3000, seed=1)
    metrics = estimate.metrics()
    assert metrics["score_ci_mid"] == pytest.approx((estimate.ci_high - estimate.ci_low) / 2 + estimate.ci_low)
    assert metrics["score"] == pytest.approx(4 / 7)


# --- fine-tuning: subsets, tokenization, loss weights ----------------------------------------------------------


def test_study_subset_is_datasets_own_shuffle_select(tmp_path):
    rows = datasets.Dataset.from_dict({"row": list(range(300))})
    picked = rows.shuffle(seed=42).select(range(60))["row"]
    assert shuffled(300, "study")[:60] == picked
    assert shuffled(300, "amuro")[:60] != picked
    path = tmp_path / "train.jsonl"
    path.write_text("".join(f'{{"premise": "P{i}.", "hypothesis": "H{i}.", "label": "neutral"}}\n' for i in range(300)))
    spec = dataclasses.replace(
        get("synth-nli"), name="rows", source="local", path=str(path), splits={"train": "train"}, train_size=60
    )
    assert [e.slots["premise"] for e in load_examples(spec, "train", protocol="study")] == [f"P{i}." for i in picked]
    tulu = dataclasses.replace(spec, train_size=None, subsample=0.05)
    assert sample_size(tulu, "train", 59, "study") == 2 and sample_size(tulu, "train", 59, "amuro") == 3


class _WordTokenizer:
    """A whitespace tokenizer with the call signature the study's code uses (ids of words, plus EOS)."""

    eos_token = "</s>"

    def __init__(self):
        self.vocab: dict[str, int] = {}

    def __call__(self, text, max_length=None, truncation=False, **_):
        ids = [self.vocab.setdefault(w, len(self.vocab)) for w in re.findall(r"</s>|\S+|\s(?=\S)", text)]
        return {"input_ids": ids[:max_length] if truncation and max_length else ids}


def test_study_tokenization_is_one_string_with_the_prompt_masked_as_the_study_masks_it():
    tokenizer = _WordTokenizer()
    features = study_completion_features(tokenizer, "### Input: a b\n ### Summary: ", "c d", 64)
    whole = tokenizer("### Input: a b\n ### Summary: c d</s>")["input_ids"]
    masked = len(tokenizer("### Input: a b\n ### Summary:")["input_ids"])
    assert features["input_ids"] == whole
    assert features["labels"] == [IGNORE] * masked + whole[masked:]
    cut = study_completion_features(tokenizer, "### Input: a b\n ### Summary: ", "c d", 5)
    assert cut["input_ids"] == whole[:5] and all(label == IGNORE for label in cut["labels"])
    chat = study_chat_features(
        tokenizer, [{"role": "user", "content": " hi "}, {"role": "assistant", "content": "yo"}], 64
    )
    text = "<|user|>\nhi\n<|assistant|>\nyo</s>"
    assert chat["input_ids"] == tokenizer(text)["input_ids"]
    prompt = len(tokenizer("<|user|>\nhi\n<|assistant|>\n")["input_ids"])
    assert chat["labels"][:prompt] == [IGNORE] * prompt and chat["labels"][prompt:] == chat["input_ids"][prompt:]


def test_each_example_weighs_the_same_in_the_study_loss():
    torch.manual_seed(0)
    logits = torch.randn(2, 6, 11)
    labels = torch.tensor([[IGNORE, IGNORE, 3, 4, 5, 6], [IGNORE, IGNORE, IGNORE, IGNORE, IGNORE, 7]])
    outputs = type("Out", (), {"logits": logits})()
    each = [torch.nn.functional.cross_entropy(logits[i, :-1], labels[i, 1:], ignore_index=IGNORE) for i in range(2)]
    assert float(per_example_loss(outputs, labels)) == pytest.approx(float((each[0] + each[1]) / 2))
    by_token = torch.nn.functional.cross_entropy(
        logits[:, :-1].reshape(-1, 11), labels[:, 1:].reshape(-1), ignore_index=IGNORE
    )
    assert float(per_example_loss(outputs, labels)) != pytest.approx(float(by_token))
    alone = [
        float(per_example_loss(type("Out", (), {"logits": logits[i : i + 1]})(), labels[i : i + 1])) for i in range(2)
    ]
    assert alone == pytest.approx([float(e) for e in each])  # micro-batch 1: each example's own mean


def test_study_training_settings():
    study = FinetuneSettings(protocol="study", dataset="synth-nli").train
    assert (
        study.preset,
        study.batch_size,
        study.grad_accum,
        study.seed,
        study.epochs,
        study.lr,
        study.train_shots,
        study.max_length,
    ) == ("amuro-char", 1, 8, 42, 3, 2e-6, 0, 2048)
    assert FinetuneSettings(protocol="study").eval.protocol == "study"
    assert FinetuneSettings(protocol="study").key_settings()["protocol"] == "study"
    assert FinetuneSettings(protocol="study", dataset="xsum").train.lr == 2e-7
    assert FinetuneSettings(protocol="study", dataset="synth-instruct", train={"tuning": "it"}).train.epochs == 5
    amuro = FinetuneSettings(dataset="synth-nli").train
    assert (amuro.preset, amuro.batch_size, amuro.grad_accum, amuro.seed) == ("tiny", 4, 1, 0)
    assert FinetuneSettings(protocol="study", train={"seed": 3, "batch_size": 2}).train.seed == 3
    sweep = SweepSettings(eval={"protocol": "study"})
    assert (sweep.train.preset, sweep.train.seed) == ("amuro-char", 42)
    key = EvalSettings(protocol="study").cell_key_settings("generation")
    assert (key["protocol"], key["demos"], key["stop"]) == ("study", "first-k", "none")


# --- the setting itself ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["pretrain-eval", "finetune", "crosseval", "sweep"])
def test_unknown_protocol_is_a_one_line_error(command):
    result = CliRunner().invoke(main, [command, "--protocol", "studdy"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == ["Error: unknown protocol 'studdy': did you mean study?"]
    with pytest.raises(UserError, match="unknown protocol 'x'"):
        EvalSettings(protocol="x")


def test_docs_table_lists_every_difference():
    page = (ROOT / "docs" / "protocols.md").read_text()
    table = page[page.index("| setting | study | amuro | why |") :]
    rows = [line for line in table.splitlines()[2:] if line.startswith("|")][: len(differences())]
    assert [row.split("|")[1].strip(" `") for row in rows] == [name for name, *_ in differences()]


# --- end to end: tags, run keys, params -------------------------------------------------------------------------


def test_pretrain_eval_under_each_protocol_is_its_own_tagged_cell(tracking_uri, small_series):
    from mlflow.tracking import MlflowClient

    from amuro.commands.pretrain_eval import pretrain_eval
    from amuro.core import tracking
    from amuro.core.settings import PretrainEvalSettings

    quick = dict(shots=2, max_examples=4, bootstrap=100, max_new_tokens=6)
    for name in ("study", "amuro", "study"):
        pretrain_eval(
            PretrainEvalSettings(
                experiment="p",
                model=small_series,
                checkpoints="1",
                formats="default",
                datasets="synth-nli,synth-qgen",
                eval=EvalSettings(protocol=name, **quick),
            )
        )
    client = MlflowClient()
    runs = client.search_runs([tracking.connect("p")], "tags.`amuro.kind` = 'eval'")
    assert sorted(r.data.tags["amuro.protocol"] for r in runs) == ["amuro", "amuro", "study", "study"]
    assert len({r.data.tags["amuro.run_key"] for r in runs}) == 4  # the third invocation reused the first's
    for run in runs:
        study = run.data.tags["amuro.protocol"] == "study"
        assert run.data.params["demos"] == ("first-k" if study else "train")
        assert run.data.params["stop"] == ("none" if study else "default")
        assert {"score", "score_ci_mid", "score_se"} <= set(run.data.metrics)
        prompt = client.download_artifacts(run.info.run_id, "prompt.txt")
        text = Path(prompt).read_text()
        assert ("\n\n" not in text) == study


def test_mlflow_run_finetune_under_the_study_protocol_takes_the_studys_training_settings(small_series, tmp_path):
    """The README's command, on the small series: MLproject leaves preset, seed and batch to the protocol."""
    import os
    import subprocess
    import sys

    from mlflow.tracking import MlflowClient

    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/mlflow.db"}
    for name in ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME"):
        env.pop(name, None)
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "run",
        str(ROOT),
        "-e",
        "finetune",
        "--env-manager",
        "local",
        "--experiment-name",
        "f",
        "-P",
        "experiment=f",
        "-P",
        "protocol=study",
        "-P",
        f"model={small_series}",
        "-P",
        "dataset=synth-nli",
        "-P",
        "epochs=1",
        "-P",
        "max_train_examples=8",
        "-P",
        "max_length=128",
        "-P",
        "eval=false",
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    experiment_id = client.get_experiment_by_name("f").experiment_id
    run = client.search_runs([experiment_id], "tags.`amuro.kind` = 'finetune'")[0]
    params = run.data.params
    assert (params["preset"], params["batch_size"], params["grad_accum"], params["seed"], params["lr"]) == (
        "amuro-char",
        "1",
        "8",
        "42",
        "2e-06",
    )
    assert run.data.tags["amuro.protocol"] == "study" and run.data.tags["amuro.seed"] == "42"
    assert run.data.metrics["train_loss_mean"] > 0


def test_socialiqa_training_prompts_change_with_the_protocol(study_data):
    from amuro.commands.finetune import training_examples, training_spec
    from amuro.training.features import TRAINING_FORMAT

    study = FinetuneSettings(protocol="study", dataset="socialiqa")
    spec = training_spec(study)
    example = training_examples(spec, study)[0]
    row = next(r for r in FIXTURES["socialiqa"][1]["train"] if r["question"] == example.target)
    assert render(spec, example, TRAINING_FORMAT) == STUDY_PROMPTS["socialiqa"]["default"](row)
    amuro = training_spec(FinetuneSettings(dataset="socialiqa"))
    assert "Answer A:" not in render(
        amuro, training_examples(amuro, FinetuneSettings(dataset="socialiqa"))[0], TRAINING_FORMAT
    )
