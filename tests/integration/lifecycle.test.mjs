// Process life: --check validation with file:line messages, bad configs at
// start-up, graceful SIGTERM (stop accepting, finish streams, exit 0, bounded
// by drain_timeout) and keys kept out of every log.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { readFileSync } from 'node:fs';
import {
    Proc, SLOW, UNBUSY_BIN, drainStream, expectedContent, fakeProvider, harness, marker, runGateway, startGateway, toYAML,
    waitUntil, writeTemp,
} from './lib.mjs';

const msgs = [{ role: 'user', content: 'hi' }];

const escapeRe = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

test('--check accepts a good config (both model forms) and exits 0', async () => {
    const file = writeTemp('good.yaml', toYAML({
        server: { listen: '127.0.0.1:0', max_body_bytes: '1m', header_timeout: '2s' },
        providers: {
            deepseek: { base_url: 'https://api.deepseek.com/v1', api_key: 'sk-check-secret-123' },
            eas: { base_url: 'http://127.0.0.1:9/v1', api_key: 'raw-token-123456', auth_prefix: '', headers: { 'X-A': 'b' } },
        },
        models: {
            'deepseek-r1': [{ provider: 'deepseek', model: 'deepseek-reasoner' }, { provider: 'eas', model: 'r1' }],
            small: {
                deployments: [{ provider: 'eas', model: 'qwen' }],
                timeouts: { connect: '500ms', first_token: '2s', stall: '2s', total: '30s' },
                max_attempts: 2,
            },
        },
    }));
    const r = await runGateway(['--check', '--config', file]);
    assert.equal(r.code, 0, `--check failed on a good config:\n${r.output}`);
    assert.doesNotMatch(r.output, new RegExp(`${escapeRe(file)}:\\d+:`), 'error lines for a good config');
    assert.doesNotMatch(r.output, /sk-check-secret-123|raw-token-123456/, 'a key was printed');
    assert.doesNotMatch(r.output, /AddressSanitizer|runtime error:/);
});

test('the minimal documented config form is accepted', async () => {
    const file = writeTemp('minimal.yaml', [
        'server:',
        '  listen: 127.0.0.1:8080',
        'providers:',
        '  deepseek:',
        '    base_url: https://api.deepseek.com/v1',
        '    api_key: ${UNBUSY_IT_DEEPSEEK_KEY}',
        '  local-vllm:',
        '    base_url: http://10.0.0.5:8000/v1',
        'models:',
        '  deepseek-r1:                 # the name clients send',
        '    - provider: deepseek',
        '      model: deepseek-reasoner # the name the provider expects',
        '    - provider: local-vllm',
        '      model: deepseek-r1-distill-qwen-32b',
        '',
    ].join('\n'));
    const r = await runGateway(['--check', '--config', file], { env: { UNBUSY_IT_DEEPSEEK_KEY: 'sk-minimal-secret-42' } });
    assert.equal(r.code, 0, r.output);
    assert.doesNotMatch(r.output, /sk-minimal-secret-42/);
});

const BAD = [
    'server:', //                                    1
    '  listen: 127.0.0.1:0', //                      2
    'providers:', //                                 3
    '  good:', //                                    4
    '    base_url: http://127.0.0.1:9/v1', //        5
    '    api_key: sk-bad-config-secret-77', //       6
    '  weird:', //                                   7
    '    base_url: ftp://example.com/v1', //         8  unsupported scheme
    'models:', //                                    9
    '  m1:', //                                     10
    '    - provider: nope', //                      11  no such provider
    '      model: x', //                            12
    '  m2:', //                                     13
    '    deployments:', //                          14
    '      - provider: good', //                    15
    '        model: y', //                          16
    '    timeouts:', //                             17
    '      first_token: banana', //                 18  not a duration
    '',
].join('\n');

test('--check reports every error as FILE:LINE: key.path: message and exits non-zero', async () => {
    const file = writeTemp('bad.yaml', BAD);
    const r = await runGateway(['--check', '--config', file]);
    assert.notEqual(r.code, 0, 'a bad config passed --check');
    assert.equal(r.signal, null, `--check died of ${r.signal}`);
    const f = escapeRe(file);
    const expect = [
        [8, /providers\.weird\.base_url/],
        [11, /models\.m1\S*provider/],
        [18, /models\.m2\.timeouts\.first_token/],
    ];
    for (const [line, key] of expect) {
        const re = new RegExp(`^${f}:${line}: ${key.source}: \\S.*$`, 'm');
        assert.match(r.output, re, `no "${file}:${line}: ${key.source}: ..." line in:\n${r.output}`);
    }
    assert.doesNotMatch(r.output, /sk-bad-config-secret-77/, 'a key was printed');
    assert.doesNotMatch(r.output, /AddressSanitizer|LeakSanitizer|runtime error:/);
});

test('a YAML syntax error names the file and a line', async () => {
    const file = writeTemp('syntax.yaml', 'server:\n  listen: 127.0.0.1:0\nmodels: [unclosed\nproviders:\n  a: {\n');
    const r = await runGateway(['--check', '--config', file]);
    assert.notEqual(r.code, 0);
    assert.equal(r.signal, null);
    assert.match(r.output, new RegExp(`^${escapeRe(file)}:\\d+: `, 'm'), r.output);
});

test('starting with a bad config fails without listening', async () => {
    const file = writeTemp('bad.yaml', BAD);
    const r = await runGateway(['--config', file]);
    assert.notEqual(r.code, 0);
    assert.equal(r.signal, null);
    assert.doesNotMatch(r.stderr, /listening on/);
    assert.match(r.output, new RegExp(`${escapeRe(file)}:11: `));
});

test('a missing config file is an error naming it', async () => {
    const file = writeTemp('x.yaml', '') + '.does-not-exist';
    const r = await runGateway(['--check', '--config', file]);
    assert.notEqual(r.code, 0);
    assert.equal(r.signal, null);
    assert.match(r.output, new RegExp(escapeRe(file)));
});

function connectable(port) {
    return new Promise((resolve) => {
        const s = net.connect({ port, host: '127.0.0.1' });
        s.once('connect', () => { s.destroy(); resolve(true); });
        s.once('error', () => resolve(false));
    });
}

test('SIGTERM: stop accepting, finish the in-flight stream, exit 0', { timeout: 60000 }, async (t) => {
    const h = harness(t);
    const fake = await h.fake({ behavior: 'chunks=30,chunk_ms=100' });
    const gw = await h.gateway({
        config: {
            server: { drain_timeout: '20s' },
            providers: { 'prov-a': fakeProvider(fake) },
            models: { m: [{ provider: 'prov-a', model: 'up-m' }] },
        },
    });
    const sdk = gw.client();
    const { data: stream, response } = await sdk.chat.completions
        .create({ model: 'm', messages: msgs, stream: true }).withResponse();
    let signalled = 0;
    const r = await drainStream(stream, {
        onChunk: async (c) => {
            if (!signalled && c.choices?.[0]?.delta?.content) {
                gw.proc.signal('SIGTERM');
                signalled = Date.now();
                await waitUntil(async () => !(await connectable(gw.port)),
                    { timeout: 3000 * SLOW, what: 'the listener to close after SIGTERM' });
            }
        },
    });
    const streamEnd = Date.now();
    assert.ok(signalled, 'no content chunk arrived');
    assert.equal(r.error, null, `the in-flight stream broke on SIGTERM: ${r.error}`);
    assert.equal(r.content, expectedContent(30));
    assert.ok(streamEnd - signalled > 1000, 'the stream ended suspiciously soon after SIGTERM');
    const exit = await gw.proc.waitExit(5000 * SLOW);
    assert.ok(exit, 'the gateway did not exit after its last stream finished');
    assert.equal(exit.code, 0, `exit code ${exit.code} signal ${exit.signal}`);
    assert.ok(gw.proc.exitTime >= streamEnd - 50, 'the gateway exited before the stream was finished');
    // The finished request was logged before exit.
    assert.ok(gw.accessLog().some((e) => e.request_id === response.headers.get('x-request-id')),
        'the drained request is missing from the access log');
    await gw.stop(); // the verdict: sanitizer reports, error lines, secrets
});

test('SIGTERM: drain_timeout bounds the wait; the cut stream errors, exit 0', { timeout: 60000 }, async (t) => {
    const h = harness(t);
    const fake = await h.fake({ behavior: 'chunks=600,chunk_ms=100' });
    const gw = await h.gateway({
        config: {
            server: { drain_timeout: '1s' },
            providers: { 'prov-a': fakeProvider(fake) },
            models: { m: [{ provider: 'prov-a', model: 'up-m' }] },
        },
        strictStderr: false, // cutting a stream at the drain deadline may be logged
    });
    const stream = await gw.client().chat.completions.create({ model: 'm', messages: msgs, stream: true });
    let signalled = 0;
    const r = await drainStream(stream, {
        onChunk: (c) => {
            if (!signalled && c.choices?.[0]?.delta?.content) {
                gw.proc.signal('SIGTERM');
                signalled = Date.now();
            }
        },
    });
    assert.ok(signalled);
    assert.ok(r.error, 'a stream cut by the drain deadline ended without an error');
    const exit = await gw.proc.waitExit(6000 * SLOW);
    assert.ok(exit, 'still running long after drain_timeout');
    assert.equal(exit.code, 0, `exit code ${exit.code} signal ${exit.signal}`);
    assert.ok(gw.proc.exitTime - signalled < 4000 * SLOW, `exit took ${gw.proc.exitTime - signalled} ms with a 1 s drain_timeout`);
    await gw.stop();
});

test('SIGTERM with only idle keep-alive connections exits promptly', async (t) => {
    const h = harness(t);
    const fake = await h.fake({ behavior: 'chunks=2' });
    const gw = await h.gateway({
        config: {
            server: { drain_timeout: '20s' },
            providers: { 'prov-a': fakeProvider(fake) },
            models: { m: [{ provider: 'prov-a', model: 'up-m' }] },
        },
    });
    const sdk = gw.client();
    // The SDK keeps its connections open for reuse after these.
    await Promise.all([1, 2, 3].map(() => sdk.chat.completions.create({ model: 'm', messages: msgs })));
    const t0 = Date.now();
    gw.proc.signal('SIGTERM');
    const exit = await gw.proc.waitExit(10000 * SLOW);
    assert.ok(exit, 'did not exit');
    assert.equal(exit.code, 0);
    assert.ok(Date.now() - t0 < 3000 * SLOW, `idle connections held the drain for ${Date.now() - t0} ms`);
    await gw.stop();
});

test('at start the open files soft limit is raised to the hard limit', async (t) => {
    // Started with a soft limit of 256 (what a service manager may hand it), as prlimit does
    // it: prlimit sets the limit and then executes unbusy in the same process.
    const file = writeTemp('nofile.yaml', toYAML({
        server: { listen: '127.0.0.1:0', workers: 1, max_connections: 100 },
        providers: { p: { base_url: 'http://127.0.0.1:9/v1' } },
        models: { m: [{ provider: 'p', model: 'up-m' }] },
    }));
    const proc = new Proc('unbusy', 'prlimit', ['--nofile=256:', UNBUSY_BIN, '--config', file]);
    t.after(() => proc.terminate(2000));
    await proc.waitFor('stderr', /listening on/, 10000 * SLOW);
    const line = /^Max open files\s+(\d+)\s+(\d+)/m.exec(readFileSync(`/proc/${proc.pid}/limits`, 'utf8'));
    assert.ok(line, 'no open files line in /proc/PID/limits');
    assert.ok(Number(line[2]) > 256, `the hard limit (${line[2]}) is not above 256 here`);
    assert.equal(line[1], line[2], 'the soft limit was not raised to the hard limit');
    assert.match(proc.stderr, /open files limit raised from 256 to \d+/);
});

test('API keys never appear on stdout or stderr', async (t) => {
    const h = harness(t);
    const fake = await h.fake({ behavior: 'chunks=2' });
    const envKey = 'sk-env-substituted-secret-9f8e7d';
    const gw = await h.gateway({
        config: {
            providers: {
                'prov-env': { base_url: fake.baseURL, api_key: '${UNBUSY_IT_PROVIDER_KEY}' },
                'prov-lit': { base_url: fake.baseURL, api_key: 'sk-literal-secret-1a2b3c', auth_header: 'X-Api-Key', auth_prefix: '' },
            },
            models: {
                'm-env': [{ provider: 'prov-env', model: 'up-env' }],
                'm-lit': [{ provider: 'prov-lit', model: 'up-lit' }],
            },
        },
        env: { UNBUSY_IT_PROVIDER_KEY: envKey },
        strictStderr: false, // the provider 401s below may be logged, without the key
    });
    const sdk = gw.client();
    const mk = marker('envkey');
    await sdk.chat.completions.create({ model: 'm-env', messages: msgs, unbusy_test_id: mk });
    const up = await fake.requestsWith(mk);
    assert.equal(up.length, 1);
    assert.equal(up[0].headers.authorization, `Bearer ${envKey}`, '${ENV} not substituted in api_key');
    // Failures are where keys leak into logs: provider 401, bad deployment, stream errors.
    for (const [model, fakeDir] of [['m-env', 'status=401'], ['m-lit', 'status=401'], ['m-lit', 'status=500'], ['m-env', 'chunks=5,cut=2']]) {
        await sdk.chat.completions.create({ model, messages: msgs, stream: true, fake: fakeDir })
            .then(drainStream).catch(() => {});
    }
    await gw.stop();
    for (const s of [envKey, 'sk-literal-secret-1a2b3c']) {
        assert.ok(!gw.proc.stdout.includes(s), 'a key is on stdout');
        assert.ok(!gw.proc.stderr.includes(s), 'a key is on stderr');
    }
});
