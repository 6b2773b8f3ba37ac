"""Environment variables the libraries read themselves are honoured without amuro re-reading them."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from amuro.data import get
from amuro.data.sources import hub_offline

PROGRESS = "from amuro.scoring.scorer import progress; print(progress(range(3)).disable)"


@pytest.mark.parametrize(("value", "disabled"), [("1", "True"), (None, "False")])
def test_progress_bars_follow_tqdm_disable(value, disabled):
    env = {k: v for k, v in os.environ.items() if k != "TQDM_DISABLE"}
    if value is not None:
        env["TQDM_DISABLE"] = value
    done = subprocess.run([sys.executable, "-c", PROGRESS], env=env, capture_output=True, text=True, check=True)
    assert done.stdout.split()[-1] == disabled


def test_offline_hub_is_what_the_hub_and_datasets_libraries_read(monkeypatch):
    import datasets
    import huggingface_hub.constants

    from amuro.commands.pretrain_eval import select_datasets
    from amuro.core.settings import EvalSettings

    assert hub_offline()  # the suite runs with HF_HUB_OFFLINE=1, read when huggingface_hub was imported
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
    assert not hub_offline()
    online = {spec.name for spec in select_datasets("mc", EvalSettings(shots=0))}
    assert get("arc_easy").source == "hub" and "arc_easy" in online
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)  # HF_DATASETS_OFFLINE=1 alone
    assert hub_offline()
