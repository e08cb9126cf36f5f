"""What cached tasks share: where their results persist, and when a cached result is not
trusted (the files it vouches for are gone from the store)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prefect.futures import PrefectFuture
from prefect.tasks import Task

RESULTS_BLOCK = "sma-results"


def s3_result_storage(store_url: str) -> str | None:
    """The saved S3Bucket block for task results when the store is on S3 (so caches are
    shared across workers); None keeps Prefect's local default."""
    if not store_url.startswith("s3://"):
        return None
    try:
        from prefect_aws import S3Bucket

        S3Bucket.load(RESULTS_BLOCK)
    except Exception:  # no block saved on this API (run `python -m deployments.setup`)
        return None
    return f"s3-bucket/{RESULTS_BLOCK}"


def with_result_storage(task: Task[..., Any], store_url: str) -> Task[..., Any]:
    """``task`` persisting its results where every worker reads them (``s3_result_storage``)."""
    storage = s3_result_storage(store_url)
    return task.with_options(result_storage=storage) if storage else task


def cached_or_rerun(
    task: Task[..., Any], future: PrefectFuture[Any], *args: Any, usable: Callable[[Any], bool]
) -> tuple[Any, bool]:
    """(result, served from cache). A result served from the cache stands only if
    ``usable(result)``; otherwise the task runs again now, with ``refresh_cache``."""
    result = future.result()
    state = future.state
    if state.name != "Cached":
        return result, False
    if usable(result):
        return result, True
    return task.with_options(refresh_cache=True)(*args), False
