#!/usr/bin/env bash
# Soak test of sse-gateway (issue 13 item 6): held streams with heartbeats, authenticated churn, a SIGHUP reload
# every minute and an upstream that restarts every five minutes, for 30 minutes. Half the held streams go through the
# route of that restarting upstream (each restart hits all of them: they must resume by Last-Event-ID with no gap),
# half through a route whose upstream never restarts (they must never be cut and lose no event); churn goes to the
# restarting one. Samples the gateway's RSS, open fds
# and open-streams gauge into a CSV, judges the pass criteria (PASS/FAIL per criterion, exit 1 on any FAIL) and draws
# the samples into a PNG. Loopback only; everything it starts it stops.
#
#   ./soak.sh                                   # the full soak: 30 min, 9,000 streams, 200 connects/s
#   ./soak.sh --minutes 5 --reload-every 30 --restart-every 90    # a short one with the events scaled down
#   GATEWAY_ADDR=127.0.0.1:18180 GATEWAY_ADMIN_ADDR=127.0.0.1:19911 UPSTREAM_ADDR=127.0.0.1:19200 \
#     STEADY_UPSTREAM_ADDR=127.0.0.1:19201 ./soak.sh          # the default ports
#
# Options (defaults in brackets):
#   --minutes N          length of the run [30]
#   --streams N          held streams, split evenly between the two routes [9000; fewer if the open-file hard
#                        limit cannot hold 2 per stream + 1,000 for churn]
#   --churn-rate N       authenticated new connections per second [200]
#   --reload-every S     SIGHUP the gateway every S seconds [60]
#   --restart-every S    restart the upstream every S seconds [300] (never in the last 60 s)
#   --sample-every S     sample RSS, fds and metrics every S seconds [10]
#   --warmup S           samples before this are not judged for flatness [restart-every + 60, at most a third]
#   --settle S           samples this long after an upstream restart are not judged for flatness [30]
#   --interval-ms N      one event per held stream every N ms [5000]
#   --heartbeat D        both held routes' heartbeat (gateway.yml duration) [2s]
#   --tolerance PCT      how flat RSS and fds must stay [5]
#   --gateway PATH       the sse-gateway binary [../.build-release/release/sse-gateway, else ../.build/release/...]
#   --png PATH           where the plot goes [Benchmarks/soak.png]
#   --work DIR           where logs, CSV and JSON go [a new temporary directory]
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"

MINUTES=30
STREAMS=9000
CHURN_RATE=200
RELOAD_EVERY=60
RESTART_EVERY=300
SAMPLE_EVERY=10
WARMUP=""
SETTLE=30
INTERVAL_MS=5000
HEARTBEAT=2s
TOLERANCE=5
GATEWAY=""
PNG="$HERE/soak.png"
WORK=""

die() { echo "soak: $*" >&2; exit 2; }
while [[ $# -gt 0 ]]; do
  case "$1" in
    --minutes) MINUTES="$2"; shift 2 ;;
    --streams) STREAMS="$2"; shift 2 ;;
    --churn-rate) CHURN_RATE="$2"; shift 2 ;;
    --reload-every) RELOAD_EVERY="$2"; shift 2 ;;
    --restart-every) RESTART_EVERY="$2"; shift 2 ;;
    --sample-every) SAMPLE_EVERY="$2"; shift 2 ;;
    --warmup) WARMUP="$2"; shift 2 ;;
    --settle) SETTLE="$2"; shift 2 ;;
    --interval-ms) INTERVAL_MS="$2"; shift 2 ;;
    --heartbeat) HEARTBEAT="$2"; shift 2 ;;
    --tolerance) TOLERANCE="$2"; shift 2 ;;
    --gateway) GATEWAY="$2"; shift 2 ;;
    --png) PNG="$2"; shift 2 ;;
    --work) WORK="$2"; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done
for n in MINUTES STREAMS CHURN_RATE RELOAD_EVERY RESTART_EVERY SAMPLE_EVERY SETTLE INTERVAL_MS TOLERANCE; do
  [[ "${!n}" =~ ^[0-9]+$ ]] && (( ${!n} > 0 )) || die "$n must be a positive integer, got '${!n}'"
done
DURATION=$(( MINUTES * 60 ))
if [[ -z "$WARMUP" ]]; then
  WARMUP=$(( RESTART_EVERY + 60 )); (( WARMUP > DURATION / 3 )) && WARMUP=$(( DURATION / 3 ))
fi

GATEWAY_ADDR="${GATEWAY_ADDR:-127.0.0.1:18180}"
ADMIN_ADDR="${GATEWAY_ADMIN_ADDR:-127.0.0.1:19911}"
UPSTREAM_ADDR="${UPSTREAM_ADDR:-127.0.0.1:19200}"            # restarts
STEADY_UPSTREAM_ADDR="${STEADY_UPSTREAM_ADDR:-127.0.0.1:19201}"  # never restarts
LOG_LEVEL="${GATEWAY_LOG_LEVEL:-notice}"   # notice: no access log (200 lines/s of churn would cost the gateway CPU)
for a in "$GATEWAY_ADDR" "$ADMIN_ADDR" "$UPSTREAM_ADDR" "$STEADY_UPSTREAM_ADDR"; do
  [[ "$a" =~ ^127\.[0-9]+\.[0-9]+\.[0-9]+:[0-9]+$ ]] || die "only 127.x.x.x:port addresses may be used, got '$a'"
done

# --- what it needs -------------------------------------------------------------------------------------------------
need_apt=()
command -v gnuplot >/dev/null || need_apt+=(gnuplot-nox)
command -v curl >/dev/null || need_apt+=(curl)
command -v python3 >/dev/null || need_apt+=(python3)
if (( ${#need_apt[@]} )); then
  echo "soak: installing ${need_apt[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
LOAD="$HERE/.build/release/sse-load"
if [[ ! -x "$LOAD" || -n "$(find "$HERE/Sources" "$HERE/Package.swift" -newer "$LOAD" 2>/dev/null | head -1)" ]]; then
  echo "soak: building sse-load"
  (cd "$HERE" && swift build -c release --product sse-load >/dev/null)
fi
if [[ -z "$GATEWAY" ]]; then
  for g in "$ROOT/.build-release/release/sse-gateway" "$ROOT/.build/release/sse-gateway"; do
    [[ -x "$g" ]] && { GATEWAY="$g"; break; }
  done
fi
if [[ -z "$GATEWAY" ]]; then
  echo "soak: building the gateway (release, 10-20 min on 2 cores)"
  (cd "$ROOT" && swift build -c release --product sse-gateway -Xswiftc -enforce-exclusivity=unchecked \
     --scratch-path .build-release >/dev/null)
  GATEWAY="$ROOT/.build-release/release/sse-gateway"
fi
[[ -x "$GATEWAY" ]] || die "no gateway binary at $GATEWAY"

# Each process (gateway, upstream, client, churn) gets the hard limit. The gateway holds 2 fds per stream plus churn.
ulimit -n "$(ulimit -Hn)"
NOFILE=$(ulimit -n)
FIT=$(( (NOFILE - 1000) / 2 ))
if (( STREAMS > FIT )); then
  echo "soak: the open-file limit ($NOFILE) holds at most $FIT streams through the gateway; using $FIT, not $STREAMS"
  STREAMS=$FIT
fi
STREAMS=$(( STREAMS / 2 * 2 ))
HALF=$(( STREAMS / 2 ))

WORK="${WORK:-$(mktemp -d /tmp/sse-soak.XXXXXX)}"
mkdir -p "$WORK"
echo "soak: work dir $WORK"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

# --- tokens, config ------------------------------------------------------------------------------------------------
# 20,000 distinct tokens, cycled: more than the gateway's verified-token cache holds (10,000), so it keeps evicting.
"$LOAD" mint --alg HS256 --count 20000 --out-dir "$WORK/jwt" --audience soak --lifetime "$(( MINUTES + 30 ))m"
SECRET="$(cat "$WORK/jwt/secret.txt")"
write_config() {  # $1: drain grace, alternated by the reloads so each one really changes the config
  cat > "$WORK/gateway.yml.tmp" <<EOF
# sse-gateway soak ($(date -u +%FT%TZ)); rewritten before every SIGHUP
listen: "$GATEWAY_ADDR"
admin:
  listen: "$ADMIN_ADDR"
auth_policies:
  soak:
    token_sources:
      - query: access_token
    jwt:
      algorithms: [HS256]
      secret: "$SECRET"
      audience: soak
      required_claims: [sub]
routes:
  - name: restarting
    path_prefix: /restarting/
    upstream: "http://$UPSTREAM_ADDR"
    heartbeat: $HEARTBEAT
  - name: steady
    path_prefix: /steady/
    upstream: "http://$STEADY_UPSTREAM_ADDR"
    heartbeat: $HEARTBEAT
  - name: churn
    path_prefix: /churn/
    upstream: "http://$UPSTREAM_ADDR"
    auth: soak
limits:
  max_connections: $(( NOFILE - 500 ))
drain:
  grace: $1
EOF
  mv "$WORK/gateway.yml.tmp" "$WORK/gateway.yml"
}
write_config 10s
"$GATEWAY" check --config "$WORK/gateway.yml" >/dev/null

# --- processes -----------------------------------------------------------------------------------------------------
start_upstream() {
  "$LOAD" upstream --listen "$UPSTREAM_ADDR" --interval-ms "$INTERVAL_MS" --size 100 --duration "$(( DURATION + 600 ))s" \
    >> "$WORK/upstream.log" 2>&1 &
  UPSTREAM_PID=$!
  PIDS+=("$UPSTREAM_PID")
}
wait_http() {  # URL: up to 20 s
  for _ in $(seq 200); do curl -fsS -o /dev/null "$1" 2>/dev/null && return 0; sleep 0.1; done
  die "nothing answers $1"
}
start_upstream
"$LOAD" upstream --listen "$STEADY_UPSTREAM_ADDR" --interval-ms "$INTERVAL_MS" --size 100 \
  --duration "$(( DURATION + 600 ))s" > "$WORK/steady-upstream.log" 2>&1 &
STEADY_PID=$!
PIDS+=("$STEADY_PID")
wait_http "http://$UPSTREAM_ADDR/healthz"
wait_http "http://$STEADY_UPSTREAM_ADDR/healthz"
"$GATEWAY" serve --config "$WORK/gateway.yml" --log-level "$LOG_LEVEL" > "$WORK/gateway.log" 2>&1 &
GATEWAY_PID=$!
PIDS+=("$GATEWAY_PID")
wait_http "http://$ADMIN_ADDR/readyz"

# RSS (KiB), open fds, CPU seconds of the gateway; its metrics. One CSV row per sample.
CLK=$(getconf CLK_TCK)
CSV="$WORK/samples.csv"
echo "t_s,epoch,rss_kib,fds,open_streams_held,open_streams_restarting,open_streams_steady,open_streams_churn,events_relayed,reloads_ok,reloads_failed,cpu_s,upstream_restarts" > "$CSV"
RESTARTS=0
metric() {  # NAME LABELS-REGEX from $WORK/metrics.txt, summed
  awk -v n="$1" -v l="$2" 'index($0, n) == 1 && $0 ~ l { s += $NF } END { printf "%d", s }' "$WORK/metrics.txt"
}
sample() {
  local now rss fds cpu
  now=$(date +%s.%N)
  rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$GATEWAY_PID/status")
  fds=$(ls "/proc/$GATEWAY_PID/fd" | wc -l)
  cpu=$(awk -v c="$CLK" '{ sub(/^.*\) /, ""); printf "%.2f", ($12 + $13) / c }' "/proc/$GATEWAY_PID/stat")
  curl -fsS "http://$ADMIN_ADDR/metrics" > "$WORK/metrics.txt" 2>/dev/null || : > "$WORK/metrics.txt"
  local restarting steady
  restarting=$(metric sse_gateway_open_streams 'route="restarting"')
  steady=$(metric sse_gateway_open_streams 'route="steady"')
  printf '%.1f,%.3f,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s\n' "$(awk -v a="$now" -v b="$T0" 'BEGIN { print a - b }')" "$now" \
    "$rss" "$fds" "$(( restarting + steady ))" "$restarting" "$steady" "$(metric sse_gateway_open_streams 'route="churn"')" \
    "$(metric sse_gateway_events_relayed_total '')" \
    "$(metric sse_gateway_config_reloads_total 'result="success"')" \
    "$(metric sse_gateway_config_reloads_total 'result="failure"')" "$cpu" "$RESTARTS" >> "$CSV"
}

T0=$(date +%s.%N)
sample
echo "soak: $STREAMS held streams (event every ${INTERVAL_MS} ms, heartbeat $HEARTBEAT), churn ${CHURN_RATE}/s," \
  "reload every ${RELOAD_EVERY}s, upstream restart every ${RESTART_EVERY}s, ${MINUTES} min; gateway pid $GATEWAY_PID"
start_client() {  # ROUTE: HALF streams with --reconnect, JSON report in WORK/client-ROUTE.json
  "$LOAD" client --target "http://$GATEWAY_ADDR/$1/s?interval_ms=$INTERVAL_MS" --streams "$HALF" \
    --duration "${DURATION}s" --ramp 500/s --reconnect --reconnect-delay 1s --reconnect-max-delay 5s \
    --stale-after "$(( INTERVAL_MS * 3 / 1000 + 10 ))s" --progress "${SAMPLE_EVERY}s" --json \
    > "$WORK/client-$1.json" 2> "$WORK/client-$1.log" &
  PIDS+=("$!")
}
start_client restarting
CLIENT_PID=$!
start_client steady
STEADY_CLIENT_PID=$!
# Churn starts once the ramp is done and stops with the client; each connection reads one event and closes.
RAMP=$(( STREAMS / 1000 + 10 ))
( sleep "$RAMP"; exec "$LOAD" churn --target "http://$GATEWAY_ADDR/churn/c?interval_ms=1000" --rate "${CHURN_RATE}/s" \
    --duration "$(( DURATION - RAMP - 5 ))s" --tokens-file "$WORK/jwt/tokens.txt" --token-query access_token \
    --json > "$WORK/churn.json" 2> "$WORK/churn.log" ) &
CHURN_PID=$!
PIDS+=("$CHURN_PID")

# --- the schedule: samples, reloads, restarts ----------------------------------------------------------------------
: > "$WORK/restarts.txt"
: > "$WORK/reloads.txt"
START=${T0%.*}
NEXT_SAMPLE=$(( START + SAMPLE_EVERY ))
NEXT_RELOAD=$(( START + RELOAD_EVERY ))
NEXT_RESTART=$(( START + RESTART_EVERY ))
HUPS=0
GRACE=10s
while kill -0 "$CLIENT_PID" 2>/dev/null; do
  if ! kill -0 "$GATEWAY_PID" 2>/dev/null; then
    rc=0; wait "$GATEWAY_PID" || rc=$?
    echo "soak: FAIL: the gateway exited (status $rc) after $(( $(date +%s) - START )) s; see $WORK/gateway.log"
    exit 1
  fi
  now=$(date +%s)
  if (( now >= NEXT_RESTART )); then
    NEXT_RESTART=$(( NEXT_RESTART + RESTART_EVERY ))
    if (( now + 60 < START + DURATION )); then
      date +%s.%N >> "$WORK/restarts.txt"  # before the signal: its streams are cut from this moment on
      kill -TERM "$UPSTREAM_PID"; wait "$UPSTREAM_PID" 2>/dev/null || true
      start_upstream
      RESTARTS=$(( RESTARTS + 1 ))
      echo "soak: t=$(( now - START ))s upstream restarted (pid $UPSTREAM_PID)"
    fi
  fi
  if (( now >= NEXT_RELOAD )); then
    NEXT_RELOAD=$(( NEXT_RELOAD + RELOAD_EVERY ))
    if [[ "$GRACE" == 10s ]]; then GRACE=11s; else GRACE=10s; fi
    write_config "$GRACE"
    kill -HUP "$GATEWAY_PID"
    HUPS=$(( HUPS + 1 ))
    date +%s.%N >> "$WORK/reloads.txt"
  fi
  if (( now >= NEXT_SAMPLE )); then
    NEXT_SAMPLE=$(( NEXT_SAMPLE + SAMPLE_EVERY ))
    sample
    for c in restarting steady; do tail -1 "$WORK/client-$c.log" 2>/dev/null | sed "s/^/soak: $c /" || true; done
  fi
  sleep 0.2
done
wait "$CLIENT_PID" || echo "soak: the client exited with $?"
wait "$STEADY_CLIENT_PID" || echo "soak: the steady client exited with $?"
wait "$CHURN_PID" || echo "soak: churn exited with $?"
sleep 2
sample
curl -fsS "http://$ADMIN_ADDR/metrics" > "$WORK/metrics-final.txt"
kill -TERM "$GATEWAY_PID"; wait "$GATEWAY_PID" 2>/dev/null || true
kill -TERM "$UPSTREAM_PID" "$STEADY_PID"; wait "$UPSTREAM_PID" "$STEADY_PID" 2>/dev/null || true
PIDS=()

# --- verdict and plot ----------------------------------------------------------------------------------------------
set +e
python3 "$HERE/soak-judge.py" --work "$WORK" --streams "$STREAMS" --warmup "$WARMUP" --settle "$SETTLE" \
  --tolerance "$TOLERANCE" --hups "$HUPS" --churn-rate "$CHURN_RATE" --interval-ms "$INTERVAL_MS" \
  --heartbeat "$HEARTBEAT" --minutes "$MINUTES" | tee "$WORK/verdict.txt"
VERDICT=${PIPESTATUS[0]}
set -e
WARMUP="$WARMUP" WORK="$WORK" STREAMS="$STREAMS" PNG="$PNG" gnuplot "$HERE/soak.gp" \
  && echo "soak: plot $PNG" || echo "soak: gnuplot failed"
cp "$CSV" "$(dirname "$PNG")/soak-samples.csv" 2>/dev/null || true
echo "soak: logs, CSV and JSON in $WORK"
exit "$VERDICT"
