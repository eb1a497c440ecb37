"""rpbook: the helpers the runbook notebooks call (settings, Hub checks, control plane, queue, chat)."""

__version__ = "0.1.0"
