// bench/reload.mjs — requests lost while the config is reloaded under load.
// Plain node (20+), no packages. Run from the repository root after `make all`:
//
//   node bench/reload.mjs [--reloads 20] [--clients 8] [--interval-ms 250] [--workers 2]
//                         [--chunks 20] [--chunk-ms 10] [--via admin|sighup|watch]
//
// Starts build/fakeup (the upstream: CHUNKS content chunks CHUNK_MS apart) and
// build/unbusy on 127.0.0.1 with WORKERS workers, two providers and two models.
// CLIENTS keep-alive clients send chat completions in a closed loop, half of
// them streams, half whole answers (assembled from an upstream stream). After a
// warm-up second, the config file is rewritten RELOADS times, INTERVAL_MS
// apart, each time with a change (a model added or removed, a deployment's
// weight, a deployment replaced) and reloaded by VIA; the clients go on until
// the last reload is answered and one more second has passed. A request is lost
// when it does not end in a 200 with the full text (a stream: every chunk and
// [DONE]). Prints a markdown row: requests, lost, reloads applied, the reload
// answer's latency (p50/max: POST /admin/reload until every loop serves the new
// generation) and the request latency p50/p99/max during the reloads against
// the warm-up's. Everything it starts is stopped by PID; it ends by itself.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';

const args = Object.fromEntries(process.argv.slice(2).reduce((a, x, i, all) =>
    (x.startsWith('--') ? [...a, [x.slice(2), all[i + 1]]] : a), []));
const RELOADS = Number(args.reloads ?? 20);
const CLIENTS = Number(args.clients ?? 8);
const INTERVAL = Number(args['interval-ms'] ?? 250);
const WORKERS = Number(args.workers ?? 2);
const CHUNKS = Number(args.chunks ?? 20);
const CHUNK_MS = Number(args['chunk-ms'] ?? 10);
const VIA = args.via ?? 'admin';
const TOKEN = 'bench-reload-token-0123456789abcdef';
const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'unbusy-bench-reload-'));
const file = path.join(dir, 'unbusy.yaml');
const procs = [];
const expected = Array.from({ length: CHUNKS }, (_, i) => `tok${i} `).join('');

function stopAll() {
    for (const p of procs) try { process.kill(p.pid, 'SIGTERM'); } catch { /* gone */ }
}
process.on('exit', () => { stopAll(); fs.rmSync(dir, { recursive: true, force: true }); });
process.on('SIGINT', () => process.exit(130));

function start(bin, argv, ready) {
    return new Promise((resolve, reject) => {
        const p = spawn(path.join(ROOT, bin), argv, { stdio: ['ignore', 'pipe', 'pipe'] });
        procs.push(p);
        let err = '';
        const t = setTimeout(() => reject(new Error(`${bin}: not ready: ${err.slice(-500)}`)), 10000);
        let seen = false;
        const on = (d) => {
            if (seen) return;
            err += d;
            const m = ready.exec(err);
            if (m) { seen = true; clearTimeout(t); resolve({ p, m }); }
        };
        p.stdout.on('data', on); // fakeup says where it listens on stdout, unbusy on stderr
        p.stderr.on('data', on);
        p.on('exit', (c) => reject(new Error(`${bin} exited ${c}: ${err.slice(-500)}`)));
    });
}

function config(i, fakeURL) {
    const extra = i % 2 ? `  extra-${i}:\n    - {provider: b, model: e${i}}\n` : '';
    return `server: {listen: '127.0.0.1:0', workers: ${WORKERS}, drain_timeout: 2s, access_log: 'off'}
admin: {token: ${TOKEN}}
${VIA === 'watch' ? 'reload: {watch: true, interval: 100ms}\n' : ''}providers:
  a: {base_url: '${fakeURL}', api_key: sk-bench-a, probe: false}
  b: {base_url: '${fakeURL}', api_key: sk-bench-b, probe: false}
models:
  m:
    - {provider: a, model: x, weight: ${1 + (i % 3)}}
    - {provider: b, model: ${i % 4 < 2 ? 'y' : 'y2'}}
  n:
    - {provider: b, model: z}
${extra}`;
}

const agent = new http.Agent({ keepAlive: true, maxSockets: CLIENTS + 4 });
function request(port, p, { method = 'GET', body, headers = {} } = {}) {
    return new Promise((resolve, reject) => {
        const req = http.request({ host: '127.0.0.1', port, path: p, method, agent,
            headers: { 'content-type': 'application/json', ...headers } }, (res) => {
            let text = '';
            res.setEncoding('utf8');
            res.on('data', (c) => { text += c; });
            res.on('end', () => resolve({ status: res.statusCode, text }));
            res.on('error', reject);
        });
        req.setTimeout(60000, () => req.destroy(new Error('timeout')));
        req.on('error', reject);
        if (body) req.write(body);
        req.end();
    });
}

function complete(stream, text) {
    if (!stream) {
        try { return JSON.parse(text).choices[0].message.content === expected; } catch { return false; }
    }
    let content = '';
    let done = false;
    for (const line of text.split('\n')) {
        if (!line.startsWith('data: ')) continue;
        const d = line.slice(6);
        if (d === '[DONE]') { done = true; continue; }
        try { for (const c of JSON.parse(d).choices || []) content += c.delta?.content ?? ''; } catch { return false; }
    }
    return done && content === expected;
}

const pct = (xs, p) => {
    const s = [...xs].sort((a, b) => a - b);
    return s.length ? s[Math.min(s.length - 1, Math.floor(p * s.length))] : NaN;
};

async function main() {
    const fake = await start('build/fakeup', ['--behavior', `chunks=${CHUNKS},chunk_ms=${CHUNK_MS}`], /listening (\d+)/);
    const fport = fake.m[1] || fake.m[2];
    const fakeURL = `http://127.0.0.1:${fport}/v1`;
    fs.writeFileSync(file, config(0, fakeURL));
    const gw = await start('build/unbusy', ['--config', file], /listening on http:\/\/127\.0\.0\.1:(\d+)/);
    const port = Number(gw.m[1]);
    let phase = 'warmup';
    let stop = false;
    const lat = { warmup: [], reload: [] };
    const counts = { sent: 0, ok: 0, lost: 0, reasons: {} };
    const client = async (n) => {
        for (let k = 0; !stop; k++) {
            const stream = (n + k) % 2 === 1;
            const model = k % 5 === 4 ? 'n' : 'm';
            const body = JSON.stringify({ model, stream, messages: [{ role: 'user', content: `hello ${n} ${k}` }] });
            const t0 = performance.now();
            const was = phase;
            counts.sent++;
            try {
                const r = await request(port, '/v1/chat/completions', { method: 'POST', body });
                if (r.status === 200 && complete(stream, r.text)) {
                    counts.ok++;
                    if (was !== 'tail') lat[was].push(performance.now() - t0);
                } else {
                    counts.lost++;
                    const why = `${r.status} ${r.text.slice(0, 120)}`;
                    counts.reasons[why] = (counts.reasons[why] || 0) + 1;
                }
            } catch (e) {
                counts.lost++;
                counts.reasons[e.message] = (counts.reasons[e.message] || 0) + 1;
            }
        }
    };
    const clients = Array.from({ length: CLIENTS }, (_, n) => client(n));
    await new Promise((r) => setTimeout(r, 1000));
    phase = 'reload';
    const reloadMs = [];
    let applied = 0;
    const generation = async () => JSON.parse((await request(port, '/admin/config', { headers: { authorization: `Bearer ${TOKEN}` } })).text).generation;
    for (let i = 1; i <= RELOADS; i++) {
        fs.writeFileSync(file, config(i, fakeURL));
        const t0 = performance.now();
        if (VIA === 'admin') {
            const r = await request(port, '/admin/reload', { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` } });
            if (r.status === 200) applied++;
            else console.error(`reload ${i}: ${r.status} ${r.text.slice(0, 300)}`);
        } else {
            if (VIA === 'sighup') process.kill(gw.p.pid, 'SIGHUP');
            const deadline = performance.now() + 10000;
            while ((await generation()) < i + 1 && performance.now() < deadline) await new Promise((r) => setTimeout(r, 5));
            if ((await generation()) >= i + 1) applied++;
        }
        reloadMs.push(performance.now() - t0);
        await new Promise((r) => setTimeout(r, INTERVAL));
    }
    phase = 'tail';
    await new Promise((r) => setTimeout(r, 1000));
    stop = true;
    await Promise.all(clients);
    const f = (x) => (Number.isFinite(x) ? x.toFixed(1) : '-');
    console.log(`| via | workers | clients | requests | lost | reloads applied | reload answer p50 / max ms | latency warm-up p50 / p99 / max ms | latency during reloads p50 / p99 / max ms |`);
    console.log(`|---|---|---|---|---|---|---|---|---|`);
    console.log(`| ${VIA} | ${WORKERS} | ${CLIENTS} | ${counts.sent} | ${counts.lost} | ${applied} of ${RELOADS} | ${f(pct(reloadMs, 0.5))} / ${f(Math.max(...reloadMs))} | ` +
        `${f(pct(lat.warmup, 0.5))} / ${f(pct(lat.warmup, 0.99))} / ${f(Math.max(...lat.warmup))} | ` +
        `${f(pct(lat.reload, 0.5))} / ${f(pct(lat.reload, 0.99))} / ${f(Math.max(...lat.reload))} |`);
    if (counts.lost) console.error('lost requests by reason:', counts.reasons);
    agent.destroy();
    stopAll();
    process.exitCode = counts.lost || applied !== RELOADS ? 1 : 0;
}

main().catch((e) => { console.error(e); process.exitCode = 2; stopAll(); });
