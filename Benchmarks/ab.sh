#!/usr/bin/env bash
# A/B of two sse-gateway binaries on one scenario: runs them alternately against the same sse-load upstream and
# prints the gateway's CPU seconds per million events (churn: per million connections), user and system apart, for
# each run, so a change can be seen past the ~10% spread between runs. Loopback only. Usage:
#   Benchmarks/ab.sh BINARY_A BINARY_B [a|c|d|e|g|h] [ROUNDS]   (a binary may be nio-floor: sse-load floor-proxy)
# a = 1,000 streams x 1 event/s (20 s), c = 100 streams x 200 events/s (15 s), d = churn 500/s (15 s), e = churn
# 300/s with a distinct JWT per connection in ?access_token= (run.sh's e load, on the same unauthenticated route),
# g = storm: 2,000 connections at once with e's tokens, each until its first event, 5 times (run.sh's g load x 2.5),
# h = burst: 5,000 streams x 1 event/5 s (40 s). RATE (e.g. RATE=100) sets d's and e's connections per second.
# AUTH=hs256 or AUTH=es256 puts e's and g's route behind a JWT policy taking the token from ?access_token= (as
# run.sh's gw-* targets): every connection's token is then verified (g's reconnects from the verified-token cache),
# stripped from the upstream request and redacted from the access log.
# The CPU is the gateway's over the whole sse-load run (set-up included), as run.sh's "CPU s/Mev" column; for a, c
# and h also over the steady phase only (after the ramp), as its "steady"; for d and e "steady" leaves out the first
# 5 s (the first connections warm code and allocator up).
# DURATION (e.g. DURATION=45s) runs each scenario longer than its default: longer runs average out more of a VM's
# scheduling noise. GATEWAY_LOG_LEVEL=notice turns the gateway's access log off (as run.sh's, and as nginx's
# access_log off); the default, info, logs every request as shipped.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
[[ $# -ge 2 ]] || { sed -n '2,9p' "$0"; exit 2; }
A=$1 B=$2 SCENARIO=${3:-c} ROUNDS=${4:-2}
LOAD="$HERE/.build/release/sse-load"
UPSTREAM_ADDR=${UPSTREAM_ADDR:-127.0.0.1:9100}
GATEWAY_ADDR=${GATEWAY_ADDR:-127.0.0.1:8080}
source "$HERE/common.sh"
require_free_ports "$UPSTREAM_ADDR" "$GATEWAY_ADDR"
ulimit -n "$(ulimit -Hn)"
WORK=$(mktemp -d /tmp/sse-ab.XXXXXX)
bench_gateway_config "$WORK/gateway.yml" "$GATEWAY_ADDR" "$UPSTREAM_ADDR" 127.0.0.1:0
"$LOAD" upstream --listen "$UPSTREAM_ADDR" --duration 1h >"$WORK/upstream.log" 2>&1 &
UPSTREAM_PID=$!
trap 'kill $UPSTREAM_PID 2>/dev/null || true' EXIT
sleep 1
if [[ $SCENARIO == [eg] ]]; then   # distinct tokens, as run.sh's e sends them (minted once, outside the timed runs)
    ALG=${AUTH:-hs256}
    "$LOAD" mint --alg "${ALG^^}" --count 40000 --out-dir "$WORK/jwt" --audience bench --lifetime 2h >"$WORK/mint.log"
fi
if [[ -n ${AUTH:-} ]]; then
    [[ $SCENARIO == [eg] ]] || { echo "ab.sh: AUTH applies to scenarios e and g" >&2; exit 2; }
    if [[ $ALG == hs256 ]]; then key="secret: \"$(cat "$WORK/jwt/secret.txt")\""; else key="public_keys: [\"$WORK/jwt/public.pem\"]"; fi
    cat >>"$WORK/gateway.yml" <<CONF
    auth: bench
auth_policies:
  bench:
    token_sources: [{query: access_token}]
    jwt: {algorithms: [${ALG^^}], audience: bench, $key}
CONF
fi

run_once() {  # binary
    if [[ $1 == nio-floor ]]; then
        "$LOAD" floor-proxy --listen "$GATEWAY_ADDR" --upstream "$UPSTREAM_ADDR" --duration 1h >"$WORK/gateway.log" 2>&1 &
    else
        "$1" serve --config "$WORK/gateway.yml" --log-level "${GATEWAY_LOG_LEVEL:-info}" >"$WORK/gateway.log" 2>&1 &
    fi
    local pid=$! url="http://$GATEWAY_ADDR"
    sleep 1
    local u0 s0; read -r u0 s0 < <(awk '{print $14, $15}' "/proc/$pid/stat")
    case $SCENARIO in
        a) "$LOAD" client --target "$url/a?interval_ms=1000&size=100" --streams 1000 --duration "${DURATION:-20s}" --watch-pid "$pid" \
               --json ;;
        c) "$LOAD" client --target "$url/c?interval_ms=5&size=200" --streams 100 --duration "${DURATION:-15s}" --watch-pid "$pid" \
               --json ;;
        h) "$LOAD" client --target "$url/h?interval_ms=5000&size=100" --streams 5000 --duration "${DURATION:-40s}" --ramp 2000/s \
               --watch-pid "$pid" --json ;;
        d) "$LOAD" churn --target "$url/d?interval_ms=1000&size=100" --rate "${RATE:-500}/s" --duration "${DURATION:-15s}" \
               --watch-pid "$pid" --warmup 5s --json ;;
        e) "$LOAD" churn --target "$url/e?interval_ms=1000&size=100" --rate "${RATE:-300}/s" --duration "${DURATION:-20s}" \
               --tokens-file "$WORK/jwt/tokens.txt" --token-query access_token --watch-pid "$pid" --warmup 5s --json ;;
        g) "$LOAD" storm --target "$url/g?interval_ms=1000&size=100" --connections 2000 --rounds 5 --pause 1s \
               --tokens-file "$WORK/jwt/tokens.txt" --token-query access_token --json ;;
    esac >"$WORK/out.json"
    local u1 s1; read -r u1 s1 < <(awk '{print $14, $15}' "/proc/$pid/stat")
    kill "$pid"; wait "$pid" 2>/dev/null || true
    jq -r --argjson user $((u1 - u0)) --argjson sys $((s1 - s0)) --argjson tck "$(getconf CLK_TCK)" --arg bin "$1" '
        (if .mode == "storm" then ([.rounds[].succeeded] | add) elif .mode == "churn" then .succeeded else .events end)
            as $work
        | def per($ticks): ($ticks / $tck) / $work * 1e6 * 10 | round / 10;
        (if .mode == "events" or .mode == "client" then "events" else "connections" end) as $unit
        | (if .mode == "churn" then .steady_connections else .steady_events end) as $steadyWork
        | (if .mode == "storm" then ", all first events \([.rounds[].all_first_events_micros / 1000 | round | tostring] | join("/")) ms"
           elif .steady_proxy_cpu_seconds == null or ($steadyWork // 0) == 0 then ""
           else ", steady \(.steady_proxy_cpu_seconds / $steadyWork * 1e7 | round / 10)" end) as $steady
        | "\($bin): \(per($user + $sys)) CPU s per million \($unit) (user \(per($user)), system \(per($sys))\($steady); "
            + (if .mode == "storm" then "fail \([.rounds[].failed] | add))"
               else "fail \(.streams_failed), seq \(.sequence_gaps + .reorders))" end)' \
        "$WORK/out.json"
}

for _ in $(seq "$ROUNDS"); do run_once "$A"; run_once "$B"; done
