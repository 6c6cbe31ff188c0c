#!/bin/bash
# bench/redis.sh — what sharing rate limits through Redis costs, and how exact they are
# across replicas with Redis up and down.
#
# Part 1, added latency: one gateway (workers: 1, access log off) in front of one fake
# (chunks=1, non-stream), a key with rpm and tpm far above the load (every request is
# checked, none refused). wrk, 1 connection, BENCH_DURATION seconds per run, three
# configurations run back to back BENCH_REPEAT times (median of the runs' p50/p99):
#   local     no redis: section (the local buckets only)
#   lease 4   redis: {url} as it comes (a round trip for about one request in five)
#   lease 0   every request waits for its own round trip to Redis
# "added" is the configuration's percentile minus the local one's from the same round.
# The Redis round-trip time itself is read from unbusy_redis_latency_seconds.
#
# Part 2, accuracy: two replicas share one key with rpm BENCH_RPM; BENCH_SENT requests
# go to them alternately, as fast as one client sends them (sequential). Counted: 200s.
# Once with Redis up (expected: the limit), once with no Redis reachable (expected: the
# limit per replica, twice it). Refill during the run is added to the expectation.
#
# Environment: BENCH_DURATION=10, BENCH_REPEAT=3, BENCH_RPM=60, BENCH_SENT=300,
# BENCH_BUILD=1. Loopback only; every process started here is stopped by PID on exit.
set -u

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DURATION=${BENCH_DURATION:-10}
REPEAT=${BENCH_REPEAT:-3}
RPM=${BENCH_RPM:-60}
SENT=${BENCH_SENT:-300}
KEY=sk-bench-redis-key-0123456789
BENCH_NAME=redis
. "$ROOT/bench/lib.sh"
command -v redis-server >/dev/null || die "redis-server is not installed (make deps-test)"
command -v wrk >/dev/null || die "wrk is not installed (make bench installs it)"

free_port() { node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }

REDIS_PID=""
start_redis() {
    mkdir -p "$TMP/redis"
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$TMP/redis" \
        >"$TMP/redis.out" 2>&1 &
    REDIS_PID=$!
    PIDS="$PIDS $REDIS_PID"
    wait_for 10 redis_up || die "redis-server did not start: $(tail -n 3 "$TMP/redis.out")"
}
redis_up() {
    node -e 'const s=require("net").connect(+process.argv[1],"127.0.0.1",()=>s.write("PING\r\n"));
        s.on("data",d=>process.exit(String(d).startsWith("+PONG")?0:1));s.on("error",()=>process.exit(1))' "$REDIS_PORT"
}

start_fake() {
    run_fake up "$TMP/bin/fakeup" --port 0 --behavior "$1"
}

GW_PID=""
GW_PORT=""
start_gateway() { # NAME
    start_unbusy "$1"
}
metric() { curl -s "http://127.0.0.1:$GW_PORT/metrics" | awk -v m="$1" '$1 == m {print $2}'; }

config() { # NAME REDIS_YAML RPM
    cat >"$TMP/$1.yaml" <<YAML
server: {listen: "127.0.0.1:0", workers: 1, access_log: off}
providers:
  up: {base_url: "http://127.0.0.1:$FAKE_PORT/v1", probe: false}
keys:
  - {name: bench, key: $KEY, rpm: $3, tpm: 100000000}
models:
  bench: [{provider: up, model: x}]
$2
YAML
}

REDIS_PORT=$(free_port)
start_redis
start_fake "chunks=1"
echo "# redis: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')," \
    "kernel $(uname -r), $(redis-server --version | cut -d' ' -f1-3); load average before: $(cut -d' ' -f1-3 /proc/loadavg)"

# ---- part 1 ----
config local "" 100000000
config lease4 "redis: {url: \"redis://127.0.0.1:$REDIS_PORT\"}" 100000000
config lease0 "redis: {url: \"redis://127.0.0.1:$REDIS_PORT\", lease: 0}" 100000000
declare -A P50 P99 RTT
for round in $(seq 1 "$REPEAT"); do
    for c in local lease4 lease0; do
        start_gateway "$c"
        [ "$c" = local ] || wait_for 10 bash -c "[ \"\$(curl -s http://127.0.0.1:$GW_PORT/metrics | awk '\$1==\"unbusy_redis_up\"{print \$2}')\" = 1 ]" ||
            die "$c: redis not up"
        wrk -t1 -c1 -d1s -s "$ROOT/bench/post.lua" -H "Authorization: Bearer $KEY" "http://127.0.0.1:$GW_PORT/v1/chat/completions" >/dev/null
        out=$(BENCH_MODEL=bench wrk -t1 -c1 -d"${DURATION}s" -s "$ROOT/bench/post.lua" \
            -H "Authorization: Bearer $KEY" "http://127.0.0.1:$GW_PORT/v1/chat/completions" | grep '^RESULT')
        [ "$(field errors "$out")" = 0 ] || die "$c: wrk saw errors: $out"
        P50[$c]="${P50[$c]:-} $(field p50_us "$out")"
        P99[$c]="${P99[$c]:-} $(field p99_us "$out")"
        if [ "$c" != local ]; then
            sum=$(metric unbusy_redis_latency_seconds_sum); cnt=$(metric unbusy_redis_latency_seconds_count)
            lease=$(metric 'unbusy_redis_limit_checks_total{result="lease"}')
            adm=$(metric 'unbusy_redis_limit_checks_total{result="admitted"}')
            RTT[$c]="${RTT[$c]:-} $(awk -v s="$sum" -v n="$cnt" 'BEGIN {printf "%.0f", n ? s / n * 1e6 : 0}')"
            echo "    round $round $c: $(field requests "$out") requests, $lease from the lease, $adm round trips" >&2
        fi
        stop_pid "$GW_PID"
    done
done
median() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo
echo "## Added latency of shared limits: 1 connection, non-stream, ${DURATION} s x $REPEAT rounds (medians, µs)"
echo
echo "| configuration | p50 | p99 | added p50 | added p99 | Redis round trip (mean) |"
echo "|---|---:|---:|---:|---:|---:|"
b50=$(echo "${P50[local]}" | median); b99=$(echo "${P99[local]}" | median)
for c in local lease4 lease0; do
    p50=$(echo "${P50[$c]}" | median); p99=$(echo "${P99[$c]}" | median)
    rtt=-; [ "$c" != local ] && rtt=$(echo "${RTT[$c]}" | median)
    echo "| $c | $p50 | $p99 | $((p50 - b50)) | $((p99 - b99)) | $rtt |"
done

# ---- part 2 ----
accuracy() { # LABEL: two replicas with $TMP/acc.yaml, SENT requests alternately; prints admitted and ms
    start_gateway acc; P1=$GW_PORT; G1=$GW_PID
    start_gateway acc; P2=$GW_PORT; G2=$GW_PID
    if [ "$1" = up ]; then
        for p in $P1 $P2; do
            wait_for 10 bash -c "[ \"\$(curl -s http://127.0.0.1:$p/metrics | awk '\$1==\"unbusy_redis_up\"{print \$2}')\" = 1 ]" || die "redis not up"
        done
    fi
    node -e '
        const [p1, p2, n, key] = process.argv.slice(1);
        (async () => {
            const t0 = Date.now(); let ok = 0, other = 0;
            for (let i = 0; i < +n; i++) {
                const r = await fetch(`http://127.0.0.1:${i % 2 ? p2 : p1}/v1/chat/completions`, {method: "POST",
                    headers: {"content-type": "application/json", authorization: `Bearer ${key}`},
                    body: JSON.stringify({model: "bench", max_tokens: 5, messages: [{role: "user", content: "hi"}]})});
                await r.text();
                if (r.status === 200) ok++; else if (r.status !== 429) other++;
            }
            console.log(ok, Date.now() - t0, other);
        })();' "$P1" "$P2" "$SENT" "$KEY"
    stop_pid "$G1"; stop_pid "$G2"
}
echo
echo "## Limit accuracy across two replicas: key rpm $RPM, $SENT requests sent alternately, sequential"
echo
echo "| Redis | admitted | expected | run time (ms) | other answers |"
echo "|---|---:|---:|---:|---:|"
config acc "redis: {url: \"redis://127.0.0.1:$REDIS_PORT\"}" "$RPM"
read -r ok ms other <<<"$(accuracy up)"
echo "| up | $ok | $((RPM + RPM * ms / 60000)) | $ms | $other |"
stop_pid "$REDIS_PID"
read -r ok ms other <<<"$(accuracy down)"
echo "| down (refused connections) | $ok | $((2 * (RPM + RPM * ms / 60000))) (per replica) | $ms | $other |"
