"""Analysing a study: pick the model version, run it batched, store the result encrypted.

The answer names the model version that produced it. The result JSON, the overlay PNG (boxes
for the detector, the heat map blended on for the fracture classifier), the heat map as an
RGBA PNG (EigenCAM for the detector, Grad-CAM for the fracture classifier: the result's
``heatmap_method``) and for a DICOM study the result as a DICOM SR go into the encrypted
store; the ``results`` row keeps their keys. Shadow versions run after the answer is sent:
their outcome is audited and counted, never returned.

Example:
    >>> result = await analyze(services, who, study, "cxr", None, tasks)  # doctest: +SKIP
    >>> result["model"]  # doctest: +SKIP
    {'name': 'cxr-tbx11k-yolov5s', 'version': '0.1.0'}
"""

from __future__ import annotations

import json
import time
from typing import Any

from fastapi import BackgroundTasks
from fastapi.concurrency import run_in_threadpool

from insightray.engine import DetectionResult
from insightray.engine.overlay import draw_detections
from insightray.errors import InsightRayError, MissingExtraError, NotFoundError
from insightray.imaging import LoadedImage
from insightray.models import ModelCard
from insightray.serving import images
from insightray.serving.deps import Principal, Services
from insightray.serving.hosting.inference import DetectionRunner
from insightray.serving.hosting.rollout import ModelEntry
from insightray.serving.hosting.screening import screen
from insightray.serving.storage.db.models import Result, Study, new_id
from insightray.serving.storage.studies import decode_study, get_study, study_bytes

__all__ = ["analyze", "load_result", "result_blob", "result_summary"]


async def analyze(
    services: Services,
    who: Principal,
    study: Study,
    task: str,
    model: str | None,
    background: BackgroundTasks,
) -> dict[str, Any]:
    """Run ``task`` on the study with the version that serves ``who``; store and return it.

    Raises:
        NotFoundError: The named model does not exist or serves another task (404).
        ServiceUnavailableError: No version is installed or loadable (503).
    """
    started = time.perf_counter()
    selection = await run_in_threadpool(services.registry.choose, task, who.username, model)
    entry = selection.served
    image = await run_in_threadpool(decode_study, services, study)
    output, _ = await services.host.predict_image(entry, image, study.sha256)
    screen(services, entry, output)  # counts the guard's outcome; 422 when set to refuse
    runner = await services.host.image_runner(entry)
    heat = await services.host.run(runner.heatmap, image)
    candidates = list[Any]()
    if isinstance(runner, DetectionRunner):
        output, candidates = runner.operating(output)
    result_id = new_id()
    method = None if heat is None else runner.heatmap_method
    response = _response(result_id, study.id, entry, output, method)
    if isinstance(runner, DetectionRunner):  # for the viewer's threshold slider
        response["threshold"] = runner.threshold
        response["candidates"] = _findings(candidates)
    response["latency_ms"] = round((time.perf_counter() - started) * 1000.0, 1)
    card = runner.predictor.card
    await run_in_threadpool(
        _store, services, who, started, study, entry, image, output, heat, response, card
    )  # the result row and its audit record commit together
    for shadow in selection.shadows:
        background.add_task(_run_shadow, services, who, shadow, image, study)
    return response


def _response(
    result_id: str, study_id: str, entry: ModelEntry, output: Any, heatmap_method: str | None
) -> dict[str, Any]:
    findings, fracture = None, None
    if isinstance(output, DetectionResult):
        findings = _findings(list(output.detections))
    else:
        fracture = output.to_dict()
    return {
        "result_id": result_id,
        "study_id": study_id,
        "task": entry.task,
        "model": {"name": entry.name, "version": entry.version},
        "findings": findings,
        "fracture": fracture,
        "warnings": list(output.warnings),
        "ood_score": output.ood_score,
        "image_url": f"/v1/results/{result_id}/image",
        "heatmap_url": None if heatmap_method is None else f"/v1/results/{result_id}/heatmap",
        "heatmap_method": heatmap_method,
    }


def _findings(detections: list[Any]) -> list[dict[str, Any]]:
    """Each detection's :meth:`~insightray.engine.Detection.to_dict` (the CLI's shape).

    ``label`` repeats ``class_name``: API clients of 0.1 read that name.
    """
    return [{**detection.to_dict(), "label": detection.class_name} for detection in detections]


def _store(
    services: Services,
    who: Principal,
    started: float,
    study: Study,
    entry: ModelEntry,
    image: LoadedImage,
    output: Any,
    heat: Any,
    response: dict[str, Any],
    card: ModelCard,
) -> None:
    report = _structured_report(services, study, output, card)
    sr_key = None if report is None else services.store.put(report)
    response["sr_url"] = None if sr_key is None else f"/v1/results/{response['result_id']}/sr"
    if isinstance(output, DetectionResult):
        overlay = images.png_bytes(draw_detections(image.pixels, output.detections))
    elif heat is None:  # a classifier without a heat map (an ONNX or INT8 graph)
        overlay = images.preview_png(image)
    else:
        overlay = images.heatmap_overlay_png(image, heat)
    heatmap_key = None if heat is None else services.store.put(images.heatmap_png(heat))
    document = {"response": response, "heatmap_sha256": heatmap_key, "sr_sha256": sr_key}
    output_key = services.store.put(json.dumps(document, sort_keys=True).encode())
    row = Result(
        id=response["result_id"],
        study_id=study.id,
        task=entry.task,
        model_name=entry.name,
        model_version=entry.version,
        output_sha256=output_key,
        image_sha256=services.store.put(overlay),
    )
    with services.db.session() as session:
        session.add(row)
        stored = session.get(Study, study.id)
        if stored is not None and stored.status == "stored":
            stored.status = "analysed"
        services.record(
            who, "study.analyze", "ok", started, session,
            study_id=study.id, model_name=entry.name, model_version=entry.version,
            input_sha256=study.sha256,
        )  # fmt: skip


def _structured_report(
    services: Services, study: Study, output: Any, card: ModelCard
) -> bytes | None:
    """The result as a DICOM SR (TID 1500) of the stored, de-identified DICOM; ``None`` for
    other formats, without the ``[pacs]`` extra, or when the SR cannot be made."""
    try:
        from insightray.pacs.sr import sr_bytes
    except MissingExtraError:
        return None
    task = "detection" if isinstance(output, DetectionResult) else "fracture"
    try:
        return sr_bytes(study_bytes(services, study), **{task: (output, card)})
    except InsightRayError:  # the JSON result stands without its SR
        return None


async def _run_shadow(
    services: Services, who: Principal, entry: ModelEntry, image: LoadedImage, study: Study
) -> None:
    """Run a shadow version and record that it ran (its output is not returned)."""
    started = time.perf_counter()
    outcome = "shadow"
    try:
        await services.host.predict_image(entry, image, study.sha256, shadow=True)
    except InsightRayError as error:
        outcome = f"shadow-error:{type(error).__name__.lower()}"
    await run_in_threadpool(
        services.record, who, "study.analyze.shadow", outcome, started,
        study_id=study.id, model_name=entry.name, model_version=entry.version,
        input_sha256=study.sha256,
    )  # fmt: skip


def result_summary(result: Result) -> dict[str, Any]:
    """A result as listed inside a study (no decryption needed)."""
    return {
        "result_id": result.id,
        "task": result.task,
        "model": {"name": result.model_name, "version": result.model_version},
        "created_at": result.created_at.isoformat(),
    }


def load_result(
    services: Services, who: Principal, result_id: str
) -> tuple[Result, dict[str, Any]]:
    """A result the caller may see, and its decrypted document.

    Raises:
        NotFoundError: No such result, or its study is deleted or someone else's.
    """
    with services.db.session(read_only=True) as session:
        result = session.get(Result, result_id)
    if result is None:
        raise NotFoundError(f"result {result_id}", "no such result", "list the study's results")
    get_study(services, who, result.study_id)  # 404 unless visible and live
    document: dict[str, Any] = json.loads(services.store.get(result.output_sha256))
    return result, document


def result_blob(services: Services, who: Principal, result_id: str, kind: str) -> bytes:
    """The overlay (``image``) or heat map (``heatmap``) PNG, or the DICOM SR (``sr``), of a
    result.

    Raises:
        NotFoundError: No such result or no image of that kind.
    """
    result, document = load_result(services, who, result_id)
    key = result.image_sha256 if kind == "image" else document.get(f"{kind}_sha256")
    if not key:
        raise NotFoundError(f"result {result_id}", f"it has no {kind}", "see its JSON")
    return services.store.get(key)
