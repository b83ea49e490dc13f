#!/usr/bin/env bash
# Memory per held stream of one sse-gateway binary, without the rest of run.sh: starts an sse-load upstream on
# 127.0.0.1:9100 and the gateway on 127.0.0.1:8080, holds N idle streams (1 event/10 s) for 15 s and prints
# (peak RSS - idle RSS) / held streams. Loopback only. Usage: Benchmarks/rss-per-stream.sh [GATEWAY] [STREAMS]
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
GATEWAY=${1:-$HERE/../.build/release/sse-gateway}
STREAMS=${2:-3000}
LOAD="$HERE/.build/release/sse-load"
source "$HERE/common.sh"
require_free_ports 127.0.0.1:9100 127.0.0.1:8080 127.0.0.1:9901
WORK=$(mktemp -d /tmp/sse-rss.XXXXXX)
ulimit -n "$(ulimit -Hn)"
bench_gateway_config "$WORK/gateway.yml" 127.0.0.1:8080 127.0.0.1:9100
"$LOAD" upstream --listen 127.0.0.1:9100 --duration 60s >"$WORK/upstream.log" 2>&1 &
UPSTREAM=$!
"$GATEWAY" serve --config "$WORK/gateway.yml" >"$WORK/gateway.log" 2>&1 &
PROXY=$!
trap 'kill $PROXY $UPSTREAM 2>/dev/null; wait $PROXY $UPSTREAM 2>/dev/null || true' EXIT
sleep 1.5
idle=$(awk '/^VmRSS:/ {print $2}' "/proc/$PROXY/status")
"$LOAD" client --target "http://127.0.0.1:8080/b?interval_ms=10000&size=100" --streams "$STREAMS" --duration 15s \
    --json >"$WORK/client.json" &
CLIENT=$!
peak=0
while kill -0 "$CLIENT" 2>/dev/null; do
    rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$PROXY/status")
    (( rss > peak )) && peak=$rss
    sleep 0.5
done
wait "$CLIENT" || true
held=$(jq .streams_held "$WORK/client.json")
per=$(awk -v a="$peak" -v b="$idle" -v h="$held" 'BEGIN { if (h > 0) printf "%.2f", (a - b) / h; else print "-" }')
echo "idle ${idle} KiB, peak ${peak} KiB, held ${held}: ${per} KiB per stream"
