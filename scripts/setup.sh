#!/usr/bin/env bash
# Set up everything twinspect needs on a fresh machine of this kind, idempotently.
#
# - Python environment: a virtual environment keyed by the hash of requirements.lock (the
#   single source of the dependency versions; pyproject.toml lists the same packages loosely),
#   kept outside the checkout (default ~/.cache/twinspect/venvs/<hash>) so that a fresh
#   clone (CI) reuses it instead of reinstalling gigabytes; the project itself is
#   installed editable into it, pointing at this checkout. requirements-test.lock's test-only
#   tools (pytest-xdist) are installed into the same environment, which they do not rebuild.
# - Debian packages listed in scripts/apt-packages.txt (ffmpeg for stream tests, chromium
#   for browser tests and screenshots), installed with apt-get when missing.
# - GPU boxes: where an NVIDIA GPU answers `nvidia-smi -L` (or TWINSPECT_GPU=1; TWINSPECT_GPU=0
#   forces the CPU variant) the environment installs requirements.lock with onnxruntime replaced by
#   onnxruntime-gpu of the same version (1.31.1 is built for CUDA 13, whose nvidia-* runtime packages
#   the lock already pins for torch), so ONNX Runtime gets the CUDA and TensorRT providers; the
#   product picks TensorRT -> CUDA -> CPU by itself. The two wheels install the same `onnxruntime`
#   package and must never be installed together. `setup.sh --print-lock` prints the lock this
#   machine would install and exits.
# Prints the path of the environment's bin/ folder on its last line.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

log() { echo "[setup] $*" >&2; }

want_gpu() {
  case "${TWINSPECT_GPU:-auto}" in
    1|yes|true) return 0 ;;
    0|no|false) return 1 ;;
  esac
  command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L 2>/dev/null | grep -q '^GPU '
}

# the lock this machine installs: requirements.lock, or its GPU variant
lock_file="$repo/requirements.lock"
if want_gpu; then
  lock_file="$(mktemp -t twinspect-gpu-lock.XXXXXX)"
  trap 'rm -f "$lock_file"' EXIT
  sed 's/^onnxruntime==/onnxruntime-gpu==/' "$repo/requirements.lock" > "$lock_file"
  grep -q '^onnxruntime-gpu==' "$lock_file" || { log "requirements.lock pins no onnxruntime"; exit 1; }
fi
if [ "${1:-}" = "--print-lock" ]; then
  cat "$lock_file"
  exit 0
fi

apt_file="$repo/scripts/apt-packages.txt"
if [ -s "$apt_file" ]; then
  missing=()
  while read -r pkg; do
    [ -z "$pkg" ] || [[ "$pkg" == \#* ]] && continue
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done < "$apt_file"
  if [ "${#missing[@]}" -gt 0 ]; then
    log "installing Debian packages: ${missing[*]}"
    sudo_cmd=""; [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}" >&2
  fi
fi

lock_hash="$(sha256sum "$lock_file" | cut -c1-16)"
venvs="$HOME/.cache/twinspect/venvs"
venv="${TWINSPECT_VENV:-$venvs/$lock_hash}"
stamp="$venv/.twinspect-lock"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$lock_hash" ]; then
  log "creating Python environment $venv (first time: a few minutes, ~6.5 GB with CUDA-enabled torch)"
  start=$(date +%s)
  rm -rf "$venv"
  python3 -m venv "$venv"
  [ "$lock_file" = "$repo/requirements.lock" ] || log "NVIDIA GPU found: onnxruntime-gpu instead of onnxruntime"
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$lock_file" >&2
  echo "$lock_hash" > "$stamp"
  log "environment ready in $(( $(date +%s) - start )) s, $(du -sh "$venv" | cut -f1)"
  if [ -z "${TWINSPECT_VENV:-}" ]; then  # environments of older locks are several GB each: drop them
    for old in "$venvs"/*; do [ "$old" = "$venv" ] || rm -rf "$old"; done
  fi
else
  log "reusing Python environment $venv (${lock_file##*/} unchanged)"
fi

# Test-only tools (requirements-test.lock) layered onto the environment, without rebuilding it.
test_lock="$repo/requirements-test.lock"
test_hash="$(sha256sum "$test_lock" | cut -c1-16)"
test_stamp="$venv/.twinspect-test-lock"
if [ ! -f "$test_stamp" ] || [ "$(cat "$test_stamp")" != "$test_hash" ]; then
  log "installing the test tools of ${test_lock##*/} into $venv"
  if "$venv/bin/pip" install -q --disable-pip-version-check -r "$test_lock" >&2; then
    echo "$test_hash" > "$test_stamp"
  else  # only TWINSPECT_TEST_WORKERS needs them: the suite still runs in one process
    log "warning: could not install ${test_lock##*/}; TWINSPECT_TEST_WORKERS needs pytest-xdist"
  fi
fi

# Point the editable install at this checkout (cheap when it already does).
here="$("$venv/bin/python" -P -c 'import api, pathlib; print(pathlib.Path(api.__file__).resolve().parents[1])' 2>/dev/null || true)"
if [ "$here" != "$repo" ]; then
  log "installing twinspect (editable) from $repo"
  "$venv/bin/pip" install -q --disable-pip-version-check --no-deps --no-build-isolation -e "$repo" >&2
fi
echo "$venv/bin"
