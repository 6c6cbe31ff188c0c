#!/bin/bash
# bench/instr.sh — user-space instructions per request, counted by valgrind's callgrind:
# unlike CPU time, the count hardly moves with what else the machine is doing, so it tells
# a change of a few percent in the gateway's own code. The default config (valgrind runs
# the workers one at a time; every worker's instructions count), the fast fake upstream (bench/fastfake.c, 20 content chunks, usage, [DONE]), wrk with 16
# connections for BENCH_DURATION seconds after a 2 s warm-up; the count is the gateway's
# instructions over that window divided by the requests answered (the kernel's part is not
# counted).
#
#   sh bench/instr.sh [stream|pass|assembled ...]     # default: all three
#   BENCH_PEER=haproxy sh bench/instr.sh stream pass   # HAProxy's count on the same work
#
# Environment: BENCH_PEER (haproxy: count HAProxy 2.6 as a plain reverse proxy, one thread,
# instead of unbusy; it has no assembled path), BENCH_DURATION (4), BENCH_BIN (build/unbusy), BENCH_BUILD (1), BENCH_DUMPS (a
# directory to keep each path's dump in, as callgrind.<path>, for callgrind_annotate). Everything
# listens on 127.0.0.1; every process started is stopped by PID on exit; under valgrind
# the gateway runs about 50 times slower, so a path takes about 20 s.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BENCH_NAME=instr
DUR=${BENCH_DURATION:-4}
PATHS=${*:-stream pass assembled}
PEER=${BENCH_PEER:-}
case $PEER in '' | haproxy) ;; *) echo "instr: BENCH_PEER is haproxy or unset" >&2; exit 1 ;; esac
sh "$ROOT/tests/deps.sh" valgrind wrk curl ${PEER:+"$PEER"} || exit 1
. "$ROOT/bench/lib.sh"
. "$ROOT/bench/proxies.sh"
make -C "$ROOT/bench" --no-print-directory >/dev/null || exit 1
cp "${BENCH_BIN:-$ROOT/build/unbusy}" "$TMP/bin/unbusy" && cp "$ROOT/build/bench/fastfake" "$TMP/bin/" || exit 1

run_fake up "$TMP/bin/fastfake" --port 0 --chunks 20
unbusy_bench_yaml "$FAKE_PORT" >"$TMP/gw.yaml"

dumped() { ls "$TMP"/cg.out* >/dev/null 2>&1; }

echo "| path | requests | instructions per request |"
echo "|---|---:|---:|"
for path in $PATHS; do
    case $path in
    stream) export BENCH_STREAM=1 BENCH_MODEL=bench ;;
    pass) export BENCH_STREAM=0 BENCH_MODEL=bench ;;
    assembled) export BENCH_STREAM=0 BENCH_MODEL=bench-assemble ;;
    *) die "a path is stream, pass or assembled" ;;
    esac
    rm -f "$TMP"/cg.out*
    if [ "$PEER" = haproxy ]; then
        [ "$path" = assembled ] && die "HAProxy has no assembled path"
        PORT=$(awk -v s="$$" 'BEGIN {srand(s); print 20000 + int(rand() * 40000)}')
        haproxy_bench_cfg "$PORT" "$FAKE_PORT" 1 >"$TMP/haproxy.cfg"
        (cd "$TMP" && exec valgrind --tool=callgrind --callgrind-out-file="$TMP/cg.out" \
            haproxy -f "$TMP/haproxy.cfg" -db) >"$TMP/gw-$path.out" 2>"$TMP/gw-$path.err" &
        GW=$!
        PIDS="$PIDS $GW"
        wait_for 30 http_up "http://127.0.0.1:$PORT/v1/models" || die "haproxy did not start"
    else
        (cd "$TMP" && exec valgrind --tool=callgrind --callgrind-out-file="$TMP/cg.out" \
            "$TMP/bin/unbusy" --config "$TMP/gw.yaml") >"$TMP/gw-$path.out" 2>"$TMP/gw-$path.err" &
        GW=$!
        PIDS="$PIDS $GW"
        wait_for 30 has_line "$TMP/gw-$path.err" 'listening on http://127.0.0.1:' || die "unbusy did not start"
        PORT=$(sed -n 's|.*listening on http://127.0.0.1:\([0-9]*\).*|\1|p' "$TMP/gw-$path.err" | head -n 1)
    fi
    URL="http://127.0.0.1:$PORT/v1/chat/completions"
    run "$TMP/warm.out" wrk -t1 -c16 -d2 -s "$ROOT/bench/post.lua" "$URL"
    callgrind_control -z "$GW" >/dev/null 2>&1
    run "$TMP/wrk.out" wrk -t1 -c16 -d"$DUR" -s "$ROOT/bench/post.lua" "$URL"
    callgrind_control -d "$GW" >/dev/null 2>&1
    wait_for 20 dumped || die "$path: callgrind wrote no dump"
    sleep 0.5                                            # written whole
    dump=$(ls -t "$TMP"/cg.out* 2>/dev/null | head -n 1) # the window's: stopping writes another
    n=$(sed -n 's/.*RESULT requests=\([0-9]*\).*/\1/p' "$TMP/wrk.out")
    mv "$dump" "$TMP/window.out" 2>/dev/null && dump=$TMP/window.out
    stop_pid "$GW"
    [ -n "$n" ] && [ "$n" -gt 0 ] && [ -n "$dump" ] || die "$path: no count ($(grep -v '^==' "$TMP/gw-$path.err" | tail -n 3))"
    ir=$(callgrind_annotate "$dump" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1; exit}')
    [ -n "${BENCH_DUMPS:-}" ] && cp "$dump" "$BENCH_DUMPS/callgrind.$path"
    echo "| $path | $n | $((ir / n)) |"
done
