"""What one GPU gives amuro, in one table, in under 8 minutes.

- scoring items/s on the GPU (the default dtype) against the CPU, on the same cells of a small series built here,
  with the share of identical predictions;
- fine-tuning tokens/s of that series on the GPU;
- a 1B-parameter model at OLMo-1B's shape (random weights: nothing is downloaded) scored in fp32, TF32 and bf16,
  and fine-tuned a few steps at the study's micro-batch of 8 x 2048 tokens with and without gradient
  checkpointing, with peak memory against amuro's estimate;
- two scoring cells sharing the GPU at once, against one alone.

    python benchmarks/gpu_check.py                  # everything
    python benchmarks/gpu_check.py --skip-1b        # the small series only

Without a CUDA GPU it says so in one line and exits with status 2.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

for _name, _value in {
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "TOKENIZERS_PARALLELISM": "false",
    "TQDM_DISABLE": "1",
    "MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING": "false",
}.items():
    os.environ.setdefault(_name, _value)

import torch  # noqa: E402

DATASETS = ("synth-nli", "synth-summary")
ITEMS = 200
ROWS: list[tuple[str, str, str]] = []


def row(what: str, value: str, note: str = "") -> None:
    ROWS.append((what, value, note))
    print(f"  {what}: {value} {note}".rstrip(), flush=True)


def gib(count: float) -> str:
    return f"{count / 2**30:.1f} GiB"


# --- the small series ------------------------------------------------------------------------------------


def small_series(workdir: Path) -> str:
    """A small trained series (the default shape, fewer steps), its folder."""
    import mlflow

    from amuro.commands.pretrain import pretrain
    from amuro.core.settings import PretrainSettings
    from amuro.models.series import find_pretrain_run

    mlflow.set_tracking_uri(f"sqlite:///{workdir}/mlflow.db")
    os.environ["AMURO_HOME"] = str(workdir / "home")
    pretrain(PretrainSettings(series="gpu-check", experiment="gpu-check", steps=200, num_checkpoints=1))
    run = find_pretrain_run(mlflow.get_experiment_by_name("gpu-check").experiment_id, "gpu-check")
    return run.data.tags["amuro.series_dir"]


def score_cells(folder: str, device: str) -> tuple[float, list[str]]:
    """Items/s over the check's cells on ``device`` (the default dtype there), and the predictions."""
    from amuro import data
    from amuro.core.settings import EvalSettings
    from amuro.models.precision import on_device, torch_dtype
    from amuro.models.series import local_series
    from amuro.scoring.cell_scoring import score_cell
    from amuro.scoring.cells import demos_and_items

    settings = EvalSettings(max_examples=ITEMS, shots=4, max_new_tokens=30)
    dtype = "float32" if device == "cpu" else settings.effective_values()["dtype"]
    model, tokenizer = local_series(folder).last.load(dtype=torch_dtype(dtype))
    model = on_device(model, dtype) if device == "cuda" else model
    predictions, items, seconds = [], 0, 0.0
    for name in DATASETS:
        spec = data.get(name)
        demos, chosen = demos_and_items(spec, settings)
        started = time.perf_counter()
        results = score_cell(model, tokenizer, spec, "default", demos, chosen, settings)
        if device == "cuda":
            torch.cuda.synchronize()
        seconds += time.perf_counter() - started
        items += len(results)
        predictions += [str(r.prediction) for r in results]
    return items / seconds, predictions


def check_scoring(folder: str) -> None:
    gpu, gpu_predictions = score_cells(folder, "cuda")
    cpu, cpu_predictions = score_cells(folder, "cpu")
    same = sum(a == b for a, b in zip(gpu_predictions, cpu_predictions)) / len(cpu_predictions)
    row("scoring, small series, GPU (bf16)", f"{gpu:,.0f} items/s", f"{', '.join(DATASETS)}, {ITEMS} items each")
    row("scoring, same cells, CPU (fp32)", f"{cpu:,.0f} items/s", f"{torch.get_num_threads()} threads")
    row("GPU / CPU", f"{gpu / cpu:.1f}x", f"{same:.0%} identical predictions")


def check_two_cells(folder: str) -> None:
    """Two scoring processes on the one GPU at once, against one alone."""
    command = [sys.executable, __file__, "--score-cell", folder]
    alone = json.loads(subprocess.run(command, capture_output=True, text=True, check=True).stdout.splitlines()[-1])
    started = time.perf_counter()
    pair = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [json.loads(p.communicate()[0].splitlines()[-1]) for p in pair]
    wall = time.perf_counter() - started
    together = sum(o["items"] for o in outputs) / wall
    row("two cells sharing the GPU", f"{together:,.0f} items/s together", f"one alone {alone['rate']:,.0f} items/s")


def check_small_finetune(folder: str) -> None:
    from transformers import Trainer

    from amuro import data
    from amuro.core.train_settings import TrainSettings, resolve_training
    from amuro.models.series import local_series
    from amuro.training.features import padding_collator, training_features
    from amuro.training.trainer import training_arguments

    train = resolve_training(TrainSettings(), "amuro", "synth-nli")
    ckpt = local_series(folder).last
    model, tokenizer = ckpt.load(dtype=torch.float32)
    spec = data.get("synth-nli")
    examples = data.load_examples(spec, "train")[:2000]
    features = training_features(spec, examples, tokenizer, train.max_length, train_shots=train.train_shots, seed=0)
    with tempfile.TemporaryDirectory() as out:
        args = training_arguments(train, Path(out), train.lr, 1, 100, save=False)
        args.max_steps, args.disable_tqdm = 100, True
        trainer = Trainer(model=model, args=args, train_dataset=features, data_collator=padding_collator(tokenizer))
        result = trainer.train()
    rate = trainer.state.num_input_tokens_seen / result.metrics["train_runtime"]
    row("fine-tune, small series", f"{rate:,.0f} tokens/s", f"bf16 autocast, batch {train.batch_size}, 100 steps")


# --- OLMo-1B's shape -------------------------------------------------------------------------------------


def olmo_1b():
    from transformers import OlmoConfig, OlmoForCausalLM

    from amuro.training.memory_plan import OLMO_1B

    torch.manual_seed(0)
    with torch.device("cuda"):
        return OlmoForCausalLM(OlmoConfig(**OLMO_1B))


def check_1b_scoring() -> None:
    """Forward passes of 16 x 1024 tokens: fp32, fp32 matmuls in TF32, bf16 weights."""
    from amuro.models.precision import tf32_available, use_tf32

    model = olmo_1b().eval()
    tokens = torch.randint(0, model.config.vocab_size, (16, 1024), device="cuda")
    for name in ("fp32", "tf32", "bf16"):
        if name == "tf32" and not tf32_available():
            row("1B scoring, tf32", "n/a", "this GPU has no TF32")
            continue
        use_tf32(name == "tf32")
        if name == "bf16":
            model = model.to(torch.bfloat16)
        torch.cuda.reset_peak_memory_stats()
        with torch.no_grad():
            model(tokens[:2])
            torch.cuda.synchronize()
            started, passes = time.perf_counter(), 0
            while time.perf_counter() - started < 10:
                model(tokens, logits_to_keep=1)
                passes += 1
            torch.cuda.synchronize()
        rate = passes * tokens.numel() / (time.perf_counter() - started)
        row(f"1B scoring, {name}", f"{rate:,.0f} tokens/s", f"peak {gib(torch.cuda.max_memory_allocated())}")
    use_tf32(True)
    del model
    torch.cuda.empty_cache()


def check_1b_finetune(checkpointing: bool, steps: int = 4) -> None:
    """A few optimizer steps at 8 x 2048 tokens as amuro trains (fp32 master, bf16 autocast, fused AdamW)."""
    from transformers import Trainer, default_data_collator

    from amuro.core.train_settings import TrainSettings
    from amuro.training.memory_plan import estimate
    from amuro.training.trainer import training_arguments

    train = TrainSettings(batch_size=8, grad_accum=1, max_length=2048, gradient_checkpointing=checkpointing, lr=2e-6)
    model = olmo_1b()
    model.config.use_cache = False
    count = sum(p.numel() for p in model.parameters())
    plan = estimate(
        model.config,
        parameters=count,
        trainable=count,
        micro_batch=8,
        length=2048,
        mixed=train.precision == "bfloat16",
        checkpointing=checkpointing,
    )
    generator = torch.Generator().manual_seed(0)
    rows = [torch.randint(0, model.config.vocab_size, (2048,), generator=generator) for _ in range(8 * (steps + 1))]
    features = [{"input_ids": r, "attention_mask": torch.ones_like(r), "labels": r} for r in rows]
    label = "with" if checkpointing else "without"
    torch.cuda.reset_peak_memory_stats()
    with tempfile.TemporaryDirectory() as out:
        args = training_arguments(train, Path(out), train.lr, 1, steps, save=False)
        args.max_steps, args.disable_tqdm, args.logging_steps = steps, True, steps
        trainer = Trainer(model=model, args=args, train_dataset=features, data_collator=default_data_collator)
        try:
            started = time.perf_counter()
            trainer.train()
            torch.cuda.synchronize()
            rate = steps * 8 * 2048 / (time.perf_counter() - started)
            note = f"peak {gib(torch.cuda.max_memory_allocated())}, estimate {gib(plan.total)}"
            row(f"1B fine-tune 8x2048, {label} checkpointing", f"{rate:,.0f} tokens/s", note)
        except torch.OutOfMemoryError:
            row(f"1B fine-tune 8x2048, {label} checkpointing", "out of memory", f"estimate {gib(plan.total)}")
    del trainer, model
    torch.cuda.empty_cache()


# --- the table -------------------------------------------------------------------------------------------


def table(card: str, seconds: float) -> str:
    width = max(len(what) for what, _, _ in ROWS)
    value_width = max(len(value) for _, value, _ in ROWS)
    lines = [f"gpu_check on {card} (torch {torch.__version__}), {seconds:.0f} s", ""]
    lines += [f"| {'measure'.ljust(width)} | {'value'.ljust(value_width)} | note |"]
    lines += [f"| {'-' * width} | {'-' * value_width} | --- |"]
    lines += [f"| {what.ljust(width)} | {value.ljust(value_width)} | {note} |" for what, value, note in ROWS]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-1b", action="store_true", help="only the small series' measures")
    parser.add_argument("--score-cell", help=argparse.SUPPRESS)  # one cell of the two-cell measure
    options = parser.parse_args()
    if not torch.cuda.is_available():
        print("gpu_check needs a CUDA GPU and none is visible here: run it on a machine with one", file=sys.stderr)
        raise SystemExit(2)
    if options.score_cell:
        rate, predictions = score_cells(options.score_cell, "cuda")
        print(json.dumps({"rate": rate, "items": len(predictions)}))
        return
    started = time.perf_counter()
    card = torch.cuda.get_device_name()
    print(f"gpu_check on {card}", flush=True)
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as workdir:
        folder = small_series(Path(workdir))
        check_scoring(folder)
        check_small_finetune(folder)
        check_two_cells(folder)
        if not options.skip_1b:
            check_1b_scoring()
            check_1b_finetune(checkpointing=False)
            check_1b_finetune(checkpointing=True)
    print()
    print(table(card, time.perf_counter() - started))


if __name__ == "__main__":
    main()
