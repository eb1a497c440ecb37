"""``rpbook``: run the runbooks headlessly and list their parameters.

    rpbook run [NOTEBOOK ...] -f params/local.yaml [-f more.yaml] [--out DIR]
    rpbook params [NOTEBOOK ...]
    rpbook receipt RUN_DIR
    rpbook history [--check] [FILE]
    rpbook localpod {serve,status,stop}

Exit codes: 0 all notebooks passed, 1 a notebook failed (the summary names the cell), 2 bad usage
or bad parameters (nothing ran; every parameter's declared range is checked, ``rpbook.runbook.paramcheck``),
130 interrupted by Ctrl+C (one line; summary.json names the notebook), 128 + N when signal N (SIGTERM,
SIGHUP) stopped the run after its kernel restored what it had changed (``rpbook.core.restore``).
``rpbook history --check`` exits 1 when the newest run regressed.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from rpbook import __version__
from rpbook.core.errors import RpbookError
from rpbook.core.secrets import scrub
from rpbook.runbook.runner import discover_notebooks, load_parameters, notebook_parameters, run_notebooks

EXIT_INTERRUPTED = 130
"""128 + SIGINT, what a shell reports for a command stopped by Ctrl+C."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rpbook", description="Runpod runbooks, headless.")
    parser.add_argument("--version", action="version", version=f"rpbook {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="execute runbooks with papermill, in order, stopping at the first failure")
    run.add_argument("notebooks", nargs="*", type=Path, help="notebooks to run (default: every numbered runbook)")
    run.add_argument(
        "-f",
        "--parameters-file",
        action="append",
        type=Path,
        default=[],
        dest="files",
        help="YAML parameters file (repeatable; later files win)",
    )
    run.add_argument("--out", type=Path, default=None, help="output folder (default: runs/<UTC timestamp>/)")
    run.add_argument("--execution-timeout", type=int, default=None, help="seconds per cell (default: none)")
    run.add_argument("--log-output", action="store_true", help="stream cell output to the terminal")
    run.add_argument(
        "--history",
        type=Path,
        default=None,
        help="SQLite history the run's figures are appended to (default: history.sqlite beside the "
        "run folder, i.e. runs/history.sqlite)",
    )
    run.add_argument("--no-history", action="store_true", help="do not append this run to a history")
    params = sub.add_parser("params", help="list the parameters each runbook declares")
    params.add_argument("notebooks", nargs="*", type=Path)
    receipt = sub.add_parser("receipt", help="what a run cost, from Runpod's billing (again, once it is final)")
    receipt.add_argument("run_dir", type=Path, help="the folder `rpbook run` wrote (runs/<UTC time>/)")
    history = sub.add_parser("history", help="regressions of the newest run against the recent median")
    history.add_argument("file", nargs="?", type=Path, default=None, help="history file (default: runs/history.sqlite)")
    history.add_argument("--check", action="store_true", help="exit 1 when the newest run regressed (cron, CI)")
    history.add_argument(
        "--window", type=int, default=10, help="how many earlier runs make the median and spread (default 10)"
    )
    history.add_argument(
        "--min-runs", type=int, default=5, help="earlier runs a figure needs before it is judged (default 5)"
    )
    localpod = sub.add_parser(
        "localpod", help="this checkout's localpod (the one the runbooks use): serve, status, stop"
    )
    localpod.add_argument("action", choices=("serve", "status", "stop"))
    localpod.add_argument("--profile", default="fast", help="serve: localpod's timing profile (default fast)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "receipt":
        return _receipt(args.run_dir)
    if args.command == "history":
        return _history(args.file, args.check, args.window, args.min_runs)
    if args.command == "localpod":
        return _localpod(args.action, args.profile)
    try:
        notebooks = [Path(p) for p in args.notebooks] or discover_notebooks()
    except RpbookError as exc:
        print(f"rpbook: {exc}", file=sys.stderr)
        return 2
    missing = [str(p) for p in notebooks if not p.exists()]
    if missing:
        print(f"rpbook: no such notebook: {', '.join(missing)}", file=sys.stderr)
        return 2
    if not notebooks:
        print("rpbook: no notebooks found", file=sys.stderr)
        return 2
    if args.command == "params":
        for notebook in notebooks:
            print(notebook.name)
            for p in notebook_parameters(notebook).values():
                where = f"[{p.range}] " if p.range else ""
                print(f"  {p.name}: {p.type_name} = {p.default}  # {where}{p.help}")
        return 0
    try:
        parameters = load_parameters(args.files)
        summary = run_notebooks(
            notebooks,
            parameters,
            out_dir=args.out,
            execution_timeout=args.execution_timeout,
            log_output=args.log_output,
        )
    except RpbookError as exc:
        print(f"rpbook: {scrub(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # while the parameters were checked: no notebook had started
        print("rpbook: interrupted (Ctrl+C) before the first notebook; nothing ran", file=sys.stderr)
        return EXIT_INTERRUPTED
    if summary.interrupted:
        print(
            f"rpbook: interrupted (Ctrl+C) in {summary.interrupted}; the run so far is in {summary.run_dir}",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    print(summary)
    print(f"executed notebooks and summary.json in {summary.run_dir}")
    if summary.receipt:
        print(summary.receipt["line"])
    if summary.stopped_by:
        import signal

        print(f"rpbook: stopped by {summary.stopped_by}; the kernel restored what it had changed", file=sys.stderr)
        return 128 + int(signal.Signals[summary.stopped_by])
    if not args.no_history:
        _append_history(args.history or Path(summary.run_dir).parent / "history.sqlite", summary.run_dir)
    if not summary.ok:
        failed = next(r for r in summary.results if r.status == "failed")
        where = f"cell {failed.failed_cell}" if failed.failed_cell is not None else "execution"
        print(f"rpbook: {failed.notebook} failed in {where}: {failed.error}", file=sys.stderr)
        return 1
    return 0


def _localpod(action: str, profile: str) -> int:
    """``make serve|status|stop``: the localpod of the project this command runs in, found as the
    runbooks find it (the env file's folder, ``.localpod/`` and the port recorded there)."""
    from rpbook.core.localpod_address import recorded_port
    from rpbook.core.paths import localpod_state_dir, resolve_env_file
    from rpbook.core.settings import load_settings
    from rpbook.runbook.local import running_localpod, serve_localpod, stop_localpod

    env_file = resolve_env_file("")
    state_dir = localpod_state_dir(env_file)
    if action == "serve":
        try:
            return serve_localpod(load_settings("local", env_file=env_file), state_dir=state_dir, profile=profile)
        except RpbookError as exc:
            print(f"rpbook: {scrub(str(exc))}", file=sys.stderr)
            return 2
    if action == "stop":
        print(f"stopped the localpod of {state_dir}" if stop_localpod(state_dir) else f"not running ({state_dir})")
        return 0
    running = running_localpod(state_dir)
    if running is not None:
        print(f"running: pid {running[0]} at {running[1]} (state {state_dir})")
        return 0
    port = os.environ.get("LOCALPOD_URL") or (
        f"http://127.0.0.1:{recorded_port(state_dir)}" if recorded_port(state_dir) else None
    )
    print(f"not running ({state_dir}" + (f"; its address: {port})" if port else ")"))
    return 0


def _receipt(run_dir: Path) -> int:
    from rpbook.records.receipt import receipt_for_run_dir

    try:
        receipt = receipt_for_run_dir(run_dir)
    except RpbookError as exc:
        print(f"rpbook: {scrub(str(exc))}", file=sys.stderr)
        return 2
    print(receipt.line())
    return 0


def _append_history(history_file: Path, run_dir: str) -> None:
    """Append the run to the history; a history problem is said, never turned into a failed run."""
    import sqlite3

    from rpbook.records.history import append_run

    try:
        append_run(history_file, run_dir)
    except (RpbookError, OSError, sqlite3.Error) as exc:
        print(f"rpbook: this run was not added to the history {history_file}: {scrub(str(exc))}", file=sys.stderr)
        return
    print(f"appended to the history {history_file} (`rpbook history --check {history_file}` looks for regressions)")


def _history(history_file: Path | None, check: bool, window: int, min_runs: int) -> int:
    from rpbook.core.paths import history_file as default_history
    from rpbook.records.history import load_history
    from rpbook.records.history_report import history_report

    path = history_file or default_history()
    if history_file is not None and not path.exists():
        print(f"rpbook: no history at {path}: `rpbook run` writes one (see --history)", file=sys.stderr)
        return 2
    try:
        report = history_report(load_history(path), window=window, min_runs=min_runs)
    except RpbookError as exc:
        print(f"rpbook: {scrub(str(exc))}", file=sys.stderr)
        return 2
    print(report)
    return 1 if check and report.regressed else 0
