#!/usr/bin/env bash
# Train the membrane architectures side by side on one GPU, then score each on ISBI 2012 20-29.
#
#   scripts/gpu_membrane_suite.sh DATA_DIR RUNS_DIR MINUTES
#
# DATA_DIR holds isbi2012/ (train-volume.tif, train-labels.tif) and, for the run with extra data,
# drosophila_vnc_gerhard_sstem/ (stack1-raw.tif, stack1-membranes.tif). Every run trains on ISBI
# slices 0-17, picks its best epoch on 18-19 and gets the same wall-clock budget on the same GPU
# (the runs share it, so step counts differ: each run's metrics.jsonl has them). Afterwards
# scripts/evaluate_membrane.py scores every best checkpoint on the held-out slices 20-29 with the
# GPU timed; tables land in RUNS_DIR/eval/.
set -euo pipefail
data=$1
runs=$2
minutes=$3
mkdir -p "$runs/eval"
py=${PYTHON:-python3}

train() {
    local name=$1
    shift
    "$py" -m napari_emseg train membrane --data "$data/isbi2012" --device "${DEVICE:-cuda}" \
        --workers 2 --threads 1 --batch-size 16 --crop 256 --lr 2e-3 --warmup-steps 300 \
        --epochs 1000 --steps-per-epoch 400 --time-budget-min "$minutes" \
        --name "$name" --out "$runs/$name" "$@" >"$runs/$name.log" 2>&1 &
}

train fusionnet-w0.375-isbi --model fusionnet --width 0.375
train fusionnet-w0.375-isbi-vnc --model fusionnet --width 0.375 \
    --extra-data "$data/drosophila_vnc_gerhard_sstem" --extra-fraction 0.25
train fusionnet-w0.5-isbi --model fusionnet --width 0.5
train fusionnet-w1-isbi --model fusionnet --width 1.0
# Equal compute: FusionNet 0.25 and U-Net 0.375 both cost about 52-54 GFLOPs per 512x512 slice.
train fusionnet-w0.25-isbi --model fusionnet --width 0.25
train unet-w0.375-isbi --model unet --width 0.375
train fakhry-w0.5-isbi --model fakhry --width 0.5
wait

for run in "$runs"/*/; do
    name=$(basename "$run")
    [ "$name" = eval ] && continue
    "$py" scripts/evaluate_membrane.py "$run/best.pt" --data "$data" --device "${DEVICE:-cuda}" \
        --no-ridge --repeats 5 --threads 2 -o "$runs/eval/$name.md" >"$runs/eval/$name.log" 2>&1 &
done
wait
