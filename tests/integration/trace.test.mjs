// W3C trace context and the access log file.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, renameSync } from 'node:fs';
import path from 'node:path';
import { fakeProvider, harness, marker, tempDir, waitUntil } from './lib.mjs';

const msgs = [{ role: 'user', content: 'hello' }];
const TP = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

async function setup(t, extra = {}) {
    const h = harness(t);
    const fake = await h.fake({ behavior: 'chunks=2' });
    const gw = await h.gateway({
        config: { ...extra, providers: { a: fakeProvider(fake, { probe: false }) }, models: { m: [{ provider: 'a', model: 'ma' }] } },
    });
    return { fake, gw, sdk: gw.client({ maxRetries: 0 }) };
}

test('traceparent: generated when absent, passed on with a new parent id when present', async (t) => {
    const { fake, gw, sdk } = await setup(t);
    const mk1 = marker('tp');
    const r1 = await sdk.chat.completions.create({ model: 'm', messages: msgs, unbusy_test_id: mk1 }).withResponse();
    const [up1] = await fake.requestsWith(mk1);
    const m1 = TP.exec(up1.headers.traceparent || '');
    assert.ok(m1, `upstream traceparent: ${up1.headers.traceparent}`);
    const e1 = await gw.logFor(r1.response.headers.get('x-request-id'));
    assert.equal(e1.trace_id, m1[1]);

    const trace = '4bf92f3577b34da6a3ce929d0e0e4736';
    const mk2 = marker('tp');
    const r2 = await sdk.chat.completions.create({ model: 'm', messages: msgs, unbusy_test_id: mk2 }, {
        headers: { traceparent: `00-${trace}-00f067aa0ba902b7-01` },
    }).withResponse();
    const [up2] = await fake.requestsWith(mk2);
    const m2 = TP.exec(up2.headers.traceparent || '');
    assert.ok(m2);
    assert.equal(m2[1], trace, 'the trace id was not kept');
    assert.notEqual(m2[2], '00f067aa0ba902b7', 'the parent id must be the gateway span, not the client one');
    assert.equal((await gw.logFor(r2.response.headers.get('x-request-id'))).trace_id, trace);

    // an invalid traceparent (all-zero trace id) starts a new trace
    const mk3 = marker('tp');
    await sdk.chat.completions.create({ model: 'm', messages: msgs, unbusy_test_id: mk3 }, {
        headers: { traceparent: `00-${'0'.repeat(32)}-00f067aa0ba902b7-01` },
    });
    const [up3] = await fake.requestsWith(mk3);
    const m3 = TP.exec(up3.headers.traceparent || '');
    assert.ok(m3);
    assert.notEqual(m3[1], '0'.repeat(32));
});

test('access log to a file, reopened on SIGUSR1 (logrotate)', async (t) => {
    const dir = tempDir();
    const file = path.join(dir, 'access.log');
    const { gw, sdk } = await setup(t, { server: { access_log: file } });
    const a = await sdk.chat.completions.create({ model: 'm', messages: msgs }).withResponse();
    const idA = a.response.headers.get('x-request-id');
    await waitUntil(() => existsSync(file) && readFileSync(file, 'utf8').includes(idA), { what: 'first line' });
    renameSync(file, `${file}.1`);
    process.kill(gw.pid, 'SIGUSR1');
    await waitUntil(() => existsSync(file), { what: 'reopened file' });
    const b = await sdk.chat.completions.create({ model: 'm', messages: msgs }).withResponse();
    const idB = b.response.headers.get('x-request-id');
    await waitUntil(() => readFileSync(file, 'utf8').includes(idB), { what: 'second line in the new file' });
    const old = readFileSync(`${file}.1`, 'utf8');
    assert.ok(old.includes(idA) && !old.includes(idB));
    const line = JSON.parse(readFileSync(file, 'utf8').trim().split('\n').pop());
    assert.equal(line.request_id, idB);
    assert.equal(line.status, 200);
});
