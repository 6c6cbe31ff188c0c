# The configurations of the proxies the CPU benchmarks compare (run.sh, cpu_ab.sh), so that
# both measure the same thing. Source it; each function prints a config on standard output.

# unbusy_bench_yaml FAKE_PORT [SERVER_LINES]: model "bench" passes a non-stream request
# through (stream_upstream: false, as nginx and HAProxy do); "bench-assemble" has the
# default (asks the upstream for a stream and assembles the answer). SERVER_LINES go under
# server: as they are (e.g. "  workers: 2").
unbusy_bench_yaml() {
    cat <<EOF
server:
  listen: 127.0.0.1:0
${2:-}
providers:
  fake:
    base_url: http://127.0.0.1:$1/v1
    stream_upstream: false
  fake-assemble:
    base_url: http://127.0.0.1:$1/v1
models:
  bench:
    - provider: fake
      model: bench
  bench-assemble:
    - provider: fake-assemble
      model: bench
EOF
}

# haproxy_bench_cfg PORT FAKE_PORT [NBTHREAD]: a plain HTTP reverse proxy with keep-alive to
# the fake, logging off.
haproxy_bench_cfg() {
    cat <<EOF
global
${3:+    nbthread $3}
    maxconn 4096
defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout http-keep-alive 60s
    option http-keep-alive
    http-reuse always
frontend fe
    bind 127.0.0.1:$1
    default_backend fake
backend fake
    server fake 127.0.0.1:$2
EOF
}
