"""The command line every flow shares: arguments -> settings overrides -> validation -> the
flow -> one exit code (``core.errors.EXIT_CODES``).

Each ``flows/<name>.py`` declares its ``COMMAND`` and hands over to it before importing
Prefect, so ``--help`` and bad settings are answered without starting anything::

    COMMAND = Command("collect", __doc__, (Arg("--store", "store root", setting="store"), ...))
    if __name__ == "__main__":
        raise SystemExit(COMMAND.main())

The flow function (named like the module) takes the same parameters, for deployments;
``COMMAND.start(**params)`` turns them into validated settings (and checks the store's
layout version), and the module's
``report(result)`` (``report_text`` in ``flows.report``) is what the terminal shows on success.

A flag whose setting was renamed (``core.config.RENAMED``) keeps its old name, the old
setting's last part, as a hidden flag and as a flow parameter (``--batch-size``,
``batch_size=``): both still work, with a warning naming the new one, which wins when both
are given. The flow function keeps the old parameter as a deprecated keyword.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import logging
import os
import signal
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from core.errors import EXIT_CODES, InputError, NothingUsableError, UserFacingError, first_line
from deployments.server import use_project_server

if TYPE_CHECKING:
    from core.config import Settings
    from deployments.temporary import TemporaryServer


@dataclass(frozen=True)
class Arg:
    """One flag: where its value goes in the settings (``setting``, a dotted path) or, when
    None, a parameter of the flow only. ``choices`` is read from a registry when the parser
    is built; ``convert`` runs after parsing (its errors exit like any input error)."""

    flag: str
    help: str
    setting: str | None = None
    type: Callable[[str], Any] | None = None
    choices: Callable[[], list[str]] | None = None
    switch: bool = False
    default: Any = None
    convert: Callable[[Any], Any] | None = None

    @property
    def dest(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")


STORE = Arg("--store", "store root: a folder or s3://bucket/prefix", setting="store")
HORIZON = Arg(
    "--horizon",
    "one forecast horizon in trading days (default: each of SMA_FEATURES__HORIZONS in turn)",
    setting="features.horizon",
    type=int,
)


def each_horizon(
    settings: Settings, horizon: int | None, run: Callable[[int], dict[str, Any]]
) -> dict[str, Any] | None:
    """With several horizons configured and none named, ``{"horizons": {h: run(h)}}``: the
    step once per horizon, in order (each a subflow of its own); else None, and the caller
    runs its one horizon."""
    horizons = settings.features.horizons
    if horizon is not None or len(horizons) == 1:
        return None
    results, failed = {}, {}
    for h in horizons:  # one horizon's failure does not keep the others from running
        try:
            results[str(h)] = run(h)
        except Exception as exc:
            failed[h] = exc
    if failed:
        logging.getLogger(__name__).error(
            "horizon(s) %s failed (%s ran): %s",
            ", ".join(map(str, failed)),
            ", ".join(results) or "none",
            "; ".join(f"{h}: {first_line(str(e))}" for h, e in failed.items()),
        )
        raise next(iter(failed.values()))
    return {"horizons": results}


def per_horizon(report: Callable[[dict[str, Any]], str], result: dict[str, Any]) -> str:
    """A step's terminal text: its ``report``, once per horizon when it ran for several."""
    if set(result) != {"horizons"}:
        return report(result)
    return "\n\n".join(f"# Horizon {h}\n\n{report(r)}" for h, r in result["horizons"].items())


# How a command ends when told to stop: SIGINT (Ctrl-C) and SIGTERM (what ECS, systemd,
# ``timeout`` and a Prefect cancellation send) end a run the same way: the flow run is
# marked Cancelled (``tasks.hooks``), one line on stderr, exit 128 + the signal (130, 143).
# Its children stop at exit (the temporary server) or with the run (process pools), and
# any child ends within a second of its parent's end however it ends (``core.lifeline``).
# From the first stop signal the run has ``HARD_EXIT_SECONDS`` to wind down (a running
# task is waited for: within ECS's 30 s before its SIGKILL); then, or at a second Ctrl-C,
# it ends at once.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
HARD_EXIT_SECONDS = 25.0


class Stopped(KeyboardInterrupt):
    """A stop signal arrived (a ``KeyboardInterrupt``: Prefect ends the run as interrupted)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _stop(signum: int, frame: FrameType | None) -> None:
    raise Stopped(signum)


def stop_signal(exc: BaseException) -> int | None:
    """The stop signal behind an exception that ended a run (None: not a stop)."""
    if isinstance(exc, Stopped):
        return exc.signum
    if isinstance(exc, KeyboardInterrupt):
        return signal.SIGINT
    from prefect.exceptions import TerminationSignal

    return exc.signal if isinstance(exc, TerminationSignal) else None


class _Stops:
    """SIGINT and SIGTERM raise ``Stopped`` while a command runs (inside a flow run,
    Prefect's own SIGTERM handler raises its ``TerminationSignal`` instead). Every signal
    also reaches a watcher thread (``signal.set_wakeup_fd``), whichever handler runs: the
    first stop arms the hard exit, a second Ctrl-C ends the process at once. On leaving, the
    previous handlers come back; the command line's own process (``cli``) keeps a quiet
    exit instead, so a stop during its last output or its exit handlers is no traceback."""

    def __init__(self, cli: bool):
        self.cli = cli
        self.signum: int | None = None
        self.timer: threading.Timer | None = None
        self.code: int | None = None  # the command's exit code, once it has one

    def __enter__(self) -> _Stops:
        self.handlers = {s: signal.signal(s, _stop) for s in STOP_SIGNALS}
        read, self.write = os.pipe()
        os.set_blocking(self.write, False)
        self.wakeup = signal.set_wakeup_fd(self.write, warn_on_full_buffer=False)
        threading.Thread(target=self._watch, args=(read,), name="stops", daemon=True).start()
        return self

    def _watch(self, read: int) -> None:
        while data := os.read(read, 64):  # b"": the command has ended (the pipe closed)
            for signum in data:
                if signum not in STOP_SIGNALS:
                    continue
                if self.signum is not None:
                    # a second Ctrl-C: now. (Not a second SIGTERM: Prefect sends the run
                    # one itself, the first one's, after its crash handling.)
                    if signum == signal.SIGINT:
                        self._end("a second Ctrl-C ended it at once")
                    continue
                self.signum = signum
                self.timer = threading.Timer(HARD_EXIT_SECONDS, self._abandon)
                self.timer.daemon = True
                self.timer.start()
        os.close(read)

    def _abandon(self) -> None:
        """The run did not wind down in time (a task still running): end it now."""
        self._end(f"a task still running {HARD_EXIT_SECONDS:g} s later was abandoned")

    def _end(self, why: str) -> None:
        """End the process now, in one line: its flow run is left as the API last saw it."""
        assert self.signum is not None
        print(
            f"error: stopped by {signal.Signals(self.signum).name}: {why} (its flow run may "
            "still show Running); run the same command again to continue",
            file=sys.stderr,
            flush=True,
        )
        os._exit(128 + self.signum)

    def __exit__(self, *exc: object) -> None:
        if self.cli:  # the outcome stands (a finished run exits 0, its last output cut)
            for each in STOP_SIGNALS:
                signal.signal(each, lambda signum, _: os._exit(self.code or 128 + signum))
            return
        if self.timer is not None:
            self.timer.cancel()
        signal.set_wakeup_fd(self.wakeup)
        os.close(self.write)
        for each, handler in self.handlers.items():
            signal.signal(each, handler)


class ParamsFileError(InputError):
    """The --params file is missing or not a JSON object."""


def read_params(path: str) -> dict[str, Any] | str:
    """``--params``: 'best' (the tuning study's, read by the flow) or a JSON object file."""
    if path == "best":
        return path
    file = Path(path)
    if not file.is_file():
        raise ParamsFileError(f"params file not found: {file}")
    try:
        params = json.loads(file.read_text())
    except json.JSONDecodeError as exc:
        raise ParamsFileError(f"params file {file} is not valid JSON: {exc}") from None
    if not isinstance(params, dict):
        raise ParamsFileError(f"params file {file} must hold a JSON object of regressor parameters")
    return params


PARAMS = Arg(
    "--params",
    "JSON file of regressor parameters, or 'best' (the tuning study's)",
    convert=read_params,
)


def models() -> list[str]:
    """``--model`` choices: the regressor registry, ``boa`` (their online aggregation) and
    ``auto`` (the method chosen by evidence)."""
    from core.config import AGGREGATE, AUTO
    from core.modeling.models import MODELS

    return [*MODELS, AGGREGATE, AUTO]


MODEL = Arg("--model", "regressor", setting="model.name", choices=models)


def with_params(
    settings: Settings, params: dict[str, Any] | str | None
) -> tuple[Settings, str | None]:
    """Settings with ``--params`` applied: ``best`` reads the model's tuning study from the
    store, a string is a file (a deployment's parameter), a dict is used as given. Returns
    the settings and where the parameters came from (None: the settings)."""
    source = None
    if params == "best":
        from core.modeling.tuning import best_params

        source, params = best_params(settings)
    elif isinstance(params, str):
        source, params = params, read_params(params)
    if isinstance(params, dict):
        settings = settings.model_copy(
            update={"model": settings.model.model_copy(update={"params": params})}
        )
    return settings, source


def csv_list(value: str) -> list[str]:
    """``a,b, c`` -> ["a", "b", "c"]."""
    return [v.strip() for v in value.split(",") if v.strip()]


@dataclass(frozen=True)
class Command:
    """A flow's command line: ``python -m flows.<name>``."""

    name: str
    doc: str | None
    args: Sequence[Arg]
    # a check of the settings beyond their validation (``ConfigError``), run with it: before
    # Prefect starts on the command line, first thing in the flow otherwise
    check: Callable[[Settings], None] | None = None

    def renamed(self) -> dict[str, Arg]:
        """Old name (a flow parameter; with dashes, a flag) -> the flag that replaced it: the
        last part of the old path, in ``core.config.RENAMED``, of each flag's setting."""
        from core.config import RENAMED

        old_of = {new: old for old, new in RENAMED.items()}
        return {
            old_of[arg.setting].rpartition(".")[2]: arg
            for arg in self.args
            if arg.setting in old_of
        }

    def parser(self, renamed: bool = False) -> argparse.ArgumentParser:
        """The flags; with ``renamed``, the old names of renamed flags too (hidden)."""
        summary = " ".join((self.doc or "").strip().split("\n\n", 1)[0].split())
        codes = "\n".join(f"  {code}  {text}" for code, text in EXIT_CODES.items())
        parser = argparse.ArgumentParser(
            prog=f"python -m flows.{self.name}",
            description=textwrap.fill(summary, 88) if summary else None,
            epilog=f"Every flag is also a setting (SMA_*) or a flow parameter.\nexit codes:\n{codes}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        parser.add_argument(
            "--debug", action="store_true", help="show full tracebacks in the terminal"
        )
        for arg in self.args:
            if arg.switch:
                parser.add_argument(arg.flag, action="store_true", default=None, help=arg.help)
            else:
                parser.add_argument(
                    arg.flag,
                    type=arg.type or str,
                    default=arg.default,
                    help=arg.help,
                    choices=arg.choices() if arg.choices else None,
                )
        for old, arg in self.renamed().items() if renamed else ():
            flag = "--" + old.replace("_", "-")
            if arg.switch:
                parser.add_argument(
                    flag, dest=old, action="store_true", default=None, help=argparse.SUPPRESS
                )
            else:
                parser.add_argument(flag, dest=old, type=arg.type or str, help=argparse.SUPPRESS)
        return parser

    def overrides(self, params: dict[str, Any]) -> dict[str, Any]:
        """Settings overrides from flow parameters (None: not given); an old parameter name
        (``renamed``) is read under its new one, with a warning."""
        from core.config import warn_renamed

        params = dict(params)
        for old, arg in self.renamed().items():
            if params.get(old) is not None:
                shadowed = params.get(arg.dest) is not None
                warn_renamed(f"parameter {old} of flow {self.name}", arg.dest, shadowed)
                params[arg.dest] = params[arg.dest] if shadowed else params[old]
        nested: dict[str, Any] = {}
        for arg in self.args:
            value = params.get(arg.dest)
            if arg.setting is None or value is None:
                continue
            *path, leaf = arg.setting.split(".")
            node = nested
            for part in path:
                node = node.setdefault(part, {})
            node[leaf] = value
        return nested

    def settings(self, **params: Any) -> Settings:
        """Validated settings for these flow parameters (``ConfigError`` names what is wrong)."""
        from core.settings import load_settings

        settings = load_settings(**self.overrides(params))
        if self.check is not None:
            self.check(settings)
        return settings

    def start(self, **params: Any) -> Settings:
        """What a flow does first: its settings, and a check that the store can be used and
        that its layout version is one this code reads."""
        from core.layout import check_layout
        from core.storage import Store

        settings = self.settings(**params)
        store = Store.open(settings.store_ref)
        store.check()
        check_layout(store)
        return settings

    def _params(self, args: argparse.Namespace) -> dict[str, Any]:
        """The flags' values, those given under an old name (``parser(renamed=True)``, a
        warning each) read under the new one; the new flag wins when both are given."""
        from core.config import warn_renamed

        params = {arg.dest: getattr(args, arg.dest) for arg in self.args}
        for old, arg in self.renamed().items():
            if getattr(args, old, None) is not None:
                shadowed = params[arg.dest] is not None
                warn_renamed("--" + old.replace("_", "-"), arg.flag, shadowed)
                params[arg.dest] = params[arg.dest] if shadowed else getattr(args, old)
        return params

    def main(self, argv: list[str] | None = None) -> int:
        """Parse, validate, run the flow, print its report; the exit code of the outcome.

        An expected error is one line on stderr; an unexpected one too, with exit code 1,
        unless ``--debug``. Tracebacks always reach the Prefect logs (the API's log handler
        sees each record before the terminal's does); the terminal shows them with ``--debug``.
        """
        main = sys.modules["__main__"]
        cli = getattr(main.__spec__, "name", None) == f"flows.{self.name}"
        with _Stops(cli) as stops:
            stops.code = self._main(argv)
            return stops.code

    def _main(self, argv: list[str] | None) -> int:
        args, unknown = self.parser().parse_known_args(argv)
        if unknown:  # maybe an old flag: only then are the old names read (a light --help)
            args = self.parser(renamed=True).parse_args(argv)
        params = self._params(args)
        use_project_server()  # before Prefect is imported: its settings are read at import
        try:
            for arg in self.args:
                if arg.convert is not None and params[arg.dest] is not None:
                    params[arg.dest] = arg.convert(params[arg.dest])
            self.settings(**params)  # bad settings fail here, before Prefect starts
            server = _temporary_server()
            module = importlib.import_module(f"flows.{self.name}")
            if not args.debug:
                _terminal_without_tracebacks()
            with _api(server):
                result = getattr(module, self.name)(**params)
        except UserFacingError as exc:
            print(f"error: {first_line(str(exc), 2000)}", file=sys.stderr)
            return exc.exit_code
        except Exception as exc:
            if args.debug:
                raise
            print(f"error: {_unexpected(exc)}", file=sys.stderr)
            return NothingUsableError.exit_code
        except BaseException as exc:
            signum = stop_signal(exc)
            if signum is None:
                raise
            from tasks.hooks import CANCELLED

            print(
                f"error: stopped by {signal.Signals(signum).name}"
                + (": the flow run is marked Cancelled" if CANCELLED else "")
                + "; run the same command again to continue",
                file=sys.stderr,
            )
            return 128 + signum
        # the module's terminal text: ``report``, or ``report_text`` where the flow itself is
        # called report
        print(per_horizon(getattr(module, "report_text", module.report), result))
        return 0


def _unexpected(exc: Exception) -> str:
    """The line for an error no step expected; a full disk outside the store (a temporary
    folder, a library's own file) says so, naming the file when the error does."""
    from core.storage import disk_full

    what = disk_full(exc)
    if what is not None:
        name = getattr(exc, "filename", None)
        return f"{what} writing {name or 'a temporary file'}: free space there (or set TMPDIR)"
    return (
        f"{type(exc).__name__}: {first_line(str(exc))} "
        "(unexpected: rerun with --debug for the traceback)"
    )


def _temporary_server() -> TemporaryServer | None:
    """This run's own temporary Prefect server when no API is configured (a user's
    ``PREFECT_API_URL``, the project's server, a test harness): ``deployments.temporary``."""
    from deployments.temporary import start_temporary, startup_limit

    limit = startup_limit()  # a bad value is exit 2 before Prefect reads it
    from prefect.settings import get_current_settings

    if get_current_settings().api.url:
        return None
    return start_temporary(limit)


@contextlib.contextmanager
def _api(server: TemporaryServer | None) -> Iterator[None]:
    """Prefect's settings pointed at ``server`` for the flow call, and ``PREFECT_API_URL``
    for the processes it starts (Dask's workers); as they are when None."""
    if server is None:
        yield
        return
    from prefect.settings import PREFECT_API_URL, temporary_settings

    saved = os.environ.get("PREFECT_API_URL")
    os.environ["PREFECT_API_URL"] = server.url
    try:
        with temporary_settings(updates={PREFECT_API_URL: server.url}):
            yield
    finally:
        if saved is None:
            os.environ.pop("PREFECT_API_URL", None)
        else:
            os.environ["PREFECT_API_URL"] = saved


class _MessageOnly(logging.Formatter):
    """A terminal formatter that leaves a record's traceback out (the message stays)."""

    def __init__(self, inner: logging.Formatter | None):
        super().__init__()
        self.inner = inner or logging.Formatter()

    def format(self, record: logging.LogRecord) -> str:
        if not record.exc_info and not record.exc_text:
            return self.inner.format(record)
        quiet = logging.makeLogRecord(record.__dict__ | {"exc_info": None, "exc_text": None})
        return self.inner.format(quiet)


def _terminal_without_tracebacks() -> None:
    """Drop tracebacks from the terminal's log handlers (Prefect's console handler)."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler) and not isinstance(
            handler.formatter, _MessageOnly
        ):
            handler.setFormatter(_MessageOnly(handler.formatter))
