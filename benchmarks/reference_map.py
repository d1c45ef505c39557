"""Score detections with the reference YOLOv5 metric code; run ONLY with the benchmark venv.

    .bench-venv/bin/python benchmarks/reference_map.py detections.npz

The npz holds, per image ``i``: ``gt_<i>`` (M, 5: class, x1, y1, x2, y2) and ``pred_<i>``
(N, 6: x1, y1, x2, y2, score, class), and ``names`` (class names). It prints one JSON object:
mAP@0.5, mAP@0.5:0.95 and AP50 per class from ``yolov5.val.process_batch`` (matching) and
``yolov5.utils.metrics.ap_per_class`` (AP), the reference's own functions, called, not copied
(yolov5 is AGPL-3.0 and lives only in the benchmark venv; see benchmarks/setup_reference.sh).
"""

from __future__ import annotations

import json
import sys

import numpy as np
import torch

if not hasattr(np, "trapz"):  # NumPy 2.4 removed trapz (renamed trapezoid in 2.0); yolov5
    np.trapz = np.trapezoid  # 7.0.14's compute_ap still calls it
from yolov5.utils.metrics import ap_per_class
from yolov5.val import process_batch


def main(path: str) -> None:
    data = np.load(path)
    names = [str(name) for name in data["names"]]
    iouv = torch.linspace(0.5, 0.95, 10)
    stats = []
    count = sum(1 for key in data.files if key.startswith("gt_"))
    for index in range(count):
        labels = torch.from_numpy(data[f"gt_{index}"]).float().reshape(-1, 5)
        detections = torch.from_numpy(data[f"pred_{index}"]).float().reshape(-1, 6)
        if len(detections) == 0:
            if len(labels):
                stats.append(
                    (
                        torch.zeros(0, 10, dtype=torch.bool),
                        torch.zeros(0),
                        torch.zeros(0),
                        labels[:, 0],
                    )
                )
            continue
        correct = process_batch(detections, labels, iouv)
        stats.append((correct, detections[:, 4], detections[:, 5], labels[:, 0]))
    tp, conf, pred_cls, target_cls = (
        torch.cat(x, 0).cpu().numpy() for x in zip(*stats, strict=True)
    )
    *_, ap, ap_class = ap_per_class(tp, conf, pred_cls, target_cls, names=dict(enumerate(names)))
    result = {
        "map50": float(ap[:, 0].mean()),
        "map50_95": float(ap.mean(1).mean()),
        "ap50": {names[int(c)]: float(ap[k, 0]) for k, c in enumerate(ap_class)},
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1])
