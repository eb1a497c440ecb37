"""Read the errors Runpod's workers report, whichever way they reached us, as one short line.

A worker error arrives in several shapes, and a raw dump of any of them buries the one sentence
that says what went wrong:

* a FAILED job's ``error`` from a plain handler that raised: runpod-python's JSON
  ``{"error_type", "error_message", "error_traceback", ...}`` (``rp_job.run_job``);
* from a generator handler that raised: ``"handler: <message> \\ntraceback: ..."``
  (``rp_job.run_job_generator``);
* from a generator that yielded ``{"error": {...}}``, as worker-vllm v2.25.2 does for an HTTP
  error of ``vllm serve`` (src/handler.py): the SDK's ``str()`` of that dict, a Python ``repr``
  such as ``{'message': 'vLLM returned HTTP 404: {"error": {...}}', 'type': 'worker_error', ...}``;
* the same error on the OpenAI routes, as an OpenAI error body (``error.message``).

``worker-vllm`` puts vLLM's own JSON body after ``vLLM returned HTTP <status>:``; its message is
the useful part ("The model `x` does not exist."), so it is unwrapped, keeping the status.

An UNHEALTHY worker reports no job error at all: its reason is in its log. :func:`unhealthy_cause`
reads the log lines for it. A ``{{ RUNPOD_SECRET_name }}`` reference still written as such in a
worker's log means Runpod did not substitute it, i.e. the account has no such secret (runpod/docs
``pods/templates/secrets.mdx``: the value is substituted when the worker starts, and deployments
that use a deleted secret fail); localpod logs the reference this way when it refuses the start.
"""

from __future__ import annotations

import ast
import json
import re
from typing import Any

_PARSE_LIMIT = 100_000
"""Longer error texts are shown as they are (a worker's error is a few hundred characters)."""
_VLLM_HTTP = re.compile(r"^vLLM returned HTTP (\d{3}): (.*)$", re.DOTALL)
_SECRET_REFERENCE = re.compile(r"\{\{\s*RUNPOD_SECRET_([A-Za-z_][A-Za-z0-9_.\-/]*)\s*\}\}")
_START_FAILED = "container exited during start:"


def _parse(text: str) -> Any:
    """``text`` as JSON, else as a Python literal (the SDK's ``str(dict)``), else None."""
    stripped = text.strip()
    if not stripped or stripped[0] not in "{[" or len(stripped) > _PARSE_LIMIT:
        return None
    try:
        return json.loads(stripped)
    except ValueError:
        pass
    try:
        return ast.literal_eval(stripped)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None


def _message_of(value: Any) -> str | None:
    """The human message inside an error value (dict shapes of the workers, SDK and OpenAI)."""
    if isinstance(value, str):
        return value
    if not isinstance(value, dict):
        return None
    if "error_message" in value:
        return f"{value.get('error_type', 'error')}: {value['error_message']}"
    inner = value.get("error")
    if isinstance(inner, (dict, str)) and inner:
        return _message_of(inner)
    message = value.get("message") or value.get("detail")
    return message if isinstance(message, str) else None


def worker_error_text(raw: Any) -> str:
    """One line saying what the worker reported, from any of the shapes above (unscrubbed:
    callers scrub before showing it)."""
    text = raw if isinstance(raw, str) else json.dumps(raw, default=str)
    for _ in range(4):  # a few layers at most: repr -> message -> vLLM body -> message
        parsed = _parse(text)
        message = _message_of(parsed) if parsed is not None else None
        if message is not None and message != text:
            text = message
            continue
        vllm = _VLLM_HTTP.match(text)
        if vllm:
            status, body = vllm.groups()
            inner = _parse(body)
            inner_message = _message_of(inner) if inner is not None else None
            text = f"vLLM answered HTTP {status}: {inner_message or body.strip()}"
        break
    if text.startswith("handler: ") and "\ntraceback:" in text:
        text = text[len("handler: ") : text.index("\ntraceback:")].rstrip()
    return text


def unhealthy_cause(log_lines: list[str]) -> tuple[str, bool] | None:
    """Why unhealthy workers cannot start, from their log lines, and whether that is the whole
    story: a Runpod secret the account does not have (named, with the fix: True), else the last
    start failure the log states (False: the usual causes still apply), else None."""
    missing: list[str] = []
    for line in log_lines:
        missing += [name for name in _SECRET_REFERENCE.findall(line) if name not in missing]
    if missing:
        references = ", ".join("{{ RUNPOD_SECRET_" + name + " }}" for name in missing)
        return (
            f"the workers' log shows {references} unresolved: the account has no Runpod secret named "
            f"{', '.join(repr(n) for n in missing)}. Create it under Secrets in the Runpod console "
            "(https://www.console.runpod.io/user/secrets) or fix the reference (runbook 02: hf_token_ref; "
            "its preflight checks it), then rerun runbook 02 and wake again",
            True,
        )
    failures = [line.split(_START_FAILED, 1)[1].strip() for line in log_lines if _START_FAILED in line]
    if failures:
        return f"the workers' log says the container exited during start: {failures[-1][:400]}", False
    return None
