"""Trainer checkpoints kept as artifacts of the finetune run, so a retry on any machine resumes in that run.

Each checkpoint the Trainer saves is uploaded to one of two slots, ``checkpoints/a`` and ``checkpoints/b``,
the slot not holding the last complete one; ``checkpoints/latest.json`` (slot and step) is written only once
the upload has ended, so a process killed mid-upload leaves the previous checkpoint intact. The run's
``amuro.checkpoint_step`` tag says which step the store holds.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import mlflow
from mlflow.tracking import MlflowClient
from transformers import TrainerCallback

from amuro_contract import Tag

POINTER = "checkpoints/latest.json"
SLOTS = ("a", "b")
STEP_TAG = Tag.CHECKPOINT_STEP


def _pointer(run_id: str) -> dict | None:
    try:
        path = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=POINTER)
    except Exception:  # no checkpoint uploaded yet (the artifact store answers "not found" in several ways)
        return None
    return json.loads(Path(path).read_text())


def restore_checkpoint(run_id: str, output_dir: Path) -> int | None:
    """Download the run's last uploaded checkpoint as ``output_dir/checkpoint-<step>``; its step, or None."""
    pointer = _pointer(run_id)
    if pointer is None:
        return None
    target = output_dir / f"checkpoint-{pointer['step']}"
    shutil.rmtree(target, ignore_errors=True)
    output_dir.mkdir(parents=True, exist_ok=True)
    downloaded = mlflow.artifacts.download_artifacts(
        run_id=run_id, artifact_path=f"checkpoints/{pointer['slot']}", dst_path=str(output_dir / "download")
    )
    Path(downloaded).rename(target)
    shutil.rmtree(output_dir / "download", ignore_errors=True)
    return int(pointer["step"])


class UploadCheckpoints(TrainerCallback):
    """After each Trainer save: upload the checkpoint to the free slot, then point ``latest.json`` at it."""

    def __init__(self, run_id: str) -> None:
        pointer = _pointer(run_id)
        self.run_id = run_id
        self.slot = SLOTS[1] if pointer is None or pointer["slot"] == SLOTS[0] else SLOTS[0]

    def on_save(self, args, state, control, **kwargs):
        folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if not folder.exists():
            return
        client = MlflowClient()
        client.log_artifacts(self.run_id, str(folder), f"checkpoints/{self.slot}")
        client.log_dict(self.run_id, {"slot": self.slot, "step": state.global_step}, POINTER)
        client.set_tag(self.run_id, STEP_TAG, str(state.global_step))
        self.slot = SLOTS[0] if self.slot == SLOTS[1] else SLOTS[1]
