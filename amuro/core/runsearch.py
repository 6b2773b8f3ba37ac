"""Run searches that page through every match: a tracking store answers at most a page of runs per request."""

from __future__ import annotations

from mlflow.tracking import MlflowClient

PAGE_SIZE = 1000


def search_all(
    client: MlflowClient,
    experiment_ids: list[str],
    query: str,
    *,
    order_by: list[str] | None = None,
    limit: int | None = None,
) -> list:
    """Every run matching ``query`` (at most ``limit``), one page after another."""
    runs, token = [], None
    while limit is None or len(runs) < limit:
        size = PAGE_SIZE if limit is None else min(PAGE_SIZE, limit - len(runs))
        page = client.search_runs(experiment_ids, query, order_by=order_by, max_results=size, page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            break
    return runs
