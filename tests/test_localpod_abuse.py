"""localpod under abuse (issue 20): webhook filter bypass, unbounded names and bodies, state writes
that fail. Real HTTP against a real localpod; webhook names resolve through localpod's resolver hook
(``localpod.limits.RESOLVER``), never /etc/hosts or the network, and every connection a test could
cause goes to loopback."""

from __future__ import annotations

import errno
import json
import logging
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import FAST, TEST_API_KEY, TEST_HF_TOKEN, LocalpodServer, free_port, start_server, wait_for
from localpod import limits
from localpod.config import Settings

METADATA_FORMS = [
    "http://169.254.169.254/",
    "http://2852039166/",
    "http://0xa9fea9fe/",
    "http://0251.0376.0251.0376/",
    "http://169.254.43518/",
    "http://0xa9.0xfe.0xa9.0xfe/",
    "http://169.16689662/",
    "http://[::ffff:169.254.169.254]/",
    "http://[::ffff:a9fe:a9fe]/",
    "http://0/",
]


def queue_post(localpod: LocalpodServer, endpoint_id: str, body: Any, route: str = "run") -> httpx.Response:
    return httpx.post(
        f"{localpod.queue_url}/{endpoint_id}/{route}",
        json=body,
        headers={"Authorization": f"Bearer {localpod.api_key}"},
        timeout=60,
    )


@pytest.mark.parametrize("url", METADATA_FORMS)
def test_every_written_form_of_the_metadata_address_is_refused(localpod: Any, plant_endpoint: Any, url: str) -> None:
    endpoint = plant_endpoint()
    response = queue_post(localpod, endpoint.id, {"input": {"mock_return": 1}, "webhook": url})
    assert response.status_code == 400, response.text
    assert "localpod does not call it" in response.json()["error"]


class _Receiver:
    """A loopback webhook receiver that records what reached it."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.hosts: list[str] = []
        outer = self

        class Hook(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                outer.hosts.append(self.headers["Host"])
                outer.received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", free_port()), Hook)
        self.port = self.server.server_port
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def receiver() -> Iterator[_Receiver]:
    hook = _Receiver()
    try:
        yield hook
    finally:
        hook.server.shutdown()


@pytest.fixture
def names(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """Host names resolved by the test: the hook localpod's delivery asks (no DNS, no /etc/hosts)."""
    table: dict[str, list[str]] = {}

    async def resolve(host: str, port: int) -> list[str]:
        if host not in table:
            raise OSError(errno.ENOENT, f"{host} is not in the test's table")
        return table[host]

    monkeypatch.setattr(limits, "RESOLVER", [resolve])
    return table


def test_a_name_is_resolved_and_checked_at_delivery(
    localpod: Any, plant_endpoint: Any, receiver: _Receiver, names: dict[str, list[str]], caplog: Any
) -> None:
    """``good.test`` resolves to loopback and is delivered (to the checked address, with its own Host
    header); ``rebind.test`` answers loopback *and* the metadata address: refused at delivery, so the
    receiver (its first address) never hears from it."""
    names["good.test"] = ["127.0.0.1"]
    names["rebind.test"] = ["127.0.0.1", "169.254.169.254"]
    endpoint = plant_endpoint()
    caplog.set_level(logging.WARNING, logger="localpod.platform")
    for host, output in (("rebind.test", "rebound"), ("good.test", "hooked")):
        url = f"http://{host}:{receiver.port}/hook"
        response = queue_post(localpod, endpoint.id, {"input": {"mock_return": output}, "webhook": url})
        assert response.status_code == 200, response.text  # a name passes at submit time: it is checked later
    wait_for(lambda: receiver.received, timeout=30)
    wait_for(lambda: "not sent" in caplog.text, timeout=30)
    assert [r["output"] for r in receiver.received] == ["hooked"]
    assert receiver.hosts == [f"good.test:{receiver.port}"]
    assert "rebind.test (169.254.169.254) is link-local" in caplog.text


def test_resolve_webhook_connects_to_the_address_it_checked(names: dict[str, list[str]]) -> None:
    import asyncio

    names["hook.test"] = ["127.0.0.1"]
    target = asyncio.run(limits.resolve_webhook("https://hook.test:8443/path?q=1"))
    assert (target.url, target.host_header, target.sni_hostname) == (
        "https://127.0.0.1:8443/path?q=1",
        "hook.test:8443",
        "hook.test",
    )
    names["meta.test"] = ["169.254.169.254"]
    with pytest.raises(ValueError, match="link-local"):
        asyncio.run(limits.resolve_webhook("http://meta.test/"))
    with pytest.raises(ValueError, match="does not resolve"):
        asyncio.run(limits.resolve_webhook("http://unknown.test/"))


# -- names, string fields and bodies ---------------------------------------------------------------


@pytest.mark.parametrize(
    "path, body",
    [
        ("/v2/templates", {"name": "n" * 192, "image": "runpod/mock-worker:latest"}),
        ("/v2/network-volumes", {"name": "n" * 192, "size": 10, "dataCenter": "EU-RO-1"}),
        ("/v2/templates", {"name": "t", "image": "i" * 300_000}),
    ],
)
def test_names_and_string_fields_are_bounded(localpod: Any, path: str, body: dict[str, Any]) -> None:
    response = httpx.post(
        f"{localpod.rest_url}{path}", json=body, headers={"Authorization": f"Bearer {localpod.api_key}"}, timeout=30
    )
    assert response.status_code in (400, 422), response.text
    assert "191" in response.text or "characters" in response.text
    assert localpod.control("GET", "state").json()["templates"] == []


def test_a_191_character_name_is_accepted_and_graphql_is_bounded_too(localpod: Any) -> None:
    headers = {"Authorization": f"Bearer {localpod.api_key}"}
    ok = httpx.post(
        f"{localpod.rest_url}/v2/templates",
        json={"name": "n" * 191, "image": "runpod/mock-worker:latest"},
        headers=headers,
        timeout=30,
    )
    assert ok.status_code == 201, ok.text
    query = (
        "mutation($input: SaveTemplateInput!) { saveTemplate(input: $input) { id } }",
        {"name": "g" * 192, "imageName": "runpod/mock-worker:latest", "containerDiskInGb": 5, "volumeInGb": 0},
    )
    answer = httpx.post(
        f"{localpod.rest_url}/graphql",
        json={"query": query[0], "variables": {"input": query[1]}},
        headers=headers,
        timeout=30,
    ).json()
    assert answer.get("errors") and "at most 191" in json.dumps(answer["errors"])
    assert len(localpod.control("GET", "state").json()["templates"]) == 1


@pytest.mark.parametrize(
    "route, size, status",
    [
        ("/api.runpod.io/v2/templates", 2 * 1024 * 1024 + 1, 413),
        ("/api.runpod.io/graphql", 3 * 1024 * 1024, 413),
        ("/api.runpod.ai/v2/x/run", 10 * 1000 * 1000 + 1, 413),
        ("/api.runpod.ai/v2/x/runsync", 20 * 1000 * 1000 + 1, 413),
    ],
)
def test_request_bodies_are_bounded_before_they_are_read(localpod: Any, route: str, size: int, status: int) -> None:
    headers = {"Authorization": f"Bearer {localpod.api_key}", "Content-Type": "application/json"}
    declared = httpx.post(f"{localpod.base_url}{route}", content=b"x" * size, headers=headers, timeout=60)
    assert declared.status_code == status, declared.text[:300]
    assert "request body is larger than" in declared.json()["detail"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it streams
        sent = 0
        while sent < size:
            piece = b"x" * min(1 << 20, size - sent)
            sent += len(piece)
            yield piece

    streamed = httpx.post(f"{localpod.base_url}{route}", content=chunks(), headers=headers, timeout=60)
    assert streamed.status_code == status, streamed.text[:300]


def test_a_body_within_bounds_still_reaches_the_handler(localpod: Any, plant_endpoint: Any) -> None:
    endpoint = plant_endpoint()
    big_input = {"input": {"mock_return": "ok", "padding": "p" * (2 * 1000 * 1000)}}
    assert queue_post(localpod, endpoint.id, big_input, route="runsync").json()["output"] == "ok"


# -- state writes that fail ------------------------------------------------------------------------


@pytest.fixture
def durable_localpod(tmp_path: Path) -> Iterator[LocalpodServer]:
    """A localpod with a state file (the session's has none)."""
    settings = Settings(
        port=free_port(),
        profile=FAST,
        api_key=TEST_API_KEY,
        hf_token=TEST_HF_TOKEN,
        log_requests=False,
        state_file=tmp_path / "state" / "state.json",
    )
    server, thread, ctx = start_server(settings)
    try:
        yield LocalpodServer(settings.base_url, TEST_API_KEY, TEST_HF_TOKEN, ctx)
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_a_write_that_cannot_be_made_durable_is_a_503_and_changes_nothing(
    durable_localpod: LocalpodServer, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    from localpod import store

    headers = {"Authorization": f"Bearer {TEST_API_KEY}"}
    rest = durable_localpod.rest_url
    kept = httpx.post(
        f"{rest}/v2/templates", json={"name": "kept", "image": "runpod/mock-worker:latest"}, headers=headers
    ).json()

    def full_disk(path: Path, payload: bytes, prefix: str) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store, "write_atomically", full_disk)
    monkeypatch.setattr(store.WRITE_FAILURES, "_last", -float("inf"))
    caplog.set_level(logging.WARNING, logger="localpod.state")
    attempts = [
        ("POST", "/v2/templates", {"name": "new", "image": "runpod/mock-worker:latest"}),
        ("PATCH", f"/v2/templates/{kept['id']}", {"name": "renamed"}),
        ("DELETE", f"/v2/templates/{kept['id']}", None),
        ("POST", "/v2/network-volumes", {"name": "vol", "size": 10, "dataCenter": "EU-RO-1"}),
    ]
    for method, path, body in attempts:
        response = httpx.request(method, f"{rest}{path}", json=body, headers=headers, timeout=30)
        assert response.status_code == 503, (method, path, response.text)
        problem = response.json()
        assert problem["title"] == "Service Unavailable" and "nothing was changed" in problem["detail"]
        assert "No space left on device" in problem["detail"] and response.headers["Retry-After"] == "60"
    listed = httpx.get(f"{rest}/v2/templates", headers=headers).json()["templates"]
    assert [(t["id"], t["name"]) for t in listed] == [(kept["id"], "kept")]
    assert httpx.get(f"{rest}/v2/network-volumes", headers=headers).json()["networkVolumes"] == []
    lines = [r for r in caplog.records if "cannot write its state file" in r.getMessage()]
    assert len(lines) == 1, [r.getMessage() for r in lines]  # four failures, one line this minute
    assert not any(r.exc_info for r in caplog.records)
    monkeypatch.undo()  # the disk has room again: the same request now works and reaches disk
    again = httpx.post(
        f"{rest}/v2/templates", json={"name": "new", "image": "runpod/mock-worker:latest"}, headers=headers
    )
    assert again.status_code == 201
    on_disk = json.loads(durable_localpod.ctx.settings.state_file.read_text())  # type: ignore[union-attr]
    assert sorted(t["name"] for t in on_disk["templates"]) == ["kept", "new"]


def test_a_throttled_log_says_one_line_a_minute() -> None:
    from localpod.store import ThrottledLog

    records: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record.getMessage())

    logger = logging.getLogger("test.throttle")
    logger.addHandler(Collect())
    throttle = ThrottledLog(logger, interval_s=60)
    assert [throttle.warning("disk full") for _ in range(240)].count(True) == 1  # a minute of 4 Hz heartbeats
    throttle._last -= 61
    throttle.warning("disk full")
    assert records == ["disk full", "disk full (239 more like it in the last minute)"]


def test_startup_on_a_read_only_folder_is_one_line(tmp_path: Path) -> None:
    """``/sys`` refuses every new file even for root (the suite may run as root, where a chmod'ed
    folder is still writable): a real read-only place to point the state at."""
    done = subprocess.run(
        [sys.executable, "-m", "localpod", "serve", "--port", str(free_port()), "--state", "/sys/localpod/state.json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("localpod: cannot keep state in /sys/localpod"), done.stderr
    assert "Traceback" not in done.stderr
