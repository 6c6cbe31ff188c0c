#!/bin/sh
# bench/run.sh — unbusy's overhead against a fake upstream on loopback, next to
# nginx and HAProxy as plain reverse proxies (logging off, keep-alive to the
# fake), plus the upstream client comparison
# (bench/transport.c). Prints markdown tables; bench/README.md explains them.
#
# Environment (all optional):
#   BENCH_DURATION=10     seconds per wrk run
#   BENCH_CONNS=64        connections of the throughput runs
#   BENCH_THREADS=1       wrk threads
#   BENCH_WORKERS=default unbusy server.workers / nginx worker_processes / HAProxy nbthread to
#                         try ("default": unbusy's default config — no workers key, access
#                         log on; nginx "auto"; HAProxy its default)
#   BENCH_ACCESS_LOG=on   off: unbusy with access_log: off
#   BENCH_SPLIT=1         1: the proxies on CPU 0, wrk and the fake on CPU 1 (two CPUs or more),
#                         so the CPU a proxy spends is not shared with the load
#   BENCH_REPEAT=1        runs per cell; the tables show the median
#   BENCH_TRANSPORT_REQUESTS=10000   sequential requests per client in the transport bench
#   BENCH_PROFILE=0       1: perf-record unbusy (first worker count) during a stream run,
#                         and count system calls per request (strace -c) for unbusy and nginx
#   BENCH_BUILD=1         0: use the binaries in build/ as they are (no `make all` first)
#   BENCH_FAKE=fast       the upstream: "fast" (bench/fastfake.c: each answer in one write, about
#                         25x fakeup's rate, so the proxies are measured) or "fakeup" (the test
#                         suite's fake: one write per event, about 5,000 streams/s on one CPU)
#   BENCH_PIN=1           1: the 1-connection runs are done twice, once as they come and once
#                         with wrk, the fake and the proxy pinned to one CPU (the last), so a
#                         request's path has no cross-CPU wake-ups; 0: only as they come
#
# Everything listens on 127.0.0.1; every process started here is stopped on
# exit (by PID); each run is bounded by BENCH_DURATION plus a fixed margin.
set -u

ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/bench/proxies.sh"
DURATION=${BENCH_DURATION:-10}
CONNS=${BENCH_CONNS:-64}
THREADS=${BENCH_THREADS:-1}
WORKERS=${BENCH_WORKERS:-default}
ACCESS_LOG=${BENCH_ACCESS_LOG:-on}
SPLIT=${BENCH_SPLIT:-1}
[ "$(nproc)" -ge 2 ] || SPLIT=0
PROXY_CPU=0
LOAD_CPU=1
# Prefixes that put a command on its CPU (taskset execs it: $! stays the process's PID).
LOADPIN=""
PROXYPIN=""
[ "$SPLIT" = 1 ] && LOADPIN="taskset -c $LOAD_CPU" && PROXYPIN="taskset -c $PROXY_CPU"
# This script and what it forks (awk, sed) run beside the load, not on the proxies' CPU: a
# fork there delays the proxy measured (an awk ten times a second put a 4-5 ms p99 on one
# connection). Nothing samples during a run either: a fork beside the load slows the load
# that drives the proxy measured, and a sampler ran for unbusy alone.
[ "$SPLIT" = 1 ] && taskset -p -c "$LOAD_CPU" $$ >/dev/null
# home_cpus ROLE: where a process of that role runs outside the pinned runs
home_cpus() {
    if [ "$SPLIT" = 1 ]; then
        if [ "$1" = proxy ]; then echo "$PROXY_CPU"; else echo "$LOAD_CPU"; fi
    else
        echo "0-$(($(nproc) - 1))"
    fi
}
REPEAT=${BENCH_REPEAT:-1}
TRANSPORT_REQUESTS=${BENCH_TRANSPORT_REQUESTS:-10000}
PROFILE=${BENCH_PROFILE:-0}
PIN=${BENCH_PIN:-1}
PIN_CPU=$(($(nproc) - 1))
ALL_CPUS=0-$PIN_CPU
FAKE_BEHAVIOR="chunks=20"
FAKE_KIND=${BENCH_FAKE:-fast}
WARMUP=1

sh "$ROOT/tests/deps.sh" wrk nginx-light haproxy curl libcurl4-openssl-dev || exit 1
if [ "$PROFILE" = 1 ]; then sh "$ROOT/tests/deps.sh" linux-perf strace || exit 1; fi
if [ "${BENCH_BUILD:-1}" = 1 ]; then
    make -C "$ROOT" --no-print-directory all >/dev/null || exit 1
fi
make -C "$ROOT/bench" --no-print-directory >/dev/null || exit 1

TMP=$(mktemp -d "${TMPDIR:-/tmp}/unbusy-bench.XXXXXX") || exit 1
PIDS=""
# Private copies: a rebuild while this runs changes nothing, and perf finds the symbols.
mkdir "$TMP/bin" && cp "$ROOT/build/unbusy" "$ROOT/build/fakeup" "$ROOT/build/bench/transport" \
    "$ROOT/build/bench/json_rewrite" "$ROOT/build/bench/fastfake" "$TMP/bin/" || { rm -rf "$TMP"; exit 1; }
UNBUSY=$TMP/bin/unbusy
FAKEUP=$TMP/bin/fakeup
TRANSPORT=$TMP/bin/transport
LUA=$ROOT/bench/post.lua

# True while the process exists and is not a zombie (read by the shell: no fork).
alive() {
    local st
    { read -r st <"/proc/$1/stat"; } 2>/dev/null || return 1
    st=${st##*") "}
    st=${st%% *}
    [ -n "$st" ] && [ "$st" != Z ]
}

cleanup() {
    local p i
    for p in $PIDS; do kill -TERM "$p" 2>/dev/null; done
    i=0
    for p in $PIDS; do
        while alive "$p" && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
        alive "$p" && kill -KILL "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
    PIDS=""
    if [ "${BENCH_KEEP:-0}" = 1 ]; then echo "bench: kept $TMP" >&2; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

die() { echo "bench: $*" >&2; exit 1; }

# wait_for SECONDS COMMAND...: polls COMMAND every 50 ms until it succeeds.
wait_for() {
    local n=$(($1 * 20)); shift
    while [ "$n" -gt 0 ]; do
        "$@" && return 0
        sleep 0.05; n=$((n - 1))
    done
    return 1
}

has_line() { grep -q "$2" "$1" 2>/dev/null; }
http_up() { [ "$(curl -s -o /dev/null -m 1 -w '%{http_code}' "$1")" != 000 ]; }

# CPU time (user + system, clock ticks) of the processes named.
cpu_ticks() {
    local t=0 p v
    for p in "$@"; do
        v=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | awk '{print $12 + $13}')
        t=$((t + ${v:-0}))
    done
    echo "$t"
}
TICK_US=$((1000000 / $(getconf CLK_TCK)))

kb() { awk -v k="$2" '$1 == k":" {print $2}' "/proc/$1/status" 2>/dev/null; }

# ---- the fake upstream ----
case $FAKE_KIND in
fast) $LOADPIN "$TMP/bin/fastfake" --port 0 --chunks 20 >"$TMP/fake.out" 2>"$TMP/fake.err" & ;;
fakeup) $LOADPIN "$FAKEUP" --port 0 --behavior "$FAKE_BEHAVIOR" >"$TMP/fake.out" 2>"$TMP/fake.err" & ;;
*) die "BENCH_FAKE: fast or fakeup" ;;
esac
FAKE_PID=$!
PIDS="$PIDS $FAKE_PID"
wait_for 10 has_line "$TMP/fake.out" '^listening ' || die "fakeup did not start: $(cat "$TMP/fake.err")"
FAKE_PORT=$(awk '/^listening/ {print $2; exit}' "$TMP/fake.out")

# ---- unbusy, one per worker count ----
# Model "bench" goes through a provider with stream_upstream: false (a
# non-stream request is passed through, as nginx does); "bench-assemble"
# through the default (asks upstream for a stream and assembles the JSON).
start_unbusy() {
    local w=$1 pid port wl=""
    [ "$w" = default ] || wl="  workers: $w"
    [ "$ACCESS_LOG" = off ] && wl="$wl
  access_log: off"
    unbusy_bench_yaml "$FAKE_PORT" "$wl" >"$TMP/unbusy-$w.yaml"
    $PROXYPIN "$UNBUSY" --config "$TMP/unbusy-$w.yaml" >"$TMP/unbusy-$w.out" 2>"$TMP/unbusy-$w.err" &
    pid=$!
    PIDS="$PIDS $pid"
    wait_for 10 has_line "$TMP/unbusy-$w.err" 'listening on http://127.0.0.1:' ||
        die "unbusy did not start: $(cat "$TMP/unbusy-$w.err")"
    port=$(sed -n 's|.*listening on http://127.0.0.1:\([0-9]*\).*|\1|p' "$TMP/unbusy-$w.err" | head -n 1)
    wait_for 10 http_up "http://127.0.0.1:$port/healthz" || die "unbusy /healthz did not answer"
    echo "$pid" >"$TMP/unbusy-$w.pid"
    echo "$port" >"$TMP/unbusy-$w.port"
    kb "$pid" VmRSS >"$TMP/unbusy-$w.rss_idle"
    echo 0 >"$TMP/unbusy-$w.rss_peak"
}

# ---- nginx, one per worker count ----
start_nginx() {
    local w=$1 d=$TMP/nginx-$w tries port pid
    mkdir -p "$d/logs"
    tries=0
    while :; do
        tries=$((tries + 1))
        [ $tries -gt 10 ] && die "nginx did not start: $(tail -n 3 "$d/logs/error.log")"
        port=$(awk -v s="$$$tries$w" 'BEGIN {srand(s); print 20000 + int(rand() * 40000)}')
        cat >"$d/nginx.conf" <<EOF
worker_processes $([ "$w" = default ] && echo auto || echo "$w");
pid $d/nginx.pid;
error_log $d/logs/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $d/client_body;
    proxy_temp_path $d/proxy;
    fastcgi_temp_path $d/fastcgi;
    uwsgi_temp_path $d/uwsgi;
    scgi_temp_path $d/scgi;
    keepalive_requests 1000000;
    upstream fake {
        server 127.0.0.1:$FAKE_PORT;
        keepalive 64;
        keepalive_requests 1000000;
    }
    server {
        listen 127.0.0.1:$port;
        location / {
            proxy_pass http://fake;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
        }
    }
}
EOF
        $PROXYPIN nginx -p "$d" -e "$d/logs/error.log" -c "$d/nginx.conf" -g 'daemon off;' 2>>"$d/logs/stderr" &
        pid=$!
        if wait_for 5 http_up "http://127.0.0.1:$port/v1/models"; then
            alive "$pid" && break
        fi
        kill -TERM "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    PIDS="$PIDS $pid"
    echo "$pid" >"$d.pid"
    echo "$port" >"$d.port"
}

nginx_workers() { ps -o pid= --ppid "$(cat "$TMP/nginx-$1.pid")" | tr -d ' '; }

# ---- HAProxy, one per worker count: a plain reverse proxy, no logging, idle server
# connections reused by any request (http-reuse always), keep-alive on both sides ----
start_haproxy() {
    local w=$1 d=$TMP/haproxy-$w tries port pid nb=""
    mkdir -p "$d"
    [ "$w" = default ] || nb=$w
    tries=0
    while :; do
        tries=$((tries + 1))
        [ $tries -gt 10 ] && die "haproxy did not start: $(tail -n 3 "$d/stderr")"
        port=$(awk -v s="$$$tries$w" 'BEGIN {srand(s + 7); print 20000 + int(rand() * 40000)}')
        haproxy_bench_cfg "$port" "$FAKE_PORT" "$nb" >"$d/haproxy.cfg"
        $PROXYPIN haproxy -f "$d/haproxy.cfg" -db >"$d/stdout" 2>>"$d/stderr" &
        pid=$!
        if wait_for 5 http_up "http://127.0.0.1:$port/v1/models"; then
            alive "$pid" && break
        fi
        kill -TERM "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    PIDS="$PIDS $pid"
    echo "$pid" >"$d.pid"
    echo "$port" >"$d.port"
}

# run_wrk TARGET SCENARIO URL STREAM MODEL LOAD: appends a result line.
# LOAD: a connection count, or "1p" for one connection with everything pinned to one CPU.
run_wrk() {
    local target=$1 scen=$2 url=$3 stream=$4 model=$5 load=$6 conns=${6%p} watch c0 c1 wpid f r line pin p peak k v
    case $target in
    direct) watch=$FAKE_PID ;;
    unbusy-*) watch=$(cat "$TMP/$target.pid") ;;
    nginx-*) watch=$(nginx_workers "${target#nginx-}") ;;
    haproxy-*) watch=$(cat "$TMP/$target.pid") ;;
    esac
    pin=""
    [ "$SPLIT" = 1 ] && pin="taskset -c $LOAD_CPU"
    if [ "$load" = 1p ]; then
        pin="taskset -c $PIN_CPU"
        for p in $FAKE_PID $watch; do taskset -a -p -c "$PIN_CPU" "$p" >/dev/null; done
    fi
    c0=$(cpu_ticks $watch)
    BENCH_STREAM=$stream BENCH_MODEL=$model timeout -k 5 $((DURATION + 30)) \
        $pin wrk -t "$THREADS" -c "$conns" -d "${DURATION}s" --latency -s "$LUA" "$url" >"$TMP/wrk.out" 2>&1 &
    wpid=$!
    PIDS="$PIDS $wpid"
    wait "$wpid"
    PIDS=$(echo "$PIDS" | sed "s/ $wpid\$//")
    c1=$(cpu_ticks $watch)
    case $target/$load in
    unbusy-*/1 | unbusy-*/1p) ;; # the latency runs: VmHWM at the end has their peak
    unbusy-*)
        # VmRSS once the run is over, read by the shell: a sampler during the run (a sleep
        # forked ten times a second) ran for unbusy alone and took CPU from the load beside
        # it; VmHWM at the end has the peak
        f=$TMP/$target.rss_peak
        peak=$(cat "$f")
        while read -r k v _; do
            [ "$k" = VmRSS: ] && [ "$v" -gt "$peak" ] && peak=$v
        done <"/proc/$watch/status"
        echo "$peak" >"$f" ;;
    esac
    if [ "$load" = 1p ]; then
        taskset -a -p -c "$(home_cpus load)" "$FAKE_PID" >/dev/null
        [ "$target" = direct ] ||
            for p in $watch; do taskset -a -p -c "$(home_cpus proxy)" "$p" >/dev/null; done
    fi
    line=$(grep '^RESULT' "$TMP/wrk.out")
    [ -n "$line" ] || die "wrk failed for $target $scen: $(cat "$TMP/wrk.out")"
    echo "$target $scen $load $line cpu_ticks=$((c1 - c0))" >>"$TMP/results"
}

warm() { # a short run, so pools and caches are filled before measuring
    BENCH_STREAM=$2 BENCH_MODEL=$3 timeout -k 5 30 $LOADPIN wrk -t 1 -c "$CONNS" -d "${WARMUP}s" -s "$LUA" "$1" \
        >/dev/null 2>&1
}

for w in $WORKERS; do start_unbusy "$w"; start_nginx "$w"; start_haproxy "$w"; done

url_of() {
    case $1 in
    direct) echo "http://127.0.0.1:$FAKE_PORT/v1/chat/completions" ;;
    *) echo "http://127.0.0.1:$(cat "$TMP/$1.port")/v1/chat/completions" ;;
    esac
}

TARGETS="direct"
for w in $WORKERS; do TARGETS="$TARGETS unbusy-$w nginx-$w haproxy-$w"; done

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
for t in $TARGETS; do
    warm "$(url_of "$t")" 1 bench
    warm "$(url_of "$t")" 0 bench
done
for w in $WORKERS; do warm "$(url_of "unbusy-$w")" 0 bench-assemble; done

# Cells: scenario stream-flag model; "assemble" runs against unbusy only.
LOADS="1 $CONNS"
[ "$PIN" = 1 ] && LOADS="1p $LOADS"
run=0
while [ $run -lt "$REPEAT" ]; do
    run=$((run + 1))
    for load in $LOADS; do
        for cell in "stream 1 bench" "nonstream 0 bench" "assemble 0 bench-assemble"; do
            set -- $cell
            for t in $TARGETS; do
                case "$1:$t" in assemble:direct | assemble:nginx-* | assemble:haproxy-*) continue ;; esac
                echo "bench: $t $1 c=$load (run $run/$REPEAT)" >&2
                run_wrk "$t" "$1" "$(url_of "$t")" "$2" "$3" "$load"
            done
        done
    done
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

for w in $WORKERS; do
    kb "$(cat "$TMP/unbusy-$w.pid")" VmHWM >"$TMP/unbusy-$w.rss_hwm"
done

# ---- optional profile of unbusy under the stream load ----
if [ "$PROFILE" = 1 ]; then
    set -- $WORKERS
    pw=$1
    pid=$(cat "$TMP/unbusy-$pw.pid")
    echo "bench: perf record on unbusy-$pw, stream c=$CONNS" >&2
    perf record -F 1999 -g -p "$pid" -o "$TMP/perf.data" -- sleep "$DURATION" >/dev/null 2>&1 &
    ppid=$!
    PIDS="$PIDS $ppid"
    BENCH_STREAM=1 BENCH_MODEL=bench timeout -k 5 $((DURATION + 30)) \
        $LOADPIN wrk -t "$THREADS" -c "$CONNS" -d "${DURATION}s" -s "$LUA" "$(url_of "unbusy-$pw")" >/dev/null 2>&1
    wait "$ppid"
    PIDS=$(echo "$PIDS" | sed "s/ $ppid\$//")
    perf report -i "$TMP/perf.data" --stdio --no-children --sort dso -g none 2>/dev/null |
        grep -E '^ +[0-9]' >"$TMP/perf.dso"
    perf report -i "$TMP/perf.data" --stdio --no-children --sort dso,symbol -g none 2>/dev/null |
        grep -E '^ +[0-9]' | head -n 15 >"$TMP/perf.top"
    # The same for a non-stream client (the default: a stream upstream, assembled).
    echo "bench: perf record on unbusy-$pw, assemble c=$CONNS" >&2
    perf record -F 1999 -g -p "$pid" -o "$TMP/perf-asm.data" -- sleep "$DURATION" >/dev/null 2>&1 &
    ppid=$!
    PIDS="$PIDS $ppid"
    BENCH_STREAM=0 BENCH_MODEL=bench-assemble timeout -k 5 $((DURATION + 30)) \
        $LOADPIN wrk -t "$THREADS" -c "$CONNS" -d "${DURATION}s" -s "$LUA" "$(url_of "unbusy-$pw")" >/dev/null 2>&1
    wait "$ppid"
    PIDS=$(echo "$PIDS" | sed "s/ $ppid\$//")
    perf report -i "$TMP/perf-asm.data" --stdio --no-children --sort dso,symbol -g none 2>/dev/null |
        grep -E '^ +[0-9]' | head -n 15 >"$TMP/perf-asm.top"
    # System calls per stream request at 1 connection, unbusy next to nginx.
    for t in "unbusy-$pw" "nginx-$pw"; do
        case $t in unbusy-*) watch=$(cat "$TMP/$t.pid") ;; *) watch=$(nginx_workers "$pw") ;; esac
        args=""
        for p in $watch; do args="$args -p $p"; done
        strace -c -f $args -o "$TMP/strace.$t" 2>"$TMP/strace.$t.err" &
        spid=$!
        PIDS="$PIDS $spid"
        wait_for 10 has_line "$TMP/strace.$t.err" attached || die "strace did not attach"
        BENCH_STREAM=1 BENCH_MODEL=bench timeout -k 5 30 wrk -t 1 -c 1 -d 2s -s "$LUA" "$(url_of "$t")" \
            >"$TMP/wrk.out" 2>&1
        kill -INT "$spid"
        wait "$spid"
        PIDS=$(echo "$PIDS" | sed "s/ $spid\$//")
        n=$(sed -n 's/^RESULT requests=\([0-9]*\).*/\1/p' "$TMP/wrk.out")
        awk -v n="${n:-0}" -v t="$t" '$NF != "syscall" && $NF != "total" && $4 ~ /^[0-9]+$/ && n > 0 {
            r = $4 / n; if (r >= 0.05) { tot += r; l = l sprintf("%s%s %.1f", l == "" ? "" : ", ", $NF, r) } }
            END { printf "%s %.1f %s\n", t, tot, l }' "$TMP/strace.$t" >>"$TMP/syscalls"
    done
fi

# ---- upstream clients: libcurl multi-socket on libuv vs unbusy's own ----
echo "bench: transport (own client, then curl)" >&2
timeout -k 5 $((2 * DURATION + 120)) "$TRANSPORT" --port "$FAKE_PORT" --requests "$TRANSPORT_REQUESTS" \
    --concurrency "$CONNS" --duration "$DURATION" >"$TMP/transport.out" 2>&1 ||
    die "transport bench failed: $(cat "$TMP/transport.out")"

echo "bench: json_rewrite" >&2
timeout -k 5 120 "$TMP/bin/json_rewrite" >"$TMP/json_rewrite.out" 2>&1 ||
    echo "json_rewrite failed" >>"$TMP/json_rewrite.out"

# ---- report ----
echo
echo "## Setup"
echo
if c=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null); then
    git -C "$ROOT" diff --quiet HEAD -- src 2>/dev/null || c="$c, src/ with uncommitted changes"
    echo "- unbusy at commit $c"
fi
echo "- CPU: $(nproc) x $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1); kernel $(uname -r)"
[ "$SPLIT" = 1 ] && echo "- the proxies on CPU $PROXY_CPU, wrk and the fake on CPU $LOAD_CPU; unbusy workers: $WORKERS, access log $ACCESS_LOG"
echo "- $(wrk -v 2>&1 | head -n 1 | cut -d' ' -f1-2); $(nginx -v 2>&1 | sed 's/.*: //'); $(haproxy -v 2>&1 | head -n 1 | cut -d' ' -f1-3); libcurl $(curl-config --version | cut -d' ' -f2); libuv $(pkg-config --modversion libuv 2>/dev/null)"
echo "- fake upstream: $FAKE_KIND (20 content chunks, usage, [DONE]); wrk -t $THREADS, ${DURATION} s per run, median of $REPEAT run(s)"
[ "$PIN" = 1 ] && echo "- \"pinned\": 1-connection runs with wrk, the fake and the proxy on CPU $PIN_CPU only"
echo "- load average before: $LOAD_BEFORE, after: $LOAD_AFTER"

awk -v conns="$CONNS" -v tick_us="$TICK_US" -v workers="$WORKERS" -v pin="$PIN" '
function kv(s, k,    i, n, a, b) {
    n = split(s, a, " ")
    for (i = 1; i <= n; i++) { split(a[i], b, "="); if (b[1] == k) return b[2] }
    return ""
}
function median(key,    n, i, j, v, a) {
    n = cnt[key]
    for (i = 1; i <= n; i++) a[i] = val[key, i] + 0
    for (i = 2; i <= n; i++) { v = a[i]; for (j = i - 1; j >= 1 && a[j] > v; j--) a[j + 1] = a[j]; a[j + 1] = v }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
function put(key, v) { cnt[key]++; val[key, cnt[key]] = v; have[key] = 1 }
function get(t, s, l, m,    key) { key = t SUBSEP s SUBSEP l SUBSEP m; return (key in have) ? median(key) : "" }
function num(v, fmt) { return v == "" ? "-" : sprintf(fmt, v) }
# The direct baseline for a scenario: the client asked for a non-stream answer in "assemble".
function base(s) { return s == "assemble" ? "nonstream" : s }
function added(t, s, l, m,    a, d) {
    a = get(t, s, l, m); d = get("direct", base(s), l, m)
    return (a == "" || d == "") ? "-" : sprintf("%+d", a - d)
}
function label(t,    n) { if (t == "direct") return "direct (fake only)"; n = t; sub(/-/, " w", n); return n }
{
    t = $1; s = $2; l = $3; line = $0
    req = kv(line, "requests"); dur = kv(line, "duration_us")
    put(t SUBSEP s SUBSEP l SUBSEP "rps", req / (dur / 1e6))
    put(t SUBSEP s SUBSEP l SUBSEP "p50", kv(line, "p50_us"))
    put(t SUBSEP s SUBSEP l SUBSEP "p99", kv(line, "p99_us"))
    put(t SUBSEP s SUBSEP l SUBSEP "err", kv(line, "errors"))
    put(t SUBSEP s SUBSEP l SUBSEP "cpu", req > 0 ? kv(line, "cpu_ticks") * tick_us / req : 0)
    if (!(t in seen)) { seen[t] = 1; order[++nt] = t }
}
END {
    split("stream nonstream assemble", scen, " ")
    title["stream"] = "Stream (stream:true, 20 content chunks, usage, [DONE])"
    title["nonstream"] = "Non-stream, passed through (unbusy: stream_upstream: false)"
    title["assemble"] = "Non-stream, unbusy asks upstream for a stream and assembles the JSON (the default); added = vs direct non-stream"
    for (i = 1; i <= 3; i++) {
        s = scen[i]
        printf "\n### %s\n\n", title[s]
        printf "| path |"
        if (pin == 1) printf " pinned p50 µs | pinned p99 µs | added p50 | added p99 |"
        printf " p50 µs | p99 µs | added p50 | added p99 | %d conns req/s | p50 ms | p99 ms | CPU µs/req | errors |\n", conns
        printf "|---|"
        if (pin == 1) printf "---:|---:|---:|---:|"
        printf "---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
        for (k = 1; k <= nt; k++) {
            t = order[k]
            if (get(t, s, 1, "p50") == "") continue
            d = t == "direct"
            e = get(t, s, 1, "err") + get(t, s, conns, "err") + get(t, s, "1p", "err")
            printf "| %s |", label(t)
            if (pin == 1)
                printf " %s | %s | %s | %s |", num(get(t, s, "1p", "p50"), "%d"), num(get(t, s, "1p", "p99"), "%d"),
                    d ? "" : added(t, s, "1p", "p50"), d ? "" : added(t, s, "1p", "p99")
            printf " %s | %s | %s | %s | %s | %s | %s | %s | %d |\n",
                num(get(t, s, 1, "p50"), "%d"), num(get(t, s, 1, "p99"), "%d"),
                d ? "" : added(t, s, 1, "p50"), d ? "" : added(t, s, 1, "p99"),
                num(get(t, s, conns, "rps"), "%.0f"), num(get(t, s, conns, "p50") / 1000, "%.1f"),
                num(get(t, s, conns, "p99") / 1000, "%.1f"), num(get(t, s, conns, "cpu"), "%.0f"), e
        }
    }
    printf "\n### Goals\n\n| goal | workers | measured | met |\n|---|---:|---|---|\n"
    nw = split(workers, ws, " ")
    for (i = 1; i <= nw; i++) {
        w = ws[i]; u = "unbusy-" w; n = "nginx-" w
        for (j = 1; j <= 2; j++) {
            s = j == 1 ? "stream" : "nonstream"
            for (m = (pin == 1 ? 1 : 2); m <= 2; m++) {
                l = m == 1 ? "1p" : 1
                a = get(u, s, l, "p50") - get("direct", s, l, "p50")
                b = get(n, s, l, "p50") - get("direct", s, l, "p50")
                printf "| added p50 <= 30 µs, 1 conn, %s, %s | %s | %+d µs (nginx %+d µs) | %s |\n",
                    s, m == 1 ? "pinned" : "not pinned", w, a, b, (a <= 30) ? "yes" : "no"
            }
        }
        ur = get(u, "stream", conns, "rps"); nr = get(n, "stream", conns, "rps")
        printf "| stream req/s at %d conns >= nginx (same workers) | %s | %.0f vs %.0f | %s |\n", conns, w, ur, nr, (ur >= nr) ? "yes" : "no"
        x = "haproxy-" w; hr = get(x, "stream", conns, "rps")
        if (hr > 0)
            printf "| stream req/s at %d conns >= 1.0 x HAProxy | %s | %.0f vs %.0f (%.2f x) | %s |\n", conns, w, ur, hr, ur / hr, (ur >= hr) ? "yes" : "no"
        hr = get(x, "nonstream", conns, "rps")
        split("nonstream assemble", ns, " ")
        for (j = 1; j <= 2; j++) {
            ur = get(u, ns[j], conns, "rps")
            if (hr > 0 && ur != "")
                printf "| %s req/s at %d conns >= 0.8 x HAProxy non-stream | %s | %.0f vs %.0f (%.2f x) | %s |\n", ns[j], conns, w, ur, hr, ur / hr, (ur >= 0.8 * hr) ? "yes" : "no"
        }
    }
}' "$TMP/results"

echo
echo "### unbusy memory (VmRSS)"
echo
echo "| workers | idle, after start | after a 64-connection run (most) | VmHWM at the end |"
echo "|---:|---:|---:|---:|"
for w in $WORKERS; do
    i=$(cat "$TMP/unbusy-$w.rss_idle"); p=$(cat "$TMP/unbusy-$w.rss_peak"); h=$(cat "$TMP/unbusy-$w.rss_hwm")
    met=no; [ "$i" -le 10240 ] && met=yes
    printf '| %s | %.1f MB (goal <= 10 MB: %s) | %.1f MB | %.1f MB |\n' "$w" \
        "$(echo "$i" | awk '{print $1/1024}')" "$met" "$(echo "$p" | awk '{print $1/1024}')" \
        "$(echo "$h" | awk '{print $1/1024}')"
done

echo
echo "### Upstream client: libcurl multi-socket on libuv vs unbusy's own (streaming POST, 20 chunks)"
echo
echo "| client | sequential p50 µs | sequential p99 µs | $CONNS concurrent req/s | client CPU µs/req | errors |"
echo "|---|---:|---:|---:|---:|---:|"
awk '/^RESULT/ {
    for (i = 2; i <= NF; i++) { split($i, b, "="); v[b[1]] = b[2] }
    name = v["client"] == "own" ? "own (transport.c + uphttp.c)" : "libcurl " "multi-socket + libuv"
    printf "| %s | %.0f | %.0f | %.0f | %.1f | %d |\n", name, v["seq_p50_us"], v["seq_p99_us"], v["rps"],
        v["cpu_us_per_req"], v["errors"]
}' "$TMP/transport.out"

echo
echo "### Request-body rewrite, ~100 KB body (bench/json_rewrite.c)"
echo
echo '```'
cat "$TMP/json_rewrite.out"
echo '```'

if [ "$PROFILE" = 1 ] && [ -s "$TMP/perf.top" ]; then
    echo
    echo "### perf: unbusy (workers $pw), stream at $CONNS conns, self time"
    echo
    echo '```'
    cat "$TMP/perf.dso"
    echo
    cat "$TMP/perf.top"
    echo '```'
    echo
    echo "### perf: unbusy (workers $pw), non-stream (assembled) at $CONNS conns, self time"
    echo
    echo '```'
    cat "$TMP/perf-asm.top"
    echo '```'
    echo
    echo "### System calls per stream request, 1 connection (strace -c)"
    echo
    echo '| path | per request | by call |'
    echo '|---|---:|---|'
    awk '{ n = $1; sub(/-/, " w", n); t = $2; $1 = $2 = ""; sub(/^ +/, ""); printf "| %s | %s | %s |\n", n, t, $0 }' \
        "$TMP/syscalls"
fi
