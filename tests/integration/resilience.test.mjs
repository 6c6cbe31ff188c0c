// Never busy: health, breakers, balancing, retry budget, hedging, the admin API.
// Real binary, fake upstreams that misbehave, the official SDK as the client.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SLOW, drainStream, expectedContent, fakeProvider, harness, sleep, waitUntil } from './lib.mjs';

const msgs = [{ role: 'user', content: 'hello' }];
// Changes through the admin API need its token; reads send it too (ignored where none is set).
const ADMIN_TOKEN = 'adm-resilience-0123456789abcdef';
const ADMIN = { authorization: `Bearer ${ADMIN_TOKEN}` };

function adminPost(gw, p, body) {
    return gw.request(p, { method: 'POST', headers: ADMIN, body: JSON.stringify(body) });
}

async function adminState(gw) {
    const r = await gw.request('/admin/deployments', { headers: ADMIN });
    assert.equal(r.status, 200, r.text);
    return r.json();
}

async function depState(gw, provider) {
    const st = await adminState(gw);
    for (const m of st.models) for (const d of m.deployments) if (d.provider === provider) return d;
    throw new Error(`no deployment on ${provider}`);
}

function percentile(xs, p) {
    const s = [...xs].sort((a, b) => a - b);
    return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}

test('three misbehaving deployments: no client-visible error, TTFT p99 bounded', async (t) => {
    const h = harness(t);
    // A: 503 half the time; B: 200 with only keep-alives for 20 s on 30%; C: healthy but slower.
    const a = await h.fake({ behavior: '50%status=503|chunks=5', name: 'fake-a' });
    const b = await h.fake({ behavior: '30%keepalive=20000,chunks=5|chunks=5', name: 'fake-b' });
    const c = await h.fake({ behavior: 'ttft=150,chunks=5', name: 'fake-c' });
    const firstTokenMs = 1000;
    const gw = await h.gateway({
        config: {
            providers: { a: fakeProvider(a), b: fakeProvider(b), c: fakeProvider(c) },
            models: {
                m: {
                    deployments: [
                        { provider: 'a', model: 'ma' }, { provider: 'b', model: 'mb' }, { provider: 'c', model: 'mc' },
                    ],
                    timeouts: { first_token: `${firstTokenMs}ms`, stall: '5s', total: '30s' },
                },
            },
        },
        strictStderr: false,
    });
    const sdk = gw.client({ maxRetries: 0 });
    const total = 300;
    const concurrency = 20;
    const ttfts = [];
    const errors = [];
    let next = 0;
    async function one(i) {
        const started = performance.now();
        try {
            if (i % 2 === 0) {
                const stream = await sdk.chat.completions.create({ model: 'm', messages: msgs, stream: true });
                let first = null;
                const r = await drainStream(stream, { onChunk: (ch) => {
                    if (first === null && ch.choices?.[0]?.delta?.content) first = performance.now();
                } });
                if (r.error) throw r.error;
                if (r.content !== expectedContent(5)) throw new Error(`cut stream: ${JSON.stringify(r.content)}`);
                ttfts.push(first - started);
            } else {
                const resp = await sdk.chat.completions.create({ model: 'm', messages: msgs });
                if (resp.choices[0].message.content !== expectedContent(5)) throw new Error('incomplete answer');
                ttfts.push(performance.now() - started);
            }
        } catch (e) {
            errors.push(`${i}: ${e.status ?? ''} ${e.message}`);
        }
    }
    await Promise.all(Array.from({ length: concurrency }, async () => {
        while (next < total) await one(next++);
    }));
    assert.deepEqual(errors, [], 'client-visible errors');
    assert.equal(ttfts.length, total);
    const p99 = percentile(ttfts, 99);
    const bound = 150 + firstTokenMs + 500 * SLOW;
    t.diagnostic(`TTFT p50 ${percentile(ttfts, 50).toFixed(0)} ms, p99 ${p99.toFixed(0)} ms (bound ${bound} ms)`);
    assert.ok(p99 < bound, `TTFT p99 ${p99} ms over ${bound} ms`);
    // The faults were really there and were learnt from.
    const st = await depState(gw, 'a');
    assert.ok(st.errors.server_error > 0, 'A never answered 503');
    const sb = await depState(gw, 'b');
    assert.ok(sb.errors.first_token > 0, 'B never hit the first-token deadline');
});

test('breaker: opens on failures, half-opens after its open time, closes on a good trial', async (t) => {
    const h = harness(t);
    const a = await h.fake({ behavior: 'status=503', name: 'fake-a' });
    const b = await h.fake({ behavior: 'chunks=3', name: 'fake-b' });
    const gw = await h.gateway({
        config: {
            providers: { a: fakeProvider(a, { probe: false }), b: fakeProvider(b, { probe: false }) },
            models: {
                m: {
                    deployments: [{ provider: 'a', model: 'ma', tier: 0 }, { provider: 'b', model: 'mb', tier: 1 }],
                    resilience: { breaker: { consecutive_failures: 3, open: '600ms', open_max: '600ms' } },
                },
            },
        },
        strictStderr: false,
    });
    const sdk = gw.client({ maxRetries: 0 });
    for (let i = 0; i < 3; i++) {
        const r = await sdk.chat.completions.create({ model: 'm', messages: msgs });
        assert.equal(r.choices[0].message.content, expectedContent(3));
    }
    let d = await depState(gw, 'a');
    assert.equal(d.breaker, 'open');
    assert.equal(d.eligible, false);
    assert.equal(d.trips, 1);
    // While open, A is not asked at all.
    const before = (await a.stats()).requests;
    await sdk.chat.completions.create({ model: 'm', messages: msgs });
    assert.equal((await a.stats()).requests, before, 'an open breaker still sent traffic');
    // After the open time it admits a trial.
    await waitUntil(async () => (await depState(gw, 'a')).breaker === 'half_open', { timeout: 3000 * SLOW, what: 'half-open' });
    await fetch(`${a.url}/_fake/behavior`, { method: 'POST', body: 'chunks=3' });
    const { response } = await sdk.chat.completions.create({ model: 'm', messages: msgs }).withResponse();
    assert.equal(response.headers.get('x-unbusy-provider'), 'a', 'the half-open trial did not go to A');
    d = await depState(gw, 'a');
    assert.equal(d.breaker, 'closed');
    assert.equal(d.eligible, true);
});

test('every deployment down: attempts stay within the retry budget; 503 names each deployment', async (t) => {
    const h = harness(t);
    const fakes = [];
    for (const n of ['a', 'b', 'c']) fakes.push(await h.fake({ behavior: 'status=503', name: `fake-${n}` }));
    const gw = await h.gateway({
        config: {
            providers: Object.fromEntries(fakes.map((f, i) => ['abc'[i], fakeProvider(f, { probe: false })])),
            models: {
                m: {
                    deployments: fakes.map((f, i) => ({ provider: 'abc'[i], model: `m${i}` })),
                    // the breaker is kept out of the way: only the budget limits the retries here
                    resilience: {
                        breaker: { consecutive_failures: 0, min_requests: 1000000 },
                        retry_budget: { ratio: 0.2, min_per_sec: 1, window: '10s' },
                    },
                },
            },
        },
        strictStderr: false,
    });
    const n = 60;
    let first = null;
    for (let i = 0; i < n; i++) {
        const r = await gw.request('/v1/chat/completions', {
            method: 'POST', headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ model: 'm', messages: msgs }),
        });
        assert.equal(r.status, 503, r.text);
        if (!first) first = r.json();
    }
    for (const name of ['a/m0', 'b/m1', 'c/m2']) assert.match(first.error.message, new RegExp(name));
    assert.match(first.error.message, /HTTP 503/);
    let upstream = 0;
    for (const f of fakes) upstream += (await f.stats()).requests;
    // one attempt per request, plus at most ratio × requests + min_per_sec × window retries
    const allowed = n + Math.ceil(0.2 * n) + 10;
    t.diagnostic(`${upstream} upstream attempts for ${n} requests (budget allows ${allowed}; without it ${3 * n})`);
    assert.ok(upstream <= allowed, `${upstream} upstream attempts, budget allows ${allowed}`);
    assert.ok(upstream > n, 'no retry at all');
    const st = await adminState(gw);
    assert.ok(st.models[0].retry_budget.denied > 0);
});

test('a provider that refuses our key is taken out and reported once', async (t) => {
    const h = harness(t);
    const a = await h.fake({ behavior: 'status=401', name: 'fake-a' });
    const b = await h.fake({ behavior: 'chunks=2', name: 'fake-b' });
    const gw = await h.gateway({
        config: {
            admin: { token: ADMIN_TOKEN },
            providers: { a: fakeProvider(a, { probe: false }), b: fakeProvider(b, { probe: false }) },
            models: { m: [{ provider: 'a', model: 'ma' }, { provider: 'b', model: 'mb', tier: 1 }] },
        },
        strictStderr: false,
    });
    const sdk = gw.client({ maxRetries: 0 });
    for (let i = 0; i < 4; i++) {
        const r = await sdk.chat.completions.create({ model: 'm', messages: msgs });
        assert.equal(r.choices[0].message.content, expectedContent(2));
    }
    assert.equal((await a.stats()).requests, 1, 'the refusing provider was asked again');
    const d = await depState(gw, 'a');
    assert.equal(d.why_not, 'auth');
    const lines = gw.proc.stderr.split('\n').filter((l) => /refuses our credentials/.test(l));
    assert.equal(lines.length, 1, `logged ${lines.length} times`);
    // an operator fixes the key and enables it again
    const r = await adminPost(gw, '/admin/deployments/enable', { provider: 'a', model: 'ma' });
    assert.equal(r.status, 200);
    assert.equal((await depState(gw, 'a')).eligible, true);
});

test('admin API: drain and disable take a deployment out; enable brings it back', async (t) => {
    const h = harness(t);
    const a = await h.fake({ behavior: 'chunks=2', name: 'fake-a' });
    const b = await h.fake({ behavior: 'chunks=2', name: 'fake-b' });
    const gw = await h.gateway({
        config: {
            admin: { token: ADMIN_TOKEN },
            providers: { a: fakeProvider(a, { probe: false }), b: fakeProvider(b, { probe: false }) },
            models: { m: [{ provider: 'a', model: 'ma' }, { provider: 'b', model: 'mb', tier: 1 }] },
        },
    });
    const sdk = gw.client({ maxRetries: 0 });
    const via = async () => (await sdk.chat.completions.create({ model: 'm', messages: msgs }).withResponse())
        .response.headers.get('x-unbusy-provider');
    assert.equal(await via(), 'a');
    for (const action of ['drain', 'disable']) {
        const r = await adminPost(gw, `/admin/deployments/${action}`, { provider: 'a', model: 'ma' });
        assert.equal(r.status, 200, r.text);
        assert.equal(await via(), 'b', `after ${action}`);
    }
    assert.equal((await adminPost(gw, '/admin/deployments/enable', { provider: 'a', model: 'ma' })).status, 200);
    assert.equal(await via(), 'a');
    const bad = await adminPost(gw, '/admin/deployments/disable', { provider: 'x', model: 'y' });
    assert.equal(bad.status, 404);
});

test('admin API needs the token when one is set', async (t) => {
    const h = harness(t);
    const a = await h.fake({ behavior: 'chunks=2' });
    const token = 'adm-0123456789abcdef-secret';
    const gw = await h.gateway({
        config: { admin: { token }, providers: { a: fakeProvider(a, { probe: false }) }, models: { m: [{ provider: 'a', model: 'ma' }] } },
    });
    assert.equal((await gw.request('/admin/deployments')).status, 401);
    assert.equal((await gw.request('/admin/deployments', { headers: { authorization: 'Bearer wrong' } })).status, 401);
    assert.equal((await gw.request('/admin/deployments', { headers: { authorization: `Bearer ${token}` } })).status, 200);
});

test('active probes take a provider out when its models endpoint fails, and back in', async (t) => {
    const h = harness(t);
    const a = await h.fake({ behavior: 'chunks=2', name: 'fake-a' });
    const b = await h.fake({ behavior: 'chunks=2', name: 'fake-b' });
    const gw = await h.gateway({
        config: {
            providers: {
                a: fakeProvider(a, { probe: { interval: '100ms', timeout: '500ms', unhealthy_threshold: 2, healthy_threshold: 2 } }),
                b: fakeProvider(b, { probe: false }),
            },
            models: { m: [{ provider: 'a', model: 'ma' }, { provider: 'b', model: 'mb', tier: 1 }] },
        },
        strictStderr: false,
    });
    await fetch(`${a.url}/_fake/behavior`, { method: 'POST', body: 'status=503' });
    await waitUntil(async () => (await depState(gw, 'a')).probe.down, { timeout: 3000 * SLOW, what: 'probe down' });
    const sdk = gw.client({ maxRetries: 0 });
    const { response } = await sdk.chat.completions.create({ model: 'm', messages: msgs }).withResponse();
    assert.equal(response.headers.get('x-unbusy-provider'), 'b');
    assert.equal(response.headers.get('x-unbusy-attempts'), '1', 'a probed-down provider was tried');
    await fetch(`${a.url}/_fake/behavior`, { method: 'POST', body: 'chunks=2' });
    await waitUntil(async () => !(await depState(gw, 'a')).probe.down, { timeout: 3000 * SLOW, what: 'probe up' });
});

test('hedging: a slow first deployment is raced by a second one, the first content wins', async (t) => {
    const h = harness(t);
    const slow = await h.fake({ behavior: 'ttft=2000,chunks=3', name: 'fake-slow' });
    const fast = await h.fake({ behavior: 'ttft=20,chunks=3', name: 'fake-fast' });
    const gw = await h.gateway({
        config: {
            providers: { slow: fakeProvider(slow, { probe: false }), fast: fakeProvider(fast, { probe: false }) },
            models: {
                m: {
                    deployments: [{ provider: 'slow', model: 's', tier: 0 }, { provider: 'fast', model: 'f', tier: 1 }],
                    timeouts: { first_token: '5s' },
                    resilience: { hedge: { enabled: true, after: '100ms', max_ratio: 1 } },
                },
            },
        },
    });
    const sdk = gw.client({ maxRetries: 0 });
    const base = (await slow.stats()).open_connections; /* the stats request's own connection */
    const started = performance.now();
    const stream = await sdk.chat.completions.create({ model: 'm', messages: msgs, stream: true });
    const r = await drainStream(stream);
    const took = performance.now() - started;
    assert.equal(r.error, null);
    assert.equal(r.content, expectedContent(3));
    assert.ok(took < 1500 * SLOW, `took ${took} ms: the hedge did not win`);
    const st = (await adminState(gw)).models[0].hedges;
    assert.equal(st.started, 1);
    assert.equal(st.won, 1);
    // an incident on the status page, naming the slow deployment
    const incidents = (await gw.request('/status.json')).json().incidents;
    assert.ok(incidents.some((i) => i.kind === 'hedged' && i.model === 'm'), `no hedged incident: ${JSON.stringify(incidents)}`);
    // the losing attempt was cancelled: the slow fake's connection is closed soon after
    await waitUntil(async () => (await slow.stats()).open_connections <= base, { timeout: 3000 * SLOW, what: 'loser cancelled' });
});

test('continue_on_cut (the default): a stream cut after it started is continued by another deployment', async (t) => {
    const h = harness(t);
    const a = await h.fake({ behavior: 'cut=3,chunks=6', name: 'fake-a' });
    const b = await h.fake({ behavior: 'chunks=6', name: 'fake-b' });
    const gw = await h.gateway({
        config: {
            providers: { a: fakeProvider(a, { probe: false }), b: fakeProvider(b, { probe: false }) },
            models: { m: [{ provider: 'a', model: 'ma', tier: 0 }, { provider: 'b', model: 'mb', tier: 1 }] },
        },
        strictStderr: false,
    });
    const sdk = gw.client({ maxRetries: 0 });
    const stream = await sdk.chat.completions.create({ model: 'm', messages: msgs, stream: true });
    const r = await drainStream(stream);
    assert.equal(r.error, null, `the client saw an error: ${r.error}`);
    // b goes on from a's three chunks: the whole answer, seamless
    assert.equal(r.content, expectedContent(6));
    const [cont] = await b.apiRequests();
    const last = cont.json.messages.at(-1);
    assert.deepEqual(last, { role: 'assistant', content: expectedContent(3) });
    // turned off, the same cut ends the stream with an error
    const gw2 = await h.gateway({
        config: {
            providers: { a: fakeProvider(a, { probe: false }), b: fakeProvider(b, { probe: false }) },
            models: {
                m: {
                    deployments: [{ provider: 'a', model: 'ma', tier: 0 }, { provider: 'b', model: 'mb', tier: 1 }],
                    resilience: { continue_on_cut: false },
                },
            },
        },
        strictStderr: false,
    });
    const r2 = await drainStream(await gw2.client({ maxRetries: 0 }).chat.completions.create({ model: 'm', messages: msgs, stream: true }));
    assert.ok(r2.error, 'a cut stream ended without an error');
});
