// bench/memload.mjs — the client side of bench/memory.sh: one measurement of a
// gateway's memory (VmRSS of PID from /proc) against a load held open on loopback.
//
//   node memload.mjs idle  PORT PID N                 N keep-alive connections, each
//        having sent GET /healthz and read the answer: RSS bytes per connection
//   node memload.mjs slow  PORT PID N BYTES RATE      N clients each reading a stream of
//        BYTES content bytes at RATE bytes/s: peak RSS growth as % of bytes streamed
//   node memload.mjs many  PORT PID N SECONDS         N concurrent streams read as they
//        come, each lasting about SECONDS: peak RSS, and /healthz every 100 ms (p99)
// Prints one "RESULT key=value ..." line. Every socket is closed before it exits.
import net from 'node:net';
import { readFileSync } from 'node:fs';

const [mode, portS, pidS, ...rest] = process.argv.slice(2);
const port = Number(portS);
const rss = () => Number(/^VmRSS:\s+(\d+)/m.exec(readFileSync(`/proc/${pidS}/status`, 'utf8'))[1]) * 1024;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const socks = [];

function streamRequest(fake) {
    const body = JSON.stringify({ model: 'm', stream: true, messages: [{ role: 'user', content: 'hi' }], fake });
    return `POST /v1/chat/completions HTTP/1.1\r\nHost: b\r\nContent-Type: application/json\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
}

/* Opens a connection, sends req; resolves when done(text so far) says so. */
function open(req, done, onData) {
    return new Promise((resolve, reject) => {
        const s = net.connect(port, '127.0.0.1');
        let tail = '';
        socks.push(s);
        s.on('error', reject);
        s.on('connect', () => s.write(req));
        s.on('data', (d) => {
            if (onData) onData(s, d);
            tail = (tail + d.toString('latin1')).slice(-4096);
            if (done(tail)) resolve(s);
        });
    });
}

async function inBatches(n, size, fn) {
    for (let i = 0; i < n; i += size)
        await Promise.all(Array.from({ length: Math.min(size, n - i) }, fn));
}

async function probeLoop(stop) {
    const lat = [];
    while (!stop.done) {
        const t0 = process.hrtime.bigint();
        await new Promise((resolve) => {
            const s = net.connect(port, '127.0.0.1', () => s.write('GET /healthz HTTP/1.1\r\nHost: p\r\nConnection: close\r\n\r\n'));
            s.on('data', () => {});
            s.on('close', resolve);
            s.on('error', resolve);
        });
        lat.push(Number(process.hrtime.bigint() - t0) / 1e6);
        await sleep(100);
    }
    lat.sort((a, b) => a - b);
    return lat;
}

const ended = (t) => /data: \[DONE\]\n\n\r\n0\r\n\r\n$/.test(t);

if (mode === 'idle') {
    const n = Number(rest[0]);
    const req = 'GET /healthz HTTP/1.1\r\nHost: b\r\n\r\n';
    const answered = (t) => /\r\n\r\n[\s\S]*ok/.test(t);
    await inBatches(200, 100, () => open(req, answered)); // warm-up
    await sleep(500);
    const before = rss();
    await inBatches(n, 200, () => open(req, answered));
    await sleep(1000);
    const after = rss();
    console.log(`RESULT mode=idle conns=${n} rss_before_kib=${before >> 10} rss_after_kib=${after >> 10} bytes_per_conn=${Math.round((after - before) / n)}`);
} else if (mode === 'slow') {
    const [n, bytes, rate] = rest.map(Number);
    const before = rss();
    let peak = before, total = 0;
    const tick = 50; // ms: each client may read rate * tick / 1000 bytes per tick
    const finished = [];
    await inBatches(n, 50, () => finished.push(open(streamRequest(`big=${bytes},chunks=${Math.max(1, Math.round(bytes / 4096))}`), ended,
        (s, d) => {
            total += d.length;
            s.credit = (s.credit ?? rate * tick / 1000) - d.length;
            if (s.credit <= 0) s.pause();
        })));
    const timer = setInterval(() => {
        for (const s of socks) {
            s.credit = Math.min((s.credit ?? 0) + rate * tick / 1000, rate * tick / 1000);
            if (s.credit > 0 && s.isPaused()) s.resume();
        }
        peak = Math.max(peak, rss());
    }, tick);
    await Promise.all(finished);
    clearInterval(timer);
    console.log(`RESULT mode=slow readers=${n} streamed_mib=${(total / 1048576).toFixed(1)} rss_before_kib=${before >> 10} peak_kib=${peak >> 10} extra_pct=${(100 * (peak - before) / total).toFixed(2)}`);
} else if (mode === 'many') {
    const [n, seconds] = rest.map(Number);
    const chunks = 50;
    const before = rss();
    let peak = before;
    const stop = { done: false };
    const probes = probeLoop(stop);
    const sampler = setInterval(() => { peak = Math.max(peak, rss()); }, 100);
    const started = Date.now();
    const finished = [];
    await inBatches(n, 500, () => finished.push(open(streamRequest(`chunks=${chunks},chunk_ms=${Math.round((seconds * 1000) / chunks)}`), ended)));
    const results = await Promise.allSettled(finished);
    stop.done = true;
    clearInterval(sampler);
    const lat = await probes;
    const p = (q) => lat[Math.min(lat.length - 1, Math.floor(q * lat.length))].toFixed(2);
    const ok = results.filter((r) => r.status === 'fulfilled').length;
    console.log(`RESULT mode=many streams=${n} complete=${ok} seconds=${((Date.now() - started) / 1000).toFixed(1)} rss_before_kib=${before >> 10} peak_kib=${peak >> 10} healthz_p50_ms=${p(0.5)} healthz_p99_ms=${p(0.99)} probes=${lat.length}`);
} else {
    console.error('usage: memload.mjs idle|slow|many PORT PID ...');
    process.exit(2);
}
for (const s of socks) s.destroy();
process.exit(0);
