"""Where a flow's mapped tasks run (``SMA_TASK_RUNNER``): this process's threads, or a Dask
cluster through prefect-dask; and submitting again a task run whose worker died."""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import State
from prefect.exceptions import PrefectHTTPStatusError
from prefect.futures import PrefectFuture, as_completed
from prefect.logging import get_run_logger
from prefect.states import Crashed
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner
from prefect.tasks import Task

from core.config import DaskSettings
from core.errors import first_line
from core.settings import load_settings


def dask_runner(cfg: DaskSettings) -> TaskRunner:
    """A ``DaskTaskRunner`` on the scheduler at ``cfg.address``, or on a local cluster of
    ``cfg.workers`` processes. Dask does not rerun a task whose worker died
    (``allowed-failures`` 0 on a local cluster): the flow does, as a new task run
    (``finished``), so the retry policy lives in one place and shows in the UI."""
    import dask.config
    from prefect_dask.task_runners import DaskTaskRunner

    if cfg.address:
        return DaskTaskRunner(address=cfg.address)
    dask.config.set({"distributed.scheduler.allowed-failures": 0})
    logging.getLogger("distributed").setLevel(logging.WARNING)  # its INFO is per worker event
    return DaskTaskRunner(
        cluster_class="distributed.LocalCluster",
        cluster_kwargs={
            "n_workers": cfg.workers,
            "threads_per_worker": cfg.threads_per_worker,
            "processes": True,
            "dashboard_address": None,
            "silence_logs": logging.WARNING,
        },
    )


def thread_pool_size() -> int:
    """Prefect's ``PREFECT_TASKS_RUNNER_THREAD_POOL_MAX_WORKERS`` when set, else Python's own
    thread-pool default, min(32, cores + 4). Prefect's default is unbounded: every batch at
    once: a 5,000-symbol collection held 4.3 GB, against 0.6 GB on 6 threads in the same time."""
    from prefect.settings import get_current_settings

    configured = get_current_settings().tasks.runner.thread_pool_max_workers
    return configured or min(32, (os.cpu_count() or 1) + 4)


class SettingsTaskRunner(TaskRunner[PrefectFuture[Any]]):
    """The task runner the settings name, chosen when the flow starts (not when its module is
    imported), so one deployment runs on threads or on Dask by its environment alone."""

    def __init__(self) -> None:
        super().__init__()
        self._inner: TaskRunner[Any] | None = None

    def duplicate(self) -> SettingsTaskRunner:
        return type(self)()

    def __enter__(self) -> SettingsTaskRunner:
        settings = load_settings()
        if settings.task_runner == "dask":
            inner = dask_runner(settings.dask)
        else:
            inner = ThreadPoolTaskRunner(max_workers=thread_pool_size())
        self._inner = inner.__enter__()
        return super().__enter__()

    def __exit__(self, *exc: Any) -> None:
        if self._inner is not None:
            self._inner.__exit__(*exc)
        super().__exit__(*exc)

    def submit(  # type: ignore[override]
        self,
        task: Task[..., Any],
        parameters: dict[str, Any],
        wait_for: Any = None,
        dependencies: Any = None,
    ) -> PrefectFuture[Any]:
        assert self._inner is not None, "the task runner must be started before submitting"
        return self._inner.submit(task, parameters, wait_for, dependencies)


def finished(
    task: Task[..., Any],
    calls: Sequence[tuple[Any, ...]],
    resubmits: int | None = None,
    submitted: list[PrefectFuture[Any]] | None = None,
) -> Iterator[tuple[int, PrefectFuture[Any], State[Any]]]:
    """Submit ``task(*call)`` for every call; yield (index of the call, its future, its final
    state) as each finishes. A run lost with its worker (crashed, left unfinished, or its
    result lost with the worker even after it reported) is marked Crashed and submitted
    again as a new run, up to ``resubmits`` times (default: ``dask.resubmits``; threads lose
    a run only when the process dies, and then nothing resubmits); after that it is yielded
    with its Crashed state. Each future submitted is added to ``submitted`` when given: a
    caller that stops early ``settle``s them before it cleans up."""
    if resubmits is None:
        resubmits = load_settings().dask.resubmits
    submitted = [] if submitted is None else submitted
    pending = {task.submit(*call): (i, 0) for i, call in enumerate(calls)}
    submitted.extend(pending)
    while pending:
        for future in as_completed(list(pending)):
            i, tries = pending.pop(future)
            why = _lost(future)
            if why is None:
                yield i, future, future.state
                continue
            crashed = _mark_crashed(future, why)
            if tries < resubmits:
                get_run_logger().warning(
                    "task run %s crashed (%s): submitting it again (%d of %d)",
                    future.task_run_id,
                    crashed.message,
                    tries + 1,
                    resubmits,
                )
                again = task.submit(*calls[i])
                submitted.append(again)
                pending[again] = (i, tries + 1)
            else:
                yield i, future, crashed


def settle(futures: Iterable[PrefectFuture[Any]]) -> None:
    """Runs a caller no longer waits for (one failed): those not started on this process's
    threads are cancelled, the others waited for, so that none writes after the caller
    cleans up. Not for a stop signal: a running batch may take minutes."""
    for future in futures:
        wrapped = getattr(future, "wrapped_future", None)
        if isinstance(wrapped, concurrent.futures.Future) and wrapped.cancel():
            continue
        with contextlib.suppress(Exception):  # its own failure is its caller's to report
            future.wait()


def _lost(future: PrefectFuture[Any]) -> str | None:
    """Why a finished future's run was lost with its worker, or None when it has a result
    (its task may still have failed: that is its own final state)."""
    try:
        future.result(timeout=1, raise_on_failure=False)
    except Exception as exc:  # the runner has no state for it: a Dask worker died
        return f"{type(exc).__name__}: {first_line(str(exc))}"
    state = future.state
    if state.is_crashed():
        return state.message or "crashed"
    if not state.is_final():
        return "its worker stopped before reporting a final state"
    return None


def _mark_crashed(future: PrefectFuture[Any], why: str) -> State[Any]:
    """Record the lost run as Crashed in the API (it would stay Running there)."""
    crashed = Crashed(message=f"worker lost: {why}")
    with get_client(sync_client=True) as client:
        try:
            client.set_task_run_state(future.task_run_id, crashed, force=True)
        except PrefectHTTPStatusError as exc:  # 404: the worker died before its run's
            if exc.response.status_code != 404:  # first event reached the API
                raise
    return crashed
