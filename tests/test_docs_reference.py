"""The docs' generated page and links: the CLI reference is what the settings generate, and the README's links
into the docs lead to files that exist."""

import importlib.util
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _generator():
    spec = importlib.util.spec_from_file_location("cli_reference", ROOT / "scripts" / "cli_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_reference_is_generated_from_the_settings():
    generator = _generator()
    assert generator.main(["--check"]) == 0, "docs/reference/cli.md is stale: run `python scripts/cli_reference.py`"
    page = generator.PAGE.read_text()
    from amuro.cli import main, options_of
    from amuro.core.settings import ENTRY_POINT_SETTINGS

    for name, cls in ENTRY_POINT_SETTINGS.items():
        assert f"## `amuro {name}`" in page
        for option in options_of(cls):
            assert f"| `{option.flag}` | `{option.name}` |" in page
    assert all(f"### `amuro {name}`" in page for name in set(main.commands) - set(ENTRY_POINT_SETTINGS))


def test_readme_and_docs_links_lead_to_files():
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    broken = []
    for page in pages:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if not re.match(r"[a-z]+:", target) and not (page.parent / target).exists():
                broken.append(f"{page.relative_to(ROOT)}: {target}")
    assert broken == []
