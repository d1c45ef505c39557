"""Open Inference Protocol v2 (KServe / Triton REST) for the image models.

Every route of the protocol's REST specification, each also under
``/versions/{version}``: server metadata (``GET /v2``), model metadata
(``GET /v2/models/{name}``), model ready (``.../ready``), inference (``POST .../infer``),
and two of Triton's extensions that clients call: model configuration (``.../config``)
and statistics (``.../stats``, ``GET /v2/models/stats``). Liveness and readiness are in
:mod:`~insightray.serving.routes.health`.

An inference request carries one input ``image``, shape ``[H, W]`` or ``[1, H, W]``:
``FP32`` in ``[0, 1]``, or ``UINT8``/``UINT16`` pixel values (scaled by their range), as
JSON or as a binary tensor (:mod:`insightray.serving.tensors`). It runs through the same
batcher, cache and version routing as ``/v1``. Detection answers ``boxes`` (FP32
``[N, 4]``, x1 y1 x2 y2 pixels), ``scores`` (FP32 ``[N]``) and ``labels`` (BYTES ``[N]``);
fracture answers ``probability`` (FP32 ``[1]``) and ``label`` (BYTES ``[1]``). Without a
version the registry picks the caller's (production, or a canary); a named version runs
that version, and a staging one only for model administrators. Errors have the
protocol's shape, ``{"error": "<message>"}`` (see :mod:`insightray.serving.handlers`).
"""

from __future__ import annotations

import hashlib
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from typing import Any

import numpy as np
from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from numpy.typing import NDArray

from insightray.errors import (
    ImageSizeError,
    InputError,
    NotFoundError,
    PermissionDeniedError,
    ServiceUnavailableError,
)
from insightray.imaging import ImageMeta, LoadedImage
from insightray.models.catalog import find_task
from insightray.serving.deps import (
    Analyst,
    AuditDep,
    MetricsReader,
    ModelsReader,
    Principal,
    Services,
    ServicesDep,
)
from insightray.serving.hosting.inference import DetectionRunner
from insightray.serving.hosting.rollout import ModelEntry
from insightray.serving.hosting.screening import screen
from insightray.serving.security.roles import Permission, can
from insightray.serving.tensors import (
    DATATYPES,
    HEADER_LENGTH,
    InferRequest,
    OutputTensor,
    encode_infer_response,
    parse_infer_request,
)

router = APIRouter(tags=["open inference protocol v2"])

#: The extensions this server speaks (Triton's names, as clients look them up).
EXTENSIONS = ["binary_tensor_data", "model_configuration", "statistics"]
_MODEL = "/v2/models/{name}"
_VERSION = "/v2/models/{name}/versions/{version}"
_SCALE = {"FP32": 1.0, "UINT8": 255.0, "UINT16": 65535.0}
#: The input every image model takes; ``parameters`` lists every accepted datatype.
_INPUT = {
    "name": "image",
    "datatype": "FP32",
    "shape": [-1, -1],
    "parameters": {"accepted_datatypes": list(DATATYPES)},
}
#: The output tensors of each image task (card task name), as metadata lists them.
_OUTPUTS: dict[str, list[dict[str, Any]]] = {
    "detection": [
        {"name": "boxes", "datatype": "FP32", "shape": [-1, 4]},
        {"name": "scores", "datatype": "FP32", "shape": [-1]},
        {"name": "labels", "datatype": "BYTES", "shape": [-1]},
    ],
    "classification": [
        {"name": "probability", "datatype": "FP32", "shape": [1]},
        {"name": "label", "datatype": "BYTES", "shape": [1]},
    ],
}
_TRITON_TYPE = {"FP32": "TYPE_FP32", "BYTES": "TYPE_STRING"}
#: The request body, documented (the route reads it raw: JSON with or without a content
#: type, or JSON followed by binary tensors).
_INFER_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": InferRequest.model_json_schema()}},
    }
}


def _server_version() -> str:
    try:
        return package_version("insightray")
    except PackageNotFoundError:  # running from a source tree
        return "0+unknown"


@router.get("/v2")
@router.get("/v2/", include_in_schema=False)
def server_metadata() -> dict[str, Any]:
    """Server metadata: name, version and the protocol extensions spoken."""
    return {"name": "insightray", "version": _server_version(), "extensions": EXTENSIONS}


@router.get("/v2/models/stats")
def all_statistics(services: ServicesDep, who: MetricsReader) -> dict[str, Any]:
    """Inference statistics of every image model version (Triton's statistics extension)."""
    entries = [e for e in services.registry.versions() if _is_image(e) and _listed(e)]
    return {"model_stats": [_statistics(services, e) for e in entries]}


@router.get(_MODEL)
@router.get(_VERSION)
def model_metadata(
    name: str, services: ServicesDep, who: ModelsReader, version: str | None = None
) -> dict[str, Any]:
    """Model metadata: versions, input and output tensors."""
    entries = _versions(services, name, version)
    return {
        "name": name,
        "versions": [e.version for e in entries],
        "platform": "pytorch",
        "inputs": [_INPUT],
        "outputs": _OUTPUTS[find_task(entries[0].task).name],
    }


@router.get(f"{_MODEL}/ready")
@router.get(f"{_VERSION}/ready")
async def model_ready(
    name: str, services: ServicesDep, who: ModelsReader, version: str | None = None
) -> JSONResponse:
    """200 when the version (else the production one) is loaded; loads it if need be."""
    entries = await run_in_threadpool(_versions, services, name, version)
    entry = next((e for e in entries if version or e.stage == "production"), None)
    ready = entry is not None
    if entry is not None:
        try:
            await services.host.image_runner(entry)
        except ServiceUnavailableError:  # its files are missing or broken
            ready = False
    return JSONResponse({"name": name, "ready": ready}, status_code=200 if ready else 503)


@router.get(f"{_MODEL}/config")
@router.get(f"{_VERSION}/config")
def model_config(
    name: str, services: ServicesDep, who: ModelsReader, version: str | None = None
) -> dict[str, Any]:
    """The model configuration in Triton's form (tensors, labels, thresholds)."""
    entries = _versions(services, name, version)
    card = entries[-1].card
    outputs = _OUTPUTS[find_task(card.task).name]
    return {
        "name": name,
        "platform": "pytorch",
        "backend": "insightray",
        "max_batch_size": 0,
        "input": [{"name": "image", "data_type": "TYPE_FP32", "dims": [-1, -1]}],
        "output": [
            {"name": o["name"], "data_type": _TRITON_TYPE[o["datatype"]], "dims": o["shape"]}
            for o in outputs
        ],
        "version_policy": {"specific": {"versions": [e.version for e in entries]}},
        "parameters": {
            "accepted_input_datatypes": {"string_value": ",".join(DATATYPES)},
            "task": {"string_value": card.task},
            "labels": {"string_value": ",".join(card.labels)},
            "input_size": {"string_value": "x".join(str(s) for s in card.input_size)},
        },
    }


@router.get(f"{_MODEL}/stats")
@router.get(f"{_VERSION}/stats")
def model_statistics(
    name: str, services: ServicesDep, who: MetricsReader, version: str | None = None
) -> dict[str, Any]:
    """Inference statistics of a model's versions (Triton's statistics extension)."""
    entries = _versions(services, name, version)
    return {"model_stats": [_statistics(services, e) for e in entries]}


@router.post(f"{_MODEL}/infer", openapi_extra=_INFER_BODY)
@router.post(f"{_VERSION}/infer", openapi_extra=_INFER_BODY)
async def infer(
    name: str,
    request: Request,
    services: ServicesDep,
    who: Analyst,
    audit: AuditDep,
    version: str | None = None,
) -> Response:
    """Run the version of ``name`` that serves the caller (or the one named) on an image."""
    entry = await run_in_threadpool(_served, services, who, name, version)
    body = await request.body()
    parsed, arrays = await run_in_threadpool(
        parse_infer_request, body, request.headers.get(HEADER_LENGTH)
    )
    image, digest = _image(parsed, arrays, services.settings.max_image_pixels)
    output, _ = await services.host.predict_image(entry, image, digest)
    screen(services, entry, output)
    runner = await services.host.image_runner(entry)
    if isinstance(runner, DetectionRunner):
        output, _ = runner.operating(output)  # the findings, without the weaker candidates
    await audit.arecord(
        "oip.infer", model_name=entry.name, model_version=entry.version, input_sha256=digest,
    )  # fmt: skip
    result = output.to_dict()
    response = {
        "model_name": entry.name,
        "model_version": entry.version,
        "id": parsed.id or "",
        "parameters": {"warnings": result["warnings"], "ood_score": result["ood_score"]},
    }
    content, json_size = encode_infer_response(parsed, response, _outputs(result))
    if json_size is None:
        return Response(content, media_type="application/json")
    headers = {HEADER_LENGTH: str(json_size)}
    return Response(content, media_type="application/octet-stream", headers=headers)


def _is_image(entry: ModelEntry) -> bool:
    return find_task(entry.task).image


def _listed(entry: ModelEntry) -> bool:
    """Whether a version may be asked for by name (archived ones may not)."""
    return entry.stage != "archived"


def _versions(services: Services, name: str, version: str | None) -> list[ModelEntry]:
    """The requestable versions of an image model (only ``version``, when named)."""
    entries = [e for e in services.registry.versions(name) if _is_image(e) and _listed(e)]
    if not entries:
        raise NotFoundError(f"model {name}", "no image model of that name", "see GET /v1/models")
    if version is None:
        return entries
    named = [e for e in entries if e.version == version]
    if not named:
        listed = ", ".join(e.version for e in entries)
        raise NotFoundError(f"model {name} version {version}", "no such version", f"use {listed}")
    return named


def _served(services: Services, who: Principal, name: str, version: str | None) -> ModelEntry:
    """The version that answers ``who``: the registry's choice, or the one named."""
    entries = _versions(services, name, version)
    chosen = services.registry.choose(entries[0].task, who.username, name).served
    if version is None or chosen.version == version:
        return chosen
    entry = entries[0]
    if entry.stage != "production" and not can(who.role, Permission.MODELS_ADMIN):
        raise PermissionDeniedError(
            f"model {name} version {version}",
            f"it is a {entry.stage} version",
            "leave the version out, or ask a model administrator",
        )
    return entry


def _image(
    request: InferRequest, arrays: dict[str, NDArray[Any]], max_pixels: int
) -> tuple[LoadedImage, str]:
    """The ``image`` input as a display image in ``[0, 1]``, and its digest."""
    tensor = request.inputs[0]
    if len(request.inputs) != 1 or tensor.name != "image":
        names = [t.name for t in request.inputs]
        raise InputError("inputs", f"{names} were sent", "send one input named image")
    shape = tensor.shape
    if len(shape) not in (2, 3) or (len(shape) == 3 and shape[0] != 1) or 0 in shape:
        raise InputError("input image", f"shape {shape}", "send [H, W] or [1, H, W]")
    height, width = shape[-2], shape[-1]
    if height * width > max_pixels:
        raise ImageSizeError(
            "input image",
            f"{height} x {width} pixels is over the limit of {max_pixels:,}",
            "downsample the image (the models read it at a few hundred pixels)",
        )
    values = arrays["image"].reshape(height, width).astype(np.float32)
    pixels = values / np.float32(_SCALE[tensor.datatype])
    if tensor.datatype == "FP32" and (pixels.min() < 0.0 or pixels.max() > 1.0):
        raise InputError(
            "input image",
            f"FP32 values span {pixels.min():g} to {pixels.max():g}, outside [0, 1]",
            "scale them to [0, 1], or send UINT8/UINT16 pixel values",
        )
    meta = ImageMeta("tensor", (height, width), "MONOCHROME2", 32)
    digest = hashlib.sha256(pixels.tobytes() + repr(shape).encode()).hexdigest()
    return LoadedImage(np.ascontiguousarray(pixels), meta), digest


def _outputs(result: dict[str, Any]) -> list[OutputTensor]:
    """The tensors of a result's JSON form (the numbers the CLI and ``/v1`` give)."""
    if "detections" in result:
        detections = result["detections"]
        return [
            OutputTensor(
                "boxes", "FP32", [len(detections), 4], [v for d in detections for v in d["box"]]
            ),
            OutputTensor("scores", "FP32", [len(detections)], [d["score"] for d in detections]),
            OutputTensor(
                "labels", "BYTES", [len(detections)], [d["class_name"] for d in detections]
            ),
        ]
    return [
        OutputTensor("probability", "FP32", [1], [result["probability"]]),
        OutputTensor("label", "BYTES", [1], [result["label"]]),
    ]


def _statistics(services: Services, entry: ModelEntry) -> dict[str, Any]:
    """What the service's metrics know of a version, in Triton's statistics form."""
    registry = services.metrics.registry
    version = {"model": entry.name, "version": entry.version}

    def sample(name: str, **labels: str) -> float:
        return registry.get_sample_value(name, {**version, **labels}) or 0.0

    computed = int(sample("insightray_prediction_latency_seconds_count", task=entry.task))
    seconds = sample("insightray_prediction_latency_seconds_sum", task=entry.task)
    hits = int(sample("insightray_cache_total", outcome="hit"))
    misses = int(sample("insightray_cache_total", outcome="miss"))
    return {
        "name": entry.name,
        "version": entry.version,
        "inference_count": computed + hits,
        "execution_count": computed,
        "inference_stats": {
            "compute_infer": {"count": computed, "ns": int(seconds * 1e9)},
            "cache_hit": {"count": hits, "ns": 0},
            "cache_miss": {"count": misses, "ns": 0},
        },
    }
