"""A checkpoint's parameter count, from its config alone: the model is built on the meta device, so no weights
are read or allocated (for a hub checkpoint, only its ``config.json`` is fetched)."""

from __future__ import annotations

from functools import cache


@cache
def parameter_count(location: str, revision: str | None = None, trust_remote_code: bool = False) -> int | None:
    """Parameters of the model at ``location`` (a folder or a hub repo, at ``revision``); None when its config
    cannot be read or built (the count is a label of the run, never a reason to stop it). A repository's own
    code runs only when trusted (untrusted, transformers would ask on the terminal)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    kwargs = {"revision": revision} if revision else {}
    try:
        config = AutoConfig.from_pretrained(location, trust_remote_code=trust_remote_code, **kwargs)
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(config, trust_remote_code=trust_remote_code)
    except Exception:  # transformers raises many types for a config it cannot read or build
        return None
    return sum(p.numel() for p in model.parameters())


def checkpoint_parameters(ckpt) -> int | None:
    """``parameter_count`` of a ``amuro.models.series.Checkpoint``."""
    return parameter_count(ckpt.location, ckpt.hub_revision, ckpt.trust_remote_code)
