// A stream cut after its first byte is continued on another deployment by default
// (no continue_on_cut key in these configs): one coherent stream with exactly the
// expected text, the first attempt's id, usage summed; each provider's continuation
// mechanism on the wire; unsafe cuts (a tool call half sent) end with the error event;
// the built-in demo completes every request.
import { test } from 'node:test';
import http from 'node:http';
import assert from 'node:assert/strict';
import {
    harness, fakeProvider, drainStream, expectedContent, fakePromptTokens, Proc, Gateway,
    UNBUSY_BIN, SLOW, waitUntil,
} from './lib.mjs';

const msgs = [{ role: 'user', content: 'tell me a story' }];

function metric(text, name, labels) {
    const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
    for (const line of text.split('\n')) {
        if (!line.startsWith(name + '{')) continue;
        if (want.every((l) => line.includes(l))) return Number(line.split(' ').pop());
    }
    return null;
}

async function twoDeployments(h, behaviorA, behaviorB, providerB = {}) {
    const a = await h.fake({ behavior: behaviorA, name: 'fake-a' });
    const b = await h.fake({ behavior: behaviorB, name: 'fake-b' });
    const gw = await h.gateway({
        config: {
            providers: { a: fakeProvider(a, { probe: false }), b: fakeProvider(b, { probe: false, ...providerB }) },
            models: { m: [{ provider: 'a', model: 'ma', tier: 0 }, { provider: 'b', model: 'mb', tier: 1 }] },
        },
        strictStderr: false,
    });
    return { a, b, gw };
}

test('untuned: a cut stream goes on from another deployment as one stream, usage summed', async (t) => {
    const h = harness(t);
    const { b, gw } = await twoDeployments(h, 'cut=3,chunks=6', 'chunks=6');
    const stream = await gw.client().chat.completions.create({
        model: 'm', messages: msgs, stream: true, stream_options: { include_usage: true },
    });
    const r = await drainStream(stream);
    assert.equal(r.error, null, `the client saw an error: ${r.error}`);
    // exactly the whole answer: b goes on from a's three chunks, nothing lost, nothing twice
    assert.equal(r.content, expectedContent(6));
    // one stream: the first attempt's id, created and model in every chunk
    const ids = new Set(r.chunks.map((c) => c.id));
    const created = new Set(r.chunks.map((c) => c.created));
    const models = new Set(r.chunks.map((c) => c.model));
    assert.deepEqual([...ids], ['chatcmpl-fake-0'], `ids: ${[...ids]}`);
    assert.equal(created.size, 1);
    assert.deepEqual([...models], ['ma']);
    // one role chunk, one finish
    assert.equal(r.chunks.filter((c) => c.choices[0]?.delta?.role).length, 1);
    // the continuation asked b for the rest, with the text the client has
    const [cont] = await b.apiRequests();
    assert.deepEqual(cont.json.messages.at(-1), { role: 'assistant', content: expectedContent(3) });
    assert.equal(cont.json.continue_final_message, undefined);
    // usage: b's own plus the cut attempt's (which reported none: estimated)
    const bPrompt = fakePromptTokens(Buffer.byteLength(cont.body));
    assert.ok(r.usage, 'no usage chunk');
    assert.ok(r.usage.prompt_tokens > bPrompt, `prompt_tokens ${r.usage.prompt_tokens} <= b's ${bPrompt}`);
    // b's own 3 (it counts only what it generated) and an estimate for a's 3 chunks
    assert.ok(r.usage.completion_tokens > 3, `completion_tokens ${r.usage.completion_tokens}`);
    assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens);
    assert.equal(r.usage.estimated, true);
    // the access log sums the same way
    const line = await waitUntil(() => gw.accessLog().find((e) => e.model === 'm'), { what: 'access log line' });
    assert.equal(line.usage?.prompt_tokens ?? line.prompt_tokens, r.usage.prompt_tokens);
    // counted, and an incident on the status page
    const metrics = (await gw.request('/metrics')).text;
    assert.equal(metric(metrics, 'unbusy_continuations_total', { model: 'm', result: 'ok' }), 1);
    assert.equal(metric(metrics, 'unbusy_continuations_total', { model: 'm', result: 'unsafe' }), 0);
    const status = (await gw.request('/status.json')).json();
    const inc = status.incidents.find((i) => i.kind === 'continued');
    assert.ok(inc, `no continued incident: ${JSON.stringify(status.incidents)}`);
    assert.equal(inc.deployment, 'a/ma');
    assert.ok(!status.incidents.some((i) => i.kind === 'stream_failed'), 'the client saw no broken stream');
});

test('continuation: continue_final_message is what a vLLM or SGLang provider is sent', async (t) => {
    const h = harness(t);
    const { b, gw } = await twoDeployments(h, 'cut=2,chunks=6', 'chunks=6',
        { continuation: 'continue_final_message' });
    const r = await drainStream(await gw.client().chat.completions.create({
        model: 'm', messages: msgs, stream: true, max_tokens: 50,
    }));
    assert.equal(r.error, null);
    assert.equal(r.content, expectedContent(6));
    const [cont] = await b.apiRequests();
    assert.equal(cont.json.continue_final_message, true);
    assert.equal(cont.json.add_generation_prompt, false);
    assert.deepEqual(cont.json.messages.at(-1), { role: 'assistant', content: expectedContent(2) });
    assert.ok(cont.json.max_tokens < 50 && cont.json.max_tokens >= 1, `max_tokens ${cont.json.max_tokens}`);
});

test('a cut after a tool-call delta is not continued: the error event, as before', async (t) => {
    const h = harness(t);
    const { b, gw } = await twoDeployments(h, 'tool_call,cut=3,chunks=6', 'chunks=4');
    const r = await drainStream(await gw.client().chat.completions.create({
        model: 'm', messages: msgs, stream: true,
        tools: [{ type: 'function', function: { name: 'fake', parameters: { type: 'object' } } }],
    }));
    assert.ok(r.error, 'a half-sent tool call was continued');
    assert.ok(r.chunks.some((c) => c.choices[0]?.delta?.tool_calls), 'no tool-call delta was relayed');
    assert.equal((await b.apiRequests()).length, 0, 'b was asked to continue');
    const metrics = (await gw.request('/metrics')).text;
    assert.equal(metric(metrics, 'unbusy_continuations_total', { model: 'm', result: 'unsafe' }), 1);
    assert.equal(metric(metrics, 'unbusy_continuations_total', { model: 'm', result: 'ok' }), 0);
});

test('a provider set to continuation: off is never asked to continue', async (t) => {
    const h = harness(t);
    const { b, gw } = await twoDeployments(h, 'cut=3,chunks=6', 'chunks=4', { continuation: 'off' });
    const r = await drainStream(await gw.client().chat.completions.create({ model: 'm', messages: msgs, stream: true }));
    assert.ok(r.error, 'continued on a provider that is off');
    assert.equal((await b.apiRequests()).length, 0);
});

test('the demo: 40 requests, streamed and not, all complete; continuations show as incidents', async (t) => {
    const env = { DEEPSEEK_API_KEY: '', SILICONFLOW_API_KEY: '', DASHSCOPE_API_KEY: '' };
    const proc = new Proc('unbusy-demo', UNBUSY_BIN, ['--demo', '--listen', '127.0.0.1:0'], { env });
    let m;
    try {
        m = await proc.waitFor('stderr', /listening on (https?):\/\/127\.0\.0\.1:(\d+)/, 10000 * SLOW);
    } catch (e) {
        await proc.terminate(2000);
        throw e;
    }
    const gw = new Gateway(proc, Number(m[2]), {
        file: null, secrets: [], strictStderr: false, allowStderr: [], drainMs: 5000,
    });
    t.after(() => gw.stop());
    const sdk = gw.client({ timeout: 60000 * SLOW });
    const one = async (i) => {
        const model = i % 4 < 2 ? 'deepseek-r1' : 'deepseek-v3';
        const body = { model, messages: [{ role: 'user', content: `Hello ${i}` }] };
        if (i % 2 === 0) {
            const r = await drainStream(await sdk.chat.completions.create({ ...body, stream: true }));
            assert.equal(r.error, null, `request ${i} (stream): ${r.error}`);
            assert.ok(r.content.length > 0, `request ${i}: empty answer`);
            assert.equal(new Set(r.chunks.map((c) => c.id)).size, 1, `request ${i}: several ids`);
            assert.equal(r.chunks.filter((c) => c.choices[0]?.finish_reason).length, 1, `request ${i}: finish`);
            return r.content;
        }
        const c = await sdk.chat.completions.create(body);
        assert.equal(c.choices.length, 1);
        assert.ok(c.choices[0].message.content.length > 0, `request ${i}: empty answer`);
        assert.equal(c.choices[0].finish_reason, 'stop');
        return c.choices[0].message.content;
    };
    const answers = [];
    for (let batch = 0; batch < 4; batch++) {
        const results = await Promise.allSettled(Array.from({ length: 10 }, (_, j) => one(batch * 10 + j)));
        for (const r of results) {
            if (r.status === 'rejected') throw r.reason;
            answers.push(r.value);
        }
    }
    assert.equal(answers.length, 40);
    // every answer is the simulated providers' whole text (30 chunks), a continued one too: seamless
    for (const a of answers) assert.equal(a, expectedContent(30));
    // sim-flaky cuts one stream in ten of its own: more streams until one was continued
    const continued = async () => (await gw.request('/status.json')).json().incidents
        .some((i) => i.kind === 'continued');
    for (let extra = 0; extra < 150 && !(await continued()); extra += 10) {
        const results = await Promise.allSettled(Array.from({ length: 10 }, (_, j) => one(2 * (extra + j))));
        for (const r of results) {
            if (r.status === 'rejected') throw r.reason;
            assert.equal(r.value, expectedContent(30));
        }
    }
    const status = (await gw.request('/status.json')).json();
    assert.ok(status.incidents.some((i) => i.kind === 'continued'), 'no stream was continued');
    assert.ok(!status.incidents.some((i) => i.kind === 'stream_failed' || i.kind === 'request_failed'),
        `a client saw an error: ${JSON.stringify(status.incidents)}`);
});

test('a continuation carries the relayed text decoded: escapes, quotes, newlines, non-ASCII, surrogate pairs', async (t) => {
    const h = harness(t);
    // An upstream whose content is escaped JSON text (one pair split across two chunks),
    // and which breaks the connection after it.
    const pieces = ['Line "one"\n', '\ttab\\back/slash ', 'caf\u00e9 \u{1F600} ', '\u2028end'];
    const wire = [
        JSON.stringify(pieces[0]), JSON.stringify(pieces[1]), '"caf\\u00e9 \\ud83d"', '"\\ude00 "',
        JSON.stringify(pieces[3]).replace('\u2028', '\\u2028'),
    ];
    const upstream = http.createServer((req, res) => {
        req.resume();
        req.on('end', () => {
            res.writeHead(200, { 'content-type': 'text/event-stream' });
            const head = '{"id":"chatcmpl-esc","object":"chat.completion.chunk","created":1700000000,"model":"ma",';
            res.write(`data: ${head}"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}\n\n`);
            for (const w of wire)
                res.write(`data: ${head}"choices":[{"index":0,"delta":{"content":${w}},"finish_reason":null}]}\n\n`);
            setTimeout(() => res.socket.destroy(), 50);
        });
    });
    await new Promise((r) => upstream.listen(0, '127.0.0.1', r));
    t.after(() => upstream.close());
    const port = upstream.address().port;
    const b = await h.fake({ behavior: 'chunks=2', name: 'fake-b' });
    const gw = await h.gateway({
        config: {
            providers: {
                a: { base_url: `http://127.0.0.1:${port}/v1`, api_key: 'sk-test-a', probe: false },
                b: fakeProvider(b, { probe: false }),
            },
            models: { m: [{ provider: 'a', model: 'ma', tier: 0 }, { provider: 'b', model: 'mb', tier: 1 }] },
        },
        strictStderr: false,
    });
    const stream = await gw.client().chat.completions.create({ model: 'm', messages: msgs, stream: true });
    const r = await drainStream(stream);
    assert.equal(r.error, null, `the client saw an error: ${r.error}`);
    // the wire's "\ud83d" + "\ude00" pair, split across chunks, is one emoji once decoded
    const text = 'Line "one"\n\ttab\\back/slash caf\u00e9 \u{1F600} \u2028end';
    assert.equal(r.content, text + expectedContent(2));
    const [cont] = await b.apiRequests();
    assert.deepEqual(cont.json.messages.at(-1), { role: 'assistant', content: text });
    assert.deepEqual([...new Set(r.chunks.map((c) => c.id))], ['chatcmpl-esc']);
});
