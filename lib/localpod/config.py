"""Server settings: where localpod listens, which keys it accepts, which profile it runs."""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from localpod import DEFAULT_API_KEY, DEFAULT_HF_TOKEN
from localpod.profiles import FAST, Profile

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
"""Host names that always reach this machine only: a request naming one of them is no rebinding."""

SECRET_ENV_PREFIX = "LOCALPOD_SECRET_"
SECRET_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-/]{0,190}$")
"""Runpod's secret-name rule as rpbook checks it (start with a letter or ``_``; letters, digits and
``_ . - /``; at most 191 characters)."""


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` keeps localpod reachable from this machine only."""
    if host in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def secrets_from_env(environ: Mapping[str, str]) -> dict[str, str]:
    """Runpod secrets defined as ``LOCALPOD_SECRET_<name>=value`` (an empty value defines nothing)."""
    out: dict[str, str] = {}
    for key, value in environ.items():
        if key.startswith(SECRET_ENV_PREFIX) and value:
            name = key[len(SECRET_ENV_PREFIX) :]
            if SECRET_NAME.match(name):
                out[name] = value
    return out


@dataclass
class Settings:
    """Everything the server needs to start. Built from the CLI and the environment.

    ``api_key`` is the Runpod API key localpod accepts (``LOCALPOD_API_KEY``); ``hf_token`` is an
    HF token that is valid and has accepted every gated licence in the seed (``LOCALPOD_HF_TOKEN``).
    ``secrets`` are the account's Runpod secrets, name -> value, that workers resolve
    ``{{ RUNPOD_SECRET_name }}`` references in their env with; ``hf_token`` is one unless defined
    otherwise (the seed account's token, as ``LOCALPOD_HF_TOKEN`` is the seed's HF user). None of
    these is ever logged or returned by a control route.
    """

    host: str = "127.0.0.1"
    port: int = 8765
    state_file: Path | None = None
    profile: Profile = FAST
    api_key: str = DEFAULT_API_KEY
    hf_token: str = DEFAULT_HF_TOKEN
    proxy_url: str | None = None
    """OpenAI-compatible server that vLLM workers forward to instead of the local text model."""
    proxy_api_key: str | None = None
    log_requests: bool = True
    rate_limits: bool = True
    extra_api_keys: list[str] = field(default_factory=list)
    secrets: dict[str, str] = field(default_factory=dict)
    allowed_hosts: list[str] = field(default_factory=list)
    """Host names besides loopback (and a specific bind address) that requests may name in
    ``Host``/``Origin``; anything else is refused, which is what stops DNS rebinding."""
    handlers: dict[str, str] = field(default_factory=dict)
    """Image name (without tag) -> a handler file or module: that image's workers are real
    processes running the user's handler under the runpod SDK (``--handler IMAGE=PATH``)."""
    worker_processes: bool = False
    """Run the images localpod emulates (worker-vllm, worker-infinity-embedding, mock-worker) as
    handlers inside the real runpod SDK loop, one process per worker (``--worker-processes``)."""

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        settings = cls(
            api_key=os.environ.get("LOCALPOD_API_KEY") or DEFAULT_API_KEY,
            hf_token=os.environ.get("LOCALPOD_HF_TOKEN") or DEFAULT_HF_TOKEN,
            proxy_url=os.environ.get("LOCALPOD_PROXY_URL") or None,
            proxy_api_key=os.environ.get("LOCALPOD_PROXY_API_KEY") or None,
            secrets=secrets_from_env(os.environ),
        )
        for key, value in overrides.items():
            if value is not None:
                setattr(settings, key, value)
        return settings

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def worker_base_url(self) -> str:
        """The base URL a worker process on this machine uses (loopback when bound to all addresses)."""
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    def handler_for(self, image: str) -> str | None:
        """The handler mapped to ``image`` (its name with or without the tag), if any."""
        head, sep, tail = image.rpartition(":")
        untagged = head if sep and "/" not in tail else image  # "host:5000/name" has no tag
        return self.handlers.get(image) or self.handlers.get(untagged)

    def secret(self, name: str) -> str | None:
        """The value of Runpod secret ``name``; ``hf_token`` falls back to the seed HF token."""
        value = self.secrets.get(name)
        if value is None and name == "hf_token":
            return self.hf_token
        return value

    def host_allowed(self, hostname: str) -> bool:
        """Whether a ``Host``/``Origin`` host name names this server (loopback, the bind address
        when it is a specific one, or an ``--allowed-host``)."""
        name = hostname.strip("[]").lower().rstrip(".")
        if is_loopback(name):
            return True
        if name in (h.lower() for h in self.allowed_hosts):
            return True
        return name == self.host.strip("[]").lower() and self.host not in ("0.0.0.0", "::")
