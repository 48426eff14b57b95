#!/usr/bin/env bash
# Runs a command with a Redis and a NATS server on loopback ports, started here unless the
# caller already provides RELAY_TEST_REDIS_URL / RELAY_TEST_NATS_URL, and RELAY_TEST_NOISE_PYTHON
# from scripts/noise-python.sh unless given. Stops what it started.
set -euo pipefail

workdir=$(mktemp -d "${TMPDIR:-/tmp}/relay-test-services.XXXXXX")
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$workdir"
}
trap cleanup EXIT INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

wait_for_port() {
  local port=$1 name=$2
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "with-test-services: $name did not start on 127.0.0.1:$port" >&2
  exit 1
}

if [ -z "${RELAY_TEST_REDIS_URL:-}" ]; then
  port=$(free_port)
  redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$workdir" \
    --logfile "$workdir/redis.log" &
  pids+=($!)
  wait_for_port "$port" redis-server
  export RELAY_TEST_REDIS_URL="redis://127.0.0.1:$port"
fi
if [ -z "${RELAY_TEST_NATS_URL:-}" ]; then
  port=$(free_port)
  nats-server -a 127.0.0.1 -p "$port" >"$workdir/nats.log" 2>&1 &
  pids+=($!)
  wait_for_port "$port" nats-server
  export RELAY_TEST_NATS_URL="nats://127.0.0.1:$port"
fi
# Tests that stop and restart a server start their own from these binaries.
export RELAY_TEST_REDIS_SERVER="${RELAY_TEST_REDIS_SERVER:-$(command -v redis-server)}"
export RELAY_TEST_NATS_SERVER="${RELAY_TEST_NATS_SERVER:-$(command -v nats-server)}"
# The Noise interoperability tests' Python with noiseprotocol (a venv under .build, made once).
if [ -z "${RELAY_TEST_NOISE_PYTHON:-}" ]; then
  RELAY_TEST_NOISE_PYTHON=$(bash "$(dirname "$0")/noise-python.sh")
fi
export RELAY_TEST_NOISE_PYTHON
echo "with-test-services: redis=$RELAY_TEST_REDIS_URL nats=$RELAY_TEST_NATS_URL noise-python=$RELAY_TEST_NOISE_PYTHON"
"$@"
