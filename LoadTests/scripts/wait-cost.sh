#!/usr/bin/env bash
# What REDIS_MIN_REPLICAS_ACK=1 costs a complete pairing: a Redis master with one replica and a
# NATS server on loopback, then the same release relay with REDIS_MIN_REPLICAS_ACK=1 and =0 in
# turn, ROUNDS times, each measured by `relay-load pairing-rate` one pairing at a time.
#   LoadTests/scripts/wait-cost.sh [ROUNDS] [PAIRINGS]     (after `make harness`)
# Prints, per round and setting, the pairing latency p50, p95 and mean in microseconds.
set -u
cd "$(dirname "$0")/../.."
rounds=${1:-4}
pairings=${2:-400}
work=$(mktemp -d)
base=$((20000 + RANDOM % 20000))
master=$base replica=$((base + 1)) nats=$((base + 2))
cleanup() {
  redis-cli -p "$master" shutdown nosave >/dev/null 2>&1
  redis-cli -p "$replica" shutdown nosave >/dev/null 2>&1
  [ -n "${natspid:-}" ] && kill "$natspid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
redis-server --port "$master" --bind 127.0.0.1 --save '' --daemonize yes --logfile "$work/master.log" --dir "$work"
redis-server --port "$replica" --bind 127.0.0.1 --save '' --daemonize yes --logfile "$work/replica.log" --dir "$work" \
  --dbfilename replica.rdb --replicaof 127.0.0.1 "$master"
nats-server -a 127.0.0.1 -p "$nats" >"$work/nats.log" 2>&1 &
natspid=$!
for _ in $(seq 1 300); do redis-cli -p "$master" info replication | grep -q state=online && break; sleep 0.1; done
for round in $(seq 1 "$rounds"); do
  for ack in 1 0; do
    port=$((base + 10 + ack))
    REDIS_URL="redis://127.0.0.1:$master" REDIS_KEY_PREFIX="waitcost$round$ack" NATS_URL="nats://127.0.0.1:$nats" \
      NATS_SUBJECT_PREFIX="waitcost$round$ack" NATS_HMAC_SECRET=wait-cost-secret-0123456789abcdef0123456789 \
      REDIS_MIN_REPLICAS_ACK=$ack MAX_PAIR_REQUESTS_PER_MINUTE=10000000 HOST=127.0.0.1 PORT=$port LOG_LEVEL=warning \
      .build/release/relay >"$work/relay.log" 2>&1 &
    relay=$!
    for _ in $(seq 1 100); do curl -sf "localhost:$port/readyz" >/dev/null && break; sleep 0.1; done
    RELAY_LOAD_BASE_URL="http://127.0.0.1:$port" RELAY_LOAD_PAIRINGS=$pairings RELAY_LOAD_SETUP_CONCURRENCY=1 RELAY_LOAD_TARGET_RATE=1 \
      RELAY_LOAD_RESULTS_PATH="$work/result.json" RELAY_LOAD_PROGRESS=0 .build/release/relay-load pairing-rate >"$work/out.txt" 2>&1 || { echo "round $round REDIS_MIN_REPLICAS_ACK=$ack failed:"; tail -3 "$work/out.txt"; tail -5 "$work/relay.log"; }
    python3 -c "
import json
r = json.load(open('$work/result.json'))
print('round $round REDIS_MIN_REPLICAS_ACK=$ack', 'p50', r['p50_latency_us'], 'p95', r['p95_latency_us'], 'mean', round(r['mean_latency_us']), 'us')"
    kill "$relay"; wait "$relay" 2>/dev/null
  done
done
