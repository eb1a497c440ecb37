"""Chat clients bound to a vLLM endpoint, and the sanity checks a new endpoint should pass.

A Runpod vLLM endpoint speaks OpenAI at ``{queue}/{endpoint_id}/openai/v1`` with the Runpod API key
as the bearer token, so the stock ``openai`` and ``langchain-openai`` clients work once their base
URL points there. ``sanity_checks`` goes one step further than "it answered": it checks the served
model name (the one clients must send), times a streamed answer (time to first token, tokens/s),
and shows vLLM's classic surprise, the 16-token default of ``/completions`` without ``max_tokens``.
Run ``rpbook.account.wakeup.wake`` first: a cold endpoint makes these calls wait for the cold start.
"""

from __future__ import annotations

import json
import shlex
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
from langchain_openai import ChatOpenAI
from openai.types.chat import ChatCompletionMessageParam
from pydantic import SecretStr

from rpbook.core.display import rich_output
from rpbook.core.pending import NotCreated, Skipped, skip
from rpbook.core.secrets import Secret, reveal_api_key, scrub
from rpbook.core.settings import Settings
from rpbook.endpoint.checks import CheckReport, CheckResult, Figure, check_served_model, guard, raise_if_failed

DEFAULT_PROMPT = "Hello, how are you?"
VLLM_COMPLETIONS_DEFAULT_MAX_TOKENS = 16
"""vLLM's ``max_tokens`` when a ``/completions`` request does not set one."""

SERVED_NAME_FIX = (
    "Clients must send the served name: vLLM serves MODEL_NAME (the HF repo id) unless "
    "OPENAI_SERVED_MODEL_NAME_OVERRIDE is set in the template env, in which case that name is the "
    "one to use. Fix the expected model parameter, or the template env and let workers restart."
)


# -- clients --------------------------------------------------------------------------------------


def openai_client(
    settings: Settings, api_key: Secret | str, endpoint_id: str, *, timeout: float = 120.0, max_retries: int = 0
) -> openai.OpenAI:
    """An ``openai.OpenAI`` for the endpoint's OpenAI routes. ``timeout`` covers one request; a
    cold endpoint needs its wake-up first (or a timeout longer than the cold start).

    No automatic retries by default (the SDK's default is 2): a generation that reached the worker
    and failed with a 5xx or timed out may have run and been billed, and retrying it silently ran
    each check up to three times. A failed check says so instead (``rpbook.endpoint.checks.client_error_detail``)."""
    return openai.OpenAI(
        base_url=settings.openai_base_url(endpoint_id),
        api_key=reveal_api_key(api_key),
        timeout=timeout,
        max_retries=max_retries,
    )


def langchain_chat(settings: Settings, api_key: Secret | str, endpoint_id: str, model: str, **kw: Any) -> ChatOpenAI:
    """A LangChain ``ChatOpenAI`` for the endpoint. ``max_tokens`` defaults to 512 (always bound the
    answer's length on a pay-per-second GPU); other keyword arguments go to ``ChatOpenAI``."""
    kw.setdefault("max_tokens", 512)
    kw.setdefault("timeout", 120.0)
    kw.setdefault("max_retries", 0)  # as openai_client: never repeat a generation behind the user's back
    return ChatOpenAI(
        model=model, base_url=settings.openai_base_url(endpoint_id), api_key=SecretStr(reveal_api_key(api_key)), **kw
    )


def curl_example(
    settings: Settings,
    endpoint_id: str | NotCreated,
    model: str,
    prompt: str = DEFAULT_PROMPT,
    *,
    max_tokens: int = 128,
) -> str:
    """The curl command for the chat route, with the one step that makes it work in a new shell:
    loading the env file, where runbook 02 wrote ``VLLM_API_KEY`` (``publish_endpoint``). The key is
    written as ``$VLLM_API_KEY`` (never its value); ``max_tokens`` is always set. A user's shell has
    no ``RUNPOD_API_KEY`` of its own (rpbook reads it from the env file, or uses localpod's default),
    so a command relying on it failed when pasted."""
    if isinstance(endpoint_id, NotCreated):
        return str(skip("show with curl", endpoint_id))
    url = f"{settings.openai_base_url(endpoint_id)}/chat/completions"
    body = json.dumps(
        {"model": model, "messages": [{"role": "user", "content": prompt}], "max_tokens": max_tokens},
        ensure_ascii=False,
    )
    env_file = shlex.quote(str(Path(settings.env_file).expanduser().absolute()))
    return (
        f"# once per shell: load VLLM_API_KEY (runbook 02 wrote it) from the env file\n"
        f"set -a; . {env_file}; set +a\n"
        f"curl -sS -X POST {shlex.quote(url)} \\\n"
        '  -H "Authorization: Bearer $VLLM_API_KEY" \\\n'
        "  -H 'Content-Type: application/json' \\\n"
        f"  -d {shlex.quote(scrub(body))}"
    )


# -- report ---------------------------------------------------------------------------------------


@rich_output
@dataclass(frozen=True)
class SanityReport(CheckReport):
    """All sanity checks of one chat endpoint and model (figures: ttft_s, tokens_per_s, …)."""

    kind = "sanity checks"


# -- checks ---------------------------------------------------------------------------------------


def sanity_checks(
    settings: Settings,
    api_key: Secret | str,
    endpoint_id: str | NotCreated,
    expected_model: str,
    *,
    prompt: str = DEFAULT_PROMPT,
    max_tokens: int = 128,
    timeout: float = 120.0,
    strict: bool = True,
) -> SanityReport | Skipped:
    """Check the endpoint serves ``expected_model`` and answers plain, streamed, completion and
    LangChain requests. When ``/models`` does not list the model the other checks are not run
    (every one would fail with it). With ``strict`` a failed check raises ``SanityCheckError``
    after the checks ran (the report is on ``error.report``); otherwise read ``report.ok``."""
    if isinstance(endpoint_id, NotCreated):
        return skip("check", endpoint_id)
    client = openai_client(settings, api_key, endpoint_id, timeout=timeout)
    served, _ = check_served_model(client, endpoint_id, expected_model, SERVED_NAME_FIX)
    checks: list[CheckResult] = [served]
    if served.ok:
        messages: list[ChatCompletionMessageParam] = [{"role": "user", "content": prompt}]
        checks.append(guard("chat completion", lambda: _check_chat(client, expected_model, messages, max_tokens)))
        checks.append(guard("streamed chat", lambda: _check_stream(client, expected_model, messages, max_tokens)))
        checks.append(guard("max_tokens trap", lambda: _check_trap(client, expected_model, prompt)))
        checks.append(
            guard(
                "langchain",
                lambda: _check_langchain(settings, api_key, endpoint_id, expected_model, prompt, max_tokens, timeout),
            )
        )
    report = SanityReport(endpoint_id=endpoint_id, model=expected_model, checks=tuple(checks))
    if strict:
        raise_if_failed(report, "endpoint")
    return report


def _check_chat(
    client: openai.OpenAI, model: str, messages: list[ChatCompletionMessageParam], max_tokens: int
) -> CheckResult:
    started = time.monotonic()
    response = client.chat.completions.create(
        model=model,
        messages=messages,
        max_tokens=max_tokens,
    )
    elapsed = time.monotonic() - started
    content = (response.choices[0].message.content or "").strip() if response.choices else ""
    usage = response.usage
    figures: dict[str, Figure] = {"chat_latency_s": round(elapsed, 3)}
    if usage is not None:
        figures.update(chat_prompt_tokens=usage.prompt_tokens, chat_completion_tokens=usage.completion_tokens)
    problems = [text for bad, text in ((not content, "empty answer"), (usage is None, "no usage")) if bad]
    if problems or usage is None:  # a missing usage is one of the problems
        return CheckResult("chat completion", False, f"{' and '.join(problems)} from /chat/completions", figures)
    finish = response.choices[0].finish_reason
    return CheckResult(
        "chat completion",
        True,
        f"answered {usage.completion_tokens} tokens in {elapsed:.2f} s (finish: {finish}): {_preview(content)}",
        figures,
    )


def _check_stream(
    client: openai.OpenAI, model: str, messages: list[ChatCompletionMessageParam], max_tokens: int
) -> CheckResult:
    started = time.monotonic()
    stream = client.chat.completions.create(
        model=model,
        messages=messages,
        max_tokens=max_tokens,
        stream=True,
        stream_options={"include_usage": True},
    )
    first: float | None = None
    last = started
    chunks = content_chunks = 0
    usage_tokens: int | None = None
    parts: list[str] = []
    for chunk in stream:
        chunks += 1
        now = time.monotonic()
        if chunk.usage is not None:
            usage_tokens = chunk.usage.completion_tokens
        for choice in chunk.choices:
            text = choice.delta.content if choice.delta is not None else None
            if text:
                content_chunks += 1
                parts.append(text)
                last = now
                if first is None:
                    first = now
    if first is None:
        return CheckResult("streamed chat", False, f"no content in {chunks} streamed chunks", {"stream_chunks": chunks})
    tokens = usage_tokens if usage_tokens is not None else content_chunks
    streaming = last - first
    figures: dict[str, Figure] = {
        "ttft_s": round(first - started, 3),
        "stream_chunks": chunks,
        "stream_completion_tokens": tokens,
        "stream_total_s": round(last - started, 3),
    }
    if streaming > 0:
        figures["tokens_per_s"] = round(tokens / streaming, 1)
    rate = f"{figures['tokens_per_s']} tokens/s" if "tokens_per_s" in figures else "one chunk"
    counted = "" if usage_tokens is not None else " (no usage chunk: tokens counted as content chunks)"
    return CheckResult(
        "streamed chat",
        True,
        f"first token after {first - started:.2f} s, {tokens} tokens in {chunks} chunks, {rate}{counted}",
        figures,
    )


def _check_trap(client: openai.OpenAI, model: str, prompt: str) -> CheckResult:
    response = client.completions.create(model=model, prompt=prompt)  # no max_tokens, on purpose
    tokens = response.usage.completion_tokens if response.usage is not None else None
    finish = response.choices[0].finish_reason if response.choices else None
    hit = tokens == VLLM_COMPLETIONS_DEFAULT_MAX_TOKENS and finish == "length"
    figures: dict[str, Figure] = {"no_max_tokens_finish_reason": str(finish), "max_tokens_trap": hit}
    if tokens is not None:
        figures["no_max_tokens_completion_tokens"] = tokens
    if hit:
        detail = (
            f"/completions without max_tokens stopped at {tokens} tokens (finish_reason 'length'): vLLM's "
            f"default max_tokens for completions is {VLLM_COMPLETIONS_DEFAULT_MAX_TOKENS}, so answers look "
            "cut off. Always pass max_tokens (sampling_params.max_tokens in queue jobs)."
        )
    else:
        detail = (
            f"/completions without max_tokens gave {tokens} tokens (finish_reason {finish!r}); still, always "
            "pass max_tokens: vLLM's completions default is 16 tokens."
        )
    # What vLLM does without max_tokens is an observation for the reader, not a property of a
    # healthy endpoint: INFO, not PASS. A failed request still fails the check (through guard).
    return CheckResult("max_tokens trap", True, detail, figures, informational=True)


def _check_langchain(
    settings: Settings,
    api_key: Secret | str,
    endpoint_id: str,
    model: str,
    prompt: str,
    max_tokens: int,
    timeout: float,
) -> CheckResult:
    chat = langchain_chat(settings, api_key, endpoint_id, model, max_tokens=max_tokens, timeout=timeout)
    started = time.monotonic()
    message = chat.invoke(prompt)
    elapsed = time.monotonic() - started
    content = message.content if isinstance(message.content, str) else json.dumps(message.content)
    figures: dict[str, Figure] = {"langchain_latency_s": round(elapsed, 3)}
    if not content.strip():
        return CheckResult("langchain", False, "ChatOpenAI.invoke returned an empty answer", figures)
    return CheckResult(
        "langchain", True, f"ChatOpenAI.invoke answered in {elapsed:.2f} s: {_preview(content)}", figures
    )


def _preview(text: str, limit: int = 60) -> str:
    one_line = " ".join(text.split())
    return scrub(one_line if len(one_line) <= limit else one_line[: limit - 1] + "…")
