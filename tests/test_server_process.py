"""localpod as users run it: ``localpod serve`` in its own process, killed and restarted."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from conftest import free_port

KEY = "rpa_PROCESS_TEST_KEY"
HF_TOKEN = "hf_process_test_token"


def serve(port: int, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "LOCALPOD_API_KEY": KEY, "LOCALPOD_HF_TOKEN": HF_TOKEN}
    proc = subprocess.Popen(
        [sys.executable, "-m", "localpod", "serve", "--port", str(port), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/_localpod/health", timeout=0.5).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"localpod did not start:\n{proc.communicate()[0]}")


def rest(port: int) -> httpx.Client:
    return httpx.Client(
        base_url=f"http://127.0.0.1:{port}/api.runpod.io", headers={"Authorization": f"Bearer {KEY}"}, timeout=10
    )


@pytest.mark.slow
def test_resources_survive_a_crash(tmp_path: Path):
    state = tmp_path / "state.json"
    port = free_port()
    proc = serve(port, "--state", str(state))
    try:
        client = rest(port)
        volume = client.post("/v2/network-volumes", json={"name": "weights", "size": 50, "dataCenter": "EU-RO-1"})
        assert volume.status_code == 201, volume.text
        template = client.post(
            "/v2/templates", json={"name": "t", "image": "runpod/mock-worker:latest", "serverless": True}
        )
        assert template.status_code == 201, template.text
        endpoint = client.post(
            "/v2/serverless",
            json={
                "name": "e",
                "type": "QUEUE",
                "templateId": template.json()["id"],
                "gpu": {"pools": ["AMPERE_24"]},
                "scaling": {"type": "QUEUE_DELAY", "queueDelay": 4},
            },
        )
        assert endpoint.status_code == 201, endpoint.text
    finally:
        proc.send_signal(signal.SIGKILL)  # a crash: no shutdown hook runs
        proc.wait(timeout=10)
    assert state.exists()
    assert not list(tmp_path.glob(".localpod-state-*")), "a temporary state file was left behind"

    port = free_port()
    proc = serve(port, "--state", str(state))
    try:
        client = rest(port)
        assert [v["id"] for v in client.get("/v2/network-volumes").json()["networkVolumes"]] == [volume.json()["id"]]
        assert [t["id"] for t in client.get("/v2/templates").json()["templates"]] == [template.json()["id"]]
        assert client.get(f"/v2/serverless/{endpoint.json()['id']}").json()["name"] == "e"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.mark.slow
def test_serve_binds_loopback_and_logs_one_line_per_request_without_secrets():
    port = free_port()
    proc = serve(port)
    try:
        httpx.get(f"http://127.0.0.1:{port}/api.runpod.io/v2/serverless", headers={"Authorization": f"Bearer {KEY}"})
        httpx.get(
            f"http://127.0.0.1:{port}/huggingface.co/api/whoami-v2", headers={"Authorization": f"Bearer {HF_TOKEN}"}
        )
        httpx.get(f"http://127.0.0.1:{port}/api.runpod.io/v2/serverless?api_key={KEY}")
    finally:
        proc.terminate()
        output = proc.communicate(timeout=10)[0]
    assert f"http://127.0.0.1:{port}" in output
    request_lines = [line for line in output.splitlines() if "localpod.requests" in line]
    ours = [line for line in request_lines if "/_localpod/health" not in line]
    assert len(ours) == 3
    assert any("GET /api.runpod.io/v2/serverless 200" in line for line in request_lines)
    assert KEY not in output and HF_TOKEN not in output


def test_version_flag():
    out = subprocess.run([sys.executable, "-m", "localpod", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("localpod ")


@pytest.mark.slow
def test_one_state_file_one_server(tmp_path: Path):
    """A second ``serve`` on the same state file exits (code 75) naming the running one, and leaves
    that server's resources and log alone."""
    state = tmp_path / "state.json"
    log = tmp_path / "first.log"
    port = free_port()
    first = serve(port, "--state", str(state), "--log-file", str(log))
    try:
        volume = rest(port).post("/v2/network-volumes", json={"name": "w", "size": 10, "dataCenter": "EU-RO-1"})
        assert volume.status_code == 201, volume.text
        log_before = log.read_bytes()
        second_port = free_port()
        env = {**os.environ, "LOCALPOD_API_KEY": KEY}
        second = subprocess.run(
            [
                sys.executable,
                "-m",
                "localpod",
                "serve",
                "--port",
                str(second_port),
                "--state",
                str(state),
                "--log-file",
                str(tmp_path / "second.log"),
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert second.returncode == 75
        assert f"http://127.0.0.1:{port}" in second.stderr and str(first.pid) in second.stderr
        assert not (tmp_path / "second.log").exists()
        assert log.read_bytes()[: len(log_before)] == log_before
        holder = json.loads((tmp_path / "state.json.lock").read_text())
        assert holder == {"pid": first.pid, "url": f"http://127.0.0.1:{port}"}
        ids = [v["id"] for v in rest(port).get("/v2/network-volumes").json()["networkVolumes"]]
        assert ids == [volume.json()["id"]]
    finally:
        first.terminate()
        first.wait(timeout=10)
    # Once the first server is gone, the state file is free again.
    port = free_port()
    again = serve(port, "--state", str(state))
    again.terminate()
    again.wait(timeout=10)


def test_non_loopback_bind_needs_allow_remote():
    env = {**os.environ, "LOCALPOD_API_KEY": KEY}
    done = subprocess.run(
        [sys.executable, "-m", "localpod", "serve", "--host", "0.0.0.0", "--port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2 and "--allow-remote" in done.stderr


@pytest.mark.slow
def test_allow_remote_warns_loudly_and_secrets_come_from_named_env_vars():
    port = free_port()
    env = {**os.environ, "LOCALPOD_API_KEY": KEY, "TEAM_HF": "hf_value_from_env_var"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "localpod",
            "serve",
            "--host",
            "0.0.0.0",
            "--allow-remote",
            "--port",
            str(port),
            "--secret",
            "team_hf=TEAM_HF",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/_localpod/health", timeout=0.5).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.05)
    finally:
        proc.terminate()
        output = proc.communicate(timeout=10)[0]
    assert "WARNING" in output and "0.0.0.0" in output
    assert "hf_value_from_env_var" not in output
