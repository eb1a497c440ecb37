"""How rpbook's reports look in a notebook: one HTML table builder and the headless progress bar.

JupyterLab's stylesheet right-aligns every table cell of an HTML output, which leaves prose
ragged on the left; so every cell here states its alignment (text left, numbers right).

Executed notebooks are a run's record, so a headless run (papermill, nbmake: no person at the
kernel) must keep only final states. tqdm's notebook widget is saved in its first state by a
headless run, and its text form keeps every intermediate redraw; ``progress_bar`` draws nothing
while a headless run waits and prints the bar once, in its final state, when it closes.
"""

from __future__ import annotations

import html
import time
from collections.abc import Collection, Sequence
from typing import Any

from tqdm.auto import tqdm

from rpbook.core import person

LEFT = "text-align:left;vertical-align:top"
RIGHT = "text-align:right;vertical-align:top"


def html_table(
    header: Sequence[str] | None,
    rows: Sequence[Sequence[str]],
    *,
    right: Collection[int] = (),
    code: Collection[int] = (),
    row_headers: bool = False,
) -> str:
    """A table whose cells are escaped here and aligned explicitly: columns in ``right`` (numbers)
    right, all others left; columns in ``code`` in monospace; with ``row_headers`` the first cell
    of each row is a ``<th>``."""

    def cell(index: int, value: str, tag: str = "td") -> str:
        text = html.escape(str(value))
        if index in code:
            text = f"<code>{text}</code>"
        return f'<{tag} style="{RIGHT if index in right else LEFT}">{text}</{tag}>'

    parts = ["<table>"]
    if header:
        parts.append("<thead><tr>" + "".join(cell(i, h, "th") for i, h in enumerate(header)) + "</tr></thead>")
    parts.append("<tbody>")
    for row in rows:
        parts.append(
            "<tr>" + "".join(cell(i, v, "th" if row_headers and i == 0 else "td") for i, v in enumerate(row)) + "</tr>"
        )
    parts.append("</tbody></table>")
    return "".join(parts)


class FinalStateBar:
    """The part of tqdm's interface rpbook uses, drawing nothing until ``close`` prints the final
    state once (the headless form of :func:`progress_bar`)."""

    def __init__(self, total: int, desc: str, bar_format: str) -> None:
        self.total, self.n, self.desc, self._format = total, 0, desc, bar_format
        self._start = time.monotonic()
        self._closed = False

    def set_description_str(self, desc: str, refresh: bool = True) -> None:
        self.desc = desc

    def refresh(self) -> None:
        """Nothing is drawn before the end."""

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        line = tqdm.format_meter(
            self.n,
            self.total,
            time.monotonic() - self._start,
            prefix=self.desc,
            bar_format=self._format,
            ncols=80,
            ascii=False,
        )
        print(line, flush=True)


def progress_bar(total: int, desc: str, *, bar_format: str, enabled: bool = True) -> Any:
    """tqdm's live bar for a person, :class:`FinalStateBar` for a headless run, nothing when disabled."""
    if not enabled:
        return tqdm(total=total, disable=True)
    if person.person_at_kernel():
        return tqdm(total=total, desc=desc, leave=True, bar_format=bar_format)
    return FinalStateBar(total, desc, bar_format)
