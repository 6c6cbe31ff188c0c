// Shared state across replicas through a real redis-server: one key's rpm exact across two
// replicas, a breaker opened on one seen by the other, Redis killed under load, AUTH.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import tls from 'node:tls';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { Proc, SLOW, closedPort, fakeProvider, harness, tempDir, waitUntil } from './lib.mjs';

const msgs = [{ role: 'user', content: 'hello' }];
const KEY = 'sk-test-key-redis-0123456789';
const AUTH = { authorization: `Bearer ${KEY}` };
const ADMIN_TOKEN = 'adm-redis-0123456789abcdef';
const ADMIN = { authorization: `Bearer ${ADMIN_TOKEN}` };

/* Sends inline commands (one per line), resolves with the last one's reply line (null on error). */
function redisLine(port, commands) {
    const n = commands.split('\r\n').length;
    return new Promise((resolve) => {
        const s = net.connect(port, '127.0.0.1');
        let data = '';
        const done = (v) => { s.destroy(); resolve(v); };
        s.setTimeout(1000, () => done(null));
        s.on('error', () => done(null));
        s.on('connect', () => s.write(`${commands}\r\n`));
        s.on('data', (d) => {
            data += d;
            const lines = data.split('\r\n');
            if (lines.length > n) done(lines[n - 1]);
        });
    });
}

/* A redis-server of our own on a free loopback port, nothing saved, stopped by PID. */
async function startRedis(t, { port, password } = {}) {
    port = port || await closedPort();
    const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
        '--dir', tempDir(), '--protected-mode', 'no'];
    if (password) args.push('--requirepass', password);
    const proc = new Proc('redis-server', 'redis-server', args);
    t.after(() => proc.terminate(2000));
    await waitUntil(async () => {
        const l = await redisLine(port, 'PING');
        return l === '+PONG' || (l && l.startsWith('-NOAUTH'));
    }, { timeout: 5000, what: 'redis-server answering PING' });
    return { proc, port, url: `redis://127.0.0.1:${port}` };
}

function post(gw, body, headers = {}) {
    return gw.request('/v1/chat/completions', {
        method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body),
    });
}

async function metric(gw, line) {
    const text = (await gw.request('/metrics')).text;
    const m = text.match(new RegExp(`^${line.replace(/[{}"]/g, '\\$&')} (\\S+)$`, 'm'));
    return m ? Number(m[1]) : null;
}

async function depState(gw, provider) {
    const st = (await gw.request('/admin/deployments', { headers: ADMIN })).json();
    for (const m of st.models) for (const d of m.deployments) if (d.provider === provider) return d;
    throw new Error(`no deployment on ${provider}`);
}

test('two replicas share one key\'s rpm: exactly the limit across both (untuned redis: section)', async (t) => {
    const r = await startRedis(t);
    const h = harness(t);
    const f = await h.fake({ behavior: 'chunks=1' });
    const config = {
        keys: [{ name: 'shared', key: KEY, rpm: 12 }],
        providers: { a: fakeProvider(f, { probe: false }) },
        models: { m: [{ provider: 'a', model: 'x' }] },
        redis: { url: r.url },
    };
    const gws = [await h.gateway({ config }), await h.gateway({ config })];
    for (const gw of gws)
        await waitUntil(async () => (await metric(gw, 'unbusy_redis_up')) === 1, { timeout: 5000 * SLOW, what: 'redis up' });
    const started = Date.now();
    let ok = 0;
    const per = [0, 0];
    for (let i = 0; i < 30; i++) {
        const res = await post(gws[i % 2], { model: 'm', messages: msgs, max_tokens: 5 }, AUTH);
        if (res.status === 200) {
            ok++;
            per[i % 2]++;
        } else {
            assert.equal(res.status, 429, res.text);
            assert.ok(Number(res.headers['retry-after']) >= 1);
        }
    }
    const elapsed = Date.now() - started;
    // 12 per minute refills one every 5 s: more only if the loop took that long
    const allowed = 12 + Math.floor(elapsed / 5000);
    t.diagnostic(`admitted ${ok} (${per.join(' + ')}) of 30 in ${elapsed} ms; limit 12`);
    assert.ok(ok >= 12 && ok <= allowed, `admitted ${ok}, expected 12 (up to ${allowed})`);
    assert.ok(per[0] > 0 && per[1] > 0, 'one replica admitted nothing');
    assert.equal((await f.stats()).requests, ok, 'a refused request reached the provider');
    // without Redis each replica would have admitted 12 on its own
    const checks = await metric(gws[0], 'unbusy_redis_limit_checks_total{result="refused"}');
    assert.ok(checks > 0, 'no refusal came from the shared bucket');
});

test('a breaker opened on one replica is seen by the other within a second', async (t) => {
    const r = await startRedis(t);
    const h = harness(t);
    const a = await h.fake({ behavior: 'status=503', name: 'fake-a' });
    const b = await h.fake({ behavior: 'chunks=2', name: 'fake-b' });
    const config = {
        admin: { token: ADMIN_TOKEN },
        providers: { a: fakeProvider(a, { probe: false }), b: fakeProvider(b, { probe: false }) },
        models: {
            m: {
                deployments: [{ provider: 'a', model: 'ma', tier: 0 }, { provider: 'b', model: 'mb', tier: 1 }],
                resilience: { breaker: { consecutive_failures: 3, open: '20s', open_max: '20s' } },
            },
        },
        redis: { url: r.url },
    };
    const g1 = await h.gateway({ config, strictStderr: false });
    const g2 = await h.gateway({ config, strictStderr: false });
    for (const gw of [g1, g2])
        await waitUntil(async () => (await metric(gw, 'unbusy_redis_up')) === 1, { timeout: 5000 * SLOW, what: 'redis up' });
    const sdk = g1.client({ maxRetries: 0 });
    for (let i = 0; i < 3; i++) await sdk.chat.completions.create({ model: 'm', messages: msgs });
    assert.equal((await depState(g1, 'a')).breaker, 'open');
    const opened = Date.now();
    assert.equal((await depState(g2, 'a')).eligible, true, 'replica 2 had it out before');
    await waitUntil(async () => (await depState(g2, 'a')).eligible === false,
        { timeout: 3000 * SLOW, interval: 20, what: 'replica 2 keeping A out' });
    const seenMs = Date.now() - opened;
    t.diagnostic(`seen on the other replica after ${seenMs} ms`);
    assert.ok(seenMs < 1000 * SLOW, `seen after ${seenMs} ms`);
    const d = await depState(g2, 'a');
    assert.equal(d.why_not, 'cooldown');
    assert.ok(d.cooldown_remaining_ms > 15000, `cooldown ${d.cooldown_remaining_ms} ms`);
    // replica 2 now sends nothing to A, without having failed there itself
    const before = (await a.stats()).requests;
    const res = await g2.client({ maxRetries: 0 }).chat.completions.create({ model: 'm', messages: msgs }).withResponse();
    assert.equal(res.response.headers.get('x-unbusy-provider'), 'b');
    assert.equal((await a.stats()).requests, before, 'replica 2 still asked A');
    assert.equal(await metric(g2, 'unbusy_redis_breaker_events_total{direction="received"}'), 1);
    assert.match(g2.proc.stderr, /deployment a\/ma: circuit breaker open on another replica/);
});

test('Redis killed under load: no failed request, local limits, back in sync when it returns', async (t) => {
    const r = await startRedis(t);
    const h = harness(t);
    const f = await h.fake({ behavior: 'chunks=3' });
    const config = {
        keys: [{ name: 'shared', key: KEY, rpm: 1000000, tpm: 100000000 }],
        providers: { a: fakeProvider(f, { probe: false }) },
        models: { m: [{ provider: 'a', model: 'x' }] },
        redis: { url: r.url, timeout: '30ms' },
    };
    const gws = [await h.gateway({ config }), await h.gateway({ config })];
    for (const gw of gws)
        await waitUntil(async () => (await metric(gw, 'unbusy_redis_up')) === 1, { timeout: 5000 * SLOW, what: 'redis up' });
    const total = 300;
    let next = 0, done = 0;
    const errors = [];
    let killed = false;
    const clients = gws.map((gw) => gw.client({ apiKey: KEY, maxRetries: 0 }));
    await Promise.all(Array.from({ length: 6 }, async (_, w) => {
        while (next < total) {
            const i = next++;
            try {
                const stream = i % 2 === 0;
                const c = clients[i % 2];
                if (stream) {
                    const s = await c.chat.completions.create({ model: 'm', messages: msgs, stream: true });
                    for await (const _chunk of s) { /* drain */ }
                } else {
                    await c.chat.completions.create({ model: 'm', messages: msgs });
                }
            } catch (e) {
                errors.push(`${i}: ${e.status ?? ''} ${e.message}`);
            }
            if (++done === 100 && !killed) {
                killed = true;
                r.proc.signal('SIGKILL');
            }
        }
    }));
    assert.ok(killed);
    assert.deepEqual(errors, [], 'client-visible errors');
    for (const gw of gws) {
        assert.equal(await metric(gw, 'unbusy_redis_up'), 0);
        assert.match(gw.proc.stderr, /redis \((worker \d+|main)\): connection to redis:\/\/127\.0\.0\.1:\d+ lost/);
    }
    const fallbacks = (await metric(gws[0], 'unbusy_redis_fallbacks_total{reason="down"}')) +
        (await metric(gws[1], 'unbusy_redis_fallbacks_total{reason="down"}'));
    assert.ok(fallbacks > 0, 'no request was decided locally');
    // it comes back on the same port: every loop reconnects, the limits are shared again
    await startRedis(t, { port: r.port });
    for (const gw of gws)
        await waitUntil(async () => (await metric(gw, 'unbusy_redis_up')) === 1, { timeout: 8000 * SLOW, what: 'redis up again' });
    const res = await post(gws[0], { model: 'm', messages: msgs }, AUTH);
    assert.equal(res.status, 200);
});

test('AUTH with a password: works, and the password is in no log, metric or admin answer', async (t) => {
    const PASSWORD = 'redis-pw-Zq8x7Lk2';
    const r = await startRedis(t, { password: PASSWORD });
    const h = harness(t);
    const f = await h.fake({ behavior: 'chunks=1' });
    const base = {
        admin: { token: ADMIN_TOKEN },
        keys: [{ name: 'shared', key: KEY, rpm: 2 }],
        providers: { a: fakeProvider(f, { probe: false }) },
        models: { m: [{ provider: 'a', model: 'x' }] },
    };
    const good = await h.gateway({ config: { ...base, redis: { url: `redis://default:${PASSWORD}@127.0.0.1:${r.port}/3` } } });
    const bad = await h.gateway({
        config: { ...base, redis: { url: `redis://:wrong-${PASSWORD}@127.0.0.1:${r.port}` } },
    });
    await waitUntil(async () => (await metric(good, 'unbusy_redis_up')) === 1, { timeout: 5000 * SLOW, what: 'redis up' });
    for (let i = 0; i < 2; i++) assert.equal((await post(good, { model: 'm', messages: msgs }, AUTH)).status, 200);
    // the bucket is in database 3, under the default prefix
    const c = await redisLine(r.port, `AUTH ${PASSWORD}\r\nSELECT 3\r\nEXISTS unbusy:rl:k:config:shared`);
    assert.equal(c, ':1');
    // a wrong password: refused, said once, and requests flow on local limits
    await waitUntil(() => /handshake was refused: WRONGPASS/.test(bad.proc.stderr), { timeout: 5000 * SLOW, what: 'WRONGPASS logged' });
    assert.equal(await metric(bad, 'unbusy_redis_up'), 0);
    for (let i = 0; i < 2; i++) assert.equal((await post(bad, { model: 'm', messages: msgs }, AUTH)).status, 200);
    assert.equal((await post(bad, { model: 'm', messages: msgs }, AUTH)).status, 429, 'the local limit still holds');
    // retried with backoff, said once per connection (the workers' and the main loop's)
    await new Promise((r) => setTimeout(r, 1000));
    const refusals = bad.proc.stderr.split('\n').filter((l) => /handshake was refused/.test(l)).length;
    const loops = (await metric(bad, 'unbusy_redis_connections{state="open"}'));
    assert.ok(refusals >= 1 && refusals <= loops, `${refusals} refusal lines for ${loops} connections`);
    assert.ok((await metric(bad, 'unbusy_redis_connects_total{result="failed"}')) > loops, 'no retry');
    for (const gw of [good, bad]) {
        const seen = [gw.proc.stderr, gw.proc.stdout, (await gw.request('/metrics')).text,
            (await gw.request('/admin/deployments', { headers: ADMIN })).text,
            (await gw.request('/admin/state', { headers: ADMIN })).text].join('\n');
        assert.ok(!seen.includes(PASSWORD), 'the Redis password was shown');
        assert.match(gw.proc.stderr, /redis:\/\/(default)?:\*\*\*@127\.0\.0\.1/);
    }
});

test('a budget counts the spend of every replica', async (t) => {
    const r = await startRedis(t);
    const h = harness(t);
    const f = await h.fake({ behavior: 'chunks=2' });
    const config = {
        keys: [{ name: 'team-a', key: KEY }],
        // 2 completion tokens at 0.1 USD each: every request costs 0.20 USD; 1 USD a day
        prices: { a: { x: { input: 0, output: 100000 } } },
        budgets: { keys: { 'team-a': { daily: 1 } } },
        providers: { a: fakeProvider(f, { probe: false }) },
        models: { m: [{ provider: 'a', model: 'x' }] },
        redis: { url: r.url },
    };
    const g1 = await h.gateway({ config, strictStderr: false });
    const g2 = await h.gateway({ config, strictStderr: false });
    // three on one replica (0.60 USD), two on the other (0.40): the budget is spent
    for (let i = 0; i < 3; i++) assert.equal((await post(g1, { model: 'm', messages: msgs }, AUTH)).status, 200);
    for (let i = 0; i < 2; i++) assert.equal((await post(g2, { model: 'm', messages: msgs }, AUTH)).status, 200);
    // each replica learns the other's spend within two sync intervals (0.5 s): polled every
    // 0.6 s, at most the first poll of each replica slips through
    for (const gw of [g1, g2]) {
        const res = await waitUntil(async () => {
            const x = await post(gw, { model: 'm', messages: msgs }, AUTH);
            return x.status === 429 ? x : null;
        }, { timeout: 3000 * SLOW, interval: 600, what: 'the shared budget refusing' }).catch(() => null);
        assert.ok(res, 'a replica kept serving past the budget of both');
        assert.equal(res.json().error.code, 'insufficient_quota');
    }
    // without sharing, each would have allowed five: at most one request slipped past
    // while the spend travelled (the polls above)
    assert.ok((await f.stats()).requests <= 7, `${(await f.stats()).requests} requests reached the provider`);
});

test('a key\'s max_concurrency holds across replicas', async (t) => {
    const r = await startRedis(t);
    const h = harness(t);
    const f = await h.fake({ behavior: 'ttft=1500,chunks=1' });
    const config = {
        keys: [{ name: 'shared', key: KEY, max_concurrency: 2 }],
        providers: { a: fakeProvider(f, { probe: false }) },
        models: { m: [{ provider: 'a', model: 'x' }] },
        redis: { url: r.url },
    };
    const g1 = await h.gateway({ config });
    const g2 = await h.gateway({ config });
    for (const gw of [g1, g2])
        await waitUntil(async () => (await metric(gw, 'unbusy_redis_up')) === 1, { timeout: 5000 * SLOW, what: 'redis up' });
    // two slow requests on replica 1 fill the key's bound
    const slow = [post(g1, { model: 'm', messages: msgs }, AUTH), post(g1, { model: 'm', messages: msgs }, AUTH)];
    await waitUntil(async () => (await f.stats()).requests === 2, { timeout: 3000 * SLOW, what: 'two in flight' });
    const res = await post(g2, { model: 'm', messages: msgs }, AUTH);
    assert.equal(res.status, 429, res.text);
    assert.match(res.json().error.message, /in flight/);
    for (const x of await Promise.all(slow)) assert.equal(x.status, 200);
    // they ended: their slots are free on every replica
    assert.equal((await post(g2, { model: 'm', messages: msgs }, AUTH)).status, 200);
});

test('rediss://: TLS to Redis, verified against ca_file; a certificate it cannot verify keeps it local', async (t) => {
    const dir = tempDir();
    const cert = path.join(dir, 'redis.crt'), key = path.join(dir, 'redis.key');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
        '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1',
        '-keyout', key, '-out', cert], { stdio: 'pipe' });
    const port = await closedPort();
    const proc = new Proc('redis-server', 'redis-server', ['--port', '0', '--tls-port', String(port),
        '--bind', '127.0.0.1', '--tls-cert-file', cert, '--tls-key-file', key, '--tls-ca-cert-file', cert,
        '--tls-auth-clients', 'no', '--save', '', '--appendonly', 'no', '--dir', dir]);
    t.after(() => proc.terminate(2000));
    const ca = readFileSync(cert, 'utf8');
    await waitUntil(() => new Promise((resolve) => {
        const s = tls.connect({ port, host: '127.0.0.1', ca }, () => s.write('PING\r\n'));
        s.on('data', (d) => { s.destroy(); resolve(String(d).startsWith('+PONG')); });
        s.on('error', () => resolve(false));
    }), { timeout: 5000, what: 'redis-server answering PING over TLS' });
    const h = harness(t);
    const f = await h.fake({ behavior: 'chunks=1' });
    const base = {
        keys: [{ name: 'shared', key: KEY, rpm: 3 }],
        providers: { a: fakeProvider(f, { probe: false }) },
        models: { m: [{ provider: 'a', model: 'x' }] },
    };
    const good = await h.gateway({ config: { ...base, redis: { url: `rediss://127.0.0.1:${port}`, ca_file: cert } } });
    const bad = await h.gateway({ config: { ...base, redis: { url: `rediss://127.0.0.1:${port}` } } });
    await waitUntil(async () => (await metric(good, 'unbusy_redis_up')) === 1, { timeout: 5000 * SLOW, what: 'redis up over TLS' });
    for (let i = 0; i < 3; i++) assert.equal((await post(good, { model: 'm', messages: msgs }, AUTH)).status, 200);
    assert.equal((await post(good, { model: 'm', messages: msgs }, AUTH)).status, 429);
    assert.ok((await metric(good, 'unbusy_redis_limit_checks_total{result="admitted"}')) >= 1);
    // the system store does not know this certificate: never up, requests decided locally
    await waitUntil(() => /redis \(\w+( \d+)?\): cannot connect to rediss:\/\/127\.0\.0\.1:\d+: tls/.test(bad.proc.stderr),
        { timeout: 5000 * SLOW, what: 'the TLS failure logged' });
    assert.equal(await metric(bad, 'unbusy_redis_up'), 0);
    assert.equal((await post(bad, { model: 'm', messages: msgs }, AUTH)).status, 200);
});
