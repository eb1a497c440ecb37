"""Where the runbooks talk to: real Runpod, or localpod on this machine.

Only base URLs and secrets differ between the two targets; everything else (requests, shapes,
checks) is the same code. Secrets are never settings: ``runpod_api_key()`` and ``hf_token()`` read
them from the environment or the env file when needed.

Why the control plane uses Runpod's REST API v2 and not the ``runpod`` SDK's GraphQL helpers:
the SDK (1.12) has no calls for network volumes, endpoint delete or scaling updates, nor for an
endpoint's execution timeout, and it builds GraphQL by string concatenation without escaping, so
an env value with a quote breaks the query. REST v2 covers every resource the runbooks manage,
with typed bodies, RFC 9457 errors and an official OpenAPI spec.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from rpbook.core.errors import ConfigError
from rpbook.core.localpod_address import localpod_url as checkout_localpod_url
from rpbook.core.paths import localpod_state_dir
from rpbook.core.secrets import Secret, read_secret

Target = Literal["local", "runpod"]

RUNPOD_REST_URL = "https://api.runpod.io"
RUNPOD_QUEUE_URL = "https://api.runpod.ai/v2"
HUB_URL = "https://huggingface.co"

LOCAL_DEFAULT_API_KEY = "rpa_LOCALPOD_DEV_KEY"
"""What localpod accepts when ``RUNPOD_API_KEY`` is not set (the same default as localpod's)."""
LOCAL_DEFAULT_HF_TOKEN = "hf_localpod_dev_token"
"""localpod's HF token with every gated licence accepted, used when ``HF_TOKEN`` is not set."""
LOCAL_EMBEDDING_DIMENSION = 256
"""localpod's Infinity worker embeds with ``wordllama`` (256 dimensions) whatever model it is asked
to serve, since no real embedding model can be fetched here (docs/localpod.md: what it emulates)."""


@dataclass(frozen=True)
class Settings:
    """Base URLs of one target plus the env file that holds secrets and outputs."""

    target: Target
    rest_url: str
    """Runpod REST API base: ``{rest_url}/v2/...``; GraphQL at ``{rest_url}/graphql``."""
    queue_url: str
    """Serverless queue base: ``{queue_url}/{endpoint_id}/run`` (``runpod.endpoint_url_base``)."""
    hub_url: str
    env_file: Path
    localpod_url: str | None = None
    """Root URL of localpod when the target is local."""

    def endpoint_url(self, endpoint_id: str) -> str:
        return f"{self.queue_url}/{endpoint_id}"

    def openai_base_url(self, endpoint_id: str) -> str:
        """What goes into ``VLLM_API_URL`` / ``OpenAI(base_url=...)``."""
        return f"{self.queue_url}/{endpoint_id}/openai/v1"

    def runpod_api_key(self, *, interactive: bool = False) -> Secret:
        """The Runpod API key: environment, env file, then (target runpod, a person at the kernel)
        a hidden prompt. Local mode never prompts: localpod's documented default is used, because
        a key typed there would only be refused by the localpod already running."""
        return read_secret(
            "RUNPOD_API_KEY",
            self.env_file,
            interactive=interactive and self.target == "runpod",
            default=LOCAL_DEFAULT_API_KEY if self.target == "local" else None,
            hint="Create one at https://console.runpod.io/user/settings (API Keys).",
        )

    def hf_token(self, *, interactive: bool = False) -> Secret:
        """The HF token, found like :meth:`runpod_api_key` (no prompt in local mode either)."""
        return read_secret(
            "HF_TOKEN",
            self.env_file,
            interactive=interactive and self.target == "runpod",
            default=LOCAL_DEFAULT_HF_TOKEN if self.target == "local" else None,
            hint="Create one at https://huggingface.co/settings/tokens (read access, or "
            "fine-grained with 'Read access to contents of all public gated repos').",
        )


def load_settings(
    target: str = "local", *, env_file: str | os.PathLike[str] = ".env", localpod_url: str | None = None
) -> Settings:
    """Settings for ``target``. Local mode's server is this checkout's localpod: the port recorded in
    its state folder beside the env file (``rpbook.core.localpod_address``); ``localpod_url`` or
    ``LOCALPOD_URL`` moves it."""
    path = Path(env_file).expanduser()
    if target == "local":
        root = (
            localpod_url or os.environ.get("LOCALPOD_URL") or checkout_localpod_url(localpod_state_dir(path.absolute()))
        ).rstrip("/")
        return Settings(
            target="local",
            rest_url=f"{root}/api.runpod.io",
            queue_url=f"{root}/api.runpod.ai/v2",
            hub_url=f"{root}/huggingface.co",
            env_file=path,
            localpod_url=root,
        )
    if target == "runpod":
        return Settings(
            target="runpod", rest_url=RUNPOD_REST_URL, queue_url=RUNPOD_QUEUE_URL, hub_url=HUB_URL, env_file=path
        )
    raise ConfigError(f"target must be 'local' or 'runpod', got {target!r}")
