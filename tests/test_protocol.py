"""``--protocol study``: the study's prompts byte for byte, its label candidates, ROUGE-L, subsets and loss."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from hubdata import FIXTURES, SHARED_FIXTURES, local_study_data
from sweeps import mlflow_run, store_env

from amuro.cli import main
from amuro.core.errors import UserError
from amuro.core.protocol import differences
from amuro.core.settings import EvalSettings, FinetuneSettings
from amuro.data import formats_for, get, load_examples, render
from amuro.data.formats import few_shot_prefix
from amuro.data.protocol import for_protocol
from amuro.scoring.cells import demos_and_items

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
    settings = EvalSettings(shots=2, protocol="study")
    demos, items = demos_and_items(spec, settings)
    assert settings.demo_source == "first-k" and settings.stop_rule == "none"
    assert [d.item_id for d in demos] == [i.item_id for i in items[:2]]
    rows = FIXTURES["socialiqa"][1]["validation"]
    build = STUDY_PROMPTS["socialiqa"]["instruct"]
    prefix = "".join(build(r) + r["question"] + "\n" for r in rows[:2])  # eval/predict.py's prefix_prompt
    prompt = few_shot_prefix(spec, demos, "instruct", verbatim=True) + render(spec, items[0], "instruct")
    assert prompt.encode() == (prefix + build(rows[0])).encode()


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
    cells = [[cell.strip() for cell in row.strip("|").split(" | ")] for row in rows]
    assert [(name.strip("`"), *text) for name, *text in cells] == differences()


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


@pytest.mark.slow
def test_mlflow_run_finetune_under_the_study_protocol_takes_the_studys_training_settings(small_series, tmp_path):
    """The README's command, on the small series: MLproject leaves preset, seed and batch to the protocol."""
    import subprocess

    from mlflow.tracking import MlflowClient

    env = store_env(tmp_path)
    params = {"experiment": "f", "protocol": "study", "model": small_series, "dataset": "synth-nli", "epochs": 1}
    command = mlflow_run(
        "finetune", {**params, "max_train_examples": 8, "max_length": 128, "eval": "false"}, "--experiment-name", "f"
    )
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
