// HTTP/1.1 on the client side, over raw sockets: pipelining, chunked uploads,
// Expect: 100-continue, keep-alive reuse, back-pressure to a slow reader, and
// the header-read timeout that protects against half-sent heads.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import {
    RawClient, SLOW, expectedContent, fakeProvider, harness, marker, rawRequest, rssKiB, sseContent,
} from './lib.mjs';

const h = harness();
let fake;
let gw;

before(async () => {
    fake = await h.fake({ behavior: 'chunks=3' });
    gw = await h.gateway({
        config: {
            server: { header_timeout: '500ms' },
            providers: { 'prov-a': fakeProvider(fake) },
            models: { m: [{ provider: 'prov-a', model: 'up-m' }] },
        },
    });
});
after(() => h.cleanup());

const chat = (extra = {}) => ({ model: 'm', messages: [{ role: 'user', content: 'hi' }], ...extra });

async function connect(t) {
    const c = await RawClient.connect(gw.port);
    t.after(() => c.destroy());
    return c;
}

test('pipelined requests are answered in order', async (t) => {
    const c = await connect(t);
    // The first answer is the slowest; a gateway that works on both at once must still answer in order.
    await c.write(Buffer.concat([
        rawRequest('POST', '/v1/chat/completions', { body: chat({ fake: 'ttft=300,chunks=2' }) }),
        rawRequest('POST', '/v1/chat/completions', { body: chat({ fake: 'chunks=3' }) }),
        rawRequest('GET', '/healthz'),
        rawRequest('GET', '/v1/models'),
    ]));
    const r1 = await c.readResponse();
    const r2 = await c.readResponse();
    const r3 = await c.readResponse();
    const r4 = await c.readResponse();
    assert.equal(r1.status, 200, r1.text);
    assert.equal(JSON.parse(r1.text).choices[0].message.content, expectedContent(2));
    assert.equal(r2.status, 200, r2.text);
    assert.equal(JSON.parse(r2.text).choices[0].message.content, expectedContent(3));
    assert.equal(r3.status, 200);
    assert.equal(r4.status, 200);
    assert.equal(JSON.parse(r4.text).object, 'list');
    const ids = new Set([r1, r2, r3, r4].map((r) => r.headers['x-request-id']));
    assert.equal(ids.size, 4, 'request ids missing or repeated');
    assert.equal(c.closed, false, 'the connection was closed after pipelined requests');
});

test('a chunked request body is read whole', async (t) => {
    const c = await connect(t);
    const mk = marker('chunked');
    const body = JSON.stringify(chat({ stream: true, unbusy_test_id: mk }));
    const parts = [body.slice(0, 7), body.slice(7, 30), body.slice(30)];
    await c.write('POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n' +
        'Transfer-Encoding: chunked\r\n\r\n');
    for (const [i, p] of parts.entries()) {
        const ext = i === 1 ? ';name=value' : ''; // a chunk extension must be ignored
        await c.write(`${Buffer.byteLength(p).toString(16)}${ext}\r\n${p}\r\n`);
    }
    await c.write('0\r\n\r\n');
    const r = await c.readResponse();
    assert.equal(r.status, 200, r.text);
    assert.equal(sseContent(r.text), expectedContent(3));
    const up = await fake.requestsWith(mk);
    assert.equal(up.length, 1);
    assert.equal(up[0].json.model, 'up-m');
    assert.equal(up[0].json.unbusy_test_id, mk);
});

test('Expect: 100-continue gets 100 Continue before the body is sent', async (t) => {
    const c = await connect(t);
    const body = JSON.stringify(chat());
    await c.write(`POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\nExpect: 100-continue\r\n\r\n`);
    const interim = await c.readResponse({ timeout: 3000 });
    assert.equal(interim.status, 100);
    await c.write(body);
    const r = await c.readResponse();
    assert.equal(r.status, 200, r.text);
    assert.equal(JSON.parse(r.text).choices[0].message.content, expectedContent(3));
});

test('keep-alive: several requests of every kind on one connection', async (t) => {
    const c = await connect(t);
    const send = async (req) => { await c.write(req); return c.readResponse(); };
    assert.equal((await send(rawRequest('GET', '/healthz'))).status, 200);
    const s = await send(rawRequest('POST', '/v1/chat/completions', { body: chat({ stream: true }) }));
    assert.equal(s.status, 200);
    assert.match(s.headers['transfer-encoding'] || '', /chunked/, 'a stream on a keep-alive connection must be chunked');
    assert.equal(sseContent(s.text), expectedContent(3));
    const n = await send(rawRequest('POST', '/v1/chat/completions', { body: chat({ fake: 'chunks=4' }) }));
    assert.equal(n.status, 200);
    assert.equal(JSON.parse(n.text).choices[0].message.content, expectedContent(4));
    const bad = await send(rawRequest('POST', '/v1/chat/completions', { body: chat({ model: 'nope' }) }));
    assert.equal(bad.status, 404, 'an error answer should not end the connection');
    assert.equal((await send(rawRequest('GET', '/v1/models'))).status, 200);
    assert.equal(c.closed, false);
});

test('an idle keep-alive connection outlives the header timeout', async (t) => {
    const c = await connect(t);
    await c.write(rawRequest('GET', '/healthz'));
    assert.equal((await c.readResponse()).status, 200);
    // Idle for twice header_timeout: the idle timeout (60 s default) governs now.
    await new Promise((r) => setTimeout(r, 1000));
    assert.equal(c.closed, false, 'an idle keep-alive connection was closed by the header timeout');
    await c.write(rawRequest('GET', '/healthz'));
    assert.equal((await c.readResponse()).status, 200);
});

test('Connection: close is honoured', async (t) => {
    const c = await connect(t);
    await c.write(rawRequest('GET', '/healthz', { headers: { Connection: 'close' } }));
    const r = await c.readResponse();
    assert.equal(r.status, 200);
    await c.waitClosed(3000);
});

test('a malformed request line gets 400', async (t) => {
    const c = await connect(t);
    await c.write('THIS IS NOT HTTP\r\n\r\n');
    const r = await c.readResponse();
    assert.equal(r.status, 400);
    await c.waitClosed(3000);
});

test('header timeout closes a client that sends half a head', async (t) => {
    const c = await connect(t);
    const t0 = Date.now();
    await c.write('POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n');
    const closedAt = await c.waitClosed(5000 * SLOW);
    const took = closedAt - t0;
    assert.ok(took >= 400, `closed after ${took} ms, before the 500 ms header timeout`);
    assert.ok(took < 3000 * SLOW, `closed only after ${took} ms`);
    const got = c.peek().toString('latin1');
    assert.ok(got === '' || /^HTTP\/1\.1 408 /.test(got), `unexpected bytes before close: ${JSON.stringify(got.slice(0, 100))}`);
});

test('header timeout also stops a head trickled byte by byte', async (t) => {
    const c = await connect(t);
    const t0 = Date.now();
    const head = 'POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nX-Slow: ' + 'a'.repeat(200);
    let i = 0;
    const timer = setInterval(() => {
        if (c.closed || i >= head.length) return;
        c.socket.write(head[i++], () => {});
    }, 50);
    t.after(() => clearInterval(timer));
    const closedAt = await c.waitClosed(5000 * SLOW);
    clearInterval(timer);
    const took = closedAt - t0;
    assert.ok(took < 3000 * SLOW, `a trickling client kept the connection for ${took} ms`);
});

test('an upstream that reads the request slowly still gets all of a big body', async (t) => {
    const c = await connect(t);
    const big = 'q'.repeat(3 * 1024 * 1024);
    const body = JSON.stringify(chat({ fake: 'slowread,chunks=2', messages: [{ role: 'user', content: big }] }));
    await c.write(rawRequest('POST', '/v1/chat/completions', { body }));
    const r = await c.readResponse({ timeout: 20000 * SLOW });
    assert.equal(r.status, 200, r.text.slice(0, 300));
    const j = JSON.parse(r.text);
    assert.equal(j.choices[0].message.content, expectedContent(2));
    // The fake counts prompt tokens from the body it read: all of it, or the count is short.
    assert.ok(j.usage.prompt_tokens >= Math.floor(Buffer.byteLength(body) / 4),
        `upstream read ${j.usage.prompt_tokens * 4} bytes of a ${Buffer.byteLength(body)}-byte body`);
});

test('slow reader: a big stream is back-pressured, not buffered', async (t) => {
    const BIG = 60 * 1024 * 1024; // content bytes the fake will send
    const c = await connect(t);
    c.pause(); // read nothing: kernel buffers fill, then the gateway must stop reading upstream
    const rss0 = rssKiB(gw.pid);
    await c.write(rawRequest('POST', '/v1/chat/completions', {
        body: chat({ stream: true, fake: `big=${BIG},chunks=6000` }),
    }));
    let peak = rss0;
    const until = Date.now() + 2500 * SLOW;
    while (Date.now() < until) {
        peak = Math.max(peak, rssKiB(gw.pid));
        await new Promise((r) => setTimeout(r, 100));
    }
    const grownMiB = (peak - rss0) / 1024;
    t.diagnostic(`gateway RSS ${rss0} KiB -> peak ${peak} KiB while the client read nothing`);
    assert.ok(grownMiB < 24, `gateway RSS grew by ${grownMiB.toFixed(1)} MiB while the client read nothing`);

    // Now read it all: every byte must still arrive, ending properly.
    c.resume();
    let bytes = 0;
    let tailText = '';
    const done = await new Promise((resolve) => {
        const deadline = setTimeout(() => resolve(false), 60000);
        const onData = () => {
            const b = c.peek();
            bytes += b.length;
            tailText = (tailText + b.toString('latin1')).slice(-200);
            c.consume(b.length);
            const finished = /data: \[DONE\]\n\n(\r\n0\r\n\r\n)?$/.test(tailText);
            if (finished || c.closed) {
                clearTimeout(deadline);
                c.events.off('change', onData);
                resolve(finished);
            }
        };
        c.events.on('change', onData);
        onData();
    });
    assert.ok(done, `the stream did not finish (${bytes} bytes read, tail ${JSON.stringify(tailText.slice(-80))})`);
    assert.ok(bytes > BIG, `only ${bytes} bytes arrived for ${BIG} content bytes`);
});
