# Shared by the benchmarks that start their own gateway (hedge, admission, ledger, overload, engine, redis): build, a
# temporary directory with copies of the binaries, process bookkeeping so that every
# process started is stopped by its PID on exit, and small helpers.
# Set ROOT and BENCH_NAME, then source this file.

if [ "${BENCH_BUILD:-1}" = 1 ]; then
    make -C "$ROOT" --no-print-directory all >/dev/null || exit 1
fi
TMP=$(mktemp -d "${TMPDIR:-/tmp}/unbusy-$BENCH_NAME.XXXXXX") || exit 1
PIDS=""
mkdir "$TMP/bin" && cp "$ROOT/build/unbusy" "$ROOT/build/fakeup" "$TMP/bin/" || { rm -rf "$TMP"; exit 1; }

alive() {
    local st
    st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1)
    [ -n "$st" ] && [ "$st" != Z ]
}
# A PID leaves PIDS once reaped, so that cleanup never signals a reused PID.
forget() { PIDS=$(echo " $PIDS " | sed "s/ $1 / /; s/^ *//; s/ *$//"); }
stop_pid() {
    local i=0
    kill -TERM "$1" 2>/dev/null
    while alive "$1" && [ $i -lt "${BENCH_STOP_WAIT:-100}" ]; do sleep 0.05; i=$((i + 1)); done
    alive "$1" && kill -KILL "$1" 2>/dev/null
    wait "$1" 2>/dev/null
    forget "$1"
}
cleanup() {
    local p
    for p in $PIDS; do stop_pid "$p"; done
    PIDS=""
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP
die() { echo "$BENCH_NAME: $*" >&2; exit 1; }
wait_for() {
    local n=$(($1 * 20)); shift
    while [ "$n" -gt 0 ]; do
        "$@" && return 0
        sleep 0.05; n=$((n - 1))
    done
    return 1
}
# run OUT CMD...: runs CMD in the background with its output in OUT, so that an interrupt
# stops it by PID too, and waits for it; returns its status.
run() {
    local out=$1 pid rc; shift
    "$@" >"$out" 2>&1 &
    pid=$!
    PIDS="$PIDS $pid"
    wait "$pid"; rc=$?
    forget "$pid"
    return $rc
}
has_line() { grep -q "$2" "$1" 2>/dev/null; }
http_up() { [ "$(curl -s -o /dev/null -m 1 -w '%{http_code}' "$1")" = 200 ]; }
# run_fake NAME CMD...: starts a fake upstream (fakeup, fastfake: anything that prints
# "listening PORT"), its output in $TMP/fake-NAME.out and .err, and waits until it listens;
# sets FAKE_PORT and FAKE_PID. Not through $(...): the PID must reach PIDS of this shell.
run_fake() {
    local name=$1
    shift
    "$@" >"$TMP/fake-$name.out" 2>"$TMP/fake-$name.err" &
    FAKE_PID=$!
    PIDS="$PIDS $FAKE_PID"
    wait_for 10 has_line "$TMP/fake-$name.out" '^listening ' ||
        die "the fake upstream $name did not start: $(cat "$TMP/fake-$name.err")"
    FAKE_PORT=$(awk '/^listening/ {print $2; exit}' "$TMP/fake-$name.out")
}
# start_unbusy NAME: starts the gateway on $TMP/NAME.yaml (output in $TMP/NAME.out and .err),
# waits until it listens and answers /healthz; sets GW_PID and GW_PORT.
start_unbusy() {
    "$TMP/bin/unbusy" --config "$TMP/$1.yaml" >"$TMP/$1.out" 2>"$TMP/$1.err" &
    GW_PID=$!
    PIDS="$PIDS $GW_PID"
    wait_for 10 has_line "$TMP/$1.err" 'listening on http://127.0.0.1:' ||
        die "unbusy did not start: $(cat "$TMP/$1.err")"
    GW_PORT=$(sed -n 's|.*listening on http://127.0.0.1:\([0-9]*\).*|\1|p' "$TMP/$1.err" | head -n 1)
    wait_for 10 http_up "http://127.0.0.1:$GW_PORT/healthz" ||
        die "$1: unbusy /healthz on port $GW_PORT did not answer (alive: $(alive "$GW_PID" && echo yes || echo no)): $(tail -n 5 "$TMP/$1.err")"
}
# jget EXPR: evaluates EXPR with j = the JSON on standard input.
jget() { node -e 'const j=JSON.parse(require("fs").readFileSync(0,"utf8")); console.log(eval(process.argv[1]))' "$1"; }
# field NAME LINE: the value of NAME=... in a RESULT line.
field() { echo "$2" | tr ' ' '\n' | sed -n "s/^$1=//p"; }
