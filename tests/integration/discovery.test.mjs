// Service discovery through DNS: a real dnsmasq on loopback answers for the test's names,
// fakes listen on 127.0.0.2, 127.0.0.3, ... (all of 127/8 is the loopback interface on
// Linux) and the records change during the test (the hosts file rewritten, SIGHUP).
//
// Covered: traffic spread over every address of a name (an untuned discovery: section);
// an address added is used after the TTL; an address removed drains with no failed request;
// addresses that refuse connections or answer 500 get their own breakers while the others
// serve, with the deployment's breaker closed; a discovered deployment's share grows with
// its healthy addresses; SRV records with their ports and priorities; a resolver
// that stops answering leaves the last good set serving (stale), and a name that never
// resolved makes the deployment ineligible with a clear reason.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import OpenAI from 'openai';
import {
    Fake, FAKEUP_BIN, Proc, SLOW, harness, httpRequest, tempDir, waitUntil,
} from './lib.mjs';

const DNSMASQ = '/usr/sbin/dnsmasq';
const TOKEN = 'discovery-admin-token-0123456789';
const skip = existsSync(DNSMASQ) ? false : 'dnsmasq (dnsmasq-base) is not installed';
const msgs = [{ role: 'user', content: 'hello' }];

/* A TCP port free on 127.0.0.1 right now (dnsmasq takes it for UDP and TCP). */
function freePort() {
    return new Promise((resolve, reject) => {
        const s = net.createServer();
        s.once('error', reject);
        s.listen(0, '127.0.0.1', () => {
            const { port } = s.address();
            s.close(() => resolve(port));
        });
    });
}

/* dnsmasq on 127.0.0.1:PORT answering from a hosts file and a conf file (SRV records), every
   record with a TTL of 1 s; set() rewrites the hosts file and makes dnsmasq reread it (SIGHUP);
   restart() starts it again on the same port with another conf file (SIGHUP does not reread
   that one). */
async function startDns(t, { hosts = '', conf = '' } = {}, fixedPort = 0, dir = tempDir()) {
    const hostsFile = path.join(dir, 'hosts');
    const confFile = path.join(dir, 'dnsmasq.conf');
    writeFileSync(hostsFile, hosts);
    writeFileSync(confFile, conf);
    for (let tries = 0; ; tries++) {
        const port = fixedPort || await freePort();
        const proc = new Proc('dnsmasq', DNSMASQ, [
            '--no-daemon', '--no-resolv', '--no-hosts', `--port=${port}`,
            '--listen-address=127.0.0.1', '--bind-interfaces', `--addn-hosts=${hostsFile}`,
            `--conf-file=${confFile}`, '--local-ttl=1', '--local=/test/', '--pid-file=', '--log-facility=-',
        ]);
        try {
            await proc.waitFor('stderr', /started, version/, 5000);
        } catch (e) {
            await proc.terminate(1000);
            if (tries < 3 && !fixedPort) continue; /* the port was taken meanwhile */
            throw e;
        }
        t.after(() => proc.terminate(2000));
        const dns = {
            proc,
            resolver: `127.0.0.1:${port}`,
            async set({ hosts: h, conf: c }) {
                const reread = proc.stderr.split(/read .*hosts/).length;
                if (h !== undefined) writeFileSync(hostsFile, h);
                if (c !== undefined) writeFileSync(confFile, c);
                process.kill(proc.pid, 'SIGHUP');
                await waitUntil(() => proc.stderr.split(/read .*hosts/).length > reread,
                    { timeout: 5000, what: 'dnsmasq rereading its records' });
            },
            async restart({ conf: c }) {
                await proc.terminate(2000);
                return startDns(t, { hosts: '', conf: c }, port, dir);
            },
        };
        return dns;
    }
}

/* A fake upstream on host:port (port 0: any). */
async function fakeAt(t, host, port = 0, behavior) {
    const args = ['--host', host, '--port', String(port)];
    if (behavior) args.push('--behavior', behavior);
    const proc = new Proc(`fakeup ${host}`, FAKEUP_BIN, args);
    const m = await proc.waitFor('stdout', /^listening (\d+)\s*$/m, 10000);
    const fake = new Fake(proc, Number(m[1]));
    fake.url = `http://${host}:${fake.port}`;
    fake.baseURL = `${fake.url}/v1`;
    await waitUntil(() => fake.stats().then(() => true), { timeout: 5000, what: 'fake up' });
    t.after(() => fake.stop());
    return fake;
}

async function state(gw) {
    const r = await httpRequest(`${gw.url}/admin/state`, { headers: { authorization: `Bearer ${TOKEN}` } });
    assert.equal(r.status, 200, r.text);
    return r.json();
}

async function discoveryOf(gw, model = 'm') {
    const s = await state(gw);
    return s.models.find((x) => x.model === model).deployments[0];
}

/* Waits until the deployment's active addresses are exactly `want` (sorted "ip:port"). */
async function waitAddresses(gw, want, what) {
    return waitUntil(async () => {
        const d = await discoveryOf(gw);
        const active = d.discovery.endpoints.filter((e) => e.state === 'active').map((e) => e.address).sort();
        return JSON.stringify(active) === JSON.stringify([...want].sort()) ? d : null;
    }, { timeout: 10000 * SLOW, interval: 50, what });
}

/* Completions the fake served (the active probes' GET /models left out). */
const apiCount = async (fake) => (await fake.apiRequests()).filter((r) => r.method === 'POST').length;

function gatewayConfig(dns, providerExtra) {
    return {
        admin: { token: TOKEN },
        providers: { pool: providerExtra },
        models: { m: [{ provider: 'pool', model: 'x' }] },
    };
}

test('traffic spreads over every address of a name; an added address is used after its TTL; a removed one drains', { skip }, async (t) => {
    const h = harness(t);
    const f1 = await fakeAt(t, '127.0.0.2');
    const port = f1.port;
    const f2 = await fakeAt(t, '127.0.0.3', port);
    const f3 = await fakeAt(t, '127.0.0.4', port);
    const dns = await startDns(t, { hosts: '127.0.0.2 vllm.test\n127.0.0.3 vllm.test\n' });
    // the least config: the name, and where to ask (the test's own DNS server)
    const gw = await h.gateway({
        config: gatewayConfig(dns, { base_url: `http://vllm.test:${port}/v1`, discovery: { dns: true, resolver: dns.resolver } }),
    });
    const d = await waitAddresses(gw, [`127.0.0.2:${port}`, `127.0.0.3:${port}`], 'two addresses');
    assert.equal(d.discovery.type, 'dns');
    assert.equal(d.discovery.name, 'vllm.test');
    for (const e of d.discovery.endpoints) {
        assert.equal(e.source, 'a');
        assert.equal(e.ttl_s, 1);
    }
    const sdk = new OpenAI({ baseURL: gw.baseURL, apiKey: 'unused', maxRetries: 0 });
    for (let i = 0; i < 40; i++) {
        const r = await sdk.chat.completions.create({ model: 'm', messages: msgs });
        assert.ok(r.choices[0].message.content);
    }
    const n1 = await apiCount(f1), n2 = await apiCount(f2);
    assert.equal(n1 + n2, 40);
    assert.ok(n1 >= 8 && n2 >= 8, `both addresses serve: ${n1} / ${n2}`);
    // Host names the configured host, not the address
    const seen = (await f1.apiRequests())[0];
    assert.equal(seen.headers.host, `vllm.test:${port}`);
    // the access log names the address that answered
    const lines = gw.proc.stdout.split('\n').filter((l) => l.includes('/v1/chat/completions')).map((l) => JSON.parse(l));
    assert.equal(lines.length, 40);
    const byAddr = {};
    for (const l of lines) byAddr[l.endpoint] = (byAddr[l.endpoint] || 0) + 1;
    assert.deepEqual(byAddr, { [`127.0.0.2:${port}`]: n1, [`127.0.0.3:${port}`]: n2 });

    // Slow streams in flight on every address while the records change: 127.0.0.3 leaves,
    // 127.0.0.4 comes. Nothing in flight fails; the leaving one drains.
    const running = [];
    let stop = false, failed = 0, done = 0;
    const loop = async () => {
        while (!stop) {
            try {
                const s = await sdk.chat.completions.create({
                    model: 'm', messages: msgs, stream: true, fake: 'chunks=6,chunk_ms=150',
                });
                let text = '';
                for await (const c of s) text += c.choices[0]?.delta?.content || '';
                assert.ok(text.length > 0);
                done++;
            } catch (e) {
                failed++;
                console.error('request failed:', e.message);
            }
        }
    };
    for (let i = 0; i < 4; i++) running.push(loop());
    await waitUntil(async () => (await discoveryOf(gw)).discovery.endpoints.some((e) => e.inflight > 0 && e.address.startsWith('127.0.0.3')),
        { timeout: 10000 * SLOW, what: 'a stream in flight on 127.0.0.3' });
    await dns.set({ hosts: '127.0.0.2 vllm.test\n127.0.0.4 vllm.test\n' });
    const after = await waitAddresses(gw, [`127.0.0.2:${port}`, `127.0.0.4:${port}`], '127.0.0.4 in, 127.0.0.3 out');
    const gone = after.discovery.endpoints.find((e) => e.address.startsWith('127.0.0.3'));
    if (gone) assert.equal(gone.state, 'draining'); // still finishing its streams, or already freed
    await waitUntil(async () => !(await discoveryOf(gw)).discovery.endpoints.some((e) => e.address.startsWith('127.0.0.3')),
        { timeout: 10000 * SLOW, what: 'the drained address freed' });
    const f2Before = await apiCount(f2);
    await waitUntil(async () => (await apiCount(f3)) >= 3, { timeout: 10000 * SLOW, what: 'traffic on the added address' });
    stop = true;
    await Promise.all(running);
    assert.equal(failed, 0, 'no request failed while the records changed');
    assert.ok(done > 0);
    assert.equal(await apiCount(f2), f2Before, 'nothing new went to the removed address');

    const metrics = (await httpRequest(`${gw.url}/metrics`)).text;
    assert.match(metrics, /unbusy_discovery_addresses\{model="m",provider="pool",deployment_model="x",state="active"\} 2/);
    assert.match(metrics, /unbusy_discovery_address_changes_total\{model="m",provider="pool",deployment_model="x",change="removed"\} 1/);
    assert.match(metrics, /unbusy_discovery_resolutions_total\{model="m",provider="pool",deployment_model="x",result="ok"\} [1-9]/);
    assert.match(gw.proc.stderr, /provider pool: discovery found 2 addresses \(1 new, 1 gone\)/);
});

test('addresses that refuse connections or answer 500 get their own breakers while the others serve', { skip }, async (t) => {
    const h = harness(t);
    const f1 = await fakeAt(t, '127.0.0.2');
    const port = f1.port;
    const f2 = await fakeAt(t, '127.0.0.3', port);
    const broken = await fakeAt(t, '127.0.0.4', port, 'status=500');
    // 127.0.0.9 has nothing listening on the port: connections are refused
    const dns = await startDns(t, { hosts: '127.0.0.2 bad.test\n127.0.0.3 bad.test\n127.0.0.4 bad.test\n127.0.0.9 bad.test\n' });
    const gw = await h.gateway({
        config: gatewayConfig(dns, { base_url: `http://bad.test:${port}/v1`, discovery: { dns: true, resolver: dns.resolver } }),
    });
    await waitAddresses(gw, [`127.0.0.2:${port}`, `127.0.0.3:${port}`, `127.0.0.4:${port}`, `127.0.0.9:${port}`], 'four addresses');
    const sdk = new OpenAI({ baseURL: gw.baseURL, apiKey: 'unused', maxRetries: 0 });
    for (let i = 0; i < 40; i++) {
        const r = await sdk.chat.completions.create({ model: 'm', messages: msgs, stream: i % 2 === 0 });
        if (i % 2 === 0) for await (const c of r) void c; // eslint-disable-line no-unused-vars
    }
    const d = await discoveryOf(gw);
    const bad = d.discovery.endpoints.find((e) => e.address === `127.0.0.9:${port}`);
    assert.equal(bad.breaker, 'open');
    assert.equal(bad.eligible, false);
    assert.equal(bad.last_failure, 'connect');
    assert.equal(bad.successes, 0);
    const five = d.discovery.endpoints.find((e) => e.address === `127.0.0.4:${port}`);
    assert.equal(five.breaker, 'open');
    assert.equal(five.last_failure, 'server_error');
    assert.ok((await apiCount(broken)) >= 1);
    assert.equal(d.breaker, 'closed', 'the deployment stays in service');
    assert.equal(d.errors.server_error, 0, 'the deployment counts no failure of its own');
    assert.equal(d.eligible, true);
    assert.equal(d.discovery.healthy, 2);
    assert.equal((await apiCount(f1)) + (await apiCount(f2)), 40, 'every request answered by a live address');
    assert.match(gw.proc.stderr, /deployment pool\/x: address 127\.0\.0\.9:\d+ out, its breaker opened \(last failure: connect\)/);
    assert.match(gw.proc.stderr, /deployment pool\/x: address 127\.0\.0\.4:\d+ out, its breaker opened \(last failure: server_error\)/);
    const metrics = (await httpRequest(`${gw.url}/metrics`)).text;
    assert.match(metrics, /unbusy_discovery_addresses\{model="m",provider="pool",deployment_model="x",state="healthy"\} 2/);
});

test('SRV records: each target with its own port; a lower priority is a backup', { skip }, async (t) => {
    const h = harness(t);
    const a = await fakeAt(t, '127.0.0.1');
    const b = await fakeAt(t, '127.0.0.2');
    const backup = await fakeAt(t, '127.0.0.3');
    const srv = (prio, host, port) => `srv-host=_http._tcp.pool.test,${host},${port},${prio},10\n`;
    const conf = srv(0, 'a.test', a.port) + srv(0, 'b.test', b.port) + srv(1, 'c.test', backup.port) +
        'host-record=a.test,127.0.0.1\nhost-record=b.test,127.0.0.2\nhost-record=c.test,127.0.0.3\n';
    const dns = await startDns(t, { conf });
    const gw = await h.gateway({
        config: gatewayConfig(dns, {
            base_url: 'http://pool.test/v1',
            discovery: { srv: '_http._tcp.pool.test', resolver: dns.resolver },
        }),
    });
    const d = await waitAddresses(gw, [`127.0.0.1:${a.port}`, `127.0.0.2:${b.port}`, `127.0.0.3:${backup.port}`], 'three SRV targets');
    assert.equal(d.discovery.type, 'srv');
    for (const e of d.discovery.endpoints) {
        assert.equal(e.source, 'srv');
        assert.equal(e.weight, 10);
        assert.equal(e.priority, e.address.startsWith('127.0.0.3') ? 1 : 0);
    }
    const sdk = new OpenAI({ baseURL: gw.baseURL, apiKey: 'unused', maxRetries: 0 });
    for (let i = 0; i < 30; i++) await sdk.chat.completions.create({ model: 'm', messages: msgs });
    const na = await apiCount(a), nb = await apiCount(b);
    assert.ok(na >= 5 && nb >= 5, `both priority-0 targets serve: ${na} / ${nb}`);
    assert.equal(await apiCount(backup), 0, 'the priority-1 target is a backup');
    assert.equal((await a.apiRequests())[0].headers.host, 'pool.test');

    // the priority-0 targets leave: the backup takes over
    await dns.restart({ conf: srv(1, 'c.test', backup.port) + 'host-record=c.test,127.0.0.3\n' });
    await waitAddresses(gw, [`127.0.0.3:${backup.port}`], 'only the backup');
    for (let i = 0; i < 5; i++) await sdk.chat.completions.create({ model: 'm', messages: msgs });
    assert.equal(await apiCount(backup), 5);
});

test('a resolver that stops answering leaves the last good addresses; a name never resolved is ineligible', { skip }, async (t) => {
    const h = harness(t);
    const f1 = await fakeAt(t, '127.0.0.2');
    const dns = await startDns(t, { hosts: '127.0.0.2 stale.test\n' });
    const gw = await h.gateway({
        config: {
            admin: { token: TOKEN },
            providers: {
                pool: { base_url: `http://stale.test:${f1.port}/v1`, discovery: { dns: true, resolver: dns.resolver, timeout: '200ms' } },
                nowhere: { base_url: `http://nowhere.test:${f1.port}/v1`, discovery: { dns: true, resolver: dns.resolver, timeout: '200ms' } },
            },
            models: {
                m: [{ provider: 'pool', model: 'x' }],
                n: [{ provider: 'nowhere', model: 'x' }],
            },
        },
    });
    await waitAddresses(gw, [`127.0.0.2:${f1.port}`], 'the address');
    // never resolved (NXDOMAIN): no address, ineligible, and the client is told why
    const n = await waitUntil(async () => {
        const s = await state(gw);
        const dep = s.models.find((x) => x.model === 'n').deployments[0];
        return dep.discovery.answered ? dep : null;
    }, { timeout: 10000 * SLOW, what: 'nowhere.test answered' });
    assert.equal(n.eligible, false);
    assert.equal(n.why_not, 'no_addresses');
    assert.match(n.discovery.last_error, /nowhere\.test: not_found/);
    const sdk = new OpenAI({ baseURL: gw.baseURL, apiKey: 'unused', maxRetries: 0 });
    await assert.rejects(sdk.chat.completions.create({ model: 'n', messages: msgs }),
        (e) => e.status === 503 && /no_addresses/.test(e.message));

    // the DNS server goes away: resolutions fail, the last good set serves
    await dns.proc.terminate(2000);
    const d = await waitUntil(async () => {
        const dep = await discoveryOf(gw);
        return dep.discovery.stale ? dep : null;
    }, { timeout: 10000 * SLOW, what: 'the set marked stale' });
    assert.ok(d.discovery.resolutions_failed >= 1);
    assert.equal(d.discovery.active, 1);
    assert.equal(d.eligible, true);
    for (let i = 0; i < 5; i++) await sdk.chat.completions.create({ model: 'm', messages: msgs });
    assert.equal(await apiCount(f1), 5);
    const metrics = (await httpRequest(`${gw.url}/metrics`)).text;
    assert.match(metrics, /unbusy_discovery_stale\{model="m",provider="pool",deployment_model="x"\} 1/);
    assert.match(gw.proc.stderr, /provider pool: discovery of stale\.test failed \(stale\.test: (timeout|failed), 1 in a row\)/);
});

test('a discovered deployment draws a share that grows with its healthy addresses', { skip }, async (t) => {
    const h = harness(t);
    const f1 = await fakeAt(t, '127.0.0.2', 0, 'ttft=40');
    const port = f1.port;
    const f2 = await fakeAt(t, '127.0.0.3', port, 'ttft=40');
    const f3 = await fakeAt(t, '127.0.0.4', port, 'ttft=40');
    const single = await fakeAt(t, '127.0.0.1', 0, 'ttft=40');
    const dns = await startDns(t, { hosts: '127.0.0.2 share.test\n127.0.0.3 share.test\n127.0.0.4 share.test\n' });
    const gw = await h.gateway({
        config: {
            admin: { token: TOKEN },
            providers: {
                pool: { base_url: `http://share.test:${port}/v1`, discovery: { dns: true, resolver: dns.resolver } },
                single: { base_url: single.baseURL },
            },
            models: { m: [{ provider: 'pool', model: 'x' }, { provider: 'single', model: 'x' }] },
        },
    });
    await waitAddresses(gw, [`127.0.0.2:${port}`, `127.0.0.3:${port}`, `127.0.0.4:${port}`], 'three addresses');
    const sdk = new OpenAI({ baseURL: gw.baseURL, apiKey: 'unused', maxRetries: 0 });
    const worker = async () => {
        for (let i = 0; i < 20; i++) await sdk.chat.completions.create({ model: 'm', messages: msgs });
    };
    await Promise.all([worker(), worker(), worker(), worker(), worker(), worker()]);
    const pool = (await apiCount(f1)) + (await apiCount(f2)) + (await apiCount(f3));
    const one = await apiCount(single);
    assert.equal(pool + one, 120);
    t.diagnostic(`pool of three: ${pool}, single server: ${one}`);
    // weight 1 × 3 healthy addresses against weight 1: about three quarters; at least twice
    assert.ok(pool >= 2 * one, `the pool of three drew ${pool}, the single server ${one}`);
});
