// Errors clients see: bad requests rejected by the gateway itself, provider
// errors passed through without retry, and the 502/503/504 answer when every
// deployment failed (naming each one and why). Always the OpenAI error shape.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
    RawClient, assertErrorShape, closedPort, fakeProvider, harness, marker, rawRequest,
} from './lib.mjs';

const msgs = [{ role: 'user', content: 'hi' }];

describe('requests the gateway rejects itself', () => {
    const h = harness();
    let fake;
    let gw;
    before(async () => {
        fake = await h.fake({ behavior: 'chunks=3' });
        gw = await h.gateway({
            config: {
                server: { max_body_bytes: '64k', max_header_bytes: '16k' },
                providers: { 'prov-a': fakeProvider(fake) },
                models: { 'm-one': [{ provider: 'prov-a', model: 'up-one' }] },
            },
            // A client error may be logged; only crashes and sanitizer reports fail these.
            strictStderr: false,
        });
    });
    after(() => h.cleanup());

    async function post(body, headers = {}) {
        return gw.request('/v1/chat/completions', { method: 'POST', body, headers });
    }

    async function assertNotForwarded(mk) {
        assert.equal((await fake.requestsWith(mk)).length, 0, 'a rejected request reached the upstream');
    }

    test('bad JSON -> 400', async () => {
        const mk = marker('badjson');
        const r = await post(`{"model":"m-one","unbusy_test_id":"${mk}","messages":[{"role":"user",`);
        assert.equal(r.status, 400);
        assert.match(r.headers['content-type'] || '', /application\/json/);
        assert.ok(r.headers['x-request-id'], 'x-request-id missing on an error');
        assertErrorShape(assert, r.text);
        await assertNotForwarded(mk);
    });

    test('bad fields -> 400', async () => {
        const cases = {
            'missing model': { messages: msgs },
            'model not a string': { model: 42, messages: msgs },
            'stream not a boolean': { model: 'm-one', messages: msgs, stream: 'yes' },
            'body is an array': [{ model: 'm-one', messages: msgs }],
            'body is a string': 'just text',
        };
        for (const [name, body] of Object.entries(cases)) {
            const mk = marker('badfield');
            const payload = typeof body === 'string' ? JSON.stringify(body + mk)
                : JSON.stringify(Array.isArray(body) ? body : { ...body, unbusy_test_id: mk });
            const r = await post(payload);
            assert.equal(r.status, 400, `${name}: status ${r.status} ${r.text}`);
            assertErrorShape(assert, r.text, name);
            await assertNotForwarded(mk);
        }
    });

    test('a field the gateway reads spelt in another case or twice -> 400 naming it, never forwarded', async () => {
        // An upstream that matches keys case-insensitively (Go's encoding/json) or keeps the
        // last copy would serve another model than the one routed and allowed.
        const m = JSON.stringify(msgs);
        const cases = [
            [`{"model":"m-one","MODEL":"other","messages":${m}`, 'MODEL', 'unknown_parameter'],
            [`{"MODEL":"other","model":"m-one","messages":${m}`, 'MODEL', 'unknown_parameter'],
            [`{"model":"m-one","\\u004dODEL":"other","messages":${m}`, 'MODEL', 'unknown_parameter'],
            [`{"model":"m-one","mod\\u0065l":"other","messages":${m}`, 'model', 'duplicate_parameter'],
            [`{"model":"m-one","model":"other","messages":${m}`, 'model', 'duplicate_parameter'],
            [`{"model":"m-one","stream":false,"Stream":true,"messages":${m}`, 'Stream', 'unknown_parameter'],
            [`{"model":"m-one","\u017ftream":true,"messages":${m}`, '\u017ftream', 'unknown_parameter'],
            [`{"model":"m-one","max_tokens":5,"max_tokens":100000,"messages":${m}`, 'max_tokens', 'duplicate_parameter'],
            [`{"model":"m-one","Max_Completion_Tokens":100000,"messages":${m}`, 'Max_Completion_Tokens', 'unknown_parameter'],
            [`{"model":"m-one","n":1,"N":50,"messages":${m}`, 'N', 'unknown_parameter'],
            [`{"model":"m-one","messages":${m},"Messages":${m}`, 'Messages', 'unknown_parameter'],
            [`{"model":"m-one","stream":true,"stream_options":{"include_usage":false,"Include_Usage":true},"messages":${m}`,
                'stream_options.Include_Usage', 'unknown_parameter'],
        ];
        for (const [prefix, param, code] of cases) {
            const mk = marker('spelling');
            const r = await post(`${prefix},"unbusy_test_id":"${mk}"}`);
            assert.equal(r.status, 400, `${prefix}: status ${r.status} ${r.text}`);
            const e = assertErrorShape(assert, r.text, prefix);
            assert.equal(e.type, 'invalid_request_error');
            assert.equal(e.param, param, prefix);
            assert.equal(e.code, code, prefix);
            await assertNotForwarded(mk);
        }
        // the escaped spelling of the exact name is that name, to the gateway as to the upstream
        const mk = marker('escaped');
        const r = await post(`{"mod\\u0065l":"m-one","messages":${m},"unbusy_test_id":"${mk}"}`);
        assert.equal(r.status, 200, r.text);
        const [seen] = await fake.requestsWith(mk);
        assert.equal(seen.json.model, 'up-one');
    });

    test('what the endpoint requires is checked before any upstream: 400 naming the parameter', async () => {
        const cases = [
            ['/v1/chat/completions', { model: 'm-one' }, 'messages', 'missing_required_parameter',
                "Missing required parameter: 'messages'."],
            ['/v1/chat/completions', { model: 'm-one', messages: 'hi' }, 'messages', 'invalid_type',
                "Invalid type for 'messages': expected an array of objects, but got a string instead."],
            ['/v1/chat/completions', { model: 'm-one', messages: [] }, 'messages', 'empty_array',
                "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead."],
            ['/v1/chat/completions', { model: 'm-one', messages: [{ content: 'hi' }] }, 'messages[0].role',
                'missing_required_parameter', "Missing required parameter: 'messages[0].role'."],
            ['/v1/chat/completions', { model: 'm-one', messages: [...msgs, { role: 'robot', content: 'x' }] },
                'messages[1].role', 'invalid_value', /^Invalid value: 'robot'\. Supported values are: /],
            ['/v1/chat/completions', { model: 'm-one', messages: msgs, n: 0 }, 'n', 'integer_below_min_value', /'n'/],
            ['/v1/chat/completions', { model: 'm-one', messages: msgs, max_tokens: -1 }, 'max_tokens',
                'integer_below_min_value', /'max_tokens'/],
            ['/v1/chat/completions', { messages: msgs }, 'model', 'missing_required_parameter',
                "Missing required parameter: 'model'."],
            ['/v1/completions', { model: 'm-one' }, 'prompt', 'missing_required_parameter',
                "Missing required parameter: 'prompt'."],
            ['/v1/completions', { model: 'm-one', prompt: [] }, 'prompt', 'empty_array', /'prompt'/],
            ['/v1/embeddings', { model: 'm-one' }, 'input', 'missing_required_parameter',
                "Missing required parameter: 'input'."],
            ['/v1/embeddings', { model: 'm-one', input: '' }, 'input', 'empty_string', /'input'/],
            ['/v1/embeddings', { model: 'm-one', input: ['a', 7] }, 'input[1]', 'invalid_type', /'input\[1\]'/],
        ];
        for (const [path, body, param, code, message] of cases) {
            const mk = marker('required');
            const what = `${path} ${JSON.stringify(body)}`;
            const r = await gw.request(path, { method: 'POST', body: JSON.stringify({ ...body, unbusy_test_id: mk }) });
            assert.equal(r.status, 400, `${what}: status ${r.status} ${r.text}`);
            const e = assertErrorShape(assert, r.text, what);
            assert.equal(e.type, 'invalid_request_error', what);
            assert.equal(e.param, param, what);
            assert.equal(e.code, code, what);
            if (typeof message === 'string') assert.equal(e.message, message, what);
            else assert.match(e.message, message, what);
            await assertNotForwarded(mk);
        }
        // what the SDK makes of it
        await assert.rejects(gw.client().chat.completions.create({ model: 'm-one' }), (e) => {
            assert.equal(e.status, 400);
            assert.equal(e.constructor.name, 'BadRequestError');
            assert.equal(e.param, 'messages');
            return true;
        });
        // and what each endpoint accepts still goes through
        assert.equal((await gw.request('/v1/completions', { method: 'POST', body: JSON.stringify({ model: 'm-one', prompt: [1, 2] }) })).status, 200);
        assert.equal((await gw.request('/v1/embeddings', { method: 'POST', body: JSON.stringify({ model: 'm-one', input: ['a', 'b'] }) })).status, 200);
    });

    test('empty body -> 400', async () => {
        const r = await post('');
        assert.equal(r.status, 400);
        assertErrorShape(assert, r.text);
    });

    test('unknown model -> 404 naming the model (SDK: NotFoundError)', async () => {
        const sdk = gw.client();
        await assert.rejects(
            sdk.chat.completions.create({ model: 'no-such-model', messages: msgs }),
            (e) => {
                assert.equal(e.status, 404);
                assert.equal(e.constructor.name, 'NotFoundError');
                assert.match(e.error?.message || '', /no-such-model/);
                return true;
            });
        const r = await post({ model: 'no-such-model', messages: msgs, stream: true });
        assert.equal(r.status, 404);
        assertErrorShape(assert, r.text);
    });

    test('wrong method -> 405, unknown path -> 404', async () => {
        const r = await gw.request('/v1/chat/completions');
        assert.equal(r.status, 405);
        assertErrorShape(assert, r.text);
        assert.equal(r.headers.allow, 'POST', 'a 405 lists the methods the path has');
        const h = await gw.request('/healthz', { method: 'DELETE' });
        assert.equal(h.status, 405);
        assert.equal(h.headers.allow, 'GET, HEAD');
        const r2 = await gw.request('/v1/no-such-endpoint', { method: 'POST', body: { model: 'm-one' } });
        assert.equal(r2.status, 404);
        assertErrorShape(assert, r2.text);
    });

    test('413 when Content-Length is over max_body_bytes', async () => {
        const c = await RawClient.connect(gw.port);
        try {
            // Only the head: the gateway must not need the body to refuse it.
            await c.write(rawRequest('POST', '/v1/chat/completions', {
                headers: { 'Content-Type': 'application/json', 'Content-Length': String(200 * 1024) },
            }));
            const r = await c.readResponse();
            assert.equal(r.status, 413);
            assertErrorShape(assert, r.text);
        } finally {
            c.destroy();
        }
    });

    test('413 when a chunked body grows over max_body_bytes', async () => {
        const c = await RawClient.connect(gw.port);
        try {
            // 64 KiB in four chunks, then 1 KiB more whose chunk is left open: the gateway
            // must count the decoded body, and every byte sent is readable before it answers.
            let req = 'POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n' +
                'Transfer-Encoding: chunked\r\n\r\n';
            const piece = `{"model":"m-one","messages":[{"role":"user","content":"`;
            req += `${piece.length.toString(16)}\r\n${piece}\r\n`;
            let sent = piece.length;
            while (sent < 64 * 1024) {
                const n = Math.min(16 * 1024, 64 * 1024 - sent);
                req += `${n.toString(16)}\r\n${'y'.repeat(n)}\r\n`;
                sent += n;
            }
            req += `400\r\n${'z'.repeat(1024)}`;
            await c.write(req);
            const r = await c.readResponse({ timeout: 10000 });
            assert.equal(r.status, 413);
            assertErrorShape(assert, r.text);
        } finally {
            c.destroy();
        }
    });

    test('an SDK client sending a body far over the limit gets 413, not a broken connection', async () => {
        const sdk = gw.client();
        for (const size of [200 * 1024, 4 * 1024 * 1024]) {
            await assert.rejects(
                sdk.chat.completions.create({ model: 'm-one', messages: [{ role: 'user', content: 'x'.repeat(size) }] }),
                (e) => {
                    // A gateway that closes with the upload unread makes the client's write fail
                    // (EPIPE/ECONNRESET) before it can read the 413.
                    assert.equal(e.status, 413, `${size}-byte body: ${e.constructor.name}: ${e.message} ${e.cause?.code ?? ''}`);
                    return true;
                });
        }
    });

    test('a body just under max_body_bytes is accepted', async () => {
        const r = await post({ model: 'm-one', messages: [{ role: 'user', content: 'z'.repeat(60 * 1024) }] });
        assert.equal(r.status, 200, r.text.slice(0, 300));
    });

    test('431 when the request head is over max_header_bytes; the gateway keeps serving', async () => {
        const c = await RawClient.connect(gw.port);
        try {
            await c.write(rawRequest('GET', '/v1/models', { headers: { 'X-Big': 'a'.repeat(32 * 1024) } }))
                .catch(() => {});
            const r = await c.readResponse();
            assert.equal(r.status, 431);
        } finally {
            c.destroy();
        }
        assert.equal((await gw.request('/healthz')).status, 200);
    });
});

/* A fresh gateway with model m-two: prov-a (tier 0) then prov-b (tier 1), both on the same fake. */
async function twoDeployments(t, { timeouts } = {}) {
    const h = harness(t);
    const fake = await h.fake({ behavior: 'chunks=3' });
    const gw = await h.gateway({
        config: {
            providers: {
                'prov-a': fakeProvider(fake),
                'prov-b': { base_url: fake.baseURL, api_key: 'sk-test-b-secret' },
            },
            models: {
                'm-two': {
                    deployments: [
                        { provider: 'prov-a', model: 'up-a', tier: 0 },
                        { provider: 'prov-b', model: 'up-b', tier: 1 },
                    ],
                    timeouts: { connect: '1s', first_token: '3s', stall: '3s', total: '15s', ...timeouts },
                },
            },
        },
        strictStderr: false,
    });
    return { h, fake, gw };
}

// 400/413/422 are about the client's own request: every deployment would say the same.
// (401/403/404 mean this deployment is misconfigured: those fail over, see failover.test.mjs.)
for (const code of [400, 413, 422]) {
    test(`provider ${code} is returned to the client, not retried`, async (t) => {
        const { fake, gw } = await twoDeployments(t);
        const sdk = gw.client();
        const mk = marker(`p${code}`);
        await assert.rejects(
            sdk.chat.completions.create({ model: 'm-two', messages: msgs, fake: `status=${code}`, unbusy_test_id: mk }),
            (e) => {
                assert.equal(e.status, code, `status ${e.status}: ${e.message}`);
                assert.equal(typeof e.error?.message, 'string', 'no OpenAI error object');
                return true;
            });
        assert.equal((await fake.requestsWith(mk)).length, 1, `the ${code} was retried`);

        const mk2 = marker(`p${code}s`);
        const r = await gw.request('/v1/chat/completions', {
            method: 'POST', body: { model: 'm-two', messages: msgs, stream: true, fake: `status=${code}`, unbusy_test_id: mk2 },
        });
        assert.equal(r.status, code);
        assertErrorShape(assert, r.text);
        assert.ok(r.headers['x-request-id']);
        assert.equal((await fake.requestsWith(mk2)).length, 1, `the streamed ${code} was retried`);
    });
}

/* Each deployment must be named in the message, by provider or deployment model name. */
function assertNamesDeployments(message, deployments) {
    for (const [prov, model] of deployments) {
        assert.ok(message.includes(prov) || message.includes(model),
            `error message does not name deployment ${prov}/${model}: ${message}`);
    }
}

test('every deployment 503 -> 502/503/504 naming each deployment and why', async (t) => {
    const { fake, gw } = await twoDeployments(t);
    const mk = marker('alldown');
    const r = await gw.request('/v1/chat/completions', {
        method: 'POST', body: { model: 'm-two', messages: msgs, fake: 'status=503', unbusy_test_id: mk },
    });
    assert.ok([502, 503, 504].includes(r.status), `status ${r.status}`);
    const err = assertErrorShape(assert, r.text);
    assertNamesDeployments(err.message, [['prov-a', 'up-a'], ['prov-b', 'up-b']]);
    assert.match(err.message, /503/, 'the reason (503) is not in the message');
    // max_attempts defaults to one try per deployment and one more in a pool
    assert.equal((await fake.requestsWith(mk)).length, 3, 'each deployment tried once, then one more try');
    assert.ok(r.headers['x-request-id']);
    const e = await gw.logFor(r.headers['x-request-id']);
    assert.equal(e.status, r.status);
    assert.equal(e.attempts, 3);
});

test('every deployment down, streamed request: error status before any byte', async (t) => {
    const { gw } = await twoDeployments(t);
    const sdk = gw.client();
    await assert.rejects(
        sdk.chat.completions.create({ model: 'm-two', messages: msgs, stream: true, fake: 'status=500' }),
        (e) => {
            assert.ok([502, 503, 504].includes(e.status), `status ${e.status}: ${e.message}`);
            return true;
        });
});

test('mixed failures (500 and connect refused) are each named with their reason', async (t) => {
    const h = harness(t);
    const fake = await h.fake({ behavior: 'status=500' });
    const gw = await h.gateway({
        config: {
            providers: {
                'prov-a': fakeProvider(fake),
                'prov-dead': { base_url: `http://127.0.0.1:${await closedPort()}/v1`, api_key: 'sk-test-dead-secret' },
            },
            models: {
                'm-mixed': {
                    deployments: [
                        { provider: 'prov-a', model: 'up-a', tier: 0 },
                        { provider: 'prov-dead', model: 'up-dead', tier: 1 },
                    ],
                    timeouts: { connect: '1s', first_token: '3s', total: '10s' },
                },
            },
        },
        strictStderr: false,
    });
    const r = await gw.request('/v1/chat/completions', { method: 'POST', body: { model: 'm-mixed', messages: msgs } });
    assert.ok([502, 503, 504].includes(r.status), `status ${r.status}`);
    const err = assertErrorShape(assert, r.text);
    assertNamesDeployments(err.message, [['prov-a', 'up-a'], ['prov-dead', 'up-dead']]);
    assert.match(err.message, /500/);
    assert.match(err.message, /connect|refused/i);
});

test('an HTML 502 page from the upstream becomes a JSON error', async (t) => {
    const h = harness(t);
    const fake = await h.fake({ behavior: 'status=502,html' });
    const gw = await h.gateway({
        config: {
            providers: { 'prov-a': fakeProvider(fake) },
            models: { 'm-one': [{ provider: 'prov-a', model: 'up-one' }] },
        },
        strictStderr: false,
    });
    for (const stream of [false, true]) {
        const r = await gw.request('/v1/chat/completions', { method: 'POST', body: { model: 'm-one', messages: msgs, stream } });
        assert.ok([502, 503, 504].includes(r.status), `status ${r.status}`);
        assert.match(r.headers['content-type'] || '', /application\/json/);
        assert.doesNotMatch(r.text, /<html|<body|<!doctype/i, 'HTML leaked to the client');
        assertErrorShape(assert, r.text);
    }
});

test('every deployment times out -> 504', async (t) => {
    const { gw } = await twoDeployments(t, { timeouts: { first_token: '500ms' } });
    const t0 = Date.now();
    const r = await gw.request('/v1/chat/completions', {
        method: 'POST', body: { model: 'm-two', messages: msgs, stream: true, fake: 'hang' },
    });
    assert.equal(r.status, 504, r.text);
    const err = assertErrorShape(assert, r.text);
    assertNamesDeployments(err.message, [['prov-a', 'up-a'], ['prov-b', 'up-b']]);
    assert.ok(Date.now() - t0 < 8000, 'took far longer than two first-token deadlines');
});

test('every deployment refuses our key (401) -> an error naming each, not a 401', async (t) => {
    const { fake, gw } = await twoDeployments(t);
    const mk = marker('all401');
    const r = await gw.request('/v1/chat/completions', {
        method: 'POST', body: { model: 'm-two', messages: msgs, fake: 'status=401', unbusy_test_id: mk },
    });
    // The client's own key is fine; a 401 would tell it otherwise.
    assert.ok([502, 503, 504].includes(r.status), `status ${r.status}`);
    const err = assertErrorShape(assert, r.text);
    assertNamesDeployments(err.message, [['prov-a', 'up-a'], ['prov-b', 'up-b']]);
    assert.equal((await fake.requestsWith(mk)).length, 2);
});

test('every deployment rate-limited -> an error, never a hang', async (t) => {
    const { fake, gw } = await twoDeployments(t);
    const mk = marker('all429');
    const r = await gw.request('/v1/chat/completions', {
        method: 'POST', body: { model: 'm-two', messages: msgs, fake: 'status=429,retry_after=1', unbusy_test_id: mk },
    });
    assert.ok([429, 502, 503, 504].includes(r.status), `status ${r.status}`);
    assertErrorShape(assert, r.text);
    // both tried, then the one more try once a Retry-After has passed
    assert.equal((await fake.requestsWith(mk)).length, 3, 'both deployments should have been tried');
});

// A provider that quotes the credentials it was sent ("Incorrect API key provided: Bearer sk-...")
// must not make unbusy hand its own provider keys to the client, nor write them to the log.
test('a provider echoing our credentials: the client gets the class of failure, the log a redacted message', async (t) => {
    const h = harness(t);
    const fa = await h.fake({ behavior: 'status=401,echo_auth', name: 'fake-a' });
    const fb = await h.fake({ behavior: 'status=503,echo_auth', name: 'fake-b' });
    const KEY_A = 'sk-prov-a-0123456789abcdef';
    const KEY_B = 'gw-key-b-7777777777777777';
    const HDR = 'tenant-header-secret-42';
    const gw = await h.gateway({
        config: {
            providers: {
                'prov-a': fakeProvider(fa, { api_key: KEY_A }),
                'prov-b': fakeProvider(fb, { api_key: KEY_B, auth_header: 'x-api-key', auth_prefix: '', secret_headers: { 'X-Tenant-Key': HDR } }),
            },
            models: {
                m: [{ provider: 'prov-a', model: 'up-a' }, { provider: 'prov-b', model: 'up-b' }],
                pass: [{ provider: 'prov-a', model: 'up-a' }],
            },
        },
        strictStderr: false,
    });
    const leaks = (text) => [KEY_A, KEY_B, HDR, KEY_A.slice(0, 12), HDR.slice(0, 12)].filter((s) => text.includes(s));

    const r = await gw.request('/v1/chat/completions', { method: 'POST', body: { model: 'm', messages: msgs } });
    assert.ok([502, 503].includes(r.status), `status ${r.status}`);
    const err = assertErrorShape(assert, r.text);
    assert.deepEqual(leaks(r.text), [], `the client got a key: ${r.text}`);
    assert.ok(!/Incorrect API key/.test(err.message), `the provider's text reached the client: ${err.message}`);
    assert.match(err.message, /prov-a\/up-a: credentials refused \(HTTP 401\)/);
    assert.match(err.message, /prov-b\/up-b: server error \(HTTP 503\)/);
    // Both fakes really did echo the keys: the log has their words, redacted.
    const e = await gw.logFor(r.headers['x-request-id']);
    assert.match(e.error, /Incorrect API key provided: Bearer \[redacted\]/);
    assert.match(e.error, /Incorrect API key provided: \[redacted\]/);
    assert.deepEqual(leaks(e.error), [], `the access log has a key: ${e.error}`);

    // A 400 is passed through to the client: with the key taken out of it.
    const mk = marker('p400echo');
    const p = await gw.request('/v1/chat/completions', {
        method: 'POST', body: { model: 'pass', messages: msgs, fake: 'status=400,echo_auth', unbusy_test_id: mk },
    });
    assert.equal(p.status, 400);
    assert.deepEqual(leaks(p.text), [], `the passed-through 400 has a key: ${p.text}`);
    assert.match(assertErrorShape(assert, p.text).message, /Incorrect API key provided: Bearer \[redacted\]/);
    const pe = await gw.logFor(p.headers['x-request-id']);
    assert.deepEqual(leaks(pe.error || ''), []);

    assert.deepEqual(leaks(gw.proc.stdout + gw.proc.stderr), [], 'a key in the gateway output');
});
