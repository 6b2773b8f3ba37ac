"""Run keys hold result versions and the rows a run reads: a version bump or edited rows score (or train)
exactly the affected cells again, every other finished run is reused."""

import json
import os
import subprocess
import time

from mlflow.tracking import MlflowClient

from amuro import data
from amuro.commands.finetune import finetune
from amuro.commands.pretrain_eval import pretrain_eval
from amuro.core import tracking
from amuro.core.settings import EvalSettings, FinetuneSettings, PretrainEvalSettings
from amuro.core.train_settings import TrainSettings
from amuro.core.versions import git_commit
from amuro.scoring import cell_scoring
from amuro.training import features as feature_code

SPEC = """\
datasets:
  - name: my_pairs
    task: nli
    path: my_pairs_{split}.jsonl
    splits: {test: test}
    fields: {premise: first, hypothesis: second, label: gold, id: pair_id}
    labels: [entailment, neutral, contradiction]
"""


def _write_rows(folder, second_of_first_row: str) -> None:
    rows = [
        {"pair_id": "p0", "first": "The mill is by the river.", "second": second_of_first_row, "gold": "entailment"},
        {"pair_id": "p1", "first": "The lamp is lit.", "second": "The lamp is dark.", "gold": "contradiction"},
        {"pair_id": "p2", "first": "A boat left at noon.", "second": "It rained.", "gold": "neutral"},
    ]
    (folder / "my_pairs_test.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))


def _eval_runs(experiment: str) -> dict[str, list]:
    """Eval runs by dataset, oldest first."""
    experiment_id = tracking.connect(experiment)
    runs = tracking.search_runs(experiment_id, {tracking.Tag.KIND: "eval"})
    by_dataset: dict[str, list] = {}
    for run in sorted(runs, key=lambda r: r.info.start_time):
        by_dataset.setdefault(run.data.tags[tracking.Tag.EVAL_DATASET], []).append(run)
    return by_dataset


def test_a_version_bump_or_edited_rows_score_exactly_the_affected_cells_again(
    tracking_uri, small_series, tmp_path, monkeypatch
):
    _write_rows(tmp_path, "The mill stands near the river.")
    (tmp_path / "my.yaml").write_text(SPEC)
    cfg = PretrainEvalSettings(
        experiment="versions",
        model=small_series,
        checkpoints="1",
        datasets="synth-nli,synth-summary,my_pairs",
        formats="default",
        dataset_spec=str(tmp_path / "my.yaml"),
        eval=EvalSettings(max_examples=3, shots=0, bootstrap=20, max_new_tokens=4),
    )
    try:
        pretrain_eval(cfg)
        first = _eval_runs("versions")
        assert {name: len(runs) for name, runs in first.items()} == {"synth-nli": 1, "synth-summary": 1, "my_pairs": 1}
        summary = first["synth-summary"][0].data.tags
        assert (summary["amuro.version.rendering"], summary["amuro.version.scoring"]) == ("summary-1", "generate-1")
        assert summary["amuro.version.metric"] == "rougeL-1"
        assert first["synth-nli"][0].data.tags["amuro.version.scoring"] == "next-token-1"
        assert summary["amuro.code_version"] and summary["amuro.git_commit"] == git_commit()
        group = MlflowClient().get_run(first["synth-nli"][0].data.tags["mlflow.parentRunId"]).data.tags
        assert group["amuro.code_version"] == summary["amuro.code_version"]

        # Generation's scoring changes: only the generation cell is scored again.
        monkeypatch.setitem(cell_scoring.SCORING_VERSIONS, "generate", 2)
        pretrain_eval(cfg)
        second = _eval_runs("versions")
        assert {name: len(runs) for name, runs in second.items()} == {"synth-nli": 1, "synth-summary": 2, "my_pairs": 1}
        assert second["synth-summary"][1].data.tags["amuro.version.scoring"] == "generate-2"

        # One row of the spec file's dataset is edited under the same name: only its cell is scored again.
        _write_rows(tmp_path, "The mill is far from any river.")
        pretrain_eval(cfg)
        third = _eval_runs("versions")
        assert {name: len(runs) for name, runs in third.items()} == {"synth-nli": 1, "synth-summary": 2, "my_pairs": 2}
        old, new = (MlflowClient().get_run(run.info.run_id).inputs.dataset_inputs for run in third["my_pairs"])
        assert old[0].dataset.digest != new[0].dataset.digest
    finally:
        data.CATALOGUE.pop("my_pairs", None)


TRAIN_SPEC = """\
datasets:
  - name: my_train_pairs
    task: nli
    path: my_pairs_{split}.jsonl
    splits: {train: test}
    fields: {premise: first, hypothesis: second, label: gold, id: pair_id}
    labels: [entailment, neutral, contradiction]
    trainable: true
"""


def test_a_fine_tune_trains_again_on_edited_rows_or_changed_features(tracking_uri, small_series, tmp_path, monkeypatch):
    _write_rows(tmp_path, "The mill stands near the river.")
    (tmp_path / "train.yaml").write_text(TRAIN_SPEC)
    cfg = FinetuneSettings(
        experiment="versions-ft",
        model=small_series,
        dataset="my_train_pairs",
        dataset_spec=str(tmp_path / "train.yaml"),
        evaluate=False,
        train=TrainSettings(epochs=1, batch_size=4, max_length=64),
    )
    try:
        first = finetune(cfg)
        tags = MlflowClient().get_run(first).data.tags
        assert (tags["amuro.version.rendering"], tags["amuro.version.features"], tags["amuro.version.trainer"]) == (
            "nli-1",
            "1",
            "1",
        )
        assert finetune(cfg) == first  # nothing changed: reused
        _write_rows(tmp_path, "The mill is far from any river.")
        edited = finetune(cfg)
        monkeypatch.setattr(feature_code, "RESULT_VERSION", 2)
        bumped = finetune(cfg)
        assert len({first, edited, bumped}) == 3
        assert MlflowClient().get_run(bumped).data.tags["amuro.version.features"] == "2"
    finally:
        data.CATALOGUE.pop("my_train_pairs", None)


def test_reading_the_checkout_commit_leaves_the_git_index_untouched(tmp_path, monkeypatch):
    """A cell can be killed at any moment: the status check must not rewrite the index (holding its lock)."""
    from amuro.core import versions

    def git(*args):
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / ".git" / "config").write_text(
        (tmp_path / ".git" / "config").read_text() + "[user]\n\tname = a\n\temail = a@b\n"
    )
    (tmp_path / "amuro").mkdir()
    (tmp_path / "amuro" / "code.py").write_text("x = 1\n")
    git("add", "amuro")
    git("commit", "-qm", "one")
    os.utime(tmp_path / "amuro" / "code.py")  # a stale stat in the index: a plain status would rewrite it
    index = tmp_path / ".git" / "index"
    before = index.stat().st_mtime_ns
    time.sleep(0.01)
    monkeypatch.setattr(versions, "CHECKOUT", tmp_path)
    versions.git_commit.cache_clear()
    try:
        assert len(versions.git_commit()) == 40
    finally:
        versions.git_commit.cache_clear()
    assert index.stat().st_mtime_ns == before
