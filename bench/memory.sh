#!/bin/bash
# bench/memory.sh — what the client side costs in memory, on loopback, against
# build/unbusy in front of the fake upstream (build/fakeup):
#
#   idle   BENCH_IDLE (10,000) keep-alive connections that each sent a request and
#          got its answer: RSS growth per connection
#   slow   BENCH_SLOW (200) clients each reading a 2.2 MB stream at 100 KB/s: the
#          gateway's peak RSS growth as a share of the bytes streamed
#   many   BENCH_MANY (10,000) concurrent slow streams (50 chunks over 20 s): peak
#          RSS, and the p99 of a /healthz probe every 100 ms (the loop's latency)
#
# The gateway runs one worker per usable CPU (the default). The soft fd limit is
# raised to the hard limit; `many` needs two descriptors per stream in the
# gateway and is cut to what the limit allows (printed). Every process started
# here is stopped by PID on exit; a run takes about 3 minutes. BENCH_MODES picks
# the measurements ("idle slow many"); BENCH_BUILD=0 uses build/ as it is.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
IDLE=${BENCH_IDLE:-10000}
SLOWN=${BENCH_SLOW:-200}
MANY=${BENCH_MANY:-10000}
MANY_S=${BENCH_MANY_SECONDS:-20}
LOAD="$ROOT/bench/memload.mjs"
MODES=${BENCH_MODES:-idle slow many}

ulimit -n "$(ulimit -Hn)" 2>/dev/null
LIMIT=$(ulimit -n)
if [ $((MANY * 2 + 200)) -gt "$LIMIT" ]; then
    MANY=$(((LIMIT - 200) / 2))
    echo "memory: fd limit $LIMIT: $MANY concurrent streams"
fi

BENCH_NAME=memory
. "$ROOT/bench/lib.sh"

"$TMP/bin/fakeup" --port 0 >"$TMP/fake.out" 2>"$TMP/fake.err" &
FAKE=$!; PIDS="$PIDS $FAKE"
wait_for 5 has_line "$TMP/fake.out" '^listening' || die "the fake upstream did not start"
FPORT=$(sed -n 's/^listening \([0-9]*\).*/\1/p' "$TMP/fake.out")

start_unbusy() {
    local port=$1
    cat >"$TMP/unbusy.yaml" <<YAML
server:
  listen: 127.0.0.1:$port
  max_connections: 40000
  access_log: off
providers:
  fake:
    base_url: http://127.0.0.1:$FPORT/v1
models:
  m:
    - provider: fake
      model: up-m
YAML
    "$TMP/bin/unbusy" --config "$TMP/unbusy.yaml" >"$TMP/unbusy.out" 2>"$TMP/unbusy.err" &
    GW=$!; PIDS="$PIDS $GW"
    wait_for 10 http_up "http://127.0.0.1:$port/healthz" || die "unbusy did not start"
}

PORT=18480
for mode in $MODES; do
    start_unbusy $PORT
    case $mode in
    idle) run "$TMP/r" node "$LOAD" idle $PORT "$GW" "$IDLE" ;;
    slow) run "$TMP/r" node "$LOAD" slow $PORT "$GW" "$SLOWN" 2200000 100000 ;;
    many) run "$TMP/r" node "$LOAD" many $PORT "$GW" "$MANY" "$MANY_S" ;;
    esac
    grep -h "^RESULT" "$TMP/r" | sed "s/^RESULT/unbusy/" || tail -5 "$TMP/r"
    stop_pid "$GW"
    PORT=$((PORT + 1))
done
