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
import { fork, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';

const [mode, portS, pidS, ...rest] = process.argv.slice(2);
const port = Number(portS);
const rss = () => Number(/^VmRSS:\s+(\d+)/m.exec(readFileSync(`/proc/${pidS}/status`, 'utf8'))[1]) * 1024;
/* CPU seconds (user + system) the process has used, from /proc/PID/stat (clock ticks of 10 ms). */
const cpuS = () => {
    const f = readFileSync(`/proc/${pidS}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(f[11]) + Number(f[12])) / 100;
};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const socks = [];

function streamRequest(fake) {
    const body = JSON.stringify({ model: 'm', stream: true, messages: [{ role: 'user', content: 'hi' }], fake });
    return `POST /v1/chat/completions HTTP/1.1\r\nHost: b\r\nContent-Type: application/json\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
}

/* Opens a connection, sends req; resolves when done(text so far) says so. Rejects when the
   connection fails or closes first: an answer that is not the one waited for (a 503, say)
   ends the wait instead of holding it for ever. err.status is the answer's status, if any. */
function open(req, done, onData) {
    return new Promise((resolve, reject) => {
        const s = net.connect(port, '127.0.0.1');
        let tail = '', status = 0, settled = false;
        const fail = (why) => {
            if (settled) return;
            settled = true;
            const e = new Error(why);
            e.status = status;
            reject(e);
        };
        socks.push(s);
        s.on('error', (e) => fail(e.code || e.message));
        s.on('close', () => fail('closed'));
        s.on('connect', () => s.write(req));
        s.on('data', (d) => {
            if (onData) onData(s, d);
            if (!status) status = Number(/^HTTP\/1\.1 (\d{3})/.exec(d.toString('latin1', 0, 16))?.[1] ?? 0);
            tail = (tail + d.toString('latin1')).slice(-4096);
            if (!settled && done(tail, status)) {
                settled = true;
                resolve(s);
            } else if (!settled && status && status !== 200 && /\r\n0\r\n\r\n$|\}$/.test(tail)) {
                fail(`status ${status}`); // a whole error answer on a kept connection
            }
        });
    });
}

async function inBatches(n, size, fn) {
    for (let i = 0; i < n; i += size)
        await Promise.all(Array.from({ length: Math.min(size, n - i) }, fn));
}

/* The probe runs in a process of its own: in the load's process its timings would include
   that process's own event loop, busy with N sockets. MEMLOAD_PROBE names bench/probe.c's
   binary (with its command, e.g. `chrt -f 50 .../probe`, split at spaces): a C probe at a
   real-time priority, woken as soon as its answer comes; without it, `memload.mjs probe
   PORT` (forked), which measures this machine's scheduling of node as well. */
function probeProcess() {
    const control = process.env.MEMLOAD_CONTROL_PORT ?? '0';
    if (process.env.MEMLOAD_PROBE) {
        const [cmd, ...args] = process.env.MEMLOAD_PROBE.split(' ').filter(Boolean);
        const child = spawn(cmd, [...args, String(port), control], { stdio: ['ignore', 'pipe', 'inherit'] });
        let out = '';
        child.stdout.on('data', (d) => { out += d; });
        const exited = new Promise((resolve) => child.on('close', resolve));
        return {
            streaming: () => child.kill('SIGUSR1'),
            stop: async () => {
                child.kill('SIGTERM');
                await exited;
                return JSON.parse(out);
            },
        };
    }
    const child = fork(new URL(import.meta.url).pathname, ['probe', String(port), '0', control]);
    return {
        streaming: () => child.send('streaming'),
        stop: () => new Promise((resolve) => {
            child.once('message', resolve);
            child.send('stop');
        }),
    };
}

/* One GET /healthz on a new connection to p: milliseconds until the answer has closed. */
async function probeOnce(p) {
    const t0 = process.hrtime.bigint();
    await new Promise((resolve) => {
        const s = net.connect(p, '127.0.0.1', () => s.write('GET /healthz HTTP/1.1\r\nHost: p\r\nConnection: close\r\n\r\n'));
        s.on('data', () => {});
        s.on('close', resolve);
        s.on('error', resolve);
    });
    return Number(process.hrtime.bigint() - t0) / 1e6;
}

/* Probes port every 100 ms until stop.done, and controlPort (an idle gateway: what this
   machine's scheduling alone costs a probe) right after each, if given. The probes made once
   stop.streaming is set are also kept apart (`steady`). */
async function probeLoop(stop, controlPort) {
    const lat = [], control = [], steady = [];
    const t00 = Date.now();
    while (!stop.done) {
        const streaming = stop.streaming;
        lat.push(await probeOnce(port));
        if (streaming) steady.push(lat[lat.length - 1]);
        if (controlPort)
            control.push(await probeOnce(controlPort));
        if (process.env.MEMLOAD_TRACE && lat[lat.length - 1] > 5)
            console.error(`probe at ${((Date.now() - t00) / 1000).toFixed(1)} s: ${lat[lat.length - 1].toFixed(1)} ms` +
                (controlPort ? ` (control ${control[control.length - 1].toFixed(1)} ms)` : ''));
        await sleep(100);
    }
    for (const a of [lat, control, steady]) a.sort((x, y) => x - y);
    return { lat, control, steady };
}

const ended = (t) => /data: \[DONE\]\n\n\r\n0\r\n\r\n$/.test(t);

if (mode === 'probe') {
    const stop = { done: false, streaming: false };
    process.on('message', (m) => {
        if (m === 'streaming') stop.streaming = true;
        else stop.done = true;
    });
    const res = await probeLoop(stop, Number(rest[0] ?? 0));
    await new Promise((resolve) => process.send(res, resolve));
} else if (mode === 'idle') {
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
    const prober = probeProcess();
    // The load is the clients of 10,000 streams, which are not on a gateway's machine: at the
    // lowest priority it takes the CPU the gateway and the probe leave (the fake too, in
    // memory.sh), so that the probe measures the gateway more than this machine's scheduler.
    os.setPriority(19);
    const sampler = setInterval(() => { peak = Math.max(peak, rss()); }, 100);
    const started = Date.now();
    const cpu0 = cpuS();
    const finished = [];
    let open_now = 0, most_open = 0, flowing = 0;
    // Once every stream has its first bytes, the opening rush (N connections and requests in
    // 0.2 s) is over: the probes from then on measure the loop while N streams flow.
    const onFirst = (s) => {
        if (s.flowing) return;
        s.flowing = true;
        if (++flowing === n) prober.streaming();
    };
    const req = streamRequest(`chunks=${chunks},chunk_ms=${Math.round((seconds * 1000) / chunks)}`);
    // All N are started together (in batches of 500 connects, not waiting for the streams):
    // they overlap for most of SECONDS.
    for (let i = 0; i < n; i += 500) {
        for (let j = i; j < Math.min(n, i + 500); j++) {
            open_now++;
            most_open = Math.max(most_open, open_now);
            finished.push(open(req, ended, onFirst).finally(() => { open_now--; }));
        }
        await sleep(10);
    }
    // Bounded: whatever has not ended by then counts as unfinished.
    const limit = sleep((seconds * 3 + 60) * 1000).then(() => 'timeout');
    const settledAll = Promise.allSettled(finished);
    const outcome = await Promise.race([settledAll, limit]);
    clearInterval(sampler);
    const cpuPct = (100 * (cpuS() - cpu0)) / ((Date.now() - started) / 1000);
    const { lat, control, steady } = await prober.stop();
    const pct = (a, q) => (a.length ? a[Math.min(a.length - 1, Math.floor(q * a.length))].toFixed(2) : '-');
    const p = (q) => pct(lat, q);
    const results = outcome === 'timeout' ? [] : outcome;
    const ok = results.filter((r) => r.status === 'fulfilled').length;
    const why = {};
    for (const r of results)
        if (r.status === 'rejected') why[r.reason.status || r.reason.message] = (why[r.reason.status || r.reason.message] ?? 0) + 1;
    const failed = Object.entries(why).map(([k, v]) => `${k}:${v}`).join(',') || 'none';
    console.log(`RESULT mode=many streams=${n} complete=${ok} failed=${failed} timed_out=${outcome === 'timeout'} most_open=${most_open} seconds=${((Date.now() - started) / 1000).toFixed(1)} rss_before_kib=${before >> 10} peak_kib=${peak >> 10} healthz_p50_ms=${p(0.5)} healthz_p99_ms=${p(0.99)} probes=${lat.length} flowing_p50_ms=${pct(steady, 0.5)} flowing_p99_ms=${pct(steady, 0.99)} flowing_probes=${steady.length} control_p50_ms=${pct(control, 0.5)} control_p99_ms=${pct(control, 0.99)} gateway_cpu_pct=${cpuPct.toFixed(0)}`);
} else {
    console.error('usage: memload.mjs idle|slow|many PORT PID ...');
    process.exit(2);
}
for (const s of socks) s.destroy();
process.exit(0);
