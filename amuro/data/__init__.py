"""Dataset catalogue, prompt formats, loading and the synthetic suite."""

from amuro.data import catalogue  # noqa: E402,F401  (registers the built-in datasets)
from amuro.data.formats import (
    FORMATS,
    few_shot_prefix,
    formats_for,
    render,
    stop_strings,
)
from amuro.data.loading import load_examples
from amuro.data.registry import CATALOGUE, get, register, relation, resolve
from amuro.data.spec import DatasetSpec, Example

__all__ = [
    "CATALOGUE",
    "FORMATS",
    "DatasetSpec",
    "Example",
    "few_shot_prefix",
    "formats_for",
    "get",
    "load_examples",
    "register",
    "relation",
    "render",
    "resolve",
    "stop_strings",
]
