// Many clients at once: every stream must complete with exactly its own
// content, every request must be logged, and equal deployments must share
// the traffic.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { drainStream, expectedContent, fakeProvider, harness, marker } from './lib.mjs';

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
