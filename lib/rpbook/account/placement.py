"""Where an endpoint's workers can run: data centers, GPU pools and host CUDA versions.

Runpod rules this module knows (plans ask it before anything is created):

- an endpoint's workers can only mount a network volume in their own data center, and a volume's
  data center is fixed at creation, so the volume decides where the endpoint runs;
- that data center must stock the endpoint's GPU pool for serverless, or the workers stay
  THROTTLED forever;
- an image built for CUDA 13.0 (``runpod/worker-v1-vllm`` v2.19.0+) crash-loops (UNHEALTHY) on an older
  host, so the endpoint carries its image's requirement (``gpu.allowedCudaVersions`` or
  ``minCudaVersion``, from :mod:`rpbook.account.cuda` unless the spec sets it), and the catalog must show
  hosts with it for the pools in the data center (pinned or the volume's); otherwise
  ``ConfigError`` names the pools and data centers that do offer it.

Everything is read from Runpod's catalog (``GET /v2/catalog/gpus`` with serverless availability,
scoped to a CUDA version when asked; ``GET /v2/catalog/datacenters``).
"""

from __future__ import annotations

from collections.abc import Sequence

from rpbook.account.controlplane import RunpodClient
from rpbook.account.cuda import CudaRequirement, image_cuda_requirement
from rpbook.account.resources import AVAILABILITY_LEVELS, DataCenter, GpuType, NetworkVolume, one_by_name
from rpbook.account.specs import EndpointSpec, check_pools
from rpbook.core.errors import ConfigError


def _pools(pool: str | Sequence[str]) -> tuple[str, ...]:
    pools = (pool,) if isinstance(pool, str) else tuple(pool)
    if not pools or not all(isinstance(p, str) and p for p in pools):
        raise ConfigError(f"pool: give a serverless GPU pool id such as 'AMPERE_24' (or a list), got {pool!r}")
    return pools


def _pool_stock(gpus: Sequence[GpuType], pools: Sequence[str]) -> dict[str, dict[str, str]]:
    """data center id -> pool -> best serverless stock level of the pool's GPU types there."""
    stock: dict[str, dict[str, str]] = {}
    for gpu in gpus:
        if gpu.pool is None or gpu.pool not in pools:
            continue
        for dc in gpu.data_centers:
            if dc.availability == "NONE":
                continue
            levels = stock.setdefault(dc.id, {})
            old = levels.get(gpu.pool, "NONE")
            levels[gpu.pool] = max(old, dc.availability, key=_level)
    return stock


def _level(value: str) -> int:
    return AVAILABILITY_LEVELS.index(value) if value in AVAILABILITY_LEVELS else 0


def _cuda_gpus(client: RunpodClient, cuda: CudaRequirement | None) -> list[GpuType]:
    """The serverless catalog, its availability scoped to hosts meeting ``cuda`` when constrained."""
    params = cuda.catalog_params() if cuda is not None and cuda.constrained else None
    return client.gpu_types(serverless_availability=True, cuda=params)


def _qualifying(
    client: RunpodClient, pools: Sequence[str], cuda: CudaRequirement | None = None
) -> tuple[list[DataCenter], list[DataCenter], dict[str, dict[str, str]]]:
    gpus = _cuda_gpus(client, cuda)
    check_pools("pool", pools, gpus)
    centers = client.data_centers(gpu_availability=False)
    stock = _pool_stock(gpus, pools)
    good = [dc for dc in centers if dc.offers_standard_volumes and stock.get(dc.id)]
    return centers, good, stock


def _offering(good: Sequence[DataCenter], pools: Sequence[str], cuda: CudaRequirement | None = None) -> str:
    names = ", ".join(dc.id for dc in good)
    with_cuda = f" on hosts with {cuda.describe()}" if cuda is not None and cuda.constrained else ""
    return (
        f"data centers that offer {'/'.join(pools)} for serverless{with_cuda} and STANDARD network volumes: "
        f"{names or 'none; try other GPU pools'}"
    )


def check_data_center(
    client: RunpodClient, data_center: str, pool: str | Sequence[str], *, cuda: CudaRequirement | None = None
) -> DataCenter:
    """The data center, if it stocks (one of) the GPU pool(s) for serverless and offers STANDARD
    network volumes; otherwise ``ConfigError`` naming the data centers that do. A volume pins the
    endpoint to its data center, so one without the pool means workers that never start. With
    ``cuda`` (what the image needs, e.g. ``image_cuda_requirement(template_spec.image)``) the pool's
    hosts there must also offer that CUDA version."""
    pools = _pools(pool)
    centers, good, stock = _qualifying(client, pools, cuda)
    dc = next((c for c in centers if c.id == data_center), None)
    if dc is None:
        raise ConfigError(f"data_center {data_center!r} is not in Runpod's catalog; {_offering(good, pools, cuda)}")
    if not dc.offers_standard_volumes:
        raise ConfigError(
            f"data_center {data_center!r} offers no STANDARD network volumes; {_offering(good, pools, cuda)}"
        )
    if not stock.get(dc.id):
        if cuda is not None and cuda.constrained:
            raise ConfigError(
                f"data_center {data_center!r} has no {'/'.join(pools)} hosts with {cuda.describe()} "
                "(what the worker image needs) for serverless, so workers would stay THROTTLED or, "
                f"without the constraint, crash-loop; {_offering(good, pools, cuda)}"
            )
        raise ConfigError(
            f"data_center {data_center!r} has no {'/'.join(pools)} GPUs for serverless, so workers "
            f"would stay THROTTLED; {_offering(good, pools)}"
        )
    return dc


def pick_data_center(
    client: RunpodClient,
    pool: str | Sequence[str],
    preferred: str | None = None,
    *,
    cuda: CudaRequirement | None = None,
) -> DataCenter:
    """``preferred`` if it qualifies (else ``ConfigError`` naming ones that do); without one, the data
    center with the best serverless stock of the first pool (then the next ...), in catalog order.
    With ``cuda`` only hosts offering that CUDA version count (see ``check_data_center``)."""
    pools = _pools(pool)
    if preferred:
        return check_data_center(client, preferred, pools, cuda=cuda)
    centers, good, stock = _qualifying(client, pools, cuda)
    if not good:
        with_cuda = f" on hosts with {cuda.describe()}" if cuda is not None and cuda.constrained else ""
        raise ConfigError(
            f"no data center offers {'/'.join(pools)} for serverless{with_cuda} together with STANDARD "
            "network volumes; choose other GPU pools"
        )
    order = {dc.id: i for i, dc in enumerate(centers)}
    return min(good, key=lambda dc: (tuple(-_level(stock[dc.id].get(p, "NONE")) for p in pools), order[dc.id]))


def volume_data_center(
    client: RunpodClient,
    volume_name: str,
    pool: str | Sequence[str],
    preferred: str | None = None,
    *,
    cuda: CudaRequirement | None = None,
) -> DataCenter:
    """Where the volume named ``volume_name`` lives or should live. An existing volume cannot move,
    so its data center wins when none is asked for (and must still offer the pools, on hosts with
    ``cuda`` when given); a different ``preferred`` one is a conflict the plan reports. Without a
    volume: ``pick_data_center``."""
    existing = one_by_name(client.list_network_volumes(), volume_name, "network volume")
    if existing is not None and not preferred:
        return check_data_center(client, existing.data_center, pool, cuda=cuda)
    return pick_data_center(client, pool, preferred, cuda=cuda)


# -- endpoints -------------------------------------------------------------------------------------


def endpoint_cuda(spec: EndpointSpec, image: str | None) -> CudaRequirement | None:
    """The endpoint's CUDA constraint: the spec's own, else what its image needs (``rpbook.account.cuda``),
    else None (not known: the endpoint's CUDA fields are left as they are)."""
    if spec.cuda is not None:
        return spec.cuda
    return image_cuda_requirement(image) if image else None


def _check_cuda(
    client: RunpodClient, spec: EndpointSpec, cuda: CudaRequirement, image: str | None, data_center: str | None
) -> list[str]:
    """Refuse (``ConfigError``) when no host offers ``cuda`` for the pools where workers may run (the
    pinned data center, else anywhere); notes for pools that lack it there. Read from the catalog's
    CUDA-scoped availability, which lists only data centers with hosts on a matching version."""
    gpus = _cuda_gpus(client, cuda)
    stock = _pool_stock(gpus, spec.gpu_pools)
    pools = ", ".join(spec.gpu_pools)
    source = f"{image} needs it ({cuda.source})" if spec.cuda is None and image else "EndpointSpec asks for it"
    why = (
        f"{source}; a worker on another host never starts (it crash-loops UNHEALTHY until Runpod scales "
        "the endpoint down) or waits THROTTLED"
    )
    offering = "; ".join(f"{dc} ({', '.join(sorted(levels))})" for dc, levels in sorted(stock.items()) if levels)

    def pools_offering(where: str | None) -> str:
        found = sorted(
            {
                g.pool
                for g in gpus
                if g.pool and any(where in (None, d.id) for d in g.data_centers if d.availability != "NONE")
            }
        )
        return ", ".join(found) or "none"

    if data_center is not None:
        here = stock.get(data_center, {})
        if not here:
            raise ConfigError(
                f"data center {data_center} has no host with {cuda.describe()} for the GPU pools {pools}: {why}. "
                f"Data centers whose hosts offer it for these pools: {offering or 'none'}; pools that offer it in "
                f"{data_center}: {pools_offering(data_center)}. Change the data center (and so the volume), "
                "gpu_pools or the image tag."
            )
        missing = [p for p in spec.gpu_pools if p not in here]
        if missing:
            usable = ", ".join(p for p in spec.gpu_pools if p in here)
            lacking = ", ".join(missing)
            return [f"{data_center} has no {lacking} host with {cuda.describe()}; workers will use {usable} only"]
        return []
    if not stock:
        raise ConfigError(
            f"no data center has hosts with {cuda.describe()} for the GPU pools {pools}: {why}. "
            f"Pools that offer it: {pools_offering(None)}. Change gpu_pools or the image tag."
        )
    return []


def endpoint_data_center(
    spec: EndpointSpec, volume: NetworkVolume | None, gpus: Sequence[GpuType]
) -> tuple[str | None, list[str]]:
    """The data center the endpoint's workers are pinned to (the spec's, else its volume's, else
    None: anywhere) and notes for the plan. ``ConfigError`` when the spec and the volume disagree,
    or when that data center stocks none of the pools (workers would stay THROTTLED)."""
    data_center = spec.data_center
    if volume is not None:
        if data_center is not None and volume.data_center != data_center:
            raise ConfigError(
                f"EndpointSpec.data_center is {data_center!r} but network volume {volume.name!r} ({volume.id}) is "
                f"in {volume.data_center}: workers can only mount a volume in their own data center. Set "
                f"data_center to {volume.data_center!r} or use a volume in {data_center}."
            )
        data_center = volume.data_center
    if data_center is None:
        return None, []
    every = _pool_stock(gpus, spec.gpu_pools)
    stock = every.get(data_center, {})
    if not stock:
        good = sorted(dc for dc, levels in every.items() if levels)
        raise ConfigError(
            f"data center {data_center} has none of the GPU pools {', '.join(spec.gpu_pools)} for serverless, "
            f"so the endpoint's workers would stay THROTTLED; data centers that have them: "
            f"{', '.join(good) or 'none'}. Change gpu_pools or the data center (and so the volume)."
        )
    missing = [p for p in spec.gpu_pools if p not in stock]
    if missing:
        return data_center, [
            f"{data_center} has no {', '.join(missing)} for serverless; workers will use "
            f"{', '.join(p for p in spec.gpu_pools if p in stock)} only"
        ]
    return data_center, []


def cuda_placement_notes(
    client: RunpodClient, spec: EndpointSpec, cuda: CudaRequirement | None, image: str | None, data_center: str | None
) -> list[str]:
    """Check that hosts with the endpoint's CUDA requirement exist where its workers may run
    (``ConfigError`` otherwise) and say, for the plan, where the requirement came from."""
    if cuda is not None and cuda.constrained:
        notes = _check_cuda(client, spec, cuda, image, data_center)
        if spec.cuda is None:
            notes.append(f"{cuda.describe()}: what {image} needs ({cuda.source})")
        return notes
    if cuda is None and image:
        return [
            f"no CUDA requirement is known for {image}: workers may land on any host; if the image needs "
            "one, set EndpointSpec.allowed_cuda_versions or min_cuda_version"
        ]
    return []
