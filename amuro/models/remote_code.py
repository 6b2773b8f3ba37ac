"""Repositories that ship their own modelling code (``auto_map`` in config.json, as ``allenai/OLMo-1B``'s
``hf_olmo`` classes): they load only when the user trusts that code."""

from __future__ import annotations

import re

from amuro.core.errors import UserError

# OLMo's first releases ship hf_olmo's code; each has a transformers-native conversion named NAME-hf.
_CONVERTED = re.compile(r"^allenai/OLMo-\d+B(-\d{4})?$")


def remote_model_class(location: str, revision: str | None) -> str | None:
    """The repository's own causal-LM class (``auto_map``), or None when transformers has the model."""
    from transformers import PretrainedConfig

    try:
        config, _ = PretrainedConfig.get_config_dict(location, revision=revision)
    except Exception:  # no config to read: from_pretrained names the problem when it loads
        return None
    auto_map = config.get("auto_map") or {}
    return auto_map.get("AutoModelForCausalLM")


def require_trust(location: str, revision: str | None, series: str, trusted: bool) -> None:
    """A one-line error when the checkpoint needs its repository's code and ``--trust-remote-code`` is absent."""
    if trusted:
        return
    remote = remote_model_class(location, revision)
    if remote is None:
        return
    converted = f", or use {series}-hf (its conversion to transformers)" if _CONVERTED.match(series) else ""
    raise UserError(
        f"{series} needs its repository's own model code ({remote}): pass --trust-remote-code to run it{converted}"
    )
