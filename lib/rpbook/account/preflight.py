"""Everything a runbook that creates an endpoint checks before its first write.

A runbook that creates the template and then finds a bad endpoint setting leaves a half-built,
possibly billable stack behind; one that creates an endpoint for a model its token cannot read,
or a context its GPUs cannot hold, leaves workers crash-looping until Runpod scales it down. So runbooks 02
and 04 build every spec first, then call :func:`check_stack`, which collects *all* problems (not
the first) and raises one ``ConfigError`` listing each with what to set, before anything exists:

- the Hub: every served model exists and the token may read it (licence accepted);
- the model's own limits: ``max_model_len`` within the context its config declares, and at least
  one full-length sequence in the KV cache of each GPU pool (``MAX_CONCURRENCY`` far above what
  fits is a warning, see ``rpbook.account.readiness.kv_cache_fit``);
- the catalog: ``gpu_count`` within the most GPUs any card of the pool can give one worker
  (``maxCount``), and the worst case (every worker busy at once) within the account's spend limit
  (Runpod's default is $80 per hour: docs ``get-started/manage-accounts``, "Account spend limits");
- the account's worker quota: ``workers.max`` of every endpoint on the account plus this plan's
  within the quota the balance buys, or ``account_max_workers`` (:mod:`rpbook.account.quota`, docs
  ``serverless/workers/overview.mdx`` "Max worker limits"), shown as a table;
- the Runpod secrets the template references (``{{ RUNPOD_SECRET_name }}``, e.g. runbook 02's
  ``hf_token_ref``) exist on the account, listed by REST v2 ``GET /v2/account/secrets``
  (docs.runpod.io ``api-reference-v2/account/list-secrets``). An undefined one would let the
  endpoint be created and its workers crash-loop (runpod/docs ``pods/templates/secrets.mdx``:
  deployments that use a missing secret fail); a key that may not list secrets (403) or an API
  without the route (404) leaves a warning instead, since the check cannot be made;
- the plans of template and endpoint, computed together (name conflicts, data center, CUDA),
  without writing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from rpbook.account import hub
from rpbook.account.budget import WorstCase, check_max_hourly, worst_case
from rpbook.account.controlplane import RunpodClient
from rpbook.account.plan import Blocker, BlockerKind, Plan
from rpbook.account.plans import plan_endpoint, plan_template
from rpbook.account.quota import PlannedMax, QuotaCheck, account_quota, check_quota
from rpbook.account.readiness import KvCacheFit, kv_cache_fit
from rpbook.account.resources import GpuType
from rpbook.account.specs import EndpointSpec, TemplateSpec, secret_references
from rpbook.core.display import html_table, rich_output
from rpbook.core.errors import ConfigError, ControlPlaneError, GatedModelError, HubError
from rpbook.core.pending import pending
from rpbook.core.secrets import Secret, scrub
from rpbook.core.settings import Settings

ACCOUNT_SPEND_LIMIT_USD_PER_HOUR = 80.0
"""Runpod's default account-wide spend limit (docs: manage accounts, "Account spend limits")."""


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


@rich_output
@dataclass(frozen=True)
class StackCheck:
    """What was checked before the first write; ``plans`` are the template's and endpoint's."""

    checks: tuple[Check, ...]
    plans: tuple[Plan, ...] = ()
    kv_cache: KvCacheFit | None = None
    warnings: tuple[str, ...] = field(default=())
    worst_case: WorstCase | None = None
    quota: QuotaCheck | None = None

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def problems(self) -> list[str]:
        return [f"{c.name}: {c.detail}" for c in self.checks if not c.ok]

    @property
    def figures(self) -> dict[str, float | int | bool]:
        """For ``record_figures``: whether all passed, and the fewest full-length sequences per worker."""
        out: dict[str, float | int | bool] = {"preflight_ok": self.ok}
        if self.kv_cache is not None and self.kv_cache.fits:
            out["kv_cache_sequences"] = min(count for _, _, count in self.kv_cache.fits)
        if self.worst_case is not None:
            out["worst_case_usd_per_hour"] = round(self.worst_case.usd_per_hour, 4)
            out["floor_usd_per_month"] = round(self.worst_case.floor_usd_per_month, 2)
        if self.quota is not None:
            out["account_max_workers"] = self.quota.quota.max_workers
            out["account_workers_max_total"] = self.quota.total
        return out

    def raise_for_problems(self) -> None:
        if self.problems:
            raise ConfigError("nothing was created; fix these first:\n  " + "\n  ".join(self.problems))

    def __str__(self) -> str:
        lines = [f"checked before creating anything: {'all passed' if self.ok else 'problems found'}"]
        lines += [f"  {'PASS' if c.ok else 'FAIL'}  {c.name:<16} {c.detail}" for c in self.checks]
        lines += [f"  WARNING: {w}" for w in self.warnings]
        if self.kv_cache is not None:
            lines.append(str(self.kv_cache))
        if self.quota is not None:
            lines.append(str(self.quota))
        return scrub("\n".join(lines))

    __repr__ = __str__

    def _repr_html_(self) -> str:
        table = html_table(
            ["", "check", "result"], [("PASS" if c.ok else "FAIL", c.name, c.detail) for c in self.checks]
        )
        warnings = "".join(f"<div><b>warning:</b> {w}</div>" for w in self.warnings)
        kv = self.kv_cache._repr_html_() if self.kv_cache is not None else ""
        quota = self.quota._repr_html_() if self.quota is not None else ""
        head = f"<div><b>Checked before creating anything</b>: {'all passed' if self.ok else 'problems found'}"
        return scrub(head + table + warnings + kv + quota + "</div>")


def _guarded(name: str, checks: list[Check], fn: Any) -> Any:
    """Run one check; a ConfigError/HubError becomes a failed row instead of stopping the others."""
    try:
        return fn()
    except (ConfigError, HubError) as exc:
        checks.append(Check(name, False, scrub(str(exc))))
        return None


def _hub_access(settings: Settings, token: Secret, models: Sequence[str], checks: list[Check]) -> None:
    for model in models:

        def one(model: str = model) -> None:
            access = hub.check_model_access(settings, token, model)
            if not access.accessible:
                raise GatedModelError(access.reason)
            checks.append(Check(f"hub {model}", True, access.reason))

        _guarded(f"hub {model}", checks, one)


SECRETS_CONSOLE = "https://www.console.runpod.io/user/secrets"


def _runpod_secrets(
    client: RunpodClient, template_spec: TemplateSpec, checks: list[Check], warnings: list[str]
) -> None:
    """Every secret the template's env references exists on the account (names compared exactly)."""
    wanted = secret_references(template_spec.env)
    if not wanted:
        return
    try:
        have = client.account_secret_names()
    except ControlPlaneError as exc:
        if exc.status in (403, 404):
            warnings.append(
                f"could not check that Runpod secret(s) {', '.join(wanted)} exist (GET /v2/account/secrets "
                f"answered {exc.status}): make sure they do ({SECRETS_CONSOLE}), or the workers crash-loop"
            )
            return
        checks.append(Check("Runpod secrets", False, scrub(str(exc))))
        return
    missing = [name for name in wanted if name not in have]
    if not missing:
        checks.append(Check("Runpod secrets", True, ", ".join(f"{name} exists" for name in wanted)))
        return
    folded = {name.casefold(): name for name in have}
    details = []
    for name in missing:
        near = folded.get(name.casefold())
        also = f" (the account has {near!r}: secret names are case-sensitive)" if near else ""
        details.append(f"{{{{ RUNPOD_SECRET_{name} }}}} names no secret of this account{also}")
    checks.append(
        Check(
            "Runpod secrets",
            False,
            "; ".join(details)
            + f". Create it under Secrets in the Runpod console ({SECRETS_CONSOLE}) or fix the reference "
            f"(runbook 02: hf_token_ref); the account's secrets: {', '.join(sorted(have)) or 'none'}",
        )
    )


def model_context_limit(settings: Settings, token: Secret, model: str) -> int | None:
    """The longest context the model's config declares (what vLLM derives ``max_model_len`` from:
    ``max_position_embeddings``, times a rope-scaling factor when the config has one); None when
    the config states none."""
    config = hub.model_config(settings, token, model)
    limit = config.get("max_position_embeddings") or config.get("max_sequence_length") or config.get("n_positions")
    if not isinstance(limit, int) or limit <= 0:
        return None
    scaling = config.get("rope_scaling") or {}
    factor = scaling.get("factor") if isinstance(scaling, dict) else None
    if isinstance(factor, (int, float)) and factor > 1 and "original_max_position_embeddings" not in scaling:
        limit = int(limit * factor)
    return limit


def _max_count(gpu: GpuType) -> int:
    """The most GPUs of this type one machine has (REST v2 ``maxCount``, per cloud): a worker, like
    a pod, runs on one machine, so no worker can have more."""
    counts = gpu.raw.get("maxCount") or {}
    values = [v for v in counts.values() if isinstance(v, int)] if isinstance(counts, dict) else []
    return max(values, default=0)


def _catalog(spec: EndpointSpec, gpus: Sequence[GpuType], checks: list[Check]) -> None:
    in_pools = [g for g in gpus if g.pool in spec.gpu_pools]
    max_counts = [_max_count(g) for g in in_pools]
    most = max(max_counts, default=0)
    if most and spec.gpu_count > most:
        checks.append(
            Check(
                "gpu_count",
                False,
                f"{spec.gpu_count} GPUs per worker, but no card in "
                f"{', '.join(spec.gpu_pools)} gives a worker more than {most}; set gpu_count to at most "
                f"{most} or choose a pool of larger GPUs",
            )
        )
    else:
        checks.append(Check("gpu_count", True, f"{spec.gpu_count} per worker (pool cards allow up to {most or '?'})"))


def _budget(
    spec: EndpointSpec, gpus: Sequence[GpuType], max_hourly_usd: float | None, account_limit: float, checks: list[Check]
) -> WorstCase | None:
    """The worst case against the team's ``max_hourly_usd`` and the account's spend limit."""
    worst = _guarded("worst case", checks, lambda: worst_case(spec, gpus))
    if worst is None:
        return None
    problem = worst.within(max_hourly_usd) if max_hourly_usd is not None else None
    problem = problem or worst.within(
        account_limit,
        ceiling="the account's spend limit (Runpod's default)",
        or_else="or ask Runpod support to raise the account's limit",
    )
    if problem is not None:
        checks.append(Check("worst case", False, problem))
        return worst
    checks.append(
        Check(
            "worst case",
            True,
            f"{worst.describe()} (max_hourly_usd "
            f"{'$' + format(max_hourly_usd, ',.2f') if max_hourly_usd is not None else 'not set'})",
        )
    )
    return worst


def _awaited(blocker: Blocker) -> bool:
    """A prerequisite the run will create before the endpoint: this runbook's template, or a volume
    a dry run of runbook 01 planned in this run."""
    if blocker.kind.awaits_prerequisite:
        return True
    return blocker.kind is BlockerKind.VOLUME_MISSING and pending("volume", blocker.resource) is not None


def _quota(
    settings: Settings,
    client: RunpodClient,
    api_key: Secret | None,
    spec: EndpointSpec,
    account_max_workers: int | None,
    workers_max_parameter: str,
    checks: list[Check],
) -> QuotaCheck | None:
    """Every endpoint on the account plus this plan's max against the account's worker quota."""

    def run() -> QuotaCheck:
        try:
            key = api_key if api_key is not None else settings.runpod_api_key()
            quota = account_quota(settings, key, account_max_workers)
            planned = PlannedMax(spec.name, spec.workers_max, workers_max_parameter)
            return check_quota(quota, client.list_endpoints(), [planned])
        except ControlPlaneError as exc:
            raise ConfigError(str(exc)) from None

    result: QuotaCheck | None = _guarded("worker quota", checks, run)
    if result is not None:
        checks.append(Check("worker quota", result.ok, result.describe()))
    return result


def check_stack(
    settings: Settings,
    client: RunpodClient,
    token: Secret,
    template_spec: TemplateSpec,
    endpoint_spec: EndpointSpec,
    *,
    models: Sequence[str],
    max_model_len: int | None = None,
    gpu_memory_utilization: float = 0.9,
    max_concurrency: int | None = None,
    max_hourly_usd: float | None = None,
    spend_limit_usd_per_hour: float = ACCOUNT_SPEND_LIMIT_USD_PER_HOUR,
    account_max_workers: int | None = None,
    workers_max_parameter: str = "workers_max",
    api_key: Secret | None = None,
    raise_for_problems: bool = True,
) -> StackCheck:
    """Every check of the module docstring for one template + endpoint, writing nothing. With
    ``max_model_len`` (a vLLM worker) the model's context limit and the KV cache are checked too;
    with ``max_hourly_usd`` the worst case must stay within it (``rpbook.account.budget``).
    ``account_max_workers``: the account's worker quota when known (support raised it), else the
    balance decides (read with ``api_key``, default ``settings.runpod_api_key()``);
    ``workers_max_parameter`` names the runbook parameter that sets this endpoint's max, for the
    advice when the quota is exceeded."""
    if max_hourly_usd is not None:
        max_hourly_usd = check_max_hourly(max_hourly_usd)
    checks: list[Check] = []
    warnings: list[str] = []
    _hub_access(settings, token, models, checks)
    kv: KvCacheFit | None = None
    gpus = client.gpu_types(serverless_availability=True)
    if max_model_len is not None and checks and all(c.ok for c in checks):
        model = models[0]
        limit = _guarded("max_model_len", checks, lambda: model_context_limit(settings, token, model))
        if limit is not None and max_model_len > limit:
            checks.append(
                Check(
                    "max_model_len",
                    False,
                    f"{max_model_len} tokens, but {model} handles at most "
                    f"{limit} (max_position_embeddings in its config.json); set max_model_len to "
                    f"{limit} or less",
                )
            )
        elif not any(c.name == "max_model_len" for c in checks):
            checks.append(
                Check(
                    "max_model_len",
                    True,
                    f"{max_model_len} tokens (the model allows "
                    f"{limit if limit is not None else 'an unstated number of'})",
                )
            )
        if limit is None or max_model_len <= limit:
            memory = _guarded(
                "KV cache",
                checks,
                lambda: hub.min_gpu_memory_gb(settings, token, model, max_model_len, gpu_memory_utilization),
            )
            if memory is not None:
                kv = kv_cache_fit(memory, gpus, endpoint_spec.gpu_pools, max_concurrency or 1)
                empty = [pool for pool, _, count in kv.fits if count == 0]
                if empty and len(empty) == len(kv.fits):
                    checks.append(
                        Check(
                            "KV cache",
                            False,
                            f"no pool of {', '.join(endpoint_spec.gpu_pools)} holds "
                            f"one sequence of {max_model_len} tokens (≥ {memory.memory_gb:.1f} GiB "
                            "needed): lower max_model_len or choose a pool of larger GPUs",
                        )
                    )
                else:
                    checks.append(
                        Check(
                            "KV cache",
                            True,
                            ", ".join(f"{pool}: {count} full-length sequences" for pool, _, count in kv.fits),
                        )
                    )
                    warnings += list(kv.warnings)
    _catalog(endpoint_spec, gpus, checks)
    _runpod_secrets(client, template_spec, checks, warnings)
    worst = _budget(endpoint_spec, gpus, max_hourly_usd, spend_limit_usd_per_hour, checks)
    quota = _quota(settings, client, api_key, endpoint_spec, account_max_workers, workers_max_parameter, checks)
    plans: list[Plan] = []
    template_plan = _guarded("template plan", checks, lambda: plan_template(client, template_spec))
    endpoint_plan = _guarded(
        "endpoint plan", checks, lambda: plan_endpoint(client, endpoint_spec, template_spec=template_spec)
    )
    for plan in (template_plan, endpoint_plan):
        if plan is None:
            continue
        plans.append(plan)
        # A template "to be created" blocks the endpoint plan only until its turn comes in this runbook;
        # a missing volume is another runbook's (01) to create, unless this run's dry run planned it.
        real = [str(b) for b in plan.blocked if not _awaited(b)]
        checks.append(
            Check(
                f"{plan.kind} plan",
                not real,
                "; ".join(real) if real else f"{plan.action} ({len(plan.changes)} field(s))",
            )
        )
    result = StackCheck(tuple(checks), tuple(plans), kv, tuple(warnings), worst, quota)
    if raise_for_problems:
        result.raise_for_problems()
    return result
