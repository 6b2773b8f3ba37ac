"""``amuro datasets``: the catalogue as a table, with whether each dataset can be read offline."""

from __future__ import annotations

from collections.abc import Sequence

from amuro.data.registry import CATALOGUE
from amuro.data.sources import availability
from amuro.data.spec import DatasetSpec


def _sizes(spec: DatasetSpec) -> str:
    if spec.source != "synthetic":
        return ", ".join(f"{role}={split}" for role, split in spec.splits.items())
    from amuro.data.loading import load_examples

    return ", ".join(f"{role}={len(load_examples(spec, role))}" for role in spec.splits)


def catalogue_table(spec_files: Sequence[str] = ()) -> str:
    if spec_files:
        from amuro.data.specfile import load_spec_files

        load_spec_files(spec_files)
    rows = [("name", "task", "type", "metric", "source", "offline", "splits")]
    for spec in CATALOGUE.values():
        source = (
            spec.source
            if spec.source == "synthetic"
            else f"{spec.source}:{spec.path}" + (f" [{spec.config}]" if spec.config else "")
        )
        rows.append((spec.name, spec.task, spec.kind, spec.metric, source, availability(spec), _sizes(spec)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[-1] for row in rows)
