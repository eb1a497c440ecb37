"""Runbook 00 in one call: is this HF token ready to serve this model, and how big must things be?

It strings the Hub checks together in the order a newcomer meets them (who am I, may I read the
model, how large are its weights, what volume and GPU does that need) and keeps going after a
refusal, so a single run lists every problem with its fix instead of stopping at the first one.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass, field

from rpbook.account import hub, modelsize
from rpbook.account.modelsize import GpuMemoryEstimate
from rpbook.account.resources import GpuType
from rpbook.core.display import html_table, rich_output
from rpbook.core.errors import GatedModelError, HubError
from rpbook.core.secrets import Secret
from rpbook.core.settings import Settings


@rich_output
@dataclass(frozen=True)
class ModelReadiness:
    repo: str
    token: hub.TokenInfo
    access: hub.ModelAccess
    weights: hub.WeightsEstimate
    volume_gb: int
    """Recommended network volume size (sized for what vLLM downloads)."""
    gpu: GpuMemoryEstimate | None
    """None when the model's config could not be read (licence not accepted yet)."""
    problems: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not self.problems

    def raise_for_problems(self) -> None:
        """Stop the runbook when the token cannot serve the model (the message says how to fix it)."""
        if self.problems:
            raise GatedModelError("\n".join(self.problems))

    @property
    def figures(self) -> dict[str, float | int | str | bool]:
        out: dict[str, float | int | str | bool] = {
            "model": self.repo,
            "token_role": self.token.role,
            "can_read_gated": self.token.can_read_gated,
            "licence_ok": self.access.accessible,
            "weights_gb": round(self.weights.total_gb, 2),
            "download_gb": round(self.weights.download_bytes / 1e9, 2),
            "volume_gb": self.volume_gb,
        }
        if self.gpu is not None:
            out.update(min_gpu_memory_gib=round(self.gpu.memory_gb, 1), max_model_len=self.gpu.max_model_len)
        return out

    def rows(self) -> list[tuple[str, str]]:
        rows = [
            ("HF user", f"{self.token.user} (token {self.token.token_name or '?'}, role {self.token.role})"),
            ("gated repos", "readable" if self.token.can_read_gated else f"NOT readable: {self.token.problem}"),
            ("model", f"{self.repo} ({self.access.model_url})"),
            ("licence", self.access.reason),
            (
                "weights",
                f"{self.weights.total_gb:.2f} GB in {len(self.weights.files)} {self.weights.format} file(s)"
                + (
                    f", {self.weights.parameters / 1e9:.2f} B parameters ({self.weights.dtype})"
                    if self.weights.parameters
                    else ""
                ),
            ),
            (
                "vLLM downloads",
                f"{self.weights.download_bytes / 1e9:.2f} GB"
                + (f" (also {', '.join(self.weights.skipped_files)})" if self.weights.skipped_files else ""),
            ),
            ("network volume", f"{self.volume_gb} GB recommended"),
        ]
        if self.gpu is not None:
            parts = self.gpu.breakdown_gb
            rows.append(
                (
                    "GPU memory",
                    f"≥ {self.gpu.memory_gb:.1f} GiB for MAX_MODEL_LEN {self.gpu.max_model_len} "
                    f"(weights {parts['weights']} + KV cache {parts['kv_cache']} + overhead "
                    f"{parts['overhead']} GiB, at {self.gpu.gpu_memory_utilization:.0%} "
                    "utilisation)",
                )
            )
        for problem in self.problems:
            rows.append(("PROBLEM", problem))
        return rows

    def __str__(self) -> str:
        width = max(len(k) for k, _ in self.rows())
        return "\n".join(f"{k:<{width}}  {v}" for k, v in self.rows())

    __repr__ = __str__

    def _repr_html_(self) -> str:
        return html_table(None, self.rows(), row_headers=True)


def check_model_readiness(
    settings: Settings, token: Secret, repo_id: str, *, max_model_len: int, gpu_memory_utilization: float = 0.9
) -> ModelReadiness:
    """Every check of runbook 00. Raises ``HubError`` only when the token itself is invalid or the
    repo does not exist; a missing licence or permission is collected in ``problems``."""
    token_info = hub.check_token(settings, token)
    access = hub.check_model_access(settings, token, repo_id)
    weights = hub.estimate_weights(settings, token, repo_id)
    problems: list[str] = []
    if token_info.problem and access.gated:
        problems.append(token_info.problem)
    if not access.accessible:
        problems.append(access.reason)
    gpu = None
    try:
        gpu = hub.min_gpu_memory_gb(settings, token, repo_id, max_model_len, gpu_memory_utilization, weights=weights)
    except HubError as exc:
        if access.accessible:
            raise
        problems.append(f"GPU memory not estimated until the model's config.json is readable ({exc})")
    return ModelReadiness(
        repo=repo_id,
        token=token_info,
        access=access,
        weights=weights,
        volume_gb=modelsize.recommend_volume_gb(weights.download_bytes),
        gpu=gpu,
        problems=tuple(dict.fromkeys(problems)),
    )


CONCURRENCY_WARN_FACTOR = 2
"""Warn when ``MAX_CONCURRENCY`` is more than this many times the full-length sequences that fit."""


@rich_output
@dataclass(frozen=True)
class KvCacheFit:
    """For each GPU pool the endpoint may use, how many full-length sequences its KV cache holds,
    against the worker's ``MAX_CONCURRENCY``."""

    estimate: GpuMemoryEstimate
    max_concurrency: int
    fits: tuple[tuple[str, int, int], ...]
    """(pool, VRAM GB, full-length sequences that fit), in the endpoint's order of preference."""

    @property
    def warnings(self) -> tuple[str, ...]:
        out = []
        for pool, vram, count in self.fits:
            if count == 0:
                out.append(
                    f"{pool} ({vram} GB) cannot hold one sequence of {self.estimate.max_model_len} tokens: "
                    f"vLLM will not start there. Lower max_model_len or choose a larger GPU pool."
                )
            elif self.max_concurrency > CONCURRENCY_WARN_FACTOR * count:
                out.append(
                    f"max_concurrency {self.max_concurrency} is far above the {count} full-length sequences "
                    f"that fit on {pool} ({vram} GB): requests beyond what fits wait inside the worker "
                    f"while Runpod sees it busy and starts no other; set max_concurrency near {count} to "
                    f"{CONCURRENCY_WARN_FACTOR * count} (the team's setting is 8), or lower max_model_len."
                )
        return tuple(out)

    def rows(self) -> list[tuple[str, str, str, str]]:
        return [
            (
                pool,
                f"{vram} GB",
                str(count),
                "ok" if count and self.max_concurrency <= CONCURRENCY_WARN_FACTOR * count else "see warning",
            )
            for pool, vram, count in self.fits
        ]

    def __str__(self) -> str:
        head = (
            f"KV cache: full-length sequences ({self.estimate.max_model_len} tokens) per worker at "
            f"{self.estimate.gpu_memory_utilization:.0%} utilisation, MAX_CONCURRENCY {self.max_concurrency}"
        )
        lines = [head] + [
            f"  {pool:<12} {vram:>7}  {count:>3} fit  {state}" for pool, vram, count, state in self.rows()
        ]
        return "\n".join(lines + [f"  WARNING: {w}" for w in self.warnings])

    __repr__ = __str__

    def _repr_html_(self) -> str:
        head = (
            f"<div><b>KV cache</b>: full-length sequences ({self.estimate.max_model_len} tokens) per worker at "
            f"{self.estimate.gpu_memory_utilization:.0%} utilisation, MAX_CONCURRENCY {self.max_concurrency}"
        )
        table = html_table(["pool", "GPU memory", "sequences that fit", ""], self.rows(), right={1, 2})
        warnings = "".join(f"<div><b>warning:</b> {html.escape(w)}</div>" for w in self.warnings)
        return head + table + warnings + "</div>"


def kv_cache_fit(
    estimate: GpuMemoryEstimate, gpu_types: Sequence[GpuType], pools: Sequence[str], max_concurrency: int
) -> KvCacheFit:
    """Full-length sequences per worker on each of ``pools`` (VRAM from the catalog's GPU types; a
    pool's smallest card counts). Pools the catalog does not list are left out (the plan refuses them)."""
    vram: dict[str, int] = {}
    for gpu in gpu_types:
        if gpu.pool and gpu.memory_gb:
            vram[gpu.pool] = min(vram.get(gpu.pool, gpu.memory_gb), gpu.memory_gb)
    fits = tuple((pool, vram[pool], estimate.full_length_sequences(vram[pool])) for pool in pools if pool in vram)
    return KvCacheFit(estimate=estimate, max_concurrency=max_concurrency, fits=fits)
