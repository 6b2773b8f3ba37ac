"""Where amuro keeps its files: ``AMURO_HOME`` (series, tuned models, caches) and the local dataset folder."""

from __future__ import annotations

import os
from pathlib import Path


def amuro_home() -> Path:
    """Where series and downloaded models are kept (``AMURO_HOME``, default ``~/.cache/amuro``)."""
    return Path(os.environ.get("AMURO_HOME") or Path.home() / ".cache" / "amuro")


def data_dir() -> Path:
    """The folder holding local copies of hub datasets (``AMURO_DATA_DIR``, default ``AMURO_HOME/datasets``)."""
    return Path(os.environ.get("AMURO_DATA_DIR") or amuro_home() / "datasets").expanduser()
