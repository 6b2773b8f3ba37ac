"""Fine-tuning throughput: this suite's Trainer setup against a naive one, on the same model, data and steps.

The suite pads each batch to its longest example and groups examples of similar length; the naive setup pads
every example to ``max_length`` and samples at random. Both count non-padding tokens per second. The share of
the machine's fp32 matmul rate is 6 x parameters x tokens/s / (measured matmul FLOP/s).

    python benchmarks/finetune_throughput.py [--model tiny] [--dataset synth-nli] [--steps 40]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import torch  # noqa: E402
from transformers import Trainer, TrainingArguments, set_seed  # noqa: E402

from amuro import data  # noqa: E402
from amuro.commands.series_source import open_or_build_series  # noqa: E402
from amuro.core import tracking  # noqa: E402
from amuro.core.settings import FinetuneSettings  # noqa: E402
from amuro.training.features import padding_collator, training_features  # noqa: E402
from amuro.training.trainer import training_arguments  # noqa: E402


def matmul_flops(size: int = 1024, seconds: float = 3.0) -> float:
    """Sustained fp32 matmul FLOP/s of this machine (same thread count as training)."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    for _ in range(3):
        a @ b
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        a @ b
        count += 1
    return 2 * size**3 * count / (time.perf_counter() - started)


def measure(ckpt, features, args: TrainingArguments, collator) -> float:
    """Non-padding tokens per second over ``args.max_steps`` optimizer steps."""
    set_seed(0)
    model, tokenizer = ckpt.load()
    trainer = Trainer(
        model=model, args=args, train_dataset=features, data_collator=collator, processing_class=tokenizer
    )
    result = trainer.train()
    return trainer.state.num_input_tokens_seen / result.metrics["train_runtime"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny", help="series name, folder or hub repo")
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--dataset", default="synth-nli")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--experiment", default=None)
    options = parser.parse_args()

    cfg = FinetuneSettings(model=options.model, dataset=options.dataset, evaluate=False)
    series = open_or_build_series(cfg.model, tracking.connect(options.experiment))
    ckpt = series.get(options.checkpoint) if options.checkpoint else series.last
    tokenizer = ckpt.load()[1]
    spec = data.get(cfg.dataset)
    train = cfg.train
    per_step = train.batch_size * train.grad_accum * (train.train_shots + 1)  # a packed sequence holds train_shots + 1
    examples = data.load_examples(spec, "train")[: options.steps * per_step]
    features = training_features(
        spec, examples, tokenizer, train.max_length, train_shots=train.train_shots, seed=train.seed
    )
    params = sum(p.numel() for p in ckpt.load()[0].parameters())
    workdir = Path(tempfile.mkdtemp(prefix="ft-bench-"))
    try:
        suite_args = training_arguments(train, workdir / "suite", train.lr, 1, options.steps, save=False)
        suite_args.max_steps = options.steps
        suite_args.disable_tqdm = True
        naive_args = TrainingArguments(
            output_dir=str(workdir / "naive"),
            max_steps=options.steps,
            per_device_train_batch_size=train.batch_size,
            gradient_accumulation_steps=train.grad_accum,
            learning_rate=train.lr,
            lr_scheduler_type="linear",
            warmup_steps=0.03,
            weight_decay=0.0,
            save_strategy="no",
            report_to="none",
            disable_tqdm=True,
            include_num_input_tokens_seen="non_padding",
            use_cpu=not torch.cuda.is_available(),
            remove_unused_columns=False,
        )
        suite = measure(ckpt, features, suite_args, padding_collator(tokenizer))
        naive = measure(ckpt, features, naive_args, padding_collator(tokenizer, pad_to=train.max_length))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    flops = matmul_flops()
    lengths = [len(f["input_ids"]) for f in features]
    print(
        f"model {ckpt.label} ({params / 1e6:.2f}M parameters), {spec.name}: {len(features)} examples, "
        f"mean length {sum(lengths) / len(lengths):.0f} tokens, max_length {train.max_length}, batch "
        f"{train.batch_size}x{train.grad_accum}, {train.train_shots} packed shots, {options.steps} steps, "
        f"{torch.get_num_threads()} threads"
    )
    print(f"suite (dynamic padding + length grouping): {suite:,.0f} non-padding tokens/s")
    print(f"naive (pad to max_length, random order):   {naive:,.0f} non-padding tokens/s")
    print(f"speed-up: {suite / naive:.1f}x")
    print(
        f"fp32 matmul rate: {flops / 1e9:.1f} GFLOP/s; share used: suite {6 * params * suite / flops:.1%}, "
        f"naive {6 * params * naive / flops:.1%}"
    )


if __name__ == "__main__":
    main()
