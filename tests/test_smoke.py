import httpx


def test_control_health(localpod):
    body = httpx.get(f"{localpod.base_url}/_localpod/health").json()
    assert body["status"] == "ok"
    assert body["profile"] == "fast"
