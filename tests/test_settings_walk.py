"""Every setting, walked from the settings classes, reaches what it must: the run key (or it is declared
key-free), the run's params, a CLI option that sets it, and an MLproject parameter. Adding a setting touches
its field and its use, nothing else; a field that one of these misses fails here."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from amuro.cli import main
from amuro.core.fields import Settings, base_type, declared, field_types, is_settings
from amuro.core.options import options_of, settings_from_options
from amuro.core.settings import ENTRY_POINT_SETTINGS, EvalSettings
from amuro.core.shared_settings import SeriesSettings
from amuro.core.train_settings import PRESETS, load_preset

ROOT = Path(__file__).resolve().parents[1]
CELL_KINDS = ("classification", "multiple_choice", "generation")


def leaf_fields(cls: type[Settings], path=(), covered=frozenset()):
    """(path, declared, in the run key) of every leaf field; fields a covering outer field sets are left out."""
    hints = field_types(cls)
    covering = frozenset(f.name for f in dataclasses.fields(cls) if declared(f).covers_nested)
    for f in dataclasses.fields(cls):
        if f.name in covered:
            continue
        if is_settings(hints[f.name]):
            for inner, meta, key in leaf_fields(hints[f.name], (*path, f.name), covering):
                yield inner, meta, key and declared(f).key
        else:
            yield (*path, f.name), declared(f), declared(f).key


def other_value(option) -> str:
    """A valid value other than the option's default, as text."""
    kind, _ = base_type(option.hint)
    meta, default = option.meta, option.default
    if meta.choices:
        return [c for c in meta.choices if c != default][-1]
    if kind is bool:
        return "false" if default else "true"
    if kind is int or (kind is str and option.name.endswith("batch_size")):
        return str(default * 2 if default else max(3, int(meta.minimum or 0)))
    if kind is float:
        return str(default * 2 if default else 0.5)
    return "2"


def at(settings: Settings, path: tuple[str, ...]):
    for part in path:
        settings = getattr(settings, part)
    return settings


def run_key_input(settings: Settings) -> object:
    if isinstance(settings, EvalSettings):  # an eval cell's key holds the settings of its kind of dataset
        return [settings.cell_key_settings(kind) for kind in CELL_KINDS]
    return settings.key_settings()


def cases():
    for entry_point, cls in ENTRY_POINT_SETTINGS.items():
        yield pytest.param(cls, id=entry_point)
    yield pytest.param(EvalSettings, id="eval")


@pytest.mark.parametrize("cls", cases())
def test_every_field_reaches_its_option_the_run_key_and_the_params(cls):
    options = {option.path: option for option in options_of(cls)}
    fields = list(leaf_fields(cls))
    assert {path for path, meta, _ in fields if meta.cli} == set(options), "a field without its option"
    default = cls()
    for path, meta, key in fields:
        option = options[path]
        changed = settings_from_options(cls, {option.name: other_value(option)})
        assert at(changed, path) != at(default, path), f"{option.flag} does not set {'.'.join(path)}"
        assert changed.params() != default.params(), f"{'.'.join(path)} is not among the run params"
        if key:
            assert run_key_input(changed) != run_key_input(default), f"{'.'.join(path)} misses the run key"


@pytest.mark.parametrize("entry_point", list(ENTRY_POINT_SETTINGS))
def test_every_option_is_an_mlproject_parameter(entry_point):
    project = yaml.safe_load((ROOT / "MLproject").read_text())["entry_points"][entry_point]
    cli = {p.name for p in main.commands[entry_point].params} - {"config"}
    for option in options_of(ENTRY_POINT_SETTINGS[entry_point]):
        assert option.name in cli
        if option.meta.secret:  # mlflow run logs its parameters as given: a password would be stored
            assert option.name not in project["parameters"]
            continue
        assert option.name in project["parameters"]
        assert f"{option.flag} {{{option.name}}}" in project["command"]


@pytest.mark.parametrize(
    "entry_point", [name for name, cls in ENTRY_POINT_SETTINGS.items() if issubclass(cls, SeriesSettings)]
)
def test_every_entry_point_reading_one_series_refuses_a_blank_model_in_one_line(entry_point):
    result = CliRunner().invoke(main, [entry_point, "--model", " "])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == ["Error: model must name a series: 'tiny', a folder, or a hub repo id"]


def test_presets_are_yaml_files_setting_only_what_a_preset_may():
    assert set(PRESETS) == {"tiny", "amuro-char"}
    assert load_preset("amuro-char").overrides == {"it": {"epochs": 5}, "xsum": {"lr": 2e-7}}
    assert load_preset("tiny").settings["lr"] == 3e-3 and load_preset("tiny").overrides["sweep"] == {"epochs": 1}
