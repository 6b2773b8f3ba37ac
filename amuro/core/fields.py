"""Settings declared once: a dataclass field carries its default, help, validation and run-key membership.

``setting(...)`` makes such a field; ``Settings`` checks every field from that metadata on construction,
resolves the values left to other settings, validates across fields, builds the run key from the fields that
change results, and writes itself as JSON (the sweep hands each cell its settings object this way). The CLI
options, config files and MLproject parameters are read by the same fields (``amuro.core.options``), so a
setting is spelled in exactly one place.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from types import UnionType
from typing import Any, ClassVar

from amuro.core.credentials import redact
from amuro.core.errors import UserError, unknown
from amuro.core.run_keys import run_key

EMPTY_WORDS = ("", "none", "all", "preset", "default")


@dataclass(frozen=True)
class Declared:
    """What a settings field declares besides its default."""

    help: str
    key: bool = True  # enters the run key
    choices: tuple[str, ...] | None = None
    minimum: float | None = None
    above: bool = False  # the minimum itself is not allowed
    empty: str | None = None  # what leaving it empty (None) means; None: it may not be empty
    flag: bool = False  # a bool given alone (``--lora``) or as true/false
    option: str | None = None  # CLI option name when not derived from the field name
    cli: bool = True  # False: set by code only, never a CLI option
    covers_nested: bool = False  # also sets the field of that name in nested settings (no own option)
    # May hold credentials (a tracking URI with a password): logged redacted, and no MLproject parameter, since
    # ``mlflow run`` logs every parameter as it is given.
    secret: bool = False
    # Nested settings only: ``flat`` makes their fields the parent's own (options, run key and params without a
    # prefix); ``renamed`` gives some of them another name there, where the plain one is taken.
    flat: bool = False
    renamed: tuple[tuple[str, str], ...] = ()

    def outer_names(self, values: dict[str, object]) -> dict[str, object]:
        """A flat nested settings' values under the names they have in the parent."""
        names = dict(self.renamed)
        return {names.get(name, name): value for name, value in values.items()}


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


NOUNS = {bool: "true or false", int: "whole number", float: "number", str: "text"}


def parse_value(name: str, value: Any, hint: Any, meta: Declared) -> Any:
    """A value as given (text from the CLI or MLproject, a YAML scalar, a Python value) -> the field's type;
    empty words give None where allowed; anything else is a one-line error."""
    kind, optional = base_type(hint)
    empty_words = EMPTY_WORDS if kind is not str else ("",)
    if value is None or (optional and isinstance(value, str) and value.strip().lower() in empty_words):
        if value is None and not optional:
            raise UserError(f"{name} needs a value: it takes a {NOUNS.get(kind, 'value')}")
        return None
    text = value.strip() if isinstance(value, str) else value
    try:
        if kind is bool and isinstance(text, (bool, int, str)):
            return _boolean(name, text)
        if kind is int and isinstance(text, (int, float, str)) and not isinstance(text, bool):
            number = float(text) if isinstance(text, float) else int(text)
            if float(number).is_integer():
                return int(number)
        if kind is float and isinstance(text, (int, float, str)) and not isinstance(text, bool):
            return float(text)
        if kind is str and isinstance(text, (int, float, str)) and not isinstance(text, bool):
            return str(text)
    except ValueError:
        pass
    extra = " or nothing (left empty: " + meta.empty + ")" if optional and meta.empty and kind is not str else ""
    raise UserError(f"{name} takes a {NOUNS.get(kind, 'value')}{extra}, got {value!r}")


def _boolean(name: str, value: bool | int | str) -> bool:
    word = str(value).strip().lower()
    if word in ("1", "true", "yes", "on"):
        return True
    if word in ("0", "false", "no", "off"):
        return False
    raise UserError(f"{name} takes true or false, got {value!r}")


@dataclass
class Settings:
    """Base of every entry point's settings: on construction each field is read and checked, then ``resolve``
    fills in what was left to other settings, then ``validate`` checks across fields."""

    entry_point: ClassVar[str] = ""

    def __post_init__(self) -> None:
        hints = field_types(type(self))
        for f in fields(self):
            hint, meta, value = hints[f.name], declared(f), getattr(self, f.name)
            if is_settings(hint):
                if isinstance(value, dict):
                    setattr(self, f.name, hint.from_dict(value))
                elif not isinstance(value, hint):
                    raise UserError(f"{f.name} takes a mapping of {hint.entry_point} settings, got {value!r}")
                continue
            value = parse_value(f.name, value, hint, meta)
            setattr(self, f.name, value)
            check(f.name, value, meta)
        self.resolve()
        self.validate()

    def resolve(self) -> None:
        """Fill in the values left to other settings (a preset, the protocol); the per-field checks already ran."""

    def validate(self) -> None:
        """Checks across fields, after ``resolve``; never changes a value."""

    def effective_values(self) -> dict[str, object]:
        """Each field's value as it takes effect; a subclass fills in the ones another setting decides."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def key_settings(self) -> dict[str, object]:
        """The settings that change results, nested settings as their own key settings (flat ones merged)."""
        values: dict[str, object] = {}
        effective = self.effective_values()
        for f in fields(self):
            meta = declared(f)
            if not meta.key:
                continue
            value = effective[f.name]
            if isinstance(value, Settings) and meta.flat:
                values.update(meta.outer_names(value.key_settings()))
            else:
                values[f.name] = value.key_settings() if isinstance(value, Settings) else value
        return values

    def run_key(self, kind: str, versions: Mapping[str, object] | None = None, **context: object) -> str:
        """The key of a ``kind`` run made with these settings: its key settings, with what else identifies the
        run (``context``: the series, the revisions, ...) on top, and the result versions it uses."""
        return run_key(kind, {**self.key_settings(), **context}, versions)

    def params(self) -> dict[str, object]:
        """Every setting, flat (nested ones as ``name.field``, flat nested ones as their own), as MLflow params."""
        flat: dict[str, object] = {}
        effective = self.effective_values()
        for f in fields(self):
            meta, value = declared(f), effective[f.name]
            if isinstance(value, Settings) and meta.flat:
                flat.update(meta.outer_names(value.params()))
            elif isinstance(value, Settings):
                flat.update({f"{f.name}.{k}": v for k, v in value.params().items()})
            elif meta.secret and isinstance(value, str):
                flat[f.name] = redact(value)
            else:
                flat[f.name] = value
        return flat

    def to_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        """The settings as a config file (``--config``) for this entry point."""
        return json.dumps({"entry_point": self.entry_point, "settings": self.to_dict()}, sort_keys=True)

    @classmethod
    def from_dict(cls, values: dict[str, object]):
        names = {f.name for f in fields(cls)}
        extra = sorted(set(values) - names)
        if extra:
            raise UserError(
                f"unknown {cls.entry_point or cls.__name__} setting {extra[0]!r}: valid: {', '.join(sorted(names))}"
            )
        return cls(**values)


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
