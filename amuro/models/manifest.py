"""Series manifests: a YAML file listing a series' checkpoints across repositories and revisions.

For families whose checkpoints amuro does not find by branch name (TinyLlama publishes one repository per
checkpoint; LLM360's Amber names its branches ``ckpt_000`` to ``ckpt_359``)::

    series: TinyLlama-1.1B
    checkpoints:
      - {repo: TinyLlama/TinyLlama-1.1B-intermediate-step-480k-1T, step: 480000, tokens: 1T}
      - {repo: LLM360/Amber, revision: ckpt_100, step: 100, tokens: 354B}
      - {repo: ./local/repo, revision: step400, step: 400}

``repo`` is a hub repo id or a local folder (relative to the manifest): a ``save_pretrained`` folder
(revision ``main``) or a folder of branch-named checkpoint folders. ``revision`` defaults to ``main``;
``name`` (how the series calls the checkpoint) defaults to the revision, or the repository's name when
the manifest spans several repositories.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from amuro.core.errors import UserError
from amuro.models.hub_listing import hub_refs

SUFFIXES = (".yaml", ".yml")
_TOKENS = re.compile(r"^(?P<number>\d+(?:\.\d+)?)(?P<unit>[KMBT]?)$", re.IGNORECASE)
_UNITS = {"": 1, "K": 10**3, "M": 10**6, "B": 10**9, "T": 10**12}
_FIELDS = {"repo", "revision", "step", "tokens", "name"}


@dataclass(frozen=True)
class ManifestEntry:
    name: str  # the checkpoint's revision within the series (unique)
    repo: str  # the hub repo id, or the local folder as the manifest writes it
    revision: str  # the repository's branch (hub) or branch folder (local)
    step: int
    tokens: int | None
    folder: Path | None = None  # the local checkpoint folder; None for a hub checkpoint
    commit: str | None = None  # the hub branch's commit


def is_manifest(model: str) -> bool:
    return model.lower().endswith(SUFFIXES)


def read_manifest(path: str | Path) -> tuple[str, list[ManifestEntry]]:
    """The series name and its checkpoints; every revision is checked to exist in its repository."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError(f"series manifest {path} does not exist: give the path of a YAML file listing checkpoints")
    try:
        document = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise UserError(f"series manifest {path} is not valid YAML ({str(exc).splitlines()[0]})") from None
    items = document.get("checkpoints") if isinstance(document, dict) else None
    if not isinstance(items, list) or not items:
        raise UserError(f"series manifest {path} lists no checkpoints: write 'checkpoints:' with one entry each")
    raw = [_entry_fields(path, i, item) for i, item in enumerate(items, 1)]
    several = len({item["repo"] for item in raw}) > 1
    refs: dict[str, dict[str, str]] = {}
    entries = [_resolve(path, item, several, refs) for item in raw]
    names = [e.name for e in entries]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise UserError(f"series manifest {path} names checkpoint {twice[0]} twice: give each entry its own 'name'")
    return str(document.get("series") or path.stem), entries


def _entry_fields(path: Path, number: int, item) -> dict:
    where = f"series manifest {path}, checkpoint {number}"
    if not isinstance(item, dict) or not item.get("repo"):
        raise UserError(f"{where}: each checkpoint is a mapping with at least 'repo' and 'step'")
    extra = sorted(set(item) - _FIELDS)
    if extra:
        raise UserError(f"{where}: unknown field {extra[0]!r} (valid: {', '.join(sorted(_FIELDS))})")
    step = item.get("step")
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        raise UserError(f"{where}: 'step' must be a whole number of training steps, got {step!r}")
    return {
        "repo": str(item["repo"]),
        "revision": str(item.get("revision", "main")),
        "step": step,
        "tokens": _tokens(where, item.get("tokens")),
        "name": item.get("name"),
        "number": number,
    }


def _tokens(where: str, value) -> int | None:
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    match = _TOKENS.match(str(value).strip())
    if not match:
        raise UserError(f"{where}: 'tokens' must be a count such as 1000000 or 105B or 1.5T, got {value!r}")
    return int(round(float(match["number"]) * _UNITS[match["unit"].upper()]))


def _resolve(path: Path, item: dict, several: bool, refs: dict) -> ManifestEntry:
    repo, revision = item["repo"], item["revision"]
    default = repo.rstrip("/").split("/")[-1] if several else revision
    if several and revision != "main":
        default = f"{default}-{revision}"
    name = str(item["name"] or default)
    local = (path.parent / repo).expanduser()
    if repo.startswith((".", "/", "~")) or local.is_dir():
        folder = _local_revision(path, item, local)
        return ManifestEntry(name, repo, revision, item["step"], item["tokens"], folder=folder)
    if repo not in refs:
        refs[repo] = _hub_refs(path, repo)
    branches = refs[repo]
    if revision not in branches:
        raise _missing(path, item, sorted(branches))
    return ManifestEntry(name, repo, revision, item["step"], item["tokens"], commit=branches[revision])


def _local_revision(path: Path, item: dict, repo: Path) -> Path:
    if not repo.is_dir():
        raise UserError(f"series manifest {path}, checkpoint {item['number']}: folder {repo} does not exist")
    held = {p.name: p for p in sorted(repo.iterdir()) if (p / "config.json").is_file()}
    if (repo / "config.json").is_file():
        held["main"] = repo
    if item["revision"] not in held:
        raise _missing(path, item, sorted(held))
    return held[item["revision"]].resolve()


def _hub_refs(path: Path, repo: str) -> dict[str, str]:
    found = hub_refs(
        repo,
        f"series manifest {path}: cannot list the revisions of hub model {repo}",
        "check the repo id and network, or point the entry at a local folder",
    )
    return {ref.name: ref.target_commit for ref in [*found.branches, *found.tags]}


def _missing(path: Path, item: dict, held: list[str]) -> UserError:
    import difflib

    near = difflib.get_close_matches(item["revision"], held, n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(near)}?" if near else f"it has {', '.join(held[:8]) or 'none'}"
    return UserError(
        f"series manifest {path}, checkpoint {item['number']}: {item['repo']} has no revision "
        f"{item['revision']!r}: {hint}"
    )
