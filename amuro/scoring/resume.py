"""What a running eval cell has scored so far, kept on its run so a killed cell resumes where it stopped.

The scorer reports each finished batch; the raw answers (log-likelihoods, next-token scores, generated
text) are kept by key (an item id, or a hash of an lm-eval request) and written to the RUNNING run as the
artifact ``resume/scored.json`` after the first batch and then at most every 30 s. A cell run again in the
same run loads them and computes only the keys still missing, so every item is scored once and the result
is the uninterrupted one.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence

from mlflow.tracking import MlflowClient

from amuro.core.ownership import check_owner

ARTIFACT_DIR = "resume"
ARTIFACT = f"{ARTIFACT_DIR}/scored.json"
SAVE_EVERY = 30.0


def request_key(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, default=str).encode("utf-8")).hexdigest()


class ScoredSoFar:
    """Raw answers by key, saved to ``run_id`` (after the first batch, then at most every ``every`` seconds)."""

    def __init__(self, run_id: str, *, resumed: bool = False, every: float = SAVE_EVERY) -> None:
        self.run_id, self.every, self.resumed = run_id, every, resumed
        self.values: dict[str, object] = _load(run_id) if resumed else {}
        self.loaded = len(self.values)
        self.scored = 0
        self._saved_at: float | None = None
        self._unsaved = False

    def __contains__(self, key: str) -> bool:
        return key in self.values

    def record(self, keys: Sequence[str], values: Sequence[object]) -> None:
        self.values.update(zip(keys, values))
        self.scored += len(keys)
        self._unsaved = True
        now = time.monotonic()
        if self._saved_at is None or now - self._saved_at >= self.every:
            self.save()
            self._saved_at = now

    def save(self) -> None:
        if self._unsaved:
            check_owner(self.run_id)
            MlflowClient().log_dict(self.run_id, {"values": self.values}, ARTIFACT)
            self._unsaved = False


def _load(run_id: str) -> dict[str, object]:
    client = MlflowClient()
    if not any(f.path == ARTIFACT for f in client.list_artifacts(run_id, ARTIFACT_DIR)):
        return {}
    import mlflow

    try:
        return dict(mlflow.artifacts.load_dict(f"runs:/{run_id}/{ARTIFACT}").get("values", {}))
    except (ValueError, json.JSONDecodeError):  # cut off by the kill while it was written: start over
        return {}


def remembered(
    scorer, known: ScoredSoFar | None, keys: Sequence[str], compute: Callable[..., list], *columns: Sequence
) -> list:
    """``compute(*columns)`` for the rows whose key ``known`` lacks, recording each batch the scorer reports;
    the answers of every row, in order, as ``known`` keeps them (JSON values: lists, not tuples)."""
    if known is None:
        return compute(*columns)
    missing = [at for at, key in enumerate(keys) if key not in known]
    if missing:
        scorer.on_batch = lambda rows, values: known.record([keys[missing[r]] for r in rows], values)
        try:
            compute(*[[column[at] for at in missing] for column in columns])
        finally:
            scorer.on_batch = None
    return [_plain(known.values[key]) for key in keys]


def _plain(value):
    """Values as they read back from JSON, so a fresh answer and a loaded one are alike."""
    return json.loads(json.dumps(value))
