#!/bin/bash
# bench/hedge.sh — does hedging cut the TTFT tail? One model, two deployments
# (two fake upstreams), each with the same slow tail: most requests start after
# BENCH_FAST_MS, one in ten after BENCH_SLOW_MS. N streaming requests at a
# modest concurrency go through the gateway, once without hedging and once per
# hedge setting; the client measures the time to the first content token. The
# extra upstream load is what the fakes counted beyond the client's requests,
# and the admin API's hedges started / won / wasted. Prints a markdown table per
# tail share (BENCH_SLOW_PCTS: the issue's 10 %, and 5 % for contrast: hedging
# only the first attempt leaves the requests slow on both deployments, tail²).
#
# Environment (all optional):
#   BENCH_N=1000            measured requests per setting (after BENCH_WARMUP)
#   BENCH_WARMUP=100        requests before the measurement (the auto delay learns from them)
#   BENCH_CONCURRENCY=16    requests in flight
#   BENCH_FAST_MS=50 BENCH_SLOW_MS=2000
#   BENCH_SLOW_PCTS="10 5"  slow-tail shares (%) to run; the first gets every hedge setting,
#                           the others off / 150ms / auto
#   BENCH_BUILD=1           0: use build/ as it is (no `make all` first)
#
# Loopback only; every process started here is stopped by PID on exit. With the
# defaults a run takes about a minute.
set -u

ROOT=$(cd "$(dirname "$0")/.." && pwd)
N=${BENCH_N:-1000}
WARMUP=${BENCH_WARMUP:-100}
CONC=${BENCH_CONCURRENCY:-16}
FAST=${BENCH_FAST_MS:-50}
SLOW=${BENCH_SLOW_MS:-2000}
SLOW_PCTS=${BENCH_SLOW_PCTS:-10 5}
BEHAVIOR=""
LOAD="$ROOT/bench/llmload.mjs"

BENCH_NAME=hedge
. "$ROOT/bench/lib.sh"

# The behaviour is set per table through POST /_fake/behavior.
# start_fake NAME: sets FAKE_PORT (not through $(...): the PID must reach PIDS of this shell).
start_fake() {
    run_fake "$1" "$TMP/bin/fakeup" --port 0 --behavior ok
}
start_fake a; PORT_A=$FAKE_PORT
start_fake b; PORT_B=$FAKE_PORT

fake_requests() {
    local t=0 p v
    for p in $PORT_A $PORT_B; do
        v=$(curl -s "http://127.0.0.1:$p/_fake/stats" | jget 'j.requests')
        t=$((t + v))
    done
    echo $t
}

GW_PID=""
GW_PORT=""
start_gateway() {
    local name=$1 hedge=$2
    cat >"$TMP/$name.yaml" <<EOF
server:
  listen: 127.0.0.1:0
  access_log: off
providers:
  a: {base_url: "http://127.0.0.1:$PORT_A/v1", probe: false}
  b: {base_url: "http://127.0.0.1:$PORT_B/v1", probe: false}
models:
  m:
    deployments:
      - {provider: a, model: x}
      - {provider: b, model: x}
    resilience:
      hedge: $hedge
EOF
    start_unbusy "$name"
}

admin() { curl -s "http://127.0.0.1:$GW_PORT/admin/deployments" | jget "$1"; }
# "STARTED WON WASTED" of the model's hedges.
hedges() { admin "(h => [h.started, h.won, h.wasted].join(' '))(j.models[0].hedges)"; }
# The deployments' observed p95 TTFT (what after: auto waits), "a/b" in ms.
dep_p95() { admin "j.models[0].deployments.map(d => d.ttft_p95_ms).join('/')"; }

run_setting() {
    local name=$1 label=$2 hedge=$3 line s0 s1 up delay
    start_gateway "$name" "$hedge"
    run "$TMP/warmup.out" node "$LOAD" closed --port "$GW_PORT" --model m --n "$WARMUP" --concurrency "$CONC" \
        --stream 1 || die "warm-up failed: $(cat "$TMP/warmup.out")"
    s0=$(hedges)
    for p in $PORT_A $PORT_B; do curl -s -X POST "http://127.0.0.1:$p/_fake/reset" >/dev/null; done
    run "$TMP/load.out" timeout 300 node "$LOAD" closed --port "$GW_PORT" --model m --n "$N" \
        --concurrency "$CONC" --stream 1 || die "load generator failed: $(cat "$TMP/load.out")"
    line=$(grep '^RESULT' "$TMP/load.out")
    s1=$(hedges)
    delay=$(dep_p95)
    up=$(fake_requests)
    alive "$GW_PID" || die "unbusy died during '$label': $(tail -n 5 "$TMP/$name.err")"
    stop_pid "$GW_PID"
    set -- $s0 $s1
    case $hedge in *150ms*) ;; *auto*) label="$label (p95 a/b: $delay ms)" ;; esac
    printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s %% | %s | %s | %s |\n' "$label" \
        "$(field ttft_p50 "$line")" "$(field ttft_p95 "$line")" "$(field ttft_p98 "$line")" \
        "$(field ttft_p99 "$line")" "$(field ttft_max "$line")" "$(field slow "$line")" \
        "$(field errors "$line")" "$(field multi_attempt "$line")" "$up" \
        "$(awk -v u="$up" -v n="$N" 'BEGIN {printf "%.1f", 100 * (u - n) / n}')" \
        $(($4 - $1)) $(($5 - $2)) $(($6 - $3))
    [ -n "$(field error_kinds "$line")" ] && echo "hedge: '$label' errors: $(field error_kinds "$line")" >&2
    grep -i 'error\|warn' "$TMP/$name.err" | grep -v 'auth is open' | head -n 3 >&2
}

echo "# hedging: $N streaming requests (after $WARMUP warm-up) per setting, concurrency $CONC, 2 deployments"
echo "# $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), kernel $(uname -r);" \
    "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
first=1
for pct in $SLOW_PCTS; do
    BEHAVIOR="$((100 - pct))%ttft=$FAST,chunks=5|ttft=$SLOW,chunks=5"
    for p in $PORT_A $PORT_B; do
        curl -s -X POST --data-binary "$BEHAVIOR" "http://127.0.0.1:$p/_fake/behavior" >/dev/null ||
            die "cannot set the fake's behaviour"
    done
    echo
    echo "$pct % slow tail, both deployments '$BEHAVIOR':"
    echo
    echo "| hedge | TTFT p50 | p95 | p98 | p99 | max | > 1 s | errors | hedged | upstream requests | extra load | hedges started | won | wasted |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    run_setting "off$pct" "off" "{enabled: false}"
    run_setting "h150-$pct" "after 150ms" "{enabled: true, after: 150ms}"
    [ $first = 1 ] &&
        run_setting "h150r-$pct" "after 150ms, max_ratio 0.2" "{enabled: true, after: 150ms, max_ratio: 0.2}"
    run_setting "auto$pct" "auto" "{enabled: true, after: auto}"
    [ $first = 1 ] &&
        run_setting "autor-$pct" "auto, max_ratio 0.2" "{enabled: true, after: auto, max_ratio: 0.2}"
    first=0
done
echo
echo "TTFT in ms, client side (request written → first content token); > 1 s: requests still in the slow"
echo "tail; hedged: answers with x-unbusy-attempts > 1. Upstream requests: what both fakes received during"
echo "the measured requests (hedges included, cancelled ones too); extra load = upstream / client - 1."
