"""Cold start of a cached model against the network-volume path, on one localpod started here.

Three endpoints serve the same model (Mistral-7B) with one always-on worker each: the first on an
empty network volume (the worker downloads the weights, billed), the second on that volume once it
holds them (the worker reads them from the volume), the third with the model cached (GraphQL
``saveEndpoint`` ``modelReferences`` as runpodctl sends it: the worker reads the host's cache, no
download; runpod/docs ``serverless/endpoints/model-caching.mdx``). Measured: seconds from the create
call to a ready worker (``/health``), next to what localpod's profile predicts, and each path's
ratio to the volume's first start in the same run. Then the same three starts as the ``realistic``
profile predicts them (what localpod's realistic mode shows; its host-cache bandwidth is an
assumption, see ``localpod.profiles``).

Run: ``python benchmarks/cached_model_coldstart.py`` (``--scale`` slows the fast profile so the
measured seconds dwarf the polling; default 20).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import httpx

from localpod import hubdata
from localpod.profiles import FAST, REALISTIC, Profile
from localpod.serverless.coldstart import plan_cold_start
from localpod_process import free_port, start_localpod

KEY = "rpa_BENCH_KEY_NOT_REAL"
HF_TOKEN = "hf_bench_token_not_real"
MODEL = "mistralai/Mistral-7B-Instruct-v0.3"
IMAGE = "runpod/worker-v1-vllm:v2.25.2"


class Api:
    def __init__(self, base: str) -> None:
        self.http = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {KEY}"}, timeout=60)

    def rest(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        response = self.http.request(method, f"/api.runpod.io{path}", json=body)
        if response.status_code >= 400:
            raise RuntimeError(f"{method} {path}: {response.status_code} {response.text}")
        return response.json() if response.content else {}

    def graphql(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        body = self.http.post("/api.runpod.io/graphql", json={"query": query, "variables": variables}).json()
        if body.get("errors"):
            raise RuntimeError(body["errors"][0]["message"])
        return body["data"]

    def template(self, name: str) -> str:
        env = {"MODEL_NAME": MODEL, "HF_TOKEN": HF_TOKEN}
        return str(
            self.rest("POST", "/v2/templates", {"name": name, "image": IMAGE, "serverless": True, "env": env})["id"]
        )

    def ready_after(self, create: Any) -> float:
        """Seconds from ``create()`` (returns the endpoint id) to its first ready worker."""
        t0 = time.perf_counter()
        endpoint_id = create()
        while self.http.get(f"/api.runpod.ai/v2/{endpoint_id}/health").json()["workers"]["ready"] < 1:
            time.sleep(0.005)
        return time.perf_counter() - t0


def predicted(profile: Profile) -> dict[str, float]:
    return {
        "volume, first start": plan_cold_start(profile, [MODEL], set(), False).total_s,
        "volume, later start": plan_cold_start(profile, [MODEL], {MODEL}, False).total_s,
        "cached model": plan_cold_start(profile, [MODEL], None, False, {MODEL}).total_s,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=20.0, help="factor on the fast profile's durations")
    args = parser.parse_args()
    overrides = {
        "container_start_s": FAST.container_start_s * args.scale,
        "engine_init_s": FAST.engine_init_s * args.scale,
        "download_bytes_per_s": FAST.download_bytes_per_s / args.scale,
        "volume_read_bytes_per_s": FAST.volume_read_bytes_per_s / args.scale,
        "host_cache_read_bytes_per_s": FAST.host_cache_read_bytes_per_s / args.scale,
    }
    port = free_port()
    proc = start_localpod(port, {"LOCALPOD_API_KEY": KEY, "LOCALPOD_HF_TOKEN": HF_TOKEN})
    try:
        api = Api(f"http://127.0.0.1:{port}")
        api.http.patch("/_localpod/config", json={"overrides": overrides}).raise_for_status()
        profile = FAST.with_overrides(overrides)
        volume = api.rest("POST", "/v2/network-volumes", {"name": "bench", "size": 50, "dataCenter": "EU-RO-1"})

        def on_volume(name: str) -> str:
            body = {
                "name": name,
                "type": "QUEUE",
                "scaling": {"type": "QUEUE_DELAY", "queueDelay": 4},
                "templateId": api.template(f"{name}-tpl"),
                "gpu": {"pools": ["AMPERE_24"]},
                "networkVolumes": [volume["id"]],
                "workers": {"min": 1, "max": 1},
            }
            return str(api.rest("POST", "/v2/serverless", body)["id"])

        def cached() -> str:
            mutation = "mutation S($input: EndpointInput!) { saveEndpoint(input: $input) { id } }"
            body = {
                "name": "cached",
                "templateId": api.template("cached-tpl"),
                "gpuIds": "AMPERE_24",
                "workersMin": 1,
                "workersMax": 1,
                "modelReferences": [f"https://huggingface.co/{MODEL}:main"],
            }
            return str(api.graphql(mutation, {"input": body})["saveEndpoint"]["id"])

        measured = {
            "volume, first start": api.ready_after(lambda: on_volume("first")),
            "volume, later start": api.ready_after(lambda: on_volume("later")),
            "cached model": api.ready_after(cached),
        }
    finally:
        proc.terminate()
        proc.wait(timeout=10)

    expected = predicted(profile)
    weights = hubdata.weights_size_bytes(MODEL) or 0
    base = measured["volume, first start"]
    print(f"time to a ready worker, {MODEL} ({weights / 1e9:.1f} GB of weights), fast profile x{args.scale:g}")
    print(f"  {'path':<22}{'measured s':>12}{'profile s':>11}{'ratio':>7}{'vs volume 1st':>15}")
    for path, seconds in measured.items():
        print(
            f"  {path:<22}{seconds:>12.3f}{expected[path]:>11.3f}{seconds / expected[path]:>7.3f}"
            f"{seconds / base:>15.3f}"
        )
    real = predicted(REALISTIC)
    first = plan_cold_start(REALISTIC, [MODEL], set(), False)
    print("\nrealistic profile (localpod's model of Runpod), seconds a worker bills before it is ready")
    for path, seconds in real.items():
        print(f"  {path:<22}{seconds:>8.1f}  ({seconds / real['volume, first start']:.2f} of the volume's first start)")
    print(f"  download seconds billed: volume first start {first.download_s:.1f}, cached model 0.0")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
