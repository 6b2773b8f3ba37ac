"""Run keys of default settings are the ones the suite has always computed, so finished runs are still reused.

The expected keys were computed by the code before the training settings were nested in finetune's and the
sweep's settings (eval cells' since their keys hold result versions and the digests of the rows they read); a
change here means every finished run of that kind would be redone.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from amuro import data
from amuro.commands.sweep import plan
from amuro.core import tracking
from amuro.core.settings import (
    CrossevalSettings,
    EvalSettings,
    FinetuneSettings,
    PretrainEvalSettings,
    SweepSettings,
)
from amuro.core.train_settings import TrainSettings
from amuro.models.targets import tuned_target
from amuro.scoring.cells import cell_key

REVISIONS = [("step600", 600)]


def finetune_key(cfg: FinetuneSettings) -> str:
    return tracking.run_key("finetune", {**cfg.key_settings(), "model": "tiny", "checkpoint": "step600"})


def eval_keys(settings: EvalSettings) -> dict[str, str]:
    target = tuned_target(
        model="tiny",
        revision="step600",
        step=600,
        tokens=None,
        tuning="sft",
        train_dataset="synth-nli",
        run_id="r1",
        seed=settings.seed,
        train_seed=0,
    )
    return {
        name: cell_key(target, data.get(name), "default", settings)
        for name in ("synth-nli", "synth-qgen", "synth-summary")
    }


def sweep_key(cfg: SweepSettings) -> str:
    return tracking.run_key("sweep", {**cfg.key_settings(), "revisions": REVISIONS})


def sweep_finetune_keys(cfg: SweepSettings) -> list[str]:
    cells = plan(cfg, "tiny", REVISIONS, Path("report.html"))
    return [finetune_key(c.settings) for c in cells if c.settings is not None and c.settings.entry_point == "finetune"]


STUDY = {"protocol": "study"}


@pytest.mark.parametrize(
    ("cfg", "expected"),
    [
        (FinetuneSettings(), "91406382792578133870"),
        (FinetuneSettings(**STUDY), "f4f450b0687431f78771"),
        (FinetuneSettings(**STUDY, dataset="xsum"), "e05171d2b009b48b64ef"),
        (FinetuneSettings(**STUDY, dataset="synth-instruct", train=TrainSettings(tuning="it")), "646a0ce3bbae0f172897"),
    ],
)
def test_finetune_keys_of_default_settings(cfg, expected):
    assert finetune_key(cfg) == expected


def test_eval_cell_keys_of_default_settings():
    classification, generation = (
        "b907da232655bb50ed2c",
        {"synth-qgen": "7eba80e59d4a21119d04", "synth-summary": "c57033b432a582fe718e"},
    )
    assert (
        eval_keys(EvalSettings()) == eval_keys(FinetuneSettings().eval) == {"synth-nli": classification, **generation}
    )
    assert eval_keys(EvalSettings(method="generate")) == {"synth-nli": "eaf3a3f3bb7e104a6ada", **generation}
    assert eval_keys(SweepSettings().eval) == {  # 200 items: a seeded sample, no longer the first 200
        "synth-nli": "856edd55b42cee633c75",
        "synth-qgen": "0815d1ffb5963f2d4a5b",
        "synth-summary": "df5f0605797ba64a16f6",
    }


def test_group_keys_of_default_settings():
    assert sweep_key(SweepSettings()) == "8fabc9b3125907ef3110"
    assert sweep_key(SweepSettings(eval=STUDY)) == "d62991ad8cea1389a55f"
    pretrain_eval = {**PretrainEvalSettings().key_settings(), "series": "tiny", "revisions": ["step600"]}
    assert tracking.run_key("pretrain-eval", pretrain_eval) == "d77e9c4d5e6ded23a3f7"
    assert (
        tracking.run_key("crosseval", {"runs": ["r1"], **CrossevalSettings().key_settings()}) == "98b232efcdc4648cf3b9"
    )


def test_a_sweep_gives_its_cells_the_keys_they_always_had():
    assert sweep_finetune_keys(SweepSettings()) == [
        "58ceea569993c26367b1",
        "7fc08b57cb1d8a3847ef",
        "96d07e0ffaaf3127c058",
        "95b11c668fbad58cbcd8",
    ]
    study = SweepSettings(eval=STUDY, train_datasets="xsum,synth-nli")
    assert sweep_finetune_keys(study) == ["e05171d2b009b48b64ef", "f4f450b0687431f78771"]


def test_a_training_setting_new_to_the_sweep_changes_its_key_only_when_set():
    assert sweep_key(SweepSettings(train=TrainSettings(lr=1e-3))) != sweep_key(SweepSettings())
    assert sweep_key(SweepSettings(train=TrainSettings(lora_r=8))) == sweep_key(SweepSettings())
