"""How rpbook's reports look in a notebook: one HTML table builder and the headless progress bar.

JupyterLab's stylesheet right-aligns every table cell of an HTML output, which leaves prose
ragged on the left; so every cell here states its alignment (text left, numbers right).

Every class whose objects a runbook displays goes through :func:`rich_output`, the one place that
decides how rpbook's reports reach a notebook's outputs:

- its HTML is wrapped in a ``<div class="mathjax_ignore tex2jax_ignore">``: JupyterLab typesets
  every HTML output with MathJax 3 (TeX input, ``$...$`` inline math, in its mathjax extension),
  so two dollar amounts in one cell ("× $1.12/h = $5.58/h") became an italic formula. MathJax skips
  the subtree of an element with its ``ignoreHtmlClass`` (``mathjax_ignore`` in MathJax 3,
  ``tex2jax_ignore`` in MathJax 2, which older Notebook front ends load);
- its ``text/plain`` (what a plain viewer, ``nbconvert --to markdown`` or a terminal shows) is the
  class's ``__str__`` clipped to whole lines within :data:`MAX_TEXT_BYTES`, never the dataclass
  repr (one of which, a load test's, held 48 KB of request records).

Executed notebooks are a run's record, so a headless run (papermill, nbmake: no person at the
kernel) must keep only final states. tqdm's notebook widget is saved in its first state by a
headless run, and its text form keeps every intermediate redraw; ``progress_bar`` draws nothing
while a headless run waits and prints the bar once, in its final state, when it closes.
"""

from __future__ import annotations

import functools
import html
import inspect
import time
from collections.abc import Callable, Collection, Sequence
from typing import Any, TypeVar

from tqdm.auto import tqdm

from rpbook.core import person

LEFT = "text-align:left;vertical-align:top"
RIGHT = "text-align:right;vertical-align:top"
NO_MATH_CLASS = "mathjax_ignore tex2jax_ignore"
"""MathJax 3's and MathJax 2's ``ignoreHtmlClass``: nothing inside is typeset as math."""
MAX_TEXT_BYTES = 2000
"""The most a ``text/plain`` output of rpbook's may hold (UTF-8 bytes)."""
RICH_OUTPUT_MARK = "__rpbook_rich_output__"

T = TypeVar("T", bound=type)


def no_math(html_text: str) -> str:
    """``html_text`` in a block MathJax leaves alone, so ``$`` amounts read as money."""
    return f'<div class="{NO_MATH_CLASS}">{html_text}</div>'


def clip_text(text: str, limit: int = MAX_TEXT_BYTES) -> str:
    """``text`` cut at a line end to at most ``limit`` UTF-8 bytes, saying how many lines were left out."""
    if len(text.encode()) <= limit:
        return text
    lines = text.splitlines()
    kept: list[str] = []
    size = 0
    budget = limit - 80  # room for the closing note
    for line in lines:
        size += len(line.encode()) + 1
        if size > budget:
            break
        kept.append(line)
    if not kept:  # one long line
        kept = [text.encode()[:budget].decode(errors="ignore")]
        return f"{kept[0]} … (cut; the HTML output shows all)"
    return "\n".join(kept) + f"\n… ({len(lines) - len(kept)} more line(s) in the HTML output)"


def _generated(function: Any) -> bool:
    """True for a method ``dataclasses`` wrote (its code comes from a string, not a source file)."""
    inner = inspect.unwrap(function)  # dataclasses wraps its __repr__ in a recursion guard
    code = getattr(inner, "__code__", None)
    return code is None or code.co_filename == "<string>" or "__create_fn__" in inner.__qualname__


def _text_summary(cls: type) -> Callable[[Any], str]:
    """The class's own short text: its ``__str__``, else a ``__repr__`` it wrote itself."""
    if vars(object)["__str__"] is not getattr(cls, "__str__", None):
        return str
    own: Callable[[Any], str] = getattr(cls, "__repr__")  # noqa: B009 - typed as a plain function here
    if own is vars(object)["__repr__"] or _generated(own) or getattr(own, RICH_OUTPUT_MARK, False):
        raise TypeError(f"{cls.__name__} needs a __str__ (its short text summary) to be a rich output")
    return own


def rich_output(cls: T) -> T:
    """Class decorator for what runbooks display: HTML without math typesetting (:func:`no_math`) and a
    short ``text/plain`` (``__str__`` clipped by :func:`clip_text`). Apply it above ``@dataclass``,
    which would otherwise put back its generated ``__repr__``."""
    render: Callable[[Any], str] | None = getattr(cls, "_repr_html_", None)
    if render is not None and not getattr(render, RICH_OUTPUT_MARK, False):
        original = render

        @functools.wraps(original)
        def _repr_html_(self: Any) -> str:
            return no_math(original(self))

        setattr(_repr_html_, RICH_OUTPUT_MARK, True)
        cls._repr_html_ = _repr_html_  # type: ignore[attr-defined]

    summary = _text_summary(cls)

    def __repr__(self: Any) -> str:
        return clip_text(summary(self))

    setattr(__repr__, RICH_OUTPUT_MARK, True)
    cls.__repr__ = __repr__  # type: ignore[method-assign,assignment]
    return cls


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
