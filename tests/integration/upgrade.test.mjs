// Binary upgrade under load: SIGUSR2 starts the same argv as a new process on the
// same listening sockets; once it serves, the old one drains and exits. Steady
// streams and whole answers from a few SDK and node:http keep-alive clients, and fresh TCP
// connections, see no failed request and no refused or reset connection.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { readFileSync } from 'node:fs';
import { SLOW, drainStream, expectedContent, fakeProvider, harness, sleep, waitUntil } from './lib.mjs';

const msgs = [{ role: 'user', content: 'hi' }];

function alive(pid) {
    try {
        const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
        return !/^\d+ \(.*\) Z/.test(stat); // a zombie has exited
    } catch {
        return false;
    }
}

/* One fresh connection with one GET /healthz on it: 'ok', or what went wrong. */
function probeOnce(port) {
    return new Promise((resolve) => {
        const s = net.connect({ port, host: '127.0.0.1' });
        let data = '';
        const done = (v) => { s.destroy(); resolve(v); };
        s.setTimeout(10000, () => done('timeout'));
        s.once('connect', () => s.write('GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'));
        s.on('data', (d) => { data += d; });
        s.once('error', (e) => done(e.code || e.message));
        s.once('end', () => done(/^HTTP\/1\.1 200 /.test(data) ? 'ok' : `bad answer ${JSON.stringify(data.slice(0, 40))}`));
    });
}

/* Load until stop(): SDK clients alternating streams and whole answers, and a connector. */
function startLoad(gw, { clients = 4 } = {}) {
    const stats = { ok: 0, failed: [], probes: 0, probeFailed: [] };
    let running = true;
    const sdk = gw.client({ timeout: 30000 * SLOW });
    const client = async (i) => {
        for (let n = 0; running; n++) {
            try {
                if ((i + n) % 2 === 0) {
                    const stream = await sdk.chat.completions.create({ model: 'm', messages: msgs, stream: true });
                    const r = await drainStream(stream);
                    if (r.error) throw r.error;
                    if (r.content !== expectedContent(8)) throw new Error(`stream content ${JSON.stringify(r.content)}`);
                } else {
                    const a = await sdk.chat.completions.create({ model: 'm', messages: msgs });
                    if (a.choices[0].message.content !== expectedContent(8)) throw new Error('wrong answer');
                }
                stats.ok++;
            } catch (e) {
                stats.failed.push(`${e.constructor.name}: ${e.message}`);
            }
        }
    };
    // node:http with keep-alive: a connection closed under a request it reuses shows as ECONNRESET
    const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
    const raw = (stream) => new Promise((resolve, reject) => {
        const body = JSON.stringify({ model: 'm', stream, messages: msgs });
        const req = http.request({
            host: '127.0.0.1', port: gw.port, path: '/v1/chat/completions', method: 'POST', agent,
            headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
        }, (res) => {
            let text = '';
            res.setEncoding('utf8');
            res.on('data', (d) => { text += d; });
            res.on('end', () => (res.statusCode === 200 && text.includes(stream ? 'data: [DONE]' : '"choices"')
                ? resolve() : reject(new Error(`status ${res.statusCode}: ${text.slice(0, 80)}`))));
            res.on('error', reject);
        });
        req.setTimeout(30000 * SLOW, () => req.destroy(new Error('no answer in 30 s')));
        req.on('error', reject);
        req.end(body);
    });
    const rawClient = async (i) => {
        for (let n = 0; running; n++) {
            try {
                await raw((i + n) % 2 === 0);
                stats.ok++;
            } catch (e) {
                stats.failed.push(`node:http: ${e.code || e.message}`);
            }
        }
    };
    const connector = async () => {
        while (running) {
            const r = await probeOnce(gw.port);
            stats.probes++;
            if (r !== 'ok') stats.probeFailed.push(r);
            await sleep(5);
        }
    };
    const all = Promise.all([...Array.from({ length: clients }, (_, i) => client(i)),
        ...Array.from({ length: clients }, (_, i) => rawClient(i)), connector(), connector()]);
    return {
        stats,
        halt: () => { running = false; },
        stop: async () => { running = false; await all; agent.destroy(); return stats; },
    };
}

test('SIGUSR2 under load: the new process takes the sockets, the old exits 0, nothing fails or is refused', { timeout: 120000 }, async (t) => {
    // Registered before the harness's cleanup, so it runs first: the old gateway's output pipes
    // close only once the new process, which shares them, is gone.
    let newPid = 0;
    let load = null;
    t.after(() => {
        load?.halt();
        if (newPid && alive(newPid)) process.kill(newPid, 'SIGKILL');
    });
    const h = harness(t);
    const fake = await h.fake({ behavior: 'chunks=8,chunk_ms=15' });
    // Untuned except for the harness's port: drain_delay and drain_timeout at their defaults.
    const gw = await h.gateway({
        config: {
            server: { workers: 2, drain_delay: '5s', drain_timeout: '30s' },
            providers: { p: fakeProvider(fake) },
            models: { m: [{ provider: 'p', model: 'up-m' }] },
        },
    });
    const oldPid = gw.pid;
    const oldExit = new Promise((r) => gw.proc.child.once('exit', (code, signal) => r({ code, signal, at: Date.now() })));

    load = startLoad(gw);
    await waitUntil(() => load.stats.ok >= 20, { timeout: 20000 * SLOW, what: '20 requests before the upgrade' });
    const before = load.stats.ok;
    assert.ok(gw.proc.signal('SIGUSR2'));
    const m = await gw.proc.waitFor('stderr', /upgrade: process (\d+) serves on the same sockets/, 20000 * SLOW);
    newPid = Number(m[1]);
    assert.notEqual(newPid, oldPid);
    let giveUp;
    const late = new Promise((r) => { giveUp = setTimeout(() => r(null), 40000 * SLOW); });
    const exited = await Promise.race([oldExit, late]);
    clearTimeout(giveUp); // a pending timer would hold the test file open for its whole length
    assert.ok(exited, 'the old process did not exit after the upgrade');
    assert.equal(exited.code, 0, `the old process exited with ${exited.code} / ${exited.signal}`);
    assert.ok(!alive(oldPid), 'the old pid is still there');
    // traffic goes on against the new process alone
    const atExit = load.stats.ok;
    await waitUntil(() => load.stats.ok >= atExit + 20, { timeout: 20000 * SLOW, what: '20 requests after the old one exited' });
    const stats = await load.stop();
    assert.ok(alive(newPid), 'the new process is gone');
    assert.deepEqual(stats.failed, [], `${stats.failed.length} of ${stats.ok + stats.failed.length} requests failed`);
    assert.deepEqual(stats.probeFailed, [], `${stats.probeFailed.length} of ${stats.probes} connections refused or broken`);
    assert.ok(stats.ok > before + 20, `${stats.ok} requests in all`);
    assert.equal((await gw.request('/readyz')).status, 200, 'the new process is not ready');
    // The new process answers a SIGTERM like any other (its output shares the old one's pipes).
    process.kill(newPid, 'SIGTERM');
    await waitUntil(() => !alive(newPid), { timeout: 20000 * SLOW, interval: 50, what: 'the new process to exit on SIGTERM' });
    assert.match(gw.proc.stderr, /upgrade: serving on 2 listening sockets handed over by process \d+/);
    await gw.stop(); // the verdict on the shared stderr: no sanitizer report, no error line
});

test('an upgrade whose new process cannot start leaves the old one serving', { timeout: 60000 }, async (t) => {
    const h = harness(t);
    const fake = await h.fake({ behavior: 'chunks=2' });
    const gw = await h.gateway({
        config: {
            providers: { p: fakeProvider(fake) },
            models: { m: [{ provider: 'p', model: 'up-m' }] },
        },
        allowStderr: [/upgrade/, /configuration has errors/, /models\.m/, /yaml|parse|expected/i],
    });
    // The file now has an error: the new process refuses it and exits 1.
    const { writeFileSync } = await import('node:fs');
    writeFileSync(gw.file, 'server:\n  listen: 127.0.0.1:0\nmodels: [unclosed\n');
    gw.proc.signal('SIGUSR2');
    await gw.proc.waitFor('stderr', /upgrade: failed; this process \(\d+\) goes on serving/, 20000 * SLOW);
    assert.equal((await gw.request('/readyz')).status, 200);
    const a = await gw.client().chat.completions.create({ model: 'm', messages: msgs });
    assert.ok(a.choices[0].message.content);
    await gw.stop();
});
