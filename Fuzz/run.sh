#!/usr/bin/env bash
# Builds the libFuzzer targets and runs each for N seconds, one after another; prints executions and findings.
#
#   Fuzz/run.sh [seconds-per-target] [target...]      (default: 60 seconds, every target)
#
# Build: this folder's package (which depends on the gateway by path) with `--sanitize=fuzzer --sanitize=address`
# on every module, in .build-fuzz/ at the top of the work tree. Each target fuzzes a scratch copy of its corpus
# (.build-fuzz/corpus/TARGET, seeded from Fuzz/corpus/TARGET), so new inputs never land in the repository; an input
# that breaks an invariant is saved to .build-fuzz/findings/TARGET/ and printed with the reproduction command.
set -euo pipefail
# The Swift backtracer is slow under AddressSanitizer and trips it; libFuzzer prints its own stack.
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
scratch="$root/.build-fuzz"
seconds="${1:-60}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=($(ls "$here/Sources" | grep '^Fuzz' | grep -v '^FuzzSupport$'))
fi

if ! ls "$(dirname "$(readlink -f "$(command -v swift)")")"/../lib/swift/clang/lib/linux/libclang_rt.fuzzer-*.a >/dev/null 2>&1; then
  echo "run.sh: this Swift toolchain has no libFuzzer runtime (libclang_rt.fuzzer); nothing to do" >&2
  exit 2
fi

echo "== building ${#targets[@]} targets (debug, fuzzer + address sanitizers) in $scratch"
# `--sanitize` reaches C targets and the link; Swift needs both in one flag (two `-sanitize=` flags: the last wins).
build() {
  swift build --package-path "$here" --scratch-path "$scratch" --sanitize=fuzzer --sanitize=address \
    -Xswiftc -sanitize=fuzzer,address "$@"
}
mkdir -p "$scratch"
build_log="$scratch/build.log"
if [ $# -eq 0 ]; then products=("")
else products=("${targets[@]}"); fi
for product in "${products[@]}"; do
  if ! build ${product:+--product "$product"} >"$build_log" 2>&1; then
    grep -E 'error:' "$build_log" | head -20 || tail -20 "$build_log"
    echo "run.sh: the build failed (log: $build_log)" >&2
    exit 2
  fi
done
bin="$(build --show-bin-path)"

summary=()
status=0
for target in "${targets[@]}"; do
  work="$scratch/corpus/$target"
  findings="$scratch/findings/$target"
  log="$scratch/logs/$target.log"
  mkdir -p "$work" "$findings" "$(dirname "$log")"
  before=$(ls "$findings" | wc -l)
  echo "== $target: $seconds s"
  set +e
  SWIFT_BACKTRACE=enable=no "$bin/$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=4096 -print_final_stats=1 \
    -artifact_prefix="$findings/" "$work" "$here/corpus/$target" >"$log" 2>&1
  code=$?
  set -e
  executions=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
  new=$(( $(ls "$findings" | wc -l) - before ))
  if [ "$code" -ne 0 ] || [ "$new" -gt 0 ]; then
    status=1
    grep -m1 -E 'invariant failed|Fatal error|ERROR: (AddressSanitizer|libFuzzer)|SUMMARY' "$log" || tail -5 "$log"
    for artifact in $(ls -t "$findings" | head -n "$new"); do
      echo "   reproduce: $bin/$target $findings/$artifact"
    done
  fi
  summary+=("$(printf '| %-20s | %12s | %8s |' "$target" "$executions" "$new")")
done

echo
echo "| target               |   executions | findings |"
echo "|----------------------|--------------|----------|"
printf '%s\n' "${summary[@]}"
exit "$status"
