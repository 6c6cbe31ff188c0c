// What the client side costs in memory: idle keep-alive connections (each has
// sent a request and read its answer) and clients that read a stream slowly or
// not at all. Bounds on RSS growth, generous against noise, far below what a
// connection cost when it kept its buffers and queued 256 KiB for a slow reader.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { SLOW, UNBUSY_BIN, fakeProvider, harness, rawRequest, rssKiB, waitUntil } from './lib.mjs';

// AddressSanitizer's allocator pads every block and keeps freed ones in quarantine: RSS then
// measures the sanitizer (freed memory stays resident), so the bounds are checked on the
// plain build only; the sanitizer build still runs both loads for leaks and bad accesses.
const SANITIZED = /asan|san\b/.test(UNBUSY_BIN);

const h = harness();
let fake;
let gw;

before(async () => {
    fake = await h.fake({ behavior: 'chunks=3' });
    gw = await h.gateway({
        config: {
            server: { workers: 1 },
            providers: { 'prov-a': fakeProvider(fake) },
            models: { m: [{ provider: 'prov-a', model: 'up-m' }] },
        },
    });
});
after(() => h.cleanup());

/* Opens n keep-alive connections, each sending `request` and reading until `done(text)`. */
async function openAnswered(n, request, done) {
    const socks = [];
    const batch = 100;
    for (let i = 0; i < n; i += batch) {
        await Promise.all(Array.from({ length: Math.min(batch, n - i) }, () => new Promise((resolve, reject) => {
            const s = net.connect(gw.port, '127.0.0.1');
            let text = '';
            s.on('error', reject);
            s.on('connect', () => s.write(request));
            s.on('data', (d) => {
                text += d.toString('latin1');
                if (done(text)) resolve();
            });
            socks.push(s);
        })));
    }
    return socks;
}

test('an idle keep-alive connection costs well under 640 bytes of gateway memory', async (t) => {
    // The guard on what a connection holds between requests: its socket and struct
    // server_conn (uv_tcp_t and about 136 bytes), no timer of its own and no buffer. It cost
    // about 800 bytes with a uv_timer_t each and the request's framing state in it, 4.4 KiB
    // with buffers; 3,000 connections make a difference of a few hundred bytes each plain
    // above the allocator's noise.
    const req = 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n';
    const answered = (text) => /\r\n\r\n/.test(text) && /ok|"status"/.test(text);
    const warm = await openAnswered(200, req, answered); // first use of the loop's structures
    t.after(() => warm.forEach((s) => s.destroy()));
    const N = 3000;
    const rss0 = rssKiB(gw.pid);
    const socks = await openAnswered(N, req, answered);
    t.after(() => socks.forEach((s) => s.destroy()));
    await waitUntil(async () => (await gw.request('/healthz')).status === 200, { what: 'healthz' });
    const perConn = ((rssKiB(gw.pid) - rss0) * 1024) / N;
    t.diagnostic(`${perConn.toFixed(0)} bytes of RSS per idle keep-alive connection`);
    if (SANITIZED) return;
    assert.ok(perConn < 640, `an idle connection costs ${perConn.toFixed(0)} bytes of RSS`);
});

/* RSS held for each of 20 clients that read the first bytes of a 2 MB stream from g, then stop. */
async function stalledReaders(t, g) {
    const N = 20;
    const BIG = 2 * 1024 * 1024;
    const body = JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hi' }], stream: true,
        fake: `big=${BIG},chunks=400` });
    const rss0 = rssKiB(g.pid);
    const socks = [];
    let got = 0;
    for (let i = 0; i < N; i++) {
        const s = net.connect(g.port, '127.0.0.1');
        s.on('error', () => {});
        s.on('data', (d) => { got += d.length; s.pause(); }); // the first bytes, then nothing
        s.on('connect', () => s.write(rawRequest('POST', '/v1/chat/completions', { body })));
        socks.push(s);
    }
    t.after(() => socks.forEach((s) => s.destroy()));
    await waitUntil(() => got > 0, { timeout: 5000 * SLOW, what: 'the streams start' });
    // Let the kernel's buffers fill and the gateway stop reading its upstreams.
    let peak = rss0;
    const until = Date.now() + 1500 * SLOW;
    while (Date.now() < until) {
        peak = Math.max(peak, rssKiB(g.pid));
        await new Promise((r) => setTimeout(r, 50));
    }
    const perReader = ((peak - rss0) * 1024) / N;
    t.diagnostic(`gateway RSS grew ${peak - rss0} KiB for ${N} stalled readers (${(perReader / 1024).toFixed(0)} KiB each)`);
    return perReader;
}

test('clients that stop reading a stream make the gateway queue little for each', async (t) => {
    // Continuation off: what is measured is the queue to the client (16 KiB past the kernel's
    // buffers) plus the request's own state (parsers, attempts: some tens of KiB); 254 KiB
    // each when the queue was allowed 256 KiB.
    const g = await h.gateway({
        config: {
            server: { workers: 1 },
            providers: { 'prov-a': fakeProvider(fake) },
            models: { m: [{ provider: 'prov-a', model: 'up-m' }] },
            resilience: { continue_on_cut: false },
        },
    });
    const perReader = await stalledReaders(t, g);
    if (SANITIZED) return;
    assert.ok(perReader < 96 * 1024, `${(perReader / 1024).toFixed(0)} KiB held for each stalled reader`);
});

test('with the defaults, the text kept to continue a cut stream is bounded too', async (t) => {
    // What was relayed is kept for a continuation, at most 256 KiB of text (then let go).
    const perReader = await stalledReaders(t, gw);
    if (SANITIZED) return;
    assert.ok(perReader < (96 + 256) * 1024, `${(perReader / 1024).toFixed(0)} KiB held for each stalled reader`);
});
