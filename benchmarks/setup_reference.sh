#!/usr/bin/env bash
# The reference detector (ultralytics YOLOv5 v7.0, AGPL-3.0, PyPI `yolov5==7.0.14`) lives in its
# own venv, never in Insight Ray's dependencies. Used only by benchmarks/bench_detector_speed.py.
set -euo pipefail
cd "$(dirname "$0")/.."
test -x .bench-venv/bin/python || python3.11 -m venv .bench-venv
.bench-venv/bin/pip install --quiet torch==2.14.1 torchvision==0.29.1 yolov5==7.0.14 \
    onnx==1.23.2 onnxruntime==1.32.0 "setuptools<81"
# Offline trap: ultralytics code fetches Arial.ttf at start; any TTF in place stops that.
mkdir -p ~/.config/Ultralytics
test -f ~/.config/Ultralytics/Arial.ttf || cp /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf \
    ~/.config/Ultralytics/Arial.ttf
