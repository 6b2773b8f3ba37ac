"""How a cell is scored (``EvalSettings``), nested in every entry point that scores: pretrain-eval, crosseval and
the sweep score with it, and finetune's in-domain scoring uses it under the ``eval-`` options."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from amuro.core.fields import Settings, setting
from amuro.core.precision import dtype_setting, keyed, resolve_dtype
from amuro.core.protocol import protocol
from amuro.core.shared_settings import protocol_setting
from amuro.core.values import batch_size_value

CLASSIFICATION_METHODS = ("next-token", "loglik", "generate")
STOPS = ("default", "none")
DEMOS = ("train", "first-k")


def _protocol_decides(help: str, choices: tuple[str, ...]):
    """A setting that, when not given, takes the protocol's value (``demo_source``, ``stop_rule``)."""
    return setting(None, help, choices=choices, empty="the protocol's")


@dataclass
class EvalSettings(Settings):
    """How a cell is scored: prompts, scoring method, items and the bootstrap."""

    entry_point: ClassVar[str] = "eval"

    shots: int = setting(4, "Demonstrations per prompt.", minimum=0)
    method: str = setting(
        "next-token", "Classification scoring: next-token, loglik or generate.", choices=CLASSIFICATION_METHODS
    )
    max_examples: int | None = setting(
        None, "Items scored per cell, a sample seeded by --seed (the same for every model).", minimum=1, empty="all"
    )
    batch_size: str | int | None = setting(
        None,
        "Items per forward pass: a positive whole number, or 'auto' (the "
        "largest that fits the device, halved on out-of-memory).",
        key=False,
        empty="auto on a GPU, 16 on a CPU",
    )
    bootstrap: int = setting(3000, "Bootstrap resamples for the 95% interval.", minimum=1)
    max_new_tokens: int = setting(60, "Generation budget of generation tasks.", minimum=1)
    stop: str | None = _protocol_decides(
        "'default' (a blank line and the template's opening at a line start) or 'none' (the study's).", STOPS
    )
    demos: str | None = _protocol_decides(
        "'train' (seeded, from the train split) or 'first-k' (the first items of the scored split).", DEMOS
    )
    seed: int = setting(0, "Seed of the item sample, demonstrations and bootstrap.")
    protocol: str = protocol_setting()
    dtype: str = dtype_setting("score")

    @property
    def demo_source(self) -> str:
        return self.demos or protocol(self.protocol).demonstrations

    @property
    def stop_rule(self) -> str:
        return self.stop or protocol(self.protocol).stop

    def effective_values(self) -> dict[str, object]:
        dtype = resolve_dtype(self.dtype, self.protocol, "score")
        return {**super().effective_values(), "demos": self.demo_source, "stop": self.stop_rule, "dtype": dtype}

    def key_settings(self) -> dict[str, object]:
        return keyed(super().key_settings(), resolve_dtype(self.dtype, self.protocol, "score"))

    def resolve(self) -> None:
        self.batch_size = batch_size_value(self.batch_size)

    def cell_key_settings(self, kind: str) -> dict[str, object]:
        """The settings that change the scores of a dataset of this kind (a method only matters for
        classification; generation budgets only for generated answers)."""
        values = self.key_settings()
        if kind != "classification":
            values.pop("method")
        if kind == "multiple_choice" or (kind == "classification" and self.method != "generate"):
            values.pop("max_new_tokens")
            values.pop("stop")
        elif kind == "classification":
            values.pop("max_new_tokens")  # label generation has its own budget
        if kind == "multiple_choice" and not self.demos and protocol(self.protocol).mc_demonstrations == "catwalk":
            values["demos"] = "catwalk"
        if self.max_examples:
            values["item_sample"] = "seeded"  # a seeded sample of the rows, no longer the first ones
        return values
