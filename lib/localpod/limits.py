"""Bounds on what clients may send, the way Runpod and vLLM bound them, so no single request can
stall localpod's event loop, bloat every state commit or make localpod call where it must not.

Sources:

- Job ``policy`` (Runpod docs, ``serverless/endpoints/send-requests``, summarised in
  /work/shared/reference/runpod-api.md): ``executionTimeout`` in ms, 5 s to 7 days; ``ttl`` in ms,
  10 s to 7 days; ``lowPriority`` a boolean. JSON booleans are not numbers here (Python's
  ``isinstance(True, int)`` made ``true`` a 1 ms timeout).
- Env: Runpod docs (``pods/templates/environment-variables``): "up to 50 environment variables".
  No value size is documented; Linux refuses any single ``KEY=value`` string above
  ``MAX_ARG_STRLEN`` (32 pages, 131072 bytes, execve(2)), so no container could start with more.
- Webhooks: Runpod POSTs the result to the URL from its own network; localpod POSTs from the
  user's machine, where link-local addresses are the cloud metadata service (169.254.169.254) and
  router admin pages. Only http(s) URLs, and no link-local, multicast or unspecified addresses.
  Loopback stays allowed: a local webhook receiver is the normal way to test them.
  Hosts are read the way the HTTP client's resolver reads them: glibc's ``getaddrinfo`` (through
  ``inet_aton``) takes ``2852039166``, ``0xa9fea9fe``, ``0251.0376.0251.0376`` and
  ``169.254.43518`` as 169.254.169.254, so those are refused like the dotted form (issue 20). A host
  name is checked again when the result is delivered: every address it resolves to then must be
  allowed, and the POST goes to the address that was checked (no second lookup a rebinding DNS
  server could answer differently).
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

MIN_EXECUTION_TIMEOUT_MS = 5_000
MAX_EXECUTION_TIMEOUT_MS = 7 * 24 * 3600 * 1000
MIN_TTL_MS = 10_000
MAX_TTL_MS = 7 * 24 * 3600 * 1000
MAX_ENV_VARS = 50
MAX_ENV_ENTRY_BYTES = 131_072
MAX_ENV_KEY_CHARS = 255
MAX_WEBHOOK_CHARS = 2048
MAX_NAME_CHARS = 191
"""Template, endpoint and volume names. Neither the REST v2 spec (``minLength: 1`` only) nor the docs
state a maximum; 191 is rpbook's cap (``rpbook.account.specs``), the usual bound of an indexed
utf8mb4 column, and far above any name a console shows. Stated as an assumption, not a Runpod fact."""
MAX_STRING_CHARS = 2 * MAX_ENV_ENTRY_BYTES
"""Any string field of a request body (image, args, an env value): a bound above the largest env
entry a container can start with, so that env rule (:func:`env_errors`, a 400 naming
``MAX_ARG_STRLEN``) speaks first for env values, and nothing can grow without bound."""


def name_error(name: Any) -> str | None:
    """Why ``name`` cannot name a resource (None when it can)."""
    if isinstance(name, str) and len(name) > MAX_NAME_CHARS:
        return f"is {len(name)} characters long; at most {MAX_NAME_CHARS} are allowed"
    return None


BLOCKED_WEBHOOK_HOSTS = frozenset({"metadata", "metadata.google.internal", "metadata.azure.internal"})


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def env_errors(env: Mapping[str, Any] | None, where: str = "env") -> list[str]:
    """Why this env map cannot be a container's environment (empty when it can)."""
    if not env:
        return []
    errors: list[str] = []
    if len(env) > MAX_ENV_VARS:
        errors.append(f"{where}: {len(env)} variables; at most {MAX_ENV_VARS} are allowed")
    for key, value in env.items():
        if not isinstance(key, str) or not 1 <= len(key) <= MAX_ENV_KEY_CHARS or "=" in key or "\0" in key:
            errors.append(
                f"{where}: {str(key)[:40]!r} is not a variable name (1-{MAX_ENV_KEY_CHARS} characters, no '=' or NUL)"
            )
            continue
        if not isinstance(value, str):
            errors.append(f"{where}.{key}: values are strings")
            continue
        size = len(key.encode()) + 1 + len(value.encode()) + 1
        if size > MAX_ENV_ENTRY_BYTES:
            errors.append(
                f"{where}.{key}: {size} bytes; a container's KEY=value entry is at most "
                f"{MAX_ENV_ENTRY_BYTES} bytes (Linux MAX_ARG_STRLEN)"
            )
        elif "\0" in value:
            errors.append(f"{where}.{key}: values cannot contain NUL characters")
    return errors


def webhook_error(url: Any) -> str | None:
    """Why localpod will not POST job results to ``url`` (None when it will)."""
    if not isinstance(url, str) or not url:
        return "webhook must be an http(s) URL string"
    if len(url) > MAX_WEBHOOK_CHARS:
        return f"webhook URL is {len(url)} characters; at most {MAX_WEBHOOK_CHARS}"
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"webhook must be an http:// or https:// URL with a host, got {url[:100]!r}"
    try:
        _ = parts.port  # raises on a port that is not a number in range
    except ValueError:
        return f"webhook URL has an invalid port: {url[:100]!r}"
    host = parts.hostname.rstrip(".").lower()
    if host in BLOCKED_WEBHOOK_HOSTS:
        return f"webhook host {host!r} is a cloud metadata service; localpod does not call it"
    address = literal_address(host)
    return None if address is None else address_error(host, address)


_NUMERIC_HOST = re.compile(r"^[0-9][0-9a-fx.]*$", re.IGNORECASE)


def literal_address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address ``host`` is written as, read as the resolver reads it: dotted, IPv6, and the
    numeric IPv4 forms ``inet_aton`` takes (one to four parts, decimal, octal or hex); None for a name."""
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        pass
    if _NUMERIC_HOST.match(host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def address_error(host: str, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """Why localpod will not connect to ``address`` (``host`` resolved to it), or None."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_link_local or address.is_multicast or address.is_unspecified or address.is_reserved:
        shown = host if host == str(address) else f"{host} ({address})"
        return (
            f"webhook address {shown} is link-local, multicast, reserved or unspecified (e.g. the cloud "
            "metadata service 169.254.169.254); localpod does not call it"
        )
    return None


Resolver = Callable[[str, int], Awaitable[list[str]]]


async def system_resolver(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to, as the HTTP client would connect (``getaddrinfo``)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


RESOLVER: list[Resolver] = [system_resolver]
"""The resolver webhook delivery uses; a test puts its own first (no /etc/hosts, no network)."""


@dataclass(frozen=True)
class WebhookTarget:
    """Where a checked webhook POST goes: the URL with the checked address in place of the host."""

    url: str
    host_header: str
    sni_hostname: str | None


async def resolve_webhook(url: str) -> WebhookTarget:
    """Check ``url`` again at delivery time, names included; ``ValueError`` saying why when refused."""
    problem = webhook_error(url)
    if problem is not None:
        raise ValueError(problem)
    parts = urlsplit(url)
    host = (parts.hostname or "").rstrip(".").lower()
    port = parts.port or (443 if parts.scheme == "https" else 80)
    literal = literal_address(host)
    if literal is not None:
        addresses = [literal]
    else:
        try:
            found = await RESOLVER[0](host, port)
        except OSError as exc:
            raise ValueError(f"webhook host {host!r} does not resolve: {exc}") from None
        addresses = [ipaddress.ip_address(a.split("%", 1)[0]) for a in found]
        if not addresses:
            raise ValueError(f"webhook host {host!r} does not resolve")
    for address in addresses:
        refused = address_error(host, address)
        if refused is not None:
            raise ValueError(refused)
    chosen = addresses[0]
    netloc_host = f"[{chosen}]" if chosen.version == 6 else str(chosen)
    netloc = f"{netloc_host}:{port}"
    default_port = parts.port is None
    host_header = parts.hostname if default_port else f"{parts.hostname}:{port}"
    return WebhookTarget(
        url=urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, "")),
        host_header=host_header or host,
        sni_hostname=host if parts.scheme == "https" and literal is None else None,
    )


def job_policy(policy: Any, default_timeout_ms: int, default_ttl_ms: int) -> tuple[int, bool, int]:
    """``(executionTimeout ms, lowPriority, ttl ms)`` of a job's ``policy``; raises ``ValueError``
    saying which field is wrong and what it accepts."""
    if policy is None:
        policy = {}
    if not isinstance(policy, dict):
        raise ValueError('"policy" must be an object')
    unknown = set(policy) - {"executionTimeout", "lowPriority", "ttl"}
    if unknown:
        raise ValueError(
            f"unknown policy field(s): {', '.join(sorted(unknown))}; known: executionTimeout, lowPriority, ttl"
        )
    timeout_ms = policy.get("executionTimeout", default_timeout_ms)
    if "executionTimeout" in policy and not (
        _is_int(timeout_ms) and MIN_EXECUTION_TIMEOUT_MS <= timeout_ms <= MAX_EXECUTION_TIMEOUT_MS
    ):
        raise ValueError(
            f"policy.executionTimeout must be a whole number of milliseconds from "
            f"{MIN_EXECUTION_TIMEOUT_MS} (5 s) to {MAX_EXECUTION_TIMEOUT_MS} (7 days), got {timeout_ms!r}"
        )
    ttl = policy.get("ttl", default_ttl_ms)
    if "ttl" in policy and not (_is_int(ttl) and MIN_TTL_MS <= ttl <= MAX_TTL_MS):
        raise ValueError(
            f"policy.ttl must be a whole number of milliseconds from {MIN_TTL_MS} (10 s) to "
            f"{MAX_TTL_MS} (7 days), got {ttl!r}"
        )
    low_priority = policy.get("lowPriority", False)
    if not isinstance(low_priority, bool):
        raise ValueError(f"policy.lowPriority must be true or false, got {low_priority!r}")
    return timeout_ms, low_priority, ttl
