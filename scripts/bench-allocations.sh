#!/usr/bin/env bash
# The allocation benchmarks (Benchmarks/RelayBenchmarks) against their checked-in thresholds
# (Benchmarks/Thresholds): mallocs per frame are counted, not timed, so the check holds on a busy
# machine. Exit 1 when any count is above its threshold. A count below its threshold passes with a
# reminder to lower it: `bash scripts/bench-allocations.sh update` rewrites the thresholds.
# `bash scripts/bench-allocations.sh table` also writes the run's full table (p0-p100 per
# benchmark) to output/bench/allocations.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p output/bench

if [ "${1:-check}" = update ]; then
  swift package --allow-writing-to-package-directory benchmark thresholds update \
    --target RelayBenchmarks --path Benchmarks/Thresholds --no-progress
  exit 0
fi

if [ "${1:-check}" = table ]; then
  swift package benchmark --target RelayBenchmarks --no-progress >output/bench/allocations.txt 2>&1
  sed -n '/^RelayBenchmarks/,$p' output/bench/allocations.txt
fi

for file in Benchmarks/Thresholds/*.p90.json; do
  name=${file##*/RelayBenchmarks.}
  echo "threshold ${name%.p90.json}: $(tr -d ' \n{}"' <"$file")"
done
log=output/bench/allocations-check.txt
status=0
swift package benchmark thresholds check --target RelayBenchmarks --path Benchmarks/Thresholds \
  --no-progress >"$log" 2>&1 || status=$?
# The table and the verdict, without the build chatter.
sed -n '/^Running Benchmarks/,$p' "$log" | grep -v '^\s*$' || true
if grep -q "is EQUAL to the defined thresholds" "$log"; then
  echo "bench-allocations: every per-frame path allocates exactly its threshold"
  exit 0
fi
if grep -q "is BETTER than the defined thresholds" "$log" && ! grep -q "WORSE" "$log"; then
  echo "bench-allocations: fewer allocations than the thresholds; lower them with: bash scripts/bench-allocations.sh update"
  exit 0
fi
echo "bench-allocations: a per-frame path allocates more than its threshold (exit $status); full output in $log" >&2
exit 1
