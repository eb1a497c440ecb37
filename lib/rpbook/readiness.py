"""Runbook 00 in one call: is this HF token ready to serve this model, and how big must things be?

It strings the Hub checks together in the order a newcomer meets them (who am I, may I read the
model, how large are its weights, what volume and GPU does that need) and keeps going after a
refusal, so a single run lists every problem with its fix instead of stopping at the first one.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field

from rpbook import hub
from rpbook.errors import GatedModelError, HubError
from rpbook.secrets import Secret
from rpbook.settings import Settings


@dataclass(frozen=True)
class ModelReadiness:
    repo: str
    token: hub.TokenInfo
    access: hub.ModelAccess
    weights: hub.WeightsEstimate
    volume_gb: int
    """Recommended network volume size (sized for what vLLM downloads)."""
    gpu: hub.GpuMemoryEstimate | None
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
            "model": self.repo, "token_role": self.token.role, "can_read_gated": self.token.can_read_gated,
            "licence_ok": self.access.accessible, "weights_gb": round(self.weights.total_gb, 2),
            "download_gb": round(self.weights.download_bytes / 1e9, 2), "volume_gb": self.volume_gb,
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
            ("weights", f"{self.weights.total_gb:.2f} GB in {len(self.weights.files)} {self.weights.format} file(s)"
                        + (f", {self.weights.parameters / 1e9:.2f} B parameters ({self.weights.dtype})"
                           if self.weights.parameters else "")),
            ("vLLM downloads", f"{self.weights.download_bytes / 1e9:.2f} GB"
                               + (f" (also {', '.join(self.weights.skipped_files)})" if self.weights.skipped_files
                                  else "")),
            ("network volume", f"{self.volume_gb} GB recommended"),
        ]
        if self.gpu is not None:
            parts = self.gpu.breakdown_gb
            rows.append(("GPU memory", f"≥ {self.gpu.memory_gb:.1f} GiB for MAX_MODEL_LEN {self.gpu.max_model_len} "
                                       f"(weights {parts['weights']} + KV cache {parts['kv_cache']} + overhead "
                                       f"{parts['overhead']} GiB, at {self.gpu.gpu_memory_utilization:.0%} "
                                       "utilisation)"))
        for problem in self.problems:
            rows.append(("PROBLEM", problem))
        return rows

    def __str__(self) -> str:
        width = max(len(k) for k, _ in self.rows())
        return "\n".join(f"{k:<{width}}  {v}" for k, v in self.rows())

    def _repr_html_(self) -> str:
        body = "".join(f"<tr><th style='text-align:left'>{html.escape(k)}</th><td style='text-align:left'>"
                       f"{html.escape(v)}</td></tr>" for k, v in self.rows())
        return f"<table>{body}</table>"


def check_model_readiness(settings: Settings, token: Secret, repo_id: str, *, max_model_len: int,
                          gpu_memory_utilization: float = 0.9) -> ModelReadiness:
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
    return ModelReadiness(repo=repo_id, token=token_info, access=access, weights=weights,
                          volume_gb=hub.recommend_volume_gb(weights.download_bytes), gpu=gpu,
                          problems=tuple(dict.fromkeys(problems)))
