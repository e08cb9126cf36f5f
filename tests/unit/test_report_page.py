"""The report page's Markdown-to-HTML converter (``core.report.markdown``, the model card's
renderer) and the page around it (``core.report.page``): the card's subset comes out as
headings, paragraphs and tables, and no character of it can make an element of its own."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from core.modeling.scorecard import model_card
from core.report.markdown import markdown_html
from core.report.page import render

STORE_V2 = Path(__file__).resolve().parents[1] / "data" / "store_v2"
ALLOWED = {"h3", "h4", "h5", "h6", "p", "br", "code", "strong", "div", "table"}
ALLOWED |= {"thead", "tbody", "tr", "th", "td"}
HOSTILE = '<img src=x onerror="alert(1)">&amp;<script>alert(2)</script>'


class Elements(HTMLParser):
    """Every start tag and its attributes, and the text, of an HTML fragment."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parsed(fragment: str) -> Elements:
    """The fragment parsed as a browser would tokenise it."""
    parser = Elements()
    parser.feed(fragment)
    parser.close()
    return parser


def test_headings_paragraphs_and_inline_code_and_bold():
    text = "# Model card: `run-1`\n\nDeployed: **lightgbm**. Named by\nmodel.name.\n\n## Tests ##"
    assert markdown_html(text) == (
        "<h3>Model card: <code>run-1</code></h3>\n"
        "<p>Deployed: <strong>lightgbm</strong>. Named by<br>\nmodel.name.</p>\n"
        "<h4>Tests</h4>"
    )
    assert markdown_html("# A", top=2) == "<h2>A</h2>"
    assert markdown_html("###### deep", top=3) == "<h6>deep</h6>"  # h6 at most


def test_pipe_tables_become_tables():
    text = (
        "Per level:\n\n| level | exceedance | p |\n|:---|---:|---|\n| 0.01 | 0.0163 | 0.414 |\n"
        "| 0.5 | 0.5184 |\n| 0.99 | 0.98 | 0.5 | extra |\ntext after"
    )
    html_ = markdown_html(text)
    assert html_.startswith('<p>Per level:</p>\n<div class="table-wrap"><table><thead><tr>')
    assert "<th>level</th><th>exceedance</th><th>p</th>" in html_
    rows = re.findall(r"<tr>(.*?)</tr>", html_.split("<tbody>")[1])
    assert rows == [
        "<td>0.01</td><td>0.0163</td><td>0.414</td>",
        "<td>0.5</td><td>0.5184</td><td></td>",  # a short row padded
        "<td>0.99</td><td>0.98</td><td>0.5</td>",  # a long one cut to the header
    ]
    assert html_.endswith("</tbody></table></div>\n<p>text after</p>")


def test_what_is_not_in_the_subset_stays_text():
    assert markdown_html("| a | b |\nno separator") == "<p>| a | b |<br>\nno separator</p>"
    assert markdown_html("#hashtag") == "<p>#hashtag</p>"
    assert markdown_html("## C#") == "<h4>C#</h4>"
    assert markdown_html("**open and `a **b** c`") == "<p>**open and <code>a **b** c</code></p>"
    assert markdown_html("pinball_tau_k, *x*, 2 * 3") == "<p>pinball_tau_k, *x*, 2 * 3</p>"
    assert markdown_html("") == "" and markdown_html("\n\n") == ""


def test_every_piece_of_text_is_escaped():
    text = (
        f"# {HOSTILE}\n\n{HOSTILE} **{HOSTILE}** `{HOSTILE}`\n\n"
        f"| {HOSTILE} | b |\n|---|---|\n| `{HOSTILE}` | **{HOSTILE}** |"
    )
    out = markdown_html(text)
    assert "<img" not in out and "<script" not in out and 'onerror="' not in out
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;&amp;amp;&lt;script&gt;" in out
    found = parsed(out)
    assert {tag for tag, _ in found.tags} == ALLOWED - {"h4", "h5", "h6", "br"}
    assert all(attrs in ([], [("class", "table-wrap")]) for _, attrs in found.tags)
    assert "".join(found.text).count(HOSTILE) == 7  # shown as the text it is, every time


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab <>&\"'|*#`-:\n/=")), max_size=120))
def test_no_input_makes_an_element_outside_the_subset(text):
    found = parsed(markdown_html(text))
    assert {tag for tag, _ in found.tags} <= ALLOWED
    assert all(attrs in ([], [("class", "table-wrap")]) for _, attrs in found.tags)


def test_the_model_card_of_a_real_run():
    run = next((STORE_V2 / "models").glob("2*"))
    metrics = json.loads((run / "metrics.json").read_text())
    card = model_card(metrics, run.name)
    out = markdown_html(card)
    found = parsed(out)
    assert out.startswith(f"<h3>Model card: <code>{run.name}</code></h3>")
    assert out.count("<table>") == 2  # every method, then the deployed one's levels
    rows = len(metrics["calibrated"]) + len(metrics["raw"]) + len(metrics["quantiles"])
    assert out.count("<tr>") == 2 + rows
    assert "|" not in "".join(found.text)  # no table line left as text
    assert "**" not in "".join(found.text)


def page_data(card: str) -> dict[str, Any]:
    """The least data ``render`` draws a page from."""
    return {
        "as_of": "2024-01-02",
        "run_id": "r1",
        "model": "lightgbm",
        "horizon": 3,
        "target": 0.8,
        "generated_at": "2024-01-02T00:00:00+00:00",
        "model_card": card,
    }


def test_the_page_shows_the_card_as_html_and_titles_above_charts():
    page = render(page_data(f"# Card\n\n| a | b |\n|---|---|\n| {HOSTILE} | 2 |"), "")
    assert '<div id="card" class="card"><h3>Card</h3>' in page
    assert "<pre" not in page and "<table><thead><tr><th>a</th>" in page
    assert "<img" not in page and "&lt;img src=x" in page
    data = json.loads(page.split('id="report-data">', 1)[1].split("</script>", 1)[0])
    assert "model_card" not in data and data["run_id"] == "r1"  # the card is in the page once
    charts = re.findall(r'<div id="([\w-]+)" class="chart">', page)
    assert charts == ["fan", "coverage", "calibration", "pinball", "exceptions", "var-symbol", "es"]
    for chart in charts:  # each with its heading right above it, outside the chart
        assert f'id="{chart}-title">' in page.split(f'<div id="{chart}"')[0][-200:]


def test_a_card_that_is_a_sentence_is_one_paragraph():
    note = "run r1 predates per-level calibration (layout 1): retrain (python -m flows.train)"
    assert f'<div id="card" class="card"><p>{note}</p></div>' in render(page_data(note), "")
