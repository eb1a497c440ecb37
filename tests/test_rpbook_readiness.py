"""Runbook 00's combined check against localpod's Hub."""

from __future__ import annotations

import pytest

from rpbook.account.readiness import check_model_readiness
from rpbook.core.errors import GatedModelError, HubError
from rpbook.core.secrets import Secret

MISTRAL = "mistralai/Mistral-7B-Instruct-v0.3"


def test_licensed_token_is_ready_with_sizes(localpod, settings):
    result = check_model_readiness(settings, Secret("HF_TOKEN", localpod.hf_token, "test"), MISTRAL, max_model_len=8192)
    assert result.ok
    result.raise_for_problems()
    assert 14.4 < result.weights.total_gb < 14.6
    assert result.volume_gb >= result.weights.download_bytes / 1e9  # sized for what vLLM downloads
    assert result.gpu is not None and 16 < result.gpu.memory_gb < 24
    assert result.figures["licence_ok"] is True
    assert localpod.hf_token not in str(result) and localpod.hf_token not in result._repr_html_()


def test_missing_licence_is_collected_with_the_model_url(settings):
    result = check_model_readiness(
        settings, Secret("HF_TOKEN", "hf_localpod_no_licence", "test"), MISTRAL, max_model_len=8192
    )
    assert not result.ok
    assert any("huggingface.co/mistralai/Mistral-7B-Instruct-v0.3" in p for p in result.problems)
    with pytest.raises(GatedModelError) as info:
        result.raise_for_problems()
    assert "hf_localpod_no_licence" not in str(info.value)


def test_fine_grained_token_without_gated_read_names_the_setting(settings):
    result = check_model_readiness(
        settings, Secret("HF_TOKEN", "hf_localpod_finegrained_no_gated", "test"), MISTRAL, max_model_len=8192
    )
    assert not result.ok
    assert any("gated repos" in p for p in result.problems)


def test_public_model_with_fine_grained_token_is_fine(settings):
    result = check_model_readiness(
        settings,
        Secret("HF_TOKEN", "hf_localpod_finegrained_no_gated", "test"),
        "BAAI/bge-small-en-v1.5",
        max_model_len=512,
    )
    assert result.ok and result.volume_gb == 10


def test_invalid_token_raises(settings):
    with pytest.raises(HubError):
        check_model_readiness(settings, Secret("HF_TOKEN", "hf_not_a_real_token", "test"), MISTRAL, max_model_len=8192)
