"""How much memory a model needs: bytes, parameters and KV cache, as arithmetic on numbers.

The Hub queries that supply the numbers (weight files and their sizes, ``config.json``) are in
``rpbook.account.hub``; this module only computes, so it can be checked without a Hub and reused by
whatever has the numbers (readiness, preflight, budget). Byte fields are exact; ``*_gb`` are GiB
(2**30), the unit GPU memory is sold in (a "24 GB" card has 24 GiB).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rpbook.core.errors import ConfigError, HubError

GIB = 1 << 30
OVERHEAD_BYTES = int(1.5 * GIB)
"""Activations, CUDA context/graphs and allocator slack of a single-GPU vLLM server (a rough,
deliberately round figure)."""


@dataclass(frozen=True)
class GpuMemoryEstimate:
    """GPU memory vLLM needs to serve one sequence of ``max_model_len`` tokens (see
    :func:`gpu_memory_estimate` for the formula). Byte fields are exact; ``*_gb`` are GiB (2**30), the unit
    GPU memory is sold in (a "24 GB" card has 24 GiB)."""

    repo: str
    max_model_len: int
    gpu_memory_utilization: float
    weights_bytes: int
    kv_cache_bytes: int
    kv_bytes_per_token: int
    overhead_bytes: int
    total_bytes: int
    """weights + KV cache + overhead: what must fit in the fraction vLLM may use."""
    required_bytes: int
    """``total_bytes / gpu_memory_utilization``: the card size needed."""
    num_hidden_layers: int
    num_key_value_heads: int
    head_dim: int
    dtype: str
    dtype_bytes: int

    @property
    def memory_gb(self) -> float:
        """Minimum GPU memory in GiB; compare with a pool's nominal VRAM."""
        return self.required_bytes / GIB

    def full_length_sequences(self, vram_gib: float) -> int:
        """How many sequences of ``max_model_len`` tokens fit in the KV cache of one GPU with
        ``vram_gib``: what vLLM's share of the card holds after weights and overhead, divided by
        one full sequence's KV cache. Shorter requests share the rest, so a worker can run more
        requests than this at once, but this many long ones fill it and the rest wait."""
        free = vram_gib * GIB * self.gpu_memory_utilization - self.weights_bytes - self.overhead_bytes
        return max(0, int(free // self.kv_cache_bytes)) if self.kv_cache_bytes else 0

    @property
    def breakdown_gb(self) -> dict[str, float]:
        """Each part in GiB, rounded for display."""
        return {
            "weights": round(self.weights_bytes / GIB, 2),
            "kv_cache": round(self.kv_cache_bytes / GIB, 2),
            "overhead": round(self.overhead_bytes / GIB, 2),
            "total": round(self.total_bytes / GIB, 2),
            "required": round(self.required_bytes / GIB, 2),
        }


_DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "fp32": 4, "fp16": 2, "bf16": 2, "half": 2, "float": 4}


def check_sequence_arguments(max_model_len: int, gpu_memory_utilization: float) -> None:
    """``ConfigError`` for a length or utilization vLLM would refuse, before anything is fetched."""
    if max_model_len <= 0:
        raise ConfigError(f"max_model_len must be a positive number of tokens, got {max_model_len}")
    if not 0 < gpu_memory_utilization <= 1:
        raise ConfigError(f"gpu_memory_utilization must be in (0, 1], got {gpu_memory_utilization}")


def gpu_memory_estimate(
    repo_id: str,
    config: Mapping[str, Any],
    weights_bytes: int,
    weights_dtype: str | None,
    max_model_len: int,
    gpu_memory_utilization: float = 0.9,
) -> GpuMemoryEstimate:
    """The smallest GPU that serves a model with vLLM for ONE sequence of ``max_model_len`` tokens
    (vLLM refuses to start when even one does not fit in the KV cache)::

        kv_bytes_per_token = 2 (K and V) × num_hidden_layers × num_key_value_heads × head_dim × dtype_bytes
        total              = weights_bytes + kv_bytes_per_token × max_model_len + 1.5 GiB overhead
        required           = total / gpu_memory_utilization

    Values come from the repo's ``config.json`` (``head_dim`` defaults to hidden_size /
    num_attention_heads, ``num_key_value_heads`` to num_attention_heads). The dtype is vLLM's
    ``--dtype auto``: the config's ``torch_dtype``, except that float32 checkpoints are served in
    float16 (their weights then take half their file size; ``weights_dtype`` is the checkpoint's
    dominant dtype from the Hub's safetensors metadata, None when unknown). It is an **estimate**:
    sliding windows, quantized KV caches, tensor parallelism and vLLM's CUDA-graph and sampler
    memory are not modelled; more concurrent sequences need proportionally more KV cache."""
    check_sequence_arguments(max_model_len, gpu_memory_utilization)
    config = config.get("text_config", config) if "num_hidden_layers" not in config else config
    try:
        layers = int(config["num_hidden_layers"])
        heads = int(config["num_attention_heads"])
        kv_heads = int(config.get("num_key_value_heads") or heads)
        head_dim = int(config.get("head_dim") or int(config["hidden_size"]) // heads)
    except (KeyError, TypeError, ValueError):
        raise HubError(
            f"config.json of {repo_id} lacks num_hidden_layers / num_attention_heads / hidden_size; "
            "cannot estimate its KV cache."
        ) from None
    checkpoint_dtype = str(config.get("torch_dtype") or config.get("dtype") or "bfloat16").lower()
    dtype = "float16" if checkpoint_dtype in ("float32", "fp32", "float") else checkpoint_dtype
    dtype_bytes = _DTYPE_BYTES.get(dtype, 2)
    if checkpoint_dtype in ("float32", "fp32", "float") and (weights_dtype in (None, "F32")):
        weights_bytes //= 2
    per_token = 2 * layers * kv_heads * head_dim * dtype_bytes
    kv_bytes = per_token * max_model_len
    total = weights_bytes + kv_bytes + OVERHEAD_BYTES
    return GpuMemoryEstimate(
        repo=repo_id,
        max_model_len=max_model_len,
        gpu_memory_utilization=gpu_memory_utilization,
        weights_bytes=weights_bytes,
        kv_cache_bytes=kv_bytes,
        kv_bytes_per_token=per_token,
        overhead_bytes=OVERHEAD_BYTES,
        total_bytes=total,
        required_bytes=math.ceil(total / gpu_memory_utilization),
        num_hidden_layers=layers,
        num_key_value_heads=kv_heads,
        head_dim=head_dim,
        dtype=dtype,
        dtype_bytes=dtype_bytes,
    )


def smallest_fitting_pool(memory_gb: float, pools: Mapping[str, int]) -> str | None:
    """The serverless GPU pool with the least VRAM that is still >= ``memory_gb`` (GiB, as
    ``GpuMemoryEstimate.memory_gb``); among pools with the same VRAM the first in ``pools`` wins, so
    pass them cheapest first. None when no pool is big enough (use several GPUs or a smaller
    ``max_model_len``). ``pools`` maps pool id → VRAM GB, e.g. from the control plane's catalog."""
    best: tuple[int, int, str] | None = None
    for order, (pool, vram) in enumerate(pools.items()):
        if vram >= memory_gb and (best is None or (vram, order) < best[:2]):
            best = (vram, order, pool)
    return None if best is None else best[2]


VOLUME_MIN_GB = 10
VOLUME_MAX_GB = 4096
"""Runpod's network-volume size limits (REST v2 ``CreateNetworkVolumeRequest.size``)."""


def recommend_volume_gb(weights_bytes: int) -> int:
    """Network-volume size for a model cache: weights + 30 % + 5 GB, rounded up to a multiple of 5 GB,
    clamped to Runpod's 10–4096 GB.

    Why: the HF cache on the volume also holds the tokenizer, configs and a partially downloaded
    file while a download runs; 30 % covers extra files and a revision update, the fixed 5 GB covers
    small models whose tokenizer and temp files are large relative to the weights. Volumes can grow
    later but never shrink, so erring a little large is cheap (≈$0.07/GB/month)."""
    if weights_bytes < 0:
        raise ConfigError(f"weights_bytes must be >= 0, got {weights_bytes}")
    needed_gb = weights_bytes / 1e9 * 1.3 + 5
    rounded = math.ceil(needed_gb / 5 - 1e-9) * 5
    return max(VOLUME_MIN_GB, min(VOLUME_MAX_GB, rounded))
