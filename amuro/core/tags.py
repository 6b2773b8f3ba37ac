"""Tag values of the tracking contract (docs/tracking-contract.md) and search filters over them; the names
themselves are ``amuro_contract``'s."""

from __future__ import annotations

from collections.abc import Mapping

from amuro.core.errors import UserError
from amuro_contract import CONTRACT_TAGS, PREFIX, Tag  # noqa: F401  (the contract's names, used as tags.Tag, ...)


def tag_value(value: object) -> str:
    """Contract tag values are strings; numbers in plain decimal, unknowns empty."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


# Tags beside the contract's that a run writer sets with them: the protocol and a tuned model's training seed.
WRITTEN_WITH = ("protocol", "train_seed")


def contract_tags(**values: object) -> dict[str, str]:
    """``contract_tags(kind="eval", step=400)`` -> ``{"amuro.kind": "eval", "amuro.step": "400"}``; also takes
    ``protocol`` and ``train_seed``."""
    unknown = set(values) - {*CONTRACT_TAGS, *WRITTEN_WITH}
    if unknown:
        raise ValueError(f"not contract tags: {sorted(unknown)}")
    return {PREFIX + name: tag_value(value) for name, value in values.items()}


def quoted(value: object) -> str:
    """A string literal of MLflow's search grammar (which has no escapes: the other quote is used)."""
    text = tag_value(value)
    if "'" not in text:
        return f"'{text}'"
    if '"' not in text:
        return f'"{text}"'
    raise UserError(f"cannot search for {text!r}: a value holding both kinds of quote cannot be searched for")


def tag_filter(tags: Mapping[str, object] | None = None, *, status: str | None = None) -> str:
    """``tags.`amuro.kind` = 'eval' and ... and attributes.status = 'FINISHED'`` from full tag names."""
    terms = [f"tags.`{name}` = {quoted(value)}" for name, value in (tags or {}).items()]
    if status:
        terms.append(f"attributes.status = {quoted(status)}")
    return " and ".join(terms)
