// Load for bench/upgrade.sh: CLIENTS keep-alive clients (half streaming, half
// whole answers) and CONNECTORS that open a fresh connection per GET /healthz,
// for DURATION_MS against 127.0.0.1:PORT. Prints one JSON line: requests ok and
// failed (by reason), connections ok / refused / reset, latency of the whole
// answers (p50, p99, max).
//
//   node upgrade_load.mjs PORT DURATION_MS [CLIENTS=8] [CONNECTORS=2]
import http from 'node:http';
import net from 'node:net';

const [port, duration, clients = 8, connectors = 2] = process.argv.slice(2).map(Number);
const agent = new http.Agent({ keepAlive: true, maxSockets: clients });
const stop = Date.now() + duration;
const out = { requests_ok: 0, requests_failed: 0, failures: {}, conns_ok: 0, conns_failed: 0, conn_failures: {}, lat: [] };
const fail = (bucket, count, why) => { out[count]++; out[bucket][why] = (out[bucket][why] || 0) + 1; };

function once(stream) {
    const body = JSON.stringify({ model: 'm', stream, messages: [{ role: 'user', content: 'hi' }] });
    const t0 = performance.now();
    return new Promise((resolve) => {
        const req = http.request({
            host: '127.0.0.1', port, path: '/v1/chat/completions', method: 'POST', agent,
            headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
        }, (res) => {
            let text = '';
            res.setEncoding('utf8');
            res.on('data', (d) => { text += d; });
            res.on('end', () => {
                const ok = res.statusCode === 200 && (stream ? text.includes('data: [DONE]') : text.includes('"choices"'));
                if (ok) {
                    out.requests_ok++;
                    if (!stream) out.lat.push(performance.now() - t0);
                } else {
                    fail('failures', 'requests_failed', `status ${res.statusCode}${res.statusCode === 200 ? ' cut' : ''}`);
                }
                resolve();
            });
            res.on('error', (e) => { fail('failures', 'requests_failed', e.code || e.message); resolve(); });
        });
        req.on('error', (e) => { fail('failures', 'requests_failed', e.code || e.message); resolve(); });
        req.end(body);
    });
}

function connectOnce() {
    return new Promise((resolve) => {
        const s = net.connect({ port, host: '127.0.0.1' });
        let data = '';
        const done = (why) => {
            s.destroy();
            if (why === 'ok') out.conns_ok++; else fail('conn_failures', 'conns_failed', why);
            resolve();
        };
        s.once('connect', () => s.write('GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'));
        s.on('data', (d) => { data += d; });
        s.once('error', (e) => done(e.code || e.message));
        s.once('end', () => done(data.startsWith('HTTP/1.1 200 ') ? 'ok' : 'bad answer'));
    });
}

const loops = [];
for (let i = 0; i < clients; i++) loops.push((async () => { while (Date.now() < stop) await once(i % 2 === 0); })());
for (let i = 0; i < connectors; i++) {
    loops.push((async () => {
        while (Date.now() < stop) {
            await connectOnce();
            await new Promise((r) => setTimeout(r, 2));
        }
    })());
}
await Promise.all(loops);
agent.destroy();
const lat = out.lat.sort((a, b) => a - b);
const q = (p) => (lat.length ? lat[Math.min(lat.length - 1, Math.floor(p * lat.length))].toFixed(1) : null);
delete out.lat;
console.log(JSON.stringify({ ...out, answer_ms_p50: q(0.5), answer_ms_p99: q(0.99), answer_ms_max: lat.length ? lat.at(-1).toFixed(1) : null }));
