// HTTPS on the listener (server.tls): the OpenAI SDK over TLS, streamed and
// assembled; pipelining and back-pressure through TLS; plain HTTP and garbage on the TLS port; TLS 1.1 refused; ALPN;
// the handshake bounded by the header timeout; the certificate reloaded on
// SIGHUP while an established keep-alive connection goes on; a bad pair at
// --check and at SIGHUP.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import tls from 'node:tls';
import {
    RawClient, SLOW, assertErrorShape, fakeProvider, harness, httpRequest, rawRequest, rssKiB, runGateway,
    sseContent, tempDir, toYAML, waitUntil, withServerDefaults,
} from './lib.mjs';

const h = harness();
let fake;
let gw;
let dir;
let certA;
let certB;

/* A self-signed P-256 certificate for localhost and 127.0.0.1 in dir: { cert, key, pem, fingerprint }. */
function makeCert(name, cn) {
    const cert = path.join(dir, `${name}.crt`);
    const key = path.join(dir, `${name}.key`);
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
        '-subj', `/CN=${cn}`, '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1', '-days', '2',
        '-keyout', key, '-out', cert], { stdio: 'pipe' });
    const pem = readFileSync(cert, 'utf8');
    return { cert, key, pem, fingerprint: new X509Certificate(pem).fingerprint256 };
}

/* Puts a pair where the config points, each file replaced whole (as a renewal tool does). */
function install(certFile, keyFile) {
    for (const [from, to] of [[certFile, 'served.crt'], [keyFile, 'served.key']]) {
        const tmp = path.join(dir, `${to}.new`);
        writeFileSync(tmp, readFileSync(from));
        renameSync(tmp, path.join(dir, to));
    }
}

/* A TLS connection to the gateway; resolves once the handshake is done. */
function connectTLS(opts = {}) {
    return new Promise((resolve, reject) => {
        const s = tls.connect({
            host: '127.0.0.1', port: gw.port, servername: 'localhost', ca: [certA.pem, certB.pem], ...opts,
        });
        s.once('secureConnect', () => { s.off('error', reject); resolve(s); });
        s.once('error', reject);
    });
}

before(async () => {
    dir = tempDir();
    certA = makeCert('a', 'unbusy-test-a');
    certB = makeCert('b', 'unbusy-test-b');
    install(certA.cert, certA.key);
    fake = await h.fake({ behavior: 'chunks=5' });
    gw = await h.gateway({
        config: {
            server: {
                header_timeout: '1s',
                tls: { cert: path.join(dir, 'served.crt'), key: path.join(dir, 'served.key') },
            },
            providers: { up: fakeProvider(fake) },
            models: { 'm-tls': [{ provider: 'up', model: 'up-model' }] },
        },
        ca: certA.pem,
        // A failed handshake is an info line; OpenSSL's reason may name the client's alert.
        // SIGHUP also reloads the config, whose loader checks the same pair: refused as invalid too
        allowStderr: [/TLS handshake failed/, /keeping the current TLS certificate/, /config reload: /],
    });
});
after(() => h.cleanup());

test('the banner and /healthz say https', async () => {
    assert.match(gw.proc.stderr, /listening on https:\/\/127\.0\.0\.1:\d+/);
    assert.ok(gw.url.startsWith('https://'));
    const r = await gw.request('/healthz');
    assert.equal(r.status, 200);
    assert.deepEqual(r.json(), { status: 'ok', scheme: 'https' });
    // Without the CA the certificate is not trusted: the connection really is TLS.
    await assert.rejects(httpRequest(`${gw.url}/healthz`), /self[- ]signed/i);
});

/* Runs the SDK in a child node that trusts the certificate through NODE_EXTRA_CA_CERTS, the way an
   application would; prints what it got as JSON. */
function sdkChild(caFile) {
    const script = `
        import OpenAI from 'openai';
        const client = new OpenAI({ baseURL: process.env.GW_BASE, apiKey: 'sk-client', maxRetries: 0 });
        const messages = [{ role: 'user', content: 'Say hello over TLS.' }];
        const whole = await client.chat.completions.create({ model: 'm-tls', messages });
        const stream = await client.chat.completions.create({ model: 'm-tls', messages, stream: true });
        let streamed = '';
        let chunks = 0;
        for await (const c of stream) { chunks++; streamed += c.choices[0]?.delta?.content ?? ''; }
        console.log(JSON.stringify({ whole: whole.choices[0].message.content, streamed, chunks }));
    `;
    return new Promise((resolve, reject) => {
        const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
            cwd: path.dirname(new URL(import.meta.url).pathname),
            env: { ...process.env, NODE_EXTRA_CA_CERTS: caFile, GW_BASE: gw.baseURL },
            stdio: ['ignore', 'pipe', 'pipe'],
        });
        let out = '';
        let err = '';
        child.stdout.on('data', (d) => { out += d; });
        child.stderr.on('data', (d) => { err += d; });
        const timer = setTimeout(() => child.kill('SIGKILL'), 30000);
        child.on('close', (code) => {
            clearTimeout(timer);
            if (code !== 0) return reject(new Error(`SDK child exited ${code}: ${err}`));
            try { resolve(JSON.parse(out)); } catch (e) { reject(new Error(`SDK child printed ${out}: ${err}`)); }
            return undefined;
        });
    });
}

test('the openai SDK over TLS: an assembled and a streamed answer', async () => {
    const got = await sdkChild(certA.cert);
    assert.ok(got.whole.length > 0, 'an assembled answer');
    assert.ok(got.chunks >= 5, `a streamed answer in chunks (got ${got.chunks})`);
    assert.equal(got.streamed, got.whole, 'the same text streamed and assembled');
});

test('pipelined requests, and a big stream back-pressured to a client that stops reading', async (t) => {
    const c = new RawClient(await connectTLS());
    await c.write(Buffer.concat([rawRequest('GET', '/healthz'), rawRequest('GET', '/v1/models'),
        rawRequest('GET', '/healthz')]));
    assert.equal((await c.readResponse()).status, 200);
    assert.match((await c.readResponse()).text, /m-tls/);
    assert.equal((await c.readResponse()).status, 200);

    const BIG = 30 * 1024 * 1024;
    c.pause();
    const rss0 = rssKiB(gw.pid);
    await c.write(rawRequest('POST', '/v1/chat/completions', {
        body: { model: 'm-tls', stream: true, fake: `big=${BIG},chunks=3000`, messages: [{ role: 'user', content: 'x' }] },
    }));
    let peak = rss0;
    for (const until = Date.now() + 2000 * SLOW; Date.now() < until;) {
        peak = Math.max(peak, rssKiB(gw.pid));
        await new Promise((r) => setTimeout(r, 100));
    }
    t.diagnostic(`gateway RSS ${rss0} KiB -> peak ${peak} KiB while the client read nothing`);
    assert.ok((peak - rss0) / 1024 < 24, `RSS grew by ${((peak - rss0) / 1024).toFixed(1)} MiB`);
    c.resume();
    const r = await c.readResponse({ timeout: 60000 });
    assert.equal(r.status, 200);
    assert.ok(r.body.length > BIG, `only ${r.body.length} bytes for ${BIG} content bytes`);
    assert.match(r.text, /data: \[DONE\]\n\n$/);
    c.destroy();
});

test('plain HTTP on the TLS port gets a plain 400 and the gateway stays up', async () => {
    const r = await httpRequest(`http://127.0.0.1:${gw.port}/v1/models`);
    assert.equal(r.status, 400);
    assertErrorShape(assert, r.json());
    assert.match(r.json().error.message, /https/);
    // Bytes that are neither TLS nor HTTP: the connection closes quietly.
    const raw = await RawClient.connect(gw.port);
    await raw.write(Buffer.from([0x00, 0x01, 0x02, 0x03, 0xff, 0xfe, 0x10, 0x20]).toString('latin1'));
    await raw.waitClosed(5000);
    assert.equal((await gw.request('/healthz')).status, 200);
});

test('a handshake that never finishes is closed after the header timeout', async () => {
    const raw = await RawClient.connect(gw.port);
    const opened = Date.now();
    await raw.write(Buffer.from([0x16, 0x03, 0x01, 0x00, 0x80])); // a record header, then nothing
    const closedAt = await raw.waitClosed(5000);
    assert.ok(closedAt - opened >= 900, `closed after ${closedAt - opened} ms, before the 1 s timeout`);
    assert.equal(raw.buffered, 0, 'nothing written back');
});

test('TLS 1.1 is refused; TLS 1.2 and 1.3 are served', async () => {
    // SECLEVEL=0 lets the client offer TLS 1.1 at all, so that it is the gateway that refuses.
    const err = await connectTLS({ minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0' })
        .then((s) => { s.destroy(); return null; }, (e) => e);
    assert.ok(err, 'a TLS 1.1 handshake succeeded');
    assert.equal(err.code, 'ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION', `refused by the server (${err.message})`);
    await waitUntil(() => /TLS handshake failed: unsupported protocol/.test(gw.proc.stderr),
        { what: 'the refused handshake logged' });

    const s12 = await connectTLS({ maxVersion: 'TLSv1.2' });
    assert.equal(s12.getProtocol(), 'TLSv1.2');
    assert.match(s12.getCipher().name, /^ECDHE-ECDSA-(AES\d+-GCM|CHACHA20-POLY1305)/);
    s12.destroy();
    const s13 = await connectTLS();
    assert.equal(s13.getProtocol(), 'TLSv1.3');
    s13.destroy();
});

test('ALPN answers http/1.1; a client offering only h2 gets no ALPN and HTTP/1.1 works', async () => {
    const both = await connectTLS({ ALPNProtocols: ['h2', 'http/1.1'] });
    assert.equal(both.alpnProtocol, 'http/1.1');
    both.destroy();
    const h2only = await connectTLS({ ALPNProtocols: ['h2'] });
    assert.equal(h2only.alpnProtocol, false);
    const c = new RawClient(h2only);
    await c.write(rawRequest('GET', '/healthz'));
    assert.equal((await c.readResponse()).status, 200);
    c.destroy();
});

test('SIGHUP: new handshakes get the new certificate, an established connection goes on', async () => {
    const oldSock = await connectTLS();
    assert.equal(oldSock.getPeerCertificate().fingerprint256, certA.fingerprint);
    const old = new RawClient(oldSock);
    await old.write(rawRequest('GET', '/healthz'));
    assert.equal((await old.readResponse()).status, 200);

    install(certB.cert, certB.key);
    process.kill(gw.pid, 'SIGHUP');
    await waitUntil(async () => {
        const s = await connectTLS();
        const fp = s.getPeerCertificate().fingerprint256;
        s.destroy();
        return fp === certB.fingerprint;
    }, { what: 'a new connection with the new certificate' });
    assert.match(gw.proc.stderr, /SIGHUP: TLS certificate reloaded \(CN=unbusy-test-b/);

    // The connection made before the reload keeps working, streamed answer included.
    await old.write(rawRequest('POST', '/v1/chat/completions', {
        body: { model: 'm-tls', stream: true, messages: [{ role: 'user', content: 'still there?' }] },
    }));
    const r = await old.readResponse();
    assert.equal(r.status, 200);
    assert.ok(sseContent(r.text).length > 0, 'streamed content on the old connection');
    assert.equal(oldSock.getPeerCertificate().fingerprint256, certA.fingerprint);
    old.destroy();

    // A pair that does not match keeps the certificate in use, and says why.
    install(certA.cert, certB.key);
    process.kill(gw.pid, 'SIGHUP');
    await waitUntil(() => /keeping the current TLS certificate: key .* does not match/.test(gw.proc.stderr),
        { what: 'the refused reload logged' });
    const s = await connectTLS();
    assert.equal(s.getPeerCertificate().fingerprint256, certB.fingerprint);
    s.destroy();
    assert.equal((await httpRequest(`${gw.url}/healthz`, { ca: certB.pem })).status, 200);
});

test('--check reports a missing file and a mismatched pair with file:line', async () => {
    const file = path.join(dir, 'check.yaml');
    const write = (cert, key) => writeFileSync(file, toYAML(withServerDefaults({
        server: { tls: { cert, key } },
        providers: { up: fakeProvider(fake) },
        models: { m: [{ provider: 'up', model: 'x' }] },
    })));
    write(certA.cert, certB.key);
    let r = await runGateway(['--check', '--config', file]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`${file}:\\d+: server\\.tls\\.key: key .*b\\.key does not match the certificate`));
    write(path.join(dir, 'nope.crt'), certA.key);
    r = await runGateway(['--check', '--config', file]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /:\d+: server\.tls\.cert: cannot read certificate .*nope\.crt: No such file or directory/);
    write(certA.cert, certA.key);
    r = await runGateway(['--check', '--config', file]);
    assert.equal(r.code, 0, r.output);
});
