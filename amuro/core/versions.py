"""Which code made a run: the amuro release, the git commit of a checkout, and the result versions of its key.

Each component whose change alters results declares its version next to its code (the templates' in
``amuro.data.formats``, the scoring methods' in ``amuro.scoring.cell_scoring``, ...; docs/tracking-contract.md
lists them). A run's key holds the versions of the components it used and the run is tagged with them
(``amuro.version.<component>``), so bumping one reruns exactly the runs that used it.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path

from amuro import __version__
from amuro_contract import VERSIONED, Tag

CHECKOUT = Path(__file__).resolve().parents[2]


@lru_cache(maxsize=1)
def git_commit() -> str:
    """The commit of the checkout amuro runs from (``+dirty`` when tracked files changed); empty when amuro
    is not installed from a checkout or git is missing."""
    if not (CHECKOUT / ".git").exists():
        return ""

    def git(*args: str) -> str:
        # No optional locks: a status that refreshed the index would hold .git/index.lock, and a cell killed
        # then would leave it behind.
        command = ["git", "-C", str(CHECKOUT), "--no-optional-locks", *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=10, check=True).stdout.strip()

    try:
        head = git("rev-parse", "HEAD")
        changed = git("status", "--porcelain", "--untracked-files=no", "--", "amuro", "amuro_contract")
    except (OSError, subprocess.SubprocessError):
        return ""
    return f"{head}+dirty" if head and changed else head


def code_tags() -> dict[str, str]:
    """``amuro.code_version`` and ``amuro.git_commit``: every run carries them."""
    return {Tag.CODE_VERSION: __version__, Tag.GIT_COMMIT: git_commit()}


def version_tags(kind: str, versions: Mapping[str, object]) -> dict[str, str]:
    """``amuro.version.<component>`` tags of a ``kind`` run; ``versions`` must name exactly its components."""
    if set(versions) != set(VERSIONED[kind]):
        raise ValueError(f"a {kind} run's versions are {VERSIONED[kind]}, not {sorted(versions)}")
    return {Tag.VERSION_PREFIX + component: str(value) for component, value in versions.items()}
