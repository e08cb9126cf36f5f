"""The HTML report in a real browser: headless Chromium (Debian's package, driven by Selenium
through Debian's chromedriver) opens it from file://, as a user would. One browser serves
every test of the module (starting Chromium costs seconds)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core import layout
from core.config import MonitorSettings
from core.report.data import report_data
from core.report.page import render
from core.storage import Store
from flows.monitor import monitor
from tests.factories import frozen_model_store
from tests.flows.test_service import serve

pytestmark = pytest.mark.usefixtures("prefect_server", "clean_env")
SCREENSHOT = "report.png"
ROOT = Path(__file__).resolve().parents[2]
STORE_V2 = ROOT / "tests" / "data" / "store_v2"  # a trained store with a real model card


@pytest.fixture(scope="module")
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


def load(browser: Any, url: str) -> None:
    """Open ``url`` and wait for the page to finish loading."""
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(url)
    WebDriverWait(browser, 30).until(
        lambda d: d.execute_script("return document.readyState") == "complete"
    )


def errors(browser: Any) -> list[dict[str, Any]]:
    """The console's errors since the last call (reading the log empties it)."""
    return [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]


def text_of(browser: Any, element_id: str) -> str:
    """An element's textContent (the note of a hidden element too)."""
    return browser.execute_script(f"return document.getElementById('{element_id}').textContent")


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

    load(browser, page.as_uri())
    timing = browser.execute_script(
        "const n = performance.getEntriesByType('navigation')[0]; return n.loadEventEnd - n.startTime;"
    )
    assert errors(browser) == []
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
    fan = "const f = document.getElementById('fan'); return [document.getElementById('fan-title').textContent, JSON.stringify(f.data.map(t => t.y))];"
    before = browser.execute_script(fan)
    Select(browser.find_element("id", "symbol")).select_by_visible_text("S05")
    after = browser.execute_script(fan)
    assert after[0].startswith("S05") and after[1] != before[1]
    assert browser.execute_script("return location.hash") == "#symbol=S05"
    # the hostile name as the chart's title and in the address: shown as text, no element
    # made from it, read back from the address as the name it is
    Select(browser.find_element("id", "symbol")).select_by_visible_text(hostile)
    assert text_of(browser, "fan-title").startswith(hostile)
    assert not browser.find_elements("css selector", "#fan-title *, #symbol-summary *")
    assert text_of(browser, "symbol-summary").startswith(hostile)
    assert hostile == browser.execute_script(
        "return new URLSearchParams(location.hash.slice(1)).get('symbol')"
    )
    realized = json.loads(after[1])[-1]
    assert sum(v is not None for v in realized) >= 80  # realized returns overlaid
    # the coverage chart shows the target band and the shift the monitor saw
    shapes = browser.execute_script(
        "return document.getElementById('coverage').layout.shapes.length"
    )
    assert shapes == 2
    # scores but no backtest: the loss ratios drawn, and a line saying what would add to them
    assert browser.find_elements("css selector", "#pinball .main-svg")
    assert browser.find_element("css selector", "#pinball + .note").text.startswith(
        "No backtest yet: run python -m flows.backtest"
    )
    # the risk section: a zone per symbol (the volatility tripled: red ones), exceptions over
    # time, the selected symbol's VaR against its returns, tail losses against their ES
    zones = browser.find_elements("css selector", "#zones tbody tr")
    assert len(zones) == 12 and any("red" in r.text for r in zones)
    assert "red zone: " in browser.find_element("id", "risk-note").text
    assert browser.execute_script("return document.getElementById('exceptions').data.length") == 2
    Select(browser.find_element("id", "symbol")).select_by_visible_text("S05")
    title = text_of(browser, "var-symbol-title")
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
        assert errors(browser) == []
        assert len(browser.find_elements("css selector", "#forecasts tbody tr")) == 12
    finally:
        proc.terminate()
        proc.wait(10)


def unscored_report(tmp_path: Path) -> Path:
    """The report of a trained store the monitor never ran on and with no backtest (a copy of
    ``store_v2`` without them), rendered by core directly: no Prefect, no monitor run."""
    import plotly.offline

    root = tmp_path / "unscored"
    shutil.copytree(STORE_V2, root, ignore=shutil.ignore_patterns("monitoring", "backtests"))
    tickers = str(ROOT / "data" / "sample" / "tickers.csv")
    data = report_data(Store(str(root)), MonitorSettings(), tickers)
    page = tmp_path / "unscored" / "index.html"
    page.write_text(render(data, plotly.offline.get_plotlyjs()), encoding="utf-8")
    return page


INTERSECTIONS = """
return [...document.querySelectorAll('.chart')].filter(c => c.querySelector('.modebar')).map(c => {
  const box = r => [r.left, r.top, r.right, r.bottom];
  return [c.id, box(document.getElementById(c.id + '-title').getBoundingClientRect()),
          box(c.querySelector('.modebar').getBoundingClientRect())];
});
"""


def overlap(a: list[float], b: list[float]) -> bool:
    """Whether two (left, top, right, bottom) boxes share any area."""
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def test_an_unscored_store_says_what_is_missing_and_each_symbol_has_an_address(browser, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.support.ui import Select, WebDriverWait

    page = unscored_report(tmp_path)
    load(browser, page.as_uri())
    assert errors(browser) == []
    # the model card as HTML: its heading, paragraphs and tables, no Markdown in a <pre>
    assert not browser.find_elements("css selector", "pre")
    card = browser.find_element("id", "card")
    assert card.find_element("css selector", "h3").text.startswith("Model card: 2026")
    assert card.find_element("css selector", "h3 code").text.startswith("2026")
    assert card.find_element("css selector", "p strong").text == "lightgbm"
    tables = card.find_elements("css selector", "table")
    assert len(tables) == 2
    head = [th.text for th in tables[0].find_elements("css selector", "thead th")]
    assert head[0] == "method" and head[-1] == "CRPS / ewma"
    assert len(tables[0].find_elements("css selector", "tbody tr")) == 12
    assert "|---" not in card.text and "**" not in card.text
    # nothing scored, no backtest, no monitor run: one-line notes instead of empty charts
    pinball = browser.find_element("id", "pinball")
    assert not pinball.find_elements("css selector", ".main-svg")
    assert pinball.text.startswith("No scored forecasts yet: run python -m flows.monitor")
    assert "python -m flows.backtest" in pinball.text
    assert pinball.find_element("css selector", "code").text == "python -m flows.monitor"
    assert pinball.size["height"] < 60  # one line, not the chart's 360 px
    for section in ("drift", "health"):
        assert "run python -m flows.monitor" in browser.find_element("id", section).text
    # every chart's title is an HTML heading above it, clear of Plotly's mode bar (shown)
    ActionChains(browser).move_to_element(browser.find_element("id", "coverage")).perform()
    boxes = browser.execute_script(INTERSECTIONS)
    assert {b[0] for b in boxes} == {
        "fan",
        "coverage",
        "calibration",
        "exceptions",
        "var-symbol",
        "es",
    }
    for name, title, bar in boxes:
        assert title[2] > title[0] and bar[2] > bar[0], name  # both laid out
        assert not overlap(title, bar), (name, title, bar)
    assert not browser.find_elements("css selector", ".gtitle")  # no title left in Plotly

    # a symbol's view by address: the selection, both per-symbol charts and its table row
    load(browser, page.as_uri() + "#symbol=KO")
    symbol = Select(browser.find_element("id", "symbol"))
    assert symbol.first_selected_option.text == "KO"
    assert text_of(browser, "fan-title").startswith("KO:")
    assert text_of(browser, "var-symbol-title").startswith("KO:")
    assert text_of(browser, "symbol-summary").startswith("KO, forecast of 2017-12-29")
    assert browser.find_element("css selector", "#forecasts tr.selected").text.startswith("KO")
    assert not browser.find_element("id", "symbol-note").is_displayed()
    # choosing another writes the address; so does a click on a table row
    symbol.select_by_visible_text("JPM")
    assert browser.execute_script("return location.hash") == "#symbol=JPM"
    browser.find_element("xpath", "//table[@id='forecasts']//td[text()='XOM']").click()
    assert browser.execute_script("return location.hash") == "#symbol=XOM"
    assert text_of(browser, "fan-title").startswith("XOM:")
    # an unknown symbol, typed into the open page or loaded: a note, the page still whole
    browser.get(page.as_uri() + "#symbol=NOPE")
    note = browser.find_element("id", "symbol-note")
    WebDriverWait(browser, 5).until(lambda _: note.is_displayed())
    assert note.text == 'No symbol "NOPE" in this report: showing XOM.'
    browser.refresh()
    WebDriverWait(browser, 30).until(
        lambda d: d.execute_script("return document.readyState") == "complete"
    )
    note = browser.find_element("id", "symbol-note")
    assert note.is_displayed() and note.text == 'No symbol "NOPE" in this report: showing AAPL.'
    assert text_of(browser, "fan-title").startswith("AAPL:")
    assert browser.find_elements("css selector", "#fan .main-svg")
    # lower case finds the symbol; a right-to-left override or a huge name stays in its box
    browser.get(page.as_uri() + "#symbol=ko")
    WebDriverWait(browser, 5).until(lambda _: text_of(browser, "fan-title").startswith("KO:"))
    browser.get(page.as_uri() + "#symbol=%E2%80%AE" + "X" * 5000)
    WebDriverWait(browser, 5).until(lambda _: note.is_displayed())
    assert note.find_element("tag name", "bdi").text.endswith("XXX")
    width = "return document.documentElement.scrollWidth <= window.innerWidth + 1"
    assert browser.execute_script(width)
    assert errors(browser) == []
