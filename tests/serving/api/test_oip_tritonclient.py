"""Open Inference Protocol conformance with the standard client, ``tritonclient[http]``.

The service runs under uvicorn on loopback (real HTTP; what ``insightray serve`` runs) with
the session's loaded models, on SQLite. Every call the client makes for
a model is driven for the bundled detector and the fracture classifier: server live,
ready and metadata, model metadata (also by version), configuration, model ready,
statistics, and inference with JSON tensors and with binary tensors (the client sends
JSON without a content type, and binary tensors with ``Inference-Header-Content-Length``).
The answers are checked against the models run in-process on the same pixels.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tritonclient.http as httpclient
from numpy.typing import NDArray
from tritonclient.utils import InferenceServerException

from insightray.imaging import read_image
from insightray.models import load_card
from insightray.models.catalog import bundled_models_dir
from insightray.serving.app import create_app
from insightray.serving.hosting.inference import DetectionRunner, ModelLoader
from insightray.serving.security.users import create_api_key
from insightray.serving.settings import ServeSettings
from tests.serving.api.conftest import DETECTOR, DETECTOR_VERSION, FAST
from tests.serving.reliability.server import create_users, serve_in_thread

FRACTURE = "fracture-roboflow-lite0"
FRACTURE_VERSION = load_card(bundled_models_dir() / FRACTURE / "card.json").version
OUTPUTS = {DETECTOR: ["boxes", "scores", "labels"], FRACTURE: ["probability", "label"]}


@dataclasses.dataclass
class Served:
    """A running service and API keys of a clinician, an auditor and an admin."""

    url: str
    keys: dict[str, dict[str, str]]
    loader: ModelLoader
    app: Any


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """SQLite only: the protocol layer does not touch the database beyond the API key
    lookup, which the other API tests run on PostgreSQL too."""
    return f"sqlite:///{tmp_path / 'insightray-test.db'}"


@pytest.fixture
def served(serve_settings: ServeSettings, model_loader: ModelLoader) -> Iterator[Served]:
    users = {"clinician1": "clinician", "auditor1": "auditor", "admin1": "admin"}
    create_users(serve_settings.home, serve_settings.database_url, users)
    settings = dataclasses.replace(serve_settings, **FAST)
    app = create_app(settings, loader=model_loader, warm_up=False)
    with serve_in_thread(app) as base_url:
        db = app.state.services.db
        keys = {name: {"X-API-Key": create_api_key(db, name)} for name in users}
        yield Served(base_url.removeprefix("http://"), keys, model_loader, app)


def _pixels(path: Path) -> NDArray[np.uint8]:
    return np.rint(read_image(path).pixels * 255).astype(np.uint8)


def _in_process(served: Served, model: str, pixels: NDArray[np.uint8]) -> dict[str, Any]:
    """The same model run in this process on the same pixels, as output tensors."""
    services = served.app.state.services
    task = services.registry.versions(model)[0].task
    entry = services.registry.choose(task, "clinician1", model).served
    runner = served.loader.image_runner(entry)
    image = pixels.astype(np.float32) / 255.0
    result = runner.predictor.predict_arrays([image])[0]
    if isinstance(runner, DetectionRunner):
        kept = runner.operating(result)[0].to_dict()["detections"]
        return {
            "boxes": np.array([d["box"] for d in kept], np.float32).reshape(-1, 4),
            "scores": np.array([d["score"] for d in kept], np.float32),
            "labels": [d["class_name"] for d in kept],
        }
    fracture = result.to_dict()
    return {
        "probability": np.array([fracture["probability"]], np.float32),
        "label": [fracture["label"]],
    }


def _infer(
    client: Any,
    model: str,
    pixels: NDArray[Any],
    datatype: str,
    binary: bool,
    headers: dict[str, str],
    **kwargs: Any,
) -> Any:
    tensor = httpclient.InferInput("image", list(pixels.shape), datatype)
    tensor.set_data_from_numpy(pixels, binary_data=binary)
    outputs = [httpclient.InferRequestedOutput(name, binary_data=binary) for name in OUTPUTS[model]]
    # a copy: the client writes Inference-Header-Content-Length into the dict it is given
    return client.infer(model, [tensor], outputs=outputs, headers=dict(headers), **kwargs)


def _as_dict(result: Any, model: str) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name in OUTPUTS[model]:
        array = result.as_numpy(name)
        if array.dtype == object:  # BYTES: bytes from binary, str from JSON
            values[name] = [v.decode() if isinstance(v, bytes) else str(v) for v in array]
        else:
            values[name] = array
    return values


def _same(answer: dict[str, Any], expected: dict[str, Any]) -> None:
    for name, value in expected.items():
        if isinstance(value, list):
            assert answer[name] == value, name
        else:
            assert answer[name].shape == value.shape, name
            assert np.allclose(answer[name], value, atol=1e-5), name


def test_every_tritonclient_call_works_for_the_detector_and_the_fracture_model(
    served: Served, shared_data: Path
) -> None:
    client = httpclient.InferenceServerClient(url=served.url, network_timeout=300.0)
    clinician = served.keys["clinician1"]
    assert client.is_server_live() and client.is_server_ready()
    server = client.get_server_metadata()
    assert server["name"] == "insightray" and "binary_tensor_data" in server["extensions"]
    images = {
        DETECTOR: shared_data / "cxr" / "tbx11k" / "images" / "tb0020.jpg",
        FRACTURE: next(iter(sorted((shared_data / "fracture").rglob("*.jpg")))),
    }
    versions = {DETECTOR: DETECTOR_VERSION, FRACTURE: FRACTURE_VERSION}
    for model, path in images.items():
        version = versions[model]
        metadata = client.get_model_metadata(model, headers=clinician)
        assert metadata["versions"] == [version]
        assert metadata["inputs"][0]["parameters"]["accepted_datatypes"] == [
            "FP32", "UINT8", "UINT16",
        ]  # fmt: skip
        assert [o["name"] for o in metadata["outputs"]] == OUTPUTS[model]
        by_version = client.get_model_metadata(model, model_version=version, headers=clinician)
        assert by_version["versions"] == [version]
        config = client.get_model_config(model, headers=clinician)
        assert [o["name"] for o in config["output"]] == OUTPUTS[model]
        assert client.get_model_config(model, model_version=version, headers=clinician)
        assert client.is_model_ready(model, headers=clinician)
        assert client.is_model_ready(model, model_version=version, headers=clinician)

        pixels = _pixels(path)
        expected = _in_process(served, model, pixels)
        if model == DETECTOR:
            assert len(expected["labels"]) > 0, "the TBX11K image has findings"
        for binary in (False, True):
            result = _infer(client, model, pixels, "UINT8", binary, clinician, request_id="r1")
            response = result.get_response()
            assert (response["model_version"], response["id"]) == (version, "r1")
            sent_binary = [
                "binary_data_size" in o.get("parameters", {}) for o in response["outputs"]
            ]
            assert all(sent_binary) if binary else not any(sent_binary)
            _same(_as_dict(result, model), expected)
        wide = pixels.astype(np.uint16) * 257  # the same image as 16-bit values
        versioned = _infer(client, model, wide, "UINT16", True, clinician, model_version=version)
        _same(_as_dict(versioned, model), expected)
        # no outputs named: the client asks for every output in binary
        tensor = httpclient.InferInput("image", list(pixels.shape), "UINT8")
        tensor.set_data_from_numpy(pixels)
        _same(_as_dict(client.infer(model, [tensor], headers=dict(clinician)), model), expected)

    statistics = client.get_inference_statistics(DETECTOR, headers=served.keys["auditor1"])
    assert statistics["model_stats"][0]["inference_count"] >= 4
    everything = client.get_inference_statistics(headers=served.keys["admin1"])
    assert {s["name"] for s in everything["model_stats"]} >= {DETECTOR, FRACTURE}
    client.close()


def test_errors_reach_the_client_as_protocol_messages(served: Served) -> None:
    client = httpclient.InferenceServerClient(url=served.url, network_timeout=300.0)
    clinician = served.keys["clinician1"]
    nan = np.full((64, 64), np.nan, np.float32)
    for binary in (False, True):  # the client writes NaN into its JSON as a NaN literal
        with pytest.raises(InferenceServerException) as caught:
            _infer(client, DETECTOR, nan, "FP32", binary, clinician)
        assert caught.value.status() == "400" and "finite" in caught.value.message()
    cases: list[tuple[dict[str, str], str, str]] = [
        ({}, "401", "no credentials"),
        ({"X-API-Key": "irk_nope_nope"}, "401", "API key"),
        (served.keys["auditor1"], "403", "permission"),
    ]
    pixels = np.zeros((32, 32), np.uint8)
    for headers, status, words in cases:
        with pytest.raises(InferenceServerException) as caught:
            _infer(client, DETECTOR, pixels, "UINT8", True, headers)
        assert caught.value.status() == status and words in caught.value.message()
    with pytest.raises(InferenceServerException) as caught:
        client.get_model_metadata("nope", headers=clinician)
    assert caught.value.status() == "404" and "nope" in caught.value.message()
    with pytest.raises(InferenceServerException) as caught:
        _infer(client, DETECTOR, pixels.astype(np.int32), "INT32", True, clinician)
    assert caught.value.status() == "400" and "UINT16" in caught.value.message()
    assert not client.is_model_ready("nope", headers=clinician)
    assert not client.is_model_ready(DETECTOR, model_version="9.9.9", headers=clinician)
    client.close()
