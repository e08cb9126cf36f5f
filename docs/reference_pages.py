"""The reference pages of the documentation site, written from the code at build time.

Every table here is read from the module that owns the fact (the settings model, the layout
module, the exit codes, the registries, each flow's command line), so no table is written
twice; ``docs/gen_pages.py`` hands the pages to mkdocs-gen-files.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import os
import subprocess
import sys
import types
import typing
from pathlib import Path

from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

ROOT = Path(__file__).resolve().parent.parent
GENERATED = "Generated from the code when the site is built: "


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell: one line, pipes escaped, and ``<``, ``>``,
    ``&`` escaped outside code spans (``horizons/h=<h>/`` is text, not a tag)."""
    parts = " ".join(text.split()).split("`")
    return "`".join(
        part if i % 2 else html.escape(part, quote=False) for i, part in enumerate(parts)
    ).replace("|", "\\|")


def table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def type_name(annotation: object) -> str:
    """A setting's type as a reader wants it: ``int``, ``list of float``, ``one of a, b``."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return type_name(args[0])
    if origin is typing.Literal:
        return "one of " + ", ".join(f"`{a}`" for a in args)
    if origin in (typing.Union, types.UnionType):
        named = [type_name(a) for a in args if a is not type(None)]
        return " or ".join(named) + (" (optional)" if type(None) in args else "")
    if origin in (list, tuple):
        return f"list of {type_name(args[0])}" if args else "list"
    if origin is dict:
        return "JSON object"
    if annotation is SecretStr:
        return "secret text"
    if annotation is dt.date:
        return "date"
    return getattr(annotation, "__name__", str(annotation))


def default_text(field: FieldInfo) -> str:
    """A field's default as it reads in a table, in code font; ``unset`` for none."""
    value = field.default
    if value is PydanticUndefined and field.default_factory is not None:
        value = field.default_factory()  # type: ignore[call-arg]
    if value is None or value is PydanticUndefined:
        return "unset"
    if isinstance(value, bool):
        text = str(value).lower()
    elif isinstance(value, list | tuple):
        text = ",".join(str(v) for v in value)
    elif isinstance(value, dict):
        text = json.dumps(value)
    else:
        text = str(value)
    return f"`{text}`" if text else "empty"


def bounds_text(field: FieldInfo) -> str:
    """The range a numeric setting is held to (its ``ge``, ``gt``, ``le``, ``lt``)."""
    signs = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}
    found = [
        f"`{signs[name]} {getattr(rule, name)}`"
        for rule in field.metadata
        for name in signs
        if getattr(rule, name, None) is not None
    ]
    return ", ".join(found)


def _setting_rows(model: type[BaseModel], prefix: str) -> list[tuple[str, ...]]:
    """A table row per setting of ``model`` (its sections, if any, left out)."""
    from core.config import Settings, sections, variable

    rows: list[tuple[str, ...]] = []
    for name, field in model.model_fields.items():
        if model is Settings and name in sections():
            continue
        description = (field.description or "").strip()
        if not description:
            raise ValueError(f"setting {prefix}{name} has no description (core/config.py)")
        rows.append(
            (
                f"`{variable(prefix + name)}`",
                type_name(field.annotation),
                default_text(field),
                bounds_text(field),
                description,
            )
        )
    return rows


def settings_page() -> str:
    """Every setting of ``core.config.Settings``: its variable, type, default and meaning."""
    from core.config import Settings, sections

    top = _setting_rows(Settings, "")
    out = [
        "# Settings\n",
        GENERATED + "`core/config.py`, the one settings model (pydantic-settings, prefix "
        "`SMA_`, nested sections after `__`). Precedence: a command-line flag or flow parameter, "
        "then the environment, then a `.env` file, then the default. List settings take JSON "
        "or commas (`SMA_MODEL__QUANTILES=0.1,0.9`). An `SMA_` variable no setting reads is "
        "ignored with a warning naming the closest setting. A bad value is one line naming "
        "the setting, exit 2, before Prefect starts.\n",
        "Outside this model: S3 credentials come from the standard AWS variables "
        "(`AWS_ACCESS_KEY_ID`, ...); `SMA_IMAGE` and `SMA_IMAGE_BASE` are read by "
        "`prefect.yaml` (known, so never warned about); how many batches run at once on "
        "threads is Prefect's `PREFECT_TASKS_RUNNER_THREAD_POOL_MAX_WORKERS` (unset: "
        "min(32, cores + 4), not Prefect's unbounded default); on Dask, the workers' threads.\n",
        "## Top-level settings\n",
        table(("variable", "type", "default", "range", "meaning"), top),
    ]
    for name, model in sections().items():
        doc = " ".join((model.__doc__ or "").split())
        out += [
            f"## `{name}`\n",
            doc + "\n" if doc else "",
            table(
                ("variable", "type", "default", "range", "meaning"),
                _setting_rows(model, f"{name}."),
            ),
        ]
    out += [
        "## Renamed settings\n",
        "The old names still work, with a warning naming the new one (once per process); "
        "when both are given, the new one wins, and a flag or flow parameter still beats a "
        "variable. A flow's old flag or parameter is the old name's last part (hidden from "
        "`--help`).\n",
        table(("old", "new", "old flag and parameter → new"), renamed_rows()),
    ]
    return "\n".join(out)


def renamed_rows() -> list[tuple[str, ...]]:
    """(old variable, new variable, the flows whose flag it renamed) per renamed setting,
    the flags read from each flow's command line (``Command.renamed``)."""
    import importlib

    from core.config import RENAMED, variable

    flags: dict[str, list[str]] = {}
    for module in commands():
        command = getattr(importlib.import_module(module), "COMMAND", None)
        if command is None:
            continue
        for old, arg in command.renamed().items():
            flags.setdefault(arg.setting, []).append(
                f"{command.name}: `--{old.replace('_', '-')}` → `{arg.flag}`, "
                f"`{old}` → `{arg.flag.removeprefix('--').replace('-', '_')}`"
            )
    return [
        (f"`{variable(old)}`", f"`{variable(new)}`", "; ".join(flags.get(new, [])))
        for old, new in RENAMED.items()
    ]


def command_text(rebuild: str) -> str:
    """A rebuild hint with its command in code font: ``python -m flows.x`` (why)."""
    if not rebuild.startswith("python -m "):
        return rebuild
    command, paren, rest = rebuild.partition(" (")
    return f"`{command}`{paren}{rest}"


def layout_page() -> str:
    """Every key of the store (``core.layout.KEYS``), what it holds and what rebuilds it."""
    from core import layout

    rows = [(f"`{key.shown}`", key.holds, command_text(key.rebuild)) for key in layout.KEYS]
    return "\n".join(
        [
            "# Store layout\n",
            GENERATED + f"`core/layout.py`. Layout version {layout.LAYOUT_VERSION}. A store "
            "of several horizons keeps every key of its home horizon as below and each other "
            f"horizon's under `{layout.HORIZON_ROOT.replace('{horizon}', '<h>')}/`, except the "
            "shared ones (" + ", ".join(f"`{s}`" for s in layout.SHARED) + "), which every "
            "horizon reads at the root. See [the store](../concepts/store.md).\n",
            table(("key", "holds", "a damaged copy is rebuilt by"), rows),
        ]
    )


def exit_codes_page() -> str:
    """The exit codes (``core.errors.EXIT_CODES``) and the error classes behind them."""
    from core import errors

    classes = [
        (f"`{cls.__name__}`", str(cls.exit_code), " ".join((cls.__doc__ or "").split()))
        for cls in vars(errors).values()
        if isinstance(cls, type) and issubclass(cls, errors.UserFacingError)
    ]
    return "\n".join(
        [
            "# Exit codes\n",
            GENERATED + "`core/errors.py`. Every flow's command (`python -m flows.<name>`) "
            "ends with one of these; `python -m service` too: 2 for bad settings or a store "
            "folder that does not exist, 1 when it cannot listen (the port taken), 130 and "
            "143 when it is stopped. An error is one line on stderr naming "
            "the file, setting or symbol; tracebacks go to the Prefect logs, and to the "
            "terminal only with `--debug`.\n",
            table(("code", "meaning"), [(str(c), m) for c, m in errors.EXIT_CODES.items()]),
            "## Error classes\n",
            "A module raises a subclass of one of these that names its own problem.\n",
            table(("class", "exit code", "what it is"), classes),
        ]
    )


def commands() -> list[str]:
    """The command-line entry points: every flow module that runs as a command, then the
    service."""
    flows = sorted(
        p.stem
        for p in (ROOT / "flows").glob("*.py")
        if '\nif __name__ == "__main__":' in p.read_text()
    )
    return [f"flows.{name}" for name in flows] + ["service"]


def help_text(module: str) -> str:
    """What ``python -m <module> --help`` prints (fast: no Prefect is imported)."""
    env = os.environ | {"PYTHONPATH": str(ROOT), "COLUMNS": "100"}
    done = subprocess.run(
        [sys.executable, "-m", module, "--help"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"python -m {module} --help failed: {done.stderr.strip()}")
    return done.stdout.rstrip()


def cli_page() -> str:
    """Every command's ``--help``, as it prints it."""
    out = [
        "# Commands\n",
        GENERATED + "each command's own `--help`. Flags override the settings of the same "
        "name ([settings](settings.md)); exit codes are [here](exit-codes.md).\n",
    ]
    for module in commands():
        out += [f"## `python -m {module}`\n", "```text\n" + help_text(module) + "\n```\n"]
    return "\n".join(out)


def registries_page() -> str:
    """The registries: models, feature groups, quality rules and collectors."""
    from core.data.collectors import COLLECTORS
    from core.data.quality import RULES, SYMBOL_STATUS_RULE, WARNINGS
    from core.features.context import Windows
    from core.features.registry import GROUPS, feature_names
    from core.modeling.models import MODELS

    models = [
        (
            f"`{name}`",
            spec.summary,
            "baseline" if spec.baseline else "model",
            "yes" if spec.search_space is not None else "",
        )
        for name, spec in MODELS.items()
    ]
    counts = {name: len(names) for name, names in feature_names(list(GROUPS)).items()}
    groups = [
        (
            f"`{name}`",
            group.summary,
            str(counts[name]),
            str(group.warmup(Windows(3))),
        )
        for name, group in GROUPS.items()
    ]
    rules = [(f"`{name}`", "rejected", text) for name, text in RULES.items()]
    rules.append(
        (
            f"`{SYMBOL_STATUS_RULE}`",
            "symbol status",
            "fewer valid rows than `SMA_QUALITY__MIN_ROWS`",
        )
    )
    rules += [(f"`{name}`", "warning (kept, counted)", text) for name, text in WARNINGS.items()]
    collectors = [
        (
            f"`{name}`",
            spec.summary,
            "yes" if spec.needs_source_path else "",
            f"`{spec.concurrency_limit}`" if spec.concurrency_limit else "",
        )
        for name, spec in COLLECTORS.items()
    ]
    return "\n".join(
        [
            "# Registries\n",
            GENERATED + "the registries that settings, `--help` choices and validation read. "
            "Adding an entry is described in [extending](../how-to/extend.md).\n",
            "## Models\n",
            "`MODELS` in `core/modeling/models/__init__.py`. "
            "`SMA_MODEL__NAME` also takes `boa` (the online aggregation of the learner and "
            "every baseline) and `auto` (the candidate with the lowest held-out CRPS).\n",
            table(("name", "what it is", "kind", "tunable"), models),
            "## Feature groups\n",
            "`GROUPS` in `core/features/registry.py`.\n",
            table(("name", "what it holds", "features", "warm-up rows at h = 3"), groups),
            "## Quality rules\n",
            "`RULES` in `core/data/quality.py`, in order of precedence: a rejected row is "
            "quarantined with the first rule it broke and a detail naming all it broke.\n",
            table(("rule", "effect", "what it checks"), rules),
            "## Collectors\n",
            "`COLLECTORS` in `core/data/collectors/__init__.py`.\n",
            table(
                (
                    "name",
                    "what it reads",
                    "needs `SMA_SOURCE_PATH`",
                    "Prefect limit held while fetching",
                ),
                collectors,
            ),
        ]
    )


PAGES = {
    "reference/settings.md": settings_page,
    "reference/layout.md": layout_page,
    "reference/exit-codes.md": exit_codes_page,
    "reference/commands.md": cli_page,
    "reference/registries.md": registries_page,
}
