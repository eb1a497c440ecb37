"""Server settings: where localpod listens, which keys it accepts, which profile it runs."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from localpod import DEFAULT_API_KEY, DEFAULT_HF_TOKEN
from localpod.profiles import FAST, Profile


@dataclass
class Settings:
    """Everything the server needs to start. Built from the CLI and the environment.

    ``api_key`` is the Runpod API key localpod accepts (``LOCALPOD_API_KEY``); ``hf_token`` is an
    HF token that is valid and has accepted every gated licence in the seed (``LOCALPOD_HF_TOKEN``).
    Neither is ever logged.
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

    @classmethod
    def from_env(cls, **overrides: object) -> "Settings":
        settings = cls(
            api_key=os.environ.get("LOCALPOD_API_KEY") or DEFAULT_API_KEY,
            hf_token=os.environ.get("LOCALPOD_HF_TOKEN") or DEFAULT_HF_TOKEN,
            proxy_url=os.environ.get("LOCALPOD_PROXY_URL") or None,
            proxy_api_key=os.environ.get("LOCALPOD_PROXY_API_KEY") or None,
        )
        for key, value in overrides.items():
            if value is not None:
                setattr(settings, key, value)
        return settings

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"
