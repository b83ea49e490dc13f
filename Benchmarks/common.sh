# Shell functions the benchmark scripts share (sourced by run.sh and share.sh, not run). Each caller defines `log`.

wait_port() {  # host:port: until something accepts there (10 s)
    local host=${1%:*} port=${1##*:}
    for _ in $(seq 1 100); do
        if (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    log "nothing listening on $1"; return 1
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
