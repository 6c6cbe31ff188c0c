#!/bin/bash
# bench/cpu_ab.sh — CPU per request of two unbusy binaries and HAProxy, interleaved: on a
# shared or noisy machine one run.sh pass measures the machine as much as the proxies, so
# the cells here take turns (A, B, HAProxy for each path, then the next round) and the
# medians are compared. Same workload as run.sh: bench/fastfake.c (20 content chunks, usage,
# [DONE]), wrk at 64 connections; the proxies pinned to CPU 0, wrk and the fake to CPU 1;
# unbusy with its default config (no workers key, access log on).
#
#   BENCH_A=path/to/old/unbusy bash bench/cpu_ab.sh    # B is build/unbusy
#
# Environment: BENCH_A (required), BENCH_B (build/unbusy), BENCH_ROUNDS (5),
# BENCH_DURATION (4 s per cell), BENCH_BUILD (1). Prints one line per cell — CPU µs per
# request (utime + stime of the proxy over the cell), of which user space, and req/s — then
# the medians. Everything listens on 127.0.0.1; every process started is stopped by PID on
# exit; a run takes about ROUNDS x 8 x (DURATION + 1) seconds.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BENCH_NAME=cpu_ab
A=${BENCH_A:?"BENCH_A: the unbusy binary to compare with"}
B=${BENCH_B:-$ROOT/build/unbusy}
ROUNDS=${BENCH_ROUNDS:-5}
DUR=${BENCH_DURATION:-4}
[ "$(nproc)" -ge 2 ] || { echo "cpu_ab: needs two CPUs" >&2; exit 1; }
sh "$ROOT/tests/deps.sh" wrk haproxy curl || exit 1
. "$ROOT/bench/lib.sh"
. "$ROOT/bench/proxies.sh"
make -C "$ROOT/bench" --no-print-directory >/dev/null || exit 1
cp "$A" "$TMP/bin/unbusy-a" && cp "$B" "$TMP/bin/unbusy-b" && cp "$ROOT/build/bench/fastfake" "$TMP/bin/" || exit 1
TICK_US=$((1000000 / $(getconf CLK_TCK)))

run_fake up taskset -c 1 "$TMP/bin/fastfake" --port 0 --chunks 20

declare -A PID PORT
for v in a b; do
    unbusy_bench_yaml "$FAKE_PORT" >"$TMP/$v.yaml"
    taskset -c 0 "$TMP/bin/unbusy-$v" --config "$TMP/$v.yaml" >"$TMP/$v.out" 2>"$TMP/$v.err" &
    PID[$v]=$!
    PIDS="$PIDS $!"
    wait_for 10 has_line "$TMP/$v.err" 'listening on http://127.0.0.1:' || die "unbusy $v did not start"
    PORT[$v]=$(sed -n 's|.*listening on http://127.0.0.1:\([0-9]*\).*|\1|p' "$TMP/$v.err" | head -n 1)
done
tries=0
while :; do
    tries=$((tries + 1))
    [ $tries -gt 10 ] && die "haproxy did not start"
    PORT[haproxy]=$(awk -v s="$$$tries" 'BEGIN {srand(s); print 20000 + int(rand() * 40000)}')
    haproxy_bench_cfg "${PORT[haproxy]}" "$FAKE_PORT" >"$TMP/haproxy.cfg"
    taskset -c 0 haproxy -f "$TMP/haproxy.cfg" -db >"$TMP/haproxy.out" 2>&1 &
    PID[haproxy]=$!
    if wait_for 5 http_up "http://127.0.0.1:${PORT[haproxy]}/v1/models" && alive "${PID[haproxy]}"; then
        PIDS="$PIDS ${PID[haproxy]}"
        break
    fi
    kill -TERM "${PID[haproxy]}" 2>/dev/null
    wait "${PID[haproxy]}" 2>/dev/null
done

ticks() { sed 's/.*) //' "/proc/$1/stat" | awk -v f="$2" '{print f == "user" ? $12 : $12 + $13}'; }

# cell TARGET PATH: "cpu_us user_us req_per_s" for one wrk run
cell() {
    local t=$1 path=$2 p=${PID[$1]} c0 u0 c1 u1 n
    case $path in
    stream) export BENCH_STREAM=1 BENCH_MODEL=bench ;;
    pass) export BENCH_STREAM=0 BENCH_MODEL=bench ;;
    assembled) export BENCH_STREAM=0 BENCH_MODEL=bench-assemble ;;
    esac
    c0=$(ticks "$p" all); u0=$(ticks "$p" user)
    run "$TMP/wrk.out" taskset -c 1 wrk -t1 -c64 -d"$DUR" -s "$ROOT/bench/post.lua" \
        "http://127.0.0.1:${PORT[$t]}/v1/chat/completions"
    c1=$(ticks "$p" all); u1=$(ticks "$p" user)
    n=$(sed -n 's/.*RESULT requests=\([0-9]*\).*/\1/p' "$TMP/wrk.out")
    [ -n "$n" ] && [ "$n" -gt 0 ] || die "$t $path: wrk gave no result"
    awk -v c=$((c1 - c0)) -v u=$((u1 - u0)) -v n="$n" -v d="$DUR" -v k="$TICK_US" \
        'BEGIN {printf "%.1f %.1f %d", c * k / n, u * k / n, n / d}'
}

for t in a b haproxy; do for path in stream pass; do cell "$t" "$path" >/dev/null; done; done
echo "| round | path | proxy | CPU µs/req | of which user | req/s |"
echo "|---:|---|---|---:|---:|---:|"
: >"$TMP/cells"
for r in $(seq "$ROUNDS"); do
    for path in stream pass assembled; do
        for t in a b haproxy; do
            [ "$t" = haproxy ] && [ "$path" = assembled ] && continue
            v=$(cell "$t" "$path")
            echo "$path $t $v" >>"$TMP/cells"
            echo "| $r | $path | $t | $(echo "$v" | awk '{print $1 " | " $2 " | " $3}') |"
        done
    done
done
echo
echo "Medians over $ROUNDS rounds (a = $A, b = $B):"
echo
echo "| path | proxy | CPU µs/req | of which user | req/s |"
echo "|---|---|---:|---:|---:|"
for path in stream pass assembled; do
    for t in a b haproxy; do
        grep -q "^$path $t " "$TMP/cells" || continue
        med() { grep "^$path $t " "$TMP/cells" | awk -v c="$1" '{print $c}' | sort -n |
            awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
        echo "| $path | $t | $(med 3) | $(med 4) | $(med 5) |"
    done
done
