#!/bin/bash
# bench/overload.sh — does a client see "busy" while capacity is left, with the
# defaults? Loopback scenarios with fault-injecting providers (three fake
# upstreams, build/fakeup, behaviours from src/sim/fakegen.h) behind unbusy with
# an untuned config (providers and models only), and, where they apply, behind
# nginx and HAProxy configured as they would be for this job:
#
#   busy       A answers 503 to half its requests (busy-ra: with Retry-After: 5),
#              B answers 200 and then only ": keep-alive" comments for 20 s on 30 %
#              of its requests before the real stream, C is healthy (300 ms TTFT)
#   sometimes  every deployment: 10 % keep-alive-only for 20 s, 10 % 503, else healthy
#   cuts       every deployment cuts 5 % of its streams after 5 of 10 chunks;
#              each answer's text is checked against what the fake sends
#   long       two deployments; L's first token takes 150 ms + 100 ms per 1,000
#              prompt tokens (ttft_per_ktok), S is healthy; half the prompts are
#              long (32,000 bytes, ~8,000 tokens: ~950 ms at L); how many of the
#              requests first sent to L got a second attempt (a hedge)
#
# Each run: BENCH_N requests, open loop (Poisson) at BENCH_RATE/s, half of them
# streams, through one freshly started gateway, the fakes reset. Per run: success
# (200 and a complete answer), TTFT p50/p99/max at the client (request written →
# first content token; for a non-stream request the whole answer), upstream
# requests per client request (from the fakes' logs, by x-request-id), complete and
# exact answers. nginx and HAProxy run busy and sometimes; cuts and long are
# unbusy's alone (neither can resume a cut stream or hedge).
#
# Environment (all optional):
#   BENCH_N=300 BENCH_RATE=15    requests per run, arrivals per second
#   BENCH_GATEWAYS="unbusy nginx haproxy"
#   BENCH_SCENARIOS="busy busy-ra sometimes cuts long"
#   BENCH_KEEPALIVE_MS=20000     how long B's keep-alive-only answers last
#   BENCH_BUILD=1                0: use build/ as it is (no `make all` first)
#
# Installs nginx-light and haproxy when missing (Debian packages). Loopback only;
# every process started here is stopped by PID on exit; each run ends by itself
# (the load generator gives up on a request after 90 s). With the defaults it takes
# about 6 minutes.
set -u

ROOT=$(cd "$(dirname "$0")/.." && pwd)
N=${BENCH_N:-300}
RATE=${BENCH_RATE:-15}
GATEWAYS=${BENCH_GATEWAYS:-unbusy nginx haproxy}
SCENARIOS=${BENCH_SCENARIOS:-busy busy-ra sometimes cuts long}
KA=${BENCH_KEEPALIVE_MS:-20000}
LOAD="$ROOT/bench/llmload.mjs"
FAKELOG="$ROOT/bench/fakelog.mjs"
CHUNKS=10
# A short generation (10 chunks, 10 ms apart), so that a non-stream answer's time is close
# to its first token's and one TTFT column can hold both kinds of request.
OK="ttft=300,chunks=$CHUNKS,chunk_ms=10"

need=""
case " $GATEWAYS " in *" nginx "*) need="$need nginx-light" ;; esac
case " $GATEWAYS " in *" haproxy "*) need="$need haproxy" ;; esac
sh "$ROOT/tests/deps.sh" curl $need || exit 1

BENCH_NAME=overload
. "$ROOT/bench/lib.sh"

# ---- three fakes for the whole run; behaviours are set per run ----
# start_fake NAME: sets FAKE_PORT (not through $(...): the PID must reach PIDS of this shell).
start_fake() {
    run_fake "$1" "$TMP/bin/fakeup" --port 0 --behavior ok --log "$TMP/fake-$1.log"
}
start_fake a; PORT_a=$FAKE_PORT
start_fake b; PORT_b=$FAKE_PORT
start_fake c; PORT_c=$FAKE_PORT
fake_port() { eval echo "\$PORT_$1"; }

# set_fake NAME BEHAVIOUR: the fake's default behaviour, its counters and statistics reset.
set_fake() {
    local p
    p=$(fake_port "$1")
    [ "$(curl -s -o /dev/null -w '%{http_code}' -X POST --data-binary "$2" "http://127.0.0.1:$p/_fake/behavior")" = 200 ] ||
        die "fake $1 refused the behaviour '$2'"
    curl -s -X POST "http://127.0.0.1:$p/_fake/reset" >/dev/null
}

# A free port for nginx / HAProxy (unbusy takes port 0 and says which it got).
pick_port() { awk -v s="$$$RANDOM" 'BEGIN {srand(s); print 20000 + int(rand() * 40000)}'; }

GW_PID=""
GW_PORT=""
# gw_unbusy RUN DEPS...: providers and models, nothing else (lib.sh's start_unbusy starts it).
gw_unbusy() {
    local run=$1 d; shift
    {
        echo "server:"
        echo "  listen: 127.0.0.1:0"
        echo "providers:"
        for d in "$@"; do echo "  $d: {base_url: \"http://127.0.0.1:$(fake_port "$d")/v1\"}"; done
        echo "models:"
        echo "  m:"
        echo "    deployments:"
        for d in "$@"; do echo "      - {provider: $d, model: x}"; done
    } >"$TMP/$run.yaml"
    start_unbusy "$run"
}

# nginx as a reverse proxy for LLM APIs: round robin, streaming unbuffered, a 5 s read
# timeout, and the next upstream on an error, a timeout or a 503 (POSTs included).
gw_nginx() {
    local run=$1 dir=$TMP/$1 tries=0 d; shift
    mkdir -p "$dir/logs"
    while :; do
        tries=$((tries + 1))
        [ $tries -gt 10 ] && die "nginx did not start: $(tail -n 3 "$dir/logs/error.log")"
        GW_PORT=$(pick_port)
        {
            echo "worker_processes 1;"
            echo "pid $dir/nginx.pid;"
            echo "error_log $dir/logs/error.log warn;"
            echo "events { worker_connections 4096; }"
            echo "http {"
            echo "    access_log off;"
            for d in client_body proxy fastcgi uwsgi scgi; do echo "    ${d}_temp_path $dir/$d;"; done
            echo "    upstream llm {"
            for d in "$@"; do echo "        server 127.0.0.1:$(fake_port "$d");"; done
            echo "        keepalive 64;"
            echo "    }"
            echo "    server {"
            echo "        listen 127.0.0.1:$GW_PORT;"
            echo "        location / {"
            echo "            proxy_pass http://llm;"
            echo "            proxy_http_version 1.1;"
            echo "            proxy_set_header Connection \"\";"
            echo "            proxy_buffering off;"
            echo "            proxy_read_timeout 5s;"
            echo "            proxy_next_upstream error timeout http_503 non_idempotent;"
            echo "        }"
            echo "    }"
            echo "}"
        } >"$dir/nginx.conf"
        nginx -p "$dir" -e "$dir/logs/error.log" -c "$dir/nginx.conf" -g 'daemon off;' 2>>"$dir/logs/stderr" &
        GW_PID=$!
        if wait_for 5 http_up "http://127.0.0.1:$GW_PORT/v1/models" && alive "$GW_PID"; then break; fi
        kill -TERM "$GW_PID" 2>/dev/null
        wait "$GW_PID" 2>/dev/null
    done
    PIDS="$PIDS $GW_PID"
}

# HAProxy 2.6 the same way: round robin, 5 s server (inactivity) timeout, layer-7
# retries on a 503 or a failed connection, each retry to another server.
gw_haproxy() {
    local run=$1 dir=$TMP/$1 tries=0 d; shift
    mkdir -p "$dir"
    while :; do
        tries=$((tries + 1))
        [ $tries -gt 10 ] && die "haproxy did not start: $(tail -n 3 "$dir/stderr")"
        GW_PORT=$(pick_port)
        {
            echo "global"
            echo "    maxconn 4096"
            echo "defaults"
            echo "    mode http"
            echo "    timeout connect 2s"
            echo "    timeout client 120s"
            echo "    timeout server 5s"
            echo "    retries 3"
            echo "    retry-on 503 conn-failure"
            echo "    option redispatch 1"
            echo "    option http-buffer-request"
            echo "frontend fe"
            echo "    bind 127.0.0.1:$GW_PORT"
            echo "    default_backend llm"
            echo "backend llm"
            echo "    balance roundrobin"
            for d in "$@"; do echo "    server $d 127.0.0.1:$(fake_port "$d")"; done
        } >"$dir/haproxy.cfg"
        haproxy -f "$dir/haproxy.cfg" -db >>"$dir/stdout" 2>>"$dir/stderr" &
        GW_PID=$!
        if wait_for 5 http_up "http://127.0.0.1:$GW_PORT/v1/models" && alive "$GW_PID"; then break; fi
        kill -TERM "$GW_PID" 2>/dev/null
        wait "$GW_PID" 2>/dev/null
    done
    PIDS="$PIDS $GW_PID"
}

# Results, one line per run: scenario gateway key=value...
RESULTS=$TMP/results

# run_case SCENARIO GATEWAY LONG_SHARE DEPS...: one run; prints its table row.
run_case() {
    local scen=$1 gw=$2 long=$3 name="$1-$2" line up hedges="" d logs=""; shift 3
    for d in "$@"; do logs="$logs $d=$TMP/fake-$d.log"; done
    "gw_$gw" "$name" "$@"
    for d in "$@"; do curl -s -X POST "http://127.0.0.1:$(fake_port "$d")/_fake/reset" >/dev/null; done
    run "$TMP/$name.load" timeout 300 node "$LOAD" mix --port "$GW_PORT" --model m --n "$N" --rate "$RATE" \
        --stream-share 0.5 --long-share "$long" --long-bytes 32000 --chunks $CHUNKS --id-prefix "$name" \
        --out "$TMP/$name.json" || die "load generator failed on $name: $(tail -n 3 "$TMP/$name.load")"
    line=$(grep '^RESULT' "$TMP/$name.load")
    if [ "$gw" = unbusy ]; then
        hedges=$(curl -s "http://127.0.0.1:$GW_PORT/admin/deployments" |
            jget '(h => h ? [h.started, h.won, h.wasted].join("/") : "-")(j.models[0].hedges)')
    fi
    alive "$GW_PID" || die "$gw died during $name"
    stop_pid "$GW_PID"
    # shellcheck disable=SC2086
    up=$(node "$FAKELOG" --prefix "$name" --n "$N" --out "$TMP/$name.json" $logs)
    echo "$scen $gw $line $up hedges=${hedges:--}" >>"$RESULTS"
    printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$gw" "$(field success_pct "$line")" \
        "$(field exact_pct "$line")" "$(field ttft_p50 "$line")" "$(field ttft_p99 "$line")" \
        "$(field stream_p99 "$line")" "$(field ttft_max "$line")" "$(field per_client "$up")" "${hedges:--}" \
        "$(field error_kinds "$line" | sed 's/[{}"]//g; s/,/, /g')"
}

table_head() {
    echo
    echo "$1"
    echo
    echo "| gateway | success % | complete and exact % | TTFT p50 ms | p99 ms | streams p99 ms | max ms | upstream / client | hedges started/won/wasted | errors |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---|---|"
}

echo "# overload with the defaults: $N requests per run at $RATE/s (Poisson), half streams"
echo "# $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), kernel $(uname -r);" \
    "unbusy $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?');" \
    "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for scen in $SCENARIOS; do
    case $scen in
    busy | busy-ra)
        if [ "$scen" = busy ]; then
            set_fake a "50%status=503|$OK"
            table_head "busy: A 503 on 50 %, B keep-alive only for $((KA / 1000)) s on 30 %, C healthy"
        else
            set_fake a "50%status=503,retry_after=5|$OK"
            table_head "busy-ra: the same, A's 503s with Retry-After: 5"
        fi
        set_fake b "30%keepalive=$KA,$OK|$OK"
        set_fake c "$OK"
        for gw in $GATEWAYS; do
            # nginx and HAProxy ignore Retry-After: busy-ra would repeat busy for them.
            [ "$scen" = busy-ra ] && [ "$gw" != unbusy ] && continue
            run_case "$scen" "$gw" 0 a b c
        done
        ;;
    sometimes)
        for d in a b c; do set_fake "$d" "10%keepalive=$KA,$OK|10%status=503|$OK"; done
        table_head "sometimes: every deployment 10 % keep-alive only for $((KA / 1000)) s, 10 % 503"
        for gw in $GATEWAYS; do run_case sometimes "$gw" 0 a b c; done
        ;;
    cuts)
        for d in a b c; do set_fake "$d" "5%cut=5,$OK|$OK"; done
        table_head "cuts: every deployment cuts 5 % of its streams after 5 of $CHUNKS chunks"
        case " $GATEWAYS " in *" unbusy "*) run_case cuts unbusy 0 a b c ;; esac
        ;;
    long)
        set_fake a "ttft=150,ttft_per_ktok=100,chunks=$CHUNKS,chunk_ms=10"
        set_fake b "$OK"
        table_head "long: L (a) 150 ms + 100 ms per 1,000 prompt tokens, S (b) 300 ms; half the prompts ~8,000 tokens"
        case " $GATEWAYS " in *" unbusy "*) run_case long unbusy 0.5 a b ;; esac
        ;;
    *) die "unknown scenario '$scen'" ;;
    esac
done

echo
echo "TTFT: request written → first content token (non-stream: the whole answer, 90 ms of generation"
echo "included), successful requests only; streams p99: the streams' alone."
echo "Upstream / client: chat requests the fakes received with this run's request ids, per client request"
echo "(retries, hedges and continuations included). Complete and exact: 200, a complete answer, and its"
echo "text exactly the fake's. Hedges: unbusy's admin API (GET /admin/deployments)."
if grep -q '^long unbusy' "$RESULTS" 2>/dev/null; then
    l=$(grep '^long unbusy' "$RESULTS")
    fa=$(field first_a "$l"); aa=$(field again_a "$l")
    echo
    echo "long: of the $fa requests first sent to L, $aa had a second attempt" \
        "($(awk -v a="$aa" -v f="$fa" 'BEGIN {printf "%.1f", f ? 100 * a / f : 0}') %, goal <= 5 %):" \
        "$(field again_long_a "$l") of $(field first_long_a "$l") long prompts," \
        "$(field again_short_a "$l") of $(field first_short_a "$l") short ones;" \
        "TTFT p50/p99 long $(field long_p50 "$l")/$(field long_p99 "$l") ms," \
        "short $(field short_p50 "$l")/$(field short_p99 "$l") ms."
fi
# Anything the gateways logged as an error or a warning, for a look.
for f in "$TMP"/*-unbusy.err; do
    [ -f "$f" ] || continue
    grep -i '"level":"error"\|error\|warn' "$f" | grep -v 'auth is open' | head -n 3 | sed "s|^|$(basename "$f" .err): |" >&2
done
