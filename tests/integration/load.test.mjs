// Many clients at once: every stream must complete with exactly its own
// content, every request must be logged, and equal deployments must share
// the traffic.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { drainStream, expectedContent, fakeProvider, harness, marker, sleep, sseContent } from './lib.mjs';

const msgs = [{ role: 'user', content: 'load' }];

test('200 concurrent SDK streams all complete correctly', { timeout: 120000 }, async (t) => {
    const h = harness(t);
    const fake = await h.fake({ behavior: 'chunks=20,chunk_ms=5' });
    const gw = await h.gateway({
        config: {
            providers: { 'prov-a': fakeProvider(fake) },
            models: { m: { deployments: [{ provider: 'prov-a', model: 'up-m' }], timeouts: { first_token: '30s', total: '60s' } } },
        },
    });
    const sdk = gw.client({ timeout: 60000 });
    const N = 200;
    const results = await Promise.all(Array.from({ length: N }, async (_, i) => {
        // Each stream has its own length, so a mixed-up relay shows up as wrong content.
        const n = 10 + (i % 15);
        const mk = marker(`load${i}`);
        const { data: stream, response } = await sdk.chat.completions.create({
            model: 'm', messages: msgs, stream: true, stream_options: { include_usage: true },
            fake: `chunks=${n},chunk_ms=5`, unbusy_test_id: mk,
        }).withResponse();
        const r = await drainStream(stream);
        return { i, n, r, id: response.headers.get('x-request-id') };
    }));
    const failures = [];
    for (const { i, n, r } of results) {
        if (r.error) failures.push(`#${i}: ${r.error.message}`);
        else if (r.content !== expectedContent(n)) failures.push(`#${i}: wrong content (${r.content.length} chars)`);
        else if (r.usage?.completion_tokens !== n) failures.push(`#${i}: usage ${JSON.stringify(r.usage)}`);
    }
    assert.deepEqual(failures.slice(0, 10), [], `${failures.length} of ${N} streams failed`);
    assert.equal(new Set(results.map((x) => x.id)).size, N, 'request ids repeated under load');

    // One access log line each, all successful.
    const ids = new Set(results.map((x) => x.id));
    const log = await new Promise((resolve, reject) => {
        const deadline = Date.now() + 10000;
        const poll = () => {
            const l = gw.accessLog().filter((e) => ids.has(e.request_id));
            if (l.length >= N) return resolve(l);
            if (Date.now() > deadline) return reject(new Error(`only ${l.length} of ${N} requests logged`));
            return setTimeout(poll, 50);
        };
        poll();
    });
    assert.equal(log.length, N);
    assert.ok(log.every((e) => e.status === 200), 'a load request was logged with a non-200 status');
});

test('equal deployments share concurrent traffic', { timeout: 120000 }, async (t) => {
    const h = harness(t);
    const fakeA = await h.fake({ behavior: 'chunks=10,chunk_ms=10', name: 'fake-a' });
    const fakeB = await h.fake({ behavior: 'chunks=10,chunk_ms=10', name: 'fake-b' });
    const gw = await h.gateway({
        config: {
            providers: { 'prov-a': fakeProvider(fakeA), 'prov-b': fakeProvider(fakeB) },
            models: { m: [{ provider: 'prov-a', model: 'up-a' }, { provider: 'prov-b', model: 'up-b' }] },
        },
    });
    const sdk = gw.client({ timeout: 60000 });
    const N = 100;
    const mk = marker('share');
    const results = await Promise.all(Array.from({ length: N }, () => sdk.chat.completions
        .create({ model: 'm', messages: msgs, stream: true, unbusy_test_id: mk }).then(drainStream)));
    assert.ok(results.every((r) => !r.error && r.content === expectedContent(10)), 'a stream failed');
    const a = (await fakeA.requestsWith(mk)).length;
    const b = (await fakeB.requestsWith(mk)).length;
    assert.equal(a + b, N, `upstream saw ${a}+${b} requests for ${N}`);
    assert.ok(a >= N / 10 && b >= N / 10, `traffic not shared: prov-a ${a}, prov-b ${b}`);
});

test('a burst of events from 400 streams at once is relayed whole, a loop iteration at a time', { timeout: 120000 }, async (t) => {
    // One worker; every stream's next chunk comes from the fake in the same 100 ms tick, so
    // hundreds of upstream reads are ready together — more than one loop iteration may serve
    // (net/read_budget: about 2 ms). The ones past it wait their turn with their bytes in the
    // kernel: every stream must still end with exactly its own content, in order, and
    // /healthz must answer meanwhile.
    const h = harness(t);
    const fake = await h.fake({ behavior: 'chunks=3' });
    const N = 400;
    const gw = await h.gateway({
        config: {
            server: { workers: 1 },
            providers: { 'prov-a': fakeProvider(fake) },
            // the learnt concurrency limit starts at 20: these streams are to run side by side
            models: { m: [{ provider: 'prov-a', model: 'up-m', max_concurrency: 1000 }] },
        },
    });
    const postponed = async () => {
        const r = await gw.request('/metrics');
        return Number(/^unbusy_upstream_reads_postponed_total (\d+)$/m.exec(r.text)?.[1] ?? NaN);
    };
    const before = await postponed();
    assert.ok(Number.isFinite(before), 'unbusy_upstream_reads_postponed_total on /metrics');
    const one = (i) => new Promise((resolve, reject) => {
        const n = 20 + (i % 7);
        const body = JSON.stringify({ model: 'm', stream: true, messages: msgs, fake: `chunks=${n},chunk_ms=100` });
        const s = net.connect(gw.port, '127.0.0.1');
        let text = '';
        s.on('error', reject);
        s.on('connect', () => s.write('POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n' +
            `Connection: close\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`));
        s.on('data', (d) => { text += d.toString('utf8'); });
        s.on('close', () => resolve({ i, n, text }));
    });
    const all = Promise.all(Array.from({ length: N }, (_, i) => one(i)));
    let probes = 0;
    let done = false;
    all.finally(() => { done = true; });
    while (!done) {
        const r = await gw.request('/healthz');
        assert.equal(r.status, 200);
        probes++;
        await sleep(100);
    }
    const results = await all;
    const failures = [];
    for (const { i, n, text } of results) {
        const head = text.slice(0, 12);
        const content = sseContent(text.slice(text.indexOf('\r\n\r\n') + 4));
        if (head !== 'HTTP/1.1 200') failures.push(`#${i}: ${head}`);
        else if (content !== expectedContent(n)) failures.push(`#${i}: wrong content (${content.length} chars)`);
        else if (!/data: \[DONE\]/.test(text)) failures.push(`#${i}: no [DONE]`);
    }
    assert.deepEqual(failures.slice(0, 10), [], `${failures.length} of ${N} streams failed`);
    assert.ok(probes >= 10, `the streams took ${probes} probes' time`);
    // The bound did act: some reads waited for a later iteration.
    assert.ok((await postponed()) > before, 'no upstream read was postponed');
});
