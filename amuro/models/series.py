"""Checkpoint series: hub branches, local branch-named folders, and pretrain runs' artifacts.

A series is an ordered list of checkpoints of one model. Three sources give one:

- a hub repo whose branches are checkpoints (``allenai/OLMo-1B-hf``: ``step20000-tokens83B``; Pythia:
  ``step143000``; OLMo-2: ``stage1-step10000-tokens42B``; ``main`` is the series' last step);
- a local folder of branch-named checkpoint folders (each a ``save_pretrained`` model and tokenizer) with a
  ``manifest.json``; the offline stand-in for a hub series;
- a pretrain run of this suite: by series name (``tiny``) or ``runs:/<run_id>/series``;
- a series manifest (YAML, ``amuro.models.manifest``) listing checkpoints across repositories and revisions.

OLMo-2's ``main`` is the model souped from stage 2's ingredients: it continues stage 2, not stage 1.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from amuro.core.errors import UserError, unknown
from amuro.core.paths import amuro_home
from amuro.models.hub_listing import hub_refs
from amuro.models.manifest import ManifestEntry, is_manifest, read_manifest
from amuro.models.remote_code import require_trust
from amuro.models.study_checkpoints import STUDY, study_selection

MANIFEST = "manifest.json"
SERIES_ARTIFACT = "series"
DEFAULT_SERIES = "tiny"
_REVISION = re.compile(r"^(?:[A-Za-z0-9_]+-)*step(?P<step>\d+)(?:-tokens(?P<tokens>\d+(?:\.\d+)?)(?P<unit>[KMBT]?))?$")
_STAGE = re.compile(r"^stage(?P<stage>\d+)(?:-ingredient(?P<ingredient>\d+))?-")
_UNITS = {"": 1, "K": 10**3, "M": 10**6, "B": 10**9, "T": 10**12}
STAGE_SELECTION = re.compile(r"^stage(?P<stage>\d+)$")


def parse_revision(name: str) -> tuple[int | None, int | None]:
    """``step20000-tokens84B`` -> (20000, 84_000_000_000); ``step143000`` -> (143000, None); ``main`` -> (None, None).

    Steps and tokens are as the name spells them (OLMo-2's stage-2 names count from the start of stage 2)."""
    match = _REVISION.match(name)
    if not match:
        return None, None
    tokens = None
    if match["tokens"] is not None:
        tokens = int(round(float(match["tokens"]) * _UNITS[match["unit"]]))
    return int(match["step"]), tokens


def parse_stage(name: str) -> tuple[int, int | None]:
    """OLMo-2's training stage and data ingredient: ``stage2-ingredient3-step11931-tokens50B`` -> (2, 3);
    names without a stage are stage 1."""
    match = _STAGE.match(name)
    if not match:
        return 1, None
    return int(match["stage"]), int(match["ingredient"]) if match["ingredient"] else None


@dataclass(frozen=True)
class Checkpoint:
    """One checkpoint: where to load it from and its place in the series."""

    series: str
    revision: str
    step: int
    tokens: int | None
    location: str  # a local folder, or the hub repo id
    hub_revision: str | None = None  # the branch passed to from_pretrained for hub checkpoints
    commit: str | None = None
    source_run_id: str | None = None
    artifact_path: str | None = None
    stage: int = 1  # OLMo-2's later stages (stage 2: the annealing runs) are selected apart
    ingredient: int | None = None  # OLMo-2 stage 2's data mixture: each ingredient is its own checkpoint
    trust_remote_code: bool = False  # run the repository's own modelling code (allenai/OLMo-1B)

    @property
    def label(self) -> str:
        suffix = f"-stage{self.stage}" if self.stage != 1 else ""
        suffix += f"-ingredient{self.ingredient}" if self.ingredient else ""
        return f"{self.series.split('/')[-1]}@step{self.step}{suffix}"

    def load(self, *, dtype=None):
        """Model and tokenizer of this checkpoint (the same revision for both)."""
        from transformers import AutoModelForCausalLM, AutoTokenizer

        kwargs = {"revision": self.hub_revision} if self.hub_revision else {}
        require_trust(self.location, self.hub_revision, self.series, self.trust_remote_code)
        if self.trust_remote_code:
            kwargs["trust_remote_code"] = True
        try:
            tokenizer = AutoTokenizer.from_pretrained(self.location, **kwargs)
            model = AutoModelForCausalLM.from_pretrained(self.location, dtype=dtype, **kwargs)
        except Exception as exc:  # transformers raises many types for a bad folder
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise UserError(
                f"checkpoint {self.revision} of {self.series} failed to load from {self.location} "
                f"({first[:300]}): re-create it (re-run pretrain) or pick another checkpoint"
            ) from None
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        model.eval()
        return model, tokenizer


@dataclass
class Series:
    name: str
    checkpoints: list[Checkpoint] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.checkpoints.sort(key=lambda c: (c.stage, c.step, c.revision == "main", c.revision))

    @property
    def revisions(self) -> list[str]:
        return [c.revision for c in self.checkpoints]

    @property
    def main_line(self) -> list[Checkpoint]:
        """The series proper: stage 1 and ``main`` (later stages, OLMo-2's stage 2, are selected by ``stage2``)."""
        return [c for c in self.checkpoints if c.stage == 1 or c.revision == "main"] or self.checkpoints

    def trusting(self, trust_remote_code: bool) -> Series:
        """The series whose checkpoints load with (or without) the repository's own code."""
        return Series(self.name, [replace(c, trust_remote_code=trust_remote_code) for c in self.checkpoints])

    @property
    def last(self) -> Checkpoint:
        return self.main_line[-1]

    def get(self, wanted: str | int) -> Checkpoint:
        """A checkpoint by revision name, ``main``, or step (``400`` or ``step400``)."""
        text = str(wanted).strip()
        for ckpt in self.checkpoints:
            if ckpt.revision == text:
                return ckpt
        if text == "main" or text == "last":
            return self.last
        step_text = text[4:] if text.startswith("step") else text
        if step_text.isdigit():
            matches = [c for c in self.main_line if c.step == int(step_text) and c.revision != "main"]
            matches = matches or [c for c in self.checkpoints if c.step == int(step_text)]
            if matches:
                return matches[0]
        raise unknown(f"checkpoint of series {self.name}", text, self.revisions)

    def select(self, selection: str | int | Sequence[str] | None) -> list[Checkpoint]:
        """``all``; ``study`` (the study's eight checkpoints, each mapped to the nearest one here); a count
        (evenly spaced, first and last included); or revisions / steps / stages (``stage2``: every checkpoint of
        that stage), comma-separated.

        ``all`` and counts draw on stage 1. A single number is a count when it is at most the number of
        checkpoints, else a step."""
        line = self.main_line
        if selection is None or str(selection).strip() in ("", "all"):
            return [c for c in line if c.revision != "main" or len(line) == 1]
        if str(selection).strip() == STUDY:
            return study_selection(self)
        if isinstance(selection, int) or (isinstance(selection, str) and selection.strip().isdigit()):
            number = int(selection)
            return self._evenly(number) if number <= len(line) else [self.get(number)]
        items = selection.split(",") if isinstance(selection, str) else list(selection)
        chosen: list[Checkpoint] = []
        for item in (str(i).strip() for i in items if str(i).strip()):
            stage = STAGE_SELECTION.match(item)
            picked = self.stage(int(stage["stage"])) if stage else [self.get(item)]
            chosen += [c for c in picked if c not in chosen]
        return chosen

    def stage(self, number: int) -> list[Checkpoint]:
        found = [c for c in self.checkpoints if c.stage == number and c.revision != "main"]
        if not found:
            stages = sorted({f"stage{c.stage}" for c in self.checkpoints})
            raise UserError(f"series {self.name} has no stage{number} checkpoints: its stages are {', '.join(stages)}")
        return found

    def _evenly(self, count: int) -> list[Checkpoint]:
        pool = [c for c in self.main_line if c.revision != "main"] or self.main_line
        if count < 1:
            raise UserError(f"checkpoint count must be at least 1, got {count}")
        if count >= len(pool):
            return pool
        if count == 1:
            return [pool[-1]]
        picks = sorted({round(i * (len(pool) - 1) / (count - 1)) for i in range(count)})
        return [pool[i] for i in picks]


# --- local series -------------------------------------------------------------------------------------


def write_manifest(folder: Path, name: str, checkpoints: Sequence[dict], source_run_id: str | None) -> None:
    manifest = {"series": name, "source_run_id": source_run_id, "checkpoints": list(checkpoints)}
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2))


def local_series(folder: str | Path, *, name: str | None = None) -> Series:
    """A folder of branch-named checkpoint folders; the manifest is optional (names are parsed if absent)."""
    folder = Path(folder)
    manifest_path = folder / MANIFEST
    if manifest_path.exists():
        try:
            manifest = json.loads(manifest_path.read_text())
        except json.JSONDecodeError as exc:
            raise UserError(
                f"series manifest {manifest_path} is not valid JSON ({exc}): re-create the series"
            ) from None
        entries = manifest.get("checkpoints", [])
        name = name or manifest.get("series") or folder.name
        run_id = manifest.get("source_run_id")
    else:
        if (folder / "config.json").exists():
            entries = [{"revision": "main", "path": "."}]
        else:
            entries = [{"revision": p.name} for p in sorted(folder.iterdir()) if (p / "config.json").exists()]
        name, run_id = name or folder.name, None
    if not entries:
        raise UserError(f"{folder} holds no checkpoints: expected branch-named folders with config.json")
    checkpoints = []
    for entry in entries:
        revision = entry["revision"]
        known = {k: entry[k] for k in ("step", "tokens") if k in entry}
        path = folder / entry.get("path", revision)
        checkpoints.append(
            _checkpoint(
                revision,
                series=name,
                location=str(path.resolve()),
                source_run_id=run_id,
                artifact_path=f"{SERIES_ARTIFACT}/{revision}" if run_id else None,
                **known,
            )
        )
    return _fill_main(Series(name, checkpoints))


def _fill_main(series: Series) -> Series:
    """Later stages (OLMo-2's stage 2, whose names count from the start of the stage) continue from stage 1's
    last step and token count; ``main`` (and unparsable names) take the last stage's last step, as the contract
    asks: OLMo-2's ``main`` is the model souped from stage 2's ingredients, a stage-2 checkpoint of its own."""
    known = [c for c in series.checkpoints if c.step >= 0 and c.stage == 1]
    last = max(known, key=lambda c: c.step) if known else None
    base_step, base_tokens = (last.step, last.tokens) if last else (0, None)
    fixed = []
    for ckpt in series.checkpoints:
        if ckpt.stage > 1 and ckpt.step >= 0:
            tokens = base_tokens + ckpt.tokens if base_tokens is not None and ckpt.tokens is not None else None
            ckpt = replace(ckpt, step=base_step + ckpt.step, tokens=tokens)
        fixed.append(ckpt)
    final_stage = max(c.stage for c in fixed)
    final = [c for c in fixed if c.stage == final_stage and c.step >= 0]
    end = max(final, key=lambda c: c.step) if final else None
    end_step, end_tokens = (end.step, end.tokens) if end else (base_step, base_tokens)
    fixed = [replace(c, step=end_step, tokens=end_tokens, stage=final_stage) if c.step < 0 else c for c in fixed]
    return Series(series.name, fixed)


def _checkpoint(revision: str, **fields) -> Checkpoint:
    """A checkpoint named by a branch: step and tokens as spelled (-1: unknown), stage and ingredient."""
    step, tokens = parse_revision(revision)
    stage, ingredient = parse_stage(revision) if step is not None else (1, None)
    fields.setdefault("step", step if step is not None else -1)
    fields.setdefault("tokens", tokens)
    return Checkpoint(revision=revision, stage=stage, ingredient=ingredient, **fields)


# --- hub series ---------------------------------------------------------------------------------------


def hub_series(repo_id: str) -> Series:
    """Branches of a hub repo; checkpoints load with ``from_pretrained(repo_id, revision=branch)``."""
    refs = hub_refs(
        repo_id,
        f"cannot list the branches of hub model {repo_id}",
        "check the repo id and network, or point --model at a local series folder",
    )
    checkpoints = []
    for branch in refs.branches:
        if parse_revision(branch.name)[0] is None and branch.name != "main":
            continue
        checkpoints.append(
            _checkpoint(
                branch.name, series=repo_id, location=repo_id, hub_revision=branch.name, commit=branch.target_commit
            )
        )
    if not checkpoints:
        raise UserError(f"hub model {repo_id} has no checkpoint branches (stepN...) nor main")
    return _fill_main(Series(repo_id, checkpoints))


# --- series from pretrain runs --------------------------------------------------------------------------


def series_from_run(run_id: str) -> Series:
    """The checkpoints a pretrain run logged, downloaded once into ``AMURO_HOME``."""
    import mlflow

    target = amuro_home() / "runs" / run_id
    if not (target / SERIES_ARTIFACT / MANIFEST).exists():
        try:
            mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=SERIES_ARTIFACT, dst_path=str(target))
        except Exception as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise UserError(
                f"run {run_id} has no checkpoint series to download ({first[:200]}): give a pretrain run id"
            ) from None
    return local_series(target / SERIES_ARTIFACT)


def find_pretrain_run(experiment_id: str, name: str):
    from amuro.core.tracking import Tag, search_runs

    runs = search_runs(
        experiment_id, {Tag.KIND: "pretrain", Tag.MODEL: name}, status="FINISHED", newest_first=True, max_results=1
    )
    return runs[0] if runs else None


def open_series(model: str, *, experiment_id: str | None = None, trust_remote_code: bool = False) -> Series:
    """Resolve ``--model``: a folder, ``runs:/<id>/...``, a series manifest, a tracked series name, or a hub
    repo id; its checkpoints load with the repository's own code when ``trust_remote_code``.

    Pure resolution: nothing is built here (``commands.pretrain.ensure_default_series`` builds ``tiny``).
    """
    return _resolve(model.strip(), experiment_id).trusting(trust_remote_code)


def _resolve(model: str, experiment_id: str | None) -> Series:
    if is_manifest(model):
        return manifest_series(model)
    if model.startswith("runs:/"):
        return series_from_run(model[len("runs:/") :].split("/", 1)[0])
    path = Path(model).expanduser()
    if path.is_dir():
        return local_series(path)
    if model.startswith((".", "/", "~")):
        raise UserError(
            f"model folder {model} does not exist: give an existing series folder, a series name or a hub repo id"
        )
    if "/" in model:
        return hub_series(model)
    if experiment_id is not None:
        run = find_pretrain_run(experiment_id, model)
        if run is not None:
            return _series_of_pretrain_run(run)
    raise unknown(
        "model series (no pretrain run of that name; not a folder or hub repo id)",
        model,
        _tracked_series_names(experiment_id) + [DEFAULT_SERIES],
    )


def manifest_series(path: str | Path) -> Series:
    """The checkpoints a series manifest lists, each from its own repository (hub id or local folder)."""
    name, entries = read_manifest(path)
    return _fill_main(Series(name, [_manifest_checkpoint(name, entry) for entry in entries]))


def _manifest_checkpoint(series: str, entry: ManifestEntry) -> Checkpoint:
    hub = entry.folder is None
    return Checkpoint(
        series=series,
        revision=entry.name,
        step=entry.step,
        tokens=entry.tokens,
        location=entry.repo if hub else str(entry.folder),
        hub_revision=entry.revision if hub else None,
        commit=entry.commit,
    )


def _series_of_pretrain_run(run) -> Series:
    from amuro.core.tracking import Tag

    local = run.data.tags.get(Tag.SERIES_DIR)
    if local and (Path(local) / MANIFEST).exists():
        return local_series(local)
    return series_from_run(run.info.run_id)


def _tracked_series_names(experiment_id: str | None) -> list[str]:
    if experiment_id is None:
        return []
    from amuro.core.tracking import Tag, search_runs

    runs = search_runs(experiment_id, {Tag.KIND: "pretrain"}, max_results=200)
    return sorted({r.data.tags.get(Tag.MODEL, "") for r in runs} - {""})
