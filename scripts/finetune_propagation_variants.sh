#!/usr/bin/env bash
# Fine-tune the four shipped propagation networks (ST, STL, STN, STC) with one equal step budget
# on the maps of the current default membrane model, for an ablation with equal fine-tuning.
#
# Each starts from its shipped weights (--init-from, validated before the first step, so the
# export keeps them unless training beats them on the validation sequences, which are the same
# for all four), sees ISBI 2012 slices 0-19, the gala train block and fresh synthetic stacks
# with maps predicted at each stack's pixel size, and takes STEPS steps with a cosine decay from
# LR (no synthetic-only pretraining, no teacher forcing: the shipped weights are past both).
# The defaults are the CPU run behind docs/propagation.md (2 threads, 64 px crops).
#
#   scripts/finetune_propagation_variants.sh [OUT] [more train-propagation options]
#
# DATA (default ../shared/data), PYTHON (default .venv/bin/python), VARIANTS (default all four),
# STEPS (default 400), LR (default 3e-4).
set -euo pipefail
cd "$(dirname "$0")/.."
data=${DATA:-../shared/data}
py=${PYTHON:-.venv/bin/python}
out=${1:-runs/finetune}
shift || true
for variant in ${VARIANTS:-st stl stn stc}; do
    mkdir -p "$out/$variant"
    nice -n 10 "$py" -m napari_emseg train propagation \
        --data "isbi2012=$data/isbi2012" "gala-train=$data/gala_fibsem_medulla" "synthetic=2" \
        --variant "$variant" --init-from "cconvlstm-$variant" --name "cconvlstm-$variant" \
        --steps "${STEPS:-400}" --schedule time --time-budget-min 120 --lr "${LR:-3e-4}" \
        --pretrain-fraction 0 --teacher-fraction 0 \
        --crop 64 --max-objects 6 --length 5 --batch-size 4 --val-every 100 --threads 2 \
        --out "$out/$variant" "$@" 2>&1 | tee "$out/$variant/train.log"
done
