-- wrk script: POSTs one chat completion per request and prints a RESULT line.
-- BENCH_STREAM=1 asks for a stream (with the usage chunk, as unbusy asks
-- upstream anyway); BENCH_MODEL picks the model name (default "bench").
local stream = os.getenv("BENCH_STREAM") == "1"
local model = os.getenv("BENCH_MODEL") or "bench"

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
if stream then
    wrk.headers["Accept"] = "text/event-stream"
    wrk.body = '{"model":"' .. model .. '","stream":true,"stream_options":{"include_usage":true},' ..
               '"messages":[{"role":"user","content":"Say hello."}]}'
else
    wrk.body = '{"model":"' .. model .. '","messages":[{"role":"user","content":"Say hello."}]}'
end

-- Latencies are in microseconds (wrk keeps one bucket per microsecond).
function done(summary, latency, requests)
    local e = summary.errors
    io.write(string.format(
        "RESULT requests=%d duration_us=%d p50_us=%d p90_us=%d p99_us=%d max_us=%d mean_us=%.1f " ..
        "errors=%d\n",
        summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
        latency:percentile(99), latency.max, latency.mean,
        e.connect + e.read + e.write + e.status + e.timeout))
end
