// Config reload: SIGHUP, POST /admin/reload and the file watch; an invalid file keeps the
// running config; generations (a removed deployment drains, learnt state kept by key,
// a removed model's queued request answered); 20 reloads under load without a failure.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, renameSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { PROVIDER_FAKE_ANSWER, startProviderFake } from '../fakes/providers.mjs';
import {
    FAKEUP_BIN, Fake, Proc, SLOW, assertErrorShape, closedPort, drainStream, expectedContent, fakeProvider, harness, tempDir, toYAML,
    waitUntil, withServerDefaults,
} from './lib.mjs';

const msgs = [{ role: 'user', content: 'hello' }];
const ADMIN_TOKEN = 'adm-reload-0123456789abcdef0123';
const ADMIN = { authorization: `Bearer ${ADMIN_TOKEN}` };
// The log lines an invalid reload writes (expected where a test sends one).
const RELOAD_ERRORS = [/config reload/];
const DNSMASQ = '/usr/sbin/dnsmasq';

function write(gw, config) {
    writeFileSync(gw.file, toYAML(withServerDefaults(config)));
}

async function reload(gw, headers = ADMIN) {
    const r = await gw.request('/admin/reload', { method: 'POST', headers });
    return { status: r.status, body: r.text ? JSON.parse(r.text) : null };
}

async function generation(gw) {
    const r = await gw.request('/admin/config', { headers: ADMIN });
    assert.equal(r.status, 200, r.text);
    return r.json().generation;
}

async function metric(gw, line) {
    const text = (await gw.request('/metrics')).text;
    const m = text.split('\n').find((l) => l.startsWith(line + ' '));
    return m === undefined ? undefined : Number(m.slice(line.length + 1));
}

async function dep(gw, model, provider) {
    const r = await gw.request('/admin/deployments', { headers: ADMIN });
    const m = r.json().models.find((x) => x.model === model);
    return m && m.deployments.find((d) => d.provider === provider);
}

/* n clients asking model m for whole answers in a loop until stop(), which gives the
   answers that came back whole and the failures. */
function steadyLoad(gw, n) {
    const sdk = gw.client();
    let stopped = false, ok = 0;
    const failed = [];
    const client = async () => {
        while (!stopped) {
            try {
                const c = await sdk.chat.completions.create({ model: 'm', messages: msgs });
                if (c.choices[0].message.content !== expectedContent(2)) throw new Error('content');
                ok++;
            } catch (e) { failed.push(String(e.message || e)); }
        }
    };
    const clients = Array.from({ length: n }, client);
    return { stop: async () => { stopped = true; await Promise.all(clients); return { ok, failed }; } };
}

test('POST /admin/reload and SIGHUP apply the file: an added model is served at once; the token is required', async (t) => {
    const h = harness(t);
    const f = await h.fake({ behavior: 'chunks=3' });
    // untuned: no timeouts, limits or reload keys
    const base = { admin: { token: ADMIN_TOKEN }, providers: { a: fakeProvider(f) }, models: { m: [{ provider: 'a', model: 'x' }] } };
    const gw = await h.gateway({ config: base });
    const sdk = gw.client();
    assert.equal((await gw.request('/admin/config', { headers: ADMIN })).json().watch, false);
    assert.equal(await generation(gw), 1);
    assert.equal(await metric(gw, 'unbusy_config_generation'), 1);

    write(gw, { ...base, models: { ...base.models, m2: [{ provider: 'a', model: 'y' }] } });
    const refused = await reload(gw, {});
    assert.equal(refused.status, 401);
    assertErrorShape(assert, refused.body);
    assert.equal((await reload(gw, { authorization: 'Bearer wrong' })).status, 401);
    assert.equal(await generation(gw), 1, 'nothing reloaded without the token');

    const r = await reload(gw);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.generation, 2);
    assert.deepEqual(r.body.changes.models.added, ['m2']);
    assert.deepEqual(r.body.changes.models.kept, ['m']);
    assert.deepEqual(r.body.changes.deployments.kept, ['m: a/x']);
    assert.deepEqual(r.body.restart_needed, []);
    const c = await sdk.chat.completions.create({ model: 'm2', messages: msgs });
    assert.equal(c.choices[0].message.content, expectedContent(3));

    write(gw, { ...base, models: { ...base.models, m3: [{ provider: 'a', model: 'z' }] } });
    gw.proc.signal('SIGHUP');
    await waitUntil(async () => (await generation(gw)) === 3, { timeout: 5000 * SLOW, what: 'generation 3 after SIGHUP' });
    const s = await sdk.chat.completions.create({ model: 'm3', messages: msgs, stream: true });
    assert.equal((await drainStream(s)).content, expectedContent(3));
    await assert.rejects(sdk.chat.completions.create({ model: 'm2', messages: msgs }), (e) => e.status === 404);
    assert.equal(await metric(gw, 'unbusy_config_reload_total{result="ok"}'), 2);
    assert.equal(await metric(gw, 'unbusy_config_generation'), 3);
    assert.ok((await metric(gw, 'unbusy_config_last_reload_success_timestamp_seconds')) > 1.7e9);
    const cfg = (await gw.request('/admin/config', { headers: ADMIN })).json();
    assert.equal(cfg.reloads.ok, 2);
    assert.equal(cfg.last_reload.generation, 3);
    assert.equal((await gw.request('/admin/deployments', { headers: ADMIN })).json().generation, 3);
});

test('an invalid file keeps the running config: every problem with its line, a 422, the metric', async (t) => {
    const h = harness(t);
    const f = await h.fake({ behavior: 'chunks=2' });
    const base = { admin: { token: ADMIN_TOKEN }, providers: { a: fakeProvider(f) }, models: { m: [{ provider: 'a', model: 'x' }] } };
    const gw = await h.gateway({ config: base, allowStderr: RELOAD_ERRORS });
    writeFileSync(gw.file, toYAML(withServerDefaults({
        ...base,
        timeouts: { first_token: 'soon' },
        models: { m: [{ provider: 'nope', model: 'x' }], m2: [{ provider: 'a', model: 'y' }] },
    })));
    const r = await reload(gw);
    assert.equal(r.status, 422, JSON.stringify(r.body));
    const e = assertErrorShape(assert, r.body);
    assert.equal(e.code, 'config_invalid');
    assert.match(e.message, /2 problems; the running config \(generation 1\) stays/);
    assert.equal(e.problems.length, 2, JSON.stringify(e.problems));
    for (const p of e.problems) assert.match(p, /unbusy\.yaml:\d+: /);
    assert.ok(e.problems.some((p) => /first_token/.test(p)));
    assert.ok(e.problems.some((p) => /nope/.test(p)));
    // the old config serves on; the new model is not there
    const sdk = gw.client();
    assert.equal((await sdk.chat.completions.create({ model: 'm', messages: msgs })).choices[0].message.content, expectedContent(2));
    await assert.rejects(sdk.chat.completions.create({ model: 'm2', messages: msgs }), (x) => x.status === 404);
    assert.equal(await generation(gw), 1);
    assert.equal(await metric(gw, 'unbusy_config_reload_total{result="invalid"}'), 1);
    assert.equal(await metric(gw, 'unbusy_config_reload_total{result="ok"}'), 0);
    assert.match(gw.proc.stderr, /config reload: .*unbusy\.yaml:\d+: /);
    // a restart-only change is applied for the rest and named
    write(gw, { ...base, server: { listen: '127.0.0.1:0', drain_timeout: '3s' }, models: { ...base.models, m2: [{ provider: 'a', model: 'y' }] } });
    const ok = await reload(gw);
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    assert.deepEqual(ok.body.restart_needed.map((x) => x.key), ['server.header_timeout/idle_timeout/drain_timeout']);
    assert.equal((await sdk.chat.completions.create({ model: 'm2', messages: msgs })).choices[0].message.content, expectedContent(2));
    assert.match(gw.proc.stderr, /need a restart: server.header_timeout/);
});

test('generations: a removed deployment drains its stream; learnt state of a kept one carries over', async (t) => {
    const h = harness(t);
    const keep = await h.fake({ behavior: 'ttft=30,chunks=2', name: 'fake-keep' });
    const slow = await h.fake({ behavior: 'chunks=12,chunk_ms=150', name: 'fake-slow' });
    const base = {
        admin: { token: ADMIN_TOKEN },
        providers: { k: fakeProvider(keep, { probe: false }), s: fakeProvider(slow, { probe: false }) },
        models: { m: [{ provider: 'k', model: 'x' }], gone: [{ provider: 's', model: 'y' }] },
    };
    const gw = await h.gateway({ config: base });
    const sdk = gw.client();
    for (let i = 0; i < 6; i++) await sdk.chat.completions.create({ model: 'm', messages: msgs });
    const before = await dep(gw, 'm', 'k');
    assert.equal(before.requests, 6);
    assert.ok(before.ttft_samples >= 6);
    // an operator's drain is state too: it must survive the reload
    const drained = await gw.request('/admin/deployments/drain', { method: 'POST', headers: ADMIN, body: { provider: 'k', model: 'x' } });
    assert.equal(drained.status, 200, drained.text);

    // a stream in flight on the deployment about to be removed
    let first;
    const gotFirst = new Promise((r) => { first = r; });
    const s = await sdk.chat.completions.create({ model: 'gone', messages: msgs, stream: true });
    const draining = drainStream(s, { onChunk: (c, n) => { if (n === 1) first(); } });
    await gotFirst;
    write(gw, { ...base, providers: { k: base.providers.k }, models: { m: base.models.m } });
    const r = await reload(gw);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual(r.body.changes.models.removed, ['gone']);
    assert.deepEqual(r.body.changes.deployments.removed, ['gone: s/y']);
    await assert.rejects(sdk.chat.completions.create({ model: 'gone', messages: msgs }), (e) => e.status === 404);
    const done = await draining;
    assert.equal(done.error, null, String(done.error));
    assert.equal(done.content, expectedContent(12), 'the stream of the old generation completed');

    const after = await dep(gw, 'm', 'k');
    assert.equal(after.admin, 'draining');
    assert.equal(after.requests, 6);
    assert.equal(after.ttft_samples, before.ttft_samples);
    assert.equal(after.ttft_p50_ms, before.ttft_p50_ms);
    assert.ok(after.ewma_ttft_ms > 0);
    const text = (await gw.request('/metrics')).text;
    assert.match(text, /unbusy_requests_total\{model="m",provider="k",status_class="2xx",outcome="ok"\} 6\b/);
});

test('queued requests: kept across a reload that keeps their model, answered 404 when it is removed', async (t) => {
    const h = harness(t);
    const f = await h.fake({ behavior: 'ttft=1200,chunks=1' });
    const base = {
        admin: { token: ADMIN_TOKEN },
        providers: { a: fakeProvider(f, { probe: false }) },
        models: { q: [{ provider: 'a', model: 'x', max_concurrency: 1 }], m: [{ provider: 'a', model: 'y' }] },
    };
    const gw = await h.gateway({ config: base });
    const sdk = gw.client({ timeout: 20000 * SLOW });
    const queuedNow = async (n) => (await gw.request('/admin/deployments', { headers: ADMIN }))
        .json().models.find((x) => x.model === 'q')?.admission.queued === n;
    const oneRunningOneQueued = async () => {
        const running = sdk.chat.completions.create({ model: 'q', messages: msgs });
        await waitUntil(async () => (await dep(gw, 'q', 'a'))?.inflight === 1, { what: 'one in flight' });
        const queued = sdk.chat.completions.create({ model: 'q', messages: msgs }).then((c) => c, (e) => e);
        await waitUntil(() => queuedNow(1), { what: 'one queued' });
        return { running, queued };
    };

    // a reload that keeps q (and changes the rest): the waiting request stays queued and is served
    let { running, queued } = await oneRunningOneQueued();
    write(gw, { ...base, models: { ...base.models, other: [{ provider: 'a', model: 'o' }] } });
    let r = await reload(gw);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.queued_requests_answered, 0);
    assert.ok(await queuedNow(1), 'still queued in the new generation');
    assert.equal((await running).choices[0].message.content, expectedContent(1));
    const served = await queued;
    assert.ok(!(served instanceof Error), String(served));
    assert.equal(served.choices[0].message.content, expectedContent(1));

    // a reload that removes q: the waiting request is answered at once, the running one finishes
    ({ running, queued } = await oneRunningOneQueued());
    write(gw, { ...base, models: { m: base.models.m } });
    r = await reload(gw);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.queued_requests_answered, 1);
    const e = await queued;
    assert.ok(e instanceof Error, 'the queued request failed');
    assert.equal(e.status, 404);
    assert.match(e.message, /removed from the configuration while this request waited/);
    assert.equal((await running).choices[0].message.content, expectedContent(1), 'the running one finished');
});

test('20 reloads under steady load (streams and whole answers, 4 clients): no request fails', async (t) => {
    const h = harness(t);
    const a = await h.fake({ behavior: 'chunks=4,chunk_ms=20', name: 'fake-a' });
    const b = await h.fake({ behavior: 'chunks=4,chunk_ms=20', name: 'fake-b' });
    const variant = (i) => ({
        admin: { token: ADMIN_TOKEN },
        providers: { a: fakeProvider(a, { probe: false }), b: fakeProvider(b, { probe: false }) },
        models: {
            m: [{ provider: 'a', model: 'x', weight: 1 + (i % 3) }, { provider: 'b', model: i % 2 ? 'y' : 'y2' }],
            ...(i % 2 ? { extra: [{ provider: 'b', model: 'e' }] } : {}),
        },
    });
    const gw = await h.gateway({ config: variant(0) });
    const sdk = gw.client({ timeout: 30000 * SLOW });
    let stop = false;
    const results = { ok: 0, failed: [] };
    const client = async (n) => {
        for (let k = 0; !stop && k < 2000; k++) {
            try {
                if ((n + k) % 2) {
                    const s = await sdk.chat.completions.create({ model: 'm', messages: msgs, stream: true });
                    const d = await drainStream(s);
                    if (d.error || d.content !== expectedContent(4)) throw d.error || new Error(`content ${d.content}`);
                } else {
                    const c = await sdk.chat.completions.create({ model: 'm', messages: msgs });
                    if (c.choices[0].message.content !== expectedContent(4)) throw new Error('content');
                }
                results.ok++;
            } catch (e) {
                results.failed.push(String(e.message || e));
            }
        }
    };
    const clients = [0, 1, 2, 3].map(client);
    for (let i = 1; i <= 20; i++) {
        write(gw, variant(i));
        const r = await reload(gw);
        assert.equal(r.status, 200, JSON.stringify(r.body));
        assert.equal(r.body.generation, i + 1);
        const at = results.ok;
        await waitUntil(() => results.ok >= at + 2, { timeout: 10000 * SLOW, what: 'traffic between reloads' });
    }
    stop = true;
    await Promise.all(clients);
    assert.deepEqual(results.failed, []);
    assert.ok(results.ok >= 40, `only ${results.ok} requests`);
    assert.equal(await metric(gw, 'unbusy_config_reload_total{result="ok"}'), 20);
    // the counters went on across the registries of 21 generations (a request is counted
    // in its finalize, which may come just after the client has read its last byte)
    const total = async () => (await gw.request('/metrics')).text.split('\n')
        .filter((l) => l.startsWith('unbusy_requests_total{model="m"'))
        .reduce((s, l) => s + Number(l.split(' ').pop()), 0);
    await waitUntil(async () => (await total()) === results.ok,
        { timeout: 5000 * SLOW, what: `unbusy_requests_total to reach ${results.ok}` });
    assert.equal(await total(), results.ok);
});

test('the file watch (opt-in) reloads a changed file, a ConfigMap-style symlink swap included', async (t) => {
    const h = harness(t);
    const f = await h.fake({ behavior: 'chunks=2' });
    const cfg = (models) => toYAML(withServerDefaults({
        admin: { token: ADMIN_TOKEN },
        reload: { watch: true, interval: '200ms' },
        providers: { a: fakeProvider(f) },
        models,
    }));
    // as Kubernetes mounts a ConfigMap: unbusy.yaml -> ..data/unbusy.yaml, ..data -> a versioned dir
    const dir = tempDir();
    mkdirSync(path.join(dir, 'v1'));
    writeFileSync(path.join(dir, 'v1', 'unbusy.yaml'), cfg({ m: [{ provider: 'a', model: 'x' }] }));
    symlinkSync('v1', path.join(dir, '..data'));
    symlinkSync(path.join('..data', 'unbusy.yaml'), path.join(dir, 'unbusy.yaml'));
    const gw = await h.gateway({ config: cfg({ m: [{ provider: 'a', model: 'x' }] }), args: ['--config', path.join(dir, 'unbusy.yaml')] });
    const conf = (await gw.request('/admin/config', { headers: ADMIN })).json();
    assert.equal(conf.watch, true);
    assert.equal(conf.watch_interval_ms, 200);
    // the swap: a new versioned dir, a new ..data link renamed over the old one
    mkdirSync(path.join(dir, 'v2'));
    writeFileSync(path.join(dir, 'v2', 'unbusy.yaml'), cfg({ m: [{ provider: 'a', model: 'x' }], w: [{ provider: 'a', model: 'w' }] }));
    symlinkSync('v2', path.join(dir, '..data_tmp'));
    renameSync(path.join(dir, '..data_tmp'), path.join(dir, '..data'));
    await waitUntil(async () => (await generation(gw)) === 2, { timeout: 5000 * SLOW, what: 'the watch to reload' });
    const sdk = gw.client();
    assert.equal((await sdk.chat.completions.create({ model: 'w', messages: msgs })).choices[0].message.content, expectedContent(2));
    // the same content written again is not a change
    writeFileSync(path.join(dir, 'v2', 'unbusy.yaml'), cfg({ m: [{ provider: 'a', model: 'x' }], w: [{ provider: 'a', model: 'w' }] }));
    // an edit in place is
    writeFileSync(path.join(dir, 'v2', 'unbusy.yaml'), cfg({ w: [{ provider: 'a', model: 'w' }] }));
    await waitUntil(async () => (await generation(gw)) === 3, { timeout: 5000 * SLOW, what: 'the second reload' });
    assert.equal((await gw.request('/admin/config', { headers: ADMIN })).json().reloads.ok, 2);
    await assert.rejects(sdk.chat.completions.create({ model: 'm', messages: msgs }), (e) => e.status === 404);
});

test('models: auto lists carry over a reload and the fetches follow the new config', async (t) => {
    const h = harness(t);
    const one = await startProviderFake({ models: ['qwen-a'] });
    const two = await startProviderFake({ models: ['qwen-b'] });
    t.after(() => Promise.all([one.stop(), two.stop()]));
    const prov = (f, extra = {}) => ({ type: 'vllm', base_url: f.baseURL, models: 'auto', probe: false, ...extra });
    const base = { admin: { token: ADMIN_TOKEN }, providers: { one: prov(one) }, models: {} };
    const gw = await h.gateway({ config: base });
    const sdk = gw.client();
    const ids = async () => (await sdk.models.list()).data.map((m) => m.id).sort();
    await waitUntil(async () => (await ids()).includes('qwen-a'), { timeout: 10000 * SLOW, what: 'the imported list' });
    // the next config adds a provider and points one's list at a path that fails: what one
    // listed before must come from the carried list, since its fetches now fail
    write(gw, { ...base, providers: { one: prov(one, { models_path: '/nothing-here' }), two: prov(two) } });
    const r = await reload(gw);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const a = await sdk.chat.completions.create({ model: 'qwen-a', messages: msgs });
    assert.equal(a.choices[0].message.content, PROVIDER_FAKE_ANSWER);
    await waitUntil(async () => (await ids()).includes('qwen-b'), { timeout: 10000 * SLOW, what: 'the new provider\'s list' });
    assert.deepEqual(await ids(), ['qwen-a', 'qwen-b']);
    await waitUntil(() => one.requests.some((q) => q.url.includes('/nothing-here')), { what: 'a fetch on the new path' });
    assert.equal((await sdk.chat.completions.create({ model: 'qwen-a', messages: msgs })).choices[0].message.content,
        PROVIDER_FAKE_ANSWER, 'a failed fetch keeps the carried list');
});

test('probes: a provider they marked down stays down across a reload, and the new probes bring it back', async (t) => {
    const h = harness(t);
    const a = await h.fake({ behavior: 'chunks=2', name: 'fake-a' });
    const b = await h.fake({ behavior: 'chunks=2', name: 'fake-b' });
    const base = {
        admin: { token: ADMIN_TOKEN },
        providers: {
            a: fakeProvider(a, { probe: { interval: '100ms', timeout: '500ms', unhealthy_threshold: 2, healthy_threshold: 2 } }),
            b: fakeProvider(b, { probe: false }),
        },
        models: { m: [{ provider: 'a', model: 'ma' }, { provider: 'b', model: 'mb', tier: 1 }] },
    };
    const gw = await h.gateway({ config: base, strictStderr: false });
    await fetch(`${a.url}/_fake/behavior`, { method: 'POST', body: 'status=503' });
    await waitUntil(async () => (await dep(gw, 'm', 'a')).probe.down, { timeout: 3000 * SLOW, what: 'probe down' });
    write(gw, { ...base, models: { ...base.models, m2: [{ provider: 'b', model: 'm2' }] } });
    const r = await reload(gw);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal((await dep(gw, 'm', 'a')).probe.down, true, 'the verdict carried over');
    const sdk = gw.client();
    const { response } = await sdk.chat.completions.create({ model: 'm', messages: msgs }).withResponse();
    assert.equal(response.headers.get('x-unbusy-provider'), 'b');
    assert.equal(response.headers.get('x-unbusy-attempts'), '1', 'the probed-down provider was not tried');
    await fetch(`${a.url}/_fake/behavior`, { method: 'POST', body: 'chunks=2' });
    await waitUntil(async () => !(await dep(gw, 'm', 'a')).probe.down, { timeout: 3000 * SLOW, what: 'the new probes: up' });
});

/* A dnsmasq on 127.0.0.1 answering for *.test from a hosts file (as discovery.test.mjs does). */
async function startDns(t, hosts) {
    const dir = tempDir();
    writeFileSync(path.join(dir, 'hosts'), hosts);
    for (let tries = 0; ; tries++) {
        const port = 20000 + Math.floor(Math.random() * 30000);
        const proc = new Proc('dnsmasq', DNSMASQ, [
            '--no-daemon', '--no-resolv', '--no-hosts', `--port=${port}`, '--listen-address=127.0.0.1',
            '--bind-interfaces', `--addn-hosts=${path.join(dir, 'hosts')}`, '--local-ttl=1',
            '--local=/test/', '--pid-file=', '--log-facility=-', '--conf-file=/dev/null',
        ]);
        try {
            await proc.waitFor('stderr', /started, version/, 5000);
        } catch (e) {
            await proc.terminate(1000);
            if (tries < 3) continue; /* the port was taken */
            throw e;
        }
        t.after(() => proc.terminate(2000));
        return `127.0.0.1:${port}`;
    }
}

test('DNS discovery and a reload: the addresses found stay in force, the resolver and its metrics restart, nothing fails', { skip: existsSync(DNSMASQ) ? false : 'dnsmasq is not installed' }, async (t) => {
    const h = harness(t);
    const fakes = [];
    for (const host of ['127.0.0.2', '127.0.0.3']) {
        const proc = new Proc(`fakeup ${host}`, FAKEUP_BIN, ['--host', host, '--port', String(fakes[0]?.port ?? 0), '--behavior', 'chunks=2']);
        const m = await proc.waitFor('stdout', /^listening (\d+)\s*$/m, 10000);
        const f = new Fake(proc, Number(m[1]));
        t.after(() => f.stop());
        fakes.push(f);
    }
    const port = fakes[0].port;
    const resolver = await startDns(t, '127.0.0.2 pool.test\n127.0.0.3 pool.test\n');
    const base = (i) => ({
        admin: { token: ADMIN_TOKEN },
        providers: { pool: { base_url: `http://pool.test:${port}/v1`, discovery: { dns: true, resolver }, probe: false } },
        models: { m: [{ provider: 'pool', model: 'x' }], ...(i % 2 ? { other: [{ provider: 'pool', model: 'o' }] } : {}) },
    });
    const gw = await h.gateway({ config: base(0) });
    const active = async () => (await dep(gw, 'm', 'pool')).discovery.endpoints.filter((e) => e.state === 'active').length;
    await waitUntil(async () => (await active()) === 2, { timeout: 10000 * SLOW, what: 'two addresses' });
    const load = steadyLoad(gw, 2);
    for (let i = 1; i <= 5; i++) {
        write(gw, base(i));
        const r = await reload(gw);
        assert.equal(r.status, 200, JSON.stringify(r.body));
        assert.equal(await active(), 2, `the addresses kept at once after reload ${i}`);
    }
    const { ok, failed } = await load.stop();
    assert.deepEqual(failed, []);
    assert.ok(ok > 0);
    const text = (await gw.request('/metrics')).text;
    assert.match(text, /unbusy_discovery_/, 'the discovery families rendered by the new registry');
    assert.match(text, /unbusy_config_generation 6\b/);
});

test('with redis: reloads under load restart the shared-state sync on each generation; its metrics go on', async (t) => {
    const h = harness(t);
    const port = await closedPort();
    const redis = new Proc('redis-server', 'redis-server', ['--port', String(port), '--bind', '127.0.0.1',
        '--save', '', '--appendonly', 'no', '--dir', tempDir(), '--protected-mode', 'no']);
    t.after(() => redis.terminate(2000));
    await redis.waitFor('stdout', /Ready to accept connections/, 5000);
    const f = await h.fake({ behavior: 'chunks=2' });
    const base = (i) => ({
        admin: { token: ADMIN_TOKEN },
        redis: { url: `redis://127.0.0.1:${port}` },
        providers: { a: fakeProvider(f, { probe: false }) },
        models: { m: [{ provider: 'a', model: 'x', weight: 1 + (i % 2) }], ...(i % 2 ? { other: [{ provider: 'a', model: 'o' }] } : {}) },
    });
    const gw = await h.gateway({ config: base(0) });
    await waitUntil(async () => /unbusy_redis_up 1\b/.test((await gw.request('/metrics')).text),
        { timeout: 5000 * SLOW, what: 'redis up' });
    const load = steadyLoad(gw, 2);
    for (let i = 1; i <= 5; i++) {
        write(gw, base(i));
        const r = await reload(gw);
        assert.equal(r.status, 200, JSON.stringify(r.body));
        assert.deepEqual(r.body.restart_needed, []);
    }
    const { ok, failed } = await load.stop();
    assert.deepEqual(failed, []);
    assert.ok(ok > 0);
    await waitUntil(async () => /unbusy_redis_up 1\b/.test((await gw.request('/metrics')).text),
        { timeout: 5000 * SLOW, what: 'the new sync up and rendered' });
});
