#!/usr/bin/env bash
# Builds and runs the whole test suite under one sanitizer (README, "Sanitizers"). Too slow for CI: a full instrumented
# build of the package and its dependencies takes 15-30 minutes on 2 cores.
#   scripts/sanitizers.sh thread|address [extra swift test arguments, e.g. --filter RelayIntegrationTests]
# Each sanitizer builds into its own scratch path (.build-tsan, .build-asan), so neither rebuilds the other's nor the
# normal .build. The output of the test run is kept in .build-<tsan|asan>/sanitizer-tests.log.
set -uo pipefail
cd "$(dirname "$0")/.."
sanitizer=${1:-}
shift || true
case "$sanitizer" in
  thread) scratch=.build-tsan ;;
  address) scratch=.build-asan ;;
  *) echo "usage: $0 thread|address [swift test arguments]" >&2; exit 2 ;;
esac

# TSan with halt_on_error=0 reports every race, not only the first (ASan stops at its first error). A report fails the
# process that hit it (TSan exits 66, ASan 1); the tests that run the sse-gateway binary check its exit status.
# No suppressions: the runs in README found nothing to suppress; add one here, narrowly, only for a report judged to be
# in a dependency.
export TSAN_OPTIONS="halt_on_error=0 second_deadlock_stack=1 ${TSAN_OPTIONS:-}"
export ASAN_OPTIONS="detect_leaks=1 ${ASAN_OPTIONS:-}"

start=$(date +%s)
swift build --build-tests --sanitize="$sanitizer" --scratch-path "$scratch" || exit 1
echo "build: $(( $(date +%s) - start )) s"
start=$(date +%s)
log="$scratch/sanitizer-tests.log"
timeout 3600 swift test --skip-build --sanitize="$sanitizer" --scratch-path "$scratch" "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
echo "tests: $(( $(date +%s) - start )) s, exit $status"
reports=$(grep -cE "^(WARNING: ThreadSanitizer|==[0-9]+==ERROR: (Address|Leak)Sanitizer)" "$log")
echo "sanitizer reports: $reports (full output in $log)"
[ "$status" -eq 0 ] && [ "$reports" -eq 0 ]
