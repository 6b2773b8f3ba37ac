"""Deprecated calls: a pretrain-eval cell makes none, and one made from amuro's code fails the suite."""

import logging
import warnings
from pathlib import Path

import pytest
import torch
from own_warnings import blamed_past_module_dispatch
from transformers import AutoModelForCausalLM, OlmoConfig

import amuro
import analysis
from amuro.commands.pretrain_eval import pretrain_eval
from amuro.core.settings import EvalSettings, PretrainEvalSettings

OUR_FOLDERS = tuple(str(Path(package.__file__).parent) for package in (amuro, analysis))


def describe(warning) -> str:
    return f"{warning.category.__name__} at {warning.filename}:{warning.lineno}: {warning.message}"


def defined_in(module: str, source: str, name: str):
    """A function whose frames belong to ``module``, as if that module's file defined it."""
    namespace = {"__name__": module, "warnings": warnings}
    exec(compile(source, f"<{module}>", "exec"), namespace)
    return namespace[name]


OLD_CACHE_ARGUMENT = (
    "def forward_with_the_old_cache_argument(model, ids):\n    return model(input_ids=ids, past_key_values=None)\n"
)


def with_the_old_cache_argument_from(module: str):
    return defined_in(module, OLD_CACHE_ARGUMENT, "forward_with_the_old_cache_argument")


@pytest.fixture(scope="module")
def tiny_olmo():
    config = OlmoConfig(
        vocab_size=32,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=32,
    )
    return AutoModelForCausalLM.from_config(config).eval(), torch.tensor([[1, 2, 3]])


def test_a_pretrain_eval_cell_prints_no_future_warning_and_calls_nothing_deprecated(
    tracking_uri, small_series, monkeypatch
):
    # transformers also reports some deprecations through its logger, once per process
    logged: list[str] = []
    monkeypatch.setattr(
        logging.Logger, "warning_once", lambda self, message, *args, **kwargs: logged.append(message), raising=False
    )
    settings = PretrainEvalSettings(
        experiment="warnings",
        model=small_series,
        checkpoints="1",
        datasets="synth-nli,synth-summary",
        formats="default",
        eval=EvalSettings(max_examples=3, shots=1, bootstrap=50, max_new_tokens=4),
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with blamed_past_module_dispatch():
            pretrain_eval(settings)
    # Python shows every FutureWarning to users; DeprecationWarnings only concern the code that made the call
    # (those inside mlflow's own pandas and SQLAlchemy calls are mlflow's).
    assert [describe(w) for w in caught if issubclass(w.category, FutureWarning)] == []
    assert [
        describe(w) for w in caught if issubclass(w.category, DeprecationWarning) and w.filename.startswith(OUR_FOLDERS)
    ] == []
    assert [message for message in logged if "deprecat" in str(message).lower()] == []


@pytest.mark.parametrize("module", ["amuro.scoring.scorer_draft", "analysis.draft"])
def test_an_old_forward_argument_passed_by_our_code_fails_the_test(tiny_olmo, module):
    model, ids = tiny_olmo
    with pytest.raises(FutureWarning, match="past_key_values"):
        with_the_old_cache_argument_from(module)(model, ids)


def test_a_deprecated_call_made_by_our_code_fails_the_test():
    library_call = defined_in(
        "somelibrary.api",
        "def old_api():\n    warnings.warn('old_api is deprecated', DeprecationWarning, stacklevel=2)\n",
        "old_api",
    )
    caller = defined_in("amuro.data.draft", "def load():\n    old_api()\n", "load")
    caller.__globals__["old_api"] = library_call
    with pytest.raises(DeprecationWarning, match="old_api is deprecated"):
        caller()


def test_a_library_passing_an_old_argument_itself_only_warns(tiny_olmo):
    model, ids = tiny_olmo
    with warnings.catch_warnings(record=True) as caught:
        with blamed_past_module_dispatch():
            with_the_old_cache_argument_from("peft.tuners.draft")(model, ids)
            with pytest.raises(FutureWarning, match="past_key_values"):
                with_the_old_cache_argument_from("amuro.models.draft")(model, ids)
    assert [(w.category, w.filename) for w in caught] == [(FutureWarning, "<peft.tuners.draft>")]
