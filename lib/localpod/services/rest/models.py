"""Request bodies of REST API v2, mirroring the official OpenAPI schemas.

Each model follows one component schema (``CreateEndpointRequest``, ``UpdateTemplateRequest``, ...):
same camelCase field names, same bounds and enums, and unknown fields rejected as the spec's
``unevaluatedProperties: false`` / ``additionalProperties: false`` require. Validation is strict
(``"5"`` is not an integer) because the real API validates against the JSON Schema, which has no
coercion. Optional fields default to ``None`` *without* admitting an explicit ``null`` unless the spec
makes them nullable, so ``{"image": null}`` is a 422 just as it is upstream; ``given()`` tells a
PATCH handler which fields the client actually sent.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, StringConstraints
from pydantic.alias_generators import to_camel

from localpod import limits
from localpod.services.rest.common import RequestBody


def absent() -> Any:
    """Default for an optional, non-nullable field: absent -> None, explicit null -> 422."""
    return Field(default=None)


CudaVersion = Annotated[str, StringConstraints(pattern=r"^\d+\.\d+$")]
NonEmpty = Annotated[str, StringConstraints(min_length=1)]
Name = Annotated[str, StringConstraints(min_length=1, max_length=limits.MAX_NAME_CHARS)]
ExcludedType = Annotated[str, StringConstraints(pattern=r"^\s*[^-\s]")]
FlashBoot = Literal["OFF", "FLASHBOOT", "PRIORITY_FLASHBOOT"]
VolumeType = Literal["STANDARD", "HIGH_PERFORMANCE"]
TemplateCategory = Literal["CPU", "NVIDIA", "AMD"]


class Body(RequestBody):
    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        alias_generator=to_camel,
        populate_by_name=False,
        str_max_length=limits.MAX_STRING_CHARS,  # every string field bounded (localpod.limits)
    )


def _duplicates(field: str, values: list[str] | None) -> list[str]:
    if values and len(set(values)) != len(values):
        return [f"{field}: items must be unique"]
    return []


class ContainerConfig(Body):
    """``ContainerConfig``: the container settings shared by templates and endpoints."""

    image: str = absent()
    args: str = absent()
    disk: Annotated[int, Field(ge=1)] = absent()
    env: dict[str, str] = absent()
    ports: list[str] = absent()
    registry: str | None = absent()

    def rule_errors(self) -> list[str]:
        return limits.env_errors(self.env)


# -- serverless endpoints ------------------------------------------------------------------


class QueueDelayScaling(Body):
    type: Literal["QUEUE_DELAY"]
    queue_delay: Annotated[float, Field(ge=0.5)]


class RequestCountScaling(Body):
    type: Literal["REQUEST_COUNT"]
    request_count: Annotated[int, Field(ge=1)]


Scaling = Annotated[QueueDelayScaling | RequestCountScaling, Field(discriminator="type")]


class EndpointWorkers(Body):
    min: Annotated[int, Field(ge=0)] = absent()
    max: Annotated[int, Field(ge=0)] = absent()
    idle_timeout: Annotated[int, Field(ge=1, le=3600)] = absent()


class CreateEndpointGpuConfig(Body):
    pools: Annotated[list[str], Field(min_length=1)]
    excluded_types: list[ExcludedType] = absent()
    count: Annotated[int, Field(ge=1)] = 1
    allowed_cuda_versions: list[CudaVersion] = absent()
    min_cuda_version: CudaVersion = absent()

    def schema_errors(self) -> list[str]:
        return _duplicates("gpu.excludedTypes", self.excluded_types)


class UpdateEndpointGpuConfig(Body):
    pools: Annotated[list[str], Field(min_length=1)] = absent()
    excluded_types: list[ExcludedType] = absent()
    count: Annotated[int, Field(ge=1)] = absent()
    allowed_cuda_versions: list[CudaVersion] = absent()
    min_cuda_version: Annotated[str, StringConstraints(pattern=r"^$|^\d+\.\d+$")] = absent()

    def schema_errors(self) -> list[str]:
        errors = _duplicates("gpu.excludedTypes", self.excluded_types)
        if self.given("excluded_types") and not self.given("pools"):
            errors.append("gpu.excludedTypes: requires gpu.pools (the two are one selection)")
        return errors


class CreateEndpointRequest(ContainerConfig):
    name: Name
    type: Literal["QUEUE", "LOAD_BALANCER"]
    scaling: Scaling
    gpu: CreateEndpointGpuConfig = absent()
    cpu: Annotated[list[Any], Field(min_length=1)] = absent()
    data_center_ids: list[str] = absent()
    flashboot: FlashBoot = "OFF"
    network_volumes: list[str] = absent()
    template_id: NonEmpty = absent()
    timeout: int = 300_000
    workers: EndpointWorkers = absent()

    def schema_errors(self) -> list[str]:
        errors: list[str] = []
        if not self.given("template_id") and not self.given("image"):
            errors.append("image: required unless templateId is set")
        if self.type == "LOAD_BALANCER" and self.scaling.type != "REQUEST_COUNT":
            errors.append("scaling.type: LOAD_BALANCER endpoints require REQUEST_COUNT scaling")
        if self.gpu is not None:
            errors.extend(self.gpu.schema_errors())
        return errors


class UpdateEndpointRequest(ContainerConfig):
    name: Name = absent()
    cpu: Annotated[list[Any], Field(min_length=1)] = absent()
    data_center_ids: list[str] = absent()
    flashboot: FlashBoot = absent()
    gpu: UpdateEndpointGpuConfig = absent()
    network_volumes: list[str] = absent()
    scaling: Scaling = absent()
    template_id: str = absent()
    timeout: int = absent()
    workers: EndpointWorkers = absent()

    def schema_errors(self) -> list[str]:
        return self.gpu.schema_errors() if self.gpu is not None else []


# -- templates -----------------------------------------------------------------------------


class PersistentMount(Body):
    size: Annotated[int, Field(ge=10)]
    path: str


class TemplateMounts(Body):
    persistent: PersistentMount = absent()


class CreateTemplateRequest(ContainerConfig):
    name: Name
    image: str
    allowed_cuda_versions: list[CudaVersion] = absent()
    category: TemplateCategory = "NVIDIA"
    mounts: TemplateMounts = absent()
    public: bool = False
    serverless: bool = False
    start_jupyter: bool = True
    start_ssh: bool = True


class UpdateTemplateRequest(ContainerConfig):
    allowed_cuda_versions: list[CudaVersion] = absent()
    category: TemplateCategory = absent()
    mounts: TemplateMounts = absent()
    name: Name = absent()
    public: bool = absent()
    serverless: bool = absent()
    start_jupyter: bool = absent()
    start_ssh: bool = absent()


# -- network volumes -----------------------------------------------------------------------

VolumeSize = Annotated[int, Field(ge=10, le=4096)]


class CreateNetworkVolumeRequest(Body):
    data_center: NonEmpty
    name: Name
    size: VolumeSize
    type: VolumeType = absent()


class UpdateNetworkVolumeRequest(Body):
    name: Name = absent()
    size: VolumeSize = absent()

    def schema_errors(self) -> list[str]:
        if not self.model_fields_set:
            return ["body: at least one of name, size is required"]
        return []


VOLUME_PATCH_HINTS = {
    "dataCenter": "immutable after creation (a volume cannot move; create a new one in the other data center)",
    "type": "immutable after creation (the storage tier is fixed when the volume is created)",
}
