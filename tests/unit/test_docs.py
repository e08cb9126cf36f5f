"""The documentation site: its reference pages are generated from the code (every setting,
key, exit code, command and registry entry, none left out), its examples run as written,
and ``mkdocs build --strict`` passes (no broken link, anchor or page outside the nav)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from pydantic import BaseModel, Field

from core import layout
from core.config import RENAMED, Settings, sections, variable
from core.data.collectors import COLLECTORS
from core.data.quality import RULES, WARNINGS
from core.errors import EXIT_CODES
from core.features.registry import GROUPS, feature_names
from core.modeling.models import MODELS
from docs import reference_pages as pages
from tests.factories import ROOT, forecast_store


def rows(markdown: str, section: str = "") -> list[list[str]]:
    """The cells of every table row of ``markdown`` (below the heading ``section`` when
    given, up to the next heading), header rows left out."""
    if section:
        markdown = markdown.split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    lines = markdown.splitlines()
    return [
        [cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip("|"))]
        for line, after in zip(lines, [*lines[1:], ""], strict=True)
        if line.startswith("| ") and not after.startswith("|---")
    ]


def every_setting() -> list[str]:
    """The variable of every setting of the model, sections expanded."""
    tops = [variable(name) for name in Settings.model_fields if name not in sections()]
    return tops + [
        variable(f"{name}.{sub}")
        for name, model in sections().items()
        for sub in model.model_fields
    ]


def test_the_settings_page_lists_every_setting_once_with_its_default():
    page = pages.settings_page()
    listed = [row[0].strip("`") for row in rows(page) if len(row) == 5]
    assert sorted(listed) == sorted(every_setting())
    quality = {row[0]: row for row in rows(page, "`quality`")}
    assert quality["`SMA_QUALITY__STALE_RUN_BARS`"][1:4] == ["int", "`5`", "`>= 2`"]
    model = {row[0]: row for row in rows(page, "`model`")}
    assert model["`SMA_MODEL__QUANTILES`"][2].startswith("`0.01,0.025,0.05")
    features = {row[0]: row for row in rows(page, "`features`")}
    assert "`horizons/h=<h>/`" in features["`SMA_FEATURES__HORIZONS`"][4]  # code, not a tag
    renamed = {row[0]: row[1:] for row in rows(page, "Renamed settings")}
    assert {old: new for old, (new, _) in renamed.items()} == {
        f"`{variable(old)}`": f"`{variable(new)}`" for old, new in RENAMED.items()
    }
    assert renamed["`SMA_BATCH_SIZE`"][1] == (
        "collect: `--batch-size` → `--symbols-per-task`, `batch_size` → `symbols_per_task`"
    )


def test_a_setting_without_a_description_stops_the_build():
    class Section(BaseModel):
        documented: int = Field(default=1, description="Has one.")
        bare: int = 2

    with pytest.raises(ValueError, match=r"setting s\.bare has no description"):
        pages._setting_rows(Section, "s.")


def test_the_layout_page_lists_every_key_in_order():
    assert rows(pages.layout_page()) == [
        [f"`{key.shown}`", pages._cell(key.holds), pages.command_text(key.rebuild)]
        for key in layout.KEYS
    ]
    assert "`python -m flows.features`" in pages.layout_page()


def test_the_exit_codes_page_is_the_table_of_core_errors():
    page = pages.exit_codes_page()
    codes = [row for row in rows(page) if row[0].isdigit() and len(row) == 2]
    assert codes == [[str(code), text] for code, text in EXIT_CODES.items()]
    classes = {row[0]: row[1] for row in rows(page, "Error classes")}
    assert classes["`InputError`"] == "2" and classes["`DamagedArtifactError`"] == "3"


def test_the_commands_page_holds_every_commands_own_help():
    page = pages.cli_page()
    flows = sorted(
        p.stem for p in (ROOT / "flows").glob("*.py") if p.stem not in ("__init__", "shell")
    )
    for name in flows:
        assert f"## `python -m flows.{name}`\n" in page
        assert f"usage: python -m flows.{name}" in page, name
    assert "usage: python -m service" in page and "--port PORT" in page


def test_the_registries_page_names_every_entry_with_its_summary():
    page = pages.registries_page()
    models = {row[0]: row for row in rows(page, "Models")}
    assert list(models) == [f"`{name}`" for name in MODELS]
    assert models["`ewma`"][2] == "baseline" and models["`lightgbm`"][3] == "yes"
    counts = {name: len(names) for name, names in feature_names(list(GROUPS)).items()}
    groups = {row[0]: row for row in rows(page, "Feature groups")}
    assert {k.strip("`"): int(v[2]) for k, v in groups.items()} == counts
    rules = [row[0].strip("`") for row in rows(page, "Quality rules")]
    assert rules == [*RULES, "insufficient", *WARNINGS]
    collectors = [row[0].strip("`") for row in rows(page, "Collectors")]
    assert collectors == list(COLLECTORS)


def run_examples(page: str, store: str) -> dict[str, object]:
    """Every Python block of ``page``, in order, in one namespace, on ``store`` in place of
    the demo's ``data/store``."""
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / page).read_text(), flags=re.DOTALL)
    assert blocks and '"data/store"' in blocks[0]
    namespace: dict[str, object] = {}
    for block in blocks:
        exec(block.replace('"data/store"', repr(store)), namespace)  # the page's own code
    return namespace


def test_the_read_api_examples_run_as_written(tmp_path):
    store = str(forecast_store(tmp_path / "store"))
    done = run_examples("docs/how-to/read-forecasts.md", store)
    assert done["run"].horizon == 3  # type: ignore[attr-defined]
    assert done["some"].height == 4  # type: ignore[attr-defined]  # 2 symbols, 2 horizons
    assert run_examples("README.md", store)["latest"].height == 2  # type: ignore[attr-defined]


def test_the_site_builds_strict(tmp_path):
    """``mkdocs build --strict``: a broken link or anchor, a page outside the nav, a
    generator error or a bad docstring fails it."""
    site = tmp_path / "site"
    env = os.environ | {
        "PYTHONPATH": str(ROOT),
        "NO_MKDOCS_2_WARNING": "1",
        "DISABLE_MKDOCS_2_WARNING": "true",
    }
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    settings = (site / "reference" / "settings" / "index.html").read_text()
    assert "SMA_QUALITY__STALE_RUN_BARS" in settings
    api = (site / "how-to" / "read-forecasts" / "index.html").read_text()
    assert "latest_versioned" in api  # mkdocstrings rendered the read API's docstrings


def test_the_http_error_table_names_the_status_the_service_gives():
    """Each error the read API raises reaches the status the read-API page says."""
    from core.errors import DamagedArtifactError, InputError
    from core.forecasts import (
        NoCalibrationError,
        NoForecastsError,
        UnknownHorizonError,
        UnknownLevelError,
        UnknownSymbolError,
    )
    from core.storage import StoreError
    from service.app import Unavailable, status_of

    page = (ROOT / "docs" / "how-to" / "read-forecasts.md").read_text()
    said = dict(re.findall(r"^ {4}\| (\d{3}) \| (.*) \|$", page, flags=re.MULTILINE))
    cases = {
        UnknownSymbolError("x"): "an unknown symbol",
        UnknownHorizonError("x"): "horizon",
        NoForecastsError("x"): "no forecast",
        NoCalibrationError("x"): "no monitor figures",
        UnknownLevelError("x"): "a level the forecasts do not carry",
        InputError("x"): "malformed",
        DamagedArtifactError("x"): "damaged artifact",
        StoreError("x"): "store is down",
        Unavailable("x"): "slower than",
    }
    for exc, phrase in cases.items():
        assert phrase in said[str(status_of(exc))], (type(exc).__name__, said)
