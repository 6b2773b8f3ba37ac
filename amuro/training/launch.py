"""Fine-tuning in several data-parallel processes, launched with ``accelerate launch``.

A fine-tune given N GPUs (``--gpus N``, or a sweep's ``--gpus-per-cell finetune=N``), or one sharded with
``--fsdp`` or ``--deepspeed``, trains in N processes that ``accelerate launch`` starts (torchrun underneath), one
GPU each, never ``nn.DataParallel`` in one process. The finetune process keeps the MLflow run: it writes the job
(settings, features, run id) to a file, launches ``python -m amuro.training.launch JOB`` and waits. The main
training process logs the curve to that run and the others log nothing; all of them take part in saving the final
model (FSDP and ZeRO-3 gather its shards), which the finetune process loads and logs as the run's one model.

The global batch is the settings' micro-batch x accumulation: each of N processes accumulates grad_accum / N
micro-batches (or, where N does not divide the accumulation, takes smaller micro-batches), so the run key, which
holds the global batch and not the GPU count, means the same training on any number of GPUs. Without GPUs the
processes train on CPU and talk over gloo.
"""

from __future__ import annotations

import importlib.util
import json
import os
import pickle
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from amuro.core.errors import UserError
from amuro.core.local_server import free_port
from amuro.core.settings import FinetuneSettings
from amuro.models.series import Checkpoint
from amuro.training.trainer import train_model

DS_CONFIGS = Path(__file__).with_name("ds_configs")
SHIPPED_DS_CONFIGS = {"zero3": DS_CONFIGS / "zero3.json"}  # the study's stage3_no_offloading_accelerate.conf
# FSDP2, full_shard: weights gathered per decoder layer (the model's own unit) and freed after its forward.
FSDP_ARGUMENTS = {"fsdp": True, "fsdp_config": {"version": 2, "reshard_after_forward": True}}


@dataclass
class TrainingJob:
    """What one launched fine-tune trains: ``train_model``'s arguments."""

    ckpt: Checkpoint
    cfg: FinetuneSettings
    features: list[dict]
    options: dict  # train_model's keyword arguments

    @property
    def save_to(self) -> Path | None:
        return self.options["save_to"]


def visible_gpus() -> list[str]:
    import torch

    count = torch.cuda.device_count()
    named = [g for g in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if g.strip()]
    return named[:count] if named else [str(i) for i in range(count)]


def is_launched(cfg: FinetuneSettings) -> bool:
    """Whether training leaves this process: several processes, sharding, or more GPUs in view than asked for
    (which the Trainer would otherwise wrap in ``nn.DataParallel``)."""
    return cfg.gpus > 1 or cfg.train.fsdp or bool(cfg.train.deepspeed) or len(visible_gpus()) > cfg.gpus


def deepspeed_config(name: str) -> Path:
    """The DeepSpeed config ``name`` names (a shipped one, or a JSON file), checked to be a JSON object."""
    if importlib.util.find_spec("deepspeed") is None:
        raise UserError("--deepspeed needs DeepSpeed: pip install 'amuro[deepspeed]', or use --fsdp")
    path = SHIPPED_DS_CONFIGS.get(name, Path(name).expanduser())
    if not path.is_file():
        raise UserError(
            f"--deepspeed {name}: no such file: give a DeepSpeed JSON config, or one of {', '.join(SHIPPED_DS_CONFIGS)}"
        )
    try:
        config = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"--deepspeed {name}: {path} is not a JSON config ({exc}): fix or replace it") from None
    if not isinstance(config, dict):
        raise UserError(f"--deepspeed {name}: {path} holds no JSON object: write the config as {{...}}")
    return path.resolve()


def check_launch(cfg: FinetuneSettings) -> None:
    """Refuse, before any run starts, a launch that cannot start: a bad DeepSpeed config, too few GPUs, or
    sharding without GPUs (accelerate runs FSDP and DeepSpeed on accelerators only: on CPU the processes would
    quietly train unsharded)."""
    if cfg.train.deepspeed:
        deepspeed_config(cfg.train.deepspeed)
    gpus = visible_gpus()
    if not gpus and (cfg.train.fsdp or cfg.train.deepspeed):
        option = "--fsdp" if cfg.train.fsdp else "--deepspeed"
        raise UserError(
            f"{option} needs GPUs (accelerate shards a model only on GPUs) and this machine shows none: "
            f"drop {option}; --gpus N alone trains in N data-parallel CPU processes"
        )
    if gpus and len(gpus) < cfg.gpus:
        raise UserError(f"--gpus {cfg.gpus} asks for {cfg.gpus} GPUs and this machine shows {len(gpus)}: lower --gpus")


def parallel_arguments(cfg: FinetuneSettings) -> dict:
    """The Trainer arguments of one of ``cfg.gpus`` processes: its share of the global batch, and sharding."""
    micro_batch, accumulation = cfg.train.per_process(cfg.gpus)
    arguments: dict = {"per_device_train_batch_size": micro_batch, "gradient_accumulation_steps": accumulation}
    if cfg.train.fsdp:
        arguments.update(FSDP_ARGUMENTS)
    if cfg.train.deepspeed:
        arguments["deepspeed"] = str(deepspeed_config(cfg.train.deepspeed))
    return arguments


def launch_command(processes: int, job_file: Path, port: int) -> list[str]:
    """``accelerate launch`` of the training job in ``processes`` processes (torchrun underneath)."""
    return [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        *(["--multi_gpu"] if processes > 1 else []),
        "--num_processes",
        str(processes),
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",  # the Trainer's own arguments choose the precision
        "--dynamo_backend",
        "no",
        "--main_process_port",
        str(port),
        "--module",
        "amuro.training.launch",
        str(job_file),
    ]


def launch_environment(processes: int, gpus: list[str], port: int, *, sharded: bool = False) -> dict[str, str]:
    env = dict(os.environ)
    if gpus:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(gpus[:processes])
    else:
        env["ACCELERATE_USE_CPU"] = "true"  # CPU processes over gloo
    if processes == 1 and sharded:  # FSDP and DeepSpeed need a process group, even of one process
        env.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK="0", LOCAL_RANK="0", WORLD_SIZE="1")
    threads = int(env.get("OMP_NUM_THREADS") or os.cpu_count() or 1)
    env["OMP_NUM_THREADS"] = str(max(1, threads // processes))
    return env


def train(ckpt: Checkpoint, cfg: FinetuneSettings, features: list[dict], **options):
    """``train_model(ckpt, cfg, features, **options)`` here, or launched in ``cfg.gpus`` data-parallel processes;
    returns (model, tokenizer, validation loss or None), the model None when only the validation loss was asked
    for."""
    if not is_launched(cfg):
        return train_model(ckpt, cfg, features, **options)
    import mlflow

    output_dir = options["output_dir"]
    output_dir.mkdir(parents=True, exist_ok=True)
    launch_dir = output_dir.parent / f"{output_dir.name}-launch"
    launch_dir.mkdir(exist_ok=True)
    saved = None if options.get("eval_features") is not None else launch_dir / "model"
    job = TrainingJob(
        ckpt,
        cfg,
        features,
        {
            **options,
            "callbacks": list(options.get("callbacks", ())),
            "run_id": mlflow.active_run().info.run_id,
            "parallel": parallel_arguments(cfg),
            "save_to": saved,
        },
    )
    job_file = launch_dir / "job.pkl"
    job_file.write_bytes(pickle.dumps(job))
    port = free_port()
    env = launch_environment(cfg.gpus, visible_gpus(), port, sharded=cfg.train.fsdp or bool(cfg.train.deepspeed))
    env["MLFLOW_TRACKING_URI"] = mlflow.get_tracking_uri()
    print(f"training in {cfg.gpus} data-parallel process{'es' if cfg.gpus > 1 else ''} (accelerate launch)")
    _run(launch_command(cfg.gpus, job_file, port), env, cfg.gpus)
    val_loss = json.loads((launch_dir / "result.json").read_text())["val_loss"]
    model, tokenizer = (None, None) if job.save_to is None else _load(job.save_to)
    return model, tokenizer, val_loss


def _run(command: list[str], env: dict[str, str], processes: int) -> None:
    """Run the launcher to its end; interrupted, it and its training processes end with it."""
    process = subprocess.Popen(command, env=env, start_new_session=True)
    try:
        code = process.wait()
    except BaseException:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait()
        raise
    if code != 0:
        raise UserError(
            f"the {processes} training process{'es' if processes > 1 else ''} failed (exit code {code}): "
            "their error is printed above"
        )


def _load(folder: Path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(folder)
    model.eval()
    return model, tokenizer


def run_job(job_file: Path) -> None:
    """One launched training process: train its share; the main process also writes what the launcher reads."""
    job: TrainingJob = pickle.loads(job_file.read_bytes())
    main = int(os.environ.get("RANK", "0")) == 0
    callbacks = job.options["callbacks"] if main else ()
    _, tokenizer, val_loss = train_model(job.ckpt, job.cfg, job.features, **{**job.options, "callbacks": callbacks})
    if main:
        if job.save_to is not None:
            tokenizer.save_pretrained(job.save_to)
        (job_file.parent / "result.json").write_text(json.dumps({"val_loss": val_loss}))
    _leave_process_group()


def _leave_process_group() -> None:
    """End the process group before the interpreter does: gloo's threads still holding work at interpreter exit
    abort the process (``terminate called without an active exception``)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


if __name__ == "__main__":
    run_job(Path(sys.argv[1]))
