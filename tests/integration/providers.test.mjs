// Provider presets (type:): Azure OpenAI's deployment paths, api-key and api-version
// (streamed, assembled, failing over to another provider), PAI-EAS's raw token, vLLM's
// "reasoning" relayed as "reasoning_content", DeepSeek's history without reasoning_content,
// the max_tokens cap, a preset's keys overridden, and models: auto following a provider's
// model list. The fake (tests/fakes/providers.mjs) refuses what the real provider refuses.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { harness, drainStream, runGateway, writeTemp, toYAML, waitUntil, assertErrorShape, SLOW } from './lib.mjs';
import { startProviderFake, PROVIDER_FAKE_ANSWER } from '../fakes/providers.mjs';

const msgs = [{ role: 'user', content: 'hello' }];

async function fake(t, opts) {
    const f = await startProviderFake(opts);
    t.after(() => f.stop());
    return f;
}

const AZ = { key: 'az-key-0123456789', apiVersion: '2024-10-21', deployments: ['gpt4o-prod'] };

test('azure-openai: deployment path, api-key and api-version; stream and assembled answer', async (t) => {
    const h = harness(t);
    const az = await fake(t, { azure: AZ });
    const gw = await h.gateway({
        config: {
            providers: { az: { type: 'azure-openai', base_url: az.url, api_key: AZ.key, probe: false } },
            models: { 'gpt-4o': [{ provider: 'az', model: 'gpt4o-prod' }] },
        },
    });
    const client = gw.client();
    const r = await drainStream(await client.chat.completions.create({
        model: 'gpt-4o', messages: msgs, stream: true, stream_options: { include_usage: true },
    }));
    assert.equal(r.error, null, String(r.error));
    assert.equal(r.content, PROVIDER_FAKE_ANSWER);
    assert.equal(r.usage?.total_tokens, 11);
    const answer = await client.chat.completions.create({ model: 'gpt-4o', messages: msgs });
    assert.equal(answer.choices[0].message.content, PROVIDER_FAKE_ANSWER);
    assert.equal(answer.choices[0].finish_reason, 'stop');
    // Azure's first chunk has no choices and empty names: the answer keeps the real ones
    assert.equal(answer.id, 'chatcmpl-prov');
    const seen = az.apiRequests();
    assert.equal(seen.length, 2);
    for (const q of seen) {
        assert.equal(q.url, '/openai/deployments/gpt4o-prod/chat/completions?api-version=2024-10-21');
        assert.equal(q.headers['api-key'], AZ.key);
        assert.equal(q.headers.authorization, undefined);
    }
});

test('azure-openai: api_version and Entra ID bearer token overridden; a wrong key is a 401 and not retried there', async (t) => {
    const h = harness(t);
    const az = await fake(t, { azure: { ...AZ, apiVersion: '2025-04-01-preview' } });
    const gw = await h.gateway({
        config: {
            providers: {
                entra: { type: 'azure-openai', base_url: az.url, api_key: AZ.key, api_version: '2025-04-01-preview',
                    auth_header: 'Authorization', auth_prefix: 'Bearer ', probe: false },
                badkey: { type: 'azure-openai', base_url: az.url, api_key: 'wrong', api_version: '2025-04-01-preview', probe: false },
            },
            models: {
                good: [{ provider: 'entra', model: 'gpt4o-prod' }],
                bad: [{ provider: 'badkey', model: 'gpt4o-prod' }],
            },
        },
        strictStderr: false,
    });
    const answer = await gw.client().chat.completions.create({ model: 'good', messages: msgs });
    assert.equal(answer.choices[0].message.content, PROVIDER_FAKE_ANSWER);
    const q = az.apiRequests()[0];
    assert.equal(q.headers.authorization, `Bearer ${AZ.key}`);
    assert.equal(q.headers['api-key'], undefined);
    assert.match(q.url, /\?api-version=2025-04-01-preview$/);
    await assert.rejects(gw.client().chat.completions.create({ model: 'bad', messages: msgs }), (e) => {
        assert.ok(e.status >= 500, `status ${e.status}`);
        return true;
    });
});

test('azure-openai fails over to an OpenAI-compatible provider: unknown deployment (404) and wrong api-version', async (t) => {
    const h = harness(t);
    const az = await fake(t, { azure: AZ });
    const other = await fake(t, {});
    const gw = await h.gateway({
        config: {
            providers: {
                az: { type: 'azure-openai', base_url: az.url, api_key: AZ.key, probe: false },
                azold: { type: 'azure-openai', base_url: az.url, api_key: AZ.key, api_version: '2023-05-15', probe: false },
                compat: { base_url: other.baseURL, api_key: 'sk-other', probe: false },
            },
            models: {
                m: [{ provider: 'az', model: 'no-such-deployment', tier: 0 }, { provider: 'compat', model: 'backup', tier: 1 }],
                v: [{ provider: 'azold', model: 'gpt4o-prod', tier: 0 }, { provider: 'compat', model: 'backup', tier: 1 }],
            },
        },
        strictStderr: false,
    });
    for (const model of ['m', 'v']) {
        const r = await drainStream(await gw.client().chat.completions.create({ model, messages: msgs, stream: true }));
        assert.equal(r.error, null, String(r.error));
        assert.equal(r.content, PROVIDER_FAKE_ANSWER);
        assert.ok(r.chunks.every((c) => c.model === 'backup'), 'the answer came from the OpenAI-compatible provider');
    }
    assert.equal(az.apiRequests().length, 2, 'Azure was tried first for both');
    assert.equal(other.apiRequests().length, 2);
});

test("azure-openai content filter: Azure's error shapes as OpenAI's (a filtered prompt: 400, code content_filter), a filtered answer ends with finish_reason content_filter", async (t) => {
    const h = harness(t);
    const az = await fake(t, { azure: AZ });
    const gw = await h.gateway({
        config: {
            providers: { az: { type: 'azure-openai', base_url: az.url, api_key: AZ.key, probe: false } },
            models: { 'gpt-4o': [{ provider: 'az', model: 'gpt4o-prod' }] },
        },
    });
    const res = await gw.request('/v1/chat/completions', {
        method: 'POST', headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'gpt-4o', messages: [{ role: 'user', content: 'FILTER_ME' }] }),
    });
    assert.equal(res.status, 400);
    const err = assertErrorShape(assert, res.text);
    assert.equal(err.code, 'content_filter');
    assert.equal(err.param, 'prompt');
    assert.equal(err.innererror.code, 'ResponsibleAIPolicyViolation', 'Azure\'s detail kept');
    // Azure's other shape ({"error":{"code","message"}}) is said again in OpenAI's
    const res2 = await gw.request('/v1/chat/completions', {
        method: 'POST', headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'gpt-4o', messages: [{ role: 'user', content: 'UNSUPPORTED' }] }),
    });
    assert.equal(res2.status, 400);
    const err2 = assertErrorShape(assert, res2.text);
    assert.equal(err2.code, 'OperationNotSupported');
    assert.equal(err2.type, 'invalid_request_error');
    assert.match(err2.message, /does not work with the specified model/);
    const filtered = [{ role: 'user', content: 'FILTER_ANSWER' }];
    const r = await drainStream(await gw.client().chat.completions.create({ model: 'gpt-4o', messages: filtered, stream: true }));
    assert.equal(r.error, null, String(r.error));
    assert.equal(r.chunks.at(-1).choices[0].finish_reason, 'content_filter');
    const answer = await gw.client().chat.completions.create({ model: 'gpt-4o', messages: filtered });
    assert.equal(answer.choices[0].finish_reason, 'content_filter');
});

test('alibaba-pai-eas sends the raw token in Authorization, no "Bearer"', async (t) => {
    const h = harness(t);
    const eas = await fake(t, { auth: 'eas-token-abcdef' });
    const gw = await h.gateway({
        config: {
            providers: { eas: { type: 'alibaba-pai-eas', base_url: eas.baseURL, api_key: 'eas-token-abcdef', probe: false } },
            models: { m: [{ provider: 'eas', model: 'DeepSeek-R1' }] },
        },
    });
    const answer = await gw.client().chat.completions.create({ model: 'm', messages: msgs });
    assert.equal(answer.choices[0].message.content, PROVIDER_FAKE_ANSWER);
    assert.equal(eas.apiRequests()[0].headers.authorization, 'eas-token-abcdef');
});

test('vllm: "reasoning" deltas arrive as "reasoning_content", streamed and assembled', async (t) => {
    const h = harness(t);
    const v = await fake(t, { reasoningField: 'reasoning' });
    const gw = await h.gateway({
        config: {
            providers: { v: { type: 'vllm', base_url: v.baseURL, probe: false } },
            models: { r1: [{ provider: 'v', model: 'deepseek-r1-distill' }] },
        },
    });
    const r = await drainStream(await gw.client().chat.completions.create({ model: 'r1', messages: msgs, stream: true }));
    assert.equal(r.error, null, String(r.error));
    const reasoning = r.chunks.map((c) => c.choices[0]?.delta?.reasoning_content ?? '').join('');
    assert.equal(reasoning, 'Let me think');
    assert.ok(r.chunks.every((c) => c.choices[0]?.delta?.reasoning === undefined), 'no "reasoning" left');
    assert.equal(r.content, PROVIDER_FAKE_ANSWER);
    const answer = await gw.client().chat.completions.create({ model: 'r1', messages: msgs });
    assert.equal(answer.choices[0].message.reasoning_content, 'Let me think');
    assert.equal(answer.choices[0].message.content, PROVIDER_FAKE_ANSWER);
});

test('deepseek: reasoning_content leaves the history (kept beside a tool call); openai-compatible sends it and gets the 400', async (t) => {
    const h = harness(t);
    const ds = await fake(t, { rejectReasoningHistory: true });
    const gw = await h.gateway({
        config: {
            providers: {
                ds: { type: 'deepseek', base_url: ds.baseURL, api_key: 'sk-ds', probe: false },
                plain: { base_url: ds.baseURL, api_key: 'sk-ds', probe: false },
            },
            models: { r: [{ provider: 'ds', model: 'deepseek-reasoner' }], plain: [{ provider: 'plain', model: 'deepseek-reasoner' }] },
        },
        strictStderr: false,
    });
    const history = [
        { role: 'user', content: 'first' },
        { role: 'assistant', content: 'answer', reasoning_content: 'thought about it' },
        { role: 'assistant', content: null, reasoning_content: 'need a tool', tool_calls: [{ id: 'c1', type: 'function', function: { name: 'f', arguments: '{}' } }] },
        { role: 'tool', tool_call_id: 'c1', content: '42' },
        { role: 'user', content: 'second' },
    ];
    const answer = await gw.client().chat.completions.create({ model: 'r', messages: history });
    assert.equal(answer.choices[0].message.content, PROVIDER_FAKE_ANSWER);
    const sent = ds.apiRequests()[0].json.messages;
    assert.equal(sent[1].reasoning_content, undefined);
    assert.equal(sent[1].content, 'answer');
    assert.equal(sent[2].reasoning_content, 'need a tool');
    await assert.rejects(gw.client().chat.completions.create({ model: 'plain', messages: history }), (e) => {
        assert.equal(e.status, 400);
        return true;
    });
});

test('max_tokens above a deployment\'s cap is lowered to it: the deepseek preset per model, max_tokens_limit overrides', async (t) => {
    const h = harness(t);
    const ds = await fake(t, { maxTokens: 8192 });
    const small = await fake(t, { maxTokens: 100 });
    const gw = await h.gateway({
        config: {
            providers: {
                ds: { type: 'deepseek', base_url: ds.baseURL, api_key: 'sk-ds', probe: false },
                small: { type: 'vllm', base_url: small.baseURL, max_tokens_limit: 100, probe: false },
                nolimit: { type: 'vllm', base_url: small.baseURL, probe: false },
            },
            models: {
                chat: [{ provider: 'ds', model: 'deepseek-chat' }],
                reasoner: [{ provider: 'ds', model: 'deepseek-reasoner' }],
                small: [{ provider: 'small', model: 'x' }],
                perdep: [{ provider: 'nolimit', model: 'x', max_tokens_limit: 50 }],
                nolimit: [{ provider: 'nolimit', model: 'x' }],
            },
        },
        strictStderr: false,
    });
    const c = gw.client();
    await c.chat.completions.create({ model: 'chat', messages: msgs, max_tokens: 20000 });
    assert.equal(ds.apiRequests().at(-1).json.max_tokens, 8192);
    await c.chat.completions.create({ model: 'reasoner', messages: msgs, max_tokens: 5000 });
    assert.equal(ds.apiRequests().at(-1).json.max_tokens, 5000, 'under the cap: as sent');
    await drainStream(await c.chat.completions.create({ model: 'small', messages: msgs, max_completion_tokens: 4096, stream: true }));
    assert.equal(small.apiRequests().at(-1).json.max_completion_tokens, 100);
    await c.chat.completions.create({ model: 'perdep', messages: msgs, max_tokens: 4096 });
    assert.equal(small.apiRequests().at(-1).json.max_tokens, 50);
    // without a cap the provider's own 400 reaches the client, as it would from the provider
    await assert.rejects(c.chat.completions.create({ model: 'nolimit', messages: msgs, max_tokens: 4096 }), (e) => e.status === 400);
});

test('type: overrides: the provider\'s own keys win; an unknown type is a config error with a suggestion', async (t) => {
    const h = harness(t);
    const f = await fake(t, { auth: 'Token sk-x' });
    const gw = await h.gateway({
        config: {
            providers: {
                ds: { type: 'deepseek', base_url: f.baseURL, api_key: 'sk-x', auth_prefix: 'Token ',
                    strip_reasoning_history: false, probe: false },
            },
            models: { m: [{ provider: 'ds', model: 'deepseek-chat' }] },
        },
    });
    await gw.client().chat.completions.create({ model: 'm', messages: [...msgs, { role: 'assistant', content: 'a', reasoning_content: 'r' }, { role: 'user', content: 'b' }] });
    const q = f.apiRequests()[0];
    assert.equal(q.url, '/v1/chat/completions');
    assert.equal(q.json.messages[1].reasoning_content, 'r', 'strip_reasoning_history: false kept it');
    const file = writeTemp('bad.yaml', toYAML({
        providers: { a: { type: 'deepsek', api_key: 'k' }, b: { type: 'vllm' } },
        models: { m: [{ provider: 'a', model: 'x' }] },
    }));
    const r = await runGateway(['--check', '--config', file]);
    assert.notEqual(r.code, 0);
    assert.match(r.output, /unknown type "deepsek"; did you mean "deepseek"\?/);
    assert.match(r.output, /providers\.b\.base_url: missing \(required: type vllm has no default URL\)/);
});

test('models: auto serves what each provider lists, follows the list as it changes, and /v1/models is the union', async (t) => {
    const h = harness(t);
    const one = await fake(t, { models: ['qwen-a', 'shared'] });
    const two = await fake(t, { models: ['qwen-b', 'shared'], reasoningField: 'reasoning' });
    const fixed = await fake(t, {});
    const gw = await h.gateway({
        config: {
            providers: {
                one: { type: 'vllm', base_url: one.baseURL, models: 'auto', models_refresh: '1s', probe: false },
                two: { type: 'vllm', base_url: two.baseURL, models: 'auto', models_refresh: '1s', probe: false },
                fixed: { base_url: fixed.baseURL, probe: false },
            },
            models: { 'qwen-b': [{ provider: 'fixed', model: 'configured-b' }] },
        },
    });
    const list = async () => (await gw.client().models.list()).data.map((m) => m.id).sort();
    await waitUntil(async () => (await list()).includes('qwen-a'), { timeout: 10000 * SLOW, what: 'the imported list' });
    assert.deepEqual(await list(), ['qwen-a', 'qwen-b', 'shared'], 'the config\'s qwen-b once, the imported ones, no catch-all');
    const c = gw.client();
    const a = await c.chat.completions.create({ model: 'qwen-a', messages: msgs });
    assert.equal(a.choices[0].message.content, PROVIDER_FAKE_ANSWER);
    assert.equal(one.apiRequests().at(-1).json.model, 'qwen-a', 'sent under its own name');
    // a configured model wins over an imported name
    await c.chat.completions.create({ model: 'qwen-b', messages: msgs });
    assert.equal(fixed.apiRequests().at(-1).json.model, 'configured-b');
    assert.equal(two.apiRequests().length, 0);
    // a name both list goes to either; each provider keeps its own quirks
    for (let i = 0; i < 6; i++) {
        const r = await drainStream(await c.chat.completions.create({ model: 'shared', messages: msgs, stream: true }));
        assert.equal(r.error, null, String(r.error));
    }
    assert.equal(one.apiRequests().filter((q) => q.json.model === 'shared').length +
        two.apiRequests().filter((q) => q.json.model === 'shared').length, 6);
    // the catch-all is not a model of its own
    await assert.rejects(c.chat.completions.create({ model: 'models: auto', messages: msgs }), (e) => e.status === 404);
    // the engine now serves another model: followed
    one.setModels(['qwen-c']);
    await waitUntil(async () => { const l = await list(); return l.includes('qwen-c') && !l.includes('qwen-a'); },
        { timeout: 10000 * SLOW, what: 'the changed list' });
    await assert.rejects(c.chat.completions.create({ model: 'qwen-a', messages: msgs }), (e) => e.status === 404);
    await c.chat.completions.create({ model: 'qwen-c', messages: msgs });
    assert.equal(one.apiRequests().at(-1).json.model, 'qwen-c');
    const entry = await waitUntil(() => gw.accessLog().find((e) => e.model === 'qwen-c'), { what: 'the log line' });
    assert.equal(entry.provider, 'one');
    assert.equal(entry.deployment_model, 'qwen-c', JSON.stringify(entry));
});

test('azure-openai models: auto reads the deployments with the api-version and key', async (t) => {
    const h = harness(t);
    const az = await fake(t, { azure: AZ });
    const gw = await h.gateway({
        config: {
            providers: { az: { type: 'azure-openai', base_url: az.url, api_key: AZ.key, models: 'auto', probe: false } },
            models: {},
        },
    });
    await waitUntil(async () => (await gw.client().models.list()).data.some((m) => m.id === 'gpt4o-prod'),
        { timeout: 10000 * SLOW, what: 'the Azure deployments listed' });
    const answer = await gw.client().chat.completions.create({ model: 'gpt4o-prod', messages: msgs });
    assert.equal(answer.choices[0].message.content, PROVIDER_FAKE_ANSWER);
    assert.equal(az.apiRequests()[0].url, '/openai/deployments/gpt4o-prod/chat/completions?api-version=2024-10-21');
    assert.equal(az.requests.find((q) => q.method === 'GET').url, '/openai/models?api-version=2024-10-21');
});
