// Budgets: an alert once at 80% to a webhook, refusal at 100%.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fakeProvider, harness, waitUntil } from './lib.mjs';

const KEY = 'sk-test-budget-key-0123456789';

test('budget: one alert at 80% to the webhook, 429 insufficient_quota at 100%', async (t) => {
    const h = harness(t);
    const f = await h.fake({ behavior: 'chunks=2' });
    const hook = await h.fake({ behavior: 'chunks=1', name: 'webhook' });
    const gw = await h.gateway({
        config: {
            keys: [{ name: 'team-a', key: KEY }],
            // 2 completion tokens at 0.1 USD each: every request costs 0.20 USD
            prices: { a: { x: { input: 0, output: 100000 } } },
            budgets: { webhook: `${hook.url}/hook`, alert_at: 0.8, keys: { 'team-a': { daily: 1 } } },
            providers: { a: fakeProvider(f, { probe: false }) },
            models: { m: [{ provider: 'a', model: 'x' }] },
        },
        strictStderr: false,
    });
    const post = () => gw.request('/v1/chat/completions', {
        method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${KEY}` },
        body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hi' }] }),
    });
    for (let i = 0; i < 5; i++) assert.equal((await post()).status, 200, `request ${i + 1}`);
    const hooks = async () => (await hook.requests()).filter((r) => r.path === '/hook').map((r) => r.json);
    await waitUntil(async () => (await hooks()).length >= 1, { what: 'the 80% alert' });
    let got = await hooks();
    assert.equal(got.length, 1, 'the alert fired more than once');
    assert.equal(got[0].type, 'budget_alert');
    assert.equal(got[0].key, 'team-a');
    assert.equal(got[0].period, 'day');
    assert.equal(got[0].level, 'warning');
    const r = await post();
    assert.equal(r.status, 429);
    assert.equal(r.json().error.code, 'insufficient_quota');
    assert.match(r.json().error.message, /budget/);
    assert.equal((await f.stats()).requests, 5, 'a refused request reached the provider');
    await waitUntil(async () => (await hooks()).length >= 2, { what: 'the exhausted alert' });
    await post();
    got = await hooks();
    assert.equal(got.length, 2);
    assert.equal(got[1].level, 'exhausted');
});
