// Readiness and the stop sequence: GET /readyz (200 only while serving with every
// model in health, 503 naming the model otherwise, unauthenticated, bounded) and
// SIGTERM with server.drain_delay: not ready at once, still accepting for the
// delay, then the drain; a second signal drains at once.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { SLOW, fakeProvider, harness, toYAML, waitUntil } from './lib.mjs';

const msgs = [{ role: 'user', content: 'hi' }];

function connectable(port) {
    return new Promise((resolve) => {
        const s = net.connect({ port, host: '127.0.0.1' });
        s.once('connect', () => { s.destroy(); resolve(true); });
        s.once('error', () => resolve(false));
    });
}

test('/readyz: 200 with an untuned config, no key needed, HEAD too; /healthz unchanged', async (t) => {
    const h = harness(t);
    const fake = await h.fake({ behavior: 'chunks=2' });
    const gw = await h.gateway({
        config: {
            providers: { p: fakeProvider(fake) },
            models: { m: [{ provider: 'p', model: 'up-m' }] },
            keys: [{ name: 'app', key: 'sk-unbusy-readyz-key-123456' }],
        },
    });
    const r = await gw.request('/readyz');
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(JSON.parse(r.text), { status: 'ready', models: 1 });
    assert.equal(r.headers['cache-control'], 'no-store');
    const head = await gw.request('/readyz', { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.text, '');
    assert.equal((await gw.request('/healthz')).status, 200);
    // a chat request needs the key: the probe paths do not
    assert.equal((await gw.request('/v1/chat/completions', { method: 'POST', body: '{}' })).status, 401);
    await gw.stop();
});

test('/readyz: 503 naming the model whose every deployment is cooling down, the others fine', async (t) => {
    const h = harness(t);
    const fake = await h.fake({ behavior: 'chunks=2' });
    const gw = await h.gateway({
        config: {
            providers: { good: fakeProvider(fake), bad: fakeProvider(fake) },
            models: {
                fine: [{ provider: 'good', model: 'up-fine' }],
                'sick-model': [{ provider: 'bad', model: 'up-sick' }],
            },
        },
        strictStderr: false,
    });
    assert.equal((await gw.request('/readyz')).status, 200);
    // the provider says "busy, come back in 60 s": its only deployment cools down that long
    const sdk = gw.client();
    await sdk.chat.completions.create({ model: 'sick-model', messages: msgs, fake: 'status=429,retry_after=60' })
        .then(() => assert.fail('a 429 with a 60 s Retry-After was answered 200'), (e) => e);
    const r = await waitUntil(async () => {
        const x = await gw.request('/readyz');
        return x.status === 503 ? x : null;
    }, { timeout: 5000 * SLOW, what: '/readyz -> 503' });
    const body = JSON.parse(r.text);
    assert.equal(body.status, 'not_ready');
    assert.equal(body.reason, 'models');
    assert.deepEqual(body.models, [{ model: 'sick-model', deployments: 1, why: 'cooldown' }]);
    assert.equal(body.more, 0);
    assert.equal(body.models_total, 2);
    assert.doesNotMatch(r.text, /sk-test|retry|429/i, 'provider text or a key in /readyz');
    // the healthy model still answers: readiness is about routing, liveness stays 200
    const ok = await sdk.chat.completions.create({ model: 'fine', messages: msgs });
    assert.ok(ok.choices[0].message.content);
    assert.equal((await gw.request('/healthz')).status, 200);
    await gw.stop();
});

test('/readyz lists at most 32 models and counts the rest', async (t) => {
    const h = harness(t);
    const fake = await h.fake({ behavior: 'status=429,retry_after=60' });
    const models = {};
    for (let i = 0; i < 40; i++) models[`m${i}`] = [{ provider: 'p', model: `up-${i}` }];
    const gw = await h.gateway({ config: { providers: { p: fakeProvider(fake) }, models }, strictStderr: false });
    const sdk = gw.client();
    await Promise.all(Object.keys(models).map((m) =>
        sdk.chat.completions.create({ model: m, messages: msgs }).catch(() => null)));
    const r = await waitUntil(async () => {
        const x = await gw.request('/readyz');
        return x.status === 503 && JSON.parse(x.text).more === 8 ? x : null;
    }, { timeout: 5000 * SLOW, what: '/readyz listing 32 and counting 8 more' });
    const body = JSON.parse(r.text);
    assert.equal(body.models.length, 32);
    assert.equal(body.models_total, 40);
    assert.ok(r.text.length < 4096, `a ${r.text.length}-byte /readyz body`);
    await gw.stop();
});

test('SIGTERM with the default drain_delay: not ready at once, still serving ~5 s, then drain and exit 0', { timeout: 60000 }, async (t) => {
    const h = harness(t);
    const fake = await h.fake({ behavior: 'chunks=2' });
    // Untuned: the YAML below sets nothing about draining (the harness defaults are not added).
    const gw = await h.gateway({
        config: toYAML({
            server: { listen: '127.0.0.1:0' },
            providers: { p: fakeProvider(fake) },
            models: { m: [{ provider: 'p', model: 'up-m' }] },
        }),
    });
    assert.equal((await gw.request('/readyz')).status, 200);
    const t0 = Date.now();
    gw.proc.signal('SIGTERM');
    await waitUntil(async () => (await gw.request('/readyz')).status === 503,
        { timeout: 2000 * SLOW, what: '/readyz -> 503 after SIGTERM' });
    const notReadyAfter = Date.now() - t0;
    const r = await gw.request('/readyz');
    assert.deepEqual(JSON.parse(r.text), { status: 'not_ready', reason: 'stopping' });
    // still accepting and answering during the delay: a client that has not heard is served
    const sdk = gw.client();
    const ans = await sdk.chat.completions.create({ model: 'm', messages: msgs });
    assert.ok(ans.choices[0].message.content);
    assert.equal((await gw.request('/healthz')).status, 200, 'liveness failed while stopping');
    await waitUntil(async () => !(await connectable(gw.port)),
        { timeout: 10000 * SLOW, interval: 50, what: 'the listener to close after the delay' });
    const closedAfter = Date.now() - t0;
    assert.ok(notReadyAfter < 1000 * SLOW, `/readyz went 503 only after ${notReadyAfter} ms`);
    assert.ok(closedAfter >= 4500, `the listener closed after ${closedAfter} ms, before the 5 s delay`);
    const exit = await gw.proc.waitExit(10000 * SLOW);
    assert.ok(exit, 'no exit after the drain');
    assert.equal(exit.code, 0);
    await gw.stop();
});

test('a second SIGTERM during drain_delay drains at once', { timeout: 60000 }, async (t) => {
    const h = harness(t);
    const fake = await h.fake({ behavior: 'chunks=2' });
    const gw = await h.gateway({
        config: {
            server: { drain_delay: '30s' },
            providers: { p: fakeProvider(fake) },
            models: { m: [{ provider: 'p', model: 'up-m' }] },
        },
    });
    gw.proc.signal('SIGTERM');
    await waitUntil(async () => (await gw.request('/readyz')).status === 503,
        { timeout: 2000 * SLOW, what: '/readyz -> 503 after SIGTERM' });
    assert.ok(await connectable(gw.port), 'the listener closed at the first SIGTERM');
    const t0 = Date.now();
    gw.proc.signal('SIGTERM');
    const exit = await gw.proc.waitExit(10000 * SLOW);
    assert.ok(exit, 'no exit after the second SIGTERM');
    assert.equal(exit.code, 0, 'the second signal did not drain cleanly');
    assert.ok(Date.now() - t0 < 5000 * SLOW, `exit ${Date.now() - t0} ms after the second signal`);
    assert.match(gw.proc.stderr, /second signal \(SIGTERM\): draining/);
    await gw.stop();
});

test('SIGINT (a terminal) skips drain_delay and drains at once', { timeout: 60000 }, async (t) => {
    const h = harness(t);
    const fake = await h.fake({ behavior: 'chunks=2' });
    const gw = await h.gateway({
        config: {
            server: { drain_delay: '30s' },
            providers: { p: fakeProvider(fake) },
            models: { m: [{ provider: 'p', model: 'up-m' }] },
        },
    });
    const t0 = Date.now();
    gw.proc.signal('SIGINT');
    const exit = await gw.proc.waitExit(10000 * SLOW);
    assert.ok(exit, 'no exit after SIGINT');
    assert.equal(exit.code, 0);
    assert.ok(Date.now() - t0 < 5000 * SLOW, `SIGINT took ${Date.now() - t0} ms with a 30 s drain_delay`);
    assert.doesNotMatch(gw.proc.stderr, /still accepting for server\.drain_delay/);
    await gw.stop();
});
