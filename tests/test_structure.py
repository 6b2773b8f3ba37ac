"""The package's shape: layers without import cycles, and every setting spelled once."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import grimp
import pytest
import yaml
from click.testing import CliRunner

from amuro.cli import main, options_of, settings_from_options
from amuro.core.settings import ENTRY_POINT_SETTINGS, EvalSettings, FinetuneSettings, SweepSettings
from amuro.core.train_settings import TrainSettings

ROOT = Path(__file__).resolve().parents[1]


def _cycle(graph, modules) -> list[str] | None:
    """A module-level import cycle among ``modules``, as the list of modules on it, or None."""
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = "open"
        stack.append(module)
        for imported in sorted(graph.find_modules_directly_imported_by(module) & modules):
            if state.get(imported) == "open":
                return stack[stack.index(imported) :] + [imported]
            if imported not in state and (found := visit(imported)):
                return found
        state[module] = "done"
        stack.pop()
        return None

    for module in sorted(modules):
        if module not in state and (found := visit(module)):
            return found
    return None


def test_no_import_cycle_anywhere_in_amuro():
    graph = grimp.build_graph("amuro")
    modules = {m for m in graph.modules if m.startswith("amuro")}
    assert _cycle(graph, modules) is None


def test_the_analysis_reads_the_contract_without_torch_or_amuro():
    code = (
        "import sys, analysis.runs, analysis.published.importer, amuro_contract; "
        "assert not {'torch', 'amuro', 'transformers'} & set(sys.modules), sorted(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_files_stay_small():
    sizes = {
        path.relative_to(ROOT): len(path.read_text().splitlines())
        for folder in ("amuro", "amuro_contract", "analysis", "tests", "benchmarks")
        for path in (ROOT / folder).rglob("*.py")
    }
    assert {path for path, lines in sizes.items() if lines > 400} == set()
    assert Path("tests/test_structure.py") in sizes and Path("benchmarks/eval_throughput.py") in sizes


@pytest.mark.parametrize("entry_point", list(ENTRY_POINT_SETTINGS))
def test_cli_options_settings_fields_and_mlproject_agree(entry_point):
    cls = ENTRY_POINT_SETTINGS[entry_point]
    options = list(options_of(cls))
    names = [o.name for o in options]
    assert len(names) == len(set(names)), "two settings share one option name"
    command = main.commands[entry_point]
    cli_names = {p.name for p in command.params} - {"config"}
    assert cli_names == set(names)
    project = yaml.safe_load((ROOT / "MLproject").read_text())["entry_points"][entry_point]
    public = [o for o in options if not o.meta.secret]  # mlflow run would log a password as given
    assert {name: spec["default"] for name, spec in project["parameters"].items()} == {
        o.name: o.default_text for o in public
    }
    for option in public:
        assert f"{option.flag} {{{option.name}}}" in project["command"]
    assert settings_from_options(cls, {}) == cls()


def test_mlproject_is_generated_from_the_settings():
    result = CliRunner().invoke(
        main, ["mlproject", "--check", "--path", str(ROOT / "MLproject")], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output


def test_nested_settings_come_from_their_prefixed_options():
    tuned = settings_from_options(FinetuneSettings, {"eval_shots": "2", "eval_max_examples": "all", "eval": "false"})
    assert tuned.eval == EvalSettings(shots=2) and tuned.evaluate is False
    sweep = settings_from_options(SweepSettings, {"shots": "1"})
    assert sweep.eval.max_examples == 200 and sweep.eval.shots == 1


def test_settings_round_trip_through_a_config_file(tmp_path):
    settings = FinetuneSettings(dataset="synth-qgen", train=TrainSettings(lora=True), eval=EvalSettings(shots=1))
    (tmp_path / "cell.json").write_text(settings.to_json())
    assert settings_from_options(FinetuneSettings, {}, tmp_path / "cell.json") == settings
    assert settings.key_settings()["lora"] is True and "experiment" not in settings.key_settings()


def test_docs_layout_names_every_module():
    page = (ROOT / "docs" / "contributing.md").read_text()
    layout = page[page.index("## Settings and layout") : page.index("## Add a setting")]
    modules = {path.stem for path in (ROOT / "amuro").glob("*/*.py") if path.stem != "__init__"}
    assert {name for name in modules if f"`{name}`" not in layout} == set()
    layers = {path.name for path in (ROOT / "amuro").iterdir() if (path / "__init__.py").exists()}
    assert {name for name in layers if f"| `amuro/{name}/` |" not in layout} == set()
