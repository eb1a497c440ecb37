"""``rpbook``: command-line entry point of the runbook helpers."""

from __future__ import annotations

import argparse

from rpbook import __version__


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rpbook", description="Runpod runbook helpers.")
    parser.add_argument("--version", action="version", version=f"rpbook {__version__}")
    parser.parse_args(argv)
    parser.print_help()
    return 0
