"""False alarms of ``rpbook history --check`` on a busy machine, and one injected regression.

Issue 18 item 1: after healthy runs on an ordinarily loaded machine the check cried wolf
("tokens_per_s 747.9 is down to 47% the median 1591"). This script runs runbooks 00-02 once, then
``--healthy`` runs of runbook 03 while ``--hogs`` CPU-bound processes (``while 1: pass``) share the
machine, then one more run with localpod's TTFT raised to ``--ttft-s`` through
``PATCH /_localpod/config`` (the regression), and prints after each run what ``rpbook history
--check`` says. Goal: 0 false alarms, the injected run flagged.

Run from the project folder, with your own localpod port:

    LOCALPOD_URL=http://127.0.0.1:8774 RPBOOK_LOCALPOD_DIR=$PWD/.localpod \\
        python benchmarks/history_false_alarms.py --out /tmp/history-bench
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def rpbook(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rpbook", *args], cwd=ROOT, capture_output=True, text=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for the runs and history.sqlite")
    parser.add_argument("--healthy", type=int, default=6, help="healthy runs of runbook 03 (default 6)")
    parser.add_argument("--hogs", type=int, default=2, help="CPU-bound processes beside them (default 2)")
    parser.add_argument("--ttft-s", type=float, default=1.0, help="injected TTFT of the last run (default 1.0)")
    args = parser.parse_args()
    history = args.out / "history.sqlite"
    params = ["-f", str(ROOT / "params" / "local.yaml")]
    setup = rpbook(
        "run",
        "notebooks/00_huggingface_token.ipynb",
        "notebooks/01_network_volume.ipynb",
        "notebooks/02_vllm_endpoint.ipynb",
        *params,
        "--out",
        str(args.out / "setup"),
        "--no-history",
    )
    if setup.returncode != 0:
        print(setup.stdout, setup.stderr)
        return 1
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so that `finally` stops the hogs
    hogs = [subprocess.Popen([sys.executable, "-c", "while 1: pass"]) for _ in range(args.hogs)]
    false_alarms = 0
    try:
        for index in range(args.healthy + 1):
            injected = index == args.healthy
            previous = None
            if injected:
                previous = set_ttft(args.ttft_s)
            started = time.perf_counter()
            try:
                result = rpbook(
                    "run",
                    "notebooks/03_wake_and_sanity_chat.ipynb",
                    *params,
                    "--out",
                    str(args.out / f"run{index:02d}"),
                    "--history",
                    str(history),
                )
            finally:
                if previous is not None:
                    set_ttft(previous)
            check = rpbook("history", "--check", str(history))
            verdict = check.stdout.splitlines()[0] if check.stdout else check.stderr.strip()
            label = "injected" if injected else "healthy"
            print(
                f"run {index} ({label}, {time.perf_counter() - started:.0f} s, run exit {result.returncode}): "
                f"check exit {check.returncode}: {verdict}",
                flush=True,
            )
            if not injected and check.returncode != 0:
                false_alarms += 1
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    print(
        f"false alarms: {false_alarms} of {args.healthy} healthy runs; injected regression "
        f"{'flagged' if check.returncode == 1 else 'NOT flagged'}"
    )
    print(check.stdout)
    return 0


def set_ttft(seconds: float) -> float:
    """Set localpod's ``time_to_first_token_s``; return the previous value."""
    from rpbook.core.localpod_control import set_profile_overrides
    from rpbook.core.paths import resolve_env_file
    from rpbook.core.settings import load_settings

    settings = load_settings("local", env_file=resolve_env_file(""))
    return set_profile_overrides(settings, settings.runpod_api_key(), {"time_to_first_token_s": seconds})[
        "time_to_first_token_s"
    ]


if __name__ == "__main__":
    raise SystemExit(main())
