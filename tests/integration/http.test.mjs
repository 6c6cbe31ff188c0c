// HTTP/1.1 on the client side, over raw sockets: pipelining, chunked uploads,
// Expect: 100-continue, keep-alive reuse, back-pressure to a slow reader, and
// the header-read timeout that protects against half-sent heads; framing
// (CRLF in chunked bodies, HEAD, HTTP/1.0 clients, Host), the cost of a head
// trickled in byte by byte, and authentication before any body is read.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import {
    RawClient, SLOW, assertErrorShape, expectedContent, fakeProvider, harness, marker, rawRequest, rssKiB, sseContent, waitUntil,
} from './lib.mjs';

const h = harness();
let fake;
let gw;

before(async () => {
    fake = await h.fake({ behavior: 'chunks=3' });
    gw = await h.gateway({
        config: {
            server: { header_timeout: '500ms' },
            providers: { 'prov-a': fakeProvider(fake) },
            models: { m: [{ provider: 'prov-a', model: 'up-m' }] },
        },
    });
});
after(() => h.cleanup());

const chat = (extra = {}) => ({ model: 'm', messages: [{ role: 'user', content: 'hi' }], ...extra });

async function connect(t) {
    const c = await RawClient.connect(gw.port);
    t.after(() => c.destroy());
    return c;
}

test('pipelined requests are answered in order', async (t) => {
    const c = await connect(t);
    // The first answer is the slowest; a gateway that works on both at once must still answer in order.
    await c.write(Buffer.concat([
        rawRequest('POST', '/v1/chat/completions', { body: chat({ fake: 'ttft=300,chunks=2' }) }),
        rawRequest('POST', '/v1/chat/completions', { body: chat({ fake: 'chunks=3' }) }),
        rawRequest('GET', '/healthz'),
        rawRequest('GET', '/v1/models'),
    ]));
    const r1 = await c.readResponse();
    const r2 = await c.readResponse();
    const r3 = await c.readResponse();
    const r4 = await c.readResponse();
    assert.equal(r1.status, 200, r1.text);
    assert.equal(JSON.parse(r1.text).choices[0].message.content, expectedContent(2));
    assert.equal(r2.status, 200, r2.text);
    assert.equal(JSON.parse(r2.text).choices[0].message.content, expectedContent(3));
    assert.equal(r3.status, 200);
    assert.equal(r4.status, 200);
    assert.equal(JSON.parse(r4.text).object, 'list');
    const ids = new Set([r1, r2, r3, r4].map((r) => r.headers['x-request-id']));
    assert.equal(ids.size, 4, 'request ids missing or repeated');
    assert.equal(c.closed, false, 'the connection was closed after pipelined requests');
});

test('a chunked request body is read whole', async (t) => {
    const c = await connect(t);
    const mk = marker('chunked');
    const body = JSON.stringify(chat({ stream: true, unbusy_test_id: mk }));
    const parts = [body.slice(0, 7), body.slice(7, 30), body.slice(30)];
    await c.write('POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n' +
        'Transfer-Encoding: chunked\r\n\r\n');
    for (const [i, p] of parts.entries()) {
        const ext = i === 1 ? ';name=value' : ''; // a chunk extension must be ignored
        await c.write(`${Buffer.byteLength(p).toString(16)}${ext}\r\n${p}\r\n`);
    }
    await c.write('0\r\n\r\n');
    const r = await c.readResponse();
    assert.equal(r.status, 200, r.text);
    assert.equal(sseContent(r.text), expectedContent(3));
    const up = await fake.requestsWith(mk);
    assert.equal(up.length, 1);
    assert.equal(up[0].json.model, 'up-m');
    assert.equal(up[0].json.unbusy_test_id, mk);
});

test('Expect: 100-continue gets 100 Continue before the body is sent', async (t) => {
    const c = await connect(t);
    const body = JSON.stringify(chat());
    await c.write(`POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\nExpect: 100-continue\r\n\r\n`);
    const interim = await c.readResponse({ timeout: 3000 });
    assert.equal(interim.status, 100);
    await c.write(body);
    const r = await c.readResponse();
    assert.equal(r.status, 200, r.text);
    assert.equal(JSON.parse(r.text).choices[0].message.content, expectedContent(3));
});

test('keep-alive: several requests of every kind on one connection', async (t) => {
    const c = await connect(t);
    const send = async (req) => { await c.write(req); return c.readResponse(); };
    assert.equal((await send(rawRequest('GET', '/healthz'))).status, 200);
    const s = await send(rawRequest('POST', '/v1/chat/completions', { body: chat({ stream: true }) }));
    assert.equal(s.status, 200);
    assert.match(s.headers['transfer-encoding'] || '', /chunked/, 'a stream on a keep-alive connection must be chunked');
    assert.equal(sseContent(s.text), expectedContent(3));
    const n = await send(rawRequest('POST', '/v1/chat/completions', { body: chat({ fake: 'chunks=4' }) }));
    assert.equal(n.status, 200);
    assert.equal(JSON.parse(n.text).choices[0].message.content, expectedContent(4));
    const bad = await send(rawRequest('POST', '/v1/chat/completions', { body: chat({ model: 'nope' }) }));
    assert.equal(bad.status, 404, 'an error answer should not end the connection');
    assert.equal((await send(rawRequest('GET', '/v1/models'))).status, 200);
    assert.equal(c.closed, false);
});

test('an idle keep-alive connection outlives the header timeout', async (t) => {
    const c = await connect(t);
    await c.write(rawRequest('GET', '/healthz'));
    assert.equal((await c.readResponse()).status, 200);
    // Idle for twice header_timeout: the idle timeout (60 s default) governs now.
    await new Promise((r) => setTimeout(r, 1000));
    assert.equal(c.closed, false, 'an idle keep-alive connection was closed by the header timeout');
    await c.write(rawRequest('GET', '/healthz'));
    assert.equal((await c.readResponse()).status, 200);
});

test('Connection: close is honoured', async (t) => {
    const c = await connect(t);
    await c.write(rawRequest('GET', '/healthz', { headers: { Connection: 'close' } }));
    const r = await c.readResponse();
    assert.equal(r.status, 200);
    await c.waitClosed(3000);
});

test('a malformed request line gets 400', async (t) => {
    const c = await connect(t);
    await c.write('THIS IS NOT HTTP\r\n\r\n');
    const r = await c.readResponse();
    assert.equal(r.status, 400);
    await c.waitClosed(3000);
});

test('header timeout closes a client that sends half a head', async (t) => {
    const c = await connect(t);
    const t0 = Date.now();
    await c.write('POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n');
    const closedAt = await c.waitClosed(5000 * SLOW);
    const took = closedAt - t0;
    assert.ok(took >= 400, `closed after ${took} ms, before the 500 ms header timeout`);
    assert.ok(took < 3000 * SLOW, `closed only after ${took} ms`);
    const got = c.peek().toString('latin1');
    assert.ok(got === '' || /^HTTP\/1\.1 408 /.test(got), `unexpected bytes before close: ${JSON.stringify(got.slice(0, 100))}`);
});

test('header timeout also stops a head trickled byte by byte', async (t) => {
    const c = await connect(t);
    const t0 = Date.now();
    const head = 'POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nX-Slow: ' + 'a'.repeat(200);
    let i = 0;
    const timer = setInterval(() => {
        if (c.closed || i >= head.length) return;
        c.socket.write(head[i++], () => {});
    }, 50);
    t.after(() => clearInterval(timer));
    const closedAt = await c.waitClosed(5000 * SLOW);
    clearInterval(timer);
    const took = closedAt - t0;
    assert.ok(took < 3000 * SLOW, `a trickling client kept the connection for ${took} ms`);
});

test('an upstream that reads the request slowly still gets all of a big body', async (t) => {
    const c = await connect(t);
    const big = 'q'.repeat(3 * 1024 * 1024);
    const body = JSON.stringify(chat({ fake: 'slowread,chunks=2', messages: [{ role: 'user', content: big }] }));
    await c.write(rawRequest('POST', '/v1/chat/completions', { body }));
    const r = await c.readResponse({ timeout: 20000 * SLOW });
    assert.equal(r.status, 200, r.text.slice(0, 300));
    const j = JSON.parse(r.text);
    assert.equal(j.choices[0].message.content, expectedContent(2));
    // The fake counts prompt tokens from the body it read: all of it, or the count is short.
    assert.ok(j.usage.prompt_tokens >= Math.floor(Buffer.byteLength(body) / 4),
        `upstream read ${j.usage.prompt_tokens * 4} bytes of a ${Buffer.byteLength(body)}-byte body`);
});

test('slow reader: a big stream is back-pressured, not buffered', async (t) => {
    const BIG = 60 * 1024 * 1024; // content bytes the fake will send
    const c = await connect(t);
    c.pause(); // read nothing: kernel buffers fill, then the gateway must stop reading upstream
    const rss0 = rssKiB(gw.pid);
    await c.write(rawRequest('POST', '/v1/chat/completions', {
        body: chat({ stream: true, fake: `big=${BIG},chunks=6000` }),
    }));
    let peak = rss0;
    const until = Date.now() + 2500 * SLOW;
    while (Date.now() < until) {
        peak = Math.max(peak, rssKiB(gw.pid));
        await new Promise((r) => setTimeout(r, 100));
    }
    const grownMiB = (peak - rss0) / 1024;
    t.diagnostic(`gateway RSS ${rss0} KiB -> peak ${peak} KiB while the client read nothing`);
    assert.ok(grownMiB < 24, `gateway RSS grew by ${grownMiB.toFixed(1)} MiB while the client read nothing`);

    // Now read it all: every byte must still arrive, ending properly.
    c.resume();
    let bytes = 0;
    let tailText = '';
    const done = await new Promise((resolve) => {
        const deadline = setTimeout(() => resolve(false), 60000);
        const onData = () => {
            const b = c.peek();
            bytes += b.length;
            tailText = (tailText + b.toString('latin1')).slice(-200);
            c.consume(b.length);
            const finished = /data: \[DONE\]\n\n(\r\n0\r\n\r\n)?$/.test(tailText);
            if (finished || c.closed) {
                clearTimeout(deadline);
                c.events.off('change', onData);
                resolve(finished);
            }
        };
        c.events.on('change', onData);
        onData();
    });
    assert.ok(done, `the stream did not finish (${bytes} bytes read, tail ${JSON.stringify(tailText.slice(-80))})`);
    assert.ok(bytes > BIG, `only ${bytes} bytes arrived for ${BIG} content bytes`);
});

test('a bare LF in chunked framing is refused with 400 and the connection closed', async (t) => {
    // CRLF is required after the size, after the data and in the trailer (RFC 9112 7.1): a
    // front end that takes LF alone where the next hop does not can be smuggled past.
    const body = JSON.stringify(chat());
    const n = Buffer.byteLength(body).toString(16);
    const framings = {
        'after the chunk size': `${n}\n${body}\r\n0\r\n\r\n`,
        'after the chunk data': `${n}\r\n${body}\n0\r\n\r\n`,
        'in the trailer': `${n}\r\n${body}\r\n0\r\nX-T: 1\n\r\n`,
    };
    for (const [where, framing] of Object.entries(framings)) {
        const c = await connect(t);
        await c.write('POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n' +
            `Transfer-Encoding: chunked\r\n\r\n${framing}`);
        const r = await c.readResponse();
        assert.equal(r.status, 400, `bare LF ${where}: ${r.status} ${r.text}`);
        assert.match(JSON.parse(r.text).error.message, /framing/);
        await c.waitClosed(3000 * SLOW);
    }
});

test('HEAD: a head without a body, and the next pipelined request is answered', async (t) => {
    const c = await connect(t);
    await c.write(Buffer.concat([
        rawRequest('GET', '/healthz'),
        rawRequest('HEAD', '/healthz'),
        rawRequest('HEAD', '/v1/chat/completions'),
        rawRequest('HEAD', '/no-such-path'),
        rawRequest('GET', '/v1/models'),
    ]));
    const get = await c.readResponse();
    const head = await c.readResponse({ noBody: true });
    const head405 = await c.readResponse({ noBody: true });
    const head404 = await c.readResponse({ noBody: true });
    // had a HEAD answer carried a body, its bytes would be read here as a status line
    const next = await c.readResponse();
    assert.equal(get.status, 200);
    assert.equal(head.status, 200, 'HEAD answers like GET');
    assert.equal(head.headers['content-length'], get.headers['content-length'],
        'a HEAD answer says how long the GET body would be');
    assert.equal(head405.status, 405);
    assert.match(head405.headers.allow || '', /POST/, 'a 405 lists the allowed methods');
    assert.equal(head404.status, 404);
    assert.equal(next.status, 200, next.text);
    assert.equal(JSON.parse(next.text).object, 'list');
    assert.equal(c.buffered, 0, 'bytes after the last answer');
    assert.equal(c.closed, false, 'the connection was closed after HEAD requests');

    // what follows a HEAD is answered for itself: a malformed request's 400 has its body
    const d = await connect(t);
    await d.write(Buffer.concat([rawRequest('HEAD', '/healthz'), Buffer.from('THIS IS NOT HTTP\r\n\r\n')]));
    assert.equal((await d.readResponse({ noBody: true })).status, 200);
    const bad = await d.readResponse();
    assert.equal(bad.status, 400);
    assertErrorShape(assert, bad.text);
});

test('HTTP/1.0: a stream is close-delimited, never chunked', async (t) => {
    const c = await connect(t);
    const body = JSON.stringify(chat({ stream: true }));
    await c.write('POST /v1/chat/completions HTTP/1.0\r\nContent-Type: application/json\r\n' +
        `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: keep-alive\r\n\r\n${body}`);
    await c.waitClosed(10000 * SLOW); // the body ends when the connection does
    const raw = c.peek().toString('latin1');
    const headEnd = raw.indexOf('\r\n\r\n');
    assert.ok(headEnd > 0, `no response head: ${JSON.stringify(raw.slice(0, 200))}`);
    const head = raw.slice(0, headEnd);
    assert.match(head, /^HTTP\/1\.[01] 200 /);
    assert.doesNotMatch(head, /transfer-encoding/i, 'an HTTP/1.0 client was sent Transfer-Encoding');
    assert.match(head, /\r\nconnection: close/i);
    const text = raw.slice(headEnd + 4);
    assert.ok(!/^[0-9a-f]+\r\n/.test(text), `chunk framing in the body: ${JSON.stringify(text.slice(0, 40))}`);
    assert.equal(sseContent(text), expectedContent(3));
    assert.match(text, /data: \[DONE\]\n\n$/);
});

test('HTTP/1.0: keep-alive only when asked, with a Content-Length answer', async (t) => {
    const c = await connect(t);
    const body = JSON.stringify(chat());
    const req = (conn) => 'POST /v1/chat/completions HTTP/1.0\r\nContent-Type: application/json\r\n' +
        `Content-Length: ${Buffer.byteLength(body)}\r\n${conn}\r\n${body}`;
    await c.write(req('Connection: keep-alive\r\n'));
    const r1 = await c.readResponse();
    assert.equal(r1.status, 200, r1.text);
    assert.ok(r1.headers['content-length'], 'no Content-Length for an HTTP/1.0 client');
    assert.equal(r1.headers['transfer-encoding'], undefined);
    assert.match(r1.headers.connection || '', /keep-alive/i, 'a kept 1.0 connection must say so');
    await c.write(req(''));
    const r2 = await c.readResponse();
    assert.equal(r2.status, 200, r2.text);
    assert.equal(JSON.parse(r2.text).choices[0].message.content, expectedContent(3));
    assert.match(r2.headers.connection || '', /close/i);
    await c.waitClosed(3000 * SLOW);
});

test('Host: missing in HTTP/1.1 or repeated -> 400; HTTP/1.0 may omit it', async (t) => {
    for (const head of ['GET /healthz HTTP/1.1\r\n\r\n', 'GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n']) {
        const c = await connect(t);
        await c.write(head);
        const r = await c.readResponse();
        assert.equal(r.status, 400, `${JSON.stringify(head)}: ${r.status}`);
        JSON.parse(r.text);
        await c.waitClosed(3000 * SLOW);
    }
    const c = await connect(t);
    await c.write('POST /v1/chat/completions HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}');
    const r = await c.readResponse();
    assert.equal(r.status, 400);
    assert.match(JSON.parse(r.text).error.message, /Host/);
    const c10 = await connect(t);
    await c10.write('GET /healthz HTTP/1.0\r\n\r\n');
    assert.equal((await c10.readResponse()).status, 200);
});

/* The peak resident set of a process in KiB (VmHWM), from /proc. */
function peakRssKiB(pid) {
    const m = readFileSync(`/proc/${pid}/status`, 'utf8').match(/^VmHWM:\s+(\d+)\s+kB/m);
    return Number(m[1]);
}

/* Per thread of a process: bytes read, read calls and CPU seconds, from /proc/PID/task. */
function threadStats(pid) {
    const out = new Map();
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
        try {
            const io = readFileSync(`/proc/${pid}/task/${tid}/io`, 'utf8');
            const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
            const f = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // fields from the 3rd on
            out.set(tid, {
                bytes: Number(io.match(/^rchar: (\d+)/m)[1]),
                calls: Number(io.match(/^syscr: (\d+)/m)[1]),
                cpu: (Number(f[11]) + Number(f[12])) / 100, // utime + stime, in clock ticks
            });
        } catch { /* a thread that ended meanwhile */ }
    }
    return out;
}

/*
 * The worker's CPU for the last `trickle` bytes of a head sent one byte per read, each
 * only once the worker has read the one before (so each is a read of its own, which the
 * kernel would otherwise merge), after `lead` bytes of it sent at once.
 */
async function trickleCpu(t, g, leadBytes) {
    const c = await RawClient.connect(g.port);
    t.after(() => c.destroy());
    let head = 'GET /healthz HTTP/1.1\r\nHost: x\r\n';
    // in 60 headers: HTTP1_MAX_HEADERS is 64
    for (let i = 0; head.length < leadBytes; i++) head += `X-Pad-${i}: ${'p'.repeat(leadBytes / 60)}\r\n`;
    // the worker thread is the one that reads the head; other threads read files now and then
    const before = threadStats(g.pid);
    await c.write(head);
    const worker = await waitUntil(() => {
        for (const [tid, st] of threadStats(g.pid)) {
            if (st.bytes - (before.get(tid)?.bytes ?? 0) >= head.length) return tid;
        }
        return null;
    }, { what: 'a worker thread to read the head so far' });
    const stats = () => threadStats(g.pid).get(worker);
    const trickle = Buffer.from(`X-Trickle: ${'t'.repeat(4000)}\r\n\r\n`);
    const s0 = stats();
    let want = s0.bytes;
    for (let i = 0; i < trickle.length; i++) {
        await c.write(trickle.subarray(i, i + 1));
        want += 1;
        const until = Date.now() + 5000 * SLOW;
        while (stats().bytes < want && Date.now() < until); // spin: the next byte waits for this read
    }
    const r = await c.readResponse({ timeout: 30000 * SLOW });
    assert.equal(r.status, 200);
    const s1 = stats();
    t.diagnostic(`${head.length + trickle.length}-byte head, the last ${trickle.length} bytes in ` +
        `${s1.calls - s0.calls} reads: ${(s1.cpu - s0.cpu).toFixed(2)} s of the worker's CPU`);
    return { cpu: s1.cpu - s0.cpu, bytes: trickle.length };
}

test('a head trickled in one byte per read costs CPU linear in its size', async (t) => {
    // The same 4,000 bytes, one per read, after a short head and after 900 KB of head sent
    // at once. Searching on from where the last read stopped costs the same either way (the
    // reads themselves, 0.1-0.2 s here); re-parsing the head from its start on every read,
    // as unbusy once did, costs more after the long lead (1.8 s) and, the trickled line
    // being 4 KB long, 0.6 s even after the short one, before any authentication. The two
    // are compared with each other, so that a busy machine moves both alike, and the short
    // one with a bound four times what the reads cost here (under ASan, whose reads cost
    // anything from 0.1 to 0.6 s from one run to the next, three times that).
    const th = harness(t);
    const g = await th.gateway({
        config: {
            server: { header_timeout: '60s', max_header_bytes: '1m' },
            providers: { 'prov-a': fakeProvider(fake, { probe: false }) },
            models: { m: [{ provider: 'prov-a', model: 'up-m' }] },
        },
    });
    const short = await trickleCpu(t, g, 0);
    const long = await trickleCpu(t, g, 900 * 1024);
    assert.ok(short.cpu < 0.45 * SLOW, `the worker used ${short.cpu.toFixed(2)} s of CPU on ${short.bytes} bytes of a head`);
    assert.ok(long.cpu < 3 * short.cpu + 0.1 * SLOW,
        `the worker used ${long.cpu.toFixed(2)} s of CPU on ${long.bytes} bytes after 900 KB of ` +
        `head, ${short.cpu.toFixed(2)} s after a short one`);
});

test('authentication before the body: no key, no 100 Continue and no body read', async (t) => {
    const KEY = 'sk-test-framing-key-0123456789';
    const th = harness(t);
    const g = await th.gateway({
        config: {
            server: { max_body_bytes: '64m' },
            admin: { token: 'admin-token-framing-0123' },
            keys: [{ name: 'k', key: KEY }],
            providers: { 'prov-a': fakeProvider(fake, { probe: false }) },
            models: { m: [{ provider: 'prov-a', model: 'up-m' }] },
        },
    });
    const BODY = 48 * 1024 * 1024;
    const peak0 = peakRssKiB(g.pid);
    // A client that does not wait for 100 Continue: the head and the body at once.
    const c = await RawClient.connect(g.port);
    t.after(() => c.destroy());
    await c.write('POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n' +
        `Content-Length: ${BODY}\r\nExpect: 100-continue\r\n\r\n`);
    const r = await c.readResponse();
    assert.equal(r.status, 401, `the first answer is ${r.status} ${r.reason}`);
    assert.equal(JSON.parse(r.text).error.code, 'invalid_api_key');
    assert.match(r.headers.connection || '', /close/i);
    const chunk = Buffer.alloc(1024 * 1024, 'x');
    try {
        for (let sent = 0; sent < BODY && !c.closed; sent += chunk.length) await c.write(chunk);
    } catch { /* the gateway may stop reading what it drops */ }
    await c.waitClosed(5000 * SLOW);
    const grownMiB = (peakRssKiB(g.pid) - peak0) / 1024;
    t.diagnostic(`peak RSS grew by ${grownMiB.toFixed(1)} MiB`);
    assert.ok(grownMiB < 16, `the gateway's peak RSS grew by ${grownMiB.toFixed(1)} MiB for a refused body`);

    // The admin API too: without the token, refused at the head.
    const a = await RawClient.connect(g.port);
    t.after(() => a.destroy());
    await a.write('POST /admin/deployments/drain HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n' +
        'Content-Length: 1000000\r\nExpect: 100-continue\r\n\r\n');
    assert.equal((await a.readResponse()).status, 401);

    // With a valid key the body is read: 100 Continue, then the answer.
    const ok = await RawClient.connect(g.port);
    t.after(() => ok.destroy());
    const body = JSON.stringify(chat());
    await ok.write('POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n' +
        `Authorization: Bearer ${KEY}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nExpect: 100-continue\r\n\r\n`);
    assert.equal((await ok.readResponse()).status, 100);
    await ok.write(body);
    const done = await ok.readResponse();
    assert.equal(done.status, 200, done.text);
    assert.equal(JSON.parse(done.text).choices[0].message.content, expectedContent(3));
});
