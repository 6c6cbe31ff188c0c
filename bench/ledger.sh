#!/bin/bash
# bench/ledger.sh — what the ledger costs the request path. Many short
# non-stream requests (wrk, keep-alive) through the gateway to a fake
# upstream, with `ledger.path` set and unset, alternating; per run:
# requests/s, latency p50/p99, the gateway's CPU time per request (its event
# loop's thread apart from the others, i.e. the ledger's writer), and with
# the ledger on, the rows it wrote during the run (`unbusy usage` before and
# after; the gateway is stopped with SIGTERM, which writes what is queued) as
# rows/s and against the requests wrk completed. One connection again with
# other ledger batch sizes (the writer's batch is CPU time taken from the
# loop's core on a small machine). Then the writer's ceiling
# without a gateway in front (bench/ledger_rate.c): records queued as fast as
# one thread can, rows/s committed, for two batch sizes.
#
# Environment (all optional):
#   BENCH_DURATION=5        seconds per wrk run (after a 1 s warm-up)
#   BENCH_CONNS="1 32"      wrk connections; 1 is the unloaded latency
#   BENCH_REPEAT=3          off/on pairs per connection count; a second table has the medians
#   BENCH_WORKERS=1         the gateway's server.workers
#   BENCH_BATCHES="16 4096" ledger.batch values for an extra one-connection run each
#   BENCH_RECORDS=200000    records in the writer-ceiling run
#   BENCH_BUILD=1           0: use build/ as it is (no `make all` first)
#
# Loopback only; every process started here is stopped by PID on exit. With the
# defaults a run takes under two minutes.
set -u

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DURATION=${BENCH_DURATION:-5}
CONNS=${BENCH_CONNS:-1 32}
REPEAT=${BENCH_REPEAT:-3}
WORKERS=${BENCH_WORKERS:-1}
BATCHES=${BENCH_BATCHES:-16 4096}
RECORDS=${BENCH_RECORDS:-200000}

command -v wrk >/dev/null || sh "$ROOT/tests/deps.sh" wrk || exit 1
BENCH_STOP_WAIT=200 # 10 s: stopping writes what the ledger still holds
BENCH_NAME=ledger
. "$ROOT/bench/lib.sh"
# thread_ticks PID FILE: "TID TICKS" (user + system) of every thread of PID.
thread_ticks() {
    local t
    for t in /proc/"$1"/task/*; do
        echo "${t##*/} $(sed 's/.*) //' "$t/stat" 2>/dev/null | awk '{print $12 + $13}')"
    done >"$2"
}
# cpu_split BEFORE AFTER REQUESTS: "LOOP OTHER", µs per request of the busiest thread (the
# event loop, with workers: 1) and of all other threads together (the ledger's writer).
cpu_split() {
    awk -v tick="$TICK_US" -v n="$3" 'NR == FNR {b[$1] = $2; next}
        {d = $2 - b[$1]; t += d; if (d > m) m = d}
        END {printf "%.1f %.1f", m * tick / n, (t - m) * tick / n}' "$1" "$2"
}
TICK_US=$((1000000 / $(getconf CLK_TCK)))

# The writer's ceiling, built against bench/Makefile's archive of the gateway's objects.
make -C "$ROOT/bench" --no-print-directory >/dev/null || die "cannot build bench/ (make all first)"
cc -std=c11 -D_GNU_SOURCE -I"$ROOT/src" -I/usr/include/cjson -O2 -o "$TMP/bin/ledger_rate" \
    "$ROOT/bench/ledger_rate.c" "$ROOT/build/bench/libunbusy.a" -luv -lssl -lcrypto -lyaml -lcjson \
    -lsqlite3 -lpthread -lm || die "cannot build ledger_rate"

cat >"$TMP/post.lua" <<'EOF'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"model":"m","messages":[{"role":"user","content":"Say hello."}]}'
function done(summary, latency, requests)
    local e = summary.errors
    io.write(string.format("RESULT requests=%d duration_us=%d p50_us=%d p99_us=%d max_us=%d errors=%d\n",
        summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), latency.max,
        e.connect + e.read + e.write + e.status + e.timeout))
end
EOF

run_fake up "$TMP/bin/fakeup" --port 0 --behavior "chunks=1"

GW_PID=""
GW_PORT=""
# start_gateway NAME LEDGER_YAML
start_gateway() {
    cat >"$TMP/$1.yaml" <<EOF
server:
  listen: 127.0.0.1:0
  workers: $WORKERS
  access_log: off
providers:
  fake: {base_url: "http://127.0.0.1:$FAKE_PORT/v1", probe: false, stream_upstream: false}
models:
  m:
    - {provider: fake, model: x}
$2
EOF
    start_unbusy "$1"
}
# Requests recorded in a ledger file (every currency), 0 when it does not exist yet.
usage_count() {
    [ -f "$1" ] || { echo 0; return; }
    "$TMP/bin/unbusy" usage --since today --ledger "$1" --format json |
        jget 'j.totals.reduce((s, t) => s + t.requests, 0)'
}

echo "# ledger: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), kernel $(uname -r),"
echo "# ledger file on $(df -T "$TMP" | awk 'NR == 2 {print $2}'); gateway workers: $WORKERS; fake 'chunks=1', non-stream, ${DURATION} s per run;"
echo "# load average before the run: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| connections | ledger | run | requests/s | p50 ms | p99 ms | max ms | errors | CPU µs/request: loop | other threads | rows written | rows/s | rows - requests |"
echo "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
nrun=0
for c in $CONNS; do
    for r in $(seq 1 "$REPEAT"); do
        for mode in off on; do
            nrun=$((nrun + 1))
            db="$TMP/ledger-$nrun.db"
            if [ $mode = on ]; then start_gateway "run$nrun" "ledger: {path: \"$db\"}"
            else start_gateway "run$nrun" ""; fi
            run "$TMP/warmup.out" wrk -t1 -c"$c" -d1s -s "$TMP/post.lua" "http://127.0.0.1:$GW_PORT/v1/chat/completions"
            sleep 0.5 # the warm-up's rows are committed (flush_interval 200 ms)
            rows0=$(usage_count "$db")
            thread_ticks "$GW_PID" "$TMP/ticks0"
            run "$TMP/wrk.out" wrk -t1 -c"$c" -d"${DURATION}s" -s "$TMP/post.lua" \
                "http://127.0.0.1:$GW_PORT/v1/chat/completions" || die "wrk failed: $(cat "$TMP/wrk.out")"
            line=$(grep '^RESULT' "$TMP/wrk.out")
            thread_ticks "$GW_PID" "$TMP/ticks1"
            alive "$GW_PID" || die "unbusy died: $(tail -n 5 "$TMP/run$nrun.err")"
            stop_pid "$GW_PID"
            n=$(field requests "$line"); us=$(field duration_us "$line")
            rows="-" rate="-" diff="-"
            if [ $mode = on ]; then
                rows=$(($(usage_count "$db") - rows0))
                rate=$(awk -v n="$rows" -v us="$us" 'BEGIN {printf "%.0f", n * 1e6 / us}')
                diff=$((rows - n))
            fi
            rps=$(awk -v n="$n" -v us="$us" 'BEGIN {printf "%.0f", n * 1e6 / us}')
            p50=$(awk -v v="$(field p50_us "$line")" 'BEGIN {printf "%.3f", v / 1000}')
            p99=$(awk -v v="$(field p99_us "$line")" 'BEGIN {printf "%.3f", v / 1000}')
            set -- $(cpu_split "$TMP/ticks0" "$TMP/ticks1" "$n")
            printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$c" "$mode" "$r" \
                "$rps" "$p50" "$p99" "$(awk -v v="$(field max_us "$line")" 'BEGIN {printf "%.1f", v / 1000}')" \
                "$(field errors "$line")" "$1" "$2" "$rows" "$rate" "$diff"
            echo "$c $mode $rps $p50 $p99 $1 $2" >>"$TMP/runs"
            grep -i 'error\|warn\|ledger' "$TMP/run$nrun.err" | grep -v 'auth is open' | head -n 3 >&2
        done
    done
done
echo
echo "rows - requests: rows the run added minus the requests wrk completed (requests wrk cut off at the end"
echo "are recorded too, as client_closed). CPU: the gateway's user + system time over the run; loop: its busiest"
echo "thread (the one event loop), other threads: the rest together (the ledger's writer)."
echo
echo "Medians over the $REPEAT runs of each:"
echo
echo "| connections | ledger | requests/s | p50 ms | p99 ms | CPU µs/request: loop | other threads |"
echo "|---:|---|---:|---:|---:|---:|---:|"
for c in $CONNS; do
    for mode in off on; do
        printf '| %s | %s |' "$c" "$mode"
        for col in 3 4 5 6 7; do
            awk -v c="$c" -v m="$mode" -v k="$col" '$1 == c && $2 == m {print $k}' "$TMP/runs" | sort -g |
                awk '{v[NR] = $1} END {printf " %s |", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'
        done
        echo
    done
done
echo
echo "One connection, the ledger's batch size varied (one run each; 256 is the default above):"
echo
echo "| batch | requests/s | p50 ms | p99 ms | max ms | CPU µs/request: loop | other threads |"
echo "|---:|---:|---:|---:|---:|---:|---:|"
for b in $BATCHES; do
    nrun=$((nrun + 1))
    start_gateway "run$nrun" "ledger: {path: \"$TMP/ledger-$nrun.db\", batch: $b}"
    run "$TMP/warmup.out" wrk -t1 -c1 -d1s -s "$TMP/post.lua" "http://127.0.0.1:$GW_PORT/v1/chat/completions"
    thread_ticks "$GW_PID" "$TMP/ticks0"
    run "$TMP/wrk.out" wrk -t1 -c1 -d"${DURATION}s" -s "$TMP/post.lua" \
        "http://127.0.0.1:$GW_PORT/v1/chat/completions" || die "wrk failed: $(cat "$TMP/wrk.out")"
    thread_ticks "$GW_PID" "$TMP/ticks1"
    line=$(grep '^RESULT' "$TMP/wrk.out")
    stop_pid "$GW_PID"
    n=$(field requests "$line"); us=$(field duration_us "$line")
    set -- $(cpu_split "$TMP/ticks0" "$TMP/ticks1" "$n")
    printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$b" "$(awk -v n="$n" -v us="$us" 'BEGIN {printf "%.0f", n * 1e6 / us}')" \
        "$(awk -v v="$(field p50_us "$line")" 'BEGIN {printf "%.3f", v / 1000}')" \
        "$(awk -v v="$(field p99_us "$line")" 'BEGIN {printf "%.3f", v / 1000}')" \
        "$(awk -v v="$(field max_us "$line")" 'BEGIN {printf "%.1f", v / 1000}')" "$1" "$2"
done
echo
echo "The writer alone: $RECORDS records queued by one thread, then ledger_sync:"
echo
echo "| batch | seconds | rows/s committed | ledger_record cost (µs/record) | transactions |"
echo "|---:|---:|---:|---:|---:|"
for b in 256 4096; do
    rm -f "$TMP/rate.db" "$TMP/rate.db-wal" "$TMP/rate.db-shm"
    run "$TMP/rate.out" "$TMP/bin/ledger_rate" "$TMP/rate.db" "$RECORDS" "$b" ||
        die "ledger_rate failed: $(cat "$TMP/rate.out")"
    line=$(grep '^RESULT' "$TMP/rate.out")
    printf '| %s | %s | %s | %s | %s |\n' "$b" "$(field seconds "$line")" "$(field rows_per_s "$line")" \
        "$(awk -v q="$(field queue_s "$line")" -v n="$RECORDS" 'BEGIN {printf "%.2f", q * 1e6 / n}')" \
        "$(field batches "$line")"
done
