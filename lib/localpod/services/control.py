"""``/_localpod/*``: the emulator's own control routes for tests and benchmarks.

- ``GET /_localpod/health``: liveness, version, profile. Open (no key): it reveals nothing, and
  clients use it to learn whether a localpod answers at all.
- ``GET /_localpod/state``: every durable resource plus live workers and queue counts; secret env
  values are redacted (see :func:`redact_env`).
- ``POST /_localpod/reset``: forget all resources, jobs and workers.
- ``POST /_localpod/echo``: parses a JSON body and returns it; the bare-route baseline that the
  overhead benchmark compares the queue against (same server, same HTTP and JSON work).
- ``GET|PATCH /_localpod/config``: the timing profile (switch ``profile`` or override single
  durations, or the QUEUE_DELAY reading ``queue_delay_reading``), ``proxy_url``, ``rate_limits`` and
  ``max_workers_quota`` (the account's worker quota set directly, an int from 0; ``null``: what the
  balance buys, :mod:`localpod.resources.account`). GET also shows ``client_balance`` and the quota in
  force, ``max_workers_quota_in_force``.

Every route but health wants the Runpod API key localpod accepts, as the REST API does
(``Authorization: Bearer`` only; 401
problem otherwise): a web page can send a request to loopback, and without a key a cross-site POST
could wipe all state. Foreign ``Host``/``Origin`` headers are refused before these routes run
(:mod:`localpod.guard`).
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from localpod import __version__
from localpod.context import ServerContext
from localpod.http import JSONResponse, json_body, problem, strict_bearer_key
from localpod.profiles import QUEUE_DELAY_READINGS, Profile, get_profile
from localpod.resources import billing
from localpod.resources.account import max_workers_quota

REDACTED = "<redacted>"
_SECRET_WORDS = frozenset({"TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL", "CREDENTIALS", "APIKEY"})
_KEY_QUALIFIERS = frozenset({"API", "ACCESS", "PRIVATE", "SECRET", "AUTH", "SIGNING"})
_TOKEN_VALUE = re.compile(r"^(hf_|rpa_|rps_|sk-)[A-Za-z0-9_\-]{16,}$")
"""Hugging Face, Runpod and OpenAI-style token shapes: redacted under any name."""
_REFERENCE = re.compile(r"^\{\{\s*RUNPOD_SECRET_[A-Za-z_][A-Za-z0-9_.\-/]*\s*\}\}$")

MAX_DURATION_S = 7 * 24 * 3600.0
"""Longest duration a profile may hold (Runpod's own longest limit, the 7-day job TTL)."""
SCALER_TICK_RANGE = (0.001, 60.0)
"""The autoscaler must look at the queue: never ``0`` (a busy loop), never ``inf`` (no scaler)."""
MAX_BYTES_PER_S = 1e15
MAX_WORKERS_QUOTA = 10_000
"""Highest quota the override takes: far above any account (the docs' table stops at 60)."""
_CONFIG_KEYS = ("profile", "overrides", "proxy_url", "rate_limits", "max_workers_quota")


def redact_env(env: Mapping[str, str], known_secrets: set[str]) -> dict[str, str]:
    """An env map for display: values of secret-looking names (``HF_TOKEN``, ``*_API_KEY``...),
    token-shaped values and values equal to a key or secret localpod holds become ``<redacted>``;
    ``{{ RUNPOD_SECRET_x }}`` references are kept, since they are only names."""
    out: dict[str, str] = {}
    for key, value in env.items():
        if isinstance(value, str) and _REFERENCE.match(value.strip()):
            out[key] = value
        elif value and (_secret_name(key) or value in known_secrets or _TOKEN_VALUE.match(value.strip())):
            out[key] = REDACTED
        else:
            out[key] = value
    return out


def _secret_name(key: str) -> bool:
    """``HF_TOKEN``, ``HUGGING_FACE_HUB_TOKEN``, ``OPENAI_API_KEY``, ``DB_PASSWORD``: yes;
    ``MAX_NUM_BATCHED_TOKENS``, ``KEY_PREFIX``: no."""
    words = key.upper().replace("-", "_").split("_")
    return any(
        word in _SECRET_WORDS or (word == "KEY" and index > 0 and words[index - 1] in _KEY_QUALIFIERS)
        for index, word in enumerate(words)
    )


def validate_overrides(profile: Profile, overrides: Any) -> Profile:
    """``overrides`` (a JSON object of profile fields) applied to ``profile``, every value checked:
    a JSON number (not a string, not a boolean), finite and within the field's range."""
    if not isinstance(overrides, dict):
        raise ValueError('"overrides" must be an object of profile fields, e.g. {"container_start_s": 1}')
    errors: list[str] = []
    known = set(profile.to_dict()) - {"name"}
    for key, value in overrides.items():
        if key not in known:
            errors.append(f"overrides.{key}: unknown profile field; known: {', '.join(sorted(known))}")
            continue
        if key == "queue_delay_reading":
            if value not in QUEUE_DELAY_READINGS:
                errors.append(f"overrides.{key}: must be one of {', '.join(QUEUE_DELAY_READINGS)}, got {value!r}")
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            errors.append(f"overrides.{key}: must be a finite JSON number, got {value!r}")
            continue
        if key == "scaler_tick_s":
            low, high = SCALER_TICK_RANGE
            if not low <= value <= high:
                errors.append(f"overrides.{key}: must be between {low:g} and {high:g} seconds, got {value!r}")
        elif key.endswith("_bytes_per_s"):
            if not 0 < value <= MAX_BYTES_PER_S:
                errors.append(f"overrides.{key}: must be above 0 and at most {MAX_BYTES_PER_S:g}, got {value!r}")
        elif not 0 <= value <= MAX_DURATION_S:
            errors.append(f"overrides.{key}: must be between 0 and {MAX_DURATION_S:g} seconds, got {value!r}")
    if errors:
        raise _ConfigErrors(errors)
    result = profile.with_overrides(overrides)
    if result.parking_step2_s < result.parking_step1_s:
        # Idle parking lowers max workers to 2 first, then to 0 (Runpod endpoint-configurations).
        raise _ConfigErrors(
            [
                f"overrides.parking_step2_s ({result.parking_step2_s:g}) must not be below "
                f"parking_step1_s ({result.parking_step1_s:g}): step 2 (max workers 0) "
                "follows step 1 (max workers 2)"
            ]
        )
    return result


class _ConfigErrors(ValueError):
    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


def routes(ctx: ServerContext) -> list[BaseRoute]:
    settings = ctx.settings

    def known_secrets() -> set[str]:
        values = {settings.api_key, settings.hf_token, *settings.extra_api_keys, *settings.secrets.values()}
        if settings.proxy_api_key:
            values.add(settings.proxy_api_key)
        return {v for v in values if v}

    def guarded(fn: Any) -> Any:
        async def endpoint(request: Request) -> Response:
            key = strict_bearer_key(request)
            if not key:
                return problem(
                    401,
                    "missing API key: send Authorization: Bearer <the key localpod was started with "
                    "(LOCALPOD_API_KEY)>",
                    headers={"WWW-Authenticate": "Bearer"},
                )
            if not ctx.is_valid_api_key(key):
                return problem(
                    401,
                    "invalid API key: this localpod was started with another LOCALPOD_API_KEY",
                    headers={"WWW-Authenticate": "Bearer"},
                )
            return await fn(request)

        return endpoint

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "version": __version__, "profile": settings.profile.name})

    async def state(request: Request) -> Response:
        body = ctx.store.to_dict()
        hidden = known_secrets()
        for kind in ("templates", "endpoints"):
            for item in body[kind]:
                item["env"] = redact_env(item.get("env") or {}, hidden)
        body["live"] = ctx.platform.snapshot()
        return JSONResponse(body)

    async def reset(request: Request) -> Response:
        await ctx.platform.reset()
        ctx.store.reset()
        return JSONResponse({"status": "reset"})

    async def echo(request: Request) -> Response:
        try:
            return JSONResponse(await json_body(request))
        except ValueError as exc:
            return problem(400, str(exc))

    def config_body() -> dict[str, Any]:
        return {
            "profile": settings.profile.to_dict(),
            "proxy_url": settings.proxy_url,
            "rate_limits": settings.rate_limits,
            "max_workers_quota": ctx.store.account.max_workers_quota,
            "max_workers_quota_in_force": max_workers_quota(ctx.store),
            "client_balance": billing.client_balance(ctx.store, time.time()),
        }

    async def config(request: Request) -> Response:
        if request.method == "GET":
            return JSONResponse(config_body())
        try:
            body = await json_body(request)
        except ValueError as exc:
            return problem(400, str(exc))
        if not isinstance(body, dict):
            return problem(400, f"body must be a JSON object with any of: {', '.join(_CONFIG_KEYS)}")
        errors: list[str] = []
        unknown = set(body) - set(_CONFIG_KEYS)
        if unknown:
            errors.append(f"unknown config key(s): {', '.join(sorted(unknown))}")
        profile = settings.profile
        if "profile" in body:
            try:
                if not isinstance(body["profile"], str):
                    raise ValueError(f"profile must be a profile name (a string), got {body['profile']!r}")
                profile = get_profile(body["profile"])
            except ValueError as exc:
                errors.append(str(exc))
        if "overrides" in body:
            try:
                profile = validate_overrides(profile, body["overrides"])
            except _ConfigErrors as exc:
                errors.extend(exc.errors)
            except ValueError as exc:
                errors.append(str(exc))
        proxy_url = body.get("proxy_url")
        if proxy_url is not None and (not isinstance(proxy_url, str) or not re.match(r"^https?://[^\s/]+", proxy_url)):
            errors.append(f"proxy_url must be null or an http(s) URL, got {proxy_url!r}")
        if "rate_limits" in body and not isinstance(body["rate_limits"], bool):
            errors.append(f"rate_limits must be true or false (a JSON boolean), got {body['rate_limits']!r}")
        quota = body.get("max_workers_quota")
        if quota is not None and (
            isinstance(quota, bool) or not isinstance(quota, int) or not 0 <= quota <= MAX_WORKERS_QUOTA
        ):
            errors.append(
                f"max_workers_quota must be null (what the balance buys) or a whole number from 0 to "
                f"{MAX_WORKERS_QUOTA}, got {quota!r}"
            )
        if errors:
            return problem(400, "; ".join(errors), errors=errors)
        settings.profile = profile
        if "max_workers_quota" in body:
            with ctx.store.change():  # a write that fails is a 503 and changes nothing
                ctx.store.account.max_workers_quota = quota
        if "proxy_url" in body:
            settings.proxy_url = proxy_url or None
        if "rate_limits" in body:
            settings.rate_limits = body["rate_limits"]
        return JSONResponse(config_body())

    return [
        Route("/health", health, methods=["GET"]),
        Route("/state", guarded(state), methods=["GET"]),
        Route("/reset", guarded(reset), methods=["POST"]),
        Route("/config", guarded(config), methods=["GET", "PATCH"]),
        Route("/echo", guarded(echo), methods=["POST"]),
    ]
