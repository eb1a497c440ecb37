"""rpbook's Hub checks against localpod's Hub, for each seed token and the relevant seed repos.

Expected sizes and config values are read from the server (model_info, config.json) and the
arithmetic is redone here; the only pasted numbers are sanity ranges (Mistral's weights ≈14.5 GB,
not the 29 GB of shards + consolidated file).
"""

from __future__ import annotations

import json
import math

import pytest
from huggingface_hub import HfApi, hf_hub_download

from localpod.hubdata import FINEGRAINED_NO_GATED_TOKEN, NO_LICENCE_TOKEN, WRITE_TOKEN
from rpbook.account import hub, modelsize
from rpbook.core.errors import ConfigError, GatedModelError, HubError
from rpbook.core.secrets import Secret
from rpbook.core.settings import load_settings

MISTRAL = "mistralai/Mistral-7B-Instruct-v0.3"
LLAMA = "meta-llama/Llama-3.1-8B-Instruct"
BGE = "BAAI/bge-small-en-v1.5"
UNKNOWN = "localpod-nobody/does-not-exist"
BAD_TOKEN = "hf_localpod_not_a_token"
POOLS = {"AMPERE_16": 16, "AMPERE_24": 24, "ADA_24": 24, "ADA_32_PRO": 32, "AMPERE_48": 48, "AMPERE_80": 80}


def secret(value: str) -> Secret:
    return Secret("HF_TOKEN", value, "test")


def tokens(localpod) -> dict[str, str]:
    return {
        "dev": localpod.hf_token,
        "no_licence": NO_LICENCE_TOKEN,
        "finegrained_no_gated": FINEGRAINED_NO_GATED_TOKEN,
        "write": WRITE_TOKEN,
    }


def assert_no_secret(text: str, *values: str) -> None:
    for value in values:
        assert value not in text


# ------------------------------------------------------------------------------------------ token


def test_check_token_dev_token_from_settings(settings, localpod):
    info = hub.check_token(settings, settings.hf_token())
    assert (info.user, info.role, info.can_read_gated, info.problem) == ("localpod-dev", "fineGrained", True, None)
    assert "localpod-org" in info.orgs and info.token_name
    assert localpod.hf_token not in repr(info)


@pytest.mark.parametrize(
    ("name", "user", "role", "gated_read"),
    [
        ("no_licence", "localpod-newcomer", "read", True),
        ("write", "localpod-writer", "write", True),
        ("finegrained_no_gated", "localpod-dev", "fineGrained", False),
    ],
)
def test_check_token_seed_tokens(settings, localpod, name, user, role, gated_read):
    info = hub.check_token(settings, secret(tokens(localpod)[name]))
    assert (info.user, info.role, info.can_read_gated) == (user, role, gated_read)
    assert (info.problem is None) == gated_read


def test_finegrained_token_without_gated_read_names_the_setting(settings):
    info = hub.check_token(settings, secret(FINEGRAINED_NO_GATED_TOKEN))
    assert hub.GATED_READ_SETTING in info.problem
    assert "https://huggingface.co/settings/tokens" in info.problem
    with pytest.raises(GatedModelError, match="Read access to contents of all public gated repos"):
        hub.check_token(settings, secret(FINEGRAINED_NO_GATED_TOKEN), require_gated_read=True)


def test_invalid_token_says_where_to_create_one_without_the_token(settings):
    with pytest.raises(HubError) as info:
        hub.check_token(settings, secret(BAD_TOKEN))
    message = str(info.value)
    assert "https://huggingface.co/settings/tokens" in message and "invalid" in message
    assert_no_secret(message, BAD_TOKEN)
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_unreachable_hub_is_a_hub_error(tmp_path):
    from conftest import free_port

    settings = load_settings("local", env_file=tmp_path / ".env", localpod_url=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(HubError, match="Cannot reach the Hub") as info:
        hub.check_token(settings, secret("hf_unreachable_check"))
    assert "ensure_localpod" in str(info.value)
    assert_no_secret(str(info.value), "hf_unreachable_check")


# ----------------------------------------------------------------------------------- model access

ACCESS = [
    # token, repo, accessible, problem
    ("dev", MISTRAL, True, None),
    ("dev", LLAMA, True, None),
    ("dev", BGE, True, None),
    ("no_licence", MISTRAL, False, "licence_not_accepted"),
    ("no_licence", LLAMA, False, "request_pending"),
    ("no_licence", BGE, True, None),
    ("finegrained_no_gated", MISTRAL, False, "token_cannot_read_gated"),
    ("finegrained_no_gated", LLAMA, False, "token_cannot_read_gated"),
    ("finegrained_no_gated", BGE, True, None),
    ("write", MISTRAL, True, None),
    ("write", LLAMA, False, "licence_not_accepted"),
]


@pytest.mark.parametrize(("name", "repo", "accessible", "problem"), ACCESS)
def test_check_model_access(settings, localpod, name, repo, accessible, problem):
    token = tokens(localpod)[name]
    access = hub.check_model_access(settings, secret(token), repo)
    assert (access.repo, access.accessible, access.problem) == (repo, accessible, problem)
    assert access.gated == {MISTRAL: "auto", LLAMA: "manual", BGE: False}[repo]
    assert access.model_url == f"https://huggingface.co/{repo}"  # the real Hub, even in local mode
    assert_no_secret(repr(access), token)
    if accessible:
        assert hub.require_model_access(settings, secret(token), repo) == access
        return
    with pytest.raises(GatedModelError) as info:
        hub.require_model_access(settings, secret(token), repo)
    message = str(info.value)
    assert_no_secret(message, token)
    if problem == "token_cannot_read_gated":
        assert hub.GATED_READ_SETTING in message
    else:
        assert access.model_url in message
    if problem == "licence_not_accepted":
        assert "accept the licence" in message
    if repo == LLAMA and problem != "token_cannot_read_gated":
        assert "hours or days" in message  # manual gating: approval takes time


def test_model_access_unknown_repo_and_invalid_token(settings, localpod):
    with pytest.raises(HubError, match="not found") as info:
        hub.check_model_access(settings, secret(localpod.hf_token), UNKNOWN)
    assert not isinstance(info.value, GatedModelError)
    with pytest.raises(HubError, match="settings/tokens") as info:
        hub.check_model_access(settings, secret(BAD_TOKEN), BGE)
    assert_no_secret(str(info.value), BAD_TOKEN)


# ---------------------------------------------------------------------------------------- weights


def sibling_sizes(localpod, repo: str) -> dict[str, int]:
    info = HfApi(endpoint=localpod.hub_url, token=localpod.hf_token).model_info(repo, files_metadata=True)
    return {s.rfilename: s.size for s in info.siblings}


def test_estimate_weights_mistral_counts_shards_once(settings, localpod):
    weights = hub.estimate_weights(settings, settings.hf_token(), MISTRAL)
    sizes = sibling_sizes(localpod, MISTRAL)
    shards = sorted(name for name in sizes if name.startswith("model-") and name.endswith(".safetensors"))
    assert weights.files == tuple(shards) and len(shards) == 3
    assert weights.total_bytes == sum(sizes[name] for name in shards)
    assert 14.4 < weights.total_gb < 14.6  # ≈14.5 GB, not the 29 GB of shards + consolidated
    assert weights.format == "safetensors" and weights.source == "index"
    assert weights.skipped_files == ("consolidated.safetensors",)
    assert weights.skipped_bytes == sizes["consolidated.safetensors"]
    assert weights.download_bytes == weights.total_bytes + sizes["consolidated.safetensors"]
    assert weights.dtype == "BF16" and weights.parameters and 7e9 < weights.parameters < 7.5e9
    assert abs(weights.total_bytes - 2 * weights.parameters) < 1_000_000  # BF16: 2 bytes per parameter


def test_estimate_weights_gated_without_access_falls_back_to_file_names(settings):
    """The index of a gated repo cannot be read before the licence is accepted; names give the same answer."""
    with_access = hub.estimate_weights(settings, settings.hf_token(), MISTRAL)
    without = hub.estimate_weights(settings, secret(NO_LICENCE_TOKEN), MISTRAL)
    assert without.source == "file names"
    assert (without.files, without.total_bytes) == (with_access.files, with_access.total_bytes)


def test_estimate_weights_bge_small_prefers_root_safetensors(settings, localpod):
    weights = hub.estimate_weights(settings, settings.hf_token(), BGE)
    sizes = sibling_sizes(localpod, BGE)
    assert {"pytorch_model.bin", "onnx/model.onnx"} <= set(sizes)  # other formats exist, not counted
    assert weights.files == ("model.safetensors",)
    assert weights.total_bytes == sizes["model.safetensors"]
    assert weights.dtype == "F32" and weights.parameters
    assert abs(weights.total_bytes - 4 * weights.parameters) < 1_000_000


def test_recommend_volume_gb_for_mistral_and_bge(settings):
    mistral = hub.estimate_weights(settings, settings.hf_token(), MISTRAL)
    bge = hub.estimate_weights(settings, settings.hf_token(), BGE)
    assert modelsize.recommend_volume_gb(mistral.total_bytes) == 25  # 14.5 × 1.3 + 5 = 23.8 → 25
    assert modelsize.recommend_volume_gb(bge.total_bytes) == 10  # Runpod's minimum


def test_recommend_volume_gb_rule():
    for weights_gb in (0, 0.1, 3, 14.5, 15.38, 60, 140, 700):
        size = modelsize.recommend_volume_gb(int(weights_gb * 1e9))
        assert size % 5 == 0 and 10 <= size <= 4096
        needed = weights_gb * 1.3 + 5
        assert size >= needed and (size - 5 < needed or size == 10)
    assert modelsize.recommend_volume_gb(int(1.3 * 1e9)) == 10
    assert modelsize.recommend_volume_gb(int(10e12)) == 4096
    with pytest.raises(ConfigError):
        modelsize.recommend_volume_gb(-1)


# ------------------------------------------------------------------------------------- GPU memory


def repo_config(localpod, tmp_path, repo: str) -> dict:
    path = hf_hub_download(
        repo, "config.json", cache_dir=tmp_path / "hf", endpoint=localpod.hub_url, token=localpod.hf_token
    )
    with open(path) as handle:
        return json.load(handle)


@pytest.mark.parametrize("max_model_len", [8192, 32768])
def test_min_gpu_memory_mistral(settings, localpod, tmp_path, max_model_len):
    config = repo_config(localpod, tmp_path, MISTRAL)
    layers, kv_heads = config["num_hidden_layers"], config["num_key_value_heads"]
    head_dim = config["hidden_size"] // config["num_attention_heads"]
    assert config["torch_dtype"] == "bfloat16"
    per_token = 2 * layers * kv_heads * head_dim * 2
    assert per_token == 128 * 1024  # Mistral 7B: 32 layers × 8 KV heads × 128 dims × K,V × 2 bytes

    estimate = hub.min_gpu_memory_gb(settings, settings.hf_token(), MISTRAL, max_model_len)
    weights = hub.estimate_weights(settings, settings.hf_token(), MISTRAL)
    assert (estimate.num_hidden_layers, estimate.num_key_value_heads, estimate.head_dim) == (layers, kv_heads, head_dim)
    assert estimate.dtype_bytes == 2 and estimate.kv_bytes_per_token == per_token
    assert estimate.kv_cache_bytes == per_token * max_model_len == max_model_len // 8192 * modelsize.GIB
    assert estimate.weights_bytes == weights.total_bytes
    assert estimate.total_bytes == weights.total_bytes + estimate.kv_cache_bytes + int(1.5 * modelsize.GIB)
    assert estimate.required_bytes == math.ceil(estimate.total_bytes / 0.9)
    assert estimate.memory_gb == estimate.required_bytes / modelsize.GIB
    expected_gb = (weights.total_bytes / modelsize.GIB + max_model_len / 8192 + 1.5) / 0.9
    assert estimate.memory_gb == pytest.approx(expected_gb)
    assert 17 < estimate.memory_gb < 22  # 13.5 GiB weights + 1 or 4 GiB KV + 1.5 GiB, / 0.9
    assert modelsize.smallest_fitting_pool(estimate.memory_gb, POOLS) == "AMPERE_24"
    assert set(estimate.breakdown_gb) == {"weights", "kv_cache", "overhead", "total", "required"}


def test_min_gpu_memory_lower_utilization_needs_more(settings):
    token = settings.hf_token()
    weights = hub.estimate_weights(settings, token, MISTRAL)
    high = hub.min_gpu_memory_gb(settings, token, MISTRAL, 8192, 0.95, weights=weights)
    low = hub.min_gpu_memory_gb(settings, token, MISTRAL, 8192, 0.5, weights=weights)
    assert low.total_bytes == high.total_bytes and low.memory_gb > high.memory_gb
    assert modelsize.smallest_fitting_pool(low.memory_gb, POOLS) == "AMPERE_48"


def test_min_gpu_memory_float32_checkpoint_is_served_in_float16(settings, localpod, tmp_path):
    config = repo_config(localpod, tmp_path, BGE)
    assert config["torch_dtype"] == "float32"
    estimate = hub.min_gpu_memory_gb(settings, settings.hf_token(), BGE, 512)
    weights = hub.estimate_weights(settings, settings.hf_token(), BGE)
    assert estimate.dtype == "float16" and estimate.dtype_bytes == 2
    assert estimate.weights_bytes == weights.total_bytes // 2
    heads = config["num_attention_heads"]
    assert estimate.kv_bytes_per_token == 2 * config["num_hidden_layers"] * heads * (config["hidden_size"] // heads) * 2


def test_min_gpu_memory_gated_without_access_and_bad_arguments(settings):
    with pytest.raises(GatedModelError, match="accept the licence"):
        hub.min_gpu_memory_gb(settings, secret(NO_LICENCE_TOKEN), MISTRAL, 8192)
    with pytest.raises(ConfigError):
        hub.min_gpu_memory_gb(settings, settings.hf_token(), MISTRAL, 0)
    with pytest.raises(ConfigError):
        hub.min_gpu_memory_gb(settings, settings.hf_token(), MISTRAL, 8192, gpu_memory_utilization=1.5)


def test_smallest_fitting_pool():
    assert modelsize.smallest_fitting_pool(10, POOLS) == "AMPERE_16"
    assert modelsize.smallest_fitting_pool(16, POOLS) == "AMPERE_16"
    assert modelsize.smallest_fitting_pool(16.01, POOLS) == "AMPERE_24"  # first of the 24 GB pools as given
    assert modelsize.smallest_fitting_pool(16.01, {"ADA_24": 24, "AMPERE_24": 24}) == "ADA_24"
    assert modelsize.smallest_fitting_pool(33, POOLS) == "AMPERE_48"
    assert modelsize.smallest_fitting_pool(81, POOLS) is None
    assert modelsize.smallest_fitting_pool(1, {}) is None


def test_missing_repo_file_is_a_hub_error(settings):
    with pytest.raises(HubError, match="has no such file") as info:
        hub._download_json(settings, settings.hf_token(), BGE, "no-such-file.json")
    assert not isinstance(info.value, GatedModelError)


def test_embedding_dimension_from_config(settings):  # type: ignore[no-untyped-def]
    assert hub.embedding_dimension(settings, settings.hf_token(), BGE) == 384
    with pytest.raises(HubError):
        hub.embedding_dimension(settings, settings.hf_token(), UNKNOWN)


# ------------------------------------------------------------------- errors by type, not by text


def hub_error(
    status: int,
    *,
    code: str | None = None,
    message: str = "",
    url: str = f"https://huggingface.co/api/models/{MISTRAL}/auth-check",
) -> Exception:
    """The exception huggingface_hub itself raises for such an answer: the response goes through
    its ``hf_raise_for_status`` (``utils/_http.py``), which picks the type from ``X-Error-Code``
    and the status code."""
    import httpx2
    from huggingface_hub.utils import hf_raise_for_status

    headers = {"X-Error-Message": message} if message else {}
    if code:
        headers["X-Error-Code"] = code
    response = httpx2.Response(status, headers=headers, request=httpx2.Request("GET", url))
    try:
        hf_raise_for_status(response)
    except Exception as exc:  # noqa: BLE001  # the exception is what the test looks at
        return exc
    raise AssertionError(f"hf_raise_for_status accepted HTTP {status}")


def mapped(settings, exc: Exception) -> Exception:  # type: ignore[no-untyped-def]
    with pytest.raises(HubError) as info, hub._hub_errors(settings, secret("hf_error_mapping_check"), MISTRAL):
        raise exc
    return info.value


def test_a_403_without_error_code_is_the_gated_read_permission_whatever_its_wording(settings):
    """The fine-grained refusal is told by its type and status (a plain HfHubHTTPError, 403), not by
    the Hub's sentence: a reworded message still gets rpbook's advice."""
    err = mapped(settings, hub_error(403, message="Some future wording of the refusal"))
    assert isinstance(err, GatedModelError) and hub.GATED_READ_SETTING in str(err)


def test_a_gated_repo_error_is_pending_only_when_the_hub_says_so(settings):
    pending = mapped(
        settings,
        hub_error(
            403,
            code="GatedRepo",
            message=f"Your request to access model {MISTRAL} is awaiting a review from the repo authors.",
        ),
    )
    assert isinstance(pending, GatedModelError) and "awaiting review by the model's authors" in str(pending)
    refused = mapped(settings, hub_error(403, code="GatedRepo", message="Access restricted, wording changed"))
    assert isinstance(refused, GatedModelError) and "has not accepted the model's licence" in str(refused)


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        (401, "RepoNotFound", "was rejected by the Hub"),
        (404, "RepoNotFound", "was not found on the Hub"),
        (429, None, "rate-limiting"),
        (503, None, "answered HTTP 503"),
    ],
)
def test_other_hub_errors_by_type_and_status(settings, status, code, expected):
    err = mapped(settings, hub_error(status, code=code, message="server text"))
    assert not isinstance(err, GatedModelError) and expected in str(err)
    assert_no_secret(str(err), "hf_error_mapping_check")


# ------------------------------------------------------------------------------ sizing arithmetic


def test_gpu_memory_estimate_is_arithmetic_on_the_config():
    """No Hub needed: the formula of ``modelsize.gpu_memory_estimate`` redone from its inputs."""
    config = {
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "hidden_size": 4096,
        "torch_dtype": "bfloat16",
    }
    weights = 14_483_464_192
    estimate = modelsize.gpu_memory_estimate("org/model", config, weights, "BF16", 8192, 0.9)
    per_token = 2 * 32 * 8 * (4096 // 32) * 2
    assert estimate.kv_bytes_per_token == per_token
    assert estimate.total_bytes == weights + per_token * 8192 + modelsize.OVERHEAD_BYTES
    assert estimate.required_bytes == math.ceil(estimate.total_bytes / 0.9)
    nested = modelsize.gpu_memory_estimate("org/model", {"text_config": config}, weights, "BF16", 8192, 0.9)
    assert nested == estimate
    as_f32 = modelsize.gpu_memory_estimate("org/model", config | {"torch_dtype": "float32"}, weights, None, 8192)
    assert as_f32.weights_bytes == weights // 2 and as_f32.dtype == "float16"
    with pytest.raises(HubError, match="lacks num_hidden_layers"):
        modelsize.gpu_memory_estimate("org/model", {"hidden_size": 8}, weights, None, 8192)
    with pytest.raises(ConfigError):
        modelsize.gpu_memory_estimate("org/model", config, weights, None, 0)
