"""Exactly what a run read: the hub commit a download resolved to, or the local copy's path and content digest;
and revisions that pin a dataset (a catalogue entry's ``revision``, or ``--dataset-revision NAME=COMMIT``).

A hub read resolves its revision (``main``, the parquet export's branch, or a pinned commit) to a commit first
and reads that commit, so the commit recorded is the one read: online through the hub's API, offline through the
Hugging Face cache (``refs/<branch>`` and ``snapshots/<commit>``). A local copy downloaded with
``hf download --local-dir`` keeps the commit of each file in ``.cache/huggingface/download/*.metadata``; a pinned
entry refuses a copy of another commit. Every copy is also recorded by a digest of its files.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from functools import lru_cache
from pathlib import Path

from amuro.core.errors import UserError
from amuro.data import registry
from amuro.data.spec import DatasetSpec

COMMIT = re.compile(r"^[0-9a-f]{40}$")
METADATA = Path(".cache") / "huggingface" / "download"
_PINNED_BY_OPTION: dict[str, DatasetSpec] = {}  # the catalogue entries --dataset-revision replaced, as they were


def is_commit(revision: str | None) -> bool:
    return bool(revision and COMMIT.match(revision))


def parse_revisions(option: str | None) -> dict[str, str]:
    """``NAME=COMMIT,NAME=COMMIT`` -> {name: commit}."""
    pins: dict[str, str] = {}
    for part in (option or "").split(","):
        if not part.strip():
            continue
        name, sep, commit = (p.strip() for p in part.partition("="))
        if not sep or not name or not is_commit(commit):
            raise UserError(
                f"--dataset-revision {part.strip()!r} is not NAME=COMMIT: give a dataset name and the full "
                "40-character commit of its hub repository"
            )
        pins[name] = commit
    return pins


def apply_revisions(option: str | None) -> None:
    """Pin the named hub datasets to their commits for this command; entries an earlier command pinned are put
    back first, so each command reads exactly the revisions it was given."""
    for name, spec in _PINNED_BY_OPTION.items():
        registry.CATALOGUE[name] = spec
    _PINNED_BY_OPTION.clear()
    for name, commit in parse_revisions(option).items():
        spec = registry.get(name)
        if spec.source != "hub":
            raise UserError(
                f"--dataset-revision {name}: {name} is a {spec.source} dataset; only hub datasets have commits"
            )
        _PINNED_BY_OPTION[name] = spec
        registry.CATALOGUE[name] = dataclasses.replace(spec, revision=commit)


# --- hub reads ------------------------------------------------------------------------------------------------


def hub_revision(spec: DatasetSpec) -> str:
    return spec.revision or "main"


def resolve_commit(spec: DatasetSpec, offline: bool) -> str | None:
    """The commit a hub read of ``spec`` reads; ``None`` offline when the cache does not say (the datasets
    cache may still hold the rows). A revision the hub or the cache does not have is one line."""
    revision = hub_revision(spec)
    if offline:
        commit = _cached_commit(spec.path, revision)
        if commit is None and is_commit(revision) and _cached_repo(spec.path).is_dir():
            raise UserError(
                f"dataset {spec.name}: revision {revision} of {spec.path} is not in the Hugging Face cache (it holds "
                f"{', '.join(_cached_snapshots(spec.path)) or 'no commit'}) and the hub is offline: check the "
                "commit, go online once, or put a local copy of that revision in the data folder"
            )
        return commit
    from huggingface_hub import HfApi
    from huggingface_hub.errors import RevisionNotFoundError

    try:
        return HfApi().dataset_info(spec.path, revision=revision).sha
    except RevisionNotFoundError:
        raise UserError(
            f"dataset {spec.name}: revision {revision} does not exist in {spec.path} on the hub: check the commit "
            "(its history is at https://huggingface.co/datasets/" + spec.path + "/commits/main)"
        ) from None
    except Exception:  # noqa: BLE001  (no answer from the hub: datasets' own load reports it in one line)
        return None


def _cached_repo(path: str) -> Path:
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE) / ("datasets--" + path.replace("/", "--"))


def _cached_snapshots(path: str) -> list[str]:
    snapshots = _cached_repo(path) / "snapshots"
    return sorted(p.name for p in snapshots.iterdir()) if snapshots.is_dir() else []


def _cached_commit(path: str, revision: str) -> str | None:
    repo = _cached_repo(path)
    if is_commit(revision):
        return revision if (repo / "snapshots" / revision).is_dir() else None
    ref = repo / "refs" / revision
    return ref.read_text().strip() if ref.is_file() else None


# --- local copies -----------------------------------------------------------------------------------------------


def copy_commits(folder: Path) -> set[str]:
    """The commits the files of a downloaded copy came from (empty for a copy made by other means)."""
    meta = folder / METADATA
    if not meta.is_dir():
        return set()
    return {p.read_text().split("\n", 1)[0].strip() for p in meta.rglob("*.metadata")}


def check_copy(spec: DatasetSpec, folder: Path) -> None:
    """A pinned entry reads a downloaded copy of that commit only."""
    if not is_commit(spec.revision):
        return
    found = copy_commits(folder)
    if found and found != {spec.revision}:
        raise UserError(
            f"dataset {spec.name}: revision {spec.revision} is pinned, but the local copy {folder} holds commit "
            f"{', '.join(sorted(found))}: download that revision (hf download {spec.path} --repo-type dataset "
            f"--revision {spec.revision} --local-dir {folder})"
        )


@lru_cache(maxsize=64)
def content_digest(path: Path, stamp: float = 0.0) -> str:
    """sha256 of a file, or of a folder's files (relative path and bytes, in path order; download bookkeeping
    left out). ``stamp`` (a modification time) makes an edited copy hash again."""
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file() and ".cache" not in p.parts)
    for file in files:
        digest.update(str(file.relative_to(path) if path.is_dir() else file.name).encode() + b"\0")
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:20]


def _stamp(path: Path) -> float:
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return max((p.stat().st_mtime for p in files), default=0.0)


def digest_of(path: Path) -> str:
    """``content_digest`` of a file or folder as it is now."""
    return content_digest(path, _stamp(path))


def local_record(spec: DatasetSpec, location: Path) -> dict[str, str]:
    record = {"path": str(location), "content_digest": digest_of(location)}
    commits = copy_commits(location) if location.is_dir() else set()
    if len(commits) == 1:
        record["commit"] = next(iter(commits))
    return record
