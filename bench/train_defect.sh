#!/usr/bin/env bash
# Reproduce the shipped defect model: import DeepPCB, train YOLOv8n from scratch at 640, register.
# Usage: bash bench/train_defect.sh [--device 0] [--epochs N] [--model yolov8s.yaml]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
src="${TWINSPECT_DEEPPCB:-../shared/datasets/deeppcb-trainval}"
[ -d datasets/deeppcb/images ] || twinspect datasets import deeppcb "$src" --out datasets/deeppcb
twinspect train --task defect --data datasets/deeppcb/data.yaml --imgsz 640 --batch 16 --epochs 36 \
  --name defect-yolov8n-e36 "$@"
