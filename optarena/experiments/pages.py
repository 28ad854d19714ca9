"""One document, two renderings: Markdown for the repository and a self-contained HTML page.

A :class:`Document` collects headings, paragraphs, tables and figures once and renders them as
Markdown (figures as links to PNG files beside it) and as one HTML file with inline CSS and the
figures embedded as base64 PNG: no external resource, so the page works offline and as an
attachment. Paragraph and cell text may use two pieces of Markdown, ```code``` and
``**bold**``; everything else is escaped.
"""

from __future__ import annotations

import base64
import html
import io
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from matplotlib.figure import Figure

from optarena.records import PLANNING_COSTS, Usage, costs_per_measurement

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0;
       color: #1d232a; background: #fafbfc; line-height: 1.45; }
main { max-width: 1180px; margin: 0 auto; padding: 1.5rem 2rem 4rem; }
h1 { font-size: 1.6rem; margin-bottom: .3rem; }
h2 { font-size: 1.25rem; margin-top: 2.5rem; padding-top: .6rem; border-top: 1px solid #d8dee4; }
h3 { font-size: 1.05rem; margin-top: 1.6rem; }
nav { font-size: .9rem; background: #fff; border: 1px solid #d8dee4; border-radius: 6px;
      padding: .5rem 1rem; }
nav ul { margin: .3rem 0; padding-left: 1.2rem; columns: 2; }
code { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: .85em;
       background: #eef1f4; padding: .05rem .25rem; border-radius: 3px; }
.table { overflow-x: auto; margin: .8rem 0; }
table { border-collapse: collapse; font-size: .86rem; background: #fff; }
th, td { border: 1px solid #d8dee4; padding: .3rem .55rem; text-align: right; white-space: nowrap; }
th { background: #f0f3f6; }
td:first-child, td:nth-child(2), th:first-child, th:nth-child(2) { text-align: left; }
tbody tr:nth-child(even) { background: #f8f9fb; }
figure { margin: 1rem 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #d8dee4; background: #fff; }
figcaption { font-size: .85rem; color: #57606a; }
.note { font-size: .9rem; color: #57606a; }
"""

_CODE = re.compile(r"`([^`]+)`")
_BOLD = re.compile(r"\*\*(.+?)\*\*")


def inline(text: str) -> str:
    """``text`` as HTML: escaped, with ```code``` and ``**bold**`` rendered."""
    escaped = html.escape(text, quote=False)
    return _BOLD.sub(r"<strong>\1</strong>", _CODE.sub(r"<code>\1</code>", escaped))


def anchor(text: str) -> str:
    """A file-name and URL-fragment friendly form of ``text``."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")


def cost_cells(groups: Sequence[Sequence[Usage]]) -> tuple[list[str], list[list[str]]]:
    """The headers and, per group of usages (an agent's runs, a submission), the cells of what
    they spent besides measurements, per measurement (:data:`~optarena.records.PLANNING_COSTS`:
    :func:`~optarena.records.costs_per_measurement`); only the costs some group spent, so
    searches that spend none of them get no column of zeros."""
    costs = [costs_per_measurement(usages) for usages in groups]
    spent = [name for name in PLANNING_COSTS if any(cost[name] > 0 for cost in costs)]
    return ([f"{PLANNING_COSTS[name]} / measurement" for name in spent],
            [[_three_digits(cost[name]) for name in spent] for cost in costs])


def _three_digits(value: float) -> str:
    """About three significant digits, without exponents above 1e-4 (``—`` for ``nan``)."""
    if math.isnan(value):
        return "—"
    return f"{value:.0f}" if abs(value) >= 100 else f"{value:.3g}"


def figure_png(figure: Figure, dpi: int = 110) -> bytes:
    """The figure as PNG bytes."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


@dataclass
class Table:
    """A table whose cells are text (with inline ```code``` and ``**bold**``)."""

    headers: list[str]
    rows: list[list[str]] = field(default_factory=list)

    @classmethod
    def from_markdown(cls, lines: list[str]) -> Table:
        """The table of Markdown ``lines``: a header row, the separator, then rows."""
        cells = [[cell.strip() for cell in line.strip().strip("|").split("|")] for line in lines]
        return cls(cells[0], cells[2:])

    def markdown(self) -> list[str]:
        """The table as Markdown lines."""
        return ["| " + " | ".join(self.headers) + " |", "|" + "---|" * len(self.headers),
                *("| " + " | ".join(row) + " |" for row in self.rows)]

    def html(self) -> str:
        """The table as an HTML element (scrolling sideways when wide)."""
        head = "".join(f"<th>{inline(cell)}</th>" for cell in self.headers)
        body = "".join("<tr>" + "".join(f"<td>{inline(cell)}</td>" for cell in row) + "</tr>"
                       for row in self.rows)
        return (f'<div class="table"><table><thead><tr>{head}</tr></thead>'
                f"<tbody>{body}</tbody></table></div>")


@dataclass
class Document:
    """A page built once and rendered as Markdown (:meth:`markdown`) and HTML (:meth:`html`)."""

    title: str
    _markdown: list[str] = field(default_factory=list, init=False)
    _html: list[str] = field(default_factory=list, init=False)
    _sections: list[tuple[str, str]] = field(default_factory=list, init=False)

    def heading(self, text: str, level: int = 2) -> None:
        """A heading; level-2 headings are listed in the HTML page's contents."""
        if level == 2:
            ident = f"s{len(self._sections)}-{anchor(text)}"
            self._sections.append((ident, text))
            self._html.append(f'<h2 id="{html.escape(ident)}">{inline(text)}</h2>')
        else:
            self._html.append(f"<h{level}>{inline(text)}</h{level}>")
        self._markdown += ["#" * level + " " + text, ""]

    def paragraph(self, text: str, note: bool = False) -> None:
        """A paragraph (``note``: set in small grey type in HTML)."""
        self._html.append(f'<p class="note">{inline(text)}</p>' if note else f"<p>{inline(text)}</p>")
        self._markdown += [text, ""]

    def bullets(self, items: list[str]) -> None:
        """A bulleted list."""
        self._html.append("<ul>" + "".join(f"<li>{inline(item)}</li>" for item in items) + "</ul>")
        self._markdown += [f"- {item}" for item in items] + [""]

    def table(self, table: Table) -> None:
        """A table."""
        self._html.append(table.html())
        self._markdown += [*table.markdown(), ""]

    def figure(self, png: bytes, file_name: str, alt: str, caption: str) -> None:
        """A figure: embedded in HTML, a link to ``file_name`` (written by the caller) in Markdown."""
        data = base64.b64encode(png).decode("ascii")
        self._html.append(f'<figure><img src="data:image/png;base64,{data}" '
                          f'alt="{html.escape(alt)}"><figcaption>{inline(caption)}</figcaption>'
                          "</figure>")
        self._markdown += [f"![{alt}]({file_name})", "", caption, ""]

    def markdown(self) -> str:
        """The document as Markdown."""
        return "\n".join([f"# {self.title}", "", *self._markdown])

    def html(self) -> str:
        """The document as a self-contained HTML page."""
        contents = "".join(f'<li><a href="#{html.escape(ident)}">{inline(text)}</a></li>'
                           for ident, text in self._sections)
        nav = f"<nav><strong>Contents</strong><ul>{contents}</ul></nav>" if contents else ""
        body = "\n".join(self._html)
        return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
                f"<title>{html.escape(self.title)}</title><style>{CSS}</style></head>"
                f"<body><main><h1>{html.escape(self.title)}</h1>{nav}\n{body}\n</main></body></html>\n")
