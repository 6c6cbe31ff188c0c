#!/bin/bash
# bench/memory.sh — what the client side costs in memory, on loopback, against
# build/unbusy in front of the fake upstream (build/fakeup):
#
#   idle   BENCH_IDLE (10,000) keep-alive connections that each sent a request and
#          got its answer: RSS growth per connection
#   slow   BENCH_SLOW (200) clients each reading a 2.2 MB stream at 100 KB/s: the
#          gateway's peak RSS growth as a share of the bytes streamed
#   many   BENCH_MANY (10,000) concurrent slow streams (50 chunks over 20 s): peak
#          RSS, and the p99 of a /healthz probe every 100 ms (the loop's latency, by
#          bench/probe.c at a real-time priority where it may have one): over
#          the whole run, and once every stream flows (the opening rush of 10,000
#          connections in 0.2 s left out: `flowing_p99_ms`)
#
# The gateway runs one worker per usable CPU (the default), with the deployment's
# max_concurrency set above BENCH_MANY: what is measured is the client side, not
# the learnt limit (which starts at 20 and is capped at 1,000, so with the
# defaults most of 10,000 streams are queued and then shed with 503). `many`
# needs two descriptors per stream in the gateway (client and upstream) and one
# per stream in the fake and in the client: the soft fd limit is raised to the
# hard limit, and the stream count cut to what it allows (printed). Every process started here is stopped
# by PID on exit; a run takes about 3 minutes, and the `many` client gives up
# after 3 x BENCH_MANY_SECONDS + 60 s. BENCH_MODES picks the measurements
# ("idle slow many"); BENCH_BUILD=0 uses build/ as it is; BENCH_PIN=1 puts the
# gateways on CPU 0 and everything else on CPU 1.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
IDLE=${BENCH_IDLE:-10000}
SLOWN=${BENCH_SLOW:-200}
MANY=${BENCH_MANY:-10000}
MANY_S=${BENCH_MANY_SECONDS:-20}
LOAD="$ROOT/bench/memload.mjs"
MODES=${BENCH_MODES:-idle slow many}

ulimit -Sn "$(ulimit -Hn)" 2>/dev/null
LIMIT=$(ulimit -n)
if [ $((MANY * 2 + 200)) -gt "$LIMIT" ]; then
    MANY=$(((LIMIT - 200) / 2))
    echo "memory: fd limit $LIMIT: $MANY concurrent streams"
fi

BENCH_NAME=memory
. "$ROOT/bench/lib.sh"

# BENCH_PIN=1: the gateways on CPU 0, the fake, the load and the probe on CPU 1 (as on a
# gateway's own machine, where no load generator takes its CPU); one worker then, the default
# for one usable CPU.
GWPIN=
if [ "${BENCH_PIN:-0}" = 1 ]; then
    GWPIN="taskset -c 0"
    taskset -p -c 1 $$ >/dev/null
fi

run_fake up nice -n 19 "$TMP/bin/fakeup" --port 0

# The loop's latency is probed by bench/probe.c at a real-time priority where this user may
# set one (root): woken at once, it measures the gateway rather than the scheduling of a
# machine whose other CPU runs 10,000 clients. Elsewhere at the usual priority (printed).
make -C "$ROOT/bench" --no-print-directory ../build/bench/probe >/dev/null || exit 1
cp "$ROOT/build/bench/probe" "$TMP/bin/" || exit 1
if chrt -f 50 true 2>/dev/null; then
    export MEMLOAD_PROBE="chrt -f 50 $TMP/bin/probe"
else
    export MEMLOAD_PROBE="$TMP/bin/probe"
    echo "memory: no real-time priority here: the probe runs at the usual one"
fi

start_unbusy() {
    local port=$1 name=${2:-unbusy}
    cat >"$TMP/$name.yaml" <<YAML
server:
  listen: 127.0.0.1:$port
  max_connections: 40000
  access_log: off
providers:
  fake:
    base_url: http://127.0.0.1:$FAKE_PORT/v1
models:
  m:
    - provider: fake
      model: up-m
      max_concurrency: $((MANY + IDLE + 1000))
YAML
    $GWPIN "$TMP/bin/unbusy" --config "$TMP/$name.yaml" >"$TMP/$name.out" 2>"$TMP/$name.err" &
    GW=$!; PIDS="$PIDS $GW"
    wait_for 10 http_up "http://127.0.0.1:$port/healthz" || die "unbusy did not start"
}

# SYNs dropped because an accept queue was full (TcpExtListenOverflows), machine-wide
listen_overflows() { awk '/^TcpExt:/ { if (!n) { for (i = 1; i <= NF; i++) if ($i == "ListenOverflows") c = i; n = 1 } else print $c }' /proc/net/netstat; }

PORT=18480
for mode in $MODES; do
    start_unbusy $PORT
    case $mode in
    idle) run "$TMP/r" node "$LOAD" idle $PORT "$GW" "$IDLE" ;;
    slow) run "$TMP/r" node "$LOAD" slow $PORT "$GW" "$SLOWN" 2200000 100000 ;;
    many)
        # an idle gateway beside it, probed right after each probe of the loaded one: what the
        # machine's scheduling alone adds to a probe
        LOADED=$GW
        start_unbusy $((PORT + 100)) control
        CONTROL=$GW; GW=$LOADED
        OVF0=$(listen_overflows)
        MEMLOAD_CONTROL_PORT=$((PORT + 100)) run "$TMP/r" node "$LOAD" many $PORT "$GW" "$MANY" "$MANY_S"
        echo "accept queue overflows during the run (whole machine): $(($(listen_overflows) - OVF0))"
        stop_pid "$CONTROL" ;;
    esac
    if grep -q "^RESULT" "$TMP/r"; then grep -h "^RESULT" "$TMP/r" | sed "s/^RESULT/unbusy/"; else tail -5 "$TMP/r"; fi
    [ -n "${MEMLOAD_TRACE:-}" ] && grep -h "^probe" "$TMP/r"
    stop_pid "$GW"
    PORT=$((PORT + 1))
done
