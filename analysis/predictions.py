"""Per-item prediction tables of eval runs (``predictions.json``), fetched on demand and cached."""

from __future__ import annotations

import json
import os
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd

from amuro_contract import Artifact
from analysis.store import client, resolve_tracking_uri

PREDICTIONS_ARTIFACT = Artifact.PREDICTIONS
LOCATE_CHUNK = 100


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
        self._locations: dict[str, str] = {}  # run id -> its artifact URI
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
        self._locate([run_id for run_id in todo if not (self.cache_dir / run_id / PREDICTIONS_ARTIFACT).exists()])
        if len(todo) > 1:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                list(pool.map(self.get, todo))
        elif todo:
            self.get(todo[0])

    def _locate(self, run_ids: list[str]) -> None:
        """Find many runs' artifact URIs in a few searches: a download by run id alone asks the tracking
        server for the run (and for models logged by it) first, one round trip after another."""
        from mlflow.exceptions import MlflowException

        if len(run_ids) < 2:
            return
        store = client(self.tracking_uri)
        try:
            experiments = [e.experiment_id for e in store.search_experiments()]
            for start in range(0, len(run_ids), LOCATE_CHUNK):
                chunk = run_ids[start : start + LOCATE_CHUNK]
                wanted = ", ".join(f"'{run_id}'" for run_id in chunk)
                found = store.search_runs(experiments, f"attributes.run_id IN ({wanted})", max_results=len(chunk))
                self._locations.update((run.info.run_id, run.info.artifact_uri) for run in found)
        except MlflowException:
            return  # each table is then downloaded by its run id

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
        from mlflow.artifacts import download_artifacts
        from mlflow.exceptions import MlflowException

        destination.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=destination.parent) as scratch:
            try:
                if run_id in self._locations:
                    local = download_artifacts(
                        artifact_uri=f"{self._locations[run_id]}/{PREDICTIONS_ARTIFACT}",
                        dst_path=scratch,
                        tracking_uri=self.tracking_uri,
                    )
                else:
                    local = MlflowClient(self.tracking_uri).download_artifacts(run_id, PREDICTIONS_ARTIFACT, scratch)
            except (MlflowException, OSError):
                return False
            # Atomic, so a concurrent reader never sees half a file.
            os.replace(local, destination)
        return True
