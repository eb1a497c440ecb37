"""``localpod serve``: start the emulator (also ``python -m localpod serve``)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from localpod import __version__
from localpod.config import Settings
from localpod.profiles import PROFILES, get_profile


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="localpod", description="Local emulator of Runpod and the HF Hub.")
    parser.add_argument("--version", action="version", version=f"localpod {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the emulator in the foreground")
    serve.add_argument("--host", default="127.0.0.1", help="bind address (default: loopback only)")
    serve.add_argument("--port", type=int, default=8765)
    serve.add_argument("--state", type=Path, default=None, help="JSON file that keeps resources across restarts")
    serve.add_argument("--profile", choices=sorted(PROFILES), default="fast", help="timing profile")
    serve.add_argument("--proxy-url", default=None,
                       help="OpenAI-compatible server (vLLM, llama.cpp, Ollama) that vLLM workers forward to")
    serve.add_argument("--quiet", action="store_true", help="do not log one line per request")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        return serve(args)
    return 2


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    from localpod.app import create_app

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    settings = Settings.from_env(host=args.host, port=args.port, state_file=args.state,
                                 profile=get_profile(args.profile), proxy_url=args.proxy_url,
                                 log_requests=not args.quiet)
    app = create_app(settings)
    print(f"localpod {__version__} on {settings.base_url} (profile {settings.profile.name})", file=sys.stderr, flush=True)
    uvicorn.run(app, host=settings.host, port=settings.port, access_log=False, log_level="warning",
                http="httptools", loop="uvloop", timeout_graceful_shutdown=2)
    return 0
