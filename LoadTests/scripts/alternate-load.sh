#!/usr/bin/env bash
# Compares two relay builds on `make load`'s and `make load-cross-node`'s scenarios, alternating
# them so both see the same machine. Each directory holds a release `relay` and `relay-load`
# (for example copies of .build/release from two commits). Prints one summary line per run; the
# relay's CPU-seconds over the round trips is the figure to compare.
#
#   LoadTests/scripts/alternate-load.sh BEFORE_DIR AFTER_DIR [ROUNDS]
set -euo pipefail
before=${1:?before directory}; after=${2:?after directory}; rounds=${3:-3}
out=$(mktemp -d)
for round in $(seq 1 "$rounds"); do
  for dir in "$before" "$after"; do
    RELAY_LOAD_SESSIONS=200 RELAY_LOAD_MESSAGES_PER_SESSION=20 RELAY_LOAD_SETUP_CONCURRENCY=32 \
      RELAY_LOAD_ROUNDTRIP_TIMEOUT_MS=3000 RELAY_LOAD_P95_BUDGET_MS=1000 \
      RELAY_LOAD_RESULTS_PATH="$out/load-$round.json" "$dir/relay-load" load 2>&1 | grep '^load:' | sed "s|^|$dir round $round |"
    RELAY_LOAD_RESULTS_PATH="$out/cross-$round.json" "$dir/relay-load" cross-node 2>&1 | grep '^cross-node:' | sed "s|^|$dir round $round |"
  done
done
rm -rf "$out"
