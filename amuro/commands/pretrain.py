"""``pretrain``: train a small OLMo-architecture model from scratch and save a checkpoint series.

The series mimics the public ones: branch-named checkpoints (``step400-tokens819200``), dense early and
sparse late, each a ``save_pretrained`` model with its tokenizer, logged as artifacts of one pretrain run.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import replace
from pathlib import Path

import mlflow

from amuro.core import tracking
from amuro.core.errors import UserError
from amuro.core.paths import amuro_home
from amuro.core.settings import PretrainSettings
from amuro.core.size_settings import widths
from amuro.core.versions import version_tags
from amuro.data import synthetic
from amuro.models.series import (
    SERIES_ARTIFACT,
    write_manifest,
)
from amuro.training.trainer import QuietProgress

# Result version of pre-training (corpus, tokenizer, model, schedule): bump it when a change alters the series
# it trains; every series is then trained again.
RESULT_VERSION = 1
SPECIAL_TOKENS = ("<|endoftext|>", "<|padding|>")


def checkpoint_steps(steps: int, count: int) -> list[int]:
    """Halving back from the last step (dense early, sparse late); distinct, increasing, ending at ``steps``."""
    picks: list[int] = []
    for i in range(count):
        step = max(1, round(steps / 2 ** (count - 1 - i)))
        picks.append(max(step, picks[-1] + 1) if picks else step)
    shift = picks[-1] - steps
    return [max(1, p - shift) if shift > 0 else p for p in picks]


def read_corpus(source: str | None, seed: int) -> list[str]:
    """Passages of the synthetic world, or of a text file / folder of ``.txt`` files (blank-line separated)."""
    if not source:
        return synthetic.corpus(seed)
    path = Path(source).expanduser()
    files = sorted(path.rglob("*.txt")) if path.is_dir() else [path]
    if not path.exists() or not files:
        raise UserError(f"corpus {source} does not exist or holds no .txt files: give a text file or folder")
    passages = [p.strip() for f in files for p in f.read_text(errors="replace").split("\n\n") if p.strip()]
    if not passages:
        raise UserError(f"corpus {source} is empty: give a file with text")
    return passages


def train_tokenizer(passages: list[str], vocab_size: int):
    """A byte-level BPE tokenizer trained on the corpus, wrapped for transformers."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator(passages, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        eos_token=SPECIAL_TOKENS[0],
        bos_token=SPECIAL_TOKENS[0],
        unk_token=SPECIAL_TOKENS[0],
        pad_token=SPECIAL_TOKENS[1],
        model_max_length=2048,
    )


def _blocks(passages: list[str], tokenizer, seq_len: int):
    import torch

    ids: list[int] = []
    for encoded in tokenizer(passages, add_special_tokens=False)["input_ids"]:
        ids.extend(encoded)
        ids.append(tokenizer.eos_token_id)
    usable = (len(ids) // seq_len) * seq_len
    if usable == 0:
        raise UserError(f"corpus is shorter than one sequence of {seq_len} tokens: give more text")
    data = torch.tensor(ids[:usable]).view(-1, seq_len)
    return [{"input_ids": row, "labels": row} for row in data]


def _model(cfg: PretrainSettings, tokenizer):
    from transformers import AutoModelForCausalLM, OlmoConfig

    config = OlmoConfig(
        vocab_size=len(tokenizer),
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.hidden_size * 4,
        num_hidden_layers=cfg.layers,
        num_attention_heads=cfg.heads,
        num_key_value_heads=cfg.heads,
        max_position_embeddings=2048,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=True,
    )
    return AutoModelForCausalLM.from_config(config)


def _train(cfg: PretrainSettings, folder: Path) -> list[dict]:
    import torch
    from transformers import Trainer, TrainerCallback, TrainingArguments, set_seed
    from transformers.trainer_callback import ProgressCallback

    set_seed(cfg.seed)
    passages = read_corpus(cfg.corpus, cfg.seed)
    tokenizer = train_tokenizer(passages, cfg.vocab_size)
    blocks = _blocks(passages, tokenizer, cfg.seq_len)
    model = _model(cfg, tokenizer)
    schedule = checkpoint_steps(cfg.steps, cfg.num_checkpoints)
    tokens_per_step = cfg.batch_size * cfg.seq_len
    parameters = sum(p.numel() for p in model.parameters())
    mlflow.set_tag(tracking.Tag.MODEL_PARAMS, str(parameters))
    mlflow.log_params(
        {
            "parameters": parameters,
            "corpus_tokens": len(blocks) * cfg.seq_len,
            "tokens_per_step": tokens_per_step,
            "checkpoint_steps": ",".join(map(str, schedule)),
        }
    )
    saved: list[dict] = []

    class SeriesWriter(TrainerCallback):
        def __init__(self) -> None:
            self.started = time.perf_counter()

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                elapsed = time.perf_counter() - self.started
                mlflow.log_metrics(
                    {
                        "train_loss": logs["loss"],
                        "lr": logs.get("learning_rate", 0.0),
                        "tokens_per_second": state.global_step * tokens_per_step / elapsed,
                    },
                    step=state.global_step,
                )

        def on_step_end(self, args, state, control, model=None, **kwargs):
            if state.global_step in schedule:
                tokens = state.global_step * tokens_per_step
                revision = f"step{state.global_step}-tokens{tokens}"
                model.save_pretrained(folder / revision)
                tokenizer.save_pretrained(folder / revision)
                saved.append({"revision": revision, "step": state.global_step, "tokens": tokens})
                mlflow.log_metric("checkpoint_tokens", tokens, step=state.global_step)

    args = TrainingArguments(
        output_dir=str(folder / ".trainer"),
        max_steps=cfg.steps,
        per_device_train_batch_size=cfg.batch_size,
        learning_rate=cfg.lr,
        lr_scheduler_type="cosine",
        warmup_steps=max(1, cfg.steps // 20),
        weight_decay=0.01,
        logging_steps=max(1, min(10, cfg.steps // 20)),
        save_strategy="no",
        report_to="none",
        seed=cfg.seed,
        dataloader_num_workers=0,
        disable_tqdm=False,
        use_cpu=not torch.cuda.is_available(),
    )
    trainer = Trainer(model=model, args=args, train_dataset=blocks, callbacks=[SeriesWriter()])
    trainer.remove_callback(ProgressCallback)
    trainer.add_callback(QuietProgress)
    trainer.train()
    shutil.rmtree(folder / ".trainer", ignore_errors=True)
    return saved


def pretrain(cfg: PretrainSettings) -> str:
    """Train the series (or reuse a finished run with the same settings); returns the pretrain run id. With
    ``sizes``, one series per width under one group run, whose id is returned."""
    with tracking.entry_point("pretrain", cfg.experiment) as invocation:
        if not cfg.sizes:
            run_id = _pretrain_series(cfg, invocation.experiment_id)
            invocation.result_run_id = run_id
            return run_id
        members = family(cfg)
        key = cfg.run_key("pretrain-family", sizes=list(members))
        name = f"pretrain {cfg.series} {','.join(members)}"
        with invocation.group(key, name, tags=tracking.contract_tags(model=cfg.series)) as parent:
            for member in members.values():
                _pretrain_series(member, invocation.experiment_id, parent)
    print(f"family {cfg.series}: series {', '.join(m.series for m in members.values())} under run {parent}")
    return parent


def family(cfg: PretrainSettings) -> dict[str, PretrainSettings]:
    """Each size of ``cfg.sizes`` as the settings of its own series: ``tiny-2x`` is ``tiny`` twice as wide. Its
    run is the one ``pretrain --series tiny-2x --hidden-size <width>`` makes, so either reuses the other."""
    return {
        size: replace(cfg, series=f"{cfg.series}-{size}", hidden_size=width, sizes=None)
        for size, width in widths(cfg.sizes, cfg.hidden_size, cfg.heads).items()
    }


def _pretrain_series(cfg: PretrainSettings, experiment_id: str, parent_run_id: str | None = None) -> str:
    versions = {"pretrain": RESULT_VERSION}
    key = cfg.run_key("pretrain", versions)
    name = f"pretrain {cfg.series}"

    def train(run: tracking.TrackedRun) -> None:
        folder = amuro_home() / "series" / f"{cfg.series}-{key[:10]}"
        _fresh_folder(folder)
        mlflow.set_tag(tracking.Tag.SERIES_DIR, str(folder))
        mlflow.log_params(cfg.params())
        saved = _train(cfg, folder)
        write_manifest(folder, cfg.series, saved, run.run_id)
        mlflow.log_artifacts(str(folder), SERIES_ARTIFACT)
        print(
            f"series {cfg.series}: {len(saved)} checkpoints at steps "
            f"{', '.join(str(s['step']) for s in saved)} in run {run.run_id}"
        )

    tags = tracking.contract_tags(kind="pretrain", model=cfg.series, seed=cfg.seed)
    tags.update(version_tags("pretrain", versions))
    return tracking.run_once(experiment_id, key, tags, name, train, parent_run_id=parent_run_id).run_id


def _fresh_folder(folder: Path) -> None:
    try:
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
    except OSError as exc:
        raise UserError(
            f"cannot write the series folder {folder} ({exc.strerror}): set AMURO_HOME to a writable folder"
        ) from None
