#!/bin/bash
# bench/admission.sh — the admission queue at twice its capacity, and what a
# full queue costs in memory.
#
# Part 1, overload: one deployment with max_concurrency C over a fake with a
# fixed service time (ttft 100 ms + 10 chunks 10 ms apart, about 200 ms).
# Open-loop Poisson arrivals at twice the capacity (2·C / service time per
# second) for BENCH_DURATION seconds, non-stream, from two keys: priority 0
# (BENCH_HIGH_PCT % of arrivals) and priority 3. Per class: completed, shed
# (429), queue wait p50/p99 (time to the response head minus the unloaded
# service time, measured first), and the Retry-After the shed requests got
# next to the time the queue ahead of them really took to drain (the last
# request that arrived before the 429 left the queue that much later).
#
# Part 2, memory: queue max 10,000, max_concurrency 1 on a deployment that
# never answers. One request takes the slot and 10,000 wait, each on its own
# raw keep-alive socket (node, no agent); the gateway's RSS before, with
# 10,000 queued, and after the clients went away. Once for non-stream
# requests, once for stream requests (their head and keep-alive comments go
# out while they wait). A request beyond the queue's bound must get 429.
#
# Environment (all optional):
#   BENCH_CONCURRENCY=8    the deployment's max_concurrency
#   BENCH_DURATION=20      seconds of overload
#   BENCH_HIGH_PCT=20      share of priority-0 arrivals
#   BENCH_QUEUE_MAX=64     the model's queue.max in part 1
#   BENCH_QUEUED=10000     waiting requests in part 2
#   BENCH_BUILD=1          0: use build/ as it is (no `make all` first)
#
# Loopback only; every process started here is stopped by PID on exit. With the
# defaults a run takes about a minute.
set -u

ROOT=$(cd "$(dirname "$0")/.." && pwd)
C=${BENCH_CONCURRENCY:-8}
DURATION=${BENCH_DURATION:-20}
HIGH_PCT=${BENCH_HIGH_PCT:-20}
QMAX=${BENCH_QUEUE_MAX:-64}
QUEUED=${BENCH_QUEUED:-10000}
SERVICE_BEHAVIOR="ttft=100,chunks=10,chunk_ms=10"
LOAD="$ROOT/bench/llmload.mjs"
KEY_HIGH=sk-bench-high-priority-key-0
KEY_LOW=sk-bench-low-priority-key-03

# Part 2 needs a descriptor per socket in node and in the gateway.
ulimit -n "$(ulimit -Hn)" 2>/dev/null
NEED=$((QUEUED + 500))
[ "$(ulimit -n)" = unlimited ] || [ "$(ulimit -n)" -ge "$NEED" ] ||
    { echo "admission: need ulimit -n >= $NEED (hard limit is $(ulimit -Hn))" >&2; exit 1; }

BENCH_NAME=admission
. "$ROOT/bench/lib.sh"
kb() { awk -v k="$2" '$1 == k":" {print $2}' "/proc/$1/status" 2>/dev/null; }

# start_fake NAME BEHAVIOUR: sets FAKE_PORT (not through $(...): the PID must reach PIDS of this shell).
start_fake() {
    run_fake "$1" "$TMP/bin/fakeup" --port 0 --behavior "$2"
}

GW_PID=""
GW_PORT=""
# start_gateway NAME: runs unbusy with $TMP/NAME.yaml.
start_gateway() {
    start_unbusy "$1"
}
admission() { curl -s "http://127.0.0.1:$GW_PORT/admin/deployments" | jget "$1"; }

echo "# admission: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')," \
    "kernel $(uname -r); load average before: $(cut -d' ' -f1-3 /proc/loadavg)"

# ---- part 1: twice the capacity ----
start_fake svc "$SERVICE_BEHAVIOR"; PORT_SVC=$FAKE_PORT
cat >"$TMP/overload.yaml" <<EOF
server:
  listen: 127.0.0.1:0
  access_log: off
providers:
  up: {base_url: "http://127.0.0.1:$PORT_SVC/v1", probe: false}
keys:
  - {name: high, key: $KEY_HIGH, priority: 0}
  - {name: low, key: $KEY_LOW, priority: 3}
models:
  m:
    deployments:
      - {provider: up, model: x, max_concurrency: $C}
    queue: {max: $QMAX, timeout: 30s}
EOF
start_gateway overload
run "$TMP/base.out" node "$LOAD" closed --port "$GW_PORT" --model m --n 20 --concurrency 1 --key "$KEY_HIGH" ||
    die "unloaded run failed: $(cat "$TMP/base.out")"
base=$(grep '^RESULT' "$TMP/base.out")
SERVICE_MS=$(field head_p50 "$base")
RATE=$(awk -v c="$C" -v s="$SERVICE_MS" 'BEGIN {printf "%.1f", 2 * c * 1000 / s}')
echo
echo "## Overload: max_concurrency $C, service time $SERVICE_MS ms unloaded (p50 of 20, fake '$SERVICE_BEHAVIOR'),"
echo "## $RATE requests/s offered (2x capacity) for $DURATION s, Poisson, $HIGH_PCT % priority 0;" \
    "queue {max: $QMAX, timeout: 30s}, reserve 0.2"
echo
run "$TMP/open.out" timeout $((DURATION + 120)) node "$LOAD" open --port "$GW_PORT" --model m --rate "$RATE" \
    --duration "$DURATION" --service-ms "$SERVICE_MS" \
    --classes "priority-0:$KEY_HIGH:$HIGH_PCT,priority-3:$KEY_LOW:$((100 - HIGH_PCT))" ||
    die "load generator failed: $(cat "$TMP/open.out")"
out=$(cat "$TMP/open.out")
alive "$GW_PID" || die "unbusy died under overload: $(tail -n 5 "$TMP/overload.err")"
echo "| class | sent | completed | shed (429) | other | shed % | wait p50 | wait p99 | wait max | Retry-After p50 | Retry-After max | real drain p50 | real drain p99 | Retry-After ≥ drain |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
echo "$out" | grep '^CLASS ' | while read -r _ cls rest; do
    printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$cls" \
        "$(field sent "$rest")" "$(field completed "$rest")" "$(field shed "$rest")" "$(field other "$rest")" \
        "$(field shed_pct "$rest")" "$(field wait_p50 "$rest")" "$(field wait_p99 "$rest")" \
        "$(field wait_max "$rest")" "$(field ra_p50 "$rest")" "$(field ra_max "$rest")" \
        "$(field drain_p50 "$rest")" "$(field drain_p99 "$rest")" "$(field ra_covers_drain "$rest")"
    k=$(field other_kinds "$rest"); [ -n "$k" ] && echo "admission: $cls other answers: $k" >&2
    k=$(field ra_missing "$rest"); [ "${k:-0}" != 0 ] && echo "admission: $cls: $k 429s without Retry-After" >&2
done
echo
echo "$out" | grep '^CLASS ' | while read -r _ cls rest; do
    k=$(field ra_vs_drain_by_5s "$rest")
    [ "$k" != - ] && echo "    $cls, median Retry-After / real drain (ms) per 5 s of the run: $(echo "$k" | sed 's/,/, /g')"
done
echo "    answers/s while the overload lasted (2 s to $DURATION s): $(echo "$out" | grep '^CLASS ' |
    while read -r _ cls rest; do printf '%s %s, ' "$cls" "$(field served_per_s "$rest")"; done)capacity" \
    "$(awk -v c="$C" -v s="$SERVICE_MS" 'BEGIN {printf "%.1f", c * 1000 / s}')"
echo "$out" | grep '^OFFERED' | sed 's/^/    /'
echo "    gateway: $(admission '(a => `shed ${a.shed}, evictions ${a.evictions}, queue timeouts ${a.timeouts}, ` +
    `queued in all ${a.queued_total}, drain rate ${a.drain_per_s}/s`)(j.models[0].admission)')"
echo
echo "Times in ms. wait: response head - unloaded service time, for completed requests. Retry-After: as sent"
echo "(whole seconds). real drain: from the 429 until the last request that arrived before it left the queue."
grep -i 'error\|warn' "$TMP/overload.err" | head -n 3 >&2
stop_pid "$GW_PID"

# ---- part 2: 10,000 waiting ----
start_fake hang hang; PORT_HANG=$FAKE_PORT
cat >"$TMP/memory.yaml" <<EOF
server:
  listen: 127.0.0.1:0
  access_log: off
  max_connections: $((QUEUED + 1000))
providers:
  hang: {base_url: "http://127.0.0.1:$PORT_HANG/v1", probe: false}
models:
  m:
    deployments:
      - {provider: hang, model: x, max_concurrency: 1}
    queue: {max: $QUEUED, timeout: 10m}
    timeouts: {first_token: 10m, total: 20m}
EOF
queued() { admission 'j.models[0].admission.queued'; }
inflight() { admission 'j.models[0].admission.inflight'; }
is_queued() { [ "$(queued)" = "$1" ]; }
is_inflight() { [ "$(inflight)" = "$1" ]; }
mib() { awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}'; }
per_request() { awk -v a="$1" -v b="$2" -v n="$QUEUED" 'BEGIN {printf "%.0f", (b - a) * 1024 / n}'; }

# fill KIND STREAM: QUEUED + 1 held requests (one in flight, the rest queued); sets RSS_FULL
# and EXTRA (the answer to one more request), then lets the clients go and waits for the
# queue to empty; sets RSS_AFTER, Q_AFTER, INFLIGHT_AFTER.
fill() {
    local kind=$1 s=$2 hold_pid
    rm -f "$TMP/hold.in"
    mkfifo "$TMP/hold.in"
    node "$LOAD" hold --port "$GW_PORT" --model m --n $((QUEUED + 1)) --stream "$s" \
        <"$TMP/hold.in" >"$TMP/hold-$kind.out" 2>&1 &
    hold_pid=$!
    PIDS="$PIDS $hold_pid"
    exec 9>"$TMP/hold.in" # node's stdin: closing it lets node go
    wait_for 60 has_line "$TMP/hold-$kind.out" '^held ' || die "hold: $(cat "$TMP/hold-$kind.out")"
    wait_for 60 is_queued "$QUEUED" || die "$kind: $(queued) queued, not $QUEUED: $(tail -n 2 "$TMP/hold-$kind.out")"
    sleep 1 # the keep-alive timers of waiting stream requests fire once
    RSS_FULL=$(kb "$GW_PID" VmRSS)
    EXTRA=$(curl -s -o /dev/null -m 5 -w '%{http_code}, Retry-After %header{retry-after}' \
        -H 'content-type: application/json' \
        -d '{"model":"m","messages":[{"role":"user","content":"Say hello."}]}' \
        "http://127.0.0.1:$GW_PORT/v1/chat/completions")
    exec 9>&-
    stop_pid "$hold_pid"
    wait_for 30 is_queued 0 || echo "admission: $kind: still $(queued) queued 30 s after the clients left" >&2
    wait_for 10 is_inflight 0 || echo "admission: $kind: still $(inflight) in flight 10 s after the clients left" >&2
    alive "$GW_PID" || die "unbusy died after the clients of $kind left: $(tail -n 5 "$TMP/memory.err")"
    Q_AFTER=$(queued)
    INFLIGHT_AFTER=$(inflight)
    RSS_AFTER=$(kb "$GW_PID" VmRSS)
}

echo
echo "## Memory: $QUEUED requests waiting (queue max $QUEUED, max_concurrency 1 on a deployment that hangs)"
echo
echo "| requests | RSS idle | with $QUEUED queued | per queued request | after the clients left | again $QUEUED queued | after again | queue / in flight after | one more request |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
for kind in non-stream stream; do
    s=0; [ $kind = stream ] && s=1
    start_gateway memory
    rss0=$(kb "$GW_PID" VmRSS)
    fill $kind $s
    rss1=$RSS_FULL rss2=$RSS_AFTER extra=$EXTRA
    fill $kind $s
    printf '| %s | %s MiB | %s MiB | %s bytes | %s MiB | %s MiB | %s MiB | %s / %s | %s |\n' "$kind" \
        "$(mib "$rss0")" "$(mib "$rss1")" "$(per_request "$rss0" "$rss1")" "$(mib "$rss2")" \
        "$(mib "$RSS_FULL")" "$(mib "$RSS_AFTER")" "$Q_AFTER" "$INFLIGHT_AFTER" "$extra"
    grep -i 'error\|warn' "$TMP/memory.err" | grep -v 'auth is open' | head -n 3 >&2
    stop_pid "$GW_PID"
done
echo
echo "RSS from /proc (VmRSS); per queued request = (with - idle) / $QUEUED, the client connection included;"
echo "\"again\": the same $QUEUED once more in the same process. One more request: a non-stream request"
echo "sent while $QUEUED wait (the queue is full)."
