"""The bad-input catalog (issue 10): every row ends in a clear error that says what to fix, and
localpod's state is unchanged, because runbooks 02 and 04 build every spec and run
``rpbook.account.preflight.check_stack`` before their first write; parameter files fail ``rpbook run``
with exit 2 before any notebook runs.

Rows are grouped by where they are caught: building a spec (a notebook's spec cell), the whole-stack
check against localpod (Hub, model limits, catalog, plans), and the parameter files of ``rpbook run``.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from localpod.hubdata import NO_LICENCE_TOKEN
from rpbook.account.controlplane import RunpodClient
from rpbook.account.plans import ensure_endpoint, ensure_template
from rpbook.account.preflight import check_stack
from rpbook.account.specs import EndpointSpec
from rpbook.account.workerimages import infinity_template, vllm_template
from rpbook.core.errors import ConfigError, RpbookError
from rpbook.core.secrets import Secret
from rpbook.runbook.cli import main
from test_rpbook_runner import make_notebook

MODEL = "mistralai/Mistral-7B-Instruct-v0.3"
REF = "{{ RUNPOD_SECRET_hf_token }}"


def vllm(**overrides: Any) -> Any:
    args: dict[str, Any] = dict(
        name="vllm-mistral-7b",
        model=MODEL,
        image_tag="v2.25.2",
        hf_token_ref=REF,
        max_model_len=8192,
        gpu_memory_utilization=0.9,
        max_concurrency=8,
    )
    return vllm_template(**(args | overrides))


def endpoint(**overrides: Any) -> EndpointSpec:
    args: dict[str, Any] = dict(
        name="mistral-7b-vllm", template_name="vllm-mistral-7b", gpu_pools=["AMPERE_24", "ADA_24"]
    )
    return EndpointSpec(**(args | overrides))


def infinity(**overrides: Any) -> Any:
    args: dict[str, Any] = dict(name="infinity-bge-small", models=["BAAI/bge-small-en-v1.5"], image_tag="1.1.4")
    return infinity_template(**(args | overrides))


# -- 1. refused when the spec is built (before any call) ----------------------------------------------

SPEC_ROWS: list[tuple[str, Callable[[], Any], str]] = [
    ("workers_max -1", lambda: endpoint(workers_max=-1), "workers_max"),
    ("workers_max null", lambda: endpoint(workers_max=None), "workers_max"),
    ("workers_max 0", lambda: endpoint(workers_max=0), "no worker can ever start"),
    ("workers_max NaN", lambda: endpoint(workers_max=math.nan), "workers_max"),
    ("workers_max inf", lambda: endpoint(workers_max=math.inf), "workers_max"),
    ("workers_max true", lambda: endpoint(workers_max=True), "workers_max"),
    ("workers_max text", lambda: endpoint(workers_max="5"), "workers_max"),
    ("workers_min > max", lambda: endpoint(workers_min=4, workers_max=2), "lower workers_min or raise workers_max"),
    ("workers_min -1", lambda: endpoint(workers_min=-1), "workers_min"),
    ("idle timeout 0", lambda: endpoint(idle_timeout_s=0), "idle_timeout_s"),
    ("idle timeout 1e9", lambda: endpoint(idle_timeout_s=10**9), "idle_timeout_s"),
    ("idle timeout NaN", lambda: endpoint(idle_timeout_s=math.nan), "idle_timeout_s"),
    ("execution timeout 1 s", lambda: endpoint(execution_timeout_s=1), "5 s to 7 days"),
    ("execution timeout > 7 days", lambda: endpoint(execution_timeout_s=8 * 24 * 3600), "5 s to 7 days"),
    ("empty pool list", lambda: endpoint(gpu_pools=[]), "at least one serverless GPU pool"),
    ("pool listed twice", lambda: endpoint(gpu_pools=["ADA_24", "ADA_24"]), "lists a pool twice"),
    ("300-character name", lambda: endpoint(name="x" * 300), "at most 191"),
    ("empty name", lambda: endpoint(name=""), "non-empty name"),
    ("name with newline", lambda: endpoint(name="a\nb"), "control characters"),
    ("gpu_count 0", lambda: endpoint(gpu_count=0), "gpu_count"),
    ("queue delay 0.1", lambda: endpoint(scaler_value=0.1), "must be >= 0.5"),
    ("queue delay NaN", lambda: endpoint(scaler_value=math.nan), "finite number"),
    ("queue delay inf", lambda: endpoint(scaler_value=math.inf), "finite number"),
    ("unknown scaler", lambda: endpoint(scaler_type="CPU"), "QUEUE_DELAY, REQUEST_COUNT"),
    ("data center not an id", lambda: endpoint(data_center="romania"), "not a data center id"),
    ("flashboot text", lambda: endpoint(flashboot="yes"), "True or False"),
    ("image tag latest", lambda: vllm(image_tag="latest"), "pin a release tag"),
    ("image tag empty", lambda: vllm(image_tag=""), "pin a release tag"),
    ("image tag with image name", lambda: vllm(image_tag="runpod/worker-v1-vllm:v2"), "not a Docker tag"),
    ("model not a repo id", lambda: vllm(model="mistral 7b"), "not a Hugging Face repo id"),
    ("max_model_len 0", lambda: vllm(max_model_len=0), "max_model_len"),
    ("gpu_memory_utilization 1.5", lambda: vllm(gpu_memory_utilization=1.5), "0 < x <= 1"),
    ("gpu_memory_utilization 0", lambda: vllm(gpu_memory_utilization=0), "0 < x <= 1"),
    ("gpu_memory_utilization NaN", lambda: vllm(gpu_memory_utilization=math.nan), "0 < x <= 1"),
    ("max_concurrency 0", lambda: vllm(max_concurrency=0), "max_concurrency"),
    ("token as plain text", lambda: vllm(hf_token_ref="hf_plain_text_token_value"), "not a Runpod secret reference"),
    ("secret name RUNPOD_x", lambda: vllm(hf_token_ref="{{ RUNPOD_SECRET_RUNPODx }}"), "not valid"),
    ("secret in extra env", lambda: vllm(extra_env={"MY_API_KEY": "sk-plain"}), "looks like a secret"),
    ("non-string env value", lambda: vllm(extra_env={"ENFORCE_EAGER": True}), "env values are strings"),
    ("bad env name", lambda: vllm(extra_env={"1BAD": "x"}), "env var names"),
    ("infinity: no models", lambda: infinity(models=[]), "at least one Hugging Face repo id"),
    ("infinity: model twice", lambda: infinity(models=["BAAI/bge-small-en-v1.5"] * 2), "lists a model twice"),
    (
        "infinity: batch sizes mismatch",
        lambda: infinity(models=["BAAI/bge-small-en-v1.5", "BAAI/bge-reranker-base"], batch_sizes=[8, 8, 8]),
        "one per model",
    ),
    ("infinity: unknown backend", lambda: infinity(backend="onnx"), "torch, optimum, ctranslate2"),
    ("infinity: unknown dtype", lambda: infinity(dtypes="int4"), "auto, fp16, fp8"),
    ("infinity: tag latest", lambda: infinity(image_tag="latest"), "pin a release tag"),
    ("infinity: max_concurrency 0", lambda: infinity(max_concurrency=0), "max_concurrency"),
]


@pytest.mark.parametrize("case, build, message", SPEC_ROWS, ids=[row[0] for row in SPEC_ROWS])
def test_spec_rows(case: str, build: Callable[[], Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        build()
    assert message in str(info.value), (case, str(info.value))


# -- 2. refused by the whole-stack check, with localpod unchanged -------------------------------------


def _state(localpod: Any) -> dict[str, Any]:
    return copy.deepcopy(
        {k: v for k, v in localpod.ctx.store.to_dict().items() if k in ("templates", "endpoints", "volumes")}
    )


STACK_ROWS: list[tuple[str, dict[str, Any], dict[str, Any], dict[str, Any], str]] = [
    # (case, template overrides, endpoint overrides, check_stack overrides, message)
    (
        "max_model_len 10,000,000",
        {"max_model_len": 10_000_000},
        {},
        {"max_model_len": 10_000_000},
        "handles at most 32768",
    ),
    ("max_model_len 10^30", {"max_model_len": 10**30}, {}, {"max_model_len": 10**30}, "handles at most 32768"),
    (
        "context that fits no pool",
        {"max_model_len": 32768},
        {"gpu_pools": ["AMPERE_16"]},
        {"max_model_len": 32768},
        "holds one sequence",
    ),
    ("gpu_count 100", {}, {"gpu_count": 100}, {}, "gives a worker more than"),
    ("workers_max 10000", {}, {"workers_max": 10_000}, {}, "spend limit"),
    ("worst case above max_hourly_usd", {}, {}, {"max_hourly_usd": 3}, "lower workers_max to 2"),
    ("max_hourly_usd below one worker", {}, {}, {"max_hourly_usd": 0.5}, "choose a cheaper GPU pool"),
    ("max_hourly_usd not positive", {}, {}, {"max_hourly_usd": 0}, "positive number"),
    ("unknown GPU pool", {}, {"gpu_pools": ["VOODOO_24"]}, {}, "unknown serverless GPU pool"),
    ("unknown data center", {}, {"data_center": "ZZ-XX-9"}, {}, "data center"),
    ("data center without the pools", {}, {"data_center": "EU-SE-1", "gpu_pools": ["ADA_80_PRO"]}, {}, "data center"),
    (
        "nonexistent model",
        {"model": "nobody/no-such-model"},
        {},
        {"models": ["nobody/no-such-model"]},
        "nobody/no-such-model",
    ),
    ("token without the licence", {}, {}, {"token": NO_LICENCE_TOKEN}, "licence"),
    ("template name differs", {}, {"template_name": "other"}, {}, "make them the same"),
]


@pytest.mark.parametrize("case, tover, eover, cover, message", STACK_ROWS, ids=[row[0] for row in STACK_ROWS])
def test_stack_rows_create_nothing(
    settings: Any,
    localpod: Any,
    case: str,
    tover: dict[str, Any],
    eover: dict[str, Any],
    cover: dict[str, Any],
    message: str,
) -> None:
    before = _state(localpod)
    token = Secret("HF_TOKEN", cover.pop("token", localpod.hf_token), "test")
    kwargs: dict[str, Any] = {
        "models": [tover.get("model", MODEL)],
        "max_model_len": 8192,
        "max_concurrency": 8,
    } | cover
    with RunpodClient(settings, settings.runpod_api_key()) as client, pytest.raises(RpbookError) as info:
        check_stack(settings, client, token, vllm(**tover), endpoint(**eover), **kwargs)
    assert message in str(info.value), (case, str(info.value))
    assert "nothing was created" in str(info.value) or isinstance(info.value, ConfigError)
    assert _state(localpod) == before


def test_name_conflict_is_found_before_the_template_is_patched(
    settings: Any, localpod: Any, plant_endpoint: Any
) -> None:
    """Two endpoints share the name: the check refuses before the template (which exists and would
    be PATCHed) is touched."""
    with RunpodClient(settings, settings.runpod_api_key()) as client:
        ensure_template(client, vllm(), apply=True)
        plant_endpoint(name="mistral-7b-vllm")
        plant_endpoint(name="mistral-7b-vllm")
        before = _state(localpod)
        with pytest.raises(RpbookError, match="are named 'mistral-7b-vllm'"):
            check_stack(
                settings,
                client,
                settings.hf_token(),
                vllm(max_concurrency=9),
                endpoint(),
                models=[MODEL],
                max_model_len=8192,
                max_concurrency=9,
            )
    assert _state(localpod) == before


def test_a_clean_stack_passes_and_then_creates(settings: Any, localpod: Any) -> None:
    with RunpodClient(settings, settings.runpod_api_key()) as client:
        checked = check_stack(
            settings,
            client,
            settings.hf_token(),
            vllm(),
            endpoint(),
            models=[MODEL],
            max_model_len=8192,
            max_concurrency=8,
        )
        assert checked.ok and checked.figures["kv_cache_sequences"] >= 5
        ensure_template(client, vllm(), apply=True)
        created = ensure_endpoint(client, endpoint(), apply=True, template_spec=vllm())
    assert created.resource is not None


# -- 3. parameter files: exit 2, nothing runs ---------------------------------------------------------

PARAM_ROWS: list[tuple[str, bytes, str]] = [
    ("invalid YAML", b"apply: [oops\n", "is not valid YAML"),
    ("tab indentation", b"apply:\n\t- true\n", "is not valid YAML"),
    ("not UTF-8", b"model: caf\xe9\n", "is not UTF-8"),
    ("duplicate key", b"count: 1\ncount: 2\n", "is given twice"),
    ("a list, not a mapping", b"- apply\n", "must be a YAML mapping"),
    ("unknown name", b"cuont: 1\n", "did you mean 'count'"),
    ("secret-looking name", b"hf_token: hf_xxx\n", "looks like a secret"),
    ("api key name", b"runpod_api_key: rpa_xxx\n", "looks like a secret"),
    ("text for an int", b"count: three\n", "expected int"),
    ("bool for an int", b"count: true\n", "expected int"),
    ("null for an int", b"count: null\n", "got null"),
    ("NaN for a float", b"ratio: .nan\n", "finite number"),
    ("infinity for a float", b"ratio: .inf\n", "finite number"),
    ("number for a str", b"model: 7\n", "expected str"),
    ("text for a bool", b"apply: maybe\n", "expected Optional[bool]"),
    ("text for a list", b"pools: AMPERE_24\n", "expected list"),
]


@pytest.fixture
def book(tmp_path: Path) -> Path:
    return make_notebook(
        tmp_path / "00_x.ipynb",
        "from typing import Optional\n\napply: Optional[bool] = None  # h\ncount: int = 1  # h\n"
        'ratio: float = 0.5  # h\nmodel: str = "m"  # h\npools: list = []  # h',
        "open('ran', 'w').write('yes')",
    )


@pytest.mark.parametrize("case, content, message", PARAM_ROWS, ids=[row[0] for row in PARAM_ROWS])
def test_parameter_rows_exit_2(
    tmp_path: Path, book: Path, capsys: Any, case: str, content: bytes, message: str
) -> None:
    params = tmp_path / "params.yaml"
    params.write_bytes(content)
    assert main(["run", str(book), "-f", str(params), "--out", str(tmp_path / "out")]) == 2
    assert message in capsys.readouterr().err, case
    assert not (tmp_path / "out").exists() and not (tmp_path / "ran").exists()


def test_missing_file_and_folder_exit_2(tmp_path: Path, book: Path, capsys: Any) -> None:
    assert main(["run", str(book), "-f", str(tmp_path / "nope.yaml")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["run", str(book), "-f", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err


def test_the_catalog_has_at_least_sixty_rows() -> None:
    assert len(SPEC_ROWS) + len(STACK_ROWS) + len(PARAM_ROWS) + 3 >= 60


# -- 4. run-time faults: no silent repeat of what may have run ----------------------------------------


def test_a_generation_that_failed_with_a_5xx_is_sent_once_and_says_it_may_have_run(settings: Any) -> None:
    """The openai SDK retries 5xx twice by default: three checks ran nine generations (issue 10)."""
    import http.server
    import threading

    import openai

    from rpbook.endpoint.chat import openai_client
    from rpbook.endpoint.checks import client_error_detail

    hits: list[str] = []

    class Failing(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            hits.append(self.path)
            self.rfile.read(int(self.headers.get("content-length") or 0))
            body = b'{"error": {"message": "engine died", "type": "InternalServerError"}}'
            self.send_response(500)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Failing)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        from rpbook.core.settings import Settings as RpSettings

        fake = RpSettings(
            target="local",
            rest_url="",
            queue_url=f"http://127.0.0.1:{server.server_port}",
            hub_url="",
            env_file=settings.env_file,
        )
        client = openai_client(fake, "rpa_test_key_not_real", "ep1")
        with pytest.raises(openai.InternalServerError) as info:
            client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}], max_tokens=4)
    finally:
        server.shutdown()
    assert len(hits) == 1
    assert "may have run" in client_error_detail(info.value)


def test_a_write_without_an_answer_says_it_may_have_been_created(settings: Any) -> None:
    import httpx

    from rpbook.core.errors import ControlPlaneError

    sent: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request.method)
        raise httpx.ReadTimeout("no answer", request=request)

    client = RunpodClient(
        settings, settings.runpod_api_key(), transport=httpx.MockTransport(handler), sleep=lambda s: None
    )
    with pytest.raises(ControlPlaneError) as info:
        client.create_template({"name": "t", "imageName": "i", "isServerless": True})
    assert sent == ["POST"]  # a write that left is never repeated
    assert "may have been done" in str(info.value) and "adopt resources by name" in str(info.value)
    sent.clear()
    with pytest.raises(ControlPlaneError, match="failed after 4 attempt"):
        client.list_templates()
    assert sent == ["GET"] * 4  # a read is retried (MAX_ATTEMPTS)


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize(
    "setting, code, message",
    [
        ("workers_max: 10000", 2, "workers_max: got 10000, outside 1..100"),
        ("max_hourly_usd: 3", 1, "above max_hourly_usd $3.00: lower workers_max to 2"),
    ],
)
def test_a_bad_setting_through_rpbook_run_stops_before_anything_is_created(
    isolated: Any, tmp_path: Path, setting: str, code: int, message: str
) -> None:
    """End to end: runbook 02 with a worst case above the team's ``max_hourly_usd`` (issue 13's
    budget guard) stops in its check cell, before the template (its first write) exists; exit 1
    names the notebook, the cell and what to set. A value outside its declared range (issue 20)
    stops earlier still: exit 2 before any notebook or localpod starts."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    bad = tmp_path / "bad.yaml"
    bad.write_text(setting + "\n")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "rpbook",
            "run",
            str(root / "notebooks" / "02_vllm_endpoint.ipynb"),
            "-f",
            str(root / "params" / "local.yaml"),
            "-f",
            str(bad),
            "--out",
            str(tmp_path / "run"),
        ],
        env=isolated.process_env(),
        cwd=root,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == code, done.stdout[-2000:] + done.stderr[-2000:]
    assert message in done.stderr
    if code == 2:
        assert not (tmp_path / "run").exists() and not isolated.state_dir.exists()
        return
    assert "02_vllm_endpoint.ipynb failed in cell" in done.stderr
    assert isolated.resources() == {"templates": [], "endpoints": [], "volumes": []}
