#!/usr/bin/env bash
# Fine-tune the shipped default membrane network (fusionnet-w0.375-isbi) on three modalities:
# ISBI 2012 slices 0-17 (ssTEM, 4 nm), the gala FIB-SEM medulla *train* block slices 0-39
# (10 nm, upsampled 2.5x to 4 nm; boundaries from its instance labels) and the Gerhard VNC stack
# (ssTEM, 4.6 nm -> 4 nm), with a random zoom of [0.8, 1.25] per crop around each source's size.
# The best epoch is chosen on the mean V_rand of ISBI slices 18-19 and gala train slices 40-49.
# Never used: ISBI slices 20-29 and the gala *test* block (the held-out sets).
#
#   scripts/train_multimodal_membrane.sh [OUT] [more train-membrane options]
#
# The defaults are the CPU run of docs/results/membrane-multimodal.md (2 threads, batch 4,
# 35 minutes). Later options override earlier ones, so on a GPU for example:
#
#   scripts/train_multimodal_membrane.sh runs/multimodal-gpu --device cuda --workers 14 \
#       --batch-size 16 --lr 1e-3 --steps-per-epoch 500 --epochs 1000 --time-budget-min 8
#
# DATA (default ../shared/data) holds isbi2012/, gala_fibsem_medulla/ and
# drosophila_vnc_gerhard_sstem/; PYTHON (default .venv/bin/python) runs napari_emseg.
set -euo pipefail
data=${DATA:-../shared/data}
py=${PYTHON:-.venv/bin/python}
out=${1:-runs/fusionnet-w0.375-multimodal}
shift || true
mkdir -p "$out"
nice -n 10 "$py" -m napari_emseg train membrane \
    --data "$data/isbi2012" --train-slices 0-17 --val-slices 18,19 \
    --extra-data "$data/gala_fibsem_medulla@0-39" "$data/drosophila_vnc_gerhard_sstem" \
    --extra-fraction 0.5 \
    --extra-val "$data/gala_fibsem_medulla@40-49" \
    --init-from fusionnet-w0.375-isbi --model fusionnet --width 0.375 --depth 4 \
    --scale-jitter 1.25 --lr 3e-4 --warmup-steps 50 --crop 256 --batch-size 4 \
    --epochs 1000 --steps-per-epoch 150 --time-budget-min 35 \
    --device cpu --threads 2 --workers 0 \
    --name fusionnet-w0.375-multimodal \
    --description "FusionNet, width 0.375, fine-tuned from fusionnet-w0.375-isbi on ISBI 2012 slices 0-17, gala FIB-SEM train slices 0-39 and the Gerhard VNC stack (scale jitter 0.8-1.25); best epoch by mean V_rand on ISBI 18-19 and gala train 40-49." \
    --out "$out" "$@" 2>&1 | tee -a "$out/train.log"
