// AWS Bedrock (Converse, ConverseStream) and SageMaker through the official SDK, against
// fakes that recompute every SigV4 signature they receive (tests/fakes/aws.mjs): text,
// tool calls and usage, streamed and whole; SageMaker's PayloadParts cutting SSE lines;
// failover from a throttled Bedrock deployment; a bad CRC before and after the first byte;
// exceptions in the stream; the 400 of a request Converse cannot say; keys from the
// container credentials endpoint.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { assertErrorShape, drainStream, fakeProvider, harness, waitUntil } from './lib.mjs';
import { startAwsFake, startCredsFake } from '../fakes/aws.mjs';

const KEY_ID = 'AKIDUNBUSYTEST';
const SECRET = 'bedrock-secret-access-key-0123456789';
const TOKEN = 'session-token-for-the-test-0123456789';
const MODEL_ID = 'anthropic.claude-3-haiku-20240307-v1:0';

const awsProvider = (fake, wire, extra = {}) => ({
    base_url: fake.url,
    wire,
    aws: { region: 'us-east-1', access_key_id: KEY_ID, secret_access_key: SECRET, session_token: TOKEN },
    ...extra,
});

async function setup(t, { providers, models, env = {}, keys } = {}) {
    const h = harness(t);
    const fake = await startAwsFake({ keys: keys ?? { [KEY_ID]: { secret: SECRET, token: TOKEN } } });
    t.after(() => fake.close());
    const cfg = typeof providers === 'function' ? await providers(fake, h) : providers;
    const gw = await h.gateway({ config: { providers: cfg, models }, env, strictStderr: false });
    return { h, fake, gw, sdk: gw.client() };
}

const bedrockOnly = (extra = {}) => ({
    providers: (fake) => ({ bedrock: awsProvider(fake, 'bedrock-converse', extra) }),
    models: { claude: [{ provider: 'bedrock', model: MODEL_ID }] },
});

const messages = [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Say hello' }];

test('bedrock: a stream with content and usage, signed with the session token', async (t) => {
    const { fake, sdk } = await setup(t, bedrockOnly());
    const stream = await sdk.chat.completions.create({
        model: 'claude', messages, stream: true, stream_options: { include_usage: true }, max_tokens: 64,
    });
    const { content, usage, error, chunks } = await drainStream(stream);
    assert.equal(error, null);
    assert.equal(content, 'Hello from Bedrock');
    assert.equal(chunks.filter((c) => c.choices[0]?.finish_reason === 'stop').length, 1);
    assert.equal(usage.prompt_tokens, 16);
    assert.equal(usage.completion_tokens, 7);
    assert.equal(usage.prompt_tokens_details.cached_tokens, 5);
    const r = fake.requests.find((x) => x.path.includes('/converse-stream'));
    assert.ok(r, 'ConverseStream was called');
    assert.equal(r.path, '/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse-stream');
    assert.ok(r.verified);
    assert.equal(r.headers['x-amz-security-token'], TOKEN);
    assert.deepEqual(r.json.system, [{ text: 'Be brief.' }]);
    assert.deepEqual(r.json.messages, [{ role: 'user', content: [{ text: 'Say hello' }] }]);
    assert.equal(r.json.inferenceConfig.maxTokens, 64);
    assert.deepEqual(fake.refused, []);
});

test('bedrock: frames split across reads make the same stream', async (t) => {
    const { fake, sdk } = await setup(t, bedrockOnly());
    fake.next('split');
    const { content, error } = await drainStream(await sdk.chat.completions.create({ model: 'claude', messages, stream: true }));
    assert.equal(error, null);
    assert.equal(content, 'Hello from Bedrock');
});

test('bedrock: tool calls streamed, and the tool result sent back as toolResult', async (t) => {
    const { fake, sdk } = await setup(t, bedrockOnly());
    fake.next('tools');
    const tools = [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } } }];
    const stream = await sdk.chat.completions.create({ model: 'claude', messages, tools, stream: true });
    const calls = {};
    let finish = null;
    const { content, error } = await drainStream(stream, {
        onChunk: (c) => {
            for (const tc of c.choices[0]?.delta?.tool_calls ?? []) {
                calls[tc.index] ??= { id: '', name: '', args: '' };
                if (tc.id) calls[tc.index].id = tc.id;
                if (tc.function?.name) calls[tc.index].name = tc.function.name;
                calls[tc.index].args += tc.function?.arguments ?? '';
            }
            finish = c.choices[0]?.finish_reason ?? finish;
        },
    });
    assert.equal(error, null);
    assert.equal(content, 'Checking.');
    assert.deepEqual(calls, { 0: { id: 'tooluse_1', name: 'get_weather', args: '{"city":"Paris"}' } });
    assert.equal(finish, 'tool_calls');
    assert.deepEqual(fake.requests.at(-1).json.toolConfig.tools[0].toolSpec.name, 'get_weather');
    // the next turn: the assistant's call and the tool's answer
    await sdk.chat.completions.create({
        model: 'claude', tools,
        messages: [...messages,
            { role: 'assistant', content: null, tool_calls: [{ id: 'tooluse_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }] },
            { role: 'tool', tool_call_id: 'tooluse_1', content: 'sunny' }],
    });
    const turns = fake.requests.at(-1).json.messages;
    assert.deepEqual(turns.at(-2), { role: 'assistant', content: [{ toolUse: { toolUseId: 'tooluse_1', name: 'get_weather', input: { city: 'Paris' } } }] });
    assert.deepEqual(turns.at(-1), { role: 'user', content: [{ toolResult: { content: [{ text: 'sunny' }], toolUseId: 'tooluse_1' } }] });
});

test('bedrock: a whole answer from Converse (stream_upstream off) and assembled from ConverseStream', async (t) => {
    const { fake, sdk } = await setup(t, {
        providers: (f) => ({
            whole: awsProvider(f, 'bedrock-converse', { stream_upstream: false }),
            streamed: awsProvider(f, 'bedrock-converse'),
        }),
        models: { whole: [{ provider: 'whole', model: MODEL_ID }], streamed: [{ provider: 'streamed', model: MODEL_ID }] },
    });
    fake.next('tools');
    const a = await sdk.chat.completions.create({ model: 'whole', messages });
    assert.ok(fake.requests.at(-1).path.endsWith('/converse'));
    assert.equal(a.choices[0].message.content, 'Checking.');
    assert.deepEqual(a.choices[0].message.tool_calls, [{ id: 'tooluse_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }]);
    assert.equal(a.choices[0].finish_reason, 'tool_calls');
    assert.equal(a.usage.prompt_tokens, 16);
    assert.equal(a.usage.completion_tokens, 7);
    const b = await sdk.chat.completions.create({ model: 'streamed', messages });
    assert.ok(fake.requests.at(-1).path.endsWith('/converse-stream'));
    assert.equal(b.choices[0].message.content, 'Hello from Bedrock');
    assert.equal(b.choices[0].finish_reason, 'stop');
    assert.equal(b.usage.completion_tokens, 7);
});

for (const [behavior, what] of [['throttle', 'a throttled'], ['timeout', 'a timed-out (ModelTimeoutException)'],
    ['badcrc-first', 'a bad CRC before the first byte on']]) {
    test(`bedrock: ${what} deployment fails over to an OpenAI-compatible one`, async (t) => {
        const { fake, sdk } = await setup(t, {
            providers: async (f, h) => {
                const other = await h.fake({ behavior: 'chunks=3' });
                return { bedrock: awsProvider(f, 'bedrock-converse'), openai: fakeProvider(other) };
            },
            models: { m: [{ provider: 'bedrock', model: MODEL_ID, tier: 0 }, { provider: 'openai', model: 'up', tier: 1 }] },
        });
        fake.next(behavior);
        const { content, error } = await drainStream(await sdk.chat.completions.create({ model: 'm', messages, stream: true }));
        assert.equal(error, null);
        assert.ok(content.length > 0);
        assert.equal(fake.queue.length, 0, 'the Bedrock deployment was tried first');
        assert.equal(fake.requests.filter((r) => r.path.includes('/converse')).length, 1);
    });
}

test('bedrock: a bad CRC or an exception after the first byte ends the stream with an error', async (t) => {
    const { fake, sdk } = await setup(t, bedrockOnly());
    fake.next('badcrc-after');
    let r = await drainStream(await sdk.chat.completions.create({ model: 'claude', messages, stream: true }));
    assert.ok(r.error, 'the SDK saw the error event');
    assert.equal(r.content, 'Hello from');
    fake.next('exception-mid');
    r = await drainStream(await sdk.chat.completions.create({ model: 'claude', messages, stream: true }));
    assert.ok(r.error);
    assert.match(String(r.error.message), /Too many tokens/);
    assert.equal(r.content, 'Hello from');
});

test('bedrock: ValidationException is the client\'s 400; a request Converse cannot say is a 400', async (t) => {
    const { fake, gw } = await setup(t, bedrockOnly());
    fake.next('validation');
    let res = await gw.request('/v1/chat/completions', {
        method: 'POST', headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'claude', messages }),
    });
    assert.equal(res.status, 400);
    assert.match(assertErrorShape(assert, res.text).message, /model identifier is invalid/);
    const before = fake.requests.length;
    res = await gw.request('/v1/chat/completions', {
        method: 'POST', headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'claude', messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'https://example.com/cat.png' } }] }] }),
    });
    assert.equal(res.status, 400);
    assert.match(assertErrorShape(assert, res.text).message, /data: URLs/);
    assert.equal(fake.requests.length, before, 'nothing was sent');
});

test('sagemaker: a stream from PayloadParts cutting SSE lines anywhere, and a whole answer', async (t) => {
    const { fake, sdk } = await setup(t, {
        providers: (f) => ({ sm: awsProvider(f, 'sagemaker'), smwhole: awsProvider(f, 'sagemaker', { stream_upstream: false }) }),
        models: { llama: [{ provider: 'sm', model: 'my-vllm-endpoint/meta-llama' }], whole: [{ provider: 'smwhole', model: 'my-vllm-endpoint' }] },
    });
    const { content, usage, error } = await drainStream(await sdk.chat.completions.create({
        model: 'llama', messages, stream: true, stream_options: { include_usage: true },
    }));
    assert.equal(error, null);
    assert.equal(content, 'Hello from SageMaker ✓');
    assert.equal(usage.completion_tokens, 4);
    const r = fake.requests.at(-1);
    assert.equal(r.path, '/endpoints/my-vllm-endpoint/invocations-response-stream');
    assert.ok(r.verified);
    assert.equal(r.json.model, 'meta-llama');
    assert.equal(r.json.stream, true);
    const a = await sdk.chat.completions.create({ model: 'whole', messages });
    assert.equal(a.choices[0].message.content, 'Hello from SageMaker');
    assert.equal(fake.requests.at(-1).path, '/endpoints/my-vllm-endpoint/invocations');
    assert.deepEqual(fake.refused, []);
});

test('credentials from the container endpoint, refreshed in the background', async (t) => {
    const creds = { AccessKeyId: 'ASIACONTAINERKEY', SecretAccessKey: 'container-secret-0123456789', Token: 'container-token-0123456789',
        Expiration: new Date(Date.now() + 3600e3).toISOString().replace(/\.\d+Z$/, 'Z') };
    const endpoint = await startCredsFake({ token: 'auth-token-0123456789', creds });
    t.after(() => endpoint.close());
    const { fake, sdk } = await setup(t, {
        keys: { ASIACONTAINERKEY: { secret: creds.SecretAccessKey, token: creds.Token } },
        providers: (f) => ({ bedrock: { base_url: f.url, wire: 'bedrock-converse', aws: { region: 'us-east-1', credentials: 'container' } } }),
        models: { claude: [{ provider: 'bedrock', model: MODEL_ID }] },
        env: { AWS_CONTAINER_CREDENTIALS_FULL_URI: endpoint.url, AWS_CONTAINER_AUTHORIZATION_TOKEN: 'auth-token-0123456789' },
    });
    await waitUntil(() => endpoint.hits >= 1, { what: 'the credentials endpoint fetched' });
    // the keys are in place once the fetch has been read: poll with requests
    let answer = null;
    await waitUntil(async () => {
        answer = await sdk.chat.completions.create({ model: 'claude', messages }).catch(() => null);
        return answer !== null;
    }, { what: 'a request signed with the fetched keys', interval: 50 });
    assert.equal(answer.choices[0].message.content, 'Hello from Bedrock');
    const r = fake.requests.at(-1);
    assert.ok(r.verified);
    assert.match(r.headers.authorization, /Credential=ASIACONTAINERKEY\//);
    assert.equal(r.headers['x-amz-security-token'], creds.Token);
    assert.equal(endpoint.refused, 0);
});
