// The first-token budget and hedging with the defaults: no timeouts or hedge keys in any config
// here. A deployment that answers 200 and then only keep-alives is left for another after its
// budget, and a long prompt that is slow for its size is not hedged.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SLOW, drainStream, expectedContent, fakeProvider, harness, waitUntil } from './lib.mjs';

const msgs = [{ role: 'user', content: 'hello' }];

async function modelState(gw) {
    const r = await gw.request('/admin/deployments');
    assert.equal(r.status, 200, r.text);
    return r.json().models[0];
}

async function streamTimed(sdk, body) {
    const started = performance.now();
    let ttft = null;
    const { data: stream, response } = await sdk.chat.completions.create({ model: 'm', stream: true, ...body }).withResponse();
    const r = await drainStream(stream, { onChunk: (c) => {
        if (ttft === null && c.choices?.[0]?.delta?.content) ttft = performance.now() - started;
    } });
    return { ...r, ttft, attempts: Number(response.headers.get('x-unbusy-attempts')) };
}

test('a deployment sending only keep-alives is hedged after the cold budget, not 20 s; the loser is cancelled', async (t) => {
    const h = harness(t);
    const busy = await h.fake({ behavior: 'keepalive=20000,ka_every=200,chunks=3', name: 'fake-busy' });
    const healthy = await h.fake({ behavior: 'ttft=50,chunks=3', name: 'fake-healthy' });
    const gw = await h.gateway({
        config: {
            providers: { busy: fakeProvider(busy, { probe: false }), healthy: fakeProvider(healthy, { probe: false }) },
            // the tiers only make the busy one the first choice of every request
            models: { m: [{ provider: 'busy', model: 'b', tier: 0 }, { provider: 'healthy', model: 'h', tier: 1 }] },
        },
    });
    const before = await modelState(gw);
    assert.equal(before.hedges.enabled, true, 'hedging is on by default');
    const fb = before.deployments[0].first_token_budget;
    assert.equal(fb.short.source, 'cold');
    assert.ok(fb.short.budget_ms >= 1000 && fb.short.budget_ms <= 1500, JSON.stringify(fb));
    assert.ok(fb.long.budget_ms > fb.short.budget_ms, 'a long prompt is allowed longer');
    const base = (await busy.stats()).open_connections; // the stats request's own connection

    const sdk = gw.client({ maxRetries: 0 });
    const results = await Promise.all([1, 2, 3].map(() => streamTimed(sdk, { messages: msgs })));
    for (const r of results) {
        assert.equal(r.error, null);
        assert.equal(r.content, expectedContent(3));
        assert.ok(r.ttft < 5000 * SLOW, `first token after ${r.ttft} ms: the busy deployment was waited for`);
        assert.equal(r.attempts, 2, 'the busy deployment, then the hedge');
    }
    // a non-stream client is hedged the same way
    const started = performance.now();
    const answer = await sdk.chat.completions.create({ model: 'm', messages: msgs });
    assert.equal(answer.choices[0].message.content, expectedContent(3));
    assert.ok(performance.now() - started < 5000 * SLOW);

    const st = await modelState(gw);
    assert.equal(st.hedges.started, 4);
    assert.equal(st.hedges.won, 4);
    // the first three were hedged on the cold budget; by the fourth the healthy deployment has
    // three first tokens, enough to lend the busy one its figure (the siblings' prior)
    assert.equal(st.hedges.by_reason.cold, 3);
    assert.equal(st.hedges.by_reason.siblings, 1);
    assert.equal(st.hedges.budget.window_useful, 4);
    // every losing attempt was cancelled: the busy fake sees its connections closed long before 20 s
    await waitUntil(async () => (await busy.stats()).open_connections <= base,
        { timeout: 3000 * SLOW, what: 'the losers cancelled' });
    const metrics = (await gw.request('/metrics')).text;
    assert.match(metrics, /unbusy_hedges_started_total\{model="m",reason="cold"\} 3/);
    assert.match(metrics, /unbusy_hedges_total\{model="m",result="won"\} 4/);
    // the busy deployment now borrows the healthy one's figure: 50 ms × 2, raised to the 250 ms floor
    assert.match(metrics, /unbusy_deployment_first_token_budget_seconds\{model="m",provider="busy",deployment_model="b",prompt="short"\} 0\.25\n/);
});

test('a long prompt whose first token is slow for its size is not hedged; the same wait on a short prompt is', async (t) => {
    const h = harness(t);
    // both deployments prefill at 100 ms per 1,000 prompt tokens (4 bytes each): a 100 KB prompt waits 2.5 s
    const a = await h.fake({ behavior: 'ttft=20,ttft_per_ktok=100,chunks=2', name: 'fake-a' });
    const b = await h.fake({ behavior: 'ttft=20,ttft_per_ktok=100,chunks=2', name: 'fake-b' });
    const gw = await h.gateway({
        config: {
            providers: { a: fakeProvider(a, { probe: false }), b: fakeProvider(b, { probe: false }) },
            models: { m: [{ provider: 'a', model: 'ma', tier: 0 }, { provider: 'b', model: 'mb', tier: 1 }] },
        },
    });
    const sdk = gw.client({ maxRetries: 0 });
    const long = [{ role: 'user', content: 'x'.repeat(100000) }]; // 25,000 tokens
    // cold, then learnt: 22 long prompts, none hedged
    for (let round = 0; round < 2; round++) {
        const results = await Promise.all(Array.from({ length: 11 }, () => streamTimed(sdk, { messages: long })));
        for (const r of results) {
            assert.equal(r.error, null);
            assert.equal(r.content, expectedContent(2));
            assert.equal(r.attempts, 1, 'a long prompt was hedged');
        }
    }
    let st = await modelState(gw);
    assert.equal(st.hedges.started, 0);
    const fb = st.deployments[0].first_token_budget;
    assert.equal(fb.long.source, 'learnt', JSON.stringify(fb));
    assert.ok(fb.long.p99_ms >= 2300 && fb.long.budget_ms > fb.long.p99_ms, JSON.stringify(fb));
    assert.ok(st.deployments[0].first_token_budget.classes[4].samples >= 22);
    // a short prompt that waits as long is hedged (and the first to answer wins)
    const r = await streamTimed(sdk, { messages: msgs, fake: 'ttft=3500,chunks=2' });
    assert.equal(r.error, null);
    // hedged on b; as b waits as long, the pool's one more try may hedge again
    assert.ok(r.attempts >= 2, `the short prompt was not hedged (${r.attempts} attempts)`);
    st = await modelState(gw);
    assert.ok(st.hedges.started >= 1 && st.hedges.started === r.attempts - 1, JSON.stringify(st.hedges));
});
