"""A scripted conversation with pauses, to see what keep-alive changes: per-turn TTFT, cold starts, cost.

Each turn asks ``/health`` first (no ready worker means this turn meets a cold start; ``/health``
is not a job, so it resets no idle timer), then streams one chat completion through the ``openai``
client (wrapped by the keep-alive when there is one) and times its first token. Between turns the
conversation sleeps ``pause_s``: longer than the endpoint's idle timeout, a pause lets the last
worker stop unless something keeps it warm.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rpbook.account.jobqueue import _as_secret, health
from rpbook.core.display import html_table, rich_output
from rpbook.core.secrets import Secret
from rpbook.core.settings import Settings
from rpbook.endpoint.chat import openai_client
from rpbook.endpoint.keepalive import KeepAlive, Strategy
from rpbook.endpoint.keepalive_report import KeepAliveReport

if TYPE_CHECKING:
    from rpbook.core.pending import NotCreated, Skipped

DEFAULT_PROMPTS = (
    "Hello! Can you help me plan a trip?",
    "What should I pack for three days?",
    "And what about the weather there?",
    "Thanks, one last tip?",
)


@dataclass(frozen=True)
class Turn:
    index: int
    started_s: float
    """Seconds since the conversation started."""
    cold: bool
    ttft_s: float
    total_s: float
    tokens: int


@rich_output
@dataclass
class ConversationReport:
    """Turns of one conversation and what its keep-alive did."""

    strategy: str
    pause_s: float
    turns: list[Turn] = field(default_factory=list)
    keepalive: KeepAliveReport | None = None

    @property
    def cold_after_first(self) -> int:
        return sum(1 for t in self.turns[1:] if t.cold)

    @property
    def usd(self) -> float:
        return 0.0 if self.keepalive is None or self.keepalive.usd is None else self.keepalive.usd

    @property
    def figures(self) -> dict[str, float | int | str]:
        ttfts = [t.ttft_s for t in self.turns[1:]] or [0.0]
        prefix = f"conv_{self.strategy}"
        return {
            f"{prefix}_turns": len(self.turns),
            f"{prefix}_cold_after_first": self.cold_after_first,
            f"{prefix}_max_ttft_after_first_s": round(max(ttfts), 4),
            f"{prefix}_usd": round(self.usd, 6),
            f"{prefix}_pings": len(self.keepalive.pings) if self.keepalive else 0,
        }

    def __str__(self) -> str:
        return (
            f"{self.strategy}: {len(self.turns)} turns, {self.cold_after_first} cold after the first, "
            f"keep-alive cost ${self.usd:.5f}"
        )

    def _repr_html_(self) -> str:
        rows = [
            [
                str(t.index + 1),
                f"{t.started_s:.2f}",
                "cold" if t.cold else "warm",
                f"{t.ttft_s * 1000:.0f}",
                str(t.tokens),
            ]
            for t in self.turns
        ]
        note = f"<p>{self}</p>" + (f"<p>{self.keepalive}</p>" if self.keepalive else "")
        return note + html_table(["turn", "at (s)", "worker", "TTFT (ms)", "tokens"], rows, right=(0, 1, 3, 4))


def run_conversation(
    settings: Settings,
    api_key: Secret | str,
    endpoint_id: str,
    model: str,
    *,
    strategy: Strategy = "off",
    pause_s: float = 150.0,
    prompts: Sequence[str] = DEFAULT_PROMPTS,
    max_tokens: int = 32,
    conversation_idle_s: float | None = None,
    max_session_s: float = 3600.0,
    cost_cap_usd: float | None = None,
    margin_s: float | None = None,
    time_scale: float = 1.0,
) -> ConversationReport:
    """Play ``prompts`` as one conversation with ``pause_s`` between turns, with keep-alive
    ``strategy`` (``off``, ``ping`` or ``pin``); the keep-alive ends with the conversation.
    ``time_scale`` multiplies ``pause_s`` and the endpoint's idle timeout (localpod's
    ``idle_timeout_scale``: a runbook plays two-minute pauses in seconds)."""
    pause_s = pause_s * time_scale
    secret = _as_secret(api_key)
    report = ConversationReport(strategy=strategy, pause_s=pause_s)
    client = openai_client(settings, secret, endpoint_id)
    # The first streamed call of a new openai client pays its own one-off setup (imports, the
    # connection): paid before turn 1 so that no strategy carries it.
    client.models.list()
    keepalive: KeepAlive | None = None
    if strategy != "off":
        keepalive = KeepAlive(
            settings,
            secret,
            endpoint_id,
            strategy=strategy,
            model=model,
            conversation_idle_s=conversation_idle_s or max(pause_s * 2, 1.0),
            max_session_s=max_session_s,
            cost_cap_usd=cost_cap_usd,
            margin_s=margin_s,
            time_scale=time_scale,
        )
        print(keepalive.estimate)
        keepalive.start()
        chat_client: Any = keepalive.wrap(client)
    else:
        chat_client = client
    messages: list[dict[str, str]] = []
    t0 = time.monotonic()
    try:
        for index, prompt in enumerate(prompts):
            if index:
                time.sleep(pause_s)
            cold = not health(settings, secret, endpoint_id).has_ready_worker
            messages.append({"role": "user", "content": prompt})
            started = time.monotonic()
            first: float | None = None
            parts: list[str] = []
            stream = chat_client.chat.completions.create(
                model=model, messages=messages, max_tokens=max_tokens, stream=True
            )
            for chunk in stream:
                delta = chunk.choices[0].delta.content if chunk.choices else None
                if delta:
                    if first is None:
                        first = time.monotonic()
                    parts.append(delta)
            end = time.monotonic()
            messages.append({"role": "assistant", "content": "".join(parts)})
            report.turns.append(Turn(index, started - t0, cold, (first or end) - started, end - started, len(parts)))
    finally:
        if keepalive is not None:
            report.keepalive = keepalive.stop("conversation closed")
    return report


def compare_plot(reports: Sequence[ConversationReport]) -> Any:
    """Per-turn TTFT of each strategy side by side (cold turns hatched), and the keep-alive cost."""
    from rpbook.core.plots import Chart, new_figure

    fig, (ax, cost_ax) = new_figure(10, 3.6, 2, gridspec_kw={"width_ratios": [3, 1]})
    width = 0.8 / max(len(reports), 1)
    for i, report in enumerate(reports):
        xs = [t.index + i * width for t in report.turns]
        bars = ax.bar(xs, [t.ttft_s * 1000 for t in report.turns], width, label=report.strategy)
        for bar, turn in zip(bars, report.turns, strict=True):
            if turn.cold:
                bar.set_hatch("//")
    ax.set_xticks(
        [i + 0.4 - width / 2 for i in range(max(len(r.turns) for r in reports))],
        [f"turn {i + 1}" for i in range(max(len(r.turns) for r in reports))],
    )
    ax.set_ylabel("time to first token (ms)")
    ax.set_yscale("log")
    ax.set_title("TTFT per turn (hatched: cold start)")
    ax.legend()
    labels = [f"{r.strategy}\n{len(r.keepalive.pings) if r.keepalive else 0} pings" for r in reports]
    cost_ax.bar(labels, [r.usd for r in reports], color="gray")
    cost_ax.set_title("keep-alive cost\n(USD, at most)")
    fig.tight_layout()
    return Chart(fig)


@rich_output
@dataclass
class Comparison:
    """The same conversation under each keep-alive strategy."""

    reports: list[ConversationReport]

    @property
    def figures(self) -> dict[str, float | int | str]:
        out: dict[str, float | int | str] = {}
        for report in self.reports:
            out.update(report.figures)
        return out

    def plot(self) -> Any:
        return compare_plot(self.reports)

    def __str__(self) -> str:
        return "\n".join(str(r) for r in self.reports)

    def _repr_html_(self) -> str:
        return "".join(f"<h4>{r.strategy}</h4>{r._repr_html_()}" for r in self.reports)


def compare_strategies(
    settings: Settings,
    api_key: Secret | str,
    endpoint_id: str | NotCreated,
    model: str,
    *,
    strategies: Sequence[str] = ("off", "ping", "pin"),
    **kwargs: Any,
) -> Comparison | Skipped:
    """Run :func:`run_conversation` once per strategy (same prompts and pauses); in a dry run whose
    plan would have created the endpoint, skip."""
    from rpbook.core.errors import ConfigError
    from rpbook.core.pending import NotCreated, skip
    from rpbook.endpoint.keepalive import STRATEGIES

    if isinstance(endpoint_id, NotCreated):
        return skip("converse with", endpoint_id)
    unknown = [s for s in strategies if s not in STRATEGIES]
    if unknown:
        raise ConfigError(f"unknown keep-alive strategies {unknown}; choose from {', '.join(STRATEGIES)}")
    return Comparison(
        [
            run_conversation(
                settings,
                api_key,
                endpoint_id,
                model,
                strategy=s,  # type: ignore[arg-type]
                **kwargs,
            )
            for s in strategies
        ]
    )


def plot(comparison: Comparison | Skipped) -> Any:
    """The comparison's figure, or nothing (with its line) when the step was skipped."""
    if not isinstance(comparison, Comparison):
        print(comparison)
        return None
    return comparison.plot()
