"""Open Inference Protocol v2 tensors: request bodies in, response bodies out.

A request body is the protocol's JSON inference request, with or without a
``Content-Type``; with the binary tensor extension (header
``Inference-Header-Content-Length: N``) its first N bytes are that JSON and the rest holds
the raw tensors, in input order, each input naming its ``binary_data_size``. A response
is JSON, or the same split when the request asked for binary outputs
(``parameters.binary_data_output`` for all, or ``binary_data`` per requested output).
Binary tensors are little-endian and row-major; a ``BYTES`` element is a 4-byte
little-endian length and its UTF-8 bytes (the Triton binary data extension).

Non-finite numbers are refused: ``NaN``/``Infinity`` literals in the JSON, numbers that
overflow to infinity, and non-finite values in a binary ``FP32`` tensor.

Example:
    >>> request, arrays = parse_infer_request(
    ...     b'{"inputs": [{"name": "image", "shape": [1, 2], "datatype": "UINT8",'
    ...     b' "data": [0, 255]}]}', None)
    >>> arrays["image"].tolist()
    [[0, 255]]
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from insightray.errors import InputError

__all__ = [
    "DATATYPES",
    "HEADER_LENGTH",
    "InferRequest",
    "OutputTensor",
    "encode_infer_response",
    "parse_infer_request",
]

#: The input datatypes accepted, and the numpy type of their binary form.
DATATYPES: dict[str, np.dtype[Any]] = {
    "FP32": np.dtype("<f4"),
    "UINT8": np.dtype("u1"),
    "UINT16": np.dtype("<u2"),
}
#: The binary tensor extension's header (HTTP header names are case-insensitive).
HEADER_LENGTH = "Inference-Header-Content-Length"
_ACCEPTED = ", ".join(DATATYPES)


class InputTensor(BaseModel):
    """One request tensor; ``data`` is absent when the tensor is sent as binary."""

    name: str = Field(max_length=64)
    shape: list[int] = Field(max_length=8)
    datatype: str = Field(max_length=16)
    data: Any = None
    parameters: dict[str, Any] | None = None


class RequestedOutput(BaseModel):
    """An output the caller asks for (``parameters.binary_data``: send it as binary)."""

    name: str = Field(max_length=64)
    parameters: dict[str, Any] | None = None


class InferRequest(BaseModel):
    """The protocol's inference request object."""

    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(default=None, max_length=128)
    parameters: dict[str, Any] | None = None
    inputs: list[InputTensor] = Field(min_length=1, max_length=16)
    outputs: list[RequestedOutput] | None = Field(default=None, max_length=16)


@dataclass(frozen=True)
class OutputTensor:
    """One response tensor: ``FP32`` numbers or ``BYTES`` strings."""

    name: str
    datatype: str
    shape: list[int]
    data: list[Any]

    def binary(self) -> bytes:
        """The tensor's binary form (see the module docstring)."""
        if self.datatype == "BYTES":
            encoded = [str(item).encode() for item in self.data]
            return b"".join(struct.pack("<I", len(item)) + item for item in encoded)
        return np.asarray(self.data, dtype=DATATYPES[self.datatype]).tobytes()


def parse_infer_request(
    body: bytes, header_length: str | None
) -> tuple[InferRequest, dict[str, NDArray[Any]]]:
    """The request object and each input's values, shaped as the input's ``shape`` says.

    Args:
        body: The HTTP body.
        header_length: The ``Inference-Header-Content-Length`` header, if sent.

    Raises:
        InputError: Malformed JSON, a NaN or infinite value, an unaccepted datatype,
            values that do not fill the shape, or binary sizes that do not add up (400).
    """
    json_size = _header_size(header_length, len(body))
    document = _load_json(body[:json_size])
    try:
        request = InferRequest.model_validate(document)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in item['loc'])}: {item['msg']}" for item in error.errors()[:5]
        )
        raise InputError("inference request", problems, "fix the request and retry") from None
    binary = memoryview(body)[json_size:]
    arrays: dict[str, NDArray[Any]] = {}
    offset = 0
    for tensor in request.inputs:
        if tensor.name in arrays:
            raise InputError(f"input {tensor.name}", "it is sent twice", "send it once")
        size = (tensor.parameters or {}).get("binary_data_size")
        if size is None:
            values = _json_values(tensor)
        else:
            if (
                not isinstance(size, int) or isinstance(size, bool) or size < 0
                or offset + size > len(binary) or tensor.data is not None
            ):  # fmt: skip
                raise InputError(
                    f"input {tensor.name}",
                    f"binary_data_size {size!r} does not match the {len(binary) - offset} "
                    "binary bytes left (or data is also given)",
                    f"send the raw tensor after the JSON and set {HEADER_LENGTH}",
                )
            values = _binary_values(tensor, bytes(binary[offset : offset + size]))
            offset += size
        arrays[tensor.name] = _shaped(tensor, values)
    if offset != len(binary):
        raise InputError(
            "inference request",
            f"{len(binary) - offset} binary bytes follow the JSON that no input claims",
            "set binary_data_size on each binary input",
        )
    return request, arrays


def encode_infer_response(
    request: InferRequest, response: dict[str, Any], outputs: list[OutputTensor]
) -> tuple[bytes, int | None]:
    """The response body, and its JSON length when it carries binary tensors.

    Only the outputs the request names are sent (all of them when it names none), each as
    JSON ``data`` or as binary as the request asks.

    Raises:
        InputError: The request names an output the model does not have.
    """
    by_name = {tensor.name: tensor for tensor in outputs}
    default_binary = bool((request.parameters or {}).get("binary_data_output", False))
    wanted = request.outputs or [RequestedOutput(name=name) for name in by_name]
    tensors: list[dict[str, Any]] = []
    blobs: list[bytes] = []
    for output in wanted:
        tensor = by_name.get(output.name)
        if tensor is None:
            raise InputError(
                f"output {output.name}", "the model has no such output", f"ask for {list(by_name)}"
            )
        described = {"name": tensor.name, "datatype": tensor.datatype, "shape": tensor.shape}
        if bool((output.parameters or {}).get("binary_data", default_binary)):
            blob = tensor.binary()
            blobs.append(blob)
            tensors.append({**described, "parameters": {"binary_data_size": len(blob)}})
        else:
            tensors.append({**described, "data": tensor.data})
    text = json.dumps({**response, "outputs": tensors}, allow_nan=False).encode()
    if not blobs:
        return text, None
    return text + b"".join(blobs), len(text)


def _header_size(header_length: str | None, body_size: int) -> int:
    if header_length is None:
        return body_size
    if not header_length.strip().isdigit() or int(header_length) > body_size:
        raise InputError(
            HEADER_LENGTH,
            f"{header_length!r} is not a JSON length within the {body_size}-byte body",
            "send the byte length of the JSON part",
        )
    return int(header_length)


def _refuse_constant(name: str) -> float:
    raise InputError(
        "inference request",
        f"it holds {name}, not a finite number",
        "send finite values (a NaN or infinite pixel cannot be analysed)",
    )


def _load_json(data: bytes | memoryview) -> Any:
    try:
        return json.loads(bytes(data), parse_constant=_refuse_constant)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputError(
            "inference request",
            f"the body is not JSON ({type(error).__name__} at byte {getattr(error, 'pos', 0)})",
            f"send the JSON inference request (binary tensors after it, with {HEADER_LENGTH})",
        ) from None


def _json_values(tensor: InputTensor) -> NDArray[Any]:
    if not isinstance(tensor.data, list):
        raise InputError(
            f"input {tensor.name}", "it has no data array", "send data, or binary_data_size"
        )
    try:
        values = np.asarray(tensor.data)
        numbers = values.dtype.kind in "iuf" or values.size == 0
    except ValueError:  # ragged nesting
        numbers = False
    if not numbers:
        raise InputError(
            f"input {tensor.name}",
            "its data are not all numbers in a regular nesting",
            f"send numbers ({_accepted_datatype(tensor)})",
        )
    flat = values.reshape(-1).astype(np.float64)
    if not np.isfinite(flat).all():  # 1e400 parses as infinity
        _refuse_constant("a number too large for a float")
    return flat


def _accepted_datatype(tensor: InputTensor) -> str:
    if tensor.datatype not in DATATYPES:
        raise InputError(
            f"input {tensor.name}",
            f"datatype {tensor.datatype!r} is not accepted",
            f"send one of {_ACCEPTED}",
        )
    return tensor.datatype


def _binary_values(tensor: InputTensor, data: bytes) -> NDArray[Any]:
    dtype = DATATYPES[_accepted_datatype(tensor)]
    if len(data) % dtype.itemsize:
        raise InputError(
            f"input {tensor.name}",
            f"{len(data)} bytes are not whole {tensor.datatype} values",
            f"send {dtype.itemsize}-byte little-endian values",
        )
    values = np.frombuffer(data, dtype=dtype)
    if values.dtype.kind == "f" and not np.isfinite(values).all():
        _refuse_constant("NaN or infinity")
    return values


def _shaped(tensor: InputTensor, values: NDArray[Any]) -> NDArray[Any]:
    """Check the values against the datatype's range and the shape; as that datatype."""
    datatype = _accepted_datatype(tensor)
    if any(side < 0 for side in tensor.shape) or math.prod(tensor.shape) != values.size:
        raise InputError(
            f"input {tensor.name}",
            f"{values.size} values do not fill shape {tensor.shape}",
            "send one value per element, row-major",
        )
    if values.dtype.kind == "f" and datatype != "FP32" and values.size:
        info = np.iinfo(DATATYPES[datatype])
        if (values != np.round(values)).any() or values.min() < 0 or values.max() > info.max:
            raise InputError(
                f"input {tensor.name}",
                f"{datatype} values must be whole numbers from 0 to {info.max}",
                "send integers in range, or FP32 in [0, 1]",
            )
    return values.astype(DATATYPES[datatype], copy=False).reshape(tensor.shape)
