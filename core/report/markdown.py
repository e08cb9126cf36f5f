"""The Markdown subset the model card is written in (``core.modeling.scorecard.model_card``),
as HTML for the report: ``#`` headings, paragraphs, pipe tables, inline code and bold.
Every piece of text goes through ``html.escape`` before any tag is added around it, so no
character of the card can open an element or an attribute; anything outside the subset is
shown as the text it is.
"""

from __future__ import annotations

import html
import re

HEADING = re.compile(r"^(#{1,6})\s+(.*?)(?:\s+#+)?\s*$")
SEPARATOR = re.compile(r"^\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*$")
CODE = re.compile(r"`([^`]+)`")
BOLD = re.compile(r"\*\*(\S(?:.*?\S)?)\*\*")


def inline(text: str) -> str:
    """One line's text escaped, with `code` spans and **bold** as elements (code stays
    verbatim: no bold inside it)."""
    out: list[str] = []
    for i, part in enumerate(CODE.split(text)):
        escaped = html.escape(part)
        out.append(
            f"<code>{escaped}</code>" if i % 2 else BOLD.sub(r"<strong>\1</strong>", escaped)
        )
    return "".join(out)


def cells(line: str) -> list[str]:
    """A table row's cells: the text between its pipes, outer pipes optional, trimmed."""
    row = line.strip()
    row = row[1:] if row.startswith("|") else row
    row = row[:-1] if row.endswith("|") else row
    return [c.strip() for c in row.split("|")]


def is_table_start(lines: list[str], i: int) -> bool:
    """A header row followed by a ``|---|`` separator row opens a table."""
    return (
        "|" in lines[i]
        and i + 1 < len(lines)
        and SEPARATOR.match(lines[i + 1].strip()) is not None
        and "|" in lines[i + 1]
    )


def table(header: str, rows: list[str]) -> str:
    """A pipe table as ``<table>``, rows padded or cut to the header's width."""
    head = cells(header)
    width = len(head)
    body = []
    for line in rows:
        row = (cells(line) + [""] * width)[:width]
        body.append("<tr>" + "".join(f"<td>{inline(c)}</td>" for c in row) + "</tr>")
    return (
        '<div class="table-wrap"><table><thead><tr>'
        + "".join(f"<th>{inline(c)}</th>" for c in head)
        + "</tr></thead><tbody>"
        + "".join(body)
        + "</tbody></table></div>"
    )


def heading(match: re.Match[str], top: int) -> str:
    """A ``#`` heading one level below ``top`` per ``#`` (h6 at most): the card sits under
    the page's own section headings."""
    level = min(len(match.group(1)) + top - 1, 6)
    return f"<h{level}>{inline(match.group(2))}</h{level}>"


def paragraph(lines: list[str]) -> str:
    """Consecutive text lines as one paragraph, each line kept on its own line (the card
    writes one statement per line)."""
    return "<p>" + "<br>\n".join(inline(line.strip()) for line in lines) + "</p>"


def markdown_html(text: str, top: int = 3) -> str:
    """The card's Markdown as HTML blocks (``top``: the level of a ``#`` heading)."""
    lines = text.splitlines()
    blocks: list[str] = []
    para: list[str] = []

    def flush() -> None:
        if para:
            blocks.append(paragraph(para))
            para.clear()

    i = 0
    while i < len(lines):
        line = lines[i]
        match = HEADING.match(line.strip())
        if not line.strip():
            flush()
        elif match:
            flush()
            blocks.append(heading(match, top))
        elif is_table_start(lines, i):
            flush()
            end = i + 2
            while end < len(lines) and lines[end].strip().startswith("|"):
                end += 1
            blocks.append(table(lines[i], lines[i + 2 : end]))
            i = end
            continue
        else:
            para.append(line)
        i += 1
    flush()
    return "\n".join(blocks)
