"""The two protocols: ``study`` (Amuro & Char's code, byte for byte) and ``amuro`` (the default, with fixes).

Every place where they differ is one field of ``Protocol``. ``protocols.yaml`` beside this module gives each
field's value under each protocol, what each protocol does there, and why amuro differs; the table
"study | amuro | why" in docs/protocols.md lists the same (a test keeps them equal). The layers read the values
they need (``protocol("study").label_tokens``), never the protocol's name.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from amuro.core.errors import unknown

PROTOCOLS = ("amuro", "study")
DEFAULT_PROTOCOL = "amuro"
# setting -> {"study": {"value", "does"}, "amuro": {"value", "does"}, "why"}
_DIFFERENCES: dict[str, dict] = yaml.safe_load(Path(__file__).with_name("protocols.yaml").read_text())


@dataclass(frozen=True)
class Protocol:
    name: str
    templates: str
    demonstrations: str
    mc_demonstrations: str
    stop: str
    label_tokens: str
    truncation: str
    rouge_stemming: bool
    scored_splits: str
    train_subset: str
    micro_batch: str
    loss_weighting: str
    training_tokenization: str


def _protocol(name: str) -> Protocol:
    return Protocol(name=name, **{setting: row[name]["value"] for setting, row in _DIFFERENCES.items()})


STUDY, AMURO = _protocol("study"), _protocol("amuro")
_BY_NAME = {"study": STUDY, "amuro": AMURO}
STUDY_TRAIN_SEED = 42
STUDY_MICRO_BATCH = {"batch_size": 1, "grad_accum": 8}


def protocol(name: str) -> Protocol:
    try:
        return _BY_NAME[name]
    except KeyError:
        raise unknown("protocol", name, PROTOCOLS) from None


def differences() -> list[tuple[str, str, str, str]]:
    """(setting, study, amuro, why) for every place the protocols differ."""
    return [(setting, row["study"]["does"], row["amuro"]["does"], row["why"]) for setting, row in _DIFFERENCES.items()]
