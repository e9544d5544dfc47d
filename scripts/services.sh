#!/usr/bin/env bash
# Start the local servers the tests talk to, if they are down (PostgreSQL 5432, Mosquitto 1883,
# NATS JetStream 4222). Idempotent; prints one line per service.
set -uo pipefail

up() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_up() {
  for _ in $(seq 1 50); do up "$1" && return 0; sleep 0.2; done
  return 1
}

ensure() {
  local name="$1" port="$2"; shift 2
  if up "$port"; then echo "[services] $name: up on $port"; return 0; fi
  echo "[services] $name: down on $port, starting"
  "$@" >/dev/null 2>&1 || true
  if wait_up "$port"; then echo "[services] $name: started on $port"; else echo "[services] $name: FAILED to start on $port" >&2; return 1; fi
}

status=0
ensure postgresql 5432 bash -c 'pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql | head -n1) main start' || status=1
ensure mosquitto 1883 mosquitto -d -c /etc/mosquitto/mosquitto.conf || status=1
ensure nats 4222 start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- \
  -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log || status=1
exit $status
