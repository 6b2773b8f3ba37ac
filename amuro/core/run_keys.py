"""Run keys: the hash that finds a finished run again, from the settings that change its result and the result
versions of the code that made it."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping


def run_key(kind: str, settings: Mapping[str, object], versions: Mapping[str, object] | None = None) -> str:
    """Hash of the canonical settings that change a run's result (callers leave out batch sizes etc.) and of
    the result versions of the components the run uses (``amuro.core.versions``)."""
    content = {"kind": kind, **settings}
    if versions:
        content["result_versions"] = dict(versions)
    canonical = json.dumps(content, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:20]
