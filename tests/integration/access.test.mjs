// Access: when the gateway needs an API key, and who may use the admin API.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import {
    assertErrorShape, fakeProvider, harness, runGateway, tempDir, waitUntil, writeTemp,
} from './lib.mjs';

const msgs = [{ role: 'user', content: 'hello' }];
const TOKEN = 'adm-0123456789abcdef-secret';

function chat(gw, headers = {}) {
    return gw.request('/v1/chat/completions', {
        method: 'POST', headers: { 'content-type': 'application/json', ...headers },
        body: JSON.stringify({ model: 'm', messages: msgs }),
    });
}

function bearer(key) {
    return { authorization: `Bearer ${key}` };
}

async function storeGateway(t, extra = {}) {
    const h = harness(t);
    const f = await h.fake({ behavior: 'chunks=2' });
    const gw = await h.gateway({
        config: {
            key_store: path.join(tempDir(), 'keys.db'),
            providers: { a: fakeProvider(f, { probe: false }) },
            models: { m: [{ provider: 'a', model: 'x' }] },
            ...extra,
        },
    });
    return gw;
}

async function cli(gw, ...args) {
    const r = await runGateway(['keys', ...args, '--config', gw.file]);
    assert.equal(r.code, 0, `unbusy keys ${args.join(' ')}: ${r.output}`);
    return r;
}

async function storedKeys(gw) {
    const r = await gw.request('/admin/keys');
    assert.equal(r.status, 200, r.text);
    return r.json();
}

/* ---- item: open only by the config, never by an empty store ---- */

test('deleting the last key with the CLI: 401 for requests without a key and for the old key', async (t) => {
    const gw = await storeGateway(t);
    const key = (await cli(gw, 'create', '--name', 'solo')).stdout.trim();
    assert.match(key, /^sk-ub-/);
    await waitUntil(async () => (await chat(gw, bearer(key))).status === 200,
        { what: 'the new key is accepted' });
    assert.equal((await chat(gw)).status, 401);

    await cli(gw, 'delete', 'solo');
    await waitUntil(async () => (await chat(gw, bearer(key))).status === 401,
        { what: 'the deleted key is refused' });
    const r = await chat(gw);
    assert.equal(r.status, 401, r.text);
    assertErrorShape(assert, r.text);
    const list = await storedKeys(gw);
    assert.equal(list.open, false);
    assert.deepEqual(list.keys, []);
    assert.doesNotMatch(gw.proc.stderr, /anyone/);
});

test('a key store with no keys: every request is 401, the admin list says the gateway is closed', async (t) => {
    const gw = await storeGateway(t);
    let r = await chat(gw);
    assert.equal(r.status, 401, r.text);
    assert.equal(assertErrorShape(assert, r.text).code, 'invalid_api_key');
    r = await chat(gw, bearer('sk-ub-guessed0000000000000000000000000000000000'));
    assert.equal(r.status, 401, r.text);
    const list = await storedKeys(gw);
    assert.equal(list.open, false);
    assert.equal(list.store, true);
});

test('no keys: and no key_store: the gateway is open and warns at start that anyone can use it', async (t) => {
    const h = harness(t);
    const f = await h.fake({ behavior: 'chunks=2' });
    for (const extra of [{}, { auth: { open: true } }]) {
        const gw = await h.gateway({
            config: { ...extra, providers: { a: fakeProvider(f, { probe: false }) }, models: { m: [{ provider: 'a', model: 'x' }] } },
        });
        const r = await chat(gw);
        assert.equal(r.status, 200, r.text);
        assert.match(gw.proc.stderr, /warning: .*open.*anyone who can reach/);
        assert.equal((await storedKeys(gw)).open, true);
    }
});

test('auth.open with keys or a key_store is a config error naming the line', async () => {
    const file = writeTemp('unbusy.yaml', [
        'auth:',
        '  open: true',
        'key_store: keys.db',
        'providers:',
        '  a: {base_url: "http://127.0.0.1:9"}',
        'models:',
        '  m: [{provider: a, model: x}]',
        '',
    ].join('\n'));
    const r = await runGateway(['--check', '--config', file]);
    assert.equal(r.code, 1, r.output);
    assert.match(r.stderr, new RegExp(`${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:2: auth\\.open: .*key_store`));
});

/* ---- item: the admin API ---- */

test('admin API without a token: cross-site and token-less changes are refused, reads only from loopback names', async (t) => {
    const gw = await storeGateway(t);
    // A web page's form or fetch: foreign Host and Origin, a "simple" content type.
    const body = JSON.stringify({ name: 'minted' });
    let r = await gw.request('/admin/keys', {
        method: 'POST', body,
        headers: { host: 'evil.example', origin: 'http://evil.example', 'content-type': 'text/plain' },
    });
    assert.equal(r.status, 403, r.text);
    assertErrorShape(assert, r.text);
    assert.doesNotMatch(r.text, /sk-ub-/);
    // DNS rebinding: the page's own name as Host, no Origin on a simple GET.
    r = await gw.request('/admin/keys', { headers: { host: 'evil.example' } });
    assert.equal(r.status, 403, r.text);
    r = await gw.request('/admin/deployments', { headers: { host: 'localhost.evil.example:8080' } });
    assert.equal(r.status, 403, r.text);
    r = await gw.request('/admin/deployments', { headers: { host: '127.0.0.1.evil.example' } });
    assert.equal(r.status, 403, r.text);
    // Any Origin, even a loopback one: a browser sent it.
    r = await gw.request('/admin/deployments', { headers: { origin: `http://127.0.0.1:${gw.port}` } });
    assert.equal(r.status, 403, r.text);
    assert.match(assertErrorShape(assert, r.text).message, /Origin/);
    // On loopback, without a browser: still no change without the token.
    r = await gw.request('/admin/keys', { method: 'POST', body });
    assert.equal(r.status, 403, r.text);
    assert.match(assertErrorShape(assert, r.text).message, /admin\.token/);
    r = await gw.request('/admin/deployments/disable', { method: 'POST', body: JSON.stringify({ provider: 'a', model: 'x' }) });
    assert.equal(r.status, 403, r.text);
    // No admin change is reachable by GET either.
    for (const p of ['/admin/keys/delete', '/admin/deployments/disable']) {
        r = await gw.request(p);
        assert.notEqual(r.status, 200, `GET ${p}: ${r.text}`);
    }
    // A preflight is never granted.
    r = await gw.request('/admin/keys', {
        method: 'OPTIONS',
        headers: { origin: 'http://evil.example', 'access-control-request-method': 'POST' },
    });
    assert.ok(r.status >= 400, `OPTIONS: ${r.status}`);
    assert.equal(r.headers['access-control-allow-origin'], undefined);

    // Reads from loopback names work, and show nothing was created or changed.
    for (const host of ['localhost', `localhost:${gw.port}`, '127.0.0.1', `127.3.2.1:${gw.port}`, `[::1]:${gw.port}`, 'LOCALHOST']) {
        r = await gw.request('/admin/deployments', { headers: { host } });
        assert.equal(r.status, 200, `Host ${host}: ${r.text}`);
        assert.equal(r.json().models[0].deployments[0].admin, 'active');
    }
    assert.deepEqual((await storedKeys(gw)).keys, []);
});

test('admin API with a token: changes need it, and work with it whatever Host and Origin', async (t) => {
    const gw = await storeGateway(t, { admin: { token: TOKEN } });
    const body = JSON.stringify({ name: 'minted' });
    let r = await gw.request('/admin/keys', { method: 'POST', body, headers: { 'content-type': 'text/plain' } });
    assert.equal(r.status, 401, r.text);
    r = await gw.request('/admin/keys', {
        method: 'OPTIONS',
        headers: { origin: 'http://evil.example', 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization' },
    });
    assert.equal(r.status, 401, r.text);
    assert.equal(r.headers['access-control-allow-origin'], undefined);
    assert.equal(r.headers['access-control-allow-headers'], undefined);

    r = await gw.request('/admin/keys', {
        method: 'POST', body,
        headers: { ...bearer(TOKEN), host: 'gateway.internal.example', origin: 'https://ops.example' },
    });
    assert.equal(r.status, 201, r.text);
    const key = r.json().key;
    assert.equal((await chat(gw, bearer(key))).status, 200);
    r = await gw.request('/admin/keys', { headers: { ...bearer(TOKEN), host: 'gateway.internal.example' } });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json().keys.length, 1);
    r = await gw.request('/admin/keys/delete', { method: 'POST', body: JSON.stringify({ name: 'minted' }), headers: bearer(TOKEN) });
    assert.equal(r.status, 200, r.text);
    assert.equal((await chat(gw, bearer(key))).status, 401);
    assert.equal((await chat(gw)).status, 401);
});
