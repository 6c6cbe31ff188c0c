// Capacity without declared limits: the learnt concurrency limit, waiting for a deployment
// to come back instead of 503, slow start after a recovery. Every config here is untuned:
// no max_concurrency, no timeouts, no queue or hedge keys.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RawClient, SLOW, fakeProvider, harness, httpRequest, waitUntil } from './lib.mjs';

const msgs = [{ role: 'user', content: 'hello' }];

function post(gw, body) {
    return gw.request('/v1/chat/completions', {
        method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body),
    });
}

async function model(gw, name = 'm') {
    return (await gw.request('/admin/deployments')).json().models.find((x) => x.model === name);
}

test('a provider that refuses above 3 concurrent requests: the limit is learnt and the extra requests queue', async (t) => {
    const h = harness(t);
    const f = await h.fake({ behavior: 'max_inflight=3,ttft=150,chunks=1' });
    const gw = await h.gateway({
        config: { providers: { a: fakeProvider(f, { probe: false }) }, models: { m: [{ provider: 'a', model: 'x' }] } },
    });
    const burst = async (n) => (await Promise.all(Array.from({ length: n }, () => post(gw, { model: 'm', messages: msgs })))).map((r) => r.status);
    // Learning: the first bursts go over the provider's limit (the learnt one starts at 20).
    for (let i = 0; i < 3; i++) await burst(12);
    let m = await model(gw);
    const learnt = m.deployments[0].learnt_limit;
    assert.ok(learnt >= 1 && learnt <= 5, `learnt limit ${learnt}, the provider takes 3`);
    assert.ok(m.deployments[0].limit_decreases >= 1);
    assert.equal(m.deployments[0].max_concurrency, 0);
    assert.ok(m.admission.capacity >= 1 && m.admission.capacity <= 5, `capacity ${m.admission.capacity}`);
    // Learnt: a burst of 12 waits in the queue for the limit instead of being refused.
    const queuedBefore = m.admission.queued_total;
    const before = (await f.stats()).by_status?.['429'] ?? 0;
    const statuses = await burst(12);
    assert.deepEqual(statuses, Array(12).fill(200), `statuses ${statuses}`);
    m = await model(gw);
    assert.ok(m.admission.queued_total > queuedBefore, 'nothing queued');
    const after = (await f.stats()).by_status?.['429'] ?? 0;
    assert.ok(after - before <= 3, `the provider refused ${after - before} of 12 once the limit was learnt`);
    const metrics = (await gw.request('/metrics')).text;
    assert.match(metrics, /unbusy_deployment_concurrency_limit\{model="m",provider="a",deployment_model="x"\} [1-5]\b/);
});

async function setBehavior(fake, text) {
    const r = await httpRequest(`${fake.url}/_fake/behavior`, {
        method: 'POST', body: text, headers: { 'content-type': 'text/plain', 'content-length': String(Buffer.byteLength(text)) },
    });
    assert.equal(r.status, 200, r.text);
}

test('the only deployment cooling down after Retry-After: 1 — the next requests wait and are answered, not 503', async (t) => {
    const h = harness(t);
    // Its first request is refused with a Retry-After of 1 s; the rest are answered.
    const f = await h.fake({ behavior: '1%status=429,retry_after=1|ok' });
    const gw = await h.gateway({
        config: { providers: { a: fakeProvider(f, { probe: false }) }, models: { m: [{ provider: 'a', model: 'x' }] } },
    });
    // The first request meets the refusal (one deployment, one attempt): that is the 429 it
    // is answered with. What follows, during the cooldown, waits for its end.
    const refused = await post(gw, { model: 'm', messages: msgs });
    assert.ok([429, 503].includes(refused.status), `status ${refused.status}`);
    const t0 = Date.now();
    assert.equal((await model(gw)).deployments[0].why_not, 'cooldown');
    const second = post(gw, { model: 'm', messages: msgs });
    // A stream client arriving now gets the head and a keep-alive at once, then its answer.
    const raw = await RawClient.connect(gw.port);
    const body = JSON.stringify({ model: 'm', messages: msgs, stream: true });
    raw.write('POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n' +
        `Content-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
    await waitUntil(() => raw.peek().toString().includes(': queued'), { timeout: 2000 * SLOW, what: 'a keep-alive' });
    assert.match(raw.peek().toString(), /^HTTP\/1\.1 200/);
    assert.ok(!raw.peek().toString().includes('data: {'), 'answered during the cooldown');
    await waitUntil(() => raw.peek().toString().includes('data: [DONE]'), { timeout: 5000 * SLOW, what: 'the answer' });
    raw.destroy();
    const r = await second;
    assert.equal(r.status, 200, r.text);
    assert.ok(Date.now() - t0 >= 700, `answered after ${Date.now() - t0} ms: it did not wait`);
    const st = await f.stats();
    assert.equal(st.by_status['429'], 1);
    assert.equal(st.by_status['200'], 2);
});

test('nothing will come back before the deadline: answered at once with an honest Retry-After', async (t) => {
    const h = harness(t);
    const f = await h.fake({ behavior: 'status=429,retry_after=100' });
    const gw = await h.gateway({
        config: { providers: { a: fakeProvider(f, { probe: false }) }, models: { m: [{ provider: 'a', model: 'x' }] } },
    });
    const t0 = Date.now();
    const r = await post(gw, { model: 'm', messages: msgs });
    assert.ok(r.status === 429 || r.status === 503, `status ${r.status}`);
    assert.ok(Date.now() - t0 < 2000 * SLOW, 'it waited for a deployment that comes back in 100 s');
    const ra = Number(r.headers['retry-after']);
    assert.ok(ra >= 95 && ra <= 100, `Retry-After ${ra}`);
});

test('a deployment whose breaker just closed gets a reduced share at first (slow start)', async (t) => {
    const h = harness(t);
    const a = await h.fake({ behavior: 'status=500' });
    const b = await h.fake({ behavior: 'chunks=1' });
    const gw = await h.gateway({
        config: {
            // round_robin: p2c would keep away from a for its slow failure sample, so no trial would come
            resilience: { strategy: 'round_robin', breaker: { consecutive_failures: 1, open: '300ms', open_max: '300ms' } },
            providers: { a: fakeProvider(a, { probe: false }), b: fakeProvider(b, { probe: false }) },
            models: { m: [{ provider: 'a', model: 'x' }, { provider: 'b', model: 'x' }] },
        },
    });
    const dep = async (p) => (await model(gw)).deployments.find((d) => d.provider === p);
    // At start no ramp: every deployment is new alike.
    assert.equal((await dep('a')).slow_start_factor, 1);
    await waitUntil(async () => {
        await post(gw, { model: 'm', messages: msgs });
        return (await dep('a')).breaker === 'open';
    }, { what: 'a open' });
    await setBehavior(a, 'chunks=1');
    await waitUntil(async () => {
        await post(gw, { model: 'm', messages: msgs });
        return (await dep('a')).breaker === 'closed';
    }, { timeout: 5000 * SLOW, interval: 50, what: 'a closed again' });
    const da = await dep('a');
    assert.ok(da.slow_start_factor > 0 && da.slow_start_factor < 0.3, `factor ${da.slow_start_factor}`);
    assert.equal((await dep('b')).slow_start_factor, 1);
    assert.ok(da.concurrency_limit < da.learnt_limit, `limit ${da.concurrency_limit} of ${da.learnt_limit}`);
    const before = { a: (await a.stats()).by_status['200'] ?? 0, b: (await b.stats()).by_status['200'] ?? 0 };
    for (let i = 0; i < 20; i++) assert.equal((await post(gw, { model: 'm', messages: msgs })).status, 200);
    const got = { a: (await a.stats()).by_status['200'] - before.a, b: (await b.stats()).by_status['200'] - before.b };
    assert.ok(got.a <= 5, `the recovering deployment took ${got.a} of 20 (b ${got.b})`);
    const metrics = (await gw.request('/metrics')).text;
    assert.match(metrics, /unbusy_deployment_slow_start_factor\{model="m",provider="a",deployment_model="x"\} 0\.\d+/);
});
