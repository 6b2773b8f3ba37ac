"""Settings as given from outside: the options (CLI flags, MLproject parameters) and config files.

Every option is a settings field, nested settings flattened under their prefix. A config file (``--config``)
holds settings as YAML (JSON is YAML): a mapping of option names, or of field names with nested settings as
mappings (what ``Settings.to_dict`` writes), or the document ``Settings.to_json`` writes. Its values come
first and the options given explicitly go on top, as LitGPT and TRL layer theirs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import yaml

from amuro.core.errors import UserError, unknown
from amuro.core.fields import Declared, Settings, declared, field_types, is_settings

Path_ = tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Option:
    """One CLI option / MLproject parameter: a settings field, possibly inside a nested settings object."""

    path: Path_  # ("eval", "shots") for a nested field
    name: str  # option name without dashes, underscores: "eval_shots"
    hint: object
    meta: Declared
    default: object

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def default_text(self) -> str:
        if self.default is None:
            return ""
        if isinstance(self.default, bool):
            return "true" if self.default else "false"
        return str(self.default)


def declared_defaults(cls: type[Settings]) -> dict[str, object]:
    """Each field's declared default, before ``resolve`` fills in the ones that depend on others (a preset's
    epochs, a protocol's seed): an option not given must stay unset, not take another setting's resolution."""
    values: dict[str, object] = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            values[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            value = f.default_factory()
            values[f.name] = value.to_dict() if isinstance(value, Settings) else value
    return values


def options_of(
    cls: type[Settings],
    prefix: str = "",
    path: Path_ = (),
    defaults=None,
    shadowed: frozenset[str] = frozenset(),
    renamed: tuple[tuple[str, str], ...] = (),
) -> Iterator[Option]:
    """The options of a settings class, nested settings flattened under their option prefix (flat ones under
    none); a nested field that the outer class also declares (finetune's ``protocol``) is set through the
    outer one only."""
    defaults = defaults if defaults is not None else declared_defaults(cls)
    hints = field_types(cls)
    covering = frozenset(f.name for f in dataclasses.fields(cls) if declared(f).covers_nested)
    names = dict(renamed)
    for f in dataclasses.fields(cls):
        meta = declared(f)
        if not meta.cli or f.name in shadowed:
            continue
        hint, value = hints[f.name], defaults[f.name]
        own = names.get(f.name) or (meta.option if meta.option is not None else f.name)
        if is_settings(hint):
            inner = f"{prefix}{own}_" if own and not meta.flat else prefix
            yield from options_of(hint, inner, (*path, f.name), value, covering, meta.renamed)
        else:
            yield Option((*path, f.name), prefix + own, hint, meta, value)


def settings_from_options(cls: type[Settings], given: dict[str, object], config: str | Path | None = None):
    """A settings object from a config file's values, then the options given on top (None: not given)."""
    values = declared_defaults(cls)
    entries = config_entries(cls, config) if config else {}
    for option in options_of(cls):
        if given.get(option.name) is not None:
            entries[option.path] = given[option.name]
    for path, value in entries.items():
        target = values
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = value
    return cls.from_dict(values)


def config_entries(cls: type[Settings], path: str | Path) -> dict[Path_, object]:
    """The settings a config file gives, by field path; any other content is a one-line error."""
    where = f"config file {path}"
    try:
        document = yaml.safe_load(Path(path).read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark else ""
        raise UserError(
            f"{where} is not YAML ({getattr(exc, 'problem', None) or 'unreadable'}{at}): write one "
            "`option: value` line per setting"
        ) from None
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise UserError(
            f"{where} holds a {type(document).__name__}, not a mapping of settings: write one "
            "`option: value` line per setting"
        )
    if "entry_point" in document:
        if document["entry_point"] != cls.entry_point:
            raise UserError(
                f"{where} is for {document['entry_point']!r}, not {cls.entry_point!r}: give it to "
                f"`amuro {document['entry_point']}`"
            )
        extra = sorted(set(document) - {"entry_point", "settings"})
        if extra:
            raise UserError(f"{where} names its entry point, so it holds only `settings`, not {extra[0]!r}")
        document = document.get("settings") or {}
        if not isinstance(document, dict):
            raise UserError(f"{where}: its settings are a {type(document).__name__}, not a mapping of settings")
    return _entries(cls, document, (), where, {o.name: o.path for o in options_of(cls)})


def _entries(cls: type[Settings], mapping: dict, path: Path_, where: str, options: dict[str, Path_]) -> dict:
    """Field names (nested settings as mappings) or, at the top, option names -> field paths."""
    found: dict[Path_, object] = {}
    hints = field_types(cls)
    fields = {f.name for f in dataclasses.fields(cls)}
    for key, value in mapping.items():
        name = str(key).replace("-", "_")
        nested = name in fields and is_settings(hints[name])
        if nested and isinstance(value, dict):
            found.update(_entries(hints[name], value, (*path, name), where, {}))
        elif name in fields and not nested:
            found[(*path, name)] = value
        elif name in options:
            found[options[name]] = value
        elif nested:
            raise UserError(f"{name} in {where} takes a mapping of {hints[name].entry_point} settings, got {value!r}")
        else:
            raise UserError(f"{where}: {unknown(f'{cls.entry_point} setting', str(key), [*options, *fields]).message}")
    return found
