"""Typed settings per entry point, validated on construction, and the canonical run key settings."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from amuro.errors import UserError


def require(condition: bool, message: str) -> None:
    if not condition:
        raise UserError(message)


@dataclass
class Settings:
    """Base for entry point settings: ``key_fields`` lists what changes results (the run key)."""

    key_fields: tuple[str, ...] = ()

    def key_settings(self) -> dict[str, object]:
        values = asdict(self)
        return {name: values[name] for name in self.key_fields}

    def params(self) -> dict[str, object]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "key_fields"}


@dataclass
class PretrainConfig(Settings):
    """Train a small OLMo-architecture model from scratch and save a checkpoint series."""

    experiment: str | None = None
    series: str = "tiny"
    steps: int = 600
    num_checkpoints: int = 5
    seed: int = 0
    corpus: str | None = None
    vocab_size: int = 2048
    hidden_size: int = 128
    layers: int = 4
    heads: int = 4
    seq_len: int = 128
    batch_size: int = 16
    lr: float = 3e-3
    key_fields: tuple[str, ...] = (
        "series", "steps", "num_checkpoints", "seed", "corpus", "vocab_size", "hidden_size", "layers",
        "heads", "seq_len", "batch_size", "lr",
    )

    def __post_init__(self) -> None:
        self.corpus = self.corpus or None
        require(bool(self.series) and "/" not in self.series and not self.series.startswith("."),
                f"series name {self.series!r} is not valid: use a plain name such as 'tiny'")
        require(self.steps >= 1, f"steps must be at least 1, got {self.steps}")
        require(1 <= self.num_checkpoints <= self.steps,
                f"num_checkpoints must be between 1 and steps ({self.steps}), got {self.num_checkpoints}")
        require(self.vocab_size >= 300, f"vocab_size must be at least 300 (bytes + merges), got {self.vocab_size}")
        require(self.hidden_size % self.heads == 0,
                f"hidden_size ({self.hidden_size}) must be divisible by heads ({self.heads})")
        for name in ("hidden_size", "layers", "heads", "seq_len", "batch_size"):
            require(getattr(self, name) >= 1, f"{name} must be at least 1, got {getattr(self, name)}")
        require(self.lr > 0, f"lr must be positive, got {self.lr}")
