// Answers: usage on every answer (the provider's, or an estimate when it reports none),
// and multi-line SSE events relayed whole.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { drainStream, expectedContent, fakeProvider, harness, sseData } from './lib.mjs';

const msgs = [{ role: 'user', content: 'hello there' }]; // 11 characters: 3 tokens estimated
const estimate = (chars) => Math.ceil(chars / 4);

async function setup(t, behavior, provider = {}) {
    const h = harness(t);
    const f = await h.fake({ behavior });
    const gw = await h.gateway({
        config: {
            providers: { a: fakeProvider(f, { probe: false, ...provider }) },
            models: { m: [{ provider: 'a', model: 'x' }] },
        },
    });
    return { f, gw, sdk: gw.client({ maxRetries: 0 }) };
}

function assertEstimated(usage, completionChars) {
    assert.ok(usage, 'no usage');
    assert.equal(usage.prompt_tokens, estimate('hello there'.length));
    assert.equal(usage.completion_tokens, estimate(completionChars));
    assert.equal(usage.total_tokens, usage.prompt_tokens + usage.completion_tokens);
    assert.equal(usage.estimated, true);
}

test('a non-stream answer whose provider streams no usage carries an estimate, marked', async (t) => {
    const { sdk } = await setup(t, 'chunks=3,no_usage');
    const { data, response } = await sdk.chat.completions.create({ model: 'm', messages: msgs }).withResponse();
    assert.equal(data.choices[0].message.content, expectedContent(3));
    assert.equal(response.headers.get('x-unbusy-usage'), 'estimated');
    assertEstimated(data.usage, expectedContent(3).length);
});

test('a provider that reports usage: its numbers, no mark', async (t) => {
    const { sdk } = await setup(t, 'chunks=3');
    const { data, response } = await sdk.chat.completions.create({ model: 'm', messages: msgs }).withResponse();
    assert.equal(response.headers.get('x-unbusy-usage'), null);
    assert.equal(data.usage.completion_tokens, 3); // the fake counts one per chunk
    assert.equal(data.usage.estimated, undefined);
});

test('a whole JSON answer without usage (stream_upstream off) gets the estimate too', async (t) => {
    const { sdk } = await setup(t, 'chunks=3,no_usage', { stream_upstream: false });
    const { data, response } = await sdk.chat.completions.create({ model: 'm', messages: msgs }).withResponse();
    assert.equal(data.choices[0].message.content, expectedContent(3));
    assert.equal(response.headers.get('x-unbusy-usage'), 'estimated');
    assertEstimated(data.usage, expectedContent(3).length);
    assert.equal(data.object, 'chat.completion'); // the rest of the answer as it came
});

test('a stream that asked for usage gets an estimated usage chunk before [DONE]', async (t) => {
    const { gw, sdk } = await setup(t, 'chunks=4,no_usage');
    const stream = await sdk.chat.completions.create({
        model: 'm', messages: msgs, stream: true, stream_options: { include_usage: true },
    });
    const r = await drainStream(stream);
    assert.equal(r.error, null);
    assert.equal(r.content, expectedContent(4));
    const last = r.chunks.at(-1);
    assert.deepEqual(last.choices, []);
    assert.equal(last.id, r.chunks[0].id, 'the usage chunk is not of the same stream');
    assert.equal(last.object, 'chat.completion.chunk');
    assertEstimated(last.usage, expectedContent(4).length);
    // without include_usage: no usage chunk at all
    const raw = await gw.request('/v1/chat/completions', { method: 'POST', body: { model: 'm', messages: msgs, stream: true } });
    const datas = sseData(raw.text);
    assert.equal(datas.at(-1), '[DONE]');
    assert.ok(!datas.some((d) => d.includes('"usage"')), 'a usage chunk nobody asked for');
});

test('multi-line SSE events reach the client whole: stream, include_usage and assembled', async (t) => {
    const { gw, sdk } = await setup(t, 'chunks=3,multiline');
    const stream = await sdk.chat.completions.create({
        model: 'm', messages: msgs, stream: true, stream_options: { include_usage: true },
    });
    const r = await drainStream(stream);
    assert.equal(r.error, null);
    assert.equal(r.content, expectedContent(3));
    assert.equal(r.usage?.completion_tokens, 3);
    assert.equal(r.usage?.estimated, undefined);
    // as bytes: each event is split over data lines again, and each joins into JSON
    const raw = await gw.request('/v1/chat/completions', { method: 'POST', body: { model: 'm', messages: msgs, stream: true } });
    assert.match(raw.text, /"model":"x",\ndata: "choices":/);
    for (const d of sseData(raw.text)) if (d !== '[DONE]') JSON.parse(d);
    // a non-stream client: the answer assembled from those events
    const whole = await sdk.chat.completions.create({ model: 'm', messages: msgs });
    assert.equal(whole.choices[0].message.content, expectedContent(3));
    assert.equal(whole.usage.completion_tokens, 3);
});
