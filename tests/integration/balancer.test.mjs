// Balancing strategies through the real binary: each model's strategy instance lives with the
// runtime, keeps its own state across requests and workers, and learns from the outcomes the
// proxy records.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fakeProvider, harness } from './lib.mjs';

const msgs = [{ role: 'user', content: 'hello' }];

function post(gw, body) {
    return gw.request('/v1/chat/completions', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
    });
}

async function providersOf(gw, model, n) {
    const seq = [];
    for (let i = 0; i < n; i++) {
        const r = await post(gw, { model, messages: msgs });
        assert.equal(r.status, 200, r.text);
        seq.push(r.headers['x-unbusy-provider']);
    }
    return seq.join(' ');
}

test('round_robin: the smooth weighted order holds across requests (weights 2, 1: a b a)', async (t) => {
    const h = harness(t);
    const a = await h.fake({ behavior: 'chunks=1', name: 'fake-a' });
    const b = await h.fake({ behavior: 'chunks=1', name: 'fake-b' });
    const gw = await h.gateway({
        config: {
            providers: { a: fakeProvider(a, { probe: false }), b: fakeProvider(b, { probe: false }) },
            models: {
                m: {
                    deployments: [{ provider: 'a', model: 'ma', weight: 2 }, { provider: 'b', model: 'mb' }],
                    resilience: { strategy: 'round_robin' },
                },
            },
        },
    });
    assert.equal(await providersOf(gw, 'm', 9), 'a b a a b a a b a');
    const st = (await gw.request('/admin/deployments')).json();
    assert.equal(st.models.find((x) => x.model === 'm').strategy, 'round_robin');
});

test('cost: the cheapest deployment meeting the TTFT target, the next cheapest once it fails', async (t) => {
    const h = harness(t);
    const local = await h.fake({ behavior: 'chunks=1', name: 'fake-local' });
    const cheap = await h.fake({ behavior: 'chunks=1', name: 'fake-cheap' });
    const dear = await h.fake({ behavior: 'chunks=1', name: 'fake-dear' });
    const gw = await h.gateway({
        config: {
            providers: {
                local: fakeProvider(local, { probe: false }),
                cheap: fakeProvider(cheap, { probe: false }),
                dear: fakeProvider(dear, { probe: false }),
            },
            models: {
                m: {
                    // config order is not price order: the strategy finds the prices itself
                    deployments: [
                        { provider: 'dear', model: 'big' }, { provider: 'cheap', model: 'small' },
                        { provider: 'local', model: 'own' },
                    ],
                    // the 1 s TTFT prior meets a 2 s target; a failure's 5 s penalty does not
                    timeouts: { first_token: '5s' },
                    resilience: { strategy: 'cost', ttft_target: '2s' },
                },
            },
            prices: { dear: { big: { input: 5, output: 15 } }, cheap: { small: { input: 0.5, output: 2 } } },
        },
    });
    assert.equal(await providersOf(gw, 'm', 3), 'local local local');
    const set = await fetch(`${local.url}/_fake/behavior`, { method: 'POST', body: 'status=503' });
    assert.equal(set.status, 200);
    // the failing one is left for the cheaper cloud within the same request, and after it
    assert.equal(await providersOf(gw, 'm', 3), 'cheap cheap cheap');
    const st = (await gw.request('/admin/deployments')).json();
    assert.equal(st.models.find((x) => x.model === 'm').strategy, 'cost');
});
