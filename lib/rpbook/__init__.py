"""rpbook: the helpers the runbook notebooks call (settings, Hub checks, control plane, queue, chat)."""

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _distribution_version

# pyproject.toml's ``version`` is the only place the version is written; rpbook sends it in its
# User-Agent (REST control plane) and as ``library_version`` to the Hub.
try:
    __version__ = _distribution_version("runpod-runbooks")
except PackageNotFoundError:  # a source tree that was never installed (``PYTHONPATH=lib``)
    __version__ = "0+unknown"
