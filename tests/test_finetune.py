"""finetune: label masking, real Trainer runs on the small series, logged models, LoRA, search, resume, bad input."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest
from click.testing import CliRunner
from mlflow.tracking import MlflowClient
from transformers import AutoModelForCausalLM, AutoTokenizer

from amuro.cli import main
from amuro.commands.finetune import finetune
from amuro.core.settings import EvalSettings, FinetuneSettings
from amuro.core.train_settings import TrainSettings
from amuro.data import get, load_examples, render
from amuro.models.series import local_series
from amuro.models.tuned import load_tuned
from amuro.training.features import IGNORE, chat_features, padding_collator, training_features

FAST = dict(max_train_examples=48, epochs=1, batch_size=8)


def _tokenizer(series_folder):
    return AutoTokenizer.from_pretrained(local_series(series_folder).last.location)


def _learned(tokenizer, item) -> str:
    return tokenizer.decode([t for t, label in zip(item["input_ids"], item["labels"]) if label != IGNORE])


def _runs(experiment: str, kind: str):
    exp = mlflow.get_experiment_by_name(experiment)
    return MlflowClient().search_runs([exp.experiment_id], f"tags.`amuro.kind` = '{kind}'")


def test_batches_are_padded_on_the_right_with_ignored_labels(small_series):
    tokenizer = _tokenizer(small_series)
    tokenizer.padding_side = "left"  # as for generation: training still pads on the right
    pad = tokenizer.pad_token_id
    items = [{"input_ids": [5, 6, 7], "labels": [IGNORE, 6, 7]}, {"input_ids": [8], "labels": [8]}]
    batch = {name: tensor.tolist() for name, tensor in padding_collator(tokenizer)(items).items()}
    assert batch == {
        "input_ids": [[5, 6, 7], [8, pad, pad]],
        "attention_mask": [[1, 1, 1], [1, 0, 0]],
        "labels": [[IGNORE, 6, 7], [8, IGNORE, IGNORE]],
    }
    fixed = padding_collator(tokenizer, pad_to=5)(items)
    assert fixed["input_ids"].shape == (2, 5) and fixed["labels"][0].tolist() == [IGNORE, 6, 7, IGNORE, IGNORE]
    assert tokenizer.padding_side == "left"


def test_completion_only_masking_learns_answer_and_eos_only(small_series):
    tokenizer = _tokenizer(small_series)
    spec = get("synth-nli")
    examples = load_examples(spec, "train", limit=5)
    for example, item in zip(examples, training_features(spec, examples, tokenizer, max_length=512)):
        prompt = render(spec, example, "default")
        assert item["labels"][-1] == tokenizer.eos_token_id
        assert _learned(tokenizer, item) == example.target + tokenizer.eos_token
        masked = [t for t, label in zip(item["input_ids"], item["labels"]) if label == IGNORE]
        assert tokenizer.decode(masked) == prompt and len(item["labels"]) == len(item["input_ids"])
    short = training_features(spec, examples[:1], tokenizer, max_length=16)[0]
    assert len(short["input_ids"]) == 16 and _learned(tokenizer, short) == examples[0].target + tokenizer.eos_token


def _spans(item) -> list[tuple[bool, list[int]]]:
    """The sequence as runs of (learned, token ids)."""
    spans: list[tuple[bool, list[int]]] = []
    for token, label in zip(item["input_ids"], item["labels"]):
        learned = label != IGNORE
        if spans and spans[-1][0] == learned:
            spans[-1][1].append(token)
        else:
            spans.append((learned, [token]))
    return spans


def test_packed_training_sequences_are_few_shot_prompts_with_every_answer_learned(small_series):
    tokenizer = _tokenizer(small_series)
    spec = get("synth-nli")
    examples = load_examples(spec, "train", limit=40)
    features = training_features(spec, examples, tokenizer, max_length=512, train_shots=3, seed=1)
    by_prompt = {render(spec, ex, "default"): ex.target for ex in examples}
    sizes = []
    for item in features:
        spans = _spans(item)
        prompts = [tokenizer.decode(ids) for learned, ids in spans if not learned]
        answers = [tokenizer.decode(ids) for learned, ids in spans if learned]
        assert len(prompts) == len(answers) and spans[0][0] is False
        assert all(p.startswith("\n\n") for p in prompts[1:]) and not prompts[0].startswith("\n")
        assert answers[-1].endswith(tokenizer.eos_token) and item["labels"][-1] == tokenizer.eos_token_id
        for prompt, answer in zip(prompts, answers):
            assert by_prompt.pop(prompt.removeprefix("\n\n")) == answer.removesuffix(tokenizer.eos_token).strip()
        sizes.append(len(prompts))
    assert not by_prompt, "every example is learned exactly once"
    assert max(sizes) <= 4 and max(sizes) > 1 and min(sizes) >= 1
    again = training_features(spec, examples, tokenizer, max_length=512, train_shots=3, seed=1)
    assert again == features and training_features(spec, examples, tokenizer, 512, train_shots=3, seed=2) != features
    tight = training_features(spec, examples, tokenizer, max_length=60, train_shots=3, seed=1)
    assert all(len(item["input_ids"]) <= 60 for item in tight)
    assert sum(len(_spans(item)) // 2 for item in tight) == len(examples)


def test_chat_template_masks_everything_but_assistant_turns(small_series):
    tokenizer = _tokenizer(small_series)
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Who is Anna?"},
        {"role": "assistant", "content": "A baker."},
        {"role": "user", "content": "Where does she live?"},
        {"role": "assistant", "content": "In Milltown."},
    ]
    item = chat_features(tokenizer, messages, max_length=512)
    eos = tokenizer.eos_token
    assert tokenizer.decode(item["input_ids"]) == (
        f"<|system|>\nBe brief.\n<|user|>\nWho is Anna?\n<|assistant|>\nA baker.{eos}\n"
        f"<|user|>\nWhere does she live?\n<|assistant|>\nIn Milltown.{eos}\n"
    )
    assert _learned(tokenizer, item) == f"A baker.{eos}In Milltown.{eos}"
    spec = get("synth-instruct")
    example = load_examples(spec, "train", limit=1)[0]
    features = training_features(spec, [example], tokenizer, max_length=1024)[0]
    assert _learned(tokenizer, features) == example.messages[-1]["content"] + eos
    assert "<|user|>" in tokenizer.decode(features["input_ids"])


def test_finetune_logs_a_reloadable_model_and_in_domain_evals(tracking_uri, small_series):
    cfg = FinetuneSettings(
        experiment="ft",
        model=small_series,
        eval=EvalSettings(max_examples=20, shots=2),
        train=TrainSettings(max_train_examples=48, epochs=1, batch_size=8, lr=3e-3),
    )
    run_id = finetune(cfg)
    client = MlflowClient()
    run = client.get_run(run_id)
    tags = run.data.tags
    series = local_series(small_series)
    assert run.info.status == "FINISHED" and run.info.run_name == f"finetune small@step{series.last.step} synth-nli"
    assert {tags[f"amuro.{k}"] for k in ("kind", "tuning", "train_dataset")} == {"finetune", "sft", "synth-nli"}
    assert tags["amuro.step"] == str(series.last.step) and tags["amuro.revision"] == series.last.revision
    assert tags["amuro.source_run_id"] == series.last.source_run_id and tags["amuro.run_key"]
    assert len(client.get_metric_history(run_id, "train_loss")) >= 2
    metrics = run.data.metrics
    assert metrics["tokens_per_second"] > 0 and 0 < metrics["weight_change"] < 1
    assert {"weight_change/layer_00", "weight_change/layer_01", "weight_change/embeddings"} <= set(metrics)
    assert run.data.params["lr"] == "0.003" and run.data.params["train_examples"] == "48"

    model, tokenizer = load_tuned(run_id)
    local = Path(mlflow.artifacts.download_artifacts(f"runs:/{run_id}/model"))
    direct = AutoModelForCausalLM.from_pretrained(local / "model")
    assert AutoTokenizer.from_pretrained(local / "components" / "tokenizer").eos_token == tokenizer.eos_token
    base = AutoModelForCausalLM.from_pretrained(series.last.location)
    name = "model.layers.0.mlp.up_proj.weight"
    tuned_weight = dict(model.named_parameters())[name]
    assert (tuned_weight == dict(direct.named_parameters())[name]).all()
    assert not (tuned_weight == dict(base.named_parameters())[name]).all()
    pipeline = mlflow.transformers.load_model(f"runs:/{run_id}/model")
    assert isinstance(pipeline("### Input_1: Anna is a baker.", max_new_tokens=3)[0]["generated_text"], str)

    evals = {(r.data.tags["amuro.tuning"], r.data.tags["amuro.relation"]): r for r in _runs("ft", "eval")}
    assert set(evals) == {("sft", "in-domain"), ("none", "base")}
    tuned_eval, base_eval = evals[("sft", "in-domain")], evals[("none", "base")]
    assert tuned_eval.data.tags["amuro.source_run_id"] == run_id
    assert tuned_eval.data.tags["mlflow.parentRunId"] == run_id
    assert base_eval.data.tags["amuro.source_run_id"] == series.last.source_run_id
    assert tuned_eval.data.metrics["n"] == 20 and tuned_eval.data.tags["amuro.format"] == "default"

    assert finetune(cfg) == run_id  # a finished run (and its eval cells) is reused
    assert len(_runs("ft", "finetune")) == 1 and len(_runs("ft", "eval")) == 2


def test_lora_merges_adapters_and_records_their_config(tracking_uri, small_series):
    run_id = finetune(
        FinetuneSettings(
            experiment="lora",
            model=small_series,
            evaluate=False,
            train=TrainSettings(lora=True, lora_r=4, lr=1e-2, **FAST),
        )
    )
    run = MlflowClient().get_run(run_id)
    assert run.data.tags["amuro.tuning"] == "sft+lora" and run.data.params["lora_r"] == "4"
    adapter = mlflow.artifacts.load_dict(f"runs:/{run_id}/lora/adapter_config.json")
    assert adapter["r"] == 4 and adapter["peft_type"] == "LORA"
    assert run.data.metrics["weight_change"] > 0
    model, _ = load_tuned(run_id)
    assert not any("lora" in name for name, _ in model.named_parameters())


def test_search_runs_nested_trials_then_trains_with_the_best(tracking_uri, small_series):
    run_id = finetune(
        FinetuneSettings(
            experiment="search",
            model=small_series,
            evaluate=False,
            train=TrainSettings(trials=2, **{**FAST, "max_train_examples": 32}),
        )
    )
    trials = _runs("search", "trial")
    assert len(trials) == 2
    assert {t.data.tags["mlflow.parentRunId"] for t in trials} == {run_id}
    assert all(t.info.status == "FINISHED" and t.data.metrics["val_loss"] > 0 for t in trials)
    best = min(trials, key=lambda t: t.data.metrics["val_loss"])
    params = MlflowClient().get_run(run_id).data.params
    assert float(params["best_lr"]) == pytest.approx(float(best.data.params["lr"]))
    assert params["final_epochs"] == best.data.params["epochs"] == params["best_epochs"]


@pytest.mark.slow
def test_killed_run_resumes_from_its_last_trainer_checkpoint(tracking_uri, small_series, amuro_home):
    command = [
        sys.executable,
        "-m",
        "amuro",
        "finetune",
        "--experiment",
        "resume",
        "--model",
        small_series,
        "--max-train-examples",
        "400",
        "--train-shots",
        "0",
        "--epochs",
        "2",
        "--batch-size",
        "2",
        "--save-steps",
        "20",
        "--eval",
        "false",
    ]
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri, "OMP_NUM_THREADS": "1"}
    first = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while not list(Path(amuro_home).glob("finetune/*/trainer/checkpoint-*/trainer_state.json")):
        assert first.poll() is None, "training finished before it could be killed"
        assert time.time() < deadline
        time.sleep(0.05)
    time.sleep(0.5)  # let the checkpoint finish writing
    first.send_signal(signal.SIGKILL)
    first.wait()
    [killed] = _runs("resume", "finetune")
    assert killed.info.status == "RUNNING"  # nobody marked it: the process died
    second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=400)
    assert second.returncode == 0, second.stderr[-2000:]
    assert f"resuming run {killed.info.run_id}" in second.stdout
    assert "continuing from Trainer checkpoint checkpoint-" in second.stdout
    [done] = _runs("resume", "finetune")
    assert done.info.run_id == killed.info.run_id and done.info.status == "FINISHED"
    steps = [m.step for m in MlflowClient().get_metric_history(done.info.run_id, "train_loss")]
    assert max(steps) == 400 and min(steps) < 40
    assert not list(Path(amuro_home).glob("finetune/*"))  # the work folder is gone once the model is logged


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--dataset", "synth-nly"], "unknown dataset 'synth-nly'"),
        (["--checkpoint", "step999999"], "unknown checkpoint"),
        (["--lr", "-1"], "lr must be above 0, got -1"),
        (["--epochs", "0"], "epochs must be at least 1, got 0"),
        (["--dataset", "synth-nli-ood"], "unknown training set"),
        (["--tuning", "it"], "instruction tuning needs a chat dataset"),
    ],
)
def test_bad_input_is_one_line_without_traceback(tracking_uri, small_series, arguments, message):
    result = CliRunner().invoke(main, ["finetune", "--experiment", "bad", "--model", small_series, *arguments])
    assert result.exit_code != 0
    lines = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert len(lines) == 1 and message in lines[0], result.output
    assert "Traceback" not in result.output and not isinstance(result.exception, (TypeError, ValueError))
