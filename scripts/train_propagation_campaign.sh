#!/usr/bin/env bash
# One call of the propagation-network training campaign, sized for one device call.
#
# It resumes from the last committed checkpoint (checkpoints/propagation/<variant>/last.pt) or,
# in the first call, starts from the shipped weights (cconvlstm-<variant>, validated before the
# first step so the export keeps them unless training beats them on the validation sequences);
# it trains on every labelled EM stack in the shared data (ISBI 2012 slices 0-19, the gala FIB-SEM
# train block) plus fresh synthetic sequences (new ones at every call), stops after BUDGET
# minutes, and leaves under OUT the new checkpoint, the float16 weights with their card and the
# training log. Commit them with:
#     cp "$OUT/<variant>/last.pt" checkpoints/propagation/<variant>/last.pt
#     cp "$OUT/<variant>/cconvlstm-<variant>.pt" "$OUT/<variant>/cconvlstm-<variant>.propagation.json" \
#        src/napari_emseg/weights/        # when its validation IoU beats the shipped card's
#     cat "$OUT/<variant>/metrics.jsonl" >> checkpoints/propagation/<variant>/metrics.jsonl
#
# On a GPU it uses the campaign's settings (128 px crops, 16 objects, 8-slice sequences, bf16);
# on a CPU the same command runs with small ones. Every variant gets the same settings, so the
# ST/STL/STN/STC ablation compares equal budgets.
#
#   VARIANT=stc BUDGET=8 OUT=$OUT bash scripts/train_propagation_campaign.sh
set -euo pipefail
cd "$(dirname "$0")/.."
VARIANT=${VARIANT:-stc}
BUDGET=${BUDGET:-8}
OUT=${OUT:-runs/campaign}
PY=${PY:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
DATA=${DATA:-}
for candidate in ../shared/data shared/data .gpu-data; do
    [ -z "$DATA" ] && [ -d "$candidate/isbi2012" ] && DATA=$candidate
done
[ -n "$DATA" ] || { echo "no shared data found: set DATA=/path/to/shared/data" >&2; exit 2; }
# On the device machine the package is not installed: run it from the checkout.
"$PY" -c "import napari_emseg" 2>/dev/null || export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
CHECKPOINT=checkpoints/propagation/$VARIANT/last.pt
RESUME=()
if [ -f "$CHECKPOINT" ]; then
    RESUME=(--resume "$CHECKPOINT")
else
    RESUME=(--init-from "cconvlstm-$VARIANT")
fi
# A warm start: no synthetic-only pretraining or teacher forcing (the shipped weights are past
# both), a fine-tuning learning rate; the membrane map is the default model's, as at inference.
WARM=(--pretrain-fraction 0 --teacher-fraction 0 --lr 3e-4)
if "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    SIZE=(--crop 128 --max-objects 16 --length 8 --batch-size 16 --val-every 200 --synthetic-mix 0.2)
    SYNTHETIC=8
else
    SIZE=(--crop 64 --max-objects 6 --length 5 --batch-size 4 --val-every 100 --threads 2)
    SYNTHETIC=2
fi
mkdir -p "$OUT/$VARIANT"
"$PY" -m napari_emseg train propagation \
    --data "isbi2012=$DATA/isbi2012" "gala-train=$DATA/gala_fibsem_medulla" "synthetic=$SYNTHETIC" \
    --variant "$VARIANT" --name "cconvlstm-$VARIANT" --schedule steps --steps 100000 \
    --time-budget-min "$BUDGET" "${WARM[@]}" "${SIZE[@]}" "${RESUME[@]}" --out "$OUT/$VARIANT" \
    2>&1 | tee "$OUT/$VARIANT/train.log"
