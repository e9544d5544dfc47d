#!/usr/bin/env bash
# Reproduce the shipped part model: render synthetic line frames, train YOLOv8n at 320, register.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
src="${TWINSPECT_DEEPPCB:-../shared/datasets/deeppcb-trainval}"
[ -d datasets/synthline/images ] || twinspect datasets synth-line --boards "$src" --out datasets/synthline
twinspect train --task part --data datasets/synthline/data.yaml --imgsz 320 --batch 16 --epochs 30 \
  --name part-yolov8n-e30 "$@"
