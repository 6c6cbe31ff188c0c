// Failover: any failure before the first byte reaches the client moves the
// request to the next deployment, invisibly; a failure after it ends the
// stream with an error event and no [DONE], so the SDK throws.
//
// Each test starts its own fakes and gateway so breaker state never leaks
// between tests. prov-a (tier 0, the failing one) is tried first; prov-b
// (tier 1) answers normally.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
    SLOW, assertErrorShape, closedPort, drainStream, expectedContent, fakeProvider, harness, marker,
    sseContent, sseData, waitUntil,
} from './lib.mjs';

const msgs = [{ role: 'user', content: 'hello' }];

/*
 * Fake A with behaviorA (or a dead port when behaviorA is null), fake B with
 * behaviorB; model m with A at tier 0 and B at tier 1 (omit B with onlyA).
 */
async function setup(t, { behaviorA, behaviorB = 'chunks=5', timeouts = {}, onlyA = false, extraModel = {} }) {
    const h = harness(t);
    const fakeA = behaviorA === null ? null : await h.fake({ behavior: behaviorA, name: 'fake-a' });
    const fakeB = onlyA ? null : await h.fake({ behavior: behaviorB, name: 'fake-b' });
    const providers = {
        'prov-a': fakeA ? fakeProvider(fakeA) : { base_url: `http://127.0.0.1:${await closedPort()}/v1`, api_key: 'sk-test-dead-secret' },
    };
    const deployments = [{ provider: 'prov-a', model: 'up-a', tier: 0 }];
    if (fakeB) {
        providers['prov-b'] = fakeProvider(fakeB);
        deployments.push({ provider: 'prov-b', model: 'up-b', tier: 1 });
    }
    const gw = await h.gateway({
        config: {
            providers,
            models: {
                m: {
                    deployments,
                    timeouts: { connect: '1s', first_token: '3s', stall: '3s', total: '20s', ...timeouts },
                    ...extraModel,
                },
            },
        },
        strictStderr: false,
    });
    return { h, fakeA, fakeB, gw, sdk: gw.client() };
}

/* After the first byte: the error event, as with continue_on_cut turned off (continuation.test.mjs
   has the default, where another deployment continues the stream). */
const NO_CONTINUATION = { resilience: { continue_on_cut: false } };

async function count(fake, mk) {
    return fake ? (await fake.requestsWith(mk)).length : 0;
}

/* A streamed request that must succeed from prov-b after one failed attempt on prov-a. */
async function assertStreamFailsOver({ fakeA, fakeB, gw, sdk }, { n = 5 } = {}) {
    const mk = marker('fo');
    const { data: stream, response } = await sdk.chat.completions
        .create({ model: 'm', messages: msgs, stream: true, unbusy_test_id: mk }).withResponse();
    const r = await drainStream(stream);
    assert.equal(r.error, null, `the client saw an error: ${r.error}`);
    assert.equal(r.content, expectedContent(n));
    assert.equal(response.headers.get('x-unbusy-provider'), 'prov-b');
    assert.equal(response.headers.get('x-unbusy-attempts'), '2');
    if (fakeA) assert.equal(await count(fakeA, mk), 1, 'prov-a (tier 0) was not tried exactly once');
    assert.equal(await count(fakeB, mk), 1);
    const e = await gw.logFor(response.headers.get('x-request-id'));
    assert.equal(e.attempts, 2);
    assert.equal(e.provider, 'prov-b');
    assert.equal(e.status, 200);
    return r;
}

async function assertNonStreamFailsOver({ fakeA, fakeB, sdk }, { n = 5 } = {}) {
    const mk = marker('fo-ns');
    const { data, response } = await sdk.chat.completions
        .create({ model: 'm', messages: msgs, unbusy_test_id: mk }).withResponse();
    assert.equal(data.choices[0].message.content, expectedContent(n));
    assert.equal(response.headers.get('x-unbusy-provider'), 'prov-b');
    assert.equal(response.headers.get('x-unbusy-attempts'), '2');
    if (fakeA) assert.equal(await count(fakeA, mk), 1, 'prov-a (tier 0) was not tried exactly once');
    assert.equal(await count(fakeB, mk), 1);
}

test('503 -> next deployment (stream)', async (t) => {
    await assertStreamFailsOver(await setup(t, { behaviorA: 'status=503' }));
});

test('503 -> next deployment (non-stream)', async (t) => {
    await assertNonStreamFailsOver(await setup(t, { behaviorA: 'status=503' }));
});

// 401/403: our key for that deployment is refused; 404: it does not know the model.
// Either way another deployment can answer.
for (const behaviorA of ['status=500', 'status=502,html', 'status=504', 'status=401', 'status=403', 'status=404']) {
    test(`${behaviorA} -> next deployment`, async (t) => {
        await assertNonStreamFailsOver(await setup(t, { behaviorA }));
    });
}

test('429 with Retry-After -> next deployment', async (t) => {
    await assertStreamFailsOver(await setup(t, { behaviorA: 'status=429,retry_after=30' }));
});

test('Retry-After keeps the deployment out of rotation for that long', async (t) => {
    const s = await setup(t, { behaviorA: 'status=429,retry_after=30' });
    await assertNonStreamFailsOver(s);
    const mk = marker('after429');
    const { response } = await s.sdk.chat.completions
        .create({ model: 'm', messages: msgs, unbusy_test_id: mk }).withResponse();
    assert.equal(await count(s.fakeA, mk), 0, 'prov-a was asked again inside its Retry-After window');
    assert.equal(response.headers.get('x-unbusy-attempts'), '1');
});

test('a Retry-After too large for 32-bit milliseconds still keeps the deployment out', async (t) => {
    // 4294968 s is 4294968000 ms: wrapped to 32 bits that would be a 704 ms cooldown.
    const s = await setup(t, { behaviorA: 'status=429,retry_after=4294968' });
    await assertNonStreamFailsOver(s);
    const st = (await s.gw.request('/admin/deployments')).json();
    const a = st.models.find((x) => x.model === 'm').deployments.find((d) => d.provider === 'prov-a');
    assert.equal(a.why_not, 'cooldown');
    assert.ok(a.cooldown_remaining_ms > 60000, `cooldown of ${a.cooldown_remaining_ms} ms`);
});

test('a deployment that refuses our key stays out of rotation', async (t) => {
    const s = await setup(t, { behaviorA: 'status=401' });
    await assertNonStreamFailsOver(s);
    for (let i = 0; i < 3; i++) {
        const mk = marker('after401');
        const { response } = await s.sdk.chat.completions
            .create({ model: 'm', messages: msgs, unbusy_test_id: mk }).withResponse();
        assert.equal(await count(s.fakeA, mk), 0, 'a deployment with a refused key was asked again');
        assert.equal(response.headers.get('x-unbusy-attempts'), '1');
    }
});

test('connection refused -> next deployment', async (t) => {
    await assertStreamFailsOver(await setup(t, { behaviorA: null }));
});

test('200 with only keep-alive comments: first-token deadline -> next, no client-visible error', async (t) => {
    const s = await setup(t, { behaviorA: 'keepalive=8000', timeouts: { first_token: '1s' } });
    const t0 = Date.now();
    await assertStreamFailsOver(s);
    const took = Date.now() - t0;
    assert.ok(took >= 900, `failed over after ${took} ms, before the 1 s first-token deadline`);
    assert.ok(took < 5000 * SLOW, `took ${took} ms: keep-alive comments reset the deadline?`);
});

test('keep-alive-only upstream, non-stream client: same failover', async (t) => {
    const s = await setup(t, { behaviorA: 'keepalive=8000', timeouts: { first_token: '1s' } });
    const t0 = Date.now();
    await assertNonStreamFailsOver(s);
    assert.ok(Date.now() - t0 < 5000 * SLOW);
});

test('slow first token (ttft over the deadline) -> next deployment', async (t) => {
    const s = await setup(t, { behaviorA: 'ttft=8000', timeouts: { first_token: '1s' } });
    const t0 = Date.now();
    await assertStreamFailsOver(s);
    assert.ok(Date.now() - t0 < 5000 * SLOW);
});

test('upstream accepts and never answers -> next deployment', async (t) => {
    const s = await setup(t, { behaviorA: 'hang', timeouts: { first_token: '1s' } });
    await assertStreamFailsOver(s);
});

for (const behaviorA of ['garbage', 'badjson', 'reset']) {
    test(`malformed or broken reply (${behaviorA}) -> next deployment`, async (t) => {
        const s = await setup(t, { behaviorA });
        await assertStreamFailsOver(s);
    });
}

test('an upstream that answers with Connection: close is not reused after it', async (t) => {
    const { sdk } = await setup(t, { behaviorA: 'close', onlyA: true });
    for (let i = 0; i < 3; i++) {
        const { data, response } = await sdk.chat.completions.create({ model: 'm', messages: msgs }).withResponse();
        assert.equal(data.choices[0].message.content, expectedContent(5));
        assert.equal(response.headers.get('x-unbusy-attempts'), '1', 'a closed upstream connection was reused');
    }
});

test('non-stream client: a cut upstream stream is retried (nothing was sent yet)', async (t) => {
    await assertNonStreamFailsOver(await setup(t, { behaviorA: 'chunks=10,cut=3' }));
});

test('cut after the first byte: the SDK stream throws; no retry, no [DONE]', async (t) => {
    const { fakeB, sdk } = await setup(t, { behaviorA: 'chunks=10,cut=3', extraModel: NO_CONTINUATION });
    const mk = marker('cut');
    const stream = await sdk.chat.completions.create({ model: 'm', messages: msgs, stream: true, unbusy_test_id: mk });
    const r = await drainStream(stream);
    assert.ok(r.error, 'the SDK returned a truncated stream without throwing');
    assert.equal(r.content, expectedContent(3), 'the content before the cut should have been delivered');
    assert.equal(await count(fakeB, mk), 0, 'a started stream was re-sent to another deployment');
});

test('cut after the first byte, raw: an error event ends the stream, no [DONE]', async (t) => {
    const { gw } = await setup(t, { behaviorA: 'chunks=10,cut=3', onlyA: true, extraModel: NO_CONTINUATION });
    const r = await gw.request('/v1/chat/completions', {
        method: 'POST', body: { model: 'm', messages: msgs, stream: true },
    });
    assert.equal(r.status, 200);
    const data = sseData(r.text);
    assert.ok(!data.includes('[DONE]'), 'a broken stream was finished with [DONE]');
    const last = JSON.parse(data[data.length - 1]);
    assertErrorShape(assert, last, 'the last event');
    assert.equal(sseContent(r.text), expectedContent(3));
    const e = await gw.logFor(r.headers['x-request-id']);
    const ok = await gw.client().chat.completions.create({ model: 'm', messages: msgs, fake: 'chunks=2' }).withResponse();
    const good = await gw.logFor(ok.response.headers.get('x-request-id'));
    assert.notEqual(e.outcome, good.outcome, 'a cut stream is logged with the same outcome as a good one');
});

test('stall after the first token ends the stream with an error', async (t) => {
    const { sdk } = await setup(t, {
        behaviorA: 'chunks=5,stall=8000', onlyA: true, timeouts: { stall: '1s' }, extraModel: NO_CONTINUATION,
    });
    const t0 = Date.now();
    let r;
    try {
        const stream = await sdk.chat.completions.create({ model: 'm', messages: msgs, stream: true });
        r = await drainStream(stream);
    } catch (e) {
        r = { error: e, content: '' }; // a stall before the first token fails before the stream
    }
    const took = Date.now() - t0;
    assert.ok(r.error, 'a stalled stream ended without an error');
    assert.ok(expectedContent(5).startsWith(r.content));
    assert.ok(took < 6000 * SLOW, `the stall was noticed only after ${took} ms`);
});

test('client abort mid-stream closes the upstream connection', async (t) => {
    const { fakeA, sdk } = await setup(t, { behaviorA: 'chunks=2000,chunk_ms=10', onlyA: true });
    const base = (await fakeA.stats()).open_connections;
    assert.equal(typeof base, 'number', 'fake stats have no open_connections');
    const stream = await sdk.chat.completions.create({ model: 'm', messages: msgs, stream: true });
    let n = 0;
    for await (const c of stream) {
        if (c.choices?.[0]?.delta?.content) n++;
        if (n === 3) break; // leaving the loop aborts the request
    }
    assert.equal(n, 3);
    await waitUntil(async () => (await fakeA.stats()).open_connections <= base,
        { timeout: 3000 * SLOW, what: 'the upstream connection to close after the client went away' });
});

test('max_attempts bounds the tries', async (t) => {
    const h = harness(t);
    const fake = await h.fake({ behavior: 'status=503' });
    const providers = {};
    const deployments = [];
    for (const p of ['p1', 'p2', 'p3']) {
        providers[p] = { base_url: fake.baseURL, api_key: `sk-test-${p}-secret` };
        deployments.push({ provider: p, model: `up-${p}` });
    }
    const gw = await h.gateway({
        config: { providers, models: { m: { deployments, max_attempts: 2 } } },
        strictStderr: false,
    });
    const mk = marker('maxatt');
    const r = await gw.request('/v1/chat/completions', { method: 'POST', body: { model: 'm', messages: msgs, unbusy_test_id: mk } });
    assert.ok([502, 503, 504].includes(r.status), `status ${r.status}`);
    assert.equal((await fake.requestsWith(mk)).length, 2);
});

test('the total deadline bounds the whole request across attempts', async (t) => {
    const { gw } = await setup(t, {
        behaviorA: 'hang', behaviorB: 'hang', timeouts: { first_token: '1s', total: '1200ms' },
    });
    const t0 = Date.now();
    const r = await gw.request('/v1/chat/completions', { method: 'POST', body: { model: 'm', messages: msgs, stream: true } });
    const took = Date.now() - t0;
    assert.equal(r.status, 504, r.text);
    assertErrorShape(assert, r.text);
    // Unbounded, the second attempt would run its full first-token second: 2 s in all.
    assert.ok(took >= 1100, `gave up after ${took} ms, before the total deadline`);
    assert.ok(took < 1800 * SLOW, `gave up after ${took} ms: the total deadline did not cut the second attempt`);
});
