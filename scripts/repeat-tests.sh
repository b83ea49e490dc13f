#!/usr/bin/env bash
# Runs the whole test suite N times in a row (default 20) on one build, stopping at the first failing run, whose
# output is kept in .build/repeat-tests-failure.log. A test that fails once in N runs is a bug to find, not a retry
# to add (README, "Run the tests").
#   scripts/repeat-tests.sh [N] [extra swift test arguments, e.g. --filter BackpressureIntegrationTests]
set -uo pipefail
cd "$(dirname "$0")/.."
runs=${1:-20}
shift || true
swift build --build-tests >/dev/null || exit 1
log=$(mktemp)
for i in $(seq 1 "$runs"); do
  start=$(date +%s)
  if timeout 1200 swift test --skip-build "$@" >"$log" 2>&1; then
    summary=$(grep -E "^\s*Executed [0-9]+ tests" "$log" | tail -1 | sed 's/^[[:space:]]*//')
    echo "run $i/$runs passed in $(( $(date +%s) - start )) s: $summary"
  else
    cp "$log" .build/repeat-tests-failure.log
    echo "run $i/$runs FAILED after $(( $(date +%s) - start )) s; output in .build/repeat-tests-failure.log:"
    grep -E "error:|failed \(" "$log" | head -20
    rm -f "$log"
    exit 1
  fi
done
rm -f "$log"
echo "$runs passed, 0 failed"
