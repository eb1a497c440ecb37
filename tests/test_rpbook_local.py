"""Local mode: rpbook starts localpod as a detached process, reuses it, refuses one with another key,
and stops it. Each test uses a free port and its own state folder."""

from __future__ import annotations

import http.server
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from conftest import free_port
from rpbook.account import hub
from rpbook.core.errors import ConfigError, RpbookError
from rpbook.core.settings import load_settings
from rpbook.runbook.local import LocalpodStatus, ensure_localpod, localpod_running, running_localpod, stop_localpod

KEY = "rpa_LOCAL_MODE_TEST_KEY"
OTHER_KEY = "rpa_SOME_OTHER_KEY_FOR_TEST"
HF = "hf_local_mode_test_token"


@pytest.fixture
def env(monkeypatch, tmp_path):
    monkeypatch.setenv("RUNPOD_API_KEY", KEY)
    monkeypatch.setenv("HF_TOKEN", HF)
    monkeypatch.delenv("LOCALPOD_URL", raising=False)
    return tmp_path


@pytest.fixture
def state_dir(tmp_path):
    path = tmp_path / "state"
    yield path
    stop_localpod(path)  # never leave a server behind, even when a test fails


def local_settings(tmp_path: Path, port: int):
    return load_settings("local", env_file=tmp_path / ".env", localpod_url=f"http://127.0.0.1:{port}")


def test_runpod_target_is_a_no_op(tmp_path):
    settings = load_settings("runpod", env_file=tmp_path / ".env")
    assert ensure_localpod(settings, state_dir=tmp_path / "state") == LocalpodStatus(None, False, None, None)
    assert not (tmp_path / "state").exists()
    assert localpod_running(settings) is False
    assert stop_localpod(tmp_path / "state") is False


def test_only_starts_on_this_machine(env):
    settings = load_settings("local", env_file=env / ".env", localpod_url=f"https://127.0.0.1:{free_port()}")
    with pytest.raises(ConfigError, match="only starts it on this machine"):
        ensure_localpod(settings, state_dir=env / "state")


@pytest.mark.slow
def test_start_reuse_wrong_key_stop(env, state_dir, monkeypatch):
    port = free_port()
    settings = local_settings(env, port)
    assert not localpod_running(settings)

    first = ensure_localpod(settings, state_dir=state_dir)
    assert first.started and first.pid and first.url == f"http://127.0.0.1:{port}"
    assert localpod_running(settings)
    assert (state_dir / "localpod.pid").read_text().strip() == str(first.pid)
    assert first.log_file == state_dir.absolute() / "localpod.log" and first.log_file.exists()
    log = first.log_file.read_text()
    assert KEY not in log and HF not in log

    # localpod accepts the keys found in the environment
    rest = httpx.get(f"{settings.rest_url}/v2/serverless", headers={"Authorization": f"Bearer {KEY}"}, timeout=10)
    assert rest.status_code == 200
    assert hub.check_token(settings, settings.hf_token()).can_read_gated

    second = ensure_localpod(settings, state_dir=state_dir)
    assert (second.started, second.pid, second.url) == (False, first.pid, first.url)

    monkeypatch.setenv("RUNPOD_API_KEY", OTHER_KEY)
    with pytest.raises(ConfigError) as info:
        ensure_localpod(settings, state_dir=state_dir)
    message = str(info.value)
    assert "another Runpod API key" in message and "make stop" in message and str(port) in message
    assert OTHER_KEY not in message and KEY not in message

    assert stop_localpod(state_dir) is True
    assert not localpod_running(settings)
    assert not (state_dir / "localpod.pid").exists()
    assert stop_localpod(state_dir) is False


@pytest.mark.slow
def test_local_defaults_when_no_keys_are_set(env, state_dir, monkeypatch):
    monkeypatch.delenv("RUNPOD_API_KEY")
    monkeypatch.delenv("HF_TOKEN")
    settings = local_settings(env, free_port())
    assert settings.runpod_api_key().source == "local default"
    status = ensure_localpod(settings, state_dir=state_dir)
    assert status.started
    key = settings.runpod_api_key().reveal()
    assert (
        httpx.get(
            f"{settings.rest_url}/v2/serverless", headers={"Authorization": f"Bearer {key}"}, timeout=10
        ).status_code
        == 200
    )
    info = hub.check_token(settings, settings.hf_token())
    assert (
        info.can_read_gated
        and hub.check_model_access(settings, settings.hf_token(), "mistralai/Mistral-7B-Instruct-v0.3").accessible
    )


@pytest.mark.slow
def test_server_outlives_the_process_that_started_it(env, state_dir):
    """Notebooks run in separate kernels: the server started by one must still answer for the next."""
    port = free_port()
    code = (
        "import sys; from pathlib import Path; from rpbook.runbook.local import ensure_localpod; "
        "from rpbook.core.settings import load_settings; "
        f"s = load_settings('local', env_file={str(env / '.env')!r}, localpod_url='http://127.0.0.1:{port}'); "
        f"print(ensure_localpod(s, state_dir=Path({str(state_dir)!r})).pid)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env={**os.environ})
    assert done.returncode == 0, done.stderr
    pid = int(done.stdout.strip())
    settings = local_settings(env, port)
    assert localpod_running(settings)
    status = ensure_localpod(settings, state_dir=state_dir)
    assert (status.started, status.pid) == (False, pid)
    assert stop_localpod(state_dir) is True
    deadline = time.monotonic() + 10
    while localpod_running(settings) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not localpod_running(settings)


@pytest.mark.slow
def test_concurrent_starts_spawn_one_server(env, state_dir):
    settings = local_settings(env, free_port())
    results: list[LocalpodStatus] = []
    errors: list[BaseException] = []

    def start() -> None:
        try:
            results.append(ensure_localpod(settings, state_dir=state_dir))
        except BaseException as err:  # noqa: BLE001 # pragma: no cover - any failure in the thread is asserted on below
            errors.append(err)

    threads = [threading.Thread(target=start) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert sorted(r.started for r in results) == [False, False, True]
    assert len({r.pid for r in results}) == 1


@pytest.mark.slow
def test_start_failure_reports_the_log_tail(env, state_dir):
    """A port taken by another web server (not localpod): localpod cannot bind, and the error says why."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        settings = local_settings(env, server.server_address[1])
        assert not localpod_running(settings)
        with pytest.raises(RpbookError) as info:
            ensure_localpod(settings, state_dir=state_dir, timeout_s=20)
    finally:
        server.shutdown()
        server.server_close()
    message = str(info.value)
    assert "localpod.log" in message and "exited" in message and "address already in use" in message.lower()
    assert KEY not in message and HF not in message
    assert not (state_dir / "localpod.pid").exists()


@pytest.mark.slow
def test_one_state_folder_one_server(env, state_dir):
    """LOCALPOD_URL pointed at another port must not start a second localpod on the same folder: the
    error names the running one, whose pid file, log and resources stay as they were."""
    port = free_port()
    first = ensure_localpod(local_settings(env, port), state_dir=state_dir)
    assert first.started
    created = httpx.post(
        f"http://127.0.0.1:{port}/api.runpod.io/v2/network-volumes",
        headers={"Authorization": f"Bearer {KEY}"},
        json={"name": "w", "size": 10, "dataCenter": "EU-RO-1"},
        timeout=10,
    )
    assert created.status_code == 201, created.text
    pid_file, log_file = state_dir / "localpod.pid", state_dir / "localpod.log"
    pid_before, log_before = pid_file.read_text(), log_file.read_bytes()

    other = local_settings(env, free_port())
    with pytest.raises(ConfigError) as info:
        ensure_localpod(other, state_dir=state_dir)
    message = str(info.value)
    assert f"http://127.0.0.1:{port}" in message and str(first.pid) in message and "LOCALPOD_URL" in message
    assert KEY not in message and HF not in message
    assert not localpod_running(other)
    assert pid_file.read_text() == pid_before
    assert log_file.read_bytes()[: len(log_before)] == log_before
    assert running_localpod(state_dir) == (first.pid, f"http://127.0.0.1:{port}")

    # `make stop` is honest even when the pid file is gone: the state lock names the server.
    pid_file.unlink()
    assert stop_localpod(state_dir) is True
    assert running_localpod(state_dir) is None
    assert not localpod_running(local_settings(env, port))
    assert stop_localpod(state_dir) is False


@pytest.mark.slow
def test_local_mode_defines_the_hf_token_secret(env, state_dir):
    """Local templates reference ``{{ RUNPOD_SECRET_hf_token }}`` as production ones do: rpbook starts
    localpod with that secret set to the HF token it found."""
    status = ensure_localpod(local_settings(env, free_port()), state_dir=state_dir)
    environ = Path(f"/proc/{status.pid}/environ")
    if not environ.exists():
        pytest.skip("no /proc on this system")
    names = [item.split(b"=", 1)[0] for item in environ.read_bytes().split(b"\0")]
    assert b"LOCALPOD_SECRET_hf_token" in names


@pytest.mark.slow
def test_a_core_only_install_is_told_to_install_the_emulator(env, state_dir, monkeypatch):
    """rpbook installs without the emulator's server stack (pyproject's ``[localpod]`` extra); local
    mode then fails at localpod's first import, and the error says which extra to install. A package
    on PYTHONPATH that fails as a missing one would stands in for the absent ``ariadne``."""
    shadow = env / "shadow" / "ariadne"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'ariadne'\", name='ariadne')\n")
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [str(shadow.parent), os.environ.get("PYTHONPATH", "")]))
    )
    with pytest.raises(RpbookError) as info:
        ensure_localpod(local_settings(env, free_port()), state_dir=state_dir, timeout_s=20)
    message = str(info.value)
    assert "exited" in message and "pip install 'runpod-runbooks[localpod]'" in message
    assert KEY not in message and HF not in message
