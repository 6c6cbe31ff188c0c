#!/bin/sh
# Builds the container image (deploy/Dockerfile) with docker or podman, starts
# it and polls /healthz and /readyz, then stops it with SIGTERM and checks it
# exits 0 (so the drain works as PID 1). `make test` and `make image` run it;
# with no container engine running it prints a SKIP line and exits 0.
#
# Environment: IMAGE_TAG (default unbusy:test).
cd "$(dirname "$0")/.." || exit 1
tag=${IMAGE_TAG:-unbusy:test}
engine=
for tool in docker podman; do
    if command -v "$tool" >/dev/null 2>&1 && "$tool" info >/dev/null 2>&1; then
        engine=$tool
        break
    fi
done
if [ -z "$engine" ]; then
    echo "SKIP image build: no docker or podman with a running engine (deploy/build-image.sh)"
    exit 0
fi
echo "image: $engine build -f deploy/Dockerfile -t $tag ."
"$engine" build -f deploy/Dockerfile -t "$tag" . || exit 1
cid=$("$engine" run -d -p 127.0.0.1::8080 "$tag") || exit 1
trap '"$engine" rm -f "$cid" >/dev/null 2>&1' EXIT
port=$("$engine" port "$cid" 8080 | head -n 1 | sed 's/.*://')
ok=0
i=0
while [ $i -lt 60 ]; do
    if curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 &&
        curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1; then
        ok=1
        break
    fi
    i=$((i + 1))
    sleep 0.5
done
if [ $ok -ne 1 ]; then
    echo "FAIL image: /readyz and /healthz did not answer 200 within 30 s"
    "$engine" logs "$cid" | tail -n 20
    exit 1
fi
"$engine" stop -t 45 "$cid" >/dev/null
code=$("$engine" inspect -f '{{.State.ExitCode}}' "$cid")
if [ "$code" != 0 ]; then
    echo "FAIL image: exit code $code after SIGTERM"
    exit 1
fi
echo "PASS image $tag: serves /readyz and /healthz, exits 0 on SIGTERM"
