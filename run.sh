#!/usr/bin/env bash
# The two commands of twinspect on a fresh machine:
#   ./run.sh demo   set everything up, then run the main job (twinspect demo)
#   ./run.sh test   set everything up, then run the test suite
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$repo"
bin="$(bash scripts/setup.sh | tail -n 1)"
export PATH="$bin:$PATH"
deeppcb="${TWINSPECT_DEEPPCB:-$repo/../shared/datasets/deeppcb-trainval}"

case "${1:-}" in
  demo)
    shift
    exec twinspect demo --boards "$deeppcb" "$@"
    ;;
  test)
    shift
    bash scripts/services.sh
    # TWINSPECT_TEST_WORKERS=N: N pytest-xdist workers, whole files per worker (module fixtures
    # stay shared). Not the default yet: see README "The suite".
    workers=()
    [ -z "${TWINSPECT_TEST_WORKERS:-}" ] || workers=(-n "$TWINSPECT_TEST_WORKERS" --dist loadfile)
    exec python -m pytest ${workers[@]+"${workers[@]}"} "$@"
    ;;
  *)
    echo "usage: ./run.sh demo|test [args...]" >&2
    exit 2
    ;;
esac
