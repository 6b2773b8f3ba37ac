"""Settings declared once: a dataclass field carries its default, help, validation and run-key membership.

``setting(...)`` makes such a field; ``Settings`` validates every field from that metadata on construction,
builds the run key from the fields that change results, and round-trips through JSON (the sweep hands each
cell its settings object this way). The CLI options and the MLproject parameters are generated from the
same fields (``amuro.cli``), so a setting is spelled in exactly one place.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from types import UnionType
from typing import Any, ClassVar

from amuro.core.errors import UserError, unknown

EMPTY_WORDS = ("", "none", "all", "preset", "default")


@dataclass(frozen=True)
class Declared:
    """What a settings field declares besides its default."""

    help: str
    key: bool = True                     # enters the run key
    choices: tuple[str, ...] | None = None
    minimum: float | None = None
    above: bool = False                  # the minimum itself is not allowed
    empty: str | None = None             # what leaving it empty (None) means; None: it may not be empty
    flag: bool = False                   # a bool given alone (``--lora``) or as true/false
    option: str | None = None            # CLI option name when not derived from the field name
    cli: bool = True                     # False: set by code only, never a CLI option
    covers_nested: bool = False          # also sets the field of that name in nested settings (no own option)


def setting(default: Any = dataclasses.MISSING, help: str = "", *, factory=None, **declared) -> Any:
    """A settings field; see ``Declared`` for the keywords."""
    meta = {"amuro": Declared(help=help, **declared)}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


def declared(f: dataclasses.Field) -> Declared:
    return f.metadata.get("amuro") or Declared(help="")


def field_types(cls) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def base_type(hint: Any) -> tuple[Any, bool]:
    """(``int``, True) for ``int | None``; (``int``, False) for ``int``."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return rest[0], True
    return hint, False


def is_settings(hint: Any) -> bool:
    return isinstance(hint, type) and issubclass(hint, Settings)


def parse_value(name: str, text: Any, hint: Any, meta: Declared) -> Any:
    """A value given as text (CLI, MLproject, JSON) -> the field's type; empty words give None where allowed."""
    kind, optional = base_type(hint)
    empty_words = EMPTY_WORDS if kind is not str else ("",)
    if text is None or (optional and isinstance(text, str) and text.strip().lower() in empty_words):
        return None
    if kind is bool:
        if isinstance(text, bool):
            return text
        word = str(text).strip().lower()
        if word in ("1", "true", "yes", "on"):
            return True
        if word in ("0", "false", "no", "off"):
            return False
        raise UserError(f"{name} takes true or false, got {text!r}")
    if kind in (int, float):
        try:
            return kind(text) if not isinstance(text, str) else kind(text.strip())
        except ValueError:
            noun = "whole number" if kind is int else "number"
            extra = f" or {meta.empty!r}" if optional and meta.empty else ""
            raise UserError(f"{name} takes a {noun}{extra}, got {text!r}") from None
    return str(text).strip() if isinstance(text, str) else text


@dataclass
class Settings:
    """Base of every entry point's settings; subclasses add ``validate`` for checks across fields."""

    entry_point: ClassVar[str] = ""

    def __post_init__(self) -> None:
        hints = field_types(type(self))
        for f in fields(self):
            hint, meta, value = hints[f.name], declared(f), getattr(self, f.name)
            if is_settings(hint):
                if isinstance(value, dict):
                    setattr(self, f.name, hint.from_dict(value))
                continue
            if isinstance(value, str):
                value = parse_value(f.name, value, hint, meta)
                setattr(self, f.name, value)
            check(f.name, value, meta)
        self.validate()

    def validate(self) -> None:
        """Checks across fields and defaults resolved from other fields; the per-field checks already ran."""

    def key_settings(self) -> dict[str, object]:
        """The settings that change results, nested settings as their own key settings."""
        values: dict[str, object] = {}
        for f in fields(self):
            if not declared(f).key:
                continue
            value = getattr(self, f.name)
            values[f.name] = value.key_settings() if isinstance(value, Settings) else value
        return values

    def params(self) -> dict[str, object]:
        """Every setting, flat (nested ones as ``name.field``), as MLflow params."""
        flat: dict[str, object] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Settings):
                flat.update({f"{f.name}.{k}": v for k, v in value.params().items()})
            else:
                flat[f.name] = value
        return flat

    def to_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps({"entry_point": self.entry_point, "settings": self.to_dict()}, sort_keys=True)

    @classmethod
    def from_dict(cls, values: dict[str, object]):
        names = {f.name for f in fields(cls)}
        extra = sorted(set(values) - names)
        if extra:
            raise UserError(f"unknown {cls.entry_point or cls.__name__} setting {extra[0]!r}: "
                            f"valid: {', '.join(sorted(names))}")
        return cls(**values)

    @classmethod
    def from_json(cls, text: str):
        try:
            document = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UserError(f"settings file is not JSON ({exc.msg}, line {exc.lineno}): write it with "
                            "Settings.to_json") from None
        if document.get("entry_point") != cls.entry_point:
            raise UserError(f"settings file is for {document.get('entry_point')!r}, not {cls.entry_point!r}: "
                            f"give it to `amuro {document.get('entry_point')}`")
        return cls.from_dict(document.get("settings", {}))


def check(name: str, value: Any, meta: Declared) -> None:
    """The per-field checks a ``Declared`` states."""
    if value is None:
        return
    if meta.choices is not None and value not in meta.choices:
        raise unknown(name.replace("_", "-"), str(value), meta.choices)
    if meta.minimum is not None and not isinstance(value, bool) and isinstance(value, (int, float)):
        if value < meta.minimum or (meta.above and value == meta.minimum):
            bound = "above" if meta.above else "at least"
            raise UserError(f"{name} must be {bound} {meta.minimum:g}, got {value}")


def require(condition: bool, message: str) -> None:
    if not condition:
        raise UserError(message)


def split_list(text: str | Sequence[str]) -> list[str]:
    """``"a, b,,c"`` -> ``["a", "b", "c"]``."""
    words = text.split(",") if isinstance(text, str) else text
    return [w.strip() for w in words if w.strip()]
