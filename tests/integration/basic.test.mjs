// The normal path: models, health, streamed and assembled answers, completions,
// embeddings, what the upstream receives (body rewrite, auth, fixed headers),
// response headers and the access log.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import {
    assertErrorShape, drainStream, expectedContent, fakePromptTokens, fakeProvider, harness, marker,
    sseContent, sseData,
} from './lib.mjs';

const h = harness();
let fake;
let gw;
let sdk;

const RAW_TOKEN = 'eas-raw-token-0123456789';
const HDR_KEY = 'hdr-key-abcdef0123';
const CLIENT_KEY = 'sk-client-not-a-provider-key';

before(async () => {
    fake = await h.fake({ behavior: 'chunks=5' });
    gw = await h.gateway({
        config: {
            providers: {
                'prov-a': fakeProvider(fake),
                'prov-raw': { base_url: fake.baseURL, api_key: RAW_TOKEN, auth_prefix: '' },
                'prov-hdr': {
                    base_url: fake.baseURL, api_key: HDR_KEY, auth_header: 'api-key', auth_prefix: '',
                    headers: { 'X-Team': 'blue team', 'X-Tenant-Id': '42' },
                },
                'prov-nokey': { base_url: fake.baseURL },
            },
            models: {
                'm-basic': [{ provider: 'prov-a', model: 'up-model-a' }],
                'm-raw': [{ provider: 'prov-raw', model: 'up-raw' }],
                'm-hdr': [{ provider: 'prov-hdr', model: 'up-hdr' }],
                'm-nokey': [{ provider: 'prov-nokey', model: 'up-nokey' }],
                'm-map': {
                    deployments: [{ provider: 'prov-a', model: 'up-map' }],
                    timeouts: { connect: '500ms', first_token: '5s', stall: '5s', total: '20s' },
                    max_attempts: 1,
                },
            },
        },
    });
    sdk = gw.client();
});
after(() => h.cleanup());

const msgs = [{ role: 'user', content: 'Say hello.' }];

async function upstreamRequest(mk) {
    const list = await fake.requestsWith(mk);
    assert.equal(list.length, 1, `the fake should have seen exactly one request carrying ${mk}, saw ${list.length}`);
    return list[0];
}

test('GET /healthz answers 200 with a request id', async () => {
    const r = await gw.request('/healthz');
    assert.equal(r.status, 200);
    assert.ok(r.headers['x-request-id'], 'x-request-id missing on /healthz');
});

test('GET /v1/models lists the configured model names', async () => {
    const page = await sdk.models.list();
    const ids = page.data.map((m) => m.id).sort();
    assert.deepEqual(ids, ['m-basic', 'm-hdr', 'm-map', 'm-nokey', 'm-raw']);
    for (const m of page.data) assert.equal(m.object, 'model');
    const raw = await gw.request('/v1/models');
    assert.equal(raw.status, 200);
    assert.match(raw.headers['content-type'] || '', /application\/json/);
    assert.equal(raw.json().object, 'list');
    assert.ok(raw.headers['x-request-id']);
});

test('streamed chat: content, headers and what the upstream got', async () => {
    const mk = marker('stream');
    const { data: stream, response } = await sdk.chat.completions
        .create({ model: 'm-basic', messages: msgs, stream: true, unbusy_test_id: mk })
        .withResponse();
    const r = await drainStream(stream);
    assert.equal(r.error, null, `stream failed: ${r.error}`);
    assert.equal(r.content, expectedContent(5));
    assert.equal(r.usage, null, 'usage reached a client that did not ask for include_usage');
    for (const c of r.chunks) assert.equal(c.object, 'chat.completion.chunk');
    assert.ok(response.headers.get('x-request-id'));
    assert.equal(response.headers.get('x-unbusy-provider'), 'prov-a');
    assert.equal(response.headers.get('x-unbusy-attempts'), '1');
    assert.match(response.headers.get('content-type') || '', /text\/event-stream/);

    const up = await upstreamRequest(mk);
    assert.equal(up.method, 'POST');
    assert.match(up.path, /^\/v1\/chat\/completions(\?|$)/);
    assert.equal(up.json.model, 'up-model-a', 'model not rewritten to the deployment model');
    assert.equal(up.json.stream, true);
    assert.equal(up.json.stream_options?.include_usage, true, 'upstream was not asked for usage');
    assert.deepEqual(up.json.messages, msgs);
    assert.equal(up.headers.host, `127.0.0.1:${fake.port}`);
});

test('streamed chat with include_usage: the usage chunk reaches the client', async () => {
    const mk = marker('usage');
    const { data: stream, response } = await sdk.chat.completions.create({
        model: 'm-basic', messages: msgs, stream: true, stream_options: { include_usage: true },
        unbusy_test_id: mk,
    }).withResponse();
    const r = await drainStream(stream);
    assert.equal(r.error, null, `stream failed: ${r.error}`);
    assert.equal(r.content, expectedContent(5));
    assert.ok(r.usage, 'no usage chunk although include_usage was asked');
    const up = await upstreamRequest(mk);
    const promptTokens = fakePromptTokens(Buffer.byteLength(up.body));
    assert.equal(r.usage.completion_tokens, 5);
    assert.equal(r.usage.prompt_tokens, promptTokens);
    const last = r.chunks[r.chunks.length - 1];
    assert.ok(last.usage, 'the usage chunk is not the last one');

    // ... and the access log carries the same numbers.
    const id = response.headers.get('x-request-id');
    const e = await gw.logFor(id);
    assert.equal(e.model, 'm-basic');
    assert.equal(e.provider, 'prov-a');
    assert.equal(e.deployment_model, 'up-model-a');
    assert.equal(e.status, 200);
    assert.equal(typeof e.outcome, 'string');
    assert.ok(e.outcome.length > 0);
    assert.equal(e.attempts, 1);
    assert.ok(typeof e.ts === 'string' || typeof e.ts === 'number', 'ts missing');
    assert.equal(typeof e.ttft_ms, 'number');
    assert.equal(typeof e.total_ms, 'number');
    assert.ok(e.ttft_ms >= 0 && e.total_ms >= e.ttft_ms, `ttft_ms ${e.ttft_ms} total_ms ${e.total_ms}`);
    assert.equal(e.prompt_tokens, promptTokens);
    assert.equal(e.completion_tokens, 5);
    assert.equal(typeof e.bytes_out, 'number');
    assert.ok(e.bytes_out > expectedContent(5).length, `bytes_out ${e.bytes_out} too small`);
});

test('include_usage: false from the client: no usage chunk, but usage is still asked upstream', async () => {
    const mk = marker('nousage');
    const r = await drainStream(await sdk.chat.completions.create({
        model: 'm-basic', messages: msgs, stream: true, stream_options: { include_usage: false }, unbusy_test_id: mk,
    }));
    assert.equal(r.error, null);
    assert.equal(r.usage, null, 'usage reached a client that set include_usage: false');
    const up = await upstreamRequest(mk);
    assert.equal(up.json.stream_options?.include_usage, true);
});

test('raw stream: SSE framing, chunk JSON, data: [DONE] at the end', async () => {
    const r = await gw.request('/v1/chat/completions', {
        method: 'POST', headers: { Authorization: `Bearer ${CLIENT_KEY}` },
        body: { model: 'm-basic', messages: msgs, stream: true, fake: 'chunks=7' },
    });
    assert.equal(r.status, 200);
    assert.match(r.headers['content-type'] || '', /text\/event-stream/);
    const data = sseData(r.text);
    assert.equal(data[data.length - 1], '[DONE]', 'stream does not end with data: [DONE]');
    assert.equal(data.filter((d) => d === '[DONE]').length, 1);
    for (const d of data.slice(0, -1)) {
        const j = JSON.parse(d);
        assert.ok(!j.error, `error event in a good stream: ${d}`);
        assert.ok(!j.usage, 'usage chunk without include_usage');
    }
    assert.equal(sseContent(r.text), expectedContent(7));
    assert.ok(r.text.endsWith('data: [DONE]\n\n'), 'bytes after [DONE] or bad framing');
});

test('non-stream chat: the gateway streams upstream and assembles the answer', async () => {
    const mk = marker('nonstream');
    const { data, response } = await sdk.chat.completions
        .create({ model: 'm-basic', messages: msgs, unbusy_test_id: mk }).withResponse();
    assert.equal(data.object, 'chat.completion');
    assert.equal(data.choices.length, 1);
    assert.equal(data.choices[0].message.role, 'assistant');
    assert.equal(data.choices[0].message.content, expectedContent(5));
    assert.equal(data.choices[0].finish_reason, 'stop');
    assert.match(response.headers.get('content-type') || '', /application\/json/);
    assert.equal(response.headers.get('x-unbusy-provider'), 'prov-a');
    assert.equal(response.headers.get('x-unbusy-attempts'), '1');
    const up = await upstreamRequest(mk);
    assert.equal(up.json.stream, true, 'upstream was not asked for a stream');
    assert.equal(up.json.stream_options?.include_usage, true);
    assert.equal(data.usage?.completion_tokens, 5);
    assert.equal(data.usage?.prompt_tokens, fakePromptTokens(Buffer.byteLength(up.body)));
});

test('non-stream chat: a long answer is assembled completely', async () => {
    const data = await sdk.chat.completions.create({ model: 'm-basic', messages: msgs, fake: 'chunks=3000' });
    assert.equal(data.choices[0].message.content, expectedContent(3000));
    assert.equal(data.usage?.completion_tokens, 3000);
});

test('reasoning deltas pass through and do not mix into content', async () => {
    const stream = await sdk.chat.completions.create({
        model: 'm-basic', messages: msgs, stream: true, fake: 'reasoning=3,chunks=7',
    });
    const r = await drainStream(stream);
    assert.equal(r.error, null, `stream failed: ${r.error}`);
    assert.equal(r.content, expectedContent(4));
    const reasoning = r.chunks.flatMap((c) => c.choices || [])
        .map((ch) => Object.entries(ch.delta || {}).filter(([k, v]) => /reasoning/.test(k) && typeof v === 'string' && v))
        .filter((e) => e.length > 0);
    assert.ok(reasoning.length >= 1, 'no reasoning delta reached the client');

    // reasoning=3,chunks=7: three reasoning chunks, then four content chunks
    const whole = await sdk.chat.completions.create({ model: 'm-basic', messages: msgs, fake: 'reasoning=3,chunks=7' });
    assert.equal(whole.choices[0].message.content, expectedContent(4));
});

test('completions, streamed and not', async () => {
    const mk = marker('compl');
    const stream = await sdk.completions.create({ model: 'm-basic', prompt: 'Once upon', stream: true, unbusy_test_id: mk });
    const r = await drainStream(stream);
    assert.equal(r.error, null, `stream failed: ${r.error}`);
    assert.equal(r.content, expectedContent(5));
    const up = await upstreamRequest(mk);
    assert.match(up.path, /^\/v1\/completions(\?|$)/);
    assert.equal(up.json.model, 'up-model-a');
    assert.equal(up.json.prompt, 'Once upon');
    assert.equal(up.json.stream, true);

    const mk2 = marker('compl-ns');
    const whole = await sdk.completions.create({ model: 'm-basic', prompt: 'Once upon', unbusy_test_id: mk2 });
    assert.equal(whole.choices[0].text, expectedContent(5));
    const up2 = await upstreamRequest(mk2);
    assert.match(up2.path, /^\/v1\/completions(\?|$)/);
    assert.equal(up2.json.stream, true, 'upstream was not asked for a stream');
    assert.equal(up2.json.stream_options?.include_usage, true);
});

test('embeddings go to /embeddings with the model rewritten and nothing added', async () => {
    const mk = marker('emb');
    const { data, response } = await sdk.embeddings.create({
        model: 'm-basic', input: ['hello', 'world'], encoding_format: 'float', unbusy_test_id: mk,
    }).withResponse();
    assert.ok(Array.isArray(data.data) && data.data.length >= 1, 'no embeddings');
    const v = data.data[0].embedding;
    assert.ok(Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === 'number'), 'embedding is not a number array');
    assert.equal(response.headers.get('x-unbusy-provider'), 'prov-a');
    const up = await upstreamRequest(mk);
    assert.match(up.path, /^\/v1\/embeddings(\?|$)/);
    assert.equal(up.json.model, 'up-model-a');
    assert.deepEqual(up.json.input, ['hello', 'world']);
    assert.equal(up.json.encoding_format, 'float');
    assert.ok(!('stream' in up.json), 'stream added to an embeddings request');
    assert.ok(!('stream_options' in up.json), 'stream_options added to an embeddings request');
});

test('unknown fields pass through untouched; only model is rewritten', async () => {
    const mk = marker('passthru');
    const extra = {
        temperature: 0.25,
        top_p: 0.9,
        seed: 7,
        max_tokens: 64,
        logit_bias: { 50256: -100 },
        tools: [{ type: 'function', function: { name: 'get_w', parameters: { type: 'object', properties: { city: { type: 'string' } } } } }],
        vendor_options: { nested: [1, 2.5, { deep: 'value with "quotes" and \\ and ünïcödé' }], flag: false, nothing: null },
        unbusy_test_id: mk,
    };
    const messages = [
        { role: 'system', content: 'You are terse.' },
        { role: 'user', content: 'Escapes: \n\t "q" \u00e9 \ud83d\ude00' },
    ];
    await sdk.chat.completions.create({ model: 'm-basic', messages, stream: true, ...extra }).then(drainStream);
    const up = await upstreamRequest(mk);
    assert.equal(up.json.model, 'up-model-a');
    assert.deepEqual(up.json.messages, messages);
    for (const [k, v] of Object.entries(extra)) assert.deepEqual(up.json[k], v, `field ${k} changed on the way`);
});

test('auth: Bearer by default; the client key is not forwarded', async () => {
    const mk = marker('auth');
    await sdk.chat.completions.create({ model: 'm-basic', messages: msgs, unbusy_test_id: mk });
    const up = await upstreamRequest(mk);
    assert.equal(up.headers.authorization, `Bearer sk-test-${fake.port}-secret`);
    for (const [k, v] of Object.entries(up.headers)) {
        assert.ok(!String(v).includes(CLIENT_KEY), `client key forwarded in header ${k}`);
    }
});

test('auth: auth_prefix "" sends the raw token (PAI-EAS style)', async () => {
    const mk = marker('raw');
    await sdk.chat.completions.create({ model: 'm-raw', messages: msgs, unbusy_test_id: mk });
    const up = await upstreamRequest(mk);
    assert.equal(up.headers.authorization, RAW_TOKEN);
    assert.equal(up.json.model, 'up-raw');
});

test('auth: custom auth_header and fixed provider headers', async () => {
    const mk = marker('hdr');
    await sdk.chat.completions.create({ model: 'm-hdr', messages: msgs, unbusy_test_id: mk });
    const up = await upstreamRequest(mk);
    assert.equal(up.headers['api-key'], HDR_KEY);
    assert.ok(!('authorization' in up.headers), `authorization sent besides api-key: ${up.headers.authorization}`);
    assert.equal(up.headers['x-team'], 'blue team');
    assert.equal(up.headers['x-tenant-id'], '42');
});

test('auth: a provider without api_key gets no Authorization header', async () => {
    const mk = marker('nokey');
    await sdk.chat.completions.create({ model: 'm-nokey', messages: msgs, unbusy_test_id: mk });
    const up = await upstreamRequest(mk);
    assert.ok(!('authorization' in up.headers), `unexpected authorization: ${up.headers.authorization}`);
});

test('a model given as a map with deployments and timeouts works', async () => {
    const mk = marker('map');
    const r = await drainStream(await sdk.chat.completions.create({ model: 'm-map', messages: msgs, stream: true, unbusy_test_id: mk }));
    assert.equal(r.error, null);
    assert.equal(r.content, expectedContent(5));
    assert.equal((await upstreamRequest(mk)).json.model, 'up-map');
});

test('request ids are unique and present on every kind of response', async () => {
    const ids = new Set();
    for (let i = 0; i < 3; i++) {
        const { response } = await sdk.chat.completions.create({ model: 'm-basic', messages: msgs }).withResponse();
        ids.add(response.headers.get('x-request-id'));
    }
    const notFound = await gw.request('/v1/chat/completions', {
        method: 'POST', body: { model: 'no-such-model', messages: msgs },
    });
    assert.equal(notFound.status, 404);
    assertErrorShape(assert, notFound.text);
    ids.add(notFound.headers['x-request-id']);
    ids.add((await gw.request('/v1/models')).headers['x-request-id']);
    ids.delete(undefined);
    ids.delete(null);
    assert.equal(ids.size, 5, 'request ids missing or repeated');
});

test('access log: one JSON object per line, one line per proxied request', async () => {
    const { response } = await sdk.chat.completions.create({ model: 'm-raw', messages: msgs }).withResponse();
    const id = response.headers.get('x-request-id');
    const e = await gw.logFor(id);
    assert.equal(e.model, 'm-raw');
    assert.equal(e.provider, 'prov-raw');
    assert.equal(e.deployment_model, 'up-raw');
    assert.equal(e.status, 200);
    const log = gw.accessLog();
    assert.deepEqual(log.bad, [], 'stdout lines that are not JSON objects');
    assert.equal(log.filter((x) => x.request_id === id).length, 1, 'the request was logged more than once');
    for (const x of log) {
        for (const k of ['ts', 'request_id', 'status']) assert.ok(k in x, `log line without ${k}: ${JSON.stringify(x)}`);
    }
});
