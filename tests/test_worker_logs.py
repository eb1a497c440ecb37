"""Worker logs: the start line worker-vllm prints, and GET /v2/serverless/{id}/workers[/{workerId}/logs].

Sources: runpod-workers/worker-vllm v2.25.2 ``src/args_builder.py`` (env -> ``vllm serve`` flags,
``HF_TOKEN`` -> ``--hf-token``) and ``src/main.py`` (``Starting vLLM: <argv>``); huggingface_hub
``utils/_auth.py`` (``HF_TOKEN``, else ``HUGGING_FACE_HUB_TOKEN``); the REST v2 spec's
``listEndpointWorkers`` and ``getWorkerLogs``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from conftest import LocalpodServer, call_in_server
from localpod.serverless.worker_output import vllm_serve_args, vllm_start_command
from spec import SpecCheckedClient, load_spec, validate_log_event

VLLM_IMAGE = "runpod/worker-v1-vllm:v2.25.2"
MISTRAL = "mistralai/Mistral-7B-Instruct-v0.3"
CANARY = "hf_CANARY_canary_not_a_real_token"


@pytest.fixture
def api(localpod: LocalpodServer) -> Iterator[SpecCheckedClient]:
    load_spec()
    with SpecCheckedClient(localpod.rest_url, localpod.api_key) as client:
        yield client


def read_log(
    api: SpecCheckedClient,
    endpoint_id: str,
    worker_id: str,
    *,
    idle_s: float = 0.5,
    limit: int = 0,
    headers: dict[str, str] | None = None,
    **params: Any,
) -> list[tuple[str, dict[str, Any]]]:
    """``(id, data)`` of each event, until the stream ends, is quiet for ``idle_s`` or gave ``limit``."""
    events: list[tuple[str, dict[str, Any]]] = []
    url = f"/v2/serverless/{endpoint_id}/workers/{worker_id}/logs"
    timeout = httpx.Timeout(10, read=idle_s)
    with api.stream("GET", url, params=params, headers=headers or {}, timeout=timeout) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["cache-control"] == "no-cache" and response.headers["x-accel-buffering"] == "no"
        event_id = None
        try:
            for raw in response.iter_lines():
                if raw.startswith("id: "):
                    event_id = raw[4:]
                elif raw.startswith("data: "):
                    data = json.loads(raw[6:])
                    assert event_id is not None
                    validate_log_event(event_id, data)
                    events.append((event_id, data))
                    event_id = None
                    if len(events) == limit:
                        break
        except httpx.ReadTimeout:
            pass
    return events


def run_job(localpod: LocalpodServer, endpoint_id: str, body: dict[str, Any]) -> dict[str, Any]:
    response = httpx.post(
        f"{localpod.queue_url}/{endpoint_id}/run",
        json={"input": body},
        timeout=30,
        headers={"Authorization": f"Bearer {localpod.api_key}"},
    )
    response.raise_for_status()
    job = response.json()
    deadline = time.monotonic() + 60  # the first Infinity worker of a session starts its model process
    while job["status"] in ("IN_QUEUE", "IN_PROGRESS") and time.monotonic() < deadline:
        time.sleep(0.05)
        job = httpx.get(
            f"{localpod.queue_url}/{endpoint_id}/status/{job['id']}",
            timeout=10,
            headers={"Authorization": f"Bearer {localpod.api_key}"},
        ).json()
    return job


CHAT = {
    "openai_route": "/v1/chat/completions",
    "openai_input": {"model": MISTRAL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4},
}


def worker_of(localpod: LocalpodServer, endpoint_id: str, body: dict[str, Any] = CHAT) -> tuple[dict[str, Any], str]:
    job = run_job(localpod, endpoint_id, body)
    assert job["status"] == "COMPLETED", job
    return job, job["workerId"]


def all_log_text(localpod: LocalpodServer) -> str:
    """Every kept line of every worker, stopped ones included, read inside the server."""
    return call_in_server(
        localpod, lambda: "\n".join(line for log in localpod.ctx.platform.worker_logs.all_logs() for line in log.text())
    )


# -- worker-vllm's args builder --------------------------------------------------------------------


def test_vllm_args_follow_the_args_builder_rules() -> None:
    env = {
        "MODEL_NAME": MISTRAL,
        "MAX_MODEL_LEN": "4096",
        "ENFORCE_EAGER": "false",
        "TRUST_REMOTE_CODE": " Yes ",
        "GPU_MEMORY_UTILIZATION": "0.9",
        "MAX_NUM_BATCHED_TOKENS": "0",
        "HF_TOKEN": CANARY,
        "SEED": "",
        "HUGGING_FACE_HUB_TOKEN": "hf_otherCanaryNeverAFlag",
        "BASE_PATH": "/runpod-volume",
        "MODEL": "x/y",
        "SWAP_SPACE": "4",
        "DISABLE_LOG_STATS": "false",
        "VLLM_EXTRA_ARGS": "--seed 3 --override-x 'a b'",
    }
    args, warnings = vllm_serve_args(env)
    # Generic scan in sorted flag order (MODEL reserved, empty SEED unset, 0 batched tokens unset,
    # false store-true omitted, false paired bool as --no-), then the MODEL_NAME alias, then extra args.
    assert args == [
        "--no-enforce-eager",
        "--gpu-memory-utilization",
        "0.9",
        "--hf-token",
        CANARY,
        "--max-model-len",
        "4096",
        "--trust-remote-code",
        "--model",
        MISTRAL,
        "--seed",
        "3",
        "--override-x",
        "a b",
    ]
    assert warnings == ["SWAP_SPACE is set but vLLM no longer supports --swap-space; ignoring it."]
    assert "hf_otherCanaryNeverAFlag" not in " ".join(args)
    assert vllm_start_command({"MODEL_NAME": MISTRAL, "VLLM_PORT": "9000"}) == [
        "vllm",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        "9000",
        "--model",
        MISTRAL,
    ]
    with pytest.raises(ValueError, match="invalid boolean value 'maybe' for --enforce-eager"):
        vllm_serve_args({"ENFORCE_EAGER": "maybe"})


# -- the routes ------------------------------------------------------------------------------------


def test_vllm_worker_log_has_the_start_line_and_job_lines(
    localpod: LocalpodServer, api: SpecCheckedClient, plant_endpoint: Any
) -> None:
    endpoint = plant_endpoint(
        image=VLLM_IMAGE,
        workers_max=1,
        env={
            "MODEL_NAME": MISTRAL,
            "HUGGING_FACE_HUB_TOKEN": localpod.hf_token,
            "MAX_MODEL_LEN": "8192",
            "ENABLE_PREFIX_CACHING": "true",
        },
    )
    job, worker_id = worker_of(localpod, endpoint.id)
    listed = api.get(f"/v2/serverless/{endpoint.id}/workers").json()
    assert [w["id"] for w in listed["workers"]] == [worker_id] and listed["summary"]["total"] == 1
    events = read_log(api, endpoint.id, worker_id)
    lines = [data["line"] for _, data in events]
    start = [line for line in lines if "Starting vLLM: " in line]
    assert len(start) == 1 and start[0].endswith(
        " INFO root: Starting vLLM: vllm serve --host 127.0.0.1 --port 8000 --enable-prefix-caching "
        f"--max-model-len 8192 --model {MISTRAL}"
    )
    assert lines.index(start[0]) < next(i for i, line in enumerate(lines) if line.endswith("vLLM is healthy"))
    assert "--- Starting Serverless Worker |  Version 1.12.0 ---" in lines
    finished = [json.loads(line) for line in lines if "Finished running generator." in line]
    assert finished == [{"requestId": job["id"], "message": "Finished running generator.", "level": "INFO"}]
    assert localpod.hf_token not in "\n".join(lines)
    ids = [event_id for event_id, _ in events]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    sources = {data["source"] for _, data in events}
    assert sources == {"container", "system"}
    system_only = read_log(api, endpoint.id, worker_id, source="system")
    assert system_only and {data["source"] for _, data in system_only} == {"system"}
    assert [data for _, data in read_log(api, endpoint.id, worker_id, tail=2)] == [data for _, data in events[-2:]]
    assert read_log(api, endpoint.id, worker_id, tail=0) == []


def test_a_live_stream_follows_new_lines(localpod: LocalpodServer, api: SpecCheckedClient, plant_endpoint: Any) -> None:
    endpoint = plant_endpoint(image="runpod/mock-worker:latest", workers_max=1)
    _, worker_id = worker_of(localpod, endpoint.id, {"mock_return": 1})
    url = f"/v2/serverless/{endpoint.id}/workers/{worker_id}/logs"
    seen: list[str] = []
    with api.stream("GET", url, params={"tail": 0}, timeout=httpx.Timeout(10)) as response:
        lines = response.iter_lines()
        job = run_job(localpod, endpoint.id, {"mock_return": 2})
        for raw in lines:
            if raw.startswith("data: "):
                seen.append(json.loads(raw[6:])["line"])
                break
    assert seen == [json.dumps({"requestId": job["id"], "message": "Started.", "level": "INFO"})]


def test_resume_with_last_event_id_and_since(
    localpod: LocalpodServer, api: SpecCheckedClient, plant_endpoint: Any
) -> None:
    endpoint = plant_endpoint(image="runpod/mock-worker:latest", workers_max=1)
    _, worker_id = worker_of(localpod, endpoint.id, {"mock_return": 1})
    worker_of(localpod, endpoint.id, {"mock_return": 2})
    events = read_log(api, endpoint.id, worker_id)
    assert len(events) >= 4
    resumed = read_log(api, endpoint.id, worker_id, headers={"Last-Event-ID": events[1][0]}, tail=1)
    assert resumed == events[2:]  # the cursor wins over tail
    since = read_log(api, endpoint.id, worker_id, since=events[-1][1]["ts"])
    assert since and since[-1] == events[-1] and all(e[1]["ts"] >= events[-1][1]["ts"] for e in since)


def test_logs_of_a_stopped_worker_stay_readable_and_the_stream_ends(
    localpod: LocalpodServer, api: SpecCheckedClient, plant_endpoint: Any
) -> None:
    endpoint = plant_endpoint(image="runpod/mock-worker:latest", workers_max=1, idle_timeout=0)
    _, worker_id = worker_of(localpod, endpoint.id, {"mock_return": 1})
    deadline = time.monotonic() + 10
    while api.get(f"/v2/serverless/{endpoint.id}/workers").json()["workers"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert api.get(f"/v2/serverless/{endpoint.id}/workers").json()["summary"]["total"] == 0
    events = read_log(api, endpoint.id, worker_id, idle_s=5)  # ends by itself: no more lines can come
    assert events[-1][1] == {"ts": events[-1][1]["ts"], "source": "system", "line": f"worker {worker_id} stopped"}


def test_log_route_errors_are_problems(localpod: LocalpodServer, api: SpecCheckedClient, plant_endpoint: Any) -> None:
    endpoint = plant_endpoint(image="runpod/mock-worker:latest", workers_max=1)
    _, worker_id = worker_of(localpod, endpoint.id, {"mock_return": 1})
    base = f"/v2/serverless/{endpoint.id}/workers"
    for path, params, status in (
        (f"/v2/serverless/nope/workers/{worker_id}/logs", {}, 404),
        (f"{base}/nope/logs", {}, 404),
        (f"{base}/{worker_id}/logs", {"tail": 5001}, 400),
        (f"{base}/{worker_id}/logs", {"tail": "ten"}, 400),
        (f"{base}/{worker_id}/logs", {"source": "stderr"}, 400),
        (f"{base}/{worker_id}/logs", {"since": "yesterday"}, 400),
    ):
        response = api.get(path, params=params)
        assert response.status_code == status and response.headers["content-type"] == "application/problem+json"
    bare = httpx.get(f"{localpod.rest_url}{base}/{worker_id}/logs", timeout=10)
    assert bare.status_code == 401


def test_infinity_and_mock_workers_log_their_own_start(
    localpod: LocalpodServer, api: SpecCheckedClient, plant_endpoint: Any
) -> None:
    endpoint = plant_endpoint(
        image="runpod/worker-infinity-embedding:1.1.4",
        workers_max=1,
        env={"MODEL_NAMES": "BAAI/bge-small-en-v1.5", "HF_TOKEN": localpod.hf_token},
    )
    job, worker_id = worker_of(localpod, endpoint.id, {"model": "BAAI/bge-small-en-v1.5", "input": ["hello"]})
    lines = [data["line"] for _, data in read_log(api, endpoint.id, worker_id, source="container")]
    assert lines[0].endswith(
        " infinity_emb INFO: model=`BAAI/bge-small-en-v1.5` selected, using engine=`torch` and device=`cuda`"
    )
    assert lines[1] == "--- Starting Serverless Worker |  Version 1.12.0 ---"
    assert lines[2].endswith("creating batching engine") and lines[3].endswith("ready to batch requests.")
    assert json.loads(lines[4]) == {"requestId": job["id"], "message": "Started.", "level": "INFO"}
    assert localpod.hf_token not in "\n".join(lines)  # worker-infinity-embedding 1.1.4 prints no env or args


def test_a_crash_looping_worker_logs_why(localpod: LocalpodServer, api: SpecCheckedClient, plant_endpoint: Any) -> None:
    endpoint = plant_endpoint(
        image=VLLM_IMAGE,
        workers_min=1,
        workers_max=1,
        env={"MODEL_NAME": MISTRAL, "HUGGING_FACE_HUB_TOKEN": "hf_localpod_no_licence"},
    )
    deadline = time.monotonic() + 10
    workers: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        workers = api.get(f"/v2/serverless/{endpoint.id}/workers").json()["workers"]
        if workers and workers[0]["status"] == "UNHEALTHY":
            break
        time.sleep(0.05)
    assert workers and workers[0]["status"] == "UNHEALTHY"
    # A crash loop prints without pause: read a backfill's worth, not until the stream is quiet.
    lines = [data["line"] for _, data in read_log(api, endpoint.id, workers[0]["id"], tail=20, limit=20)]
    assert any(line.endswith("ERROR root: vLLM serve exited during startup with code 1") for line in lines)
    assert any("licence" in line or "gated" in line for line in lines), lines
    assert "hf_localpod_no_licence" not in "\n".join(lines)


# -- the gated model and the token's env name ------------------------------------------------------


@pytest.mark.parametrize(
    "env",
    [
        {"HUGGING_FACE_HUB_TOKEN": CANARY},
        {"HF_TOKEN": "", "HUGGING_FACE_HUB_TOKEN": CANARY},
        {"HUGGING_FACE_HUB_TOKEN": "{{ RUNPOD_SECRET_hf_token }}"},
    ],
)
def test_gated_model_loads_with_hugging_face_hub_token(
    localpod: LocalpodServer, plant_endpoint: Any, monkeypatch: pytest.MonkeyPatch, env: dict[str, str]
) -> None:
    """huggingface_hub reads HF_TOKEN first, then HUGGING_FACE_HUB_TOKEN; an empty HF_TOKEN is no token."""
    monkeypatch.setattr(localpod.ctx.settings, "hf_token", CANARY)  # the token with the licence accepted
    endpoint = plant_endpoint(image=VLLM_IMAGE, workers_max=1, env={"MODEL_NAME": MISTRAL, **env})
    worker_of(localpod, endpoint.id)
    assert CANARY not in all_log_text(localpod)


def test_hf_token_wins_over_hugging_face_hub_token(localpod: LocalpodServer, plant_endpoint: Any) -> None:
    endpoint = plant_endpoint(
        image=VLLM_IMAGE,
        workers_min=1,
        workers_max=1,
        env={"MODEL_NAME": MISTRAL, "HF_TOKEN": "hf_localpod_no_licence", "HUGGING_FACE_HUB_TOKEN": localpod.hf_token},
    )
    deadline = time.monotonic() + 10
    status = None
    while time.monotonic() < deadline and status != "UNHEALTHY":
        workers = localpod.ctx.platform.list_workers(endpoint.id)
        status = workers[0].status if workers else None
        time.sleep(0.05)
    assert status == "UNHEALTHY"


# -- retention -------------------------------------------------------------------------------------


def test_log_book_keeps_the_most_recent_workers_and_bounded_lines() -> None:
    from localpod.serverless.worker_logs import WorkerLog, WorkerLogBook, parse_cursor

    book = WorkerLogBook(retained=3)
    logs = [book.open("ep", f"w{i}") for i in range(3)]
    logs[0].close()
    book.open("ep", "w3")  # the oldest stopped worker's log goes
    assert book.worker_ids("ep") == ["w1", "w2", "w3"]
    book.open("ep", "w4")  # nothing stopped: live workers' logs are never dropped
    assert book.worker_ids("ep") == ["w1", "w2", "w3", "w4"]
    small = WorkerLog("ep", "w", max_lines=2)
    small.write("container", "a\nb\nc", 1_000.0)  # one line per printed line
    assert [line.line for line in small.lines] == ["b", "c"] and small.lines[-1].seq == 3
    assert parse_cursor(small.lines[-1].event_id) == (1_000.0, 3)
    with pytest.raises(ValueError, match="RFC 3339"):
        parse_cursor("last tuesday")
