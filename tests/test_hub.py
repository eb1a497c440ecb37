"""The Hub subset, driven by the real ``huggingface_hub`` client against a running localpod.

Expected values come from the server itself (model_info siblings, the tree listing) or from the
documented seed (``localpod.hubdata``), never from numbers pasted here, except the sanity ranges that
say what the snapshot is meant to look like (e.g. Mistral's sharded weights are ~14.5 GB, not 29 GB).
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import httpx
import pytest
from huggingface_hub import HfApi, get_hf_file_metadata, hf_hub_download, hf_hub_url
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from localpod import DEFAULT_HF_TOKEN, hubdata
from localpod.hubdata import FINEGRAINED_NO_GATED_TOKEN, NO_LICENCE_TOKEN, WRITE_TOKEN

MISTRAL = "mistralai/Mistral-7B-Instruct-v0.3"
LLAMA = "meta-llama/Llama-3.1-8B-Instruct"
BGE = "BAAI/bge-small-en-v1.5"
SMOL = "HuggingFaceTB/SmolLM2-135M-Instruct"
UNKNOWN = "localpod-nobody/does-not-exist"
BAD_TOKEN = "hf_localpod_not_a_token"


def api(localpod, token) -> HfApi:
    """``token=False`` means anonymous (never pick up a token from the machine running the tests)."""
    return HfApi(endpoint=localpod.hub_url, token=token)


def all_tokens(localpod) -> dict[str, str | bool]:
    return {
        "dev": localpod.hf_token,
        "no_licence": NO_LICENCE_TOKEN,
        "finegrained_no_gated": FINEGRAINED_NO_GATED_TOKEN,
        "write": WRITE_TOKEN,
        "anonymous": False,
    }


# ------------------------------------------------------------------------------------------ whoami


def test_seed_tokens_do_not_look_like_real_tokens(localpod):
    real_token_shape = re.compile(r"hf_[A-Za-z0-9]{34,}")
    for token in (*hubdata.SEED_TOKENS, localpod.hf_token, DEFAULT_HF_TOKEN):
        assert not real_token_shape.search(token)


def test_whoami_dev_token_is_finegrained_with_gated_read(localpod):
    me = api(localpod, localpod.hf_token).whoami()
    assert me["type"] == "user" and me["name"] == "localpod-dev"
    access = me["auth"]["accessToken"]
    assert access["role"] == "fineGrained"
    assert access["fineGrained"]["canReadGatedRepos"] is True
    assert {"localpod-org"} <= {org["name"] for org in me["orgs"]}
    for key in ("id", "fullname", "email", "emailVerified", "isPro", "canPay", "avatarUrl", "periodEnd"):
        assert key in me


@pytest.mark.parametrize(
    ("token", "user", "role", "gated_read"),
    [
        (NO_LICENCE_TOKEN, "localpod-newcomer", "read", None),
        (FINEGRAINED_NO_GATED_TOKEN, "localpod-dev", "fineGrained", False),
        (WRITE_TOKEN, "localpod-writer", "write", None),
    ],
)
def test_whoami_seed_tokens(localpod, token, user, role, gated_read):
    me = api(localpod, token).whoami()
    access = me["auth"]["accessToken"]
    assert (me["name"], access["role"]) == (user, role)
    assert access.get("fineGrained", {}).get("canReadGatedRepos") == gated_read


def test_whoami_write_token_user_is_org_admin(localpod):
    orgs = api(localpod, WRITE_TOKEN).whoami()["orgs"]
    assert [(o["name"], o["roleInOrg"], o["type"]) for o in orgs] == [("localpod-org", "admin", "org")]


def test_whoami_bad_token_is_401_invalid_user_token(localpod):
    with pytest.raises(HfHubHTTPError) as info:
        api(localpod, BAD_TOKEN).whoami()
    assert info.value.response.status_code == 401
    assert "Invalid user token." in str(info.value)
    assert BAD_TOKEN not in str(info.value.response.headers)


# -------------------------------------------------------------------------------------- model_info


def test_model_info_gated_with_files_metadata(localpod):
    info = api(localpod, False).model_info(MISTRAL, files_metadata=True)  # gated metadata is public
    assert info.gated == "auto" and info.private is False and info.sha
    sizes = {s.rfilename: s.size for s in info.siblings}
    assert {"config.json", "consolidated.safetensors", "tokenizer.model", "README.md"} <= set(sizes)
    shards = [s for s in info.siblings if re.fullmatch(r"model-\d{5}-of-00003\.safetensors", s.rfilename)]
    assert len(shards) == 3
    assert all(s.lfs is not None and s.lfs.size == s.size and len(s.lfs.sha256) == 64 for s in shards)
    config = next(s for s in info.siblings if s.rfilename == "config.json")
    assert config.lfs is None and config.size > 0 and len(config.blob_id) == 40
    # safetensors counts parameters; BF16 = 2 bytes each, so the shards hold ~2x that many bytes
    assert info.safetensors.total == sum(info.safetensors.parameters.values())
    shard_bytes = sum(s.size for s in shards)
    assert 0 < shard_bytes - 2 * info.safetensors.parameters["BF16"] < 1_000_000
    assert info.config["model_type"] == "mistral"
    assert info.used_storage == sum(sizes.values())


def test_model_info_without_blobs_has_no_sizes(localpod):
    info = api(localpod, localpod.hf_token).model_info(BGE)
    assert info.gated is False and info.pipeline_tag == "feature-extraction"
    assert info.siblings and all(s.size is None for s in info.siblings)
    assert "onnx/model.onnx" in {s.rfilename for s in info.siblings}
    assert set(info.safetensors.parameters) == {"F32"}


def test_model_info_revision_and_expand(localpod):
    client = api(localpod, localpod.hf_token)
    sha = client.model_info(LLAMA).sha
    assert client.model_info(LLAMA, revision=sha).sha == sha
    with pytest.raises(RevisionNotFoundError):
        client.model_info(LLAMA, revision="v999")
    expanded = client.model_info(LLAMA, expand=["gated", "usedStorage"])
    assert expanded.gated == "manual" and expanded.used_storage > 0 and expanded.siblings is None


@pytest.mark.parametrize("token", ["dev", "anonymous", "no_licence"])
def test_unknown_repo_is_repository_not_found(localpod, token):
    with pytest.raises(RepositoryNotFoundError) as info:
        api(localpod, all_tokens(localpod)[token]).model_info(UNKNOWN)
    assert not isinstance(info.value, GatedRepoError)
    assert info.value.response.status_code == (401 if token == "anonymous" else 404)


def test_invalid_token_on_public_repo_is_repository_not_found(localpod):
    """The Hub rejects an invalid token even on a public repo (401), which the client reports as
    RepositoryNotFoundError."""
    with pytest.raises(RepositoryNotFoundError) as info:
        api(localpod, BAD_TOKEN).model_info(BGE)
    assert info.value.response.status_code == 401


# -------------------------------------------------------------------------------------- auth_check


def test_auth_check_dev_token_reads_every_repo(localpod):
    client = api(localpod, localpod.hf_token)
    for repo_id in hubdata.known_repo_ids():
        assert client.auth_check(repo_id) is None


def test_auth_check_gated_refusals(localpod):
    with pytest.raises(GatedRepoError, match="not in the authorized list"):
        api(localpod, NO_LICENCE_TOKEN).auth_check(MISTRAL)
    with pytest.raises(GatedRepoError, match="awaiting a review"):
        api(localpod, NO_LICENCE_TOKEN).auth_check(LLAMA)
    with pytest.raises(GatedRepoError, match="not in the authorized list"):
        api(localpod, WRITE_TOKEN).auth_check(LLAMA)
    assert api(localpod, WRITE_TOKEN).auth_check(MISTRAL) is None
    with pytest.raises(GatedRepoError, match="Please log in") as anonymous:
        api(localpod, False).auth_check(MISTRAL)
    assert anonymous.value.response.status_code == 401


def test_auth_check_finegrained_token_without_gated_permission(localpod):
    """The Hub refuses it with a 403 that carries no GatedRepo code, so the client raises a plain
    HfHubHTTPError ("403 Forbidden: Please enable access to public gated repositories ...")."""
    with pytest.raises(HfHubHTTPError) as info:
        api(localpod, FINEGRAINED_NO_GATED_TOKEN).auth_check(MISTRAL)
    assert not isinstance(info.value, RepositoryNotFoundError)
    assert info.value.response.status_code == 403
    assert "enable access to public gated repositories" in str(info.value)


@pytest.mark.parametrize("token", ["dev", "no_licence", "finegrained_no_gated", "write", "anonymous"])
def test_auth_check_public_repo_ok_for_everyone(localpod, token):
    assert api(localpod, all_tokens(localpod)[token]).auth_check(BGE) is None


def test_auth_check_unknown_repo(localpod):
    with pytest.raises(RepositoryNotFoundError):
        api(localpod, localpod.hf_token).auth_check(UNKNOWN)


def test_download_denial_agrees_with_auth_check_over_http(localpod):
    """One set of rules: the platform's answer and the Hub's answer are the same for every pair."""
    for name, token in all_tokens(localpod).items():
        for repo_id in [*hubdata.known_repo_ids(), UNKNOWN]:
            denial = hubdata.download_denial(repo_id, token or None, localpod.hf_token)
            try:
                api(localpod, token).auth_check(repo_id)
                allowed = True
            except HfHubHTTPError:
                allowed = False
            assert allowed == (denial is None), (name, repo_id, denial)


# ---------------------------------------------------------------------------------- files, resolve


def test_file_exists(localpod):
    client = api(localpod, localpod.hf_token)
    assert client.file_exists(MISTRAL, "consolidated.safetensors")
    assert client.file_exists(BGE, "onnx/model.onnx")
    assert not client.file_exists(BGE, "model-00001-of-00002.safetensors")
    assert not client.file_exists(UNKNOWN, "config.json")
    assert not client.file_exists(BGE, "config.json", revision="no-such-branch")


def test_file_exists_on_gated_repo_without_access(localpod):
    anonymous = api(localpod, False)
    with pytest.raises(GatedRepoError):
        anonymous.file_exists(LLAMA, "config.json")
    assert anonymous.file_exists(LLAMA, "README.md")  # the model card stays readable behind the gate


def test_list_repo_files_matches_siblings(localpod):
    client = api(localpod, localpod.hf_token)
    for repo_id in (MISTRAL, BGE):
        siblings = {s.rfilename for s in client.model_info(repo_id).siblings}
        assert set(client.list_repo_files(repo_id)) == siblings


def test_get_hf_file_metadata_on_big_safetensors_uses_head(localpod):
    info = api(localpod, localpod.hf_token).model_info(MISTRAL, files_metadata=True)
    shard = next(s for s in info.siblings if s.rfilename == "model-00001-of-00003.safetensors")
    url = hf_hub_url(MISTRAL, shard.rfilename, endpoint=localpod.hub_url)
    meta = get_hf_file_metadata(url, token=localpod.hf_token)
    assert meta.size == shard.size > 4_000_000_000
    assert meta.etag == shard.lfs.sha256
    assert meta.commit_hash == info.sha


def test_head_gated_file_refused_then_allowed(localpod):
    url = hf_hub_url(MISTRAL, "consolidated.safetensors", endpoint=localpod.hub_url)
    with pytest.raises(GatedRepoError):
        get_hf_file_metadata(url, token=NO_LICENCE_TOKEN)
    assert get_hf_file_metadata(url, token=WRITE_TOKEN).size > 14_000_000_000


def test_head_unknown_file_is_entry_not_found(localpod):
    url = hf_hub_url(BGE, "nope.bin", endpoint=localpod.hub_url)
    with pytest.raises(RemoteEntryNotFoundError) as info:
        get_hf_file_metadata(url, token=localpod.hf_token)
    assert info.value.response.headers["X-Repo-Commit"]


def test_hf_hub_download_config_json(localpod, tmp_path: Path):
    info = api(localpod, localpod.hf_token).model_info(MISTRAL, files_metadata=True)
    path = hf_hub_download(
        MISTRAL, "config.json", cache_dir=tmp_path, endpoint=localpod.hub_url, token=localpod.hf_token
    )
    data = Path(path).read_bytes()
    config = json.loads(data)
    assert config["architectures"] == info.config["architectures"]
    assert config["model_type"] == info.config["model_type"]
    sibling = next(s for s in info.siblings if s.rfilename == "config.json")
    assert len(data) == sibling.size
    assert hashlib.sha1(b"blob %d\x00" % len(data) + data).hexdigest() == sibling.blob_id
    assert info.sha in path  # stored under snapshots/<commit>/


def test_hf_hub_download_gated_config_refused(localpod, tmp_path: Path):
    with pytest.raises(GatedRepoError):
        hf_hub_download(LLAMA, "config.json", cache_dir=tmp_path, endpoint=localpod.hub_url, token=NO_LICENCE_TOKEN)


def test_weight_bytes_stream_lazily_and_deterministically(localpod):
    """A byte range of a 5 GB shard comes back as 206 with the right length, identical twice."""
    url = f"{localpod.hub_url}/{MISTRAL}/resolve/main/model-00002-of-00003.safetensors"
    headers = {"Authorization": f"Bearer {localpod.hf_token}", "Range": "bytes=4000000000-4000999999"}
    first = httpx.get(url, headers=headers, timeout=10)
    second = httpx.get(url, headers=headers, timeout=10)
    assert first.status_code == 206 and len(first.content) == 1_000_000
    assert first.content == second.content
    size = int(first.headers["X-Linked-Size"])
    assert first.headers["Content-Range"] == f"bytes 4000000000-4000999999/{size}"


def test_head_and_get_have_the_same_headers(localpod):
    url = f"{localpod.hub_url}/{SMOL}/resolve/main/tokenizer_config.json"
    head = httpx.head(url)
    get = httpx.get(url)
    assert head.status_code == get.status_code == 200 and head.content == b""
    for key in ("etag", "x-repo-commit", "content-length", "content-type"):
        assert head.headers[key] == get.headers[key]
    assert int(get.headers["content-length"]) == len(get.content)
    assert "x-linked-size" not in get.headers  # not an LFS file


# ----------------------------------------------------------------------- platform interface (unit)


def test_weights_size_bytes_uses_shards_not_consolidated():
    repo = hubdata.repos()[MISTRAL]
    shards = sum(f.size for f in repo.files.values() if re.fullmatch(r"model-\d+-of-\d+\.safetensors", f.path))
    size = hubdata.weights_size_bytes(MISTRAL)
    assert size == shards
    assert 14_000_000_000 < size < 15_000_000_000  # ~14.5 GB, not the 29 GB of shards + consolidated


def test_download_size_counts_every_top_level_safetensors_as_vllm_fetches_them():
    repo = hubdata.repos()[MISTRAL]
    everything = sum(f.size for f in repo.files.values() if f.path.endswith(".safetensors") and "/" not in f.path)
    assert hubdata.download_size_bytes(MISTRAL) == everything
    assert hubdata.download_size_bytes(MISTRAL) > 2 * 14_000_000_000  # shards + consolidated
    assert hubdata.download_size_bytes(BGE) == hubdata.weights_size_bytes(BGE)
    assert hubdata.download_size_bytes(UNKNOWN) is None


def test_weights_size_bytes_single_file_and_unknown():
    bge = hubdata.repos()[BGE]
    assert hubdata.weights_size_bytes(BGE) == bge.files["model.safetensors"].size
    assert hubdata.weights_size_bytes(UNKNOWN) is None
    assert set(hubdata.known_repo_ids()) >= {
        MISTRAL,
        LLAMA,
        BGE,
        SMOL,
        "Qwen/Qwen2.5-7B-Instruct",
        "BAAI/bge-reranker-base",
    }


def test_download_denial_reasons():
    default = "hf_localpod_server_token"
    assert hubdata.download_denial(MISTRAL, default, default) is None
    assert hubdata.download_denial(BGE, None, default) is None
    assert "not in the authorized list" in hubdata.download_denial(MISTRAL, NO_LICENCE_TOKEN, default)
    assert "awaiting a review" in hubdata.download_denial(LLAMA, NO_LICENCE_TOKEN, default)
    assert "fine-grained" in hubdata.download_denial(LLAMA, FINEGRAINED_NO_GATED_TOKEN, default)
    assert "log in" in hubdata.download_denial(LLAMA, None, default)
    assert "not found" in hubdata.download_denial(UNKNOWN, default, default)
    bad = hubdata.download_denial(BGE, BAD_TOKEN, default)
    assert bad is not None and "invalid token" in bad and BAD_TOKEN not in bad
    # the configured server token is the all-licences one, whatever its value
    assert hubdata.download_denial(LLAMA, NO_LICENCE_TOKEN, NO_LICENCE_TOKEN) is None
