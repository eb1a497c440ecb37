"""``localpod serve``: start the emulator (also ``python -m localpod serve``)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import IO

from localpod import __version__, statelock
from localpod.config import SECRET_NAME, Settings, is_loopback
from localpod.profiles import PROFILES, QUEUE_DELAY_READINGS, get_profile

EXIT_STATE_IN_USE = 75
"""EX_TEMPFAIL: not 3, which uvicorn exits with when it cannot start (a port in use)."""
_STATE_LOCK: IO[str] | None = None
"""Held for the life of the process (see :mod:`localpod.statelock`)."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="localpod", description="Local emulator of Runpod and the HF Hub.")
    parser.add_argument("--version", action="version", version=f"localpod {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the emulator in the foreground")
    serve.add_argument("--host", default="127.0.0.1", help="bind address (default: loopback only)")
    serve.add_argument("--port", type=int, default=8765)
    serve.add_argument(
        "--state",
        type=Path,
        default=None,
        help="JSON file that keeps resources across restarts (one server per file: it is locked)",
    )
    serve.add_argument("--profile", choices=sorted(PROFILES), default="fast", help="timing profile")
    serve.add_argument(
        "--queue-delay-reading",
        choices=QUEUE_DELAY_READINGS,
        default="one_per_decision",
        help="workers one QUEUE_DELAY decision starts: one (default) or enough for the whole queue "
        "(Runpod's docs do not say; an assumption either way)",
    )
    serve.add_argument(
        "--proxy-url",
        default=None,
        help="OpenAI-compatible server (vLLM, llama.cpp, Ollama) that vLLM workers forward to",
    )
    serve.add_argument("--quiet", action="store_true", help="do not log one line per request")
    serve.add_argument(
        "--secret",
        action="append",
        default=[],
        metavar="NAME=ENVVAR",
        help="define Runpod secret NAME from environment variable ENVVAR (the value never goes on "
        "the command line); workers resolve {{ RUNPOD_SECRET_NAME }} in their env with it. "
        "LOCALPOD_SECRET_<NAME>=value defines one too",
    )
    serve.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        metavar="NAME",
        help="another host name clients may use in Host/Origin (loopback names always work)",
    )
    serve.add_argument(
        "--allow-remote",
        action="store_true",
        help="required to bind a non-loopback address: anyone who can reach it and has the key controls localpod",
    )
    serve.add_argument(
        "--handler",
        action="append",
        default=[],
        metavar="IMAGE=PATH",
        help="run workers of endpoints whose template uses IMAGE (with or without its tag) as real "
        "processes running your handler file or module under the runpod SDK, e.g. "
        "--handler myteam/worker=./handler.py (docs/custom-workers.md)",
    )
    serve.add_argument(
        "--worker-processes",
        action="store_true",
        help="run localpod's own worker emulations as handlers inside the real runpod SDK loop, one "
        "process per worker (slower to start; the default runs them in localpod's process)",
    )
    serve.add_argument(
        "--log-file",
        type=Path,
        default=None,
        help="write the log here, once the state lock is held (a refused start never touches it)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        return serve(args)
    return 2


def parse_secrets(specs: list[str], environ: Mapping[str, str]) -> dict[str, str]:
    """``NAME=ENVVAR`` options -> {name: value}; raises ``ValueError`` saying what to fix."""
    out: dict[str, str] = {}
    for spec in specs:
        name, sep, var = spec.partition("=")
        if not sep or not name or not var:
            raise ValueError(f"--secret {spec!r}: write NAME=ENVVAR, e.g. --secret hf_token=HF_TOKEN")
        if not SECRET_NAME.match(name) or name.upper().startswith("RUNPOD"):
            raise ValueError(
                f"--secret {name!r}: a Runpod secret name starts with a letter or '_', uses letters, "
                "digits and _ . - /, is at most 191 characters and does not start with RUNPOD"
            )
        value = environ.get(var)
        if not value:
            raise ValueError(f"--secret {name}={var}: environment variable {var} is not set (or empty)")
        out[name] = value
    return out


def parse_handlers(specs: list[str]) -> dict[str, str]:
    """``IMAGE=PATH`` options -> {image: handler}; a file must exist (a module name is taken as
    given: its import error shows in the worker's log). Raises ``ValueError`` saying what to fix."""
    out: dict[str, str] = {}
    for spec in specs:
        image, sep, handler = spec.partition("=")
        if not sep or not image or not handler:
            raise ValueError(f"--handler {spec!r}: write IMAGE=PATH, e.g. --handler myteam/worker=./handler.py")
        if handler.endswith(".py"):
            path = Path(handler).expanduser()
            if not path.is_file():
                raise ValueError(f"--handler {image}={handler}: no such file")
            handler = str(path.resolve())
        out[image] = handler
    return out


def state_folder_problem(state_file: Path) -> str | None:
    """Why localpod cannot keep its state at ``state_file`` (one sentence), or None: checked before
    anything starts, so a read-only or missing folder is one line, not a traceback."""
    folder = state_file.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".localpod-probe-", dir=folder)
        os.close(fd)
        os.unlink(probe)
        if state_file.exists():
            with state_file.open("rb+"):
                pass
    except OSError as exc:
        return (
            f"cannot keep state in {folder}: {exc.strerror or type(exc).__name__}. Make the folder writable "
            "(or free space), or choose another with --state (RPBOOK_LOCALPOD_DIR for the runbooks)"
        )
    return None


def serve(args: argparse.Namespace) -> int:
    global _STATE_LOCK  # noqa: PLW0603 - the state lock must outlive this function: held until exit
    import uvicorn

    if not is_loopback(args.host) and not args.allow_remote:
        print(
            f"localpod: refusing to bind {args.host}: that exposes the Runpod key, HF token and every control "
            "route to the network. Bind 127.0.0.1 (the default), or pass --allow-remote if you mean it.",
            file=sys.stderr,
        )
        return 2
    try:
        secrets = parse_secrets(args.secret, os.environ)
        handlers = parse_handlers(args.handler)
    except ValueError as exc:
        print(f"localpod: {exc}", file=sys.stderr)
        return 2
    settings = Settings.from_env(
        host=args.host,
        port=args.port,
        state_file=args.state,
        profile=get_profile(args.profile).with_overrides({"queue_delay_reading": args.queue_delay_reading}),
        proxy_url=args.proxy_url,
        log_requests=not args.quiet,
        allowed_hosts=list(args.allowed_host),
        handlers=handlers,
        worker_processes=args.worker_processes,
    )
    settings.secrets.update(secrets)
    if args.state is not None:
        unwritable = state_folder_problem(args.state.absolute())
        if unwritable is not None:
            print(f"localpod: {unwritable}", file=sys.stderr)
            return 2
        try:
            _STATE_LOCK = statelock.acquire(args.state.absolute(), settings.base_url)
        except statelock.StateInUse as exc:
            print(f"localpod: {exc}", file=sys.stderr)
            return EXIT_STATE_IN_USE
    if args.log_file is not None:
        _redirect_output(args.log_file)

    from localpod.app import create_app

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    if not is_loopback(args.host):
        logging.getLogger("localpod").warning(
            "WARNING: listening on %s, not loopback: anyone who can reach this address and knows the key controls "
            "localpod. Host names allowed: loopback, %s",
            args.host,
            ", ".join(args.allowed_host) or "(no others)",
        )
    app = create_app(settings)
    print(
        f"localpod {__version__} on {settings.base_url} (profile {settings.profile.name})", file=sys.stderr, flush=True
    )
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        access_log=False,
        log_level="warning",
        http="httptools",
        loop="uvloop",
        timeout_graceful_shutdown=2,
    )
    return 0


def _redirect_output(log_file: Path) -> None:
    """stdout and stderr (the log) go to ``log_file``, truncated: this server owns it now."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
