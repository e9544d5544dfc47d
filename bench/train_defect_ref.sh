#!/usr/bin/env bash
# Reproduce the shipped golden-reference defect model (defect-yolov8n v3) on CPU (or a GPU: --device 0):
#   1. import DeepPCB as reference input (board registered to its golden, golden, |difference|);
#   2. v2: 12 epochs from the plain-image v1 (its weights ship in weights/defect-yolov8n-v1), last 3 without mosaic;
#   3. v3: 14 more epochs from v2's best.pt, last 4 without mosaic, no warm-up;
#   4. register v3 (export, INT8, eval, card); registering never changes what is served:
#      `twinspect models activate defect-yolov8n:N` does.
# On 2 CPU cores each epoch takes 6-7.5 min (about 3 h in all). Runs live in the data dir, outside git,
# and are resumable: a finished step is skipped; to finish an interrupted one, run its `twinspect train` line
# by hand with --resume.
# Usage: bash bench/train_defect_ref.sh [--device 0]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
src="${TWINSPECT_DEEPPCB:-../shared/datasets/deeppcb-trainval}"
data_dir="${TWINSPECT_DATA_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/twinspect}"
ds=datasets/deeppcb-ref/data.yaml
[ -d datasets/deeppcb-ref/images ] || twinspect datasets import deeppcb "$src" --out datasets/deeppcb-ref --input reference
done_epochs() { [ -f "$data_dir/runs/$1/results.csv" ] && echo $(($(wc -l < "$data_dir/runs/$1/results.csv") - 1)) || echo 0; }
common=(--task defect --data "$ds" --imgsz 640 --batch 16 --no-register --data-dir "$data_dir")
[ "$(done_epochs defect-ref-v2)" -ge 12 ] ||
  twinspect train "${common[@]}" --model weights/defect-yolov8n-v1/model.pt --epochs 12 --close-mosaic 3 \
    --name defect-ref-v2 "$@"
[ "$(done_epochs defect-ref-v3)" -ge 14 ] ||
  twinspect train "${common[@]}" --model "$data_dir/runs/defect-ref-v2/weights/best.pt" --epochs 14 \
    --close-mosaic 4 --warmup-epochs 0 --name defect-ref-v3 "$@"
twinspect models register "$data_dir/runs/defect-ref-v3" --task defect --data "$ds"
