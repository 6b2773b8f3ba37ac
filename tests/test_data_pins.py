"""Pinned data: runs record the commit or the local copy they read; catalogue pins and --dataset-revision."""

from __future__ import annotations

import dataclasses

import pytest
from click.testing import CliRunner
from hubdata import FIXTURES, local_study_data, write_hub_copy
from huggingface_hub import constants
from mlflow.tracking import MlflowClient

from amuro.cli import main
from amuro.commands.pretrain_eval import pretrain_eval
from amuro.core import tracking
from amuro.core.errors import UserError
from amuro.core.settings import EvalSettings, PretrainEvalSettings
from amuro.data import get
from amuro.data.provenance import apply_revisions, digest_of, resolve_commit

ARC_COMMIT = "210d026faf9955653af8916fad021475a3f00453"  # the catalogue pins allenai/ai2_arc here

OTHER = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(scope="module")
def study_data(tmp_path_factory):
    with local_study_data(tmp_path_factory) as root:
        yield root


@pytest.fixture
def unpinned_after():
    yield
    apply_revisions(None)  # the catalogue as it was, for the tests after


def test_eval_runs_record_the_commit_and_copy_they_read(tracking_uri, small_series, study_data, unpinned_after):
    quick = EvalSettings(shots=0, bootstrap=50)
    cfg = PretrainEvalSettings(experiment="pins", model=small_series, checkpoints="1", datasets="arc_easy", eval=quick)
    pretrain_eval(cfg)
    client = MlflowClient()
    (run,) = client.search_runs([tracking.connect("pins")], "tags.`amuro.kind` = 'eval'")
    (read,) = run.inputs.dataset_inputs
    tags = {tag.key: tag.value for tag in read.tags}
    copy = study_data / "arc_easy"
    assert tags["commit"] == ARC_COMMIT  # the catalogue's pin, which the downloaded copy holds
    assert tags["path"] == str(copy) and tags["content_digest"] == digest_of(copy)
    assert ARC_COMMIT in read.dataset.source

    # another commit for this run: the copy of the pinned one is refused in one line, naming both
    refusal = rf"dataset arc_easy: revision {OTHER} is pinned, but the local copy .*{ARC_COMMIT}"
    with pytest.raises(UserError, match=refusal):
        pretrain_eval(PretrainEvalSettings(**{**vars(cfg), "dataset_revision": f"arc_easy={OTHER}"}))
    # a copy of that commit is read, and its cell is a new one (the commit is in its key)
    pinned = study_data.parent / "pinned-copy"
    write_hub_copy(pinned / "arc_easy", get("arc_easy"), FIXTURES["arc_easy"][1], commit=OTHER)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AMURO_DATA_DIR", str(pinned))
        pretrain_eval(PretrainEvalSettings(**{**vars(cfg), "dataset_revision": f"arc_easy={OTHER}"}))
    runs = client.search_runs([tracking.connect("pins")], "tags.`amuro.kind` = 'eval'")
    assert len({r.data.tags["amuro.run_key"] for r in runs}) == 2
    commits = {tag.value for r in runs for tag in r.inputs.dataset_inputs[0].tags if tag.key == "commit"}
    assert commits == {ARC_COMMIT, OTHER}


def test_hub_reads_resolve_their_revision_in_the_cache(tmp_path, monkeypatch, unpinned_after):
    """The Hugging Face cache's layout: refs/<branch> holds a commit, snapshots/<commit> its files."""
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    repo = tmp_path / "datasets--allenai--ai2_arc"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(ARC_COMMIT)
    write_hub_copy(repo / "snapshots" / ARC_COMMIT, get("arc_easy"), FIXTURES["arc_easy"][1])
    unpinned = dataclasses.replace(get("arc_easy"), revision=None)
    assert resolve_commit(unpinned, offline=True) == ARC_COMMIT  # main, as the cache resolved it
    assert resolve_commit(get("arc_easy"), offline=True) == ARC_COMMIT  # the pin, present
    apply_revisions(f"arc_easy={OTHER}")
    with pytest.raises(UserError, match=rf"^dataset arc_easy: revision {OTHER} of allenai/ai2_arc is not in the"):
        resolve_commit(get("arc_easy"), offline=True)
    apply_revisions(None)
    assert get("arc_easy").revision == ARC_COMMIT


def test_bad_dataset_revisions_are_one_line(tracking_uri, unpinned_after):
    result = CliRunner().invoke(main, ["pretrain-eval", "--datasets", "synth-nli", "--dataset-revision", "arc_easy"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.output.strip().splitlines()[-1] == (
        "Error: --dataset-revision 'arc_easy' is not NAME=COMMIT: give a dataset name and the full 40-character "
        "commit of its hub repository"
    )
    for value, message in (
        ("arc_easy=main", "--dataset-revision 'arc_easy=main' is not NAME=COMMIT"),
        (f"synth-nli={OTHER}", "--dataset-revision synth-nli: synth-nli is a synthetic dataset"),
        (f"arc_esy={OTHER}", "unknown dataset 'arc_esy'"),
    ):
        with pytest.raises(UserError, match=message):
            apply_revisions(value)
