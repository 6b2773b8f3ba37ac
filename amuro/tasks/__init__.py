"""Dataset catalogue, prompt formats, loading and the synthetic suite."""

from amuro.tasks.formats import FORMATS, few_shot_prefix, formats_for, render, stop_strings
from amuro.tasks.loading import load_examples
from amuro.tasks.registry import CATALOGUE, get, register, relation, resolve
from amuro.tasks.spec import DatasetSpec, Example

__all__ = [
    "CATALOGUE", "FORMATS", "DatasetSpec", "Example", "few_shot_prefix", "formats_for", "get",
    "load_examples", "register", "relation", "render", "resolve", "stop_strings",
]
