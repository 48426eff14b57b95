#!/usr/bin/env bash
# Builds and runs the test suite once. Nothing is retried: a failure or a hang is a bug to find.
# Every suite carries a Swift Testing time limit, so a test that hangs fails under its own name;
# the whole-run limit below (RELAY_TEST_RUN_TIMEOUT seconds) only stops a process that cannot even
# report that, and it fails the run. Output is line-buffered so the last line printed before a
# stall is the last thing that happened.
set -uo pipefail
timeout_s=${RELAY_TEST_RUN_TIMEOUT:-1200}

swift build --build-tests || exit $?
timeout --kill-after=10 "$timeout_s" stdbuf -oL -eL swift test --skip-build "$@"
rc=$?
if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
  echo "run-tests: the test process did not finish within ${timeout_s}s; it was killed and the run failed" >&2
fi
exit "$rc"
