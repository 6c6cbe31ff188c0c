// The usage ledger: totals equal what the providers reported; a kill -9 loses at most what
// was not yet committed, and the file stays readable.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { SLOW, drainStream, fakeProvider, harness, runGateway, tempDir, waitUntil } from './lib.mjs';

async function usageTotals(file) {
    const r = await runGateway(['usage', '--ledger', file, '--since', '2000-01-01', '--format', 'json']);
    assert.equal(r.code, 0, r.output);
    const j = JSON.parse(r.stdout);
    const t = j.totals.reduce((a, x) => ({
        requests: a.requests + x.requests, prompt: a.prompt + x.prompt_tokens, completion: a.completion + x.completion_tokens,
        cost: a.cost + x.cost,
    }), { requests: 0, prompt: 0, completion: 0, cost: 0 });
    return t;
}

test('ledger totals equal the sum of the usage the providers reported', async (t) => {
    const h = harness(t);
    const a = await h.fake({ behavior: 'chunks=3', name: 'fake-a' });
    const b = await h.fake({ behavior: 'reasoning=2,chunks=4', name: 'fake-b' });
    const file = path.join(tempDir(), 'ledger.db');
    const gw = await h.gateway({
        config: {
            server: { access_log: 'off' },
            ledger: { path: file, batch: 128, flush_interval: '50ms' },
            prices: { a: { ma: { input: 1, output: 2 } }, b: { mb: { input: 0.5, output: 4 } } },
            providers: { a: fakeProvider(a, { probe: false }), b: fakeProvider(b, { probe: false }) },
            models: { m: [{ provider: 'a', model: 'ma' }, { provider: 'b', model: 'mb' }] },
        },
    });
    const sdk = gw.client({ maxRetries: 0 });
    const total = Math.round(10000 / SLOW);
    let next = 0;
    const seen = { prompt: 0, completion: 0, requests: 0, cost: 0 };
    const price = { ma: [1, 2], mb: [0.5, 4] };
    const count = (u, upstreamModel) => {
        seen.prompt += u.prompt_tokens;
        seen.completion += u.completion_tokens;
        seen.requests++;
        const [pi, po] = price[upstreamModel];
        seen.cost += (u.prompt_tokens * pi + u.completion_tokens * po) / 1e6;
    };
    async function one(i) {
        const messages = [{ role: 'user', content: `question ${i} `.repeat(1 + (i % 7)) }];
        if (i % 2) {
            const { data, response } = await sdk.chat.completions.create({ model: 'm', messages }).withResponse();
            count(data.usage, response.headers.get('x-unbusy-provider') === 'a' ? 'ma' : 'mb');
        } else {
            const { data: stream, response } = await sdk.chat.completions
                .create({ model: 'm', messages, stream: true, stream_options: { include_usage: true } }).withResponse();
            const r = await drainStream(stream);
            assert.equal(r.error, null);
            count(r.usage, response.headers.get('x-unbusy-provider') === 'a' ? 'ma' : 'mb');
        }
    }
    await Promise.all(Array.from({ length: 32 }, async () => { while (next < total) await one(next++); }));
    await gw.stop(); // SIGTERM: the ledger writes what is queued before the process exits
    const got = await usageTotals(file);
    t.diagnostic(`${total} requests: ${seen.prompt} prompt + ${seen.completion} completion tokens`);
    assert.equal(got.requests, total);
    assert.equal(got.prompt, seen.prompt);
    assert.equal(got.completion, seen.completion);
    assert.ok(Math.abs(got.cost - seen.cost) < 1e-6 * Math.max(1, seen.cost), `cost ${got.cost} vs ${seen.cost}`);
});

test('kill -9 under load: committed rows survive, at most the unflushed tail is lost', async (t) => {
    const h = harness(t);
    const a = await h.fake({ behavior: 'chunks=2' });
    const file = path.join(tempDir(), 'ledger.db');
    const queue = 64;
    const batch = 16;
    const gw = await h.gateway({
        config: {
            server: { access_log: 'off' },
            ledger: { path: file, queue, batch, flush_interval: '50ms' },
            providers: { a: fakeProvider(a, { probe: false }) },
            models: { m: [{ provider: 'a', model: 'ma' }] },
        },
        strictStderr: false,
    });
    const sdk = gw.client({ maxRetries: 0 });
    let done = 0;
    let stop = false;
    const workers = Array.from({ length: 16 }, async () => {
        while (!stop) {
            try {
                await sdk.chat.completions.create({ model: 'm', messages: [{ role: 'user', content: 'hi' }] });
                if (!stop) done++;
            } catch { return; }
        }
    });
    await waitUntil(() => done >= 1500 / SLOW, { timeout: 60000, what: 'load' });
    const answered = done;
    process.kill(gw.pid, 'SIGKILL');
    stop = true;
    await waitUntil(() => !gw.proc.running, { what: 'the gateway to die' });
    gw.stopped = Promise.resolve(null); // killed on purpose: no clean-exit verdict
    await Promise.all(workers);
    const got = await usageTotals(file); // opens the file: a torn database would fail here
    const lost = answered - got.requests;
    t.diagnostic(`${answered} answered before the kill, ${got.requests} in the ledger, ${lost} lost`);
    // Requests still in flight at the kill may have been answered and logged after `answered`
    // was read: the ledger can be a little ahead, never behind by more than the queue + a batch.
    assert.ok(lost <= queue + batch, `${lost} rows lost`);
    assert.ok(got.requests <= answered + 16, 'more rows than requests');
});
