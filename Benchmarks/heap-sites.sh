#!/usr/bin/env bash
# Where the heap of held streams goes, by allocation site: runs one sse-gateway binary under heaptrack (installed with
# apt-get when missing), holds N idle streams (1 event/10 s) through it for 12 s, stops it, and prints the bytes per
# held stream at the heap's peak, summed by the first frame outside the allocator and then by the first frame in
# the gateway's own code. Loopback only (127.0.0.1:9100 upstream, :8080 gateway). See README.md, changes 15 and 22.
# Usage: Benchmarks/heap-sites.sh [GATEWAY] [STREAMS] [ROWS]
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
GATEWAY=$(realpath "${1:-$HERE/../.build/release/sse-gateway}")
STREAMS=${2:-2000}
ROWS=${3:-30}
LOAD="$HERE/.build/release/sse-load"
source "$HERE/common.sh"
require_free_ports 127.0.0.1:9100 127.0.0.1:8080 127.0.0.1:9901
command -v heaptrack >/dev/null || apt_install heaptrack
WORK=$(mktemp -d /tmp/sse-heap.XXXXXX)
ulimit -n "$(ulimit -Hn)"
bench_gateway_config "$WORK/gateway.yml" 127.0.0.1:8080 127.0.0.1:9100
"$LOAD" upstream --listen 127.0.0.1:9100 --duration 90s >"$WORK/upstream.log" 2>&1 &
UPSTREAM=$!
heaptrack -o "$WORK/heap" "$GATEWAY" serve --config "$WORK/gateway.yml" >"$WORK/gateway.log" 2>&1 &
TRACKER=$!
trap 'kill $UPSTREAM 2>/dev/null; pkill -INT -f "^$GATEWAY serve --config $WORK" 2>/dev/null; wait 2>/dev/null || true' EXIT
log() { echo "[heap-sites] $*" >&2; }
wait_port 127.0.0.1:8080
"$LOAD" client --target "http://127.0.0.1:8080/b?interval_ms=10000&size=100" --streams "$STREAMS" --duration 12s \
    --json >"$WORK/client.json"
held=$(jq .streams_held "$WORK/client.json")
pkill -INT -f "^$GATEWAY serve --config $WORK"
wait "$TRACKER" || true
heaptrack_print -f "$WORK"/heap.*zst --flamegraph-cost-type peak -F "$WORK/stacks.txt" >/dev/null
echo "held $held streams; raw stacks in $WORK/stacks.txt"
python3 - "$WORK/stacks.txt" "$held" "$ROWS" <<'PY'
import collections, re, subprocess, sys
path, held, rows = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
allocator = re.compile(r'^(swift_slowAlloc|swift_allocObject|malloc|calloc|realloc|posix_memalign|aligned_alloc|'
                       r'swift::|__GI_|_swift_allocObject|.*_allocateUninitialized|.*createNewBuffer|'
                       r'.*ManagedBuffer.*create|.*_StringGuts)')
stacks, names = [], set()
for line in open(path):
    frames, _, cost = line.rstrip('\n').rpartition(' ')
    frames = [f.strip() for f in frames.split(';') if f.strip()]
    stacks.append((frames, int(cost)))
    names.update(frames)
names = sorted(names)
demangled = subprocess.run(['swift', 'demangle', '--simplified', '--compact'], input='\n'.join(names),
                           capture_output=True, text=True).stdout.splitlines()
readable = dict(zip(names, demangled))
site, ours = collections.Counter(), collections.Counter()
for frames, cost in stacks:
    frames = [readable[f] for f in reversed(frames)]  # leaf first
    first = next((f for f in frames if not allocator.match(f)), '?')
    site[first[:140]] += cost
    own = next((f for f in frames if re.search(r'Gateway|ClientConnection|ProxyExchange|Upstream(Channel|Connector)|'
                                               r'OpenConnections|HTTP1|Parked', f)), None)
    ours[(own or '(NIO, runtime)')[:140]] += cost
total = sum(cost for _, cost in stacks)
print(f'peak heap {total / 1024:.0f} KiB, {total / held:.0f} B per held stream (fixed costs included)')
for title, counter in (('by allocation site', site), ('by the gateway frame that led to it', ours)):
    print(f'\n{title} (B per held stream)')
    for name, cost in counter.most_common(rows):
        print(f'{cost / held:8.0f}  {name}')
PY
