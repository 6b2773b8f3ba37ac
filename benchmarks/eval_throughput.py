"""Scoring throughput of this suite against lm-evaluation-harness 0.4.x, in one process.

Both score the same local checkpoint folder, the same items and the same few-shot prompts with
log-likelihood ranking of the label continuations (lm-evaluation-harness's ``acc``): the harness runs
``--model hf`` on a task YAML this script writes for the same data. Prints examples/s for both, their
ratio, and the share of identical predictions. Then the lm-eval-task path: the same task YAML run inside
lm-eval by its ``hf`` model and by amuro's model class (``AmuroLM``), examples/s of each, their ratio and
the share of identical predictions.

    python benchmarks/eval_throughput.py                       # the default 'tiny' series, last checkpoint
    python benchmarks/eval_throughput.py --model path/to/series --datasets synth-nli --shots 8

Needs ``pip install 'lm-eval>=0.4.3,<0.5'`` (the ``bench`` extra).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

import click

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


def write_task(folder: Path, name: str, rows: list[dict]) -> str:
    """A multiple-choice task over pre-rendered prompts: context = prompt, choices = label continuations."""
    data = folder / f"{name}.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    task = f"amuro_bench_{name.replace('-', '_')}"
    (folder / f"{task}.yaml").write_text(
        "\n".join(
            [
                f"task: {task}",
                "dataset_path: json",
                "dataset_kwargs:",
                "  data_files:",
                f"    test: {data}",
                "test_split: test",
                "output_type: multiple_choice",
                "doc_to_text: prompt",
                "doc_to_choice: choices",
                "doc_to_target: gold",
                'target_delimiter: ""',
                "num_fewshot: 0",
                "metric_list:",
                "  - metric: acc",
                "",
            ]
        )
    )
    return task


def harness_predictions(folder: Path, lm, tasks_by_name: dict[str, str], batch_size: int):
    """The predicted choice per item of an lm-evaluation-harness model on the task YAMLs, and the seconds its
    log-likelihood scoring took (and the whole evaluation)."""
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    spent = [0.0]
    original = lm.loglikelihood

    def timed(requests, **kwargs):
        started = time.perf_counter()
        try:
            return original(requests, **kwargs)
        finally:
            spent[0] += time.perf_counter() - started

    lm.loglikelihood = timed
    started = time.perf_counter()
    out = simple_evaluate(
        model=lm,
        tasks=list(tasks_by_name.values()),
        task_manager=TaskManager(include_path=str(folder), include_defaults=False),
        log_samples=True,
        batch_size=batch_size,
        num_fewshot=0,
        bootstrap_iters=0,
    )
    total = time.perf_counter() - started
    picks = {}
    for name, task in tasks_by_name.items():
        samples = sorted(out["samples"][task], key=lambda s: s["doc_id"])
        picks[name] = [max(range(len(s["resps"])), key=lambda k: (s["resps"][k][0][0], -k)) for s in samples]
    return picks, spent[0], total


def score_ours(model, tokenizer, cells, fmt, batch_size, limit=None):
    """This suite's predicted choice per item, and the seconds from prompts to scores."""
    from amuro.core.settings import EvalSettings
    from amuro.scoring.cell_scoring import score_cell

    picks, seconds = {}, 0.0
    for spec, demos, items, labels, _ in cells:
        started = time.perf_counter()
        results = score_cell(
            model, tokenizer, spec, fmt, demos, items[:limit], EvalSettings(method="loglik", batch_size=batch_size)
        )
        seconds += time.perf_counter() - started
        picks[spec.name] = [labels.index(r.prediction) for r in results]
    return picks, seconds


@click.command()
@click.option("--model", default="tiny", show_default=True, help="Series name, folder or runs:/ URI (local weights).")
@click.option("--checkpoint", default="main", show_default=True)
@click.option("--datasets", default="synth-nli,synth-paraphrase", show_default=True)
@click.option("--format", "fmt", default="default", show_default=True)
@click.option("--shots", default=4, show_default=True)
@click.option("--max-examples", default=300, show_default=True)
@click.option("--batch-size", default=16, show_default=True)
@click.option(
    "--experiment",
    default="amuro-bench",
    show_default=True,
    help="Experiment where the series is looked up (or built, for 'tiny').",
)
@click.option(
    "--threads",
    default=1,
    show_default=True,
    help="torch CPU threads for both (on a shared machine one thread per process times most steadily).",
)
def main(model, checkpoint, datasets, fmt, shots, max_examples, batch_size, experiment, threads):
    import torch

    torch.set_num_threads(threads)

    from amuro import data
    from amuro.commands.series_source import open_or_build_series
    from amuro.core import tracking
    from amuro.core.settings import EvalSettings
    from amuro.data import few_shot_prefix, render
    from amuro.data.formats import continuation
    from amuro.scoring.cell_scoring import label_words
    from amuro.scoring.cells import demos_and_items

    ckpt = open_or_build_series(model, tracking.connect(experiment)).get(checkpoint)
    if ckpt.hub_revision:
        raise click.UsageError("the benchmark needs a local checkpoint folder (lm-evaluation-harness loads it by path)")
    model_, tokenizer = ckpt.load()
    cells = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for spec in data.resolve(datasets):
            demos, items = demos_and_items(spec, EvalSettings(shots=shots, max_examples=max_examples))
            labels = label_words(spec, items)
            prefix = few_shot_prefix(spec, demos, fmt)
            rows = []
            for ex in items:
                prompt = prefix + render(spec, ex, fmt)
                rows.append(
                    {
                        "prompt": prompt,
                        "choices": [continuation(prompt, w) for w in labels],
                        "gold": labels.index(ex.target),
                    }
                )
            cells.append((spec, demos, items, labels, write_task(folder, spec.name, rows)))
        # Ours is timed before and after the harness, so load drifting on a shared machine hits both alike.
        score_ours(model_, tokenizer, cells[:1], fmt, batch_size, limit=4)  # warm-up
        ours, before = score_ours(model_, tokenizer, cells, fmt, batch_size)
        print(
            f"checkpoint {ckpt.revision} of {ckpt.series} ({sum(p.numel() for p in model_.parameters()):,} "
            f"parameters), {shots}-shot, format {fmt}, batch size {batch_size}, {torch.get_num_threads()} threads"
        )
        from lm_eval.models.huggingface import HFLM

        from amuro.scoring.lmeval_model import AmuroLM

        task_names = {spec.name: task for spec, *_, task in cells}
        hf = HFLM(pretrained=ckpt.location, batch_size=batch_size, device="cpu", dtype="float32")
        harness, harness_scoring, harness_total = harness_predictions(folder, hf, task_names, batch_size)
        inside, inside_scoring, inside_total = harness_predictions(
            folder, AmuroLM(model_, tokenizer, batch_size=batch_size), task_names, batch_size
        )
    again, after = score_ours(model_, tokenizer, cells, fmt, batch_size)
    assert again == ours, "scores changed between two identical runs"
    ours_seconds = (before + after) / 2

    n = sum(len(items) for _, _, items, _, _ in cells)
    same = sum(a == b for name in ours for a, b in zip(ours[name], harness[name]))
    ours_rate, harness_rate = n / ours_seconds, n / harness_scoring
    print(f"items: {n} ({', '.join(f'{s.name} {len(i)}' for s, _, i, _, _ in cells)})")
    print(f"amuro:            {ours_rate:8.1f} examples/s  ({ours_seconds:.1f} s, prompts to scores)")
    print(
        f"lm-eval (hf):     {harness_rate:8.1f} examples/s  ({harness_scoring:.1f} s in loglikelihood; "
        f"{n / harness_total:.1f} examples/s end to end, {harness_total:.1f} s)"
    )
    print(f"speed-up:         {ours_rate / harness_rate:8.2f}x  (end to end: {ours_rate * harness_total / n:.2f}x)")
    print(f"identical predictions: {same}/{n} = {100 * same / n:.2f}%")
    same_inside = sum(a == b for name in inside for a, b in zip(inside[name], harness[name]))
    inside_rate = n / inside_scoring
    print("the same task YAML inside lm-eval, its 'hf' model against amuro's model class (AmuroLM):")
    print(
        f"  lm-eval + AmuroLM: {inside_rate:8.1f} examples/s  ({inside_scoring:.1f} s in loglikelihood; "
        f"{n / inside_total:.1f} examples/s end to end)"
    )
    print(f"  lm-eval + hf:      {harness_rate:8.1f} examples/s")
    print(
        f"  speed-up:          {inside_rate / harness_rate:8.2f}x  (end to end: {harness_total / inside_total:.2f}x)"
        "  target >= 5x"
    )
    print(f"  identical predictions: {same_inside}/{n} = {100 * same_inside / n:.2f}%  target >= 99.5%")


if __name__ == "__main__":
    main()
