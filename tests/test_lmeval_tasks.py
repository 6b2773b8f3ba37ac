"""lm-evaluation-harness tasks as datasets: contract runs, predictions equal to lm-eval's own ``hf`` model, bad
input."""

import json
import textwrap

import mlflow
import pytest
from click.testing import CliRunner
from mlflow.tracking import MlflowClient

from amuro.cli import main
from amuro.commands.pretrain_eval import pretrain_eval
from amuro.core import tracking
from amuro.core.settings import EvalSettings, PretrainEvalSettings
from amuro.models.series import local_series

pytest.importorskip("lm_eval")

SHOTS, ITEMS = 2, 6
COLOURS = ["red", "blue", "green", "black", "white", "brown", "pink", "grey", "gold", "teal"]
THINGS = ["sky", "grass", "snow", "coal", "sea", "sand", "rose", "ash", "sun", "leaf"]


def write_tasks(folder):
    """One multiple-choice and one generation task over local JSON lines, in lm-eval's YAML."""
    rows = [
        {
            "question": f"What colour is the {thing}?",
            "choices": [COLOURS[i], COLOURS[(i + 3) % 10]],
            "label": i % 2,
            "answer": COLOURS[i],
        }
        for i, thing in enumerate(THINGS)
    ]
    for row in rows:
        if row["label"] == 1:
            row["choices"].reverse()
    for split, part in (("train", rows[:4]), ("test", rows[4:])):
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in part))
    data = textwrap.dedent(f"""\
        dataset_path: json
        dataset_kwargs:
          data_files:
            train: {folder / "train.jsonl"}
            test: {folder / "test.jsonl"}
        training_split: train
        fewshot_split: train
        test_split: test
        """)
    (folder / "colours_mc.yaml").write_text(
        data
        + textwrap.dedent("""\
        task: colours_mc
        output_type: multiple_choice
        doc_to_text: "Question: {{question}}\\nAnswer:"
        doc_to_choice: choices
        doc_to_target: label
        metric_list:
          - metric: acc
        """)
    )
    (folder / "colours_gen.yaml").write_text(
        data
        + textwrap.dedent("""\
        task: colours_gen
        output_type: generate_until
        doc_to_text: "Q: {{question}}\\nA:"
        doc_to_target: answer
        generation_kwargs:
          until: ["\\n", "."]
          max_gen_toks: 6
          do_sample: false
        metric_list:
          - metric: exact_match
        """)
    )
    return folder


def harness_predictions(folder, location):
    """lm-eval's own ``hf`` model on the same tasks: predicted choice / generated text per doc_id."""
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    lm = HFLM(pretrained=location, batch_size=4, device="cpu", dtype="float32")
    out = simple_evaluate(
        model=lm,
        tasks=["colours_mc", "colours_gen"],
        num_fewshot=SHOTS,
        task_manager=TaskManager(include_path=str(folder), include_defaults=False),
        log_samples=True,
        bootstrap_iters=0,
        random_seed=0,
        fewshot_random_seed=0,
    )
    mc = {
        str(s["doc_id"]): s["doc"]["choices"][max(range(2), key=lambda k: s["filtered_resps"][k][0])]
        for s in out["samples"]["colours_mc"]
    }
    gen = {str(s["doc_id"]): s["filtered_resps"][0] for s in out["samples"]["colours_gen"]}
    return {"lmeval:colours_mc": mc, "lmeval:colours_gen": gen}


def test_lm_eval_tasks_are_contract_cells_with_the_harness_predictions(tracking_uri, small_series, tmp_path):
    folder = write_tasks(tmp_path)
    cfg = PretrainEvalSettings(
        experiment="lm",
        model=small_series,
        checkpoints="1",
        lm_eval_include=str(folder),
        eval=EvalSettings(shots=SHOTS, bootstrap=200, batch_size=3),
    )
    parent = pretrain_eval(cfg)
    client = MlflowClient()
    runs = client.search_runs([tracking.connect("lm")], "tags.`amuro.kind` = 'eval'")
    assert sorted(r.data.tags["amuro.eval_dataset"] for r in runs) == ["lmeval:colours_gen", "lmeval:colours_mc"]
    ckpt = local_series(small_series).select("1")[0]
    expected = harness_predictions(folder, ckpt.location)
    mlflow.set_experiment("lm")
    for run in runs:
        tags, metrics = run.data.tags, run.data.metrics
        assert run.info.status == "FINISHED" and tags["mlflow.parentRunId"] == parent
        assert {"amuro." + t for t in tracking.CONTRACT_TAGS} <= set(tags)
        generation = tags["amuro.eval_dataset"] == "lmeval:colours_gen"
        assert tags["amuro.task"] == ("generation" if generation else "mc")
        assert tags["amuro.metric"] == ("exact_match" if generation else "accuracy")
        assert (tags["amuro.format"], tags["amuro.shots"], tags["amuro.relation"]) == ("default", str(SHOTS), "base")
        assert tags["amuro.step"] == str(ckpt.step) and metrics["n"] == ITEMS
        table = mlflow.load_table("predictions.json", run_ids=[run.info.run_id])
        ids = [str(i) for i in table.item_id]  # pandas reads the doc ids back as numbers
        assert sorted(ids) == [str(i) for i in range(ITEMS)]
        assert metrics["score"] == pytest.approx(table.item_score.mean())
        assert metrics["score_ci_low"] <= metrics["score"] <= metrics["score_ci_high"]
        assert dict(zip(ids, table.prediction)) == expected[tags["amuro.eval_dataset"]]
        assert all(len(h) == 64 for h in table.prompt_hash) and all(len(d) == SHOTS for d in table.demo_ids)
        if not generation:
            assert all(len(ll) == 2 and len(n) == 2 for ll, n in zip(table.option_loglik, table.option_loglik_norm))
        (scored,) = run.inputs.dataset_inputs  # lineage: the scored documents, read through the hub loader
        assert (scored.dataset.name, scored.dataset.source_type) == (tags["amuro.eval_dataset"], "hugging_face")
        assert {t.key: t.value for t in scored.tags}["mlflow.data.context"] == "eval"
        assert json.loads(scored.dataset.profile)["num_rows"] == ITEMS
        prompt = mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/prompt.txt")
        assert prompt.count("Q: " if generation else "Question: ") == SHOTS + 1


def invoke(*args):
    result = CliRunner().invoke(
        main, ["pretrain-eval", "--experiment", "lm", "--max-examples", "3", "--bootstrap", "50", *args]
    )
    assert result.exit_code != 0 and "Traceback" not in result.output, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.output
    return errors[0]


def test_unknown_task_and_unreadable_dataset_are_one_line_and_finished_cells_stay(tracking_uri, small_series, tmp_path):
    (tmp_path / "tasks").mkdir()
    folder = write_tasks(tmp_path / "tasks")
    args = ["--model", small_series, "--checkpoints", "1", "--lm-eval-include", str(folder)]
    assert "unknown lm-eval task 'colours_mq': did you mean colours_mc" in invoke(
        *args, "--lm-eval-tasks", "colours_mq"
    )
    ok = CliRunner().invoke(
        main,
        [
            "pretrain-eval",
            "--experiment",
            "lm",
            "--max-examples",
            "3",
            "--bootstrap",
            "50",
            *args,
            "--lm-eval-tasks",
            "colours_mc",
        ],
    )
    assert ok.exit_code == 0, ok.output
    (folder / "train.jsonl").unlink()
    line = invoke(*args, "--lm-eval-tasks", "colours_gen")
    assert line.startswith("Error: lm-eval task colours_gen: its dataset cannot be read")
    runs = MlflowClient().search_runs([tracking.connect("lm")], "tags.`amuro.kind` = 'eval'")
    assert [(r.data.tags["amuro.eval_dataset"], r.info.status) for r in runs] == [("lmeval:colours_mc", "FINISHED")]


def test_requests_of_several_tasks_at_once_score_as_each_task_alone(small_series):
    """lm-eval asks for every task's requests in one call: AmuroLM scores them task by task (each task's shared
    prefix encoded once), with the very answers each task gets alone."""
    from lm_eval.api.instance import Instance

    from amuro.scoring.lmeval_model import AmuroLM

    model, tokenizer = local_series(small_series).select("1")[0].load()
    lm = AmuroLM(model, tokenizer, batch_size=4)
    shots = {
        "colours": "".join(f"Question: What colour is the {t}?\nAnswer: {c}\n\n" for t, c in zip(THINGS, COLOURS)),
        "things": "".join(f"Q: Which thing is {c}?\nA: the {t}\n\n" for t, c in zip(THINGS, COLOURS)),
    }
    requests = [
        Instance("loglikelihood", {}, (shots[task] + f"Question: item {i}?\nAnswer:", f" {word}"), k, (task, i, 1))
        for i in range(5)
        for task in shots
        for k, word in enumerate(COLOURS[:3])
    ]
    together = lm.loglikelihood(requests)
    alone = {task: lm.loglikelihood([r for r in requests if r.task_name == task]) for task in shots}
    assert together == [alone[r.task_name].pop(0) for r in requests]
    assert all(isinstance(loglik, float) and loglik < 0 for loglik, _ in together)
