#!/bin/bash
# bench/upgrade.sh — requests lost while the gateway's binary is replaced under
# load (goal: none). One fake upstream, one gateway (2 workers), and
# bench/upgrade_load.mjs for BENCH_SECONDS: BENCH_CLIENTS keep-alive clients
# (half streams of 8 chunks 10 ms apart, half whole answers) and two
# connectors opening a fresh connection per GET /healthz. Three ways to swap
# the process, each in its own run:
#
#   upgrade    kill -USR2: the new process takes the listening sockets over,
#              the old one drains (twice per run: old -> new -> newer)
#   reuseport  a second process started by hand on the same port
#              (SO_REUSEPORT), then SIGTERM to the old one (drain_delay 0)
#   restart    SIGTERM (drain_delay 0), wait for the exit, start again
#
# Prints a markdown table: requests ok / failed, fresh connections ok /
# refused or reset, the whole answers' p99 and max latency, and the failures
# by reason.
#
# Environment: BENCH_SECONDS=9, BENCH_CLIENTS=8, BENCH_MODES="upgrade reuseport restart",
# BENCH_BUILD=1 (0: use build/ as it is). Loopback only; every process started
# here is stopped by PID on exit.
set -u

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SECS=${BENCH_SECONDS:-9}
CLIENTS=${BENCH_CLIENTS:-8}
MODES=${BENCH_MODES:-upgrade reuseport restart}
BENCH_NAME=upgrade
. "$ROOT/bench/lib.sh"

run_fake up "$TMP/bin/fakeup" --port 0 --behavior chunks=8,chunk_ms=10
PORT=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')

cat >"$TMP/gw.yaml" <<EOF
server:
  listen: 127.0.0.1:$PORT
  workers: 2
  access_log: off
  drain_delay: 0s
providers:
  p: {base_url: "http://127.0.0.1:$FAKE_PORT/v1", probe: false}
models:
  m:
    - {provider: p, model: x}
EOF

GW=""
start_gw() { # LOG
    "$TMP/bin/unbusy" --config "$TMP/gw.yaml" >>"$1" 2>&1 &
    GW=$!
    PIDS="$PIDS $GW"
    wait_for 10 has_line "$1" "listening on http://127.0.0.1:$PORT" || die "the gateway did not start: $(tail -3 "$1")"
    wait_for 10 http_up "http://127.0.0.1:$PORT/readyz" || die "not ready"
}
handovers() { grep -c 'serves on the same sockets' "$1"; }
gone() { ! alive "$1"; }
# upgrade_gw LOG N: SIGUSR2 to $GW; waits for the N-th handover line and the old pid's exit;
# GW becomes the new pid.
upgrade_gw() {
    local old=$GW new
    kill -USR2 "$old"
    local i=0
    while [ "$(handovers "$1")" -lt "$2" ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i + 1)); done
    [ "$(handovers "$1")" -ge "$2" ] || die "no handover: $(tail -3 "$1")"
    new=$(grep 'serves on the same sockets' "$1" | tail -n 1 | sed 's/.*upgrade: process \([0-9]*\) serves.*/\1/')
    PIDS="$PIDS $new"
    wait_for 40 gone "$old" || die "the old process $old did not exit"
    wait "$old" 2>/dev/null
    forget "$old"
    GW=$new
}

echo "| swap | requests ok | requests failed | fresh connections ok | refused / reset | answer p99 ms | answer max ms | failures |"
echo "|---|---|---|---|---|---|---|---|"
for mode in $MODES; do
    log="$TMP/gw-$mode.log"
    : >"$log"
    start_gw "$log"
    node "$ROOT/bench/upgrade_load.mjs" "$PORT" $((SECS * 1000)) "$CLIENTS" 2 >"$TMP/load-$mode.json" &
    load=$!
    PIDS="$PIDS $load"
    sleep $((SECS / 3))
    case $mode in
    upgrade)
        upgrade_gw "$log" 1
        sleep $((SECS / 3))
        upgrade_gw "$log" 2
        ;;
    reuseport)
        old=$GW
        start_gw "$log"
        stop_pid "$old"
        ;;
    restart)
        stop_pid "$GW"
        start_gw "$log"
        ;;
    esac
    wait "$load"
    forget "$load"
    stop_pid "$GW"
    r=$(cat "$TMP/load-$mode.json")
    echo "| $mode | $(echo "$r" | jget j.requests_ok) | $(echo "$r" | jget j.requests_failed) | $(echo "$r" | jget j.conns_ok) | $(echo "$r" | jget j.conns_failed) | $(echo "$r" | jget j.answer_ms_p99) | $(echo "$r" | jget j.answer_ms_max) | $(echo "$r" | jget 'JSON.stringify({...j.failures, ...j.conn_failures})') |"
done
