// bench/llmload.mjs — the load generator of the resilience benchmarks
// (bench/hedge.sh, bench/admission.sh, bench/overload.sh). Plain node (20+), no packages.
//
//   node llmload.mjs closed --port P --model M --n N --concurrency C [--stream 1] [--key K]
//       N chat completions, C at a time (closed loop, keep-alive). Prints
//       RESULT n= ok= errors= ttft_p50= ... ttft_p99= ttft_max= head_p50= total_p50= ... slow=
//       (milliseconds; ttft: request written → first event with non-empty content,
//       for a non-stream request the whole answer; slow: requests whose ttft is
//       over --slow-ms, default 1000). --out FILE writes every request's timings.
//
//   node llmload.mjs open --port P --model M --rate R --duration S --classes NAME:KEY:SHARE,...
//                    --service-ms MS [--seed N] [--out FILE]
//       Open-loop Poisson arrivals at R requests/s for S seconds (non-stream), each
//       class a key and a share of the arrivals. Prints one CLASS line per class:
//       sent, completed, shed (429), other, queue wait p50/p99 (time to the
//       response head minus MS, the unloaded service time), Retry-After p50/max
//       and the time the queue really took to drain after each shed (p50/p99; and
//       both medians per 5 s window).
//
//   node llmload.mjs mix --port P --model M --n N --rate R [--stream-share F] [--long-share F]
//                    [--long-bytes B] [--chunks K] [--id-prefix PFX] [--seed N] [--out FILE]
//       Open-loop Poisson arrivals at R requests/s until N are sent (bench/overload.sh).
//       Request i is a stream or not, and has a long prompt (about B bytes) or a short
//       one: exact shares, each in its own seeded random order; it carries
//       x-request-id PFX-i, so the fakes' logs tell which upstream saw it. The answer's
//       text is kept: "exact" when it is what the fake sends for K content chunks
//       ("tok0 tok1 ... "). Prints
//       RESULT n= ok= success_pct= exact= exact_pct= ttft_p50= ttft_p90= ttft_p99= ttft_max=
//       and the same TTFT split by stream / non-stream and long / short prompts
//       (ok: 200 and a complete answer; ttft of a non-stream request: the whole answer).
//
//   node llmload.mjs hold --port P --model M --n N [--stream 1]
//       Opens N raw keep-alive sockets, writes one request on each and keeps
//       them open, reading and dropping whatever comes. Prints "held N" once
//       every request is written; closes everything and exits on SIGTERM or
//       when stdin ends.
import http from 'node:http';
import net from 'node:net';
import fs from 'node:fs';
import { performance } from 'node:perf_hooks';

const args = process.argv.slice(3);
const mode = process.argv[2];
function opt(name, dflt) {
    const i = args.indexOf('--' + name);
    return i >= 0 && i + 1 < args.length ? args[i + 1] : dflt;
}
const port = Number(opt('port', '0'));
const model = opt('model', 'bench');
const stream = opt('stream', '0') === '1';

// Nearest-rank percentile of a sorted array; NaN when empty.
function pct(sorted, p) {
    if (sorted.length === 0) return NaN;
    const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
    return sorted[i];
}
const fmt = (x) => (Number.isFinite(x) ? x.toFixed(1) : '-');
const sortNum = (a) => a.slice().sort((x, y) => x - y);

function body(streamed, prompt = 'Say hello.') {
    return JSON.stringify({
        model,
        stream: streamed,
        messages: [{ role: 'user', content: prompt }],
    });
}

// One request; resolves with its timings and outcome, never rejects.
function oneRequest(agent, { streamed, key, timeoutMs, prompt, requestId }) {
    return new Promise((resolve) => {
        const payload = body(streamed, prompt);
        const headers = { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) };
        if (key) headers.authorization = 'Bearer ' + key;
        if (requestId) headers['x-request-id'] = requestId;
        const r = { t0: performance.now(), status: 0, head: NaN, ttft: NaN, total: NaN, error: null,
                    retryAfter: null, queued: false, attempts: null, done: false, text: '' };
        let settled = false;
        const finish = () => {
            if (settled) return;
            settled = true;
            r.total = performance.now() - r.t0;
            resolve(r);
        };
        const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/v1/chat/completions',
                                   headers, agent });
        req.setTimeout(timeoutMs, () => { r.error = 'timeout'; req.destroy(); });
        req.on('error', (e) => { if (!r.error) r.error = e.code || e.message; finish(); });
        req.on('response', (res) => {
            r.head = performance.now() - r.t0;
            r.status = res.statusCode;
            r.retryAfter = res.headers['retry-after'] !== undefined ? Number(res.headers['retry-after']) : null;
            r.queued = res.headers['x-unbusy-queued'] === 'true';
            r.attempts = res.headers['x-unbusy-attempts'] ? Number(res.headers['x-unbusy-attempts']) : null;
            r.provider = res.headers['x-unbusy-provider'] || null;
            let pending = '';
            const chunks = [];
            res.setEncoding('utf8');
            res.on('data', (d) => {
                if (!streamed || res.statusCode !== 200) { chunks.push(d); return; }
                pending += d;
                let nl;
                while ((nl = pending.indexOf('\n\n')) >= 0) {
                    const ev = pending.slice(0, nl);
                    pending = pending.slice(nl + 2);
                    for (const line of ev.split('\n')) {
                        if (!line.startsWith('data: ')) continue;
                        const data = line.slice(6);
                        if (data === '[DONE]') { r.done = true; continue; }
                        let j;
                        try { j = JSON.parse(data); } catch { r.error = 'bad_event'; continue; }
                        if (j.error) { r.error = 'stream_error:' + (j.error.code || j.error.type); continue; }
                        const d0 = j.choices && j.choices[0] && j.choices[0].delta;
                        if (Number.isNaN(r.ttft) && d0 && (d0.content || d0.reasoning_content))
                            r.ttft = performance.now() - r.t0;
                        if (d0 && typeof d0.content === 'string') r.text += d0.content;
                    }
                }
            });
            res.on('end', () => {
                if (!streamed || res.statusCode !== 200) {
                    const text = chunks.join('');
                    if (res.statusCode === 200) {
                        r.ttft = performance.now() - r.t0;
                        r.done = true;
                        try { r.text = JSON.parse(text).choices[0].message.content || ''; }
                        catch { r.error = 'bad_body'; }
                    } else {
                        try { r.error = 'http_' + res.statusCode + ':' + (JSON.parse(text).error.code || ''); }
                        catch { r.error = 'http_' + res.statusCode; }
                    }
                } else if (!r.done && !r.error) {
                    r.error = 'no_done';
                }
                finish();
            });
            res.on('error', (e) => { if (!r.error) r.error = e.code || e.message; finish(); });
        });
        req.end(payload);
    });
}

async function closed() {
    const n = Number(opt('n', '1000'));
    const conc = Number(opt('concurrency', '16'));
    const key = opt('key', null);
    const agent = new http.Agent({ keepAlive: true, maxSockets: conc });
    const results = [];
    let next = 0;
    async function lane() {
        while (next < n) {
            next++;
            results.push(await oneRequest(agent, { streamed: stream, key, timeoutMs: 60000 }));
        }
    }
    const t0 = performance.now();
    await Promise.all(Array.from({ length: conc }, lane));
    const wall = (performance.now() - t0) / 1000;
    agent.destroy();
    const ok = results.filter((r) => r.status === 200 && r.done && !r.error);
    const errs = {};
    for (const r of results) {
        if (r.status === 200 && r.done && !r.error) continue;
        const kind = r.error || 'status_' + r.status;
        errs[kind] = (errs[kind] || 0) + 1;
    }
    const ttft = sortNum(ok.map((r) => r.ttft));
    const head = sortNum(ok.map((r) => r.head));
    const total = sortNum(ok.map((r) => r.total));
    const multi = results.filter((r) => r.attempts && r.attempts > 1).length;
    const slowMs = Number(opt('slow-ms', '1000'));
    const slow = ok.filter((r) => r.ttft > slowMs).length;
    console.log(`RESULT n=${n} ok=${ok.length} errors=${n - ok.length} wall_s=${wall.toFixed(2)} ` +
        `ttft_p50=${fmt(pct(ttft, 50))} ttft_p90=${fmt(pct(ttft, 90))} ttft_p95=${fmt(pct(ttft, 95))} ` +
        `ttft_p98=${fmt(pct(ttft, 98))} ttft_p99=${fmt(pct(ttft, 99))} ` +
        `ttft_max=${fmt(pct(ttft, 100))} head_p50=${fmt(pct(head, 50))} total_p50=${fmt(pct(total, 50))} ` +
        `total_p99=${fmt(pct(total, 99))} multi_attempt=${multi} slow=${slow}` +
        (n - ok.length ? ' error_kinds=' + JSON.stringify(errs).replace(/ /g, '') : ''));
    const file = opt('out', null);
    if (file) fs.writeFileSync(file, JSON.stringify(results.map((r) => ({ t0: r.t0 - t0, ttft: r.ttft, head: r.head,
        total: r.total, status: r.status, attempts: r.attempts, provider: r.provider, error: r.error }))));
}

// A small seeded generator (mulberry32), so that two runs offer the same arrivals.
function rng(seed) {
    let a = seed >>> 0;
    return () => {
        a = (a + 0x6d2b79f5) >>> 0;
        let t = a;
        t = Math.imul(t ^ (t >>> 15), t | 1);
        t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
        return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
}

async function open() {
    const rate = Number(opt('rate', '80'));
    const duration = Number(opt('duration', '20'));
    const serviceMs = Number(opt('service-ms', '200'));
    const rand = rng(Number(opt('seed', '1')));
    const classes = opt('classes', 'default::1').split(',').map((s) => {
        const [name, key, share] = s.split(':');
        return { name, key: key || null, share: Number(share) };
    });
    const shareSum = classes.reduce((s, c) => s + c.share, 0);
    const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity });
    const results = [];
    const inflight = [];
    const start = performance.now();
    const endAt = start + duration * 1000;
    let t = start;
    // Arrival times are fixed in advance; each is sent as soon as the loop reaches it.
    const arrivals = [];
    for (;;) {
        t += (-Math.log(1 - rand()) / rate) * 1000;
        if (t >= endAt) break;
        let u = rand() * shareSum, cls = classes[classes.length - 1];
        for (const c of classes) { if (u < c.share) { cls = c; break; } u -= c.share; }
        arrivals.push({ at: t, cls });
    }
    let i = 0;
    await new Promise((resolve) => {
        const tick = () => {
            const now = performance.now();
            while (i < arrivals.length && arrivals[i].at <= now) {
                const a = arrivals[i++];
                const p = oneRequest(agent, { streamed: false, key: a.cls.key, timeoutMs: 120000 }).then((r) => {
                    r.cls = a.cls.name;
                    r.arrival = r.t0 - start;
                    results.push(r);
                });
                inflight.push(p);
            }
            if (i < arrivals.length) setTimeout(tick, Math.max(0, Math.min(5, arrivals[i].at - performance.now())));
            else resolve();
        };
        tick();
    });
    await Promise.all(inflight);
    agent.destroy();
    // When did each request leave the queue? Served: response head minus the service
    // time; refused: at its response.
    for (const r of results) {
        r.leave = r.status === 200 ? r.arrival + Math.max(0, r.head - serviceMs) : r.arrival + r.head;
    }
    const byArrival = results.slice().sort((a, b) => a.arrival - b.arrival);
    // Running maximum of leave times over arrivals, so that "the last request queued before
    // time t left at ..." is one binary search per shed request.
    const runMax = [];
    let m = -Infinity;
    for (const r of byArrival) { m = Math.max(m, r.leave); runMax.push(m); }
    const drainAfter = (t) => {
        let lo = 0, hi = byArrival.length; // first index with arrival >= t
        while (lo < hi) { const mid = (lo + hi) >> 1; if (byArrival[mid].arrival < t) lo = mid + 1; else hi = mid; }
        return lo === 0 ? 0 : Math.max(0, runMax[lo - 1] - t);
    };
    const out = [];
    for (const c of classes) {
        const rs = results.filter((r) => r.cls === c.name);
        const served = rs.filter((r) => r.status === 200 && r.done);
        const shed = rs.filter((r) => r.status === 429);
        const other = rs.length - served.length - shed.length;
        const wait = sortNum(served.map((r) => Math.max(0, r.head - serviceMs)));
        // Throughput while the overload lasts: answers finished between 2 s (the queue has
        // filled) and the end of the arrivals.
        const during = served.filter((r) => r.arrival + r.head >= 2000 && r.arrival + r.head < duration * 1000);
        const servedRate = during.length / Math.max(0.001, duration - 2);
        const ra = sortNum(shed.filter((r) => r.retryAfter !== null).map((r) => r.retryAfter * 1000));
        const drain = sortNum(shed.map((r) => drainAfter(r.arrival + r.head)));
        const retryOk = shed.filter((r) => r.retryAfter !== null)
            .filter((r) => r.retryAfter * 1000 >= drainAfter(r.arrival + r.head)).length;
        // Retry-After next to the real drain, median per window of 5 s (by the 429's time):
        // the drain-rate estimate needs time to learn.
        const windows = [];
        for (let w0 = 0; w0 < duration * 1000; w0 += 5000) {
            const in5 = shed.filter((r) => r.retryAfter !== null && r.arrival >= w0 && r.arrival < w0 + 5000);
            if (!in5.length) continue;
            const raMed = pct(sortNum(in5.map((r) => r.retryAfter * 1000)), 50);
            const drainMed = pct(sortNum(in5.map((r) => drainAfter(r.arrival + r.head))), 50);
            windows.push(`${w0 / 1000}-${w0 / 1000 + 5}s:${fmt(raMed)}/${fmt(drainMed)}`);
        }
        const kinds = {};
        for (const r of rs) {
            if ((r.status === 200 && r.done) || r.status === 429) continue;
            kinds[r.error || r.status] = (kinds[r.error || r.status] || 0) + 1;
        }
        const codes = {};
        for (const r of shed) codes[r.error] = (codes[r.error] || 0) + 1;
        console.log(`CLASS ${c.name} sent=${rs.length} completed=${served.length} shed=${shed.length} ` +
            `other=${other} shed_pct=${fmt((100 * shed.length) / Math.max(1, rs.length))} ` +
            `served_per_s=${fmt(servedRate)} ` +
            `wait_p50=${fmt(pct(wait, 50))} wait_p99=${fmt(pct(wait, 99))} wait_max=${fmt(pct(wait, 100))} ` +
            `ra_p50=${fmt(pct(ra, 50))} ra_max=${fmt(pct(ra, 100))} ra_missing=${shed.length - ra.length} ` +
            `drain_p50=${fmt(pct(drain, 50))} drain_p99=${fmt(pct(drain, 99))} ` +
            `ra_covers_drain=${retryOk}/${ra.length} ra_vs_drain_by_5s=${windows.join(',') || '-'}` +
            (other ? ' other_kinds=' + JSON.stringify(kinds).replace(/ /g, '') : '') +
            (shed.length ? ' shed_codes=' + JSON.stringify(codes).replace(/ /g, '') : ''));
        out.push(...rs.map((r) => ({ cls: r.cls, arrival: r.arrival, head: r.head, status: r.status,
                                     retry_after: r.retryAfter, error: r.error })));
    }
    console.log(`OFFERED rate=${rate} duration_s=${duration} sent=${results.length} ` +
        `achieved_rate=${fmt(results.length / duration)}`);
    const file = opt('out', null);
    if (file) fs.writeFileSync(file, JSON.stringify(out));
}

async function hold() {
    const n = Number(opt('n', '10000'));
    const batch = Number(opt('batch', '250'));
    const payload = body(stream);
    const reqText = `POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n` +
        `Content-Length: ${Buffer.byteLength(payload)}\r\n\r\n${payload}`;
    const socks = [];
    let failed = 0, closedEarly = 0, bytesIn = 0;
    const connectOne = () => new Promise((resolve) => {
        const s = net.connect({ host: '127.0.0.1', port });
        let up = false;
        s.on('connect', () => { up = true; s.write(reqText); resolve(); });
        s.on('data', (d) => { bytesIn += d.length; });
        s.on('error', () => { if (!up) { failed++; resolve(); } });
        s.on('close', () => { if (up && !stopping) closedEarly++; });
        socks.push(s);
    });
    let stopping = false;
    const stop = () => {
        if (stopping) return;
        stopping = true;
        for (const s of socks) s.destroy();
        console.log(`closed ${socks.length} closed_early=${closedEarly} bytes_in=${bytesIn}`);
        process.exit(0);
    };
    process.on('SIGTERM', stop);
    process.stdin.on('end', stop);
    process.stdin.resume();
    for (let i = 0; i < n; i += batch) {
        const part = [];
        for (let j = i; j < Math.min(n, i + batch); j++) part.push(connectOne());
        await Promise.all(part);
    }
    console.log(`held ${n - failed} failed=${failed}`);
    setInterval(() => {
        console.log(`status held=${socks.length - failed - closedEarly} closed_early=${closedEarly} bytes_in=${bytesIn}`);
    }, 1000);
}

async function mix() {
    const n = Number(opt('n', '300'));
    const rate = Number(opt('rate', '15'));
    const streamShare = Number(opt('stream-share', '0.5'));
    const longShare = Number(opt('long-share', '0'));
    const longBytes = Number(opt('long-bytes', '32000'));
    const chunks = Number(opt('chunks', '10'));
    const prefix = opt('id-prefix', 'mix');
    const rand = rng(Number(opt('seed', '1')));
    let expected = '';
    for (let i = 0; i < chunks; i++) expected += `tok${i} `;
    // Exact shares, in a seeded random order: alternating would line up with a round-robin
    // balancer's period and the fakes' request patterns, so that, say, every stream would
    // land on one upstream.
    const flags = (share, seed) => {
        const k = Math.round(n * share), shuffle = rng(seed);
        const a = Array.from({ length: n }, (_, i) => i < k);
        for (let i = n - 1; i > 0; i--) {
            const j = Math.floor(shuffle() * (i + 1));
            [a[i], a[j]] = [a[j], a[i]];
        }
        return a;
    };
    const streamFlags = flags(streamShare, 1001), longFlags = flags(longShare, 2002);
    const isStream = (i) => streamFlags[i];
    const isLong = (i) => longFlags[i];
    const longPrompt = 'lorem ipsum dolor sit amet '.repeat(Math.ceil(longBytes / 27)).slice(0, longBytes);
    const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity });
    const start = performance.now();
    const pending = [];
    let at = start;
    for (let i = 0; i < n; i++) {
        at += (-Math.log(1 - rand()) / rate) * 1000;
        const wait = at - performance.now();
        if (wait > 0) await new Promise((res) => setTimeout(res, wait));
        const streamed = isStream(i), long = isLong(i);
        pending.push(oneRequest(agent, { streamed, timeoutMs: 90000, prompt: long ? longPrompt : undefined,
                                         requestId: `${prefix}-${i}` })
            .then((r) => Object.assign(r, { i, streamed, long })));
    }
    const results = await Promise.all(pending);
    const wall = (performance.now() - start) / 1000;
    agent.destroy();
    const okOf = (r) => r.status === 200 && r.done && !r.error;
    const ok = results.filter(okOf);
    const exact = ok.filter((r) => r.text === expected);
    const errs = {};
    for (const r of results) {
        if (okOf(r)) continue;
        const kind = r.error || 'status_' + r.status;
        errs[kind] = (errs[kind] || 0) + 1;
    }
    const tt = (rs) => sortNum(rs.filter(okOf).map((r) => r.ttft));
    const part = (name, rs) => { const t = tt(rs); return `${name}_n=${rs.length} ${name}_p50=${fmt(pct(t, 50))} ` +
        `${name}_p99=${fmt(pct(t, 99))}`; };
    const all = tt(results);
    const multi = results.filter((r) => r.attempts && r.attempts > 1).length;
    console.log(`RESULT n=${n} ok=${ok.length} success_pct=${fmt((100 * ok.length) / n)} ` +
        `exact=${exact.length} exact_pct=${fmt((100 * exact.length) / n)} wall_s=${wall.toFixed(1)} ` +
        `ttft_p50=${fmt(pct(all, 50))} ttft_p90=${fmt(pct(all, 90))} ttft_p99=${fmt(pct(all, 99))} ` +
        `ttft_max=${fmt(pct(all, 100))} multi_attempt=${multi} ` +
        `${part('stream', results.filter((r) => r.streamed))} ${part('plain', results.filter((r) => !r.streamed))} ` +
        `${part('long', results.filter((r) => r.long))} ${part('short', results.filter((r) => !r.long))}` +
        (n - ok.length ? ' error_kinds=' + JSON.stringify(errs).replace(/ /g, '') : ''));
    const file = opt('out', null);
    if (file) fs.writeFileSync(file, JSON.stringify(results.map((r) => ({ id: `${prefix}-${r.i}`, t0: r.t0 - start,
        stream: r.streamed, long: r.long, status: r.status, ttft: r.ttft, total: r.total, ok: okOf(r),
        exact: okOf(r) && r.text === expected, attempts: r.attempts, provider: r.provider, error: r.error }))));
}

const modes = { closed, open, hold, mix };
if (!modes[mode]) {
    console.error('usage: node llmload.mjs closed|open|hold|mix --port P ...');
    process.exit(2);
}
await modes[mode]();
