#!/usr/bin/env bash
# Benchmarks sse-gateway against nginx (issue 5): the same SSE upstream reached directly, through sse-gateway and
# through nginx, under the same load. Loopback only. Usage:
#   Benchmarks/run.sh [--quick] [--gateway PATH] [--targets "direct gateway gateway-auth nio-floor nginx"]
#                     [--scenarios "a b c d"] [--header "Name: value"]
# --quick runs every scenario at 1/10 scale (smoke test). gateway-auth = gw-hs256 gw-rs256 gw-es256: sse-gateway
# verifying a fresh JWT per connection (scenario d only). nio-floor = `sse-load floor-proxy`, the cheapest proxy
# SwiftNIO channels can be (bytes glued, no HTTP): the floor under the gateway. See README.md for the columns.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
GATEWAY="$HERE/../.build/release/sse-gateway"
QUICK=0
TARGETS="direct gateway gateway-auth nio-floor nginx"
SCENARIOS="a b c d"
HEADER_ARGS=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --quick) QUICK=1 ;;
        --gateway) GATEWAY="$2"; shift ;;
        --targets) TARGETS="$2"; shift ;;
        --scenarios) SCENARIOS="$2"; shift ;;
        --header) HEADER_ARGS+=(--header "$2"); shift ;;
        -h|--help) sed -n '2,7p' "$0"; exit 0 ;;
        *) GATEWAY="$1" ;;
    esac
    shift
done

TARGETS=" ${TARGETS//gateway-auth/gw-hs256 gw-rs256 gw-es256} "
AUTH_TARGETS=""   # the gw-* targets selected, in order
for target in $TARGETS; do if [[ $target == gw-* ]]; then AUTH_TARGETS+="$target "; fi; done

# Loopback addresses; override from the environment to run beside another benchmark (e.g. GATEWAY_ADDR=127.0.0.1:18080).
UPSTREAM_ADDR=${UPSTREAM_ADDR:-127.0.0.1:9100}
GATEWAY_ADDR=${GATEWAY_ADDR:-127.0.0.1:8080}
GATEWAY_ADMIN_ADDR=${GATEWAY_ADMIN_ADDR:-127.0.0.1:9901}
GATEWAY_LOG_LEVEL=${GATEWAY_LOG_LEVEL:-info}   # "notice" turns the access log off, like nginx's access_log off
NGINX_ADDR=${NGINX_ADDR:-127.0.0.1:8090}
FLOOR_ADDR=${FLOOR_ADDR:-127.0.0.1:8070}
LOAD="$HERE/.build/release/sse-load"
CLK_TCK=$(getconf CLK_TCK)

log() { echo "[run.sh] $*" >&2; }

ulimit -n "$(ulimit -Hn)"   # the proxies and sse-load inherit this

if [[ ! -x "$LOAD" ]]; then
    log "building sse-load (release)"
    (cd "$HERE" && swift build -c release --product sse-load) >&2
fi
for tool in jq curl; do
    command -v "$tool" >/dev/null || { log "installing $tool"; apt-get install -y "$tool" >&2; }
done
if [[ " $TARGETS " == *" nginx "* ]] && ! command -v nginx >/dev/null && [[ ! -x /usr/sbin/nginx ]]; then
    log "installing nginx"
    DEBIAN_FRONTEND=noninteractive apt-get install -y nginx >&2
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
if [[ " $TARGETS " == *" gateway "* || -n "$AUTH_TARGETS" ]] && [[ ! -x "$GATEWAY" ]]; then
    log "no sse-gateway binary at $GATEWAY: skipping the gateway targets (build it with swift build -c release)"
    TARGETS=${TARGETS// gateway / }
    for target in $AUTH_TARGETS; do TARGETS=${TARGETS// $target / }; done
    AUTH_TARGETS=""
fi

WORK=$(mktemp -d /tmp/sse-bench.XXXXXX)
chmod 755 "$WORK"
RESULTS="$WORK/results.tsv"
: >"$RESULTS"
UPSTREAM_PID=""
PROXY_PID=""
cleanup() {
    local status=$?   # the run's own status: a killed child's 143 from `wait` below must not replace it
    set +e
    [[ -n "$PROXY_PID" ]] && kill "$PROXY_PID" 2>/dev/null && wait "$PROXY_PID" 2>/dev/null
    [[ -n "$UPSTREAM_PID" ]] && kill "$UPSTREAM_PID" 2>/dev/null && wait "$UPSTREAM_PID" 2>/dev/null
    exit "$status"
}
trap cleanup EXIT
log "work dir $WORK"

wait_port() {  # host:port
    local host=${1%:*} port=${1##*:}
    for _ in $(seq 1 100); do
        if (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    log "nothing listening on $1"; return 1
}

# --- processes: CPU ticks and RSS of a process and its children (nginx master + workers) ---
proc_tree() { echo "$1"; pgrep -P "$1" || true; }
cpu_ticks() {
    local total=0 pid fields
    for pid in $(proc_tree "$1"); do
        [[ -r /proc/$pid/stat ]] || continue
        fields=$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null || true)   # comm may contain spaces: cut after ')'
        total=$((total + $(echo "$fields" | awk '{print $12 + $13 + 0}')))   # utime + stime (fields 14, 15)
    done
    echo "$total"
}
rss_kib() {
    local total=0 pid kib
    for pid in $(proc_tree "$1"); do
        kib=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
        total=$((total + ${kib:-0}))
    done
    echo "$total"
}

# --- the three targets ---
start_proxy() {  # target
    case "$1" in
        nio-floor)
            "$LOAD" floor-proxy --listen "$FLOOR_ADDR" --upstream "$UPSTREAM_ADDR" --duration 2h >"$WORK/floor.log" 2>&1 &
            PROXY_PID=$!
            wait_port "$FLOOR_ADDR" || return 1
            ;;
        nginx)
            mkdir -p "$WORK/nginx/logs"
            cat >"$WORK/nginx/nginx.conf" <<CONF
worker_processes 1;
worker_rlimit_nofile 20000;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/logs/error.log warn;
events { worker_connections 20000; }
http {
    access_log off;
    client_body_temp_path $WORK/nginx/body;
    proxy_temp_path $WORK/nginx/proxy;
    fastcgi_temp_path $WORK/nginx/fastcgi;
    uwsgi_temp_path $WORK/nginx/uwsgi;
    scgi_temp_path $WORK/nginx/scgi;
    server {
        listen $NGINX_ADDR backlog=4096;
        location / {
            proxy_pass http://$UPSTREAM_ADDR;
            proxy_buffering off;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_read_timeout 3600s;
        }
    }
}
CONF
            "$NGINX" -c "$WORK/nginx/nginx.conf" -p "$WORK/nginx" -g 'daemon off;' >"$WORK/nginx/stdout.log" 2>&1 &
            PROXY_PID=$!
            wait_port "$NGINX_ADDR" || return 1
            ;;
        gateway)
            cat >"$WORK/gateway.yml" <<CONF
listen: "$GATEWAY_ADDR"
admin: {listen: "$GATEWAY_ADMIN_ADDR"}
routes:
  - name: bench
    path_prefix: /
    upstream: "http://$UPSTREAM_ADDR"
CONF
            "$GATEWAY" serve --config "$WORK/gateway.yml" --log-level "$GATEWAY_LOG_LEVEL" >"$WORK/gateway.log" 2>&1 &
            PROXY_PID=$!
            wait_port "$GATEWAY_ADDR" || return 1
            ;;
        gw-*)   # the same route behind a JWT policy; key and tokens minted below
            local alg=${1#gw-} config="$WORK/$1.yml"
            {
                cat <<CONF
listen: "$GATEWAY_ADDR"
admin: {listen: "$GATEWAY_ADMIN_ADDR"}
auth_policies:
  bench:
    token_sources:
      - header: Authorization
    jwt:
      algorithms: [${alg^^}]
      audience: "bench"
CONF
                if [[ $alg == hs256 ]]; then
                    echo "      secret: \"$(cat "$WORK/jwt-$alg/secret.txt")\""
                else
                    echo "      public_keys: [\"$WORK/jwt-$alg/public.pem\"]"
                fi
                cat <<CONF
routes:
  - name: bench
    path_prefix: /
    upstream: "http://$UPSTREAM_ADDR"
    auth: bench
CONF
            } >"$config"
            if ! "$GATEWAY" check --config "$config" >"$WORK/$1-check.log" 2>&1; then
                log "$config does not validate:"; cat "$WORK/$1-check.log" >&2; return 1
            fi
            "$GATEWAY" serve --config "$config" --log-level "$GATEWAY_LOG_LEVEL" >"$WORK/$1.log" 2>&1 &
            PROXY_PID=$!
            wait_port "$GATEWAY_ADDR" || return 1
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
base_url() {
    case "$1" in
        direct) echo "http://$UPSTREAM_ADDR" ;;
        gateway|gw-*) echo "http://$GATEWAY_ADDR" ;;
        nginx) echo "http://$NGINX_ADDR" ;;
        nio-floor) echo "http://$FLOOR_ADDR" ;;
    esac
}

# --- scenarios: full scale, --quick divides streams and rates by 10 and shortens durations ---
scale() { if [[ $QUICK == 1 ]]; then echo $(( $1 / 10 > 0 ? $1 / 10 : 1 )); else echo "$1"; fi; }
dur() { if [[ $QUICK == 1 ]]; then echo "$2"; else echo "$1"; fi; }
scenario_label() {
    case "$1" in
        a) echo "a: $(scale 1000) x 1/s x 100B" ;;
        b) echo "b: $(scale 9000) x 1/10s" ;;
        c) echo "c: $(scale 100) x 200/s x 200B" ;;
        d) echo "d: churn $CHURN_RATE/s" ;;
    esac
}
CHURN_RATE=$(scale 500)
CHURN_SECONDS=$(dur 20 10)
run_load() {  # scenario base_url json_out target [--watch-pid PID ...]
    local token_args=() watch_args=("${@:5}")
    if [[ $4 == gw-* ]]; then token_args=(--tokens-file "$WORK/jwt-${4#gw-}/tokens.txt"); fi
    case "$1" in
        a) "$LOAD" client --target "$2/a?interval_ms=1000&size=100" --streams "$(scale 1000)" \
               --duration "$(dur 30s 15s)" --ramp 2000/s "${HEADER_ARGS[@]}" "${watch_args[@]}" --json >"$3" ;;
        b) "$LOAD" client --target "$2/b?interval_ms=10000&size=100" --streams "$(scale 9000)" \
               --duration "$(dur 50s 25s)" --ramp 2000/s "${HEADER_ARGS[@]}" "${watch_args[@]}" --json >"$3" ;;
        c) "$LOAD" client --target "$2/c?interval_ms=5&size=200" --streams "$(scale 100)" --duration "$(dur 20s 10s)" \
               --ramp 2000/s "${HEADER_ARGS[@]}" "${watch_args[@]}" --json >"$3" ;;
        # gw-* targets: each connection sends the next of the minted tokens (all distinct, so every one is verified
        # rather than served from the gateway's verified-token cache)
        d) "$LOAD" churn --target "$2/d?interval_ms=1000&size=100" --rate "$CHURN_RATE/s" \
               --duration "${CHURN_SECONDS}s" "${HEADER_ARGS[@]}" "${token_args[@]}" --json >"$3" ;;
    esac
}

run_case() {  # scenario target
    local scenario=$1 target=$2 out="$WORK/$1-$2.json"
    local idle=0 peak=0 cpu0=0 cpu1=0 rss load_pid watch=() pid
    if [[ $target != direct ]]; then
        if ! start_proxy "$target"; then
            log "$target did not start; skipping $scenario/$target (logs in $WORK)"
            stop_proxy
            return 0
        fi
        idle=$(rss_kib "$PROXY_PID")
        cpu0=$(cpu_ticks "$PROXY_PID")
        # The load tool reads these processes' CPU time itself at the start and end of its steady phase.
        for pid in $(proc_tree "$PROXY_PID"); do watch+=(--watch-pid "$pid"); done
    fi
    log "scenario $scenario -> $target"
    run_load "$scenario" "$(base_url "$target")" "$out" "$target" "${watch[@]}" &
    load_pid=$!
    while kill -0 "$load_pid" 2>/dev/null; do
        if [[ $target != direct ]]; then
            rss=$(rss_kib "$PROXY_PID")
            (( rss > peak )) && peak=$rss
        fi
        sleep 0.5
    done
    wait "$load_pid" || log "sse-load exited non-zero for $scenario/$target"
    if [[ $target != direct ]]; then
        cpu1=$(cpu_ticks "$PROXY_PID")
        stop_proxy
    fi
    [[ -s "$out" ]] || { log "no result for $scenario/$target"; return 0; }
    jq -r --arg s "$scenario" --arg t "$target" --argjson idle "$idle" --argjson peak "$peak" \
        --argjson cpu "$(( cpu1 - cpu0 ))" --argjson tck "$CLK_TCK" '
        (if .mode == "churn" then .time_to_first_event_micros else .latency_micros end) as $lat
        | (if .mode == "churn" then .succeeded else .streams_held end) as $held
        | (if .mode == "churn" then .connects_per_second else .events_per_second end) as $rate
        | (if .mode == "churn" then .succeeded else .events end) as $work
        | [$s, $t, $held, $rate, $lat.p50, $lat.p99, $lat.p999,
           (if $t == "direct" or $work == 0 then "-" else ($cpu / $tck) / $work * 1e6 end),
           (if .steady_proxy_cpu_seconds == null or .steady_events == 0 then "-"
            else .steady_proxy_cpu_seconds / .steady_events * 1e6 end),
           (if $t == "direct" or $held == 0 or .mode == "churn" then "-" else ($peak - $idle) / $held end),
           (.streams_failed + .streams_closed_early), (.sequence_gaps + .reorders + .duplicates)]
        | @tsv' "$out" >>"$RESULTS"
    sleep 1
}

for addr in "$UPSTREAM_ADDR" "$GATEWAY_ADDR" "$GATEWAY_ADMIN_ADDR" "$NGINX_ADDR" "$FLOOR_ADDR"; do
    if (exec 3<>"/dev/tcp/${addr%:*}/${addr##*:}") 2>/dev/null; then
        log "something already listens on $addr: stop it first (the benchmark needs that port)"; exit 1
    fi
done
"$LOAD" upstream --listen "$UPSTREAM_ADDR" --interval-ms 1000 --size 100 --duration 2h >"$WORK/upstream.log" 2>&1 &
UPSTREAM_PID=$!
wait_port "$UPSTREAM_ADDR"
kill -0 "$UPSTREAM_PID"
curl -fsS "http://$UPSTREAM_ADDR/healthz" >/dev/null

# Tokens for the gw-* targets: a fresh key and rate x duration + 10% distinct tokens per algorithm, before any load.
if [[ " $SCENARIOS " == *" d "* && -n "$AUTH_TARGETS" ]]; then
    MINT_COUNT=$(( CHURN_RATE * CHURN_SECONDS * 11 / 10 ))
    for target in $AUTH_TARGETS; do
        alg=${target#gw-}
        mint_start=$(date +%s%N)
        "$LOAD" mint --alg "${alg^^}" --count "$MINT_COUNT" --out-dir "$WORK/jwt-$alg" --audience bench \
            --lifetime 2h >"$WORK/jwt-$alg.log"
        log "minted $MINT_COUNT ${alg^^} tokens in $(( ($(date +%s%N) - mint_start) / 1000000 )) ms (process included)"
    done
fi

for scenario in $SCENARIOS; do
    for target in direct ${TARGETS//direct/}; do   # direct first: the others are compared with it
        [[ $target == gw-* && $scenario != d ]] && continue   # authenticated targets: churn only
        run_case "$scenario" "$target"
    done
done

# --- the table: latencies in ms; for churn, 'held' is successful connects, events/s is connects/s, latency is
# time to first event ---
LABELS=""
for scenario in $SCENARIOS; do LABELS+="$scenario=$(scenario_label "$scenario");"; done
awk -F'\t' -v labels="$LABELS" '
BEGIN {
    n = split(labels, parts, ";")
    for (i = 1; i <= n; i++) if (parts[i] != "") { split(parts[i], kv, "="); label[kv[1]] = kv[2] }
    fmt = "%-24s %-9s %7s %10s %9s %9s %9s %10s %11s %10s %10s %6s %6s\n"
    printf fmt, "scenario", "target", "held", "events/s", "p50 ms", "p99 ms", "p99.9 ms", "+p99 ms", "CPU s/Mev",
        "steady", "KiB/strm", "fail", "seq!"
}
function ms(us) { return sprintf("%.2f", us / 1000) }
function num(x, f) { return x == "-" ? "-" : sprintf(f, x) }
function ratio(a, b) { return (a == "-" || b == "-" || b + 0 == 0) ? "-" : sprintf("%.2fx", a / b) }
{
    s = $1; t = $2; order[++rows] = s SUBSEP t; seen[s] = 1
    held[s,t] = $3; rate[s,t] = $4; p50[s,t] = $5; p99[s,t] = $6; p999[s,t] = $7; cpu[s,t] = $8; steady[s,t] = $9
    kib[s,t] = $10; fail[s,t] = $11; seq[s,t] = $12
}
END {
    for (r = 1; r <= rows; r++) {
        split(order[r], k, SUBSEP); s = k[1]; t = k[2]
        added = ((s, "direct") in p99 && t != "direct") ? ms(p99[s,t] - p99[s,"direct"]) : "-"
        printf fmt, label[s], t, held[s,t], sprintf("%.0f", rate[s,t]), ms(p50[s,t]), ms(p99[s,t]), ms(p999[s,t]),
            added, num(cpu[s,t], "%.2f"), num(steady[s,t], "%.2f"), num(kib[s,t], "%.1f"), fail[s,t], seq[s,t]
        if (t ~ /^gw-/ && (s, "gateway") in p99) {   # verification cost: authenticated over auth-off gateway
            printf fmt, label[s], substr(t, 4) "/gw", "", ratio(rate[s,t], rate[s,"gateway"]),
                ratio(p50[s,t], p50[s,"gateway"]), ratio(p99[s,t], p99[s,"gateway"]),
                ratio(p999[s,t], p999[s,"gateway"]), "", ratio(cpu[s,t], cpu[s,"gateway"]), "", "", "", ""
        }
        if (t == "nginx" && (s, "gateway") in p99) {
            printf fmt, label[s], "gw/nginx", "", ratio(rate[s,"gateway"], rate[s,"nginx"]),
                ratio(p50[s,"gateway"], p50[s,"nginx"]), ratio(p99[s,"gateway"], p99[s,"nginx"]),
                ratio(p999[s,"gateway"], p999[s,"nginx"]), "", ratio(cpu[s,"gateway"], cpu[s,"nginx"]),
                ratio(steady[s,"gateway"], steady[s,"nginx"]), ratio(kib[s,"gateway"], kib[s,"nginx"]), "", ""
        }
        if (t == "nginx" && (s, "nio-floor") in p99) {   # what NIO channels alone cost, against nginx
            printf fmt, label[s], "floor/ngx", "", ratio(rate[s,"nio-floor"], rate[s,"nginx"]),
                ratio(p50[s,"nio-floor"], p50[s,"nginx"]), ratio(p99[s,"nio-floor"], p99[s,"nginx"]),
                ratio(p999[s,"nio-floor"], p999[s,"nginx"]), "", ratio(cpu[s,"nio-floor"], cpu[s,"nginx"]),
                ratio(steady[s,"nio-floor"], steady[s,"nginx"]), ratio(kib[s,"nio-floor"], kib[s,"nginx"]), "", ""
        }
    }
}' "$RESULTS"
log "raw results: $WORK (one JSON per scenario/target, results.tsv)"
