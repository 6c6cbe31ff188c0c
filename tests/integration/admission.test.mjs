// Admission: virtual keys, rate limits, the priority queue, shedding, degradation, rules.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RawClient, SLOW, assertErrorShape, drainStream, fakeProvider, harness, sleep, waitUntil } from './lib.mjs';

const msgs = [{ role: 'user', content: 'hello' }];
const KEY_A = 'sk-test-key-alpha-0123456789';
const KEY_B = 'sk-test-key-beta-0123456789';

function post(gw, body, headers = {}) {
    return gw.request('/v1/chat/completions', {
        method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body),
    });
}

async function admission(gw, model = 'm') {
    const st = (await gw.request('/admin/deployments')).json();
    return st.models.find((x) => x.model === model).admission;
}

test('virtual keys: 401 without or with a wrong key, 403 for a model the key may not use', async (t) => {
    const h = harness(t);
    const f = await h.fake({ behavior: 'chunks=2' });
    const gw = await h.gateway({
        config: {
            keys: [{ name: 'alpha', key: KEY_A }, { name: 'beta', key: KEY_B, models: ['m'] }],
            providers: { a: fakeProvider(f, { probe: false }) },
            models: { m: [{ provider: 'a', model: 'x' }], other: [{ provider: 'a', model: 'y' }] },
        },
    });
    let r = await post(gw, { model: 'm', messages: msgs });
    assert.equal(r.status, 401);
    assertErrorShape(assert, r.text);
    r = await post(gw, { model: 'm', messages: msgs }, { authorization: 'Bearer sk-nope' });
    assert.equal(r.status, 401);
    r = await post(gw, { model: 'm', messages: msgs }, { authorization: `Bearer ${KEY_A}` });
    assert.equal(r.status, 200, r.text);
    r = await post(gw, { model: 'other', messages: msgs }, { authorization: `Bearer ${KEY_B}` });
    assert.equal(r.status, 403);
    const sdk = gw.client({ apiKey: KEY_B, maxRetries: 0 });
    const ok = await sdk.chat.completions.create({ model: 'm', messages: msgs });
    assert.ok(ok.choices[0].message.content.length > 0);
    // the client's key is never sent upstream
    for (const req of await f.apiRequests()) assert.ok(!JSON.stringify(req.headers).includes('sk-test-key'));
});

test('RPM: exact limit, then 429 with Retry-After and x-ratelimit headers', async (t) => {
    const h = harness(t);
    const f = await h.fake({ behavior: 'chunks=1' });
    const gw = await h.gateway({
        config: {
            keys: [{ name: 'alpha', key: KEY_A, rpm: 3 }],
            providers: { a: fakeProvider(f, { probe: false }) },
            models: { m: [{ provider: 'a', model: 'x' }] },
        },
    });
    const auth = { authorization: `Bearer ${KEY_A}` };
    for (let i = 0; i < 3; i++) {
        const r = await post(gw, { model: 'm', messages: msgs }, auth);
        assert.equal(r.status, 200, `request ${i}: ${r.text}`);
        assert.equal(r.headers['x-ratelimit-limit-requests'], '3');
    }
    const r = await post(gw, { model: 'm', messages: msgs }, auth);
    assert.equal(r.status, 429);
    assertErrorShape(assert, r.text);
    const ra = Number(r.headers['retry-after']);
    // 3 per minute: a new request every 20 s; the bucket started full a moment ago
    assert.ok(ra >= 15 && ra <= 21, `Retry-After ${ra}`);
    assert.equal(r.headers['x-ratelimit-remaining-requests'], '0');
    assert.equal((await f.stats()).requests, 3, 'a limited request reached the provider');
});

test('TPM: the estimate is charged up front and reconciled with the real usage', async (t) => {
    const h = harness(t);
    const f = await h.fake({ behavior: 'ttft=400,chunks=2' });
    const gw = await h.gateway({
        config: {
            keys: [{ name: 'alpha', key: KEY_A, tpm: 2000 }],
            providers: { a: fakeProvider(f, { probe: false }) },
            models: { m: [{ provider: 'a', model: 'x' }] },
        },
    });
    const auth = { authorization: `Bearer ${KEY_A}` };
    const first = post(gw, { model: 'm', messages: msgs, max_tokens: 1500 }, auth);
    await waitUntil(async () => (await f.stats()).requests === 1, { what: 'first request upstream' });
    const second = await post(gw, { model: 'm', messages: msgs, max_tokens: 1500 }, auth);
    assert.equal(second.status, 429, 'the estimate of the first request was not charged');
    assert.equal((await first).status, 200);
    // the first used a few dozen tokens, not 1500: the rest came back
    const third = await post(gw, { model: 'm', messages: msgs, max_tokens: 1500 }, auth);
    assert.equal(third.status, 200, third.text);
});

test('TPM: a stream the client aborts is charged what it streamed, not its max_tokens', async (t) => {
    const h = harness(t);
    const f = await h.fake({ behavior: 'chunks=2' });
    const gw = await h.gateway({
        config: {
            keys: [{ name: 'alpha', key: KEY_A, tpm: 2000 }],
            providers: { a: fakeProvider(f, { probe: false }) },
            models: { m: [{ provider: 'a', model: 'x' }] },
        },
    });
    const sdk = gw.client({ apiKey: KEY_A, maxRetries: 0 });
    const base = (await f.stats()).open_connections;
    const stream = await sdk.chat.completions.create({
        model: 'm', messages: msgs, max_tokens: 1500, stream: true, fake: 'chunks=2000,chunk_ms=10',
    });
    let n = 0;
    for await (const c of stream) {
        if (c.choices?.[0]?.delta?.content) n++;
        if (n === 3) break; // leaving the loop aborts the request
    }
    // the gateway settles the key's tokens when it lets go of the upstream
    await waitUntil(async () => (await f.stats()).open_connections <= base, { what: 'the aborted stream to end' });
    const r = await post(gw, { model: 'm', messages: msgs, max_tokens: 10 }, { authorization: `Bearer ${KEY_A}` });
    assert.equal(r.status, 200, r.text);
    const remaining = Number(r.headers['x-ratelimit-remaining-tokens']);
    // charged up front: 1 + 1500; streamed: a few dozen tokens at most (and this request's ~30)
    assert.ok(remaining > 1500, `remaining ${remaining}: the aborted stream was charged its max_tokens`);
});

function saturatedConfig(fake, queue = {}, extra = {}) {
    return {
        keys: [{ name: 'low', key: KEY_A, priority: 3 }, { name: 'high', key: KEY_B, priority: 0 }],
        providers: { a: fakeProvider(fake, { probe: false }) },
        models: {
            m: {
                deployments: [{ provider: 'a', model: 'x', max_concurrency: 1 }],
                queue: { max: 10, timeout: '10s', keepalive: '200ms', ...queue },
                ...extra,
            },
        },
    };
}

test('priority queue: at capacity a higher class starts before earlier lower-class waiters', async (t) => {
    const h = harness(t);
    const f = await h.fake({ behavior: 'ttft=300,chunks=1' });
    const gw = await h.gateway({ config: saturatedConfig(f) });
    const order = [];
    const run = (key, tag) => post(gw, { model: 'm', messages: msgs }, { authorization: `Bearer ${key}` })
        .then((r) => { assert.equal(r.status, 200, r.text); order.push(tag); });
    const busy = run(KEY_A, 'first');
    await waitUntil(async () => (await f.stats()).requests === 1, { what: 'slot taken' });
    const low1 = run(KEY_A, 'low1');
    await waitUntil(async () => (await admission(gw)).queued === 1, { what: 'low1 queued' });
    const low2 = run(KEY_A, 'low2');
    await waitUntil(async () => (await admission(gw)).queued === 2, { what: 'low2 queued' });
    const high = run(KEY_B, 'high');
    await waitUntil(async () => (await admission(gw)).queued === 3, { what: 'high queued' });
    await Promise.all([busy, low1, low2, high]);
    assert.deepEqual(order, ['first', 'high', 'low1', 'low2']);
});

test('a queued stream client gets the head and keep-alive comments, then its answer', async (t) => {
    const h = harness(t);
    const f = await h.fake({ behavior: 'ttft=1200,chunks=1' });
    const gw = await h.gateway({ config: saturatedConfig(f) });
    const first = post(gw, { model: 'm', messages: msgs }, { authorization: `Bearer ${KEY_B}` });
    await waitUntil(async () => (await f.stats()).requests === 1, { what: 'slot taken' });
    const raw = await RawClient.connect(gw.port);
    const body = JSON.stringify({ model: 'm', messages: msgs, stream: true });
    raw.write(`POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${KEY_A}\r\n` +
        `Content-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
    await waitUntil(() => (raw.peek().toString().match(/: queued/g) || []).length >= 2, { timeout: 3000 * SLOW, what: 'keep-alives' });
    assert.match(raw.peek().toString(), /^HTTP\/1\.1 200/);
    await waitUntil(() => raw.peek().toString().includes('data: [DONE]'), { timeout: 10000 * SLOW, what: 'the answer' });
    raw.destroy();
    await first;
});

test('a queued client that disconnects leaves the queue at once', async (t) => {
    const h = harness(t);
    const f = await h.fake({ behavior: 'ttft=1500,chunks=1' });
    const gw = await h.gateway({ config: saturatedConfig(f) });
    const first = post(gw, { model: 'm', messages: msgs }, { authorization: `Bearer ${KEY_B}` });
    await waitUntil(async () => (await f.stats()).requests === 1, { what: 'slot taken' });
    const raw = await RawClient.connect(gw.port);
    const body = JSON.stringify({ model: 'm', messages: msgs });
    raw.write(`POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${KEY_A}\r\n` +
        `Content-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
    await waitUntil(async () => (await admission(gw)).queued === 1, { what: 'queued' });
    raw.destroy();
    await waitUntil(async () => (await admission(gw)).queued === 0, { timeout: 1000, what: 'left the queue' });
    assert.equal((await first).status, 200);
    assert.equal((await f.stats()).requests, 1, 'the gone client was still sent upstream');
});

test('queue deadline: 429 with a Retry-After; a full queue sheds the lowest class first', async (t) => {
    const h = harness(t);
    const f = await h.fake({ behavior: 'ttft=1500,chunks=1' });
    const gw = await h.gateway({ config: saturatedConfig(f, { max: 1, timeout: '5s' }) });
    const first = post(gw, { model: 'm', messages: msgs }, { authorization: `Bearer ${KEY_B}` });
    await waitUntil(async () => (await f.stats()).requests === 1, { what: 'slot taken' });
    // deadline (a client may shorten the queue timeout)
    const late = await post(gw, { model: 'm', messages: msgs }, { authorization: `Bearer ${KEY_A}`, 'x-unbusy-queue-timeout': '300' });
    assert.equal(late.status, 429);
    assert.match(late.json().error.message, /queue/);
    assert.ok(Number(late.headers['retry-after']) >= 1);
    // full queue (max 1): a low waiter is evicted by a high newcomer; a low newcomer is shed
    const low = post(gw, { model: 'm', messages: msgs }, { authorization: `Bearer ${KEY_A}` });
    await waitUntil(async () => (await admission(gw)).queued === 1, { what: 'low queued' });
    const high = post(gw, { model: 'm', messages: msgs }, { authorization: `Bearer ${KEY_B}` });
    const lowR = await low;
    assert.equal(lowR.status, 429, 'the low waiter was not shed for the high one');
    assert.match(lowR.json().error.message, /shed/);
    const low2 = await post(gw, { model: 'm', messages: msgs }, { authorization: `Bearer ${KEY_A}` });
    assert.equal(low2.status, 429);
    assert.equal((await first).status, 200);
    assert.equal((await high).status, 200);
    assert.ok((await admission(gw)).shed >= 2);
});

test('degradation: above the threshold requests go to the fallback model, marked; back below it', async (t) => {
    const h = harness(t);
    const big = await h.fake({ behavior: 'ttft=800,chunks=1', name: 'big' });
    const small = await h.fake({ behavior: 'chunks=1', name: 'small' });
    const gw = await h.gateway({
        config: {
            providers: { big: fakeProvider(big, { probe: false }), small: fakeProvider(small, { probe: false }) },
            models: {
                r1: {
                    deployments: [{ provider: 'big', model: 'r1-full', max_concurrency: 4 }],
                    degrade: { enabled: true, threshold: 0.5, hysteresis: 0.25, to: 'r1-distill', classes: [0, 1, 2, 3] },
                },
                'r1-distill': [{ provider: 'small', model: 'r1-8b' }],
            },
        },
    });
    const busy = [post(gw, { model: 'r1', messages: msgs }), post(gw, { model: 'r1', messages: msgs })];
    await waitUntil(async () => (await big.stats()).requests === 2, { what: 'two in flight' });
    const r = await post(gw, { model: 'r1', messages: msgs });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.headers['x-unbusy-degraded'], 'r1-distill');
    assert.equal(r.headers['x-unbusy-provider'], 'small');
    for (const b of await Promise.all(busy)) assert.equal(b.status, 200);
    const calm = await post(gw, { model: 'r1', messages: msgs });
    assert.equal(calm.headers['x-unbusy-degraded'], undefined);
    assert.equal(calm.headers['x-unbusy-provider'], 'big');
    assert.ok((await admission(gw, 'r1')).degraded_total >= 1);
});

test('rules: short prompts to the edge model, requests with tools to the origin tier', async (t) => {
    const h = harness(t);
    const edge = await h.fake({ behavior: 'chunks=1', name: 'edge' });
    const origin = await h.fake({ behavior: 'chunks=1', name: 'origin' });
    const gw = await h.gateway({
        config: {
            providers: { edge: fakeProvider(edge, { probe: false }), origin: fakeProvider(origin, { probe: false }) },
            models: {
                chat: [{ provider: 'edge', model: 'e', tier: 0 }, { provider: 'origin', model: 'o', tier: 1 }],
                small: [{ provider: 'edge', model: 'tiny' }],
            },
            rules: [
                { match: { model: 'chat', tools: true }, route: { tier: 1 } },
                { match: { model: 'chat', max_prompt_chars: 20 }, route: { model: 'small' } },
            ],
        },
    });
    const tools = [{ type: 'function', function: { name: 'f', parameters: { type: 'object', properties: {} } } }];
    let r = await post(gw, { model: 'chat', messages: msgs, tools });
    assert.equal(r.headers['x-unbusy-provider'], 'origin');
    r = await post(gw, { model: 'chat', messages: [{ role: 'user', content: 'hi' }] });
    assert.equal(r.headers['x-unbusy-provider'], 'edge');
    const reqs = await edge.apiRequests();
    assert.equal(reqs.at(-1).json.model, 'tiny');
    r = await post(gw, { model: 'chat', messages: [{ role: 'user', content: 'a much longer question than twenty characters' }] });
    assert.equal(r.headers['x-unbusy-provider'], 'edge');
    assert.equal((await edge.apiRequests()).at(-1).json.model, 'e');
});

test('rules: a model a rule routes to must be allowed to the key too, unless the rule says bypass_allowlist', async (t) => {
    // x-quality is the client's own header: without the check any key could pick the premium model.
    const h = harness(t);
    const f = await h.fake({ behavior: 'chunks=1' });
    const gw = await h.gateway({
        config: {
            keys: [{ name: 'alpha', key: KEY_A }, { name: 'beta', key: KEY_B, models: ['chat'] }],
            providers: { a: fakeProvider(f, { probe: false }) },
            models: {
                chat: [{ provider: 'a', model: 'up-chat' }],
                premium: [{ provider: 'a', model: 'up-premium' }],
                partner: [{ provider: 'a', model: 'up-partner' }],
            },
            rules: [
                { match: { header: 'x-quality', value: 'high' }, route: { model: 'premium' } },
                { match: { header: 'x-partner' }, route: { model: 'partner', bypass_allowlist: true } },
            ],
        },
    });
    const beta = { authorization: `Bearer ${KEY_B}` };
    let r = await post(gw, { model: 'chat', messages: msgs }, { ...beta, 'x-quality': 'high' });
    assert.equal(r.status, 403, r.text);
    const e = assertErrorShape(assert, r.text);
    assert.equal(e.type, 'permission_error');
    assert.equal(e.param, 'model');
    assert.match(e.message, /'chat'/);
    assert.doesNotMatch(e.message, /premium/, 'the routed model stays the operator\'s business');
    const line = await gw.logFor(r.headers['x-request-id']);
    assert.equal(line.status, 403);
    assert.match(line.error, /'premium'/);
    assert.ok(!(await f.apiRequests()).some((q) => q.json?.model === 'up-premium'), 'the premium model was served');

    // the same key without the header: its own model
    r = await post(gw, { model: 'chat', messages: msgs }, beta);
    assert.equal(r.status, 200, r.text);
    assert.equal((await f.apiRequests()).at(-1).json.model, 'up-chat');
    // a rule that hands its model out on purpose
    r = await post(gw, { model: 'chat', messages: msgs }, { ...beta, 'x-partner': '1' });
    assert.equal(r.status, 200, r.text);
    assert.equal((await f.apiRequests()).at(-1).json.model, 'up-partner');
    // a key allowed every model is routed as before
    r = await post(gw, { model: 'chat', messages: msgs }, { authorization: `Bearer ${KEY_A}`, 'x-quality': 'high' });
    assert.equal(r.status, 200, r.text);
    assert.equal((await f.apiRequests()).at(-1).json.model, 'up-premium');
});
