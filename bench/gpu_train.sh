#!/usr/bin/env bash
# Train the reference-aware defect models (YOLOv8n from the shipped weights, YOLOv8s from scratch)
# on the GPU machine (one H200, 16 cores) within ~8 minutes, and write them to OUT_DIR.
#
# Usage: bash bench/gpu_train.sh OUT_DIR [--epochs N] [--budget-s S] [--models n,s] [--cpu-smoke]
#                                        [--pack DIR] [--work DIR] [more: python3 bench/gpu_train.py run -h]
#
# Needs the pack built here first: python bench/gpu_pack.py (-> build/gpu-pack, carried to the
# device). Installs the carried Ultralytics wheel offline, puts the polars stand-in first on
# PYTHONPATH, then runs bench/gpu_train.py (dataset rebuilt with our importer, both trainings side
# by side under one deadline). --cpu-smoke: the same path on CPU, 1 epoch at imgsz 64, YOLOv8n only.
# PYTHON picks the interpreter (default python3). See bench/README.md, "GPU training".
set -euo pipefail
GPU_TRAIN_T0="$(date +%s)"
export GPU_TRAIN_T0
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ $# -lt 1 ] || [[ "$1" == -* ]]; then
  sed -n '2,12p' "${BASH_SOURCE[0]}" >&2
  exit 2
fi
out="$1"
shift
pack="$repo/build/gpu-pack"
prev=""
for arg in "$@"; do  # only --pack matters here; gpu_train.py parses the rest
  [ "$prev" = "--pack" ] && pack="$arg"
  prev="$arg"
done
mkdir -p "$out"
out="$(cd "$out" && pwd)"
PY="${PYTHON:-python3}"

main() {
  echo "[gpu_train.sh] $(date -u +%FT%TZ) $(hostname) cpus $(nproc) python $("$PY" -c 'import sys; print(sys.version.split()[0])')"
  if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
  fi
  shopt -s nullglob
  local wheels=("$pack"/*.whl)
  shopt -u nullglob
  if [ ${#wheels[@]} -gt 0 ]; then
    local site="${TWINSPECT_GPU_SITE:-${TMPDIR:-/tmp}/twinspect-gpu-site}"
    echo "[gpu_train.sh] installing ${wheels[*]##*/} offline into $site"
    PIP_ROOT_USER_ACTION=ignore "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
      --disable-pip-version-check --upgrade --target "$site" "${wheels[@]}"
    export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
  fi
  # polars is not on the GPU image: a stand-in (bench/gpu_stubs/polars) goes first, here too
  export PYTHONPATH="$repo/bench/gpu_stubs:$repo${PYTHONPATH:+:$PYTHONPATH}"
  export PYTHONUNBUFFERED=1 MPLBACKEND=Agg
  "$PY" - <<'EOF'
import importlib.metadata, importlib.util, polars
want, have = "8.4.190", importlib.metadata.version("ultralytics")
print(f"[gpu_train.sh] ultralytics {have} from {importlib.util.find_spec('ultralytics').origin}; "
      f"polars {polars.__version__}")
if have != want:
    raise SystemExit(f"ultralytics {have} is not the pinned {want}")
if not polars.__version__.endswith("twinspect-stub"):
    raise SystemExit("the polars stand-in is not first on PYTHONPATH")
EOF
  exec "$PY" -u "$repo/bench/gpu_train.py" run --out "$out" "$@"
}

main "$@" 2>&1 | tee -a "$out/gpu_train.log"
