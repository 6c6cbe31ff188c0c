#!/bin/bash
# bench/engine.sh — engine-aware routing against P2C on a pool of self-hosted engines.
#
# Three fake vLLM engines (build/fakeup --engine vllm --slots 4: at most 4 answers at once,
# later requests wait in a queue that /metrics shows as vllm:num_requests_waiting), each
# answer BEHAVIOR long. While BENCH_SECONDS of streamed traffic run at BENCH_CONCURRENCY,
# other clients pile up on engine c: its background load (phantom requests holding a slot
# for 150 ms, in a closed loop) steps 0 -> 4 -> 8 -> 12 at each quarter of the run. The
# client measures the time to the first content token. Two configs of the same pool:
#   engine                        the defaults for a pool of vllm presets (engine_load,
#                                 prefix affinity; every prompt here is new)
#   engine_load,affinity_off      routing.affinity: off
#   p2c                           resilience.strategy: p2c, routing.affinity: off, metrics: false
# Then the multi-turn workload (BENCH_CONVERSATIONS conversations of BENCH_TURNS turns, a
# long system prompt, 8 at a time, no background load) with prefix affinity on and off:
# the prefix-cache hit rate is what the engines counted (a later turn whose earlier
# prompt the same engine served).
#
# Environment: BENCH_SECONDS=20 BENCH_CONCURRENCY=10 BENCH_CONVERSATIONS=60 BENCH_TURNS=6
# BENCH_BUILD=1 (0: use build/ as it is). Loopback only; every process started here is
# stopped by PID on exit. About a minute and a half with the defaults.
set -u

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SECONDS_RUN=${BENCH_SECONDS:-20}
CONC=${BENCH_CONCURRENCY:-10}
CONVS=${BENCH_CONVERSATIONS:-60}
TURNS=${BENCH_TURNS:-6}
BEHAVIOR="ttft=30,chunks=8,chunk_ms=15"
LOAD="$ROOT/bench/engine.mjs"

BENCH_NAME=engine
. "$ROOT/bench/lib.sh"

# start_engine NAME: sets ENGINE_PORT (not through $(...): the PID must reach PIDS).
start_engine() {
    run_fake "$1" "$TMP/bin/fakeup" --port 0 --engine vllm --slots 4 --served-model m \
        --background-ms 150 --behavior "$BEHAVIOR"
    ENGINE_PORT=$FAKE_PORT
}
start_engine a; PORT_A=$ENGINE_PORT
start_engine b; PORT_B=$ENGINE_PORT
start_engine c; PORT_C=$ENGINE_PORT

fake() { curl -s -X POST --data-binary "$3" "http://127.0.0.1:$1$2" >/dev/null; }
reset_all() {
    for p in $PORT_A $PORT_B $PORT_C; do fake "$p" /_fake/reset ""; fake "$p" /_fake/background 0; done
}

GW_PID=""
GW_PORT=""
# start_gateway NAME EXTRA_PROVIDER_KEYS MODEL_KEYS
start_gateway() {
    cat >"$TMP/$1.yaml" <<EOF
server:
  listen: 127.0.0.1:0
  access_log: off
providers:
  a: {type: vllm, base_url: "http://127.0.0.1:$PORT_A/v1"$2}
  b: {type: vllm, base_url: "http://127.0.0.1:$PORT_B/v1"$2}
  c: {type: vllm, base_url: "http://127.0.0.1:$PORT_C/v1"$2}
models:
  m:
    deployments:
      - {provider: a, model: m}
      - {provider: b, model: m}
      - {provider: c, model: m}
$3
EOF
    start_unbusy "$1"
}

P2C_PROVIDER=", metrics: false"
P2C_MODEL="    resilience: {strategy: p2c}
    routing: {affinity: off}"

ttft_run() {
    local name=$1 quarter line steps
    quarter=$(awk -v s="$SECONDS_RUN" 'BEGIN {print s / 4}')
    reset_all
    start_gateway "$name" "$2" "$3"
    # the background steps, in a child stopped by PID like the rest
    ( for n in 4 8 12; do sleep "$quarter"; fake "$PORT_C" /_fake/background "$n"; done ) &
    steps=$!
    PIDS="$PIDS $steps"
    run "$TMP/$name.load" node "$LOAD" ttft --port "$GW_PORT" --seconds "$SECONDS_RUN" --concurrency "$CONC" ||
        die "load failed: $(cat "$TMP/$name.load")"
    wait "$steps" 2>/dev/null
    forget "$steps"
    line=$(grep '^RESULT' "$TMP/$name.load")
    alive "$GW_PID" || die "unbusy died: $(tail -n 5 "$TMP/$name.err")"
    stop_pid "$GW_PID"
    printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$name" "$(field n "$line")" "$(field errors "$line")" \
        "$(field ttft_p50 "$line")" "$(field ttft_p90 "$line")" "$(field ttft_p99 "$line")" \
        "$(field ttft_max "$line")" "$(field by_provider "$line")"
}

turns_run() {
    local name=$1 line lookups=0 hits=0 p s
    reset_all
    start_gateway "$name" "" "$2"
    run "$TMP/$name.load" node "$LOAD" turns --port "$GW_PORT" --conversations "$CONVS" --turns "$TURNS" \
        --concurrency 8 || die "load failed: $(cat "$TMP/$name.load")"
    line=$(grep '^RESULT' "$TMP/$name.load")
    for p in $PORT_A $PORT_B $PORT_C; do
        s=$(curl -s "http://127.0.0.1:$p/_fake/stats" | jget '[j.engine.prefix_lookups, j.engine.prefix_hits].join(" ")')
        set -- $s
        lookups=$((lookups + $1))
        hits=$((hits + $2))
    done
    stop_pid "$GW_PID"
    printf '| %s | %s | %s | %s of %s (%s %%) | %s | %s | %s |\n' "$name" "$(field n "$line")" \
        "$(field errors "$line")" "$hits" "$lookups" \
        "$(awk -v h="$hits" -v l="$lookups" 'BEGIN {printf "%.1f", l ? 100 * h / l : 0}')" \
        "$(field stayed "$line")" "$(field ttft_p50 "$line")" "$(field by_provider "$line")"
}

echo "# engine-aware routing: 3 fake vLLM engines (4 slots each, '$BEHAVIOR'), $CONC clients for ${SECONDS_RUN} s,"
echo "# engine c's background load 0 -> 4 -> 8 -> 12 phantom clients (150 ms each)"
echo "# $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), kernel $(uname -r);" \
    "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| routing | requests | errors | TTFT p50 ms | p90 | p99 | max | requests per engine |"
echo "|---|---:|---:|---:|---:|---:|---:|---|"
ttft_run engine "" ""
ttft_run engine_load,affinity_off "" "    routing: {affinity: off}"
ttft_run p2c "$P2C_PROVIDER" "$P2C_MODEL"
echo
echo "# multi-turn: $CONVS conversations x $TURNS turns, 8 at a time, no background load"
echo
echo "| affinity | requests | errors | prefix-cache hits (later turns) | conversations on one engine | TTFT p50 ms | requests per engine |"
echo "|---|---:|---:|---:|---:|---:|---|"
turns_run prefix ""
turns_run off "    routing: {affinity: off}"
