#!/usr/bin/env bash
# Shared upstream streams (issue 14): K subscribers of ONE stream through sse-gateway with `share: {}` on the route,
# through the same gateway on a route without `share` (every client its own upstream) and through nginx, against
# the same `sse-load upstream`, with a direct run (K streams straight at the upstream) as the latency baseline.
# Loopback only. Usage:
#   Benchmarks/share.sh --gateway PATH [--ks "100 1000 5000"] [--rates "1 10"] [--repeats 2] [--duration 25s]
#                       [--targets "shared unshared nginx"] [--size 100] [--no-chaos | --chaos-only]
#                       [--chaos-k 1000] [--chaos-rate 10] [--chaos-size 4000] [--chaos-duration 60s] [--quick]
#                       [--stamp-tick]   (latency from the tick, i.e. since the event happened: see README.md)
# Ports from the environment: UPSTREAM_ADDR GATEWAY_ADDR GATEWAY_ADMIN_ADDR NGINX_ADDR. See README.md, "Shared streams".
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
# apt_install, wait_port, require_free_ports, proc_tree, cpu_ticks, rss_kib (CPU ticks and RSS of a process and its
# children), write_nginx_conf
source "$HERE/common.sh"
GATEWAY="$HERE/../.build/release/sse-gateway"
LOAD="$HERE/.build/release/sse-load"
KS="100 1000 5000"
RATES="1 10"
REPEATS=2
DURATION=25s
TARGETS="shared unshared nginx"
SIZE=100
MATRIX=1
CHAOS=1
CHAOS_K=1000
CHAOS_RATE=10
CHAOS_SIZE=4000
CHAOS_DURATION=60s
STAMP_QUERY=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --gateway) GATEWAY="$2"; shift ;;
        --load) LOAD="$2"; shift ;;
        --ks) KS="$2"; shift ;;
        --rates) RATES="$2"; shift ;;
        --repeats) REPEATS="$2"; shift ;;
        --duration) DURATION="$2"; shift ;;
        --targets) TARGETS="$2"; shift ;;
        --size) SIZE="$2"; shift ;;
        --stamp-tick) STAMP_QUERY="&stamp=tick" ;;
        --no-chaos) CHAOS=0 ;;
        --chaos-only) MATRIX=0 ;;
        --chaos-k) CHAOS_K="$2"; shift ;;
        --chaos-rate) CHAOS_RATE="$2"; shift ;;
        --chaos-size) CHAOS_SIZE="$2"; shift ;;
        --chaos-duration) CHAOS_DURATION="$2"; shift ;;
        --quick) KS="100"; RATES="10"; REPEATS=1; DURATION=8s; CHAOS_K=100; CHAOS_DURATION=30s ;;
        -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
        *) echo "unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

# Loopback addresses, away from run.sh's defaults so both can run on one machine.
UPSTREAM_ADDR=${UPSTREAM_ADDR:-127.0.0.1:19300}
GATEWAY_ADDR=${GATEWAY_ADDR:-127.0.0.1:18280}
GATEWAY_ADMIN_ADDR=${GATEWAY_ADMIN_ADDR:-127.0.0.1:19921}
GATEWAY_LOG_LEVEL=${GATEWAY_LOG_LEVEL:-info}   # "notice" turns the access log off, like nginx's access_log off
NGINX_ADDR=${NGINX_ADDR:-127.0.0.1:18290}
CLK_TCK=$(getconf CLK_TCK)

log() { echo "[share.sh] $*" >&2; }

# Every process started here (upstream, proxies, sse-load) inherits this: 5,000 unshared subscribers are 10,000
# sockets in the proxy (5,000 shared) and 5,000 in the client, each under the 20,000 hard limit.
ulimit -n "$(ulimit -Hn)"

for address in "$UPSTREAM_ADDR" "$GATEWAY_ADDR" "$GATEWAY_ADMIN_ADDR" "$NGINX_ADDR"; do
    [[ ${address%:*} == 127.* ]] || { log "$address is not a loopback address"; exit 2; }
done
[[ -x "$LOAD" ]] || { log "no sse-load at $LOAD: cd Benchmarks && swift build -c release --product sse-load"; exit 1; }
[[ -x "$GATEWAY" ]] || { log "no sse-gateway at $GATEWAY (--gateway PATH; see README.md for the production build)"; exit 1; }
for tool in jq curl ss; do
    command -v "$tool" >/dev/null || { log "installing $tool"; apt_install "$tool"; }
done
if [[ " $TARGETS " == *" nginx "* ]] && ! command -v nginx >/dev/null && [[ ! -x /usr/sbin/nginx ]]; then
    log "installing nginx"
    apt_install nginx
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

WORK=$(mktemp -d /tmp/sse-share.XXXXXX)
chmod 755 "$WORK"
RUNS="$WORK/runs.tsv"
: >"$RUNS"
UPSTREAM_PID=""
PROXY_PID=""
cleanup() {
    local status=$?
    set +e
    [[ -n "$PROXY_PID" ]] && kill "$PROXY_PID" 2>/dev/null && wait "$PROXY_PID" 2>/dev/null
    [[ -n "$UPSTREAM_PID" ]] && kill "$UPSTREAM_PID" 2>/dev/null && wait "$UPSTREAM_PID" 2>/dev/null
    exit "$status"
}
trap cleanup EXIT
log "work dir $WORK"

require_free_ports "$UPSTREAM_ADDR" "$GATEWAY_ADDR" "$GATEWAY_ADMIN_ADDR" "$NGINX_ADDR"
# Established connections whose local port is the upstream's: what the origin holds, whoever dialled it.
upstream_connections() { ss -Htn state established "( sport = :${UPSTREAM_ADDR##*:} )" | wc -l; }
load_average() { cut -d' ' -f1 /proc/loadavg; }
metric() {  # name: the sum of every series of that metric on the gateway's admin listener (0 if absent)
    curl -fsS --max-time 5 "http://$GATEWAY_ADMIN_ADDR/metrics" 2>/dev/null \
        | awk -v name="$1" '$1 == name || index($1, name "{") == 1 { sum += $NF } END { printf "%d\n", sum }'
}
metric_series() {  # name{label="value"...} prefix: the sum of the series that start with it
    curl -fsS --max-time 5 "http://$GATEWAY_ADMIN_ADDR/metrics" 2>/dev/null \
        | awk -v prefix="$1" 'index($1, prefix) == 1 { sum += $NF } END { printf "%d\n", sum }'
}

start_proxy() {  # target
    case "$1" in
        shared|unshared)
            # One config for both: `shared` and `unshared` differ only in the route the client asks for. A fresh
            # process per run, so idle RSS, CPU and the upstream-connection counter are that run's alone.
            cat >"$WORK/gateway.yml" <<CONF
listen: "$GATEWAY_ADDR"
admin: {listen: "$GATEWAY_ADMIN_ADDR"}
limits: {max_connections: 19000}
routes:
  - name: shared
    path_prefix: /shared/
    upstream: "http://$UPSTREAM_ADDR"
    share: {}
  - name: unshared
    path_prefix: /unshared/
    upstream: "http://$UPSTREAM_ADDR"
CONF
            if ! "$GATEWAY" check --config "$WORK/gateway.yml" >"$WORK/gateway-check.log" 2>&1; then
                log "gateway.yml does not validate:"; cat "$WORK/gateway-check.log" >&2; return 1
            fi
            "$GATEWAY" serve --config "$WORK/gateway.yml" --log-level "$GATEWAY_LOG_LEVEL" >>"$WORK/gateway.log" 2>&1 &
            PROXY_PID=$!
            wait_port "$GATEWAY_ADDR" || return 1
            ;;
        nginx)   # as run.sh's nginx target: one worker, no buffering, HTTP/1.1 keep-alive upstream
            write_nginx_conf "$WORK/nginx" "$NGINX_ADDR" "http://origin" "" \
                "    upstream origin {
        server $UPSTREAM_ADDR;
        keepalive 64;
    }
"
            "$NGINX" -c "$WORK/nginx/nginx.conf" -p "$WORK/nginx" -g 'daemon off;' >"$WORK/nginx/stdout.log" 2>&1 &
            PROXY_PID=$!
            wait_port "$NGINX_ADDR" || return 1
            ;;
    esac
    sleep 0.5
    kill -0 "$PROXY_PID" 2>/dev/null   # still running (not a stale listener from elsewhere)
}
stop_proxy() {
    if [[ -n "$PROXY_PID" ]]; then
        kill "$PROXY_PID" 2>/dev/null || true
        wait "$PROXY_PID" 2>/dev/null || true
        PROXY_PID=""
    fi
}
target_url() {  # target rate size: one URL for every client, so `shared` is one stream
    local query="interval_ms=$((1000 / $2))&size=$3$STAMP_QUERY"
    case "$1" in
        direct) echo "http://$UPSTREAM_ADDR/stream?$query" ;;
        shared) echo "http://$GATEWAY_ADDR/shared/stream?$query" ;;
        unshared) echo "http://$GATEWAY_ADDR/unshared/stream?$query" ;;
        nginx) echo "http://$NGINX_ADDR/stream?$query" ;;
    esac
}

# One measured run; appends a line to runs.tsv:
# kind rep target K rate size stalled load1 load1_after upstream_conns gw_upstream_conns held events/s p50 p99 p999
# steady_cpu_s steady_events idle_kib peak_kib end_kib fail seq slow_dropped stalled_streams origin_ticks
run_case() {  # kind rep target K rate size duration stalled_fraction
    local kind=$1 rep=$2 target=$3 k=$4 rate=$5 size=$6 duration=$7 stalled=$8
    local name="$kind-$target-k$k-r$rate-s$size-f$stalled-$rep" out load0 load1 idle=0 peak=0 rss=0 conns=0 now
    local watch=() pid load_pid origin0 origin1 gw_conns=- dropped=- started c
    out="$WORK/$name.json"
    load0=$(load_average)
    log "$name: load average $load0; $(top -bn1 | sed -n '8,10p' | awk '{printf "%s %s%% | ", $12, $9}')"
    if [[ $target != direct ]]; then
        if ! start_proxy "$target"; then
            log "$target did not start; skipping $name (logs in $WORK)"
            stop_proxy
            return 0
        fi
        idle=$(rss_kib "$PROXY_PID")
        for pid in $(proc_tree "$PROXY_PID"); do watch+=(--watch-pid "$pid"); done
    fi
    origin0=$(cpu_ticks "$UPSTREAM_PID")
    started=$(date +%s)
    "$LOAD" client --target "$(target_url "$target" "$rate" "$size")" --streams "$k" --duration "$duration" \
        --ramp 2000/s --stalled-fraction "$stalled" "${watch[@]}" --json >"$out" &
    load_pid=$!
    : >"$WORK/$name.rss"
    while kill -0 "$load_pid" 2>/dev/null; do
        now=$(( $(date +%s) - started ))
        if [[ $target != direct ]]; then
            rss=$(rss_kib "$PROXY_PID")
            (( rss > peak )) && peak=$rss
            echo "$now $rss" >>"$WORK/$name.rss"
        fi
        # Upstream connections, counted on the origin's side every ~2 s once the ramp is over.
        if (( now >= 5 && now % 2 == 0 )); then
            c=$(upstream_connections)
            (( c > conns )) && conns=$c
        fi
        sleep 0.5
    done
    wait "$load_pid" || log "sse-load exited non-zero for $name"
    origin1=$(cpu_ticks "$UPSTREAM_PID")
    load1=$(load_average)
    if [[ $target == shared || $target == unshared ]]; then
        gw_conns=$(metric sse_gateway_upstream_connections_total)
        dropped=$(metric sse_gateway_slow_clients_dropped_total)
        curl -fsS --max-time 5 "http://$GATEWAY_ADMIN_ADDR/metrics" >"$WORK/$name.metrics" 2>/dev/null || true
    fi
    if [[ $target != direct ]]; then
        rss=$(rss_kib "$PROXY_PID")
        stop_proxy
    fi
    [[ -s "$out" ]] || { log "no result for $name"; return 0; }
    jq -r --arg kind "$kind" --arg rep "$rep" --arg t "$target" --arg k "$k" --arg rate "$rate" --arg size "$size" \
        --arg stalled "$stalled" --arg l0 "$load0" --arg l1 "$load1" --arg conns "$conns" --arg gwc "$gw_conns" \
        --arg idle "$idle" --arg peak "$peak" --arg endkib "$rss" --arg dropped "$dropped" \
        --arg origin "$((origin1 - origin0))" '
        [$kind, $rep, $t, $k, $rate, $size, $stalled, $l0, $l1, $conns, $gwc, .streams_held, .events_per_second,
         .latency_micros.p50, .latency_micros.p99, .latency_micros.p999,
         (.steady_proxy_cpu_seconds // "-"), .steady_events, $idle, $peak, $endkib,
         (.streams_failed + .streams_closed_early), (.sequence_gaps + .reorders + .duplicates), $dropped,
         .streams_stalled, $origin] | @tsv' "$out" >>"$RUNS"
    sleep 1
}

if (exec 3<>"/dev/tcp/${UPSTREAM_ADDR%:*}/${UPSTREAM_ADDR##*:}") 2>/dev/null; then
    log "something already listens on $UPSTREAM_ADDR: stop it or choose other ports"; exit 1
fi
for addr in "$GATEWAY_ADDR" "$GATEWAY_ADMIN_ADDR" "$NGINX_ADDR"; do
    if (exec 3<>"/dev/tcp/${addr%:*}/${addr##*:}") 2>/dev/null; then
        log "something already listens on $addr: stop it or choose other ports"; exit 1
    fi
done
"$LOAD" upstream --listen "$UPSTREAM_ADDR" --interval-ms 1000 --size "$SIZE" --duration 3h >"$WORK/upstream.log" 2>&1 &
UPSTREAM_PID=$!
wait_port "$UPSTREAM_ADDR"
kill -0 "$UPSTREAM_PID"
log "upstream pid $UPSTREAM_PID on $UPSTREAM_ADDR; gateway $GATEWAY_ADDR (admin $GATEWAY_ADMIN_ADDR), nginx $NGINX_ADDR"

# Repetitions outermost, so the spread between them also covers the machine's drift over the run.
if [[ $MATRIX == 1 ]]; then
    for rep in $(seq 1 "$REPEATS"); do
        for k in $KS; do
            for rate in $RATES; do
                for target in direct $TARGETS; do   # direct first: the others are compared with it
                    run_case matrix "$rep" "$target" "$k" "$rate" "$SIZE" "$DURATION" 0
                done
            done
        done
    done
fi
if [[ $CHAOS == 1 ]]; then
    for rep in $(seq 1 "$REPEATS"); do
        for stalled in 0 0.1; do
            run_case chaos "$rep" shared "$CHAOS_K" "$CHAOS_RATE" "$CHAOS_SIZE" "$CHAOS_DURATION" "$stalled"
        done
    done
fi

# --- tables: one line per run, then per configuration the mean over repetitions with the range ---
awk -F'\t' -v tck="$CLK_TCK" '
function ms(us) { return sprintf("%.2f", us / 1000) }
BEGIN {
    fmt = "%-6s %-3s %-9s %5s %4s %5s %10s %7s %6s %6s %9s %8s %8s %8s %8s %9s %9s %5s %5s %6s\n"
    printf fmt, "kind", "rep", "target", "K", "ev/s", "size", "load", "up-conn", "gw-up", "held", "events/s",
        "p50 ms", "p99 ms", "+p50 ms", "+p99 ms", "CPU us/ev", "KiB/sub", "fail", "seq!", "slow!"
}
{
    key = $1 SUBSEP $2 SUBSEP $4 SUBSEP $5 SUBSEP $6 SUBSEP $7
    if ($3 == "direct") { d50[key] = $14; d99[key] = $15 }
    a50 = (key in d50 && $3 != "direct") ? ms($14 - d50[key]) : "-"
    a99 = (key in d99 && $3 != "direct") ? ms($15 - d99[key]) : "-"
    cpu = ($17 == "-" || $18 == 0) ? "-" : sprintf("%.2f", $17 / $18 * 1e6)
    kib = ($3 == "direct") ? "-" : sprintf("%.2f", ($20 - $19) / $4)
    printf fmt, $1, $2, $3, $4, $5, $6, $8 "/" $9, $10, $11, $12, sprintf("%.0f", $13), ms($14), ms($15), a50,
        a99, cpu, kib, $22, $23, $24
}' "$RUNS" | tee "$WORK/runs.txt"
echo
# Per configuration: mean over the repetitions, and [min-max] when there is more than one.
awk -F'\t' '
function ms(us) { return us / 1000 }
function add(name, key, value) {
    if (value == "-") return
    n[name, key]++; sum[name, key] += value
    if (!((name, key) in lo) || value < lo[name, key]) lo[name, key] = value
    if (!((name, key) in hi) || value > hi[name, key]) hi[name, key] = value
}
function show(name, key, f) {
    if (!((name, key) in n)) return "-"
    if (n[name, key] == 1 || sprintf(f, lo[name, key]) == sprintf(f, hi[name, key])) return sprintf(f, sum[name, key] / n[name, key])
    return sprintf(f " [" f "-" f "]", sum[name, key] / n[name, key], lo[name, key], hi[name, key])
}
{
    rk = $1 SUBSEP $2 SUBSEP $4 SUBSEP $5 SUBSEP $6 SUBSEP $7
    key = $1 SUBSEP $3 SUBSEP $4 SUBSEP $5 SUBSEP $6 SUBSEP $7
    if (!(key in seen)) { seen[key] = 1; order[++rows] = key }
    if ($3 == "direct") { d50[rk] = $14; d99[rk] = $15 }
    add("load", key, $8); add("up", key, $10); add("p50", key, ms($14)); add("p99", key, ms($15))
    if ($3 != "direct" && (rk in d99)) { add("a50", key, ms($14 - d50[rk])); add("a99", key, ms($15 - d99[rk])) }
    if ($17 != "-" && $18 > 0) add("cpu", key, $17 / $18 * 1e6)
    if ($3 != "direct") add("kib", key, ($20 - $19) / $4)
    add("fail", key, $22); add("seq", key, $23); add("slow", key, $24)
}
END {
    fmt = "%-6s %-9s %5s %4s %5s %5s %-13s %-13s %-19s %-19s %-19s %-19s %-19s %-17s %5s %5s %6s\n"
    printf fmt, "kind", "target", "K", "ev/s", "size", "stall", "load", "up-conn", "p50 ms", "p99 ms", "+p50 ms",
        "+p99 ms", "CPU us/ev", "KiB/sub", "fail", "seq!", "slow!"
    for (r = 1; r <= rows; r++) {
        split(order[r], f, SUBSEP); key = order[r]
        printf fmt, f[1], f[2], f[3], f[4], f[5], f[6], show("load", key, "%.1f"), show("up", key, "%d"),
            show("p50", key, "%.2f"), show("p99", key, "%.2f"), show("a50", key, "%.2f"), show("a99", key, "%.2f"),
            show("cpu", key, "%.1f"), show("kib", key, "%.1f"), show("fail", key, "%d"), show("seq", key, "%d"),
            show("slow", key, "%d")
    }
}' "$RUNS" | tee "$WORK/summary.txt"
log "raw results: $WORK (runs.tsv, one JSON, RSS trace and metrics scrape per run)"
