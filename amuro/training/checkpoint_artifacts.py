"""Trainer checkpoints kept as artifacts of the finetune run, so a retry on any machine resumes in that run.

Each checkpoint the Trainer saves is uploaded to one of two slots, ``checkpoints/a`` and ``checkpoints/b``,
the slot not holding the last complete one; ``checkpoints/latest.json`` (slot and step) is written only once
the upload has ended, so a process killed mid-upload leaves the previous checkpoint intact, and the store never
holds more than two checkpoints. The run's ``amuro.checkpoint_step`` tag says which step the store holds.

Uploads run on a background thread, off the training loop: each save is snapshotted by hard links (the
Trainer may rotate the folder away meanwhile) and queued; a save waits only while an earlier one is still
queued, and the end of training waits for the last upload, so none is lost. An upload's error is raised there.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import threading
from pathlib import Path

import mlflow
from mlflow.tracking import MlflowClient
from transformers import TrainerCallback

from amuro.core.uploads import largest_file, sized_timeout
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
    """After each Trainer save: queue the checkpoint for the free slot; the uploader thread uploads it, then points
    ``latest.json`` at it. ``flush()`` (also at the end of training) waits for every queued upload."""

    def __init__(self, run_id: str) -> None:
        pointer = _pointer(run_id)
        self.run_id = run_id
        self.slot = SLOTS[1] if pointer is None or pointer["slot"] == SLOTS[0] else SLOTS[0]
        self.pending: queue.Queue = queue.Queue(maxsize=1)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._upload_loop, name="checkpoint-uploads", daemon=True)
        self.thread.start()

    def on_save(self, args, state, control, **kwargs):
        folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if not folder.exists():
            return
        self._raise_error()
        snapshot = Path(args.output_dir) / f"upload-{state.global_step}"
        shutil.rmtree(snapshot, ignore_errors=True)
        shutil.copytree(folder, snapshot, copy_function=_link_or_copy)
        self.pending.put((snapshot, self.slot, state.global_step))
        self.slot = SLOTS[0] if self.slot == SLOTS[1] else SLOTS[1]

    def on_train_end(self, args, state, control, **kwargs):
        self.flush()

    def flush(self) -> None:
        """Wait until every queued checkpoint is uploaded; raise the error of one that failed."""
        self.pending.join()
        self._raise_error()

    def _raise_error(self) -> None:
        if self.error is not None:
            error, self.error = self.error, None
            raise error

    def _upload_loop(self) -> None:
        client = MlflowClient()
        while True:
            snapshot, slot, step = self.pending.get()
            try:
                if self.error is None:
                    with sized_timeout(largest_file(snapshot)):
                        client.log_artifacts(self.run_id, str(snapshot), f"checkpoints/{slot}")
                    client.log_dict(self.run_id, {"slot": slot, "step": step}, POINTER)
                    client.set_tag(self.run_id, STEP_TAG, str(step))
            except BaseException as exc:  # raised on the training thread, at the next save or the flush
                self.error = exc
            finally:
                shutil.rmtree(snapshot, ignore_errors=True)
                self.pending.task_done()


def _link_or_copy(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except OSError:  # a filesystem without hard links
        shutil.copy2(source, target)
