// Observability: GET /metrics (Prometheus text format) after real traffic with
// failures, the alert rules (promtool check + unit tests), the Grafana
// dashboard's and the rules' metric names against a running instance, and the
// status page rendered by headless Chromium.
//
// One gateway for the whole file, two workers (so the per-worker shards are
// summed), in front of two fakes: prov-bad answers 503 to everything, prov-ok
// answers normally. Model m: prov-bad (tier 0) then prov-ok (tier 1); model
// solo: only prov-bad. Breakers open after 3 failures in a row and stay open
// for a minute, so the states seen below do not change while the file runs.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import {
    Proc, RawClient, ROOT, SLOW, drainStream, fakeProvider, harness, marker, rssKiB, tempDir, waitUntil,
} from './lib.mjs';

const msgs = [{ role: 'user', content: 'hello' }];
const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
const PROMTOOL = process.env.PROMTOOL_BIN || 'promtool';
const RULES = path.join(ROOT, 'deploy/prometheus/unbusy-rules.yml');
const RULE_TESTS = path.join(ROOT, 'deploy/prometheus/unbusy-rules.test.yml');
const DASHBOARD = path.join(ROOT, 'deploy/grafana/unbusy.json');
const DOCS = path.join(ROOT, 'docs/metrics.md');

const h = harness();
let gw, sdk, fakeOk;
const seen = { okStreams: 0, okWhole: 0, completionTokens: 0, promptTokens: 0, midStream: 0, clientError: 0 };
let soloFailures = 0;

/* ---- the exposition format ----------------------------------------------------------- */

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;

/* Parses a text exposition strictly: returns { types: Map(family -> type), samples: [{name, labels, value}] }. */
function parseExposition(text) {
    assert.ok(text.endsWith('\n'), 'the exposition does not end with a line feed');
    const types = new Map();
    const helps = new Set();
    const samples = [];
    let current = null;
    for (const line of text.slice(0, -1).split('\n')) {
        let m;
        if ((m = /^# HELP (\S+) (.+)$/.exec(line))) {
            assert.ok(!helps.has(m[1]), `HELP for ${m[1]} twice`);
            helps.add(m[1]);
            continue;
        }
        if ((m = /^# TYPE (\S+) (counter|gauge|histogram|summary|untyped)$/.exec(line))) {
            assert.ok(!types.has(m[1]), `TYPE for ${m[1]} twice`);
            assert.ok(helps.has(m[1]), `TYPE before HELP for ${m[1]}`);
            types.set(m[1], m[2]);
            current = m[1];
            continue;
        }
        assert.ok(!line.startsWith('#'), `unexpected comment line ${line}`);
        m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
        assert.ok(m, `malformed sample line: ${line}`);
        const [, name, labelText = '', valueText] = m;
        const labels = {};
        const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(,|$)/y;
        let pos = 0;
        while (pos < labelText.length) {
            re.lastIndex = pos;
            const lm = re.exec(labelText);
            assert.ok(lm, `malformed labels in: ${line}`);
            assert.ok(!(lm[1] in labels), `label ${lm[1]} twice in: ${line}`);
            labels[lm[1]] = lm[2].replace(/\\(.)/g, (_, c) => (c === 'n' ? '\n' : c));
            pos = re.lastIndex;
        }
        const value = valueText === '+Inf' ? Infinity : Number(valueText);
        assert.ok(!Number.isNaN(value), `bad value in: ${line}`);
        const family = types.get(name) === undefined ? name.replace(/_(bucket|sum|count)$/, '') : name;
        assert.equal(family, current, `sample ${name} outside its family block (${current})`);
        if (types.get(family) === 'counter') assert.ok(value >= 0, `negative counter: ${line}`);
        samples.push({ name, labels, value });
    }
    for (const s of samples) assert.ok(NAME.test(s.name));
    return { types, samples };
}

async function scrape() {
    const r = await gw.request('/metrics');
    assert.equal(r.status, 200);
    assert.match(r.headers['content-type'], /^text\/plain; version=0\.0\.4/);
    return { text: r.text, ...parseExposition(r.text) };
}

/* The value of the one sample with exactly these labels (undefined if none). */
function value(m, name, labels) {
    const want = JSON.stringify(Object.entries(labels).sort());
    const hits = m.samples.filter((s) => s.name === name && JSON.stringify(Object.entries(s.labels).sort()) === want);
    assert.ok(hits.length <= 1, `${name} ${want} appears ${hits.length} times`);
    return hits.length ? hits[0].value : undefined;
}

function sum(m, name, where = {}) {
    return m.samples.filter((s) => s.name === name && Object.entries(where).every(([k, v]) => s.labels[k] === v))
        .reduce((a, s) => a + s.value, 0);
}

const seriesKeys = (m) => new Set(m.samples.map((s) => s.name + JSON.stringify(s.labels)));

/* unbusy_* and process_* names used in a PromQL text, histogram suffixes stripped when the family is a histogram. */
function metricNames(text, types) {
    const names = new Set();
    for (const [n] of text.matchAll(/\b(?:unbusy|process)_[a-z0-9_]+\b/g)) {
        const base = n.replace(/_(bucket|sum|count)$/, '');
        names.add(types.get(base) === 'histogram' ? base : n);
    }
    return names;
}

/* ---- setup ------------------------------------------------------------------------------ */

before(async () => {
    const fakeBad = await h.fake({ behavior: 'status=503', name: 'fake-bad' });
    fakeOk = await h.fake({ behavior: 'ttft=5,chunks=5', name: 'fake-ok' });
    const breaker = { consecutive_failures: 3, open: '60s', open_max: '120s' };
    gw = await h.gateway({
        config: {
            server: { workers: 2 },
            providers: {
                'prov-bad': fakeProvider(fakeBad, { probe: false }),
                'prov-ok': fakeProvider(fakeOk),
            },
            models: {
                m: {
                    deployments: [
                        { provider: 'prov-bad', model: 'up-bad', tier: 0 },
                        { provider: 'prov-ok', model: 'up-ok', tier: 1 },
                    ],
                    // continue_on_cut off: the cut stream below is to reach the client as an error event
                    resilience: { breaker, retry_budget: { ratio: 1, min_per_sec: 100 }, continue_on_cut: false },
                },
                solo: {
                    deployments: [{ provider: 'prov-bad', model: 'up-solo' }],
                    resilience: { breaker },
                },
            },
        },
    });
    sdk = gw.client();

    // Streams on m: the first three fail over from prov-bad (which then trips), all succeed.
    for (let i = 0; i < 6; i++) {
        const r = await drainStream(await sdk.chat.completions.create({
            model: 'm', messages: msgs, stream: true, stream_options: { include_usage: true }, unbusy_test_id: marker('obs'),
        }));
        assert.equal(r.error, null, `stream ${i} failed: ${r.error}`);
        seen.okStreams++;
        seen.completionTokens += r.usage.completion_tokens;
        seen.promptTokens += r.usage.prompt_tokens;
    }
    for (let i = 0; i < 3; i++) {
        const r = await sdk.chat.completions.create({ model: 'm', messages: msgs, fake: 'chunks=3' });
        seen.okWhole++;
        seen.completionTokens += r.usage.completion_tokens;
        seen.promptTokens += r.usage.prompt_tokens;
    }
    // A stream cut after it started: the client sees an error event.
    const cut = await drainStream(await sdk.chat.completions.create({ model: 'm', messages: msgs, stream: true, fake: 'cut=2' }));
    assert.ok(cut.error, 'the cut stream did not end with an error');
    seen.midStream++;
    // The provider refuses the request itself: passed through, not an upstream failure.
    await assert.rejects(sdk.chat.completions.create({ model: 'm', messages: msgs, fake: 'status=400' }), { status: 400 });
    seen.clientError++;
    // solo: three 503s trip its only deployment; the fourth finds nothing to try.
    for (let i = 0; i < 4; i++) {
        await assert.rejects(sdk.chat.completions.create({ model: 'solo', messages: msgs }), { status: 503 });
        soloFailures++;
    }
    // Unknown models and paths: answered, never a label.
    for (let i = 0; i < 3; i++) {
        const r = await gw.request('/v1/chat/completions', { method: 'POST', body: { model: `nope-${marker('x')}`, messages: msgs } });
        assert.equal(r.status, 404);
    }
});

after(() => h.cleanup());

/* ---- /metrics ------------------------------------------------------------------------------ */

test('/metrics parses and the request counters match the traffic', async () => {
    const m = await scrape();
    const okM = { model: 'm', provider: 'prov-ok' };
    assert.equal(value(m, 'unbusy_requests_total', { ...okM, status_class: '2xx', outcome: 'ok' }), seen.okStreams + seen.okWhole);
    assert.equal(value(m, 'unbusy_requests_total', { ...okM, status_class: '2xx', outcome: 'mid_stream_error' }), seen.midStream);
    assert.equal(value(m, 'unbusy_requests_total', { ...okM, status_class: '4xx', outcome: 'client_error' }), seen.clientError);
    assert.equal(value(m, 'unbusy_requests_total', { model: 'm', provider: 'prov-bad', status_class: '2xx', outcome: 'ok' }), 0);
    // solo: three answered by prov-bad's failure, the fourth with no deployment tried at all.
    assert.equal(value(m, 'unbusy_requests_total', { model: 'solo', provider: 'prov-bad', status_class: '5xx', outcome: 'upstream_failed' }), 3);
    assert.equal(value(m, 'unbusy_requests_total', { model: 'solo', provider: 'none', status_class: '5xx', outcome: 'upstream_failed' }), 1);
    assert.equal(sum(m, 'unbusy_requests_total'), seen.okStreams + seen.okWhole + seen.midStream + seen.clientError + soloFailures);

    // Three failed attempts on prov-bad for m, each moved on.
    assert.equal(value(m, 'unbusy_upstream_errors_total', { model: 'm', provider: 'prov-bad', deployment_model: 'up-bad', class: 'server_error' }), 3);
    assert.equal(value(m, 'unbusy_upstream_errors_total', { model: 'solo', provider: 'prov-bad', deployment_model: 'up-solo', class: 'server_error' }), 3);
    assert.equal(value(m, 'unbusy_upstream_errors_total', { model: 'm', provider: 'prov-ok', deployment_model: 'up-ok', class: 'cut' }), 1);
    assert.equal(value(m, 'unbusy_failovers_total', { model: 'm' }), 3);
    const requestsM = seen.okStreams + seen.okWhole + seen.midStream + seen.clientError;
    assert.equal(value(m, 'unbusy_attempts_total', { model: 'm' }), requestsM + 3);
    assert.equal(value(m, 'unbusy_attempts_total', { model: 'solo' }), 3);

    // Tokens as the clients saw them in usage.
    assert.equal(value(m, 'unbusy_tokens_total', { ...okM, kind: 'completion' }), seen.completionTokens);
    assert.equal(value(m, 'unbusy_tokens_total', { ...okM, kind: 'prompt' }), seen.promptTokens);
    assert.equal(value(m, 'unbusy_tokens_total', { model: 'm', provider: 'prov-bad', kind: 'completion' }), 0);

    // Histograms: a TTFT for every request that got content, durations for all; buckets cumulative.
    const withContent = seen.okStreams + seen.okWhole + seen.midStream;
    assert.equal(value(m, 'unbusy_ttft_seconds_count', { model: 'm' }), withContent);
    assert.equal(value(m, 'unbusy_request_duration_seconds_count', { model: 'm' }), requestsM);
    assert.equal(value(m, 'unbusy_request_duration_seconds_count', { model: 'solo' }), soloFailures);
    for (const fam of ['unbusy_ttft_seconds', 'unbusy_request_duration_seconds', 'unbusy_inter_token_seconds']) {
        const buckets = m.samples.filter((s) => s.name === `${fam}_bucket` && s.labels.model === 'm');
        assert.ok(buckets.length >= 10, `${fam}: ${buckets.length} buckets`);
        for (let i = 1; i < buckets.length; i++) assert.ok(buckets[i].value >= buckets[i - 1].value, `${fam} not cumulative`);
        assert.equal(buckets.at(-1).labels.le, '+Inf');
        assert.equal(buckets.at(-1).value, value(m, `${fam}_count`, { model: 'm' }));
    }
    // Streams of 5 and 3 content chunks: 4 and 2 gaps each (at least; the cut one adds 1).
    assert.ok(value(m, 'unbusy_inter_token_seconds_count', { model: 'm' }) >= seen.okStreams * 4 + seen.okWhole * 2);
    assert.ok(value(m, 'unbusy_ttft_seconds_sum', { model: 'm' }) > 0);
});

test('/metrics: deployment state, probes, connections and the process', async () => {
    const m = await scrape();
    const bad = { model: 'm', provider: 'prov-bad', deployment_model: 'up-bad' };
    const ok = { model: 'm', provider: 'prov-ok', deployment_model: 'up-ok' };
    const solo = { model: 'solo', provider: 'prov-bad', deployment_model: 'up-solo' };
    assert.equal(value(m, 'unbusy_deployment_breaker_state', bad), 2);
    assert.equal(value(m, 'unbusy_deployment_breaker_state', ok), 0);
    assert.equal(value(m, 'unbusy_deployment_up', bad), 0);
    assert.equal(value(m, 'unbusy_deployment_up', ok), 1);
    assert.equal(value(m, 'unbusy_deployment_up', solo), 0);
    assert.equal(value(m, 'unbusy_deployment_breaker_trips_total', bad), 1);
    assert.ok(value(m, 'unbusy_deployment_ttft_ewma_seconds', ok) > 0);
    assert.equal(value(m, 'unbusy_probe_up', { provider: 'prov-ok' }), 1);
    assert.equal(value(m, 'unbusy_probe_up', { provider: 'prov-bad' }), undefined, 'probes are off for prov-bad');
    for (const n of ['unbusy_queue_depth', 'unbusy_shed_total', 'unbusy_degraded_total', 'unbusy_retry_budget_exhausted_total']) {
        assert.equal(value(m, n, { model: 'm' }), 0, n);
    }
    assert.equal(value(m, 'unbusy_hedges_total', { model: 'm', result: 'started' }), 0);
    assert.equal(value(m, 'unbusy_inflight_requests', {}), 0);
    assert.equal(value(m, 'unbusy_deployment_inflight', ok), 0);

    const rss = value(m, 'process_resident_memory_bytes', {});
    const real = rssKiB(gw.pid) * 1024;
    assert.ok(rss > real / 2 && rss < real * 2, `process_resident_memory_bytes ${rss}, /proc says ${real}`);
    assert.ok(value(m, 'process_open_fds', {}) >= 4);
    // CPU time as /proc counts it, read just before and just after a scrape.
    const tick = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout) || 100;
    const cpu = () => readFileSync(`/proc/${gw.pid}/stat`, 'utf8').replace(/^.*\) /s, '').split(' ')
        .slice(11, 13).reduce((a, x) => a + Number(x), 0) / tick;
    const cpuBefore = cpu();
    const cpuScraped = value(await scrape(), 'process_cpu_seconds_total', {});
    const cpuAfter = cpu();
    assert.ok(cpuScraped >= cpuBefore - 1e-9 && cpuScraped <= cpuAfter + 1e-9,
        `process_cpu_seconds_total ${cpuScraped} not within [${cpuBefore}, ${cpuAfter}]`);
    assert.ok(Math.abs(value(m, 'process_start_time_seconds', {}) - Date.now() / 1000) < 600);

    // Idle keep-alive connections and a request in flight show up while they last.
    const conns = await Promise.all([1, 2, 3].map(() => RawClient.connect(gw.port)));
    let withRaw = 0;
    try {
        await waitUntil(async () => value(await scrape(), 'unbusy_open_connections', {}) >= 4,
            { timeout: 5000 * SLOW, what: 'unbusy_open_connections >= 4 (three idle ones and the scrape)' });
        const slow = sdk.chat.completions.create({ model: 'm', messages: msgs, fake: 'ttft=1500' });
        const during = await waitUntil(async () => {
            const s = await scrape();
            return value(s, 'unbusy_inflight_requests', {}) >= 1 ? s : null;
        }, { timeout: 5000 * SLOW, what: 'a request in flight' });
        assert.equal(value(during, 'unbusy_deployment_inflight', ok), 1);
        await slow;
        // Measured once nothing else opens connections: the three raw ones must leave it.
        withRaw = value(await scrape(), 'unbusy_open_connections', {});
    } finally {
        for (const c of conns) c.destroy();
    }
    await waitUntil(async () => value(await scrape(), 'unbusy_open_connections', {}) <= withRaw - 3,
        { timeout: 5000 * SLOW, what: 'the three closed connections to leave unbusy_open_connections' });
});

test('/metrics: labels come from the config and fixed sets only; series do not grow with requests', async () => {
    const before1 = await scrape();
    const mk = marker('never-a-label');
    for (let i = 0; i < 5; i++) {
        await sdk.chat.completions.create({ model: 'm', messages: msgs, unbusy_test_id: `${mk}-${i}`, user: `${mk}-user` });
        const r = await gw.request(`/v1/chat/completions?x=${mk}`, { method: 'POST', body: { model: `${mk}-model`, messages: msgs } });
        assert.equal(r.status, 404);
    }
    const m = await scrape();
    assert.ok(!m.text.includes(mk), 'a request string reached /metrics');
    assert.deepEqual([...seriesKeys(m)].filter((k) => !seriesKeys(before1).has(k)), [], 'new series appeared');
    assert.equal(value(m, 'unbusy_requests_total', { model: 'm', provider: 'prov-ok', status_class: '2xx', outcome: 'ok' }),
        value(before1, 'unbusy_requests_total', { model: 'm', provider: 'prov-ok', status_class: '2xx', outcome: 'ok' }) + 5);

    const allowed = {
        model: new Set(['m', 'solo']),
        provider: new Set(['prov-bad', 'prov-ok', 'none']),
        deployment_model: new Set(['up-bad', 'up-ok', 'up-solo']),
        status_class: new Set(['2xx', '3xx', '4xx', '5xx']),
        outcome: new Set(['ok', 'client_error', 'rejected', 'upstream_failed', 'mid_stream_error', 'client_closed', 'shed',
            'queue_timeout', 'rate_limited', 'budget_exhausted']),
        class: new Set(['connect', 'tls', 'connect_timeout', 'first_token', 'stall', 'rate_limited', 'server_error',
            'auth', 'bad_reply', 'cut', 'io', 'status']),
        kind: new Set(['prompt', 'completion', 'reasoning', 'cached']),
        result: new Set(['started', 'won', 'wasted', 'written', 'dropped_full', 'dropped_error', 'fired', 'delivered', 'failed', 'dropped',
            'ok', 'unsafe', 'invalid']),
        reason: new Set(['learnt', 'siblings', 'shorter', 'cold', 'configured', 'budget', 'no_deployment']),
        prompt: new Set(['short', 'long']),
    };
    for (const s of m.samples) {
        for (const [k, v] of Object.entries(s.labels)) {
            if (k === 'le') {
                assert.ok(v === '+Inf' || Number.isFinite(Number(v)), `le="${v}"`);
                continue;
            }
            assert.ok(allowed[k], `unexpected label ${k} on ${s.name}`);
            assert.ok(allowed[k].has(v), `unexpected value ${k}="${v}" on ${s.name}`);
        }
    }
    assert.ok(m.samples.length < 600, `${m.samples.length} samples for 2 models and 3 deployments`);
});

test('/metrics: every way a request ends has its own outcome label', async (t) => {
    const ht = harness(t);
    const f = await ht.fake({ behavior: 'chunks=2' });
    const KEY_LOW = 'sk-test-outcome-low-0123456789', KEY_HIGH = 'sk-test-outcome-high-0123456789';
    const KEY_RPM = 'sk-test-outcome-rpm-0123456789', KEY_SPEND = 'sk-test-outcome-spend-0123456789';
    const g = await ht.gateway({
        config: {
            keys: [
                { name: 'low', key: KEY_LOW, priority: 3 }, { name: 'high', key: KEY_HIGH, priority: 0 },
                { name: 'rpm', key: KEY_RPM, rpm: 1 }, { name: 'spend', key: KEY_SPEND },
            ],
            // 2 completion tokens at 0.1 USD each: one request spends the key's whole day
            prices: { a: { x: { input: 0, output: 100000 } } },
            budgets: { keys: { spend: { daily: 0.1 } } },
            providers: { a: fakeProvider(f, { probe: false }) },
            models: {
                free: [{ provider: 'a', model: 'x' }],
                busy: {
                    deployments: [{ provider: 'a', model: 'x', max_concurrency: 1 }],
                    queue: { max: 1, timeout: '10s', keepalive: '200ms' },
                },
            },
        },
    });
    const post = (key, model, extra = {}, headers = {}) => g.request('/v1/chat/completions', {
        method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${key}`, ...headers },
        body: JSON.stringify({ model, messages: msgs, ...extra }),
    });
    const outcomes = async () => {
        const r = await g.request('/metrics');
        const m = parseExposition(r.text);
        const by = {};
        for (const s of m.samples.filter((x) => x.name === 'unbusy_requests_total' && x.value > 0))
            by[s.labels.outcome] = (by[s.labels.outcome] || 0) + s.value;
        return by;
    };

    assert.equal((await post(KEY_RPM, 'free')).status, 200);
    assert.equal((await post(KEY_RPM, 'free')).status, 429); // rate_limited
    assert.equal((await post(KEY_SPEND, 'free')).status, 200);
    const spent = await post(KEY_SPEND, 'free'); // budget_exhausted
    assert.equal(spent.status, 429);
    assert.equal(spent.json().error.code, 'insufficient_quota');

    // busy: one request holds the only slot while the others queue behind it.
    let sent = (await f.stats()).requests;
    const holder = post(KEY_HIGH, 'busy', { fake: 'ttft=1500,chunks=1' });
    await waitUntil(async () => (await f.stats()).requests === sent + 1, { what: 'the slot taken' });
    const late = await post(KEY_LOW, 'busy', {}, { 'x-unbusy-queue-timeout': '200' }); // queue_timeout
    assert.equal(late.status, 429);
    const waiter = post(KEY_LOW, 'busy');
    await waitUntil(async () => (await g.request('/admin/deployments')).json().models
        .find((x) => x.model === 'busy').admission.queued === 1, { what: 'a waiter queued' });
    const shed = await post(KEY_LOW, 'busy'); // the queue (max 1) is full: shed
    assert.equal(shed.status, 429);
    assert.equal((await holder).status, 200);
    assert.equal((await waiter).status, 200);

    // client_closed: the client goes away while the provider is thinking.
    const raw = await RawClient.connect(g.port);
    const body = JSON.stringify({ model: 'free', messages: msgs, fake: 'ttft=3000,chunks=1' });
    sent = (await f.stats()).requests;
    raw.write(`POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${KEY_HIGH}\r\n` +
        `Content-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
    await waitUntil(async () => (await f.stats()).requests === sent + 1, { what: 'the request upstream' });
    raw.destroy();
    await waitUntil(async () => (await outcomes()).client_closed === 1, { timeout: 5000 * SLOW, what: 'client_closed counted' });

    const got = await outcomes();
    assert.deepEqual(got, {
        ok: 4, rate_limited: 1, budget_exhausted: 1, queue_timeout: 1, shed: 1, client_closed: 1,
    });
    // The access log says the same, outcome by outcome.
    const logged = {};
    for (const e of g.accessLog().filter((x) => x.path === '/v1/chat/completions'))
        logged[e.outcome] = (logged[e.outcome] || 0) + 1;
    assert.deepEqual(logged, got);
});

/* ---- rules, dashboard, docs ------------------------------------------------------------------ */

function promtool(...args) {
    const r = spawnSync(PROMTOOL, args, { encoding: 'utf8', timeout: 60000 });
    assert.equal(r.error, undefined, `${PROMTOOL}: ${r.error?.message} (is the prometheus package installed?)`);
    return r;
}

test('the alert rules pass promtool check and their unit tests', () => {
    let r = promtool('check', 'rules', RULES);
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /SUCCESS: 10 rules found/);
    r = promtool('test', 'rules', RULE_TESTS);
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /SUCCESS/);
    const text = readFileSync(RULES, 'utf8');
    for (const a of ['UnbusyTTFTP99High', 'UnbusyGPUMemoryHigh', 'UnbusyErrorRateHigh', 'UnbusyDeploymentBreakerOpen',
        'UnbusyModelAllDeploymentsDown', 'UnbusyShedRateHigh']) {
        assert.match(text, new RegExp(`alert: ${a}\\b`));
        assert.match(readFileSync(RULE_TESTS, 'utf8'), new RegExp(`alertname: ${a}\\b`), `no unit test for ${a}`);
    }
});

/* Every PromQL expression of the dashboard, Grafana variables replaced by plain values. */
function dashboardQueries() {
    const dash = JSON.parse(readFileSync(DASHBOARD, 'utf8'));
    const out = [];
    const walk = (v) => {
        if (Array.isArray(v)) v.forEach(walk);
        else if (v && typeof v === 'object') {
            if (typeof v.expr === 'string') out.push(v.expr);
            if (v.query && typeof v.query.query === 'string') out.push(v.query.query);
            Object.values(v).forEach(walk);
        }
    };
    walk(dash.panels);
    walk(dash.templating);
    return out.map((q) => q.replace(/\$__rate_interval/g, '1m').replace(/\$(model|job)\b/g, '.*'));
}

test('every metric the dashboard and the rules use exists in a running instance', async () => {
    const m = await scrape();
    const queries = dashboardQueries();
    assert.ok(queries.length >= 30, `only ${queries.length} queries in the dashboard`);
    const missing = [];
    for (const q of queries) for (const n of metricNames(q, m.types)) if (!m.types.has(n)) missing.push(`dashboard: ${n}`);
    const rules = readFileSync(RULES, 'utf8');
    const ruleNames = metricNames(rules, m.types);
    assert.ok(ruleNames.size >= 6, [...ruleNames].join());
    // Families of optional sections (redis:, an engine's metrics:, discovery:) exist only where
    // those are configured, which this instance is not: they must be documented instead.
    const optional = /^unbusy_(redis|engine|discovery)_/;
    const documented = readFileSync(path.join(ROOT, 'docs/metrics.md'), 'utf8');
    for (const n of ruleNames) {
        if (m.types.has(n)) continue;
        if (optional.test(n) && documented.includes('`' + n + '`')) continue;
        missing.push(`rules: ${n}`);
    }
    assert.deepEqual(missing, []);
    // The queries are valid PromQL: promtool parses them as recording rules.
    const file = path.join(tempDir(), 'dashboard-queries.yml');
    const rulesYaml = 'groups:\n  - name: dashboard\n    rules:\n' + queries.filter((q) => !q.startsWith('label_values('))
        .map((q, i) => `      - record: dashboard:q${i}\n        expr: ${JSON.stringify(q)}\n`).join('');
    writeFileSync(file, rulesYaml);
    const r = promtool('check', 'rules', file);
    assert.equal(r.status, 0, r.stdout + r.stderr);
});

test('docs/metrics.md describes every metric family', async () => {
    const m = await scrape();
    const docs = readFileSync(DOCS, 'utf8');
    const undocumented = [...m.types.keys()].filter((n) => !docs.includes(`\`${n}\``));
    assert.deepEqual(undocumented, []);
});

/* ---- the status page ----------------------------------------------------------------------- */

function chromiumArgs(profile) {
    return ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync', '--hide-scrollbars',
        '--disable-dev-shm-usage', `--user-data-dir=${profile}`];
}

async function chromium(args) {
    assert.ok(existsSync(CHROMIUM), `${CHROMIUM} not found (Debian package chromium)`);
    const p = new Proc('chromium', CHROMIUM, [...chromiumArgs(tempDir()), ...args]);
    const exit = await p.waitExit(60000 * SLOW);
    if (!exit) {
        await p.terminate(2000);
        assert.fail(`chromium did not finish in time; stderr:\n${p.stderr.slice(-2000)}`);
    }
    assert.equal(exit.code, 0, `chromium exit ${exit.code}; stderr:\n${p.stderr.slice(-2000)}`);
    return p.stdout;
}

test('/status.json: the deployment state, usage and recent incidents', async () => {
    const r = await gw.request('/status.json');
    assert.equal(r.status, 200);
    assert.match(r.headers['content-type'], /application\/json/);
    const s = r.json();
    assert.deepEqual(s.models.map((x) => x.model), ['m', 'solo']);
    const [m, solo] = s.models;
    assert.equal(m.deployments[0].breaker, 'open');
    assert.equal(m.deployments[1].eligible, true);
    assert.equal(solo.deployments[0].eligible, false);
    assert.equal(s.usage[0][1].completion_tokens >= seen.completionTokens, true);
    assert.equal(s.usage[0][0].completion_tokens, 0);
    const kinds = new Set(s.incidents.map((i) => `${i.kind} ${i.model} ${i.deployment}`));
    for (const want of ['breaker_opened m prov-bad/up-bad', 'breaker_opened solo prov-bad/up-solo', 'attempt_failed m prov-bad/up-bad',
        'stream_failed m prov-ok/up-ok', 'request_failed solo ']) {
        assert.ok(kinds.has(want), `no incident "${want}" in ${[...kinds].join('; ')}`);
    }
    const failover = s.incidents.find((i) => i.kind === 'attempt_failed' && i.model === 'm');
    assert.equal(failover.class, 'server_error');
    assert.equal(failover.status, 503);
    assert.equal(failover.count, 3, 'three failovers in a row are one incident');
    assert.ok(s.incidents.length <= 50);
    assert.ok(Math.abs(s.now_ms - Date.now()) < 60000);
    assert.ok(!r.text.includes('sk-test-'), 'a provider key in the public status document');
});

test('the status page is one self-contained document', async () => {
    for (const p of ['/', '/status']) {
        const r = await gw.request(p);
        assert.equal(r.status, 200);
        assert.match(r.headers['content-type'], /^text\/html/);
        assert.match(r.headers['content-security-policy'], /default-src 'none'/);
        assert.match(r.text, /^<!doctype html>/i);
        assert.ok(!/(src|href)=["']?(https?:)?\/\//i.test(r.text), 'the page loads something from elsewhere');
        assert.ok(!/<link\b|<script\b[^>]*\bsrc=/i.test(r.text), 'the page loads an external asset');
    }
});

test('headless Chromium shows each deployment with its state; screenshot in build/', async () => {
    const dom = await chromium(['--virtual-time-budget=3000', '--dump-dom', `${gw.url}/status`]);
    const attrs = (re) => [...dom.matchAll(re)].map((x) => x.slice(1));
    const deps = new Map(attrs(/data-deployment="([^"]+)" data-state="([^"]+)"/g));
    // m: prov-bad's breaker is open (down), prov-ok is up; solo's only deployment is down.
    assert.equal(deps.get('prov-bad/up-bad'), 'down', dom.slice(0, 3000));
    assert.equal(deps.get('prov-ok/up-ok'), 'up');
    assert.equal(deps.get('prov-bad/up-solo'), 'down');
    const models = new Map(attrs(/data-model="([^"]+)" data-state="([^"]+)"/g));
    assert.equal(models.get('m'), 'degraded');
    assert.equal(models.get('solo'), 'down');
    assert.match(dom, /id="banner" data-state="down"/);
    assert.match(dom, /Outage: no working deployment for solo/);
    assert.match(dom, /data-incident="breaker_opened"/);
    assert.match(dom, /data-incident="request_failed"/);
    assert.match(dom, /Breaker opened/);

    const out = path.join(ROOT, 'build', 'status.png');
    mkdirSync(path.dirname(out), { recursive: true });
    await chromium(['--virtual-time-budget=3000', '--window-size=1280,900', `--screenshot=${out}`, `${gw.url}/status`]);
    const png = readFileSync(out);
    assert.equal(png.subarray(1, 4).toString('latin1'), 'PNG');
    assert.ok(statSync(out).size > 20000, `screenshot only ${statSync(out).size} bytes`);
});
