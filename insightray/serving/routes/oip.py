"""Open Inference Protocol v2 (KServe / Triton REST): model metadata and inference.

``POST /v2/models/{name}/infer`` with a JSON tensor ``image`` (shape ``[H, W]`` or
``[1, H, W]``; ``FP32`` in ``[0, 1]`` or ``UINT8``/``UINT16`` scaled by their range) runs an
image model through the same batcher, cache and version routing as ``/v1``. Detection
answers ``boxes`` (FP32 ``[N, 4]``, x1 y1 x2 y2 pixels), ``scores`` (FP32 ``[N]``) and
``labels`` (BYTES ``[N]``); fracture answers ``probability`` (FP32 ``[1]``) and ``label``.
The response's ``model_version`` names the version that ran.
"""

from __future__ import annotations

import hashlib
from typing import Any, Literal

import numpy as np
from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from insightray.errors import InputError, NotFoundError
from insightray.imaging import ImageMeta, LoadedImage
from insightray.models.catalog import find_task
from insightray.serving.deps import Analyst, AuditDep, ModelsReader, Services, ServicesDep
from insightray.serving.hosting.inference import DetectionRunner
from insightray.serving.hosting.rollout import ModelEntry
from insightray.serving.hosting.screening import screen

router = APIRouter(prefix="/v2/models", tags=["open inference protocol v2"])

_SCALE = {"FP32": 1.0, "UINT8": 255.0, "UINT16": 65535.0}
_MAX_PIXELS = 25_000_000


class InputTensor(BaseModel):
    """One request tensor."""

    name: str = Field(max_length=64)
    shape: list[int] = Field(min_length=2, max_length=3)
    datatype: Literal["FP32", "UINT8", "UINT16"]
    data: list[float] = Field(max_length=_MAX_PIXELS)
    parameters: dict[str, Any] | None = None


class InferRequest(BaseModel):
    """An inference request: one ``image`` tensor."""

    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(default=None, max_length=128)
    inputs: list[InputTensor] = Field(min_length=1, max_length=1)
    outputs: list[dict[str, Any]] | None = None
    parameters: dict[str, Any] | None = None


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


def _image_model(services: Services, name: str) -> list[ModelEntry]:
    entries = [e for e in services.registry.versions(name) if find_task(e.task).image]
    if not entries:
        raise NotFoundError(f"model {name}", "no image model of that name", "see GET /v1/models")
    return entries


@router.get("/{name}")
def model_metadata(
    name: str,
    services: ServicesDep,
    who: ModelsReader,
) -> dict[str, Any]:
    """Model metadata: versions, input and output tensors."""
    entries = _image_model(services, name)
    outputs = _OUTPUTS[find_task(entries[0].task).name]
    return {
        "name": name,
        "versions": [e.version for e in entries if e.stage != "archived"],
        "platform": "pytorch",
        "inputs": [{"name": "image", "datatype": "FP32", "shape": [-1, -1]}],
        "outputs": outputs,
    }


@router.post("/{name}/infer")
async def infer(
    name: str,
    body: InferRequest,
    services: ServicesDep,
    who: Analyst,
    audit: AuditDep,
) -> dict[str, Any]:
    """Run the version of ``name`` that serves the caller on one image tensor."""
    entries = await run_in_threadpool(_image_model, services, name)
    selection = await run_in_threadpool(
        services.registry.choose, entries[0].task, who.username, name
    )
    entry = selection.served
    image, digest = _image(body.inputs[0])
    output, _ = await services.host.predict_image(entry, image, digest)
    screen(services, entry, output)
    runner = await services.host.image_runner(entry)
    if isinstance(runner, DetectionRunner):
        output, _ = runner.operating(output)  # the findings, without the weaker candidates
    await audit.arecord(
        "oip.infer", model_name=entry.name, model_version=entry.version, input_sha256=digest,
    )  # fmt: skip
    result = output.to_dict()
    return {
        "model_name": entry.name,
        "model_version": entry.version,
        "id": body.id or "",
        "outputs": _outputs(result),
        "parameters": {"warnings": result["warnings"], "ood_score": result["ood_score"]},
    }


def _image(tensor: InputTensor) -> tuple[LoadedImage, str]:
    shape = tensor.shape
    if (len(shape) == 3 and shape[0] != 1) or any(side < 1 for side in shape):
        raise InputError(f"input {tensor.name}", f"shape {shape}", "send [H, W] or [1, H, W]")
    height, width = shape[-2], shape[-1]
    if height * width != len(tensor.data) or height * width > _MAX_PIXELS:
        raise InputError(
            f"input {tensor.name}",
            f"{len(tensor.data)} values do not fill shape {shape} (or exceed {_MAX_PIXELS:,})",
            "send H x W values, row-major",
        )
    values = np.asarray(tensor.data, dtype=np.float32).reshape(height, width)
    pixels = np.clip(values / np.float32(_SCALE[tensor.datatype]), 0.0, 1.0)
    meta = ImageMeta("tensor", (height, width), "MONOCHROME2", 32)
    digest = hashlib.sha256(pixels.tobytes() + repr(shape).encode()).hexdigest()
    return LoadedImage(np.ascontiguousarray(pixels), meta), digest


def _outputs(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The tensors of a result's JSON form (the numbers the CLI and ``/v1`` give)."""
    if "detections" in result:
        detections = result["detections"]
        values = {
            "boxes": [value for d in detections for value in d["box"]],
            "scores": [d["score"] for d in detections],
            "labels": [d["class_name"] for d in detections],
        }
        shapes = {"boxes": [len(detections), 4]}
    else:
        values = {"probability": [result["probability"]], "label": [result["label"]]}
        shapes = {}
    layout = _OUTPUTS["detection" if "detections" in result else "classification"]
    return [
        {**tensor, "shape": shapes.get(tensor["name"], [len(values[tensor["name"]])]),
         "data": values[tensor["name"]]}
        for tensor in layout
    ]  # fmt: skip
