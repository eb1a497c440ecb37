"""What the team wants on Runpod, as plain frozen dataclasses checked before anything is sent.

A spec is validated when it is built: a wrong value raises ``ConfigError`` naming the field and
what to fix, so a runbook fails in its parameters cell instead of half-way through creating
billable resources. The only check that needs Runpod is whether GPU pool ids exist; pass the
catalog in (``EndpointSpec.check_pools(client.gpu_types())``), the plans do it for you.

The defaults of ``EndpointSpec`` are the team's: at most 5 workers, none always on, one GPU each,
workers idle 120 s before stopping (so a chat session does not pay a cold start per message),
600 s execution timeout, FlashBoot on, a new worker when a request waits 15 s in the queue.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rpbook.account.cuda import CudaRequirement, image_cuda_requirement, requirement_from_fields
from rpbook.account.endpointscaling import check_idle_timeout, check_scaler_type, check_scaler_value
from rpbook.account.modelrefs import check_references
from rpbook.core.errors import ConfigError
from rpbook.core.secrets import Secret, is_secret_env_key, is_secret_reference

MIN_VOLUME_GB = 10
MAX_VOLUME_GB = 4096
MIN_EXECUTION_TIMEOUT_S = 5
MAX_EXECUTION_TIMEOUT_S = 7 * 24 * 3600
_DATA_CENTER = re.compile(r"^[A-Z]{2,4}(-[A-Z0-9]+)*-\d+$")
_ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
_IMAGE_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_REFERENCE_NAME = re.compile(r"\{\{\s*RUNPOD_SECRET_(.*?)\s*\}\}")
_SECRET_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-/]{0,190}$")

EnvValue = str | Secret


def _fail(where: str, problem: str) -> ConfigError:
    return ConfigError(f"{where}: {problem}")


def _name(where: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _fail(where, f"must be a non-empty name, got {value!r}")
    if value != value.strip() or any(ord(c) < 32 for c in value):
        raise _fail(where, f"{value!r} has leading/trailing spaces or control characters; remove them")
    if len(value) > 191:
        raise _fail(where, f"is {len(value)} characters long; use at most 191")
    return value


def _int(where: str, value: Any, low: int | None = None, high: int | None = None, unit: str = "") -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise _fail(where, f"must be a whole number{' of ' + unit if unit else ''}, got {value!r}")
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = (
            f"between {low} and {high}"
            if low is not None and high is not None
            else (f">= {low}" if low is not None else f"<= {high}")
        )
        raise _fail(where, f"must be {bounds}{' ' + unit if unit else ''}, got {value}")
    return value


def _optional(value: Any) -> Any:
    """Papermill parameter files write "unset" as an empty string: treat it as None."""
    return None if value == "" else value


def _data_center(where: str, value: Any) -> str:
    if not isinstance(value, str) or not _DATA_CENTER.match(value):
        raise _fail(
            where,
            f"{value!r} is not a data center id (like 'EU-RO-1' or 'US-TX-3'); "
            "pick_data_center() chooses one that offers your GPU pool",
        )
    return value


def secret_references(env: Mapping[str, EnvValue]) -> list[str]:
    """Names of the Runpod secrets an env references (``{{ RUNPOD_SECRET_name }}``), in order."""
    names: list[str] = []
    for value in env.values():
        if isinstance(value, str):
            names += [n for n in _REFERENCE_NAME.findall(value) if n not in names]
    return names


def check_secret_reference(where: str, value: str) -> str:
    """A ``{{ RUNPOD_SECRET_name }}`` reference, checked against Runpod's secret-name rules."""
    if not is_secret_reference(value):
        raise _fail(
            where,
            f"{value!r} is not a Runpod secret reference; write exactly "
            "'{{ RUNPOD_SECRET_<name> }}' (the name of a secret created in the Runpod console, "
            "Secrets page)",
        )
    match = _REFERENCE_NAME.search(value)
    name = match.group(1) if match else ""
    if not _SECRET_NAME.match(name) or name.upper().startswith("RUNPOD"):
        raise _fail(
            where,
            f"secret name {name!r} is not valid: it must start with a letter or '_', use only "
            "letters, digits and _ . - /, be at most 191 characters and not start with 'RUNPOD'",
        )
    return value


def _env(where: str, env: Any) -> dict[str, EnvValue]:
    if env is None:
        return {}
    if not isinstance(env, Mapping):
        raise _fail(where, f"must be a mapping of NAME -> value, got {type(env).__name__}")
    out: dict[str, EnvValue] = {}
    for key, value in env.items():
        here = f"{where}[{key!r}]"
        if not isinstance(key, str) or not _ENV_KEY.match(key):
            raise _fail(here, "env var names use letters, digits and '_' and do not start with a digit")
        if isinstance(value, Secret):
            if not value.reveal():
                raise _fail(here, "the secret is empty")
            out[key] = value
            continue
        if not isinstance(value, str):
            raise _fail(here, f"env values are strings, got {type(value).__name__} {value!r}; write it as '{value}'")
        if "RUNPOD_SECRET" in value or "{{" in value:
            check_secret_reference(here, value)
        elif is_secret_env_key(key) and value:
            raise _fail(
                here,
                "looks like a secret but is a plain string: pass the value as a Secret "
                "(e.g. settings.hf_token()) or reference a Runpod secret with "
                "'{{ RUNPOD_SECRET_<name> }}'; never put a token in parameters",
            )
        out[key] = value
    return out


@dataclass(frozen=True)
class VolumeSpec:
    """A network volume holding the model weights, so that only the first worker downloads them."""

    name: str
    size_gb: int
    data_center: str

    def __post_init__(self) -> None:
        _name("VolumeSpec.name", self.name)
        object.__setattr__(
            self, "size_gb", _int("VolumeSpec.size_gb", self.size_gb, MIN_VOLUME_GB, MAX_VOLUME_GB, "GB")
        )
        _data_center("VolumeSpec.data_center", self.data_center)


@dataclass(frozen=True, repr=False)
class TemplateSpec:
    """A serverless template: image and env the endpoint's workers run with.

    Env values are strings, or ``Secret`` for a literal secret (shown masked, revealed only when
    sent); secret-looking keys (``HF_TOKEN``, ``*_API_KEY`` ...) must be a ``Secret`` or a
    ``{{ RUNPOD_SECRET_name }}`` reference, never a plain string."""

    name: str
    image: str
    env: Mapping[str, EnvValue] = field(default_factory=dict)
    disk_gb: int = 20
    serverless: bool = True
    args: str = ""
    ports: tuple[str, ...] = ()
    allowed_cuda_versions: Sequence[str] | None = None
    """Host CUDA versions containers from it may run on (``allowedCudaVersions``, inherited by an
    endpoint created from it). None: the image's exact set when ``rpbook.account.cuda`` knows one."""

    def __post_init__(self) -> None:
        _name("TemplateSpec.name", self.name)
        if not isinstance(self.image, str) or not self.image.strip() or any(c.isspace() for c in self.image):
            raise _fail("TemplateSpec.image", f"must be an image reference like 'repo/image:tag', got {self.image!r}")
        object.__setattr__(self, "env", _env("TemplateSpec.env", self.env))
        object.__setattr__(self, "disk_gb", _int("TemplateSpec.disk_gb", self.disk_gb, 1, None, "GB"))
        if not isinstance(self.serverless, bool):
            raise _fail("TemplateSpec.serverless", f"must be True or False, got {self.serverless!r}")
        if not isinstance(self.args, str):
            raise _fail("TemplateSpec.args", f"must be a string, got {self.args!r}")
        ports = (self.ports,) if isinstance(self.ports, str) else tuple(self.ports)
        if not all(isinstance(p, str) and re.fullmatch(r"\d+/(http|tcp|udp)", p) for p in ports):
            raise _fail("TemplateSpec.ports", f"each port is 'NUMBER/http' or 'NUMBER/tcp', got {self.ports!r}")
        object.__setattr__(self, "ports", ports)
        if self.allowed_cuda_versions is not None:
            try:
                cuda = requirement_from_fields(self.allowed_cuda_versions, None)
            except ConfigError as exc:
                raise ConfigError(f"TemplateSpec.{exc}") from None
            object.__setattr__(self, "allowed_cuda_versions", cuda.allowed if cuda is not None else ())

    @property
    def cuda_versions(self) -> tuple[str, ...] | None:
        """The template's ``allowedCudaVersions``: as set, else the image's exact set, else ``()``
        when the image needs a floor (a template cannot state one, and an exact set there would
        shut out newer hosts of endpoints created from it; the endpoint carries the floor), else
        None (not known: left alone)."""
        if self.allowed_cuda_versions is not None:
            return tuple(self.allowed_cuda_versions)
        need = image_cuda_requirement(self.image)
        if need is None:
            return None
        return need.allowed

    def __repr__(self) -> str:
        env = {k: (v.masked if isinstance(v, Secret) else v) for k, v in self.env.items()}
        return f"TemplateSpec(name={self.name!r}, image={self.image!r}, env={env!r}, disk_gb={self.disk_gb})"

    __str__ = __repr__


def _pool_ids(catalog: Iterable[Any]) -> set[str]:
    """Pool ids from ``GpuType``s (their ``pool``) or from plain strings."""
    pools: set[str] = set()
    for item in catalog:
        pool = item if isinstance(item, str) else getattr(item, "pool", None)
        if pool:
            pools.add(pool)
    return pools


@dataclass(frozen=True)
class EndpointSpec:
    """A queue-based serverless endpoint (the team's defaults; see the module docstring)."""

    name: str
    template_name: str
    gpu_pools: Sequence[str]
    gpu_count: int = 1
    workers_min: int = 0
    workers_max: int = 5
    idle_timeout_s: int = 120
    execution_timeout_s: int = 600
    flashboot: bool = True
    scaler_type: str = "QUEUE_DELAY"
    scaler_value: float = 15
    network_volume_name: str | None = None
    data_center: str | None = None
    allowed_cuda_versions: Sequence[str] | None = None
    """Host CUDA versions workers may run on (``gpu.allowedCudaVersions``, e.g. ``['13.0']``). None
    with ``min_cuda_version`` None: what the template's image needs (``rpbook.account.cuda``); ``[]``: any."""
    min_cuda_version: str | None = None
    """A CUDA floor instead (``gpu.minCudaVersion``, e.g. ``'12.4'``); exclusive with the above."""
    model_references: Sequence[str] | None = None
    """Cached models (``https://huggingface.co/<org>/<model>:main``, :mod:`rpbook.account.modelrefs`),
    set through GraphQL (:mod:`rpbook.account.cachedmodels`). None: left as they are; ``()``: none."""

    def __post_init__(self) -> None:
        _name("EndpointSpec.name", self.name)
        _name("EndpointSpec.template_name", self.template_name)
        pools = self.gpu_pools
        if isinstance(pools, str):
            pools = [p.strip() for p in pools.split(",") if p.strip()]
        if not isinstance(pools, (list, tuple)) or not pools or not all(isinstance(p, str) and p for p in pools):
            raise _fail(
                "EndpointSpec.gpu_pools",
                f"must list at least one serverless GPU pool id (e.g. ['AMPERE_24', 'ADA_24']), got {self.gpu_pools!r}",
            )
        if len(set(pools)) != len(pools):
            raise _fail(
                "EndpointSpec.gpu_pools", f"{list(pools)} lists a pool twice; list each once, in order of preference"
            )
        object.__setattr__(self, "gpu_pools", tuple(pools))
        self._set_int("gpu_count", 1, None, "GPUs per worker")
        self._set_int("workers_min", 0, None, "workers")
        self._set_int(
            "workers_max", 1, None, "workers (0 would mean no worker can ever start: the first request waits forever)"
        )
        if self.workers_min > self.workers_max:
            raise _fail(
                "EndpointSpec.workers_min",
                f"{self.workers_min} is above workers_max {self.workers_max}; lower workers_min or raise workers_max",
            )
        object.__setattr__(
            self, "idle_timeout_s", check_idle_timeout("EndpointSpec.idle_timeout_s", self.idle_timeout_s)
        )
        self._set_int(
            "execution_timeout_s", MIN_EXECUTION_TIMEOUT_S, MAX_EXECUTION_TIMEOUT_S, "seconds (5 s to 7 days)"
        )
        if not isinstance(self.flashboot, bool):
            raise _fail("EndpointSpec.flashboot", f"must be True or False, got {self.flashboot!r}")
        scaler_type = check_scaler_type("EndpointSpec.scaler_type", self.scaler_type)
        value = check_scaler_value("EndpointSpec.scaler_value", scaler_type, self.scaler_value)
        object.__setattr__(self, "scaler_value", int(value) if self.scaler_type == "REQUEST_COUNT" else value)
        object.__setattr__(self, "network_volume_name", _optional(self.network_volume_name))
        if self.network_volume_name is not None:
            _name("EndpointSpec.network_volume_name", self.network_volume_name)
        object.__setattr__(self, "data_center", _optional(self.data_center))
        if self.data_center is not None:
            _data_center("EndpointSpec.data_center", self.data_center)
        if self.model_references is not None:
            refs = check_references("EndpointSpec.model_references", self.model_references)
            object.__setattr__(self, "model_references", refs)
            if refs and not float(self.scaler_value).is_integer():
                raise _fail(
                    "EndpointSpec.scaler_value",
                    f"{self.scaler_value} with cached models: they are set through GraphQL saveEndpoint, whose "
                    "scalerValue is a whole number; use a whole number of seconds (e.g. 15)",
                )
        object.__setattr__(self, "min_cuda_version", _optional(self.min_cuda_version))
        object.__setattr__(self, "allowed_cuda_versions", _optional(self.allowed_cuda_versions))  # [] is "any"
        try:
            cuda = requirement_from_fields(self.allowed_cuda_versions, self.min_cuda_version)
        except ConfigError as exc:
            raise ConfigError(f"EndpointSpec.{exc}") from None
        if cuda is not None:
            object.__setattr__(
                self, "allowed_cuda_versions", cuda.allowed if self.allowed_cuda_versions is not None else None
            )

    def _set_int(self, name: str, low: int | None, high: int | None, unit: str) -> None:
        object.__setattr__(self, name, _int(f"EndpointSpec.{name}", getattr(self, name), low, high, unit))

    @property
    def timeout_ms(self) -> int:
        return self.execution_timeout_s * 1000

    @property
    def flashboot_mode(self) -> str:
        return "FLASHBOOT" if self.flashboot else "OFF"

    @property
    def cuda(self) -> CudaRequirement | None:
        """The CUDA constraint set here, or None: derive it from the template's image."""
        return requirement_from_fields(self.allowed_cuda_versions, self.min_cuda_version)

    def check_pools(self, catalog: Iterable[Any]) -> None:
        """Refuse pool ids the catalog does not have; ``catalog`` is ``client.gpu_types()`` or pool ids."""
        check_pools("EndpointSpec.gpu_pools", self.gpu_pools, catalog)


def check_pools(where: str, pools: Iterable[str], catalog: Iterable[Any]) -> None:
    known = _pool_ids(catalog)
    unknown = [p for p in pools if p not in known]
    if unknown:
        raise _fail(
            where,
            f"unknown serverless GPU pool(s) {', '.join(map(repr, unknown))}; valid pools: "
            f"{', '.join(sorted(known)) or '(the catalog lists none)'}",
        )
