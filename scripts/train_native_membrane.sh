#!/usr/bin/env bash
# The membrane network that serves 4-12 nm pixels at the stack's own resolution (issues #21, #22).
# Fine-tunes the shipped fusionnet-w0.375-multimodal with every crop shown at a pixel size drawn
# log-uniformly from 4-12 nm, each source at its own resolution (ISBI 2012 slices 0-17 at 4 nm,
# the gala FIB-SEM train block slices 0-39 at 10 nm, Gerhard VNC slices 0-17 at 4.6 nm).
# The best epoch has the highest mean V_rand over ISBI 18-19, gala train 40-49 and Gerhard 18-19,
# each at its own size and at 8 and 12 nm. Never used: ISBI 20-29, the gala test block.
#
#   scripts/train_native_membrane.sh [OUT] [more train-membrane options]
#
# Resumable: run it again with the same OUT and it continues from OUT/last.pt (the time budget
# and the cosine schedule are summed over resumes). The defaults are the CPU campaign (one
# thread, so the machine's other core stays free); on a GPU for example:
#
#   scripts/train_native_membrane.sh runs/native-gpu --device cuda --workers 14 \
#       --batch-size 16 --threads 16 --time-budget-min 8
#
# DATA (default ../shared/data), PYTHON (default .venv/bin/python).
set -euo pipefail
data=${DATA:-../shared/data}
py=${PYTHON:-.venv/bin/python}
out=${1:-runs/fusionnet-w0.375-native}
shift || true
mkdir -p "$out"
resume=()
[ -f "$out/last.pt" ] && resume=(--resume "$out/last.pt")
nice -n 10 "$py" -m napari_emseg train membrane \
    --data "$data/isbi2012" --train-slices 0-17 --val-slices 18,19 \
    --extra-data "$data/gala_fibsem_medulla@0-39" "$data/drosophila_vnc_gerhard_sstem@0-17" \
    --extra-fraction 0.5 \
    --extra-val "$data/gala_fibsem_medulla@40-49" "$data/drosophila_vnc_gerhard_sstem@18,19" \
    --pixel-range-nm 4 12 --val-pixel-nm 8 12 \
    --init-from fusionnet-w0.375-multimodal --model fusionnet --width 0.375 --depth 4 \
    --lr 4e-4 --warmup-steps 50 --crop 256 --batch-size 4 \
    --epochs 1000 --steps-per-epoch 150 --time-budget-min 150 \
    --device cpu --threads 1 --workers 0 \
    --name fusionnet-w0.375-native \
    --description "FusionNet, width 0.375, fine-tuned from fusionnet-w0.375-multimodal with every crop at a pixel size drawn from 4-12 nm (ISBI 2012 slices 0-17, gala FIB-SEM train slices 0-39, Gerhard VNC slices 0-17, each at its own resolution); best epoch by mean V_rand on ISBI 18-19, gala train 40-49 and Gerhard 18-19 at their own size and at 8 and 12 nm. Runs stacks of 4-12 nm at their own resolution." \
    --out "$out" "${resume[@]}" "$@" 2>&1 | tee -a "$out/train.log"
