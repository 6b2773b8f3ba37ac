"""The branches and tags of a hub repository, listed once for series and manifests alike."""

from __future__ import annotations

from huggingface_hub import list_repo_refs

from amuro.core.errors import UserError


def hub_refs(repo_id: str, failure: str, fix: str):
    """``list_repo_refs`` of ``repo_id``; failing to list them (offline, an unknown repo, no permission) is one
    line, ``failure (why): fix``."""
    try:
        return list_repo_refs(repo_id)
    except Exception as exc:  # every cause surfaces here
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UserError(f"{failure} ({first[:200]}): {fix}") from None
