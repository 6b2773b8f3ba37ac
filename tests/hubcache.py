"""Write a local series into the Hugging Face cache layout, so hub code paths resolve it offline."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from types import SimpleNamespace

from amuro.models.series import local_series


def write_hub_cache(series_folder: str | Path, repo_id: str, cache_dir: Path, branch_names=None):
    """Copy each checkpoint to ``models--org--name/snapshots/<commit>`` with ``refs/<branch>``.

    Returns a ``list_repo_refs`` stand-in answering with those branches (and ``main`` = the last one).
    """
    series = local_series(series_folder)
    repo_dir = cache_dir / ("models--" + repo_id.replace("/", "--"))
    branches = []
    names = branch_names or [c.revision for c in series.checkpoints]
    for ckpt, name in zip(series.checkpoints, names):
        commit = hashlib.sha1(name.encode()).hexdigest()
        shutil.copytree(ckpt.location, repo_dir / "snapshots" / commit, dirs_exist_ok=True)
        (repo_dir / "refs").mkdir(parents=True, exist_ok=True)
        (repo_dir / "refs" / name).write_text(commit)
        branches.append(SimpleNamespace(name=name, ref=f"refs/heads/{name}", target_commit=commit))
    last = branches[-1]
    (repo_dir / "refs" / "main").write_text(last.target_commit)
    branches.append(SimpleNamespace(name="main", ref="refs/heads/main", target_commit=last.target_commit))

    def list_repo_refs(repo, **kwargs):
        assert repo == repo_id
        return SimpleNamespace(branches=list(branches), tags=[], converts=[])

    return list_repo_refs
