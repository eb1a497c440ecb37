"""localpod: a local emulator of the Runpod APIs and the Hugging Face Hub calls the runbooks use.

It is a server (``localpod serve``); nothing in it imports ``rpbook``. Each real host is a path
prefix on one port, so clients only change their base URL:

- ``/api.runpod.io``  -> Runpod REST API v2 (``/v2/...``) and GraphQL (``/graphql``)
- ``/api.runpod.ai``  -> the serverless queue (``/v2/{endpoint_id}/...``) and OpenAI routes
- ``/huggingface.co`` -> the Hub API subset
"""

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _distribution_version

# pyproject.toml's ``version`` is the only place the version is written; ``GET /_localpod/health``
# and ``localpod --version`` report it.
try:
    __version__ = _distribution_version("runpod-runbooks")
except PackageNotFoundError:  # a source tree that was never installed (``PYTHONPATH=lib``)
    __version__ = "0+unknown"

DEFAULT_API_KEY = "rpa_LOCALPOD_DEV_KEY"
"""Runpod API key accepted when ``LOCALPOD_API_KEY`` is not set (obviously fake on purpose)."""

DEFAULT_HF_TOKEN = "hf_localpod_dev_token"
"""HF token accepted when ``LOCALPOD_HF_TOKEN`` is not set; it has accepted every gated licence."""
