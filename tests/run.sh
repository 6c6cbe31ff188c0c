#!/bin/sh
# The whole test suite, run by `make test` after it has built everything.
#
#   0. the layering rule: tests/arch/layers.sh (no include upward, no cycle across folders)
#   1. unit tests: every build/unit/LAYER/test_* and build/asan/unit/LAYER/test_* (cmocka)
#   2. fuzz corpora: every build/asan/fuzz/fuzz_NAME over tests/fuzz/corpus/NAME/
#   3. integration: each tests/integration/*.test.mjs under `node --test`, against
#      build/unbusy and again against build/asan/unbusy (fake: build/fakeup)
#
# Each unit binary, corpus replay and integration file counts as one result,
# printed as it finishes; a failure prints its log. Ends with "N passed, N failed"
# and exits non-zero if anything failed.
#
# Environment: BUILD_DIR (default build), TEST_JOBS (integration files run at
# once, default 2), ONLY=unit|fuzz|integration (one part only),
# INTEGRATION_BUILDS (default "plain asan"; a path names another gateway binary).

# Worker mode: one integration file (run through xargs, two at a time).
if [ "$1" = "--node-file" ]; then
    label=$2 file=$3 results=$4
    name=$(basename "$file" .test.mjs)
    tag=$(printf %s "$label" | tr -c 'A-Za-z0-9_.-' '_')
    log="$results/$tag.$name.log"
    start=$(date +%s)
    timeout -k 10 300 node --test --test-reporter=spec --test-timeout=180000 "$file" >"$log" 2>&1
    rc=$?
    end=$(date +%s)
    echo "$rc" >"$results/$tag.$name.rc"
    if [ "$rc" -eq 0 ]; then st=PASS; else st=FAIL; fi
    echo "$st integration[$label] $name ($((end - start))s)"
    exit 0
fi

SELF=$(cd "$(dirname "$0")" && pwd)/run.sh
cd "$(dirname "$0")/.." || exit 1
B=${BUILD_DIR:-build}
JOBS=${TEST_JOBS:-2}
ONLY=${ONLY:-}
# shellcheck disable=SC3045 # dash and bash both have it; a core per sanitizer abort is noise
ulimit -c 0 2>/dev/null

RESULTS=$(mktemp -d "${TMPDIR:-/tmp}/unbusy-tests.XXXXXX") || exit 1
trap 'rm -rf "$RESULTS"' EXIT
trap 'exit 130' INT TERM

passed=0
failed=0
failures=""

record() { # name rc seconds logfile
    if [ "$2" -eq 0 ]; then
        passed=$((passed + 1))
        echo "PASS $1 ($3s)"
    else
        failed=$((failed + 1))
        failures="$failures $1"
        echo "FAIL $1 ($3s, exit $2)"
        if [ -n "$4" ] && [ -s "$4" ]; then
            tail -n 60 "$4" | sed 's/^/    /'
        fi
    fi
}

# run NAME TIMEOUT CMD...: runs a command with a time bound, records the result.
run() {
    name=$1 limit=$2
    shift 2
    log="$RESULTS/$(echo "$name" | tr '/ []' '____').log"
    start=$(date +%s)
    timeout -k 10 "$limit" "$@" >"$log" 2>&1
    rc=$?
    record "$name" "$rc" "$(($(date +%s) - start))" "$log"
}

# Sanitizer settings. LeakSanitizer cannot run under ptrace (some containers, debuggers):
# probe once and turn leak detection off only where it cannot work.
UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:abort_on_error=1
export UBSAN_OPTIONS
leaks=1
probe=""
for p in "$B"/asan/unbusy "$B"/asan/unit/*/test_*; do
    [ -x "$p" ] && { probe=$p; break; }
done
if [ -n "$probe" ]; then
    out=$(ASAN_OPTIONS=detect_leaks=1 timeout 20 "$probe" --help 2>&1 </dev/null)
    case $out in
    *"LeakSanitizer has encountered a fatal error"* | *"does not work under ptrace"*)
        leaks=0
        echo "note: LeakSanitizer does not work here; leak detection off"
        ;;
    esac
fi
ASAN_OPTIONS=detect_leaks=$leaks:abort_on_error=1:halt_on_error=1
export ASAN_OPTIONS

# 0. the layering rule of docs/architecture.md
if [ -z "$ONLY" ] || [ "$ONLY" = unit ]; then
    run "arch layers (tests/arch/layers.sh)" 60 sh tests/arch/layers.sh
fi

# 1. unit tests
if [ -z "$ONLY" ] || [ "$ONLY" = unit ]; then
    found=0
    for t in "$B"/unit/test_* "$B"/asan/unit/*/test_*; do
        if [ ! -f "$t" ] || [ ! -x "$t" ]; then continue; fi
        found=1
        run "unit ${t#"$B"/}" 120 "$t"
    done
    [ "$found" -eq 1 ] || record "unit (no test binaries in $B/unit; run make unit)" 1 0 ""
fi

# 2. fuzz corpus replays under ASan/UBSan
if [ -z "$ONLY" ] || [ "$ONLY" = fuzz ]; then
    for f in "$B"/asan/fuzz/fuzz_*; do
        if [ ! -f "$f" ] || [ ! -x "$f" ]; then continue; fi
        n=$(basename "$f")
        corpus=tests/fuzz/corpus/${n#fuzz_}
        if [ -d "$corpus" ] && [ -n "$(ls -A "$corpus" 2>/dev/null)" ]; then
            run "fuzz $n ($corpus)" 300 "$f" "$corpus"
        else
            record "fuzz $n: no corpus in $corpus" 1 0 ""
        fi
    done
fi

# 3. integration, per build
if [ -z "$ONLY" ] || [ "$ONLY" = integration ]; then
    if ! command -v node >/dev/null 2>&1; then
        record "integration: node is not installed" 1 0 ""
    else
        if [ ! -d tests/integration/node_modules/openai ]; then
            (cd tests/integration && npm ci --no-audit --no-fund --loglevel=error) ||
                record "integration: npm ci" 1 0 ""
        fi
        FAKEUP_BIN=$B/fakeup
        export FAKEUP_BIN
        # The slowest files first, so two at a time finish together.
        files=""
        for n in load failover http lifecycle errors basic; do
            [ -f "tests/integration/$n.test.mjs" ] && files="$files tests/integration/$n.test.mjs"
        done
        for f in tests/integration/*.test.mjs; do
            case " $files " in *" $f "*) ;; *) files="$files $f" ;; esac
        done
        for build in ${INTEGRATION_BUILDS:-plain asan}; do
            case $build in
            plain) bin=$B/unbusy ;;
            asan) bin=$B/asan/unbusy ;;
            *) bin=$build ;;
            esac
            if [ ! -x "$bin" ]; then
                record "integration[$build]: $bin not built" 1 0 ""
                continue
            fi
            if [ ! -x "$FAKEUP_BIN" ]; then
                record "integration[$build]: $FAKEUP_BIN not built" 1 0 ""
                continue
            fi
            UNBUSY_BIN=$bin
            export UNBUSY_BIN
            tag=$(printf %s "$build" | tr -c 'A-Za-z0-9_.-' '_')
            echo "integration against $bin ($JOBS at a time)"
            # shellcheck disable=SC2086
            printf '%s\n' $files | xargs -P "$JOBS" -I{} sh "$SELF" --node-file "$build" {} "$RESULTS"
            for f in $files; do
                name=$(basename "$f" .test.mjs)
                rcfile="$RESULTS/$tag.$name.rc"
                rc=$(cat "$rcfile" 2>/dev/null || echo 1)
                if [ "$rc" -eq 0 ]; then
                    passed=$((passed + 1))
                else
                    failed=$((failed + 1))
                    failures="$failures integration[$build]/$name"
                    echo "--- integration[$build] $name failed (exit $rc):"
                    log="$RESULTS/$tag.$name.log"
                    if grep -q 'failing tests:' "$log" 2>/dev/null; then
                        sed -n '/failing tests:/,$p' "$log" | head -n 200 | sed 's/^/    /'
                    else
                        tail -n 80 "$log" 2>/dev/null | sed 's/^/    /'
                    fi
                fi
            done
        done
    fi
fi

[ -n "$failures" ] && echo "failed:$failures"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
