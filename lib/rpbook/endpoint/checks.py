"""What the chat and the embeddings checks share: a check's result, the report table, the guard that
turns a failed request into a failed check, and the served-model check both start with.

Both check families run against an endpoint's OpenAI routes and follow one contract: every check
runs and lands in the report as PASS, FAIL or INFO, a request that fails is a failed check (not an
exception out of the middle of the table), and with ``strict`` a report with a failure raises
``SanityCheckError`` carrying it (:func:`raise_if_failed`). The first check asks ``/models`` which
names the endpoint serves; when the expected one is missing the other checks are not run, since
each would fail the same way.
"""

from __future__ import annotations

import html
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import openai

from rpbook.account.workererrors import worker_error_text
from rpbook.core.display import html_table, rich_output
from rpbook.core.errors import CheckFailed, SanityCheckError
from rpbook.core.plots import latency_bars_html
from rpbook.core.secrets import scrub

Figure = float | int | str | bool

SERVED_MODEL = "served model"
"""Name of the first check of every report (tests and notebooks look for it)."""


@dataclass(frozen=True)
class CheckResult:
    """One check: did it pass, what was seen, and its measurements."""

    name: str
    ok: bool
    detail: str
    figures: dict[str, Figure] = field(default_factory=dict, hash=False)
    informational: bool = False
    """An observation, not a test (shown as INFO, not counted as passed); ``ok`` stays True."""

    @property
    def mark(self) -> str:
        """The result column: PASS, FAIL or INFO."""
        return "INFO" if self.informational and self.ok else ("PASS" if self.ok else "FAIL")


@rich_output
@dataclass(frozen=True)
class CheckReport:
    """Checks of one endpoint and model, shown as a PASS/FAIL table (text and HTML), scrubbed."""

    endpoint_id: str
    model: str
    checks: tuple[CheckResult, ...]

    kind = "checks"

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    @property
    def failed(self) -> tuple[CheckResult, ...]:
        return tuple(check for check in self.checks if not check.ok)

    @property
    def passed(self) -> tuple[CheckResult, ...]:
        """Checks that tested something and passed (informational ones are not counted)."""
        return tuple(check for check in self.checks if check.mark == "PASS")

    def verdict(self) -> str:
        """The headline's result: how many passed or failed, informational checks apart."""
        info = sum(1 for check in self.checks if check.mark == "INFO")
        extra = f", {info} informational" if info else ""
        if self.ok:
            return f"all {len(self.passed)} passed{extra}"
        return f"{len(self.failed)} failed, {len(self.passed)} passed{extra}"

    @property
    def figures(self) -> dict[str, Figure]:
        """Every check's figures in one dict."""
        out: dict[str, Figure] = {}
        for check in self.checks:
            out.update(check.figures)
        return out

    def subject(self) -> str:
        """What was checked, for the headline (subclasses add details such as a dimension)."""
        return self.model

    def __str__(self) -> str:
        width = max([len(c.name) for c in self.checks] + [5])
        lines = [f"{self.kind} of {self.subject()} on endpoint {self.endpoint_id}: {self.verdict()}"]
        for check in self.checks:
            lines.append(f"  {check.mark}  {check.name:<{width}}  {check.detail}")
        if self.figures:
            lines.append("  figures: " + ", ".join(f"{k}={_fmt(v)}" for k, v in self.figures.items()))
        return scrub("\n".join(lines))

    def _repr_html_(self) -> str:
        table = html_table(
            ["", "check", "result", "figures"],
            [
                (c.mark, c.name, c.detail, ", ".join(f"{k}={_fmt(v)}" for k, v in c.figures.items()))
                for c in self.checks
            ],
        )
        return scrub(
            f"<div><b>{html.escape(self.kind.capitalize())}</b> of {html.escape(self.subject())} on "
            f"endpoint <code>{html.escape(self.endpoint_id)}</code>: "
            f"{html.escape(self.verdict())}{table}{self._latency_plot()}</div>"
        )

    def latencies(self) -> list[tuple[str, float]]:
        """Each check's request time in seconds (its ``*_latency_s`` figure; ``ttft_s`` for the stream)."""
        out: list[tuple[str, float]] = []
        for check in self.checks:
            for key, value in check.figures.items():
                if isinstance(value, float) and (key.endswith("_latency_s") or key == "ttft_s"):
                    out.append((check.name if key.endswith("_latency_s") else f"{check.name} (first token)", value))
        return out

    def _latency_plot(self) -> str:
        return latency_bars_html(self.latencies(), f"{self.kind}: time per request")


def _fmt(value: Figure) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def raise_if_failed(report: CheckReport, what: str) -> None:
    """Raise ``SanityCheckError`` (the report on ``error.report``) when a check of ``report`` failed;
    ``what`` names the endpoint's kind in the message (``"endpoint"``, ``"embeddings endpoint"``)."""
    if not report.ok:
        raise SanityCheckError(
            scrub(f"{what} {report.endpoint_id} answered, but not as it should:\n{report}"), report=report
        )


# -- running checks -------------------------------------------------------------------------------


def client_error_detail(exc: BaseException) -> str:
    """An exception from the openai client (or any other), as one scrubbed line that says what to do.

    By type and status code: a 5xx or a timeout may have run on the worker (and been billed), which
    is why no client here retries on its own; a connection error is a wrong target or endpoint id."""
    text = str(exc)
    may_have_run = "; it reached the endpoint and may have run (and been billed), so it was not retried automatically"
    if isinstance(exc, openai.APIStatusError):
        # the body is the OpenAI error object; a worker error inside it (worker-vllm's "vLLM
        # returned HTTP 404: {...}") is unwrapped to vLLM's own message
        detail = worker_error_text(exc.body) if exc.body else exc.message
        text = f"HTTP {exc.status_code}: {detail}" + (may_have_run if exc.status_code >= 500 else "")
    elif isinstance(exc, openai.APITimeoutError):
        text = (
            "the request timed out: wake the endpoint first (rpbook.account.wakeup.wake) or raise the timeout"
            + may_have_run
        )
    elif isinstance(exc, openai.APIConnectionError):
        text = f"cannot connect to the endpoint ({exc}); check the target and the endpoint id"
    return scrub(f"{type(exc).__name__}: {text}")[:500]


def guard(name: str, check: Callable[[], CheckResult]) -> CheckResult:
    """Run one check; a request that raises is that check's failure, reported in the table, so the
    remaining checks still run and the reader sees every problem at once."""
    try:
        return check()
    except CheckFailed as exc:
        return CheckResult(name, False, scrub(str(exc)))
    except Exception as exc:  # noqa: BLE001 - a failed request is a failed check, reported in the table
        return CheckResult(name, False, client_error_detail(exc))


def check_served_model(
    client: openai.OpenAI, endpoint_id: str, expected: str, fix: str
) -> tuple[CheckResult, tuple[str, ...]]:
    """The ``served model`` check: does ``/models`` list ``expected``? Returns the check and the
    names served (empty when ``/models`` failed). ``fix`` ends the failure's detail: which setting
    decides the served name on this worker, and what to change."""
    started = time.monotonic()
    try:
        served = tuple(model.id for model in client.models.list())
    except Exception as exc:  # noqa: BLE001 - reported as the check's failure
        return CheckResult(
            SERVED_MODEL,
            False,
            f"/models on endpoint {endpoint_id} failed: {client_error_detail(exc)}. Other checks skipped.",
        ), ()
    figures: dict[str, Figure] = {"models_latency_s": round(time.monotonic() - started, 3)}
    if expected not in served:
        return CheckResult(
            SERVED_MODEL,
            False,
            scrub(
                f"endpoint {endpoint_id} does not serve {expected!r}; it serves "
                f"{list(served) or 'nothing'}. {fix} Other checks skipped."
            ),
            figures,
        ), served
    return CheckResult(SERVED_MODEL, True, f"/models lists {expected}", figures), served
