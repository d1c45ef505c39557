"""One result contract: the CLI, ``/v1`` and OIP v2 give the same boxes for the same image."""

from __future__ import annotations

import json

import numpy as np

from insightray.config import data_root
from insightray.imaging import read_image
from tests.serving.api.conftest import DETECTOR, Api
from tests.test_cli_detect import cli

TB_IMAGE = data_root() / "cxr" / "tbx11k" / "images" / "tb0020.jpg"


def _triples(detections: list[dict[str, object]], name: str) -> list[tuple[object, ...]]:
    return [(d[name], d["score"], tuple(d["box"])) for d in detections]  # type: ignore[arg-type]


def test_cli_v1_and_oip_give_the_same_boxes_for_the_same_image(api: Api) -> None:
    code, stdout, _ = cli("detect", str(TB_IMAGE), "--json")
    assert code == 0
    from_cli = _triples(json.loads(stdout)["detections"], "class_name")
    assert from_cli, "the TBX11K image has tuberculosis boxes"

    headers = api.as_role("clinician")
    study = api.upload(TB_IMAGE)
    url = f"/v1/studies/{study['id']}/analyze"
    body = api.client.post(url, json={"task": "cxr"}, headers=headers).json()
    assert _triples(body["findings"], "class_name") == from_cli
    assert [f["label"] for f in body["findings"]] == [f["class_name"] for f in body["findings"]]

    pixels = read_image(TB_IMAGE).pixels
    tensor = {
        "name": "image",
        "shape": list(pixels.shape),
        "datatype": "FP32",
        "data": pixels.astype(np.float64).ravel().tolist(),
    }
    response = api.client.post(
        f"/v2/models/{DETECTOR}/infer", json={"inputs": [tensor]}, headers=headers
    )
    assert response.status_code == 200, response.text
    outputs = {o["name"]: o["data"] for o in response.json()["outputs"]}
    boxes = np.reshape(outputs["boxes"], (-1, 4)).tolist()
    from_oip = [
        (label, score, tuple(box))
        for label, score, box in zip(outputs["labels"], outputs["scores"], boxes, strict=True)
    ]
    assert from_oip == from_cli
