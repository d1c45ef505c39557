"""Open Inference Protocol tensors: JSON and binary request bodies, NaN refusal, responses."""

from __future__ import annotations

import json
import struct
from typing import Any

import numpy as np
import pytest

from insightray.errors import InputError
from insightray.serving.tensors import (
    InferRequest,
    OutputTensor,
    encode_infer_response,
    parse_infer_request,
)


def _json(tensor: dict[str, Any], **extra: Any) -> bytes:
    return json.dumps({"inputs": [tensor], **extra}).encode()


def _binary(array: np.ndarray, datatype: str, **extra: Any) -> tuple[bytes, str]:
    raw = array.tobytes()
    tensor = {
        "name": "image",
        "shape": list(array.shape),
        "datatype": datatype,
        "parameters": {"binary_data_size": len(raw)},
    }
    header = _json(tensor, **extra)
    return header + raw, str(len(header))


def _error(body: bytes, header: str | None = None) -> str:
    with pytest.raises(InputError) as caught:
        parse_infer_request(body, header)
    return str(caught.value)


def test_json_tensors_nested_or_flat_without_a_content_type() -> None:
    for data in ([1, 2, 3, 4, 5, 6], [[1, 2, 3], [4, 5, 6]]):
        tensor = {"name": "image", "shape": [2, 3], "datatype": "UINT16", "data": data}
        request, arrays = parse_infer_request(_json(tensor, id="a"), None)
        assert request.id == "a" and arrays["image"].tolist() == [[1, 2, 3], [4, 5, 6]]


@pytest.mark.parametrize("datatype", ["FP32", "UINT8", "UINT16"])
def test_binary_tensors_round_trip(datatype: str) -> None:
    dtype = {"FP32": "<f4", "UINT8": "u1", "UINT16": "<u2"}[datatype]
    array = (np.arange(12).reshape(3, 4) * 7).astype(dtype)
    body, header = _binary(array, datatype)
    _, arrays = parse_infer_request(body, header)
    assert np.array_equal(arrays["image"], array)


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_non_finite_json_numbers_are_refused(literal: str) -> None:
    body = b'{"inputs": [{"name": "image", "shape": [1, 2], "datatype": "FP32", "data": [0.5, '
    assert "finite" in _error(body + literal.encode() + b"]}]}")


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_non_finite_binary_values_are_refused(value: float) -> None:
    body, header = _binary(np.array([[0.5, value]], np.float32), "FP32")
    assert "finite" in _error(body, header)


def test_malformed_requests_say_what_to_send() -> None:
    image = {"name": "image", "shape": [2, 2], "datatype": "UINT8", "data": [1, 2, 3, 4]}
    assert "FP32, UINT8, UINT16" in _error(_json({**image, "datatype": "INT32"}))
    assert "do not fill shape" in _error(_json({**image, "shape": [3, 2]}))
    assert "whole numbers from 0 to 255" in _error(_json({**image, "data": [1, 2, 3, 256]}))
    assert "whole numbers" in _error(_json({**image, "data": [1, 2, 3, 0.5]}))
    assert "not all numbers" in _error(_json({**image, "data": ["1", "2", "3", "4"]}))
    assert "not all numbers" in _error(_json({**image, "data": [[1, 2], [3]]}))
    assert "not JSON" in _error(b"\x89PNG...")
    assert "inputs" in _error(b'{"inputs": []}')
    body, header = _binary(np.zeros((2, 2), np.uint8), "UINT8")
    assert "JSON length" in _error(body, "9999")
    assert "no input claims" in _error(body + b"\0", header)
    assert "binary_data_size" in _error(body[:-1], header)


def _request(**parameters: Any) -> InferRequest:
    tensor = {"name": "image", "shape": [1], "datatype": "UINT8", "data": [0]}
    return InferRequest.model_validate({"inputs": [tensor], **parameters})


OUTPUTS = [
    OutputTensor("scores", "FP32", [2], [0.25, 0.5]),
    OutputTensor("labels", "BYTES", [2], ["TB", "nodule"]),
]


def test_responses_are_json_unless_binary_is_asked_for() -> None:
    body, size = encode_infer_response(_request(), {"model_name": "m"}, OUTPUTS)
    assert size is None
    assert json.loads(body)["outputs"][1] == {
        "name": "labels", "datatype": "BYTES", "shape": [2], "data": ["TB", "nodule"],
    }  # fmt: skip
    request = _request(parameters={"binary_data_output": True})
    body, size = encode_infer_response(request, {"model_name": "m"}, OUTPUTS)
    assert size is not None
    header, blobs = json.loads(body[:size]), body[size:]
    sizes = [o["parameters"]["binary_data_size"] for o in header["outputs"]]
    assert sizes == [8, 4 + 2 + 4 + 6] and len(blobs) == sum(sizes)
    assert np.frombuffer(blobs[:8], "<f4").tolist() == [0.25, 0.5]
    assert blobs[8:14] == struct.pack("<I", 2) + b"TB"


def test_requested_outputs_choose_their_own_form() -> None:
    request = _request(outputs=[{"name": "labels", "parameters": {"binary_data": True}}])
    body, size = encode_infer_response(request, {"model_name": "m"}, OUTPUTS)
    assert size is not None and [o["name"] for o in json.loads(body[:size])["outputs"]] == [
        "labels"
    ]
    with pytest.raises(InputError, match="no such output"):
        encode_infer_response(_request(outputs=[{"name": "nope"}]), {}, OUTPUTS)
