# Shell functions the benchmark scripts share (sourced, not run). Callers of wait_port define `log`.

wait_port() {  # host:port: until something accepts there (10 s)
    local host=${1%:*} port=${1##*:}
    for _ in $(seq 1 100); do
        if (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    log "nothing listening on $1"; return 1
}

# Installs Debian packages; on a machine whose package lists are missing or stale (a fresh VM: "Unable to locate
# package"), fetches the lists once and tries again.   apt_install PACKAGE...
apt_install() {
    DEBIAN_FRONTEND=noninteractive apt-get install -y "$@" >&2 && return 0
    apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y "$@" >&2
}

# Refuses to start over a port something already listens on (a process left by an interrupted run): the gateway's
# listener sets SO_REUSEPORT, so a second gateway binds beside the old one and the kernel splits the connections
# between them, which halves what is measured instead of failing.   require_free_ports HOST:PORT...
require_free_ports() {
    local address
    for address in "$@"; do
        if ss -Hltn "sport = :${address##*:}" 2>/dev/null | grep -q .; then
            echo "$(basename "$0"): $address is already in use (a process left from an earlier run?):" >&2
            ss -Hltnp "sport = :${address##*:}" >&2 || true
            exit 1
        fi
    done
}

# A gateway.yml with one catch-all route to an upstream, as the single-gateway scripts run it.
#   bench_gateway_config FILE LISTEN_ADDR UPSTREAM_ADDR [ADMIN_ADDR, default 127.0.0.1:9901]
bench_gateway_config() {
    cat >"$1" <<CONF
listen: "$2"
admin: {listen: "${4:-127.0.0.1:9901}"}
routes:
  - name: bench
    path_prefix: /
    upstream: "http://$3"
CONF
}

# CPU ticks and RSS of a process and its children (nginx master + workers).
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

# nginx as every benchmark runs it: one worker, 20,000 connections, no access log, no buffering, HTTP/1.1 to the
# upstream, streams held for an hour. Writes DIR/nginx.conf (logs and temp files under DIR).
#   write_nginx_conf DIR LISTEN PROXY_PASS [TOP_LINES] [HTTP_LINES] [LOCATION_LINES]
# The extra lines go before `worker_processes` (load_module), inside `http` before `server`, and inside `location`.
write_nginx_conf() {
    local dir=$1 listen=$2 pass=$3 top=${4:-} http=${5:-} location=${6:-}
    mkdir -p "$dir/logs"
    cat >"$dir/nginx.conf" <<CONF
${top}worker_processes 1;
worker_rlimit_nofile 20000;
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;
events { worker_connections 20000; }
http {
    access_log off;
    client_body_temp_path $dir/body;
    proxy_temp_path $dir/proxy;
    fastcgi_temp_path $dir/fastcgi;
    uwsgi_temp_path $dir/uwsgi;
    scgi_temp_path $dir/scgi;
${http}    server {
        listen $listen backlog=4096;
        location / {
${location}            proxy_pass $pass;
            proxy_buffering off;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_read_timeout 3600s;
        }
    }
}
CONF
}
