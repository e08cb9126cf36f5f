"""The HTML report in a real browser: headless Chromium (Debian's package, driven by Selenium
through Debian's chromedriver) opens it from file://, as a user would."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core import layout
from core.storage import Store
from flows.monitor import monitor
from tests.factories import frozen_model_store
from tests.flows.test_service import serve

pytestmark = pytest.mark.usefixtures("prefect_server", "clean_env")
SCREENSHOT = "report.png"


@pytest.fixture()
def browser() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver = shutil.which("chromium"), shutil.which("chromedriver")
    assert binary and driver, "install chromium and chromium-driver (make system names them)"
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--window-size=1400,2400",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    chrome = webdriver.Chrome(service=Service(driver), options=options)
    try:
        yield chrome
    finally:
        chrome.quit()


def test_the_report_works_in_a_real_browser(browser, tmp_path):
    from selenium.webdriver.support.ui import Select, WebDriverWait

    levels = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.975, 0.99]
    root, dates = frozen_model_store(
        tmp_path / "store", symbols=12, days=200, shift_at=150, forecast_days=90, levels=levels
    )
    store = Store(str(root))
    # a symbol name that tries to inject markup must come out as text
    hostile = '<img src=x onerror="document.title=1">'
    key = layout.PREDICTIONS(as_of=dates[-1])
    import polars as pl

    store.write_parquet(
        key,
        store.read_parquet(key).with_columns(
            pl.when(pl.col("symbol") == "S11")
            .then(pl.lit(hostile))
            .otherwise(pl.col("symbol"))
            .alias("symbol")
        ),
    )
    store.write_parquet(
        layout.PRICES(symbol=hostile),
        store.read_parquet(layout.PRICES(symbol="S11")).with_columns(
            pl.lit(hostile).alias("symbol")
        ),
    )
    summary: dict[str, Any] = monitor(store=str(root), as_of=dates[-1], backfill=True)  # pyright: ignore[reportAssignmentType]
    page = Path(summary["report"])
    assert page.is_file() and page.stat().st_size < 10e6

    browser.get(page.as_uri())
    WebDriverWait(browser, 30).until(
        lambda d: d.execute_script("return document.readyState") == "complete"
    )
    timing = browser.execute_script(
        "const n = performance.getEntriesByType('navigation')[0]; return n.loadEventEnd - n.startTime;"
    )
    errors = [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
    assert errors == []
    assert browser.title.startswith("Stock market analytics")  # the injected handler never ran
    # one table row per predicted symbol, the hostile name shown as text
    rows = browser.find_elements("css selector", "#forecasts tbody tr")
    assert len(rows) == 12 and any(r.text.startswith(hostile) for r in rows)
    assert not browser.find_elements("css selector", "#forecasts img")
    # sorting by a column and filtering keep to the data
    browser.find_element("css selector", "#forecasts th[data-col='symbol']").click()
    first = browser.find_elements("css selector", "#forecasts tbody tr td")[0].text
    assert first == "S10"  # descending after the second click on the sorted column
    browser.find_element("id", "filter").send_keys("S0")
    assert len(browser.find_elements("css selector", "#forecasts tbody tr")) == 10
    # choosing another symbol redraws the fan chart with that symbol's forecasts
    fan = "const f = document.getElementById('fan'); return [f.layout.title.text, JSON.stringify(f.data.map(t => t.y))];"
    before = browser.execute_script(fan)
    Select(browser.find_element("id", "symbol")).select_by_visible_text("S05")
    after = browser.execute_script(fan)
    assert after[0].startswith("S05") and after[1] != before[1]
    # the hostile name as the chart's title: shown as text, no element made from it
    Select(browser.find_element("id", "symbol")).select_by_visible_text(hostile)
    title = browser.execute_script("return document.querySelector('#fan .gtitle').textContent")
    assert title.startswith(hostile) and not browser.find_elements("css selector", "#fan .gtitle *")
    realized = json.loads(after[1])[-1]
    assert sum(v is not None for v in realized) >= 80  # realized returns overlaid
    # the coverage chart shows the target band and the shift the monitor saw
    shapes = browser.execute_script(
        "return document.getElementById('coverage').layout.shapes.length"
    )
    assert shapes == 2
    # the risk section: a zone per symbol (the volatility tripled: red ones), exceptions over
    # time, the selected symbol's VaR against its returns, tail losses against their ES
    zones = browser.find_elements("css selector", "#zones tbody tr")
    assert len(zones) == 12 and any("red" in r.text for r in zones)
    assert "red zone: " in browser.find_element("id", "risk-note").text
    assert browser.execute_script("return document.getElementById('exceptions').data.length") == 2
    Select(browser.find_element("id", "symbol")).select_by_visible_text("S05")
    title = browser.execute_script("return document.getElementById('var-symbol').layout.title.text")
    assert title.startswith("S05") and "99 % VaR" in title
    es = browser.execute_script("return document.getElementById('es').data[1].x.length")
    assert es > 20
    # this run has no drift reference: the section says so instead of drawing a table
    assert "has no drift reference" in browser.find_element("id", "drift").text
    browser.save_screenshot(str(tmp_path / SCREENSHOT))
    assert (tmp_path / SCREENSHOT).stat().st_size > 10_000
    print(f"report {page.stat().st_size / 1e6:.1f} MB, load event after {timing:.0f} ms")

    # the same report served by the forecast service (python -m service), behind its token
    proc, url = serve({"SMA_STORE": str(root), "SMA_API__TOKEN": "tok"}, tmp_path / "service.log")
    try:
        browser.execute_cdp_cmd(
            "Network.setExtraHTTPHeaders", {"headers": {"Authorization": "Bearer tok"}}
        )
        browser.execute_cdp_cmd("Network.enable", {})
        browser.get(f"{url}/report")
        WebDriverWait(browser, 30).until(
            lambda d: d.execute_script("return document.readyState") == "complete"
        )
        assert [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "ERROR")] == []
        assert len(browser.find_elements("css selector", "#forecasts tbody tr")) == 12
    finally:
        proc.terminate()
        proc.wait(10)
