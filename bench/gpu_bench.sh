#!/usr/bin/env bash
# The GPU serving bench (PyTorch path per batch size 1-64, the engine with 8 cameras at 30 fps) on the
# GPU machine (one H200, 16 cores) within ~8 minutes; figures to OUT_DIR/gpu_bench.json and .log.
#
# Usage: bash bench/gpu_bench.sh OUT_DIR [--cpu-smoke] [--pack DIR] [more: python3 bench/gpu_bench.py run -h]
#
# Needs the pack built here first: python bench/gpu_bench.py pack (-> build/gpu-bench, carried to the
# device: the wheels the GPU image lacks and some real boards). Installs the carried wheels offline,
# puts the polars stand-in first on PYTHONPATH (Ultralytics imports it), then runs
# bench/gpu_bench.py run. --cpu-smoke: the same path on the CPU, tiny (the test suite runs it).
# PYTHON picks the interpreter (default python3). See bench/README.md, "GPU serving".
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ $# -lt 1 ] || [[ "$1" == -* ]]; then
  sed -n '2,10p' "${BASH_SOURCE[0]}" >&2
  exit 2
fi
out="$1"
shift
pack="$repo/build/gpu-bench"
prev=""
for arg in "$@"; do  # only --pack matters here; gpu_bench.py parses the rest
  [ "$prev" = "--pack" ] && pack="$arg"
  prev="$arg"
done
mkdir -p "$out"
out="$(cd "$out" && pwd)"
PY="${PYTHON:-python3}"

main() {
  echo "[gpu_bench.sh] $(date -u +%FT%TZ) $(hostname) cpus $(nproc) python $("$PY" -c 'import sys; print(sys.version.split()[0])')"
  if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader || true
  fi
  shopt -s nullglob
  local wheels=("$pack"/*.whl)
  shopt -u nullglob
  if [ ${#wheels[@]} -gt 0 ]; then
    local site="${TWINSPECT_GPU_SITE:-${TMPDIR:-/tmp}/twinspect-gpu-bench-site}"
    echo "[gpu_bench.sh] installing ${#wheels[@]} wheels offline into $site"
    PIP_ROOT_USER_ACTION=ignore "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
      --disable-pip-version-check --upgrade --target "$site" "${wheels[@]}"
    export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
  fi
  export PYTHONPATH="$repo/bench/gpu_stubs:$repo${PYTHONPATH:+:$PYTHONPATH}"
  export PYTHONUNBUFFERED=1 MPLBACKEND=Agg YOLO_OFFLINE=1
  exec timeout --signal=INT --kill-after=20 470 "$PY" -u "$repo/bench/gpu_bench.py" run --out "$out" "$@"
}

main "$@" 2>&1 | tee -a "$out/gpu_bench.log"
