#!/usr/bin/env bash
# One GPU session for the chest X-ray detector (issue 3), within a 10-minute command:
#   1. GPU speed of ours against the reference (benchmarks/bench_detector_gpu.py);
#   2. the default detector trained on TBX11K at the reference budget
#      (configs/detect/tbx11k-yolov5s.yaml: 512 px, 150 epochs, batch 32), with --time-limit
#      so that it ends in the time left; then `insightray evaluate detect --json` on val.
# It expects, in the ignored folder .devcarry/: tbx11k/ (a copy of ../shared/data/cxr/tbx11k),
# site/ (pure-Python packages the GPU machine lacks: pydicom, ensemble_boxes,
# efficientnet_lite_pytorch, torchcrf) and ref/ (the reference `yolov5==7.0.14` and `thop`
# unpacked, with stand-ins for its two install-time imports, ultralytics.utils.checks and
# pkg_resources). Results go to $OUT (default runs/gpu-session).
#   usage: [CONFIG=configs/detect/other.yaml] [BENCH=0] bash benchmarks/gpu_detector_session.sh [TOTAL_SECONDS]
# (BENCH=0 skips step 1, leaving the whole budget to training; ref/ is then not needed)
# (TOTAL_SECONDS, default 570: the whole script's budget inside one 10-minute command)
# A quick check on a CPU first: BENCH_ARGS="--size 64" TRAIN_ARGS="--img 64 --model yolov5n
#   --epochs 2 --device cpu" bash benchmarks/gpu_detector_session.sh
set -u
TOTAL=${1:-570}
OUT=${OUT:-runs/gpu-session}
RUN=runs/gpu-train
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD:$PWD/.devcarry/site${PYTHONPATH:+:$PYTHONPATH}"
PY=${PYTHON:-python3}
nvidia-smi -L
$PY -c "import torch, numpy; print('torch', torch.__version__, 'numpy', numpy.__version__)"

if [ "${BENCH:-1}" != 0 ]; then
    $PY benchmarks/bench_detector_gpu.py --reference-python "$PY" \
        --reference-path .devcarry/ref --rounds 1 ${BENCH_ARGS:-} 2>&1 | tee "$OUT/bench_gpu.txt"
fi

# What is left, less about 50 s for evaluation and copying, is the training's budget.
LIMIT=$(( (TOTAL - SECONDS - 50) / 6 ))  # tenths of a minute
echo "training time limit: ${LIMIT}/10 min (elapsed ${SECONDS} s)"
$PY -m insightray.cli train detect --config "${CONFIG:-configs/detect/tbx11k-yolov5s.yaml}" \
    --data .devcarry/tbx11k/data.yaml --out "$RUN" --workers 12 ${TRAIN_ARGS:-} \
    --time-limit "$(( LIMIT / 10 )).$(( LIMIT % 10 ))" > "$OUT/train.log" 2>&1
echo "training exit $? at ${SECONDS} s"; tail -4 "$OUT/train.log"

$PY -m insightray.cli evaluate detect --data .devcarry/tbx11k/data.yaml --split val \
    --model "$RUN/model" --json | tee "$OUT/eval_val.json"
cp "$RUN"/model/card.safetensors "$OUT"/ 2>/dev/null
tar -cf "$OUT/run.tar" -C "$RUN" --exclude='*.pt' --exclude=card.safetensors .
echo "done at ${SECONDS} s"
