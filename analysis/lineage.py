"""Dataset lineage: a tuned and a base run are comparable only if they scored the same rows.

Eval runs record the data they scored with ``mlflow.log_input(dataset, context="eval")``: a
name and a digest of the exact rows. Two runs that logged the same dataset name with
different digests scored different rows (another subsample, another revision), so their
difference is no gain. Runs without eval inputs are compared as before.
"""

from __future__ import annotations


class LineageWarning(UserWarning):
    """A tuned run and its base run scored different rows of one dataset; they are not paired."""


def digest_conflict(tuned_inputs: tuple, base_inputs: tuple) -> tuple[str, str, str] | None:
    """(dataset name, tuned digest, base digest) of the first dataset both runs logged with
    different digests, or None when they agree on every dataset they share."""
    base = dict(base_inputs)
    for name, digest in tuned_inputs:
        if name in base and base[name] != digest:
            return name, digest, base[name]
    return None


def refusal(tuned_run: str, base_run: str, conflict: tuple[str, str, str]) -> str:
    name, tuned_digest, base_digest = conflict
    return (
        f"tuned run {tuned_run} and base run {base_run} scored different rows of {name} "
        f"(digests {tuned_digest} and {base_digest}); not compared: score both on the same "
        f"rows (same dataset revision and subsample) to pair them"
    )
