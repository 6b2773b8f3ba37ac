"""Per-item prediction tables of eval runs (``predictions.json``), fetched on demand and cached."""

from __future__ import annotations

import json
import os
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd

from analysis.store import resolve_tracking_uri

PREDICTIONS_ARTIFACT = "predictions.json"


def default_cache_dir() -> Path:
    """``$AMURO_HOME/predictions`` (default ``~/.cache/amuro/predictions``), beside the suite's other files."""
    if os.environ.get("AMURO_HOME"):
        return Path(os.environ["AMURO_HOME"]) / "predictions"
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "amuro" / "predictions"


class PredictionTables:
    """Per-item prediction tables of eval runs, fetched on first use and cached.

    Finished runs do not change, so a table is kept in memory and on disk under
    ``cache_dir/<run_id>/predictions.json`` and never fetched twice.
    """

    def __init__(self, tracking_uri: str | None = None, cache_dir: str | Path | None = None):
        self.tracking_uri = resolve_tracking_uri(tracking_uri)
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
        self._tables: dict[str, pd.DataFrame | None] = {}
        self._lock = threading.Lock()

    def get(self, run_id: str) -> pd.DataFrame | None:
        """The run's table (columns item_id, item_score, ...) or None when it has none."""
        with self._lock:
            if run_id in self._tables:
                return self._tables[run_id]
        table = self._read(run_id)
        with self._lock:
            self._tables[run_id] = table
        return table

    def prefetch(self, run_ids, workers: int = 8) -> None:
        """Fetch many tables concurrently (downloads are I/O bound)."""
        todo = [run_id for run_id in dict.fromkeys(run_ids) if run_id not in self._tables]
        if len(todo) > 1:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                list(pool.map(self.get, todo))
        elif todo:
            self.get(todo[0])

    def _read(self, run_id: str) -> pd.DataFrame | None:
        cached = self.cache_dir / run_id / PREDICTIONS_ARTIFACT
        if not cached.exists() and not self._download(run_id, cached):
            return None
        try:
            content = json.loads(cached.read_text())
            table = pd.DataFrame(content["data"], columns=content["columns"])
        except (ValueError, KeyError, TypeError):
            return None
        if not {"item_id", "item_score"} <= set(table.columns):
            return None
        return table

    def _download(self, run_id: str, destination: Path) -> bool:
        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException

        destination.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=destination.parent) as scratch:
            try:
                local = MlflowClient(self.tracking_uri).download_artifacts(
                    run_id, PREDICTIONS_ARTIFACT, scratch
                )
            except (MlflowException, OSError):
                return False
            # Atomic, so a concurrent reader never sees half a file.
            os.replace(local, destination)
        return True
