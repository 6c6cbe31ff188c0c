// Helpers shared by the integration tests.
//
// Every test starts real processes: the fake upstream (tests/fakes, built as
// build/fakeup) and the gateway (build/unbusy, or the binary named by
// UNBUSY_BIN, e.g. the sanitizer build). Configs are written as YAML into a
// temporary directory. Readiness is polled, never slept for. Every process a
// test starts is stopped by its PID when the test ends, pass or fail, and the
// gateway's stderr is checked for sanitizer reports and error lines then.
//
// The OpenAI SDK is the normal client; RawClient (a bare net.Socket with a
// small HTTP/1.1 response reader) covers what the SDK cannot express:
// pipelining, chunked uploads, Expect: 100-continue, slow readers, half heads.

import { spawn } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import OpenAI from 'openai';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const UNBUSY_BIN = path.resolve(ROOT, process.env.UNBUSY_BIN || 'build/unbusy');
export const FAKEUP_BIN = path.resolve(ROOT, process.env.FAKEUP_BIN || 'build/fakeup');
/* Sanitizer builds run a few times slower: startup and throughput bounds scale by this. */
export const SLOW = /asan|san\b/.test(UNBUSY_BIN) || process.env.UNBUSY_SLOW ? 3 : 1;
const VERBOSE = !!process.env.UNBUSY_TEST_VERBOSE;

/* Patterns that mean a sanitizer or the C runtime caught a bug. Always fatal. */
export const SANITIZER_PATTERNS = [
    /ERROR: AddressSanitizer/,
    /ERROR: LeakSanitizer/,
    /runtime error:/,
    /SUMMARY: UndefinedBehaviorSanitizer/,
    /WARNING: ThreadSanitizer/,
    /Assertion .* failed/,
    /stack smashing detected/,
    /double free or corruption|free\(\): invalid|malloc\(\): /,
];
/* A stderr line that reports an error; only allowed where a test expects one. */
const ERROR_LINE = /\b(error|fatal|panic|critical|crit|emerg|alert)\b/i;

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/* Polls fn until it returns a truthy value; returns that value or throws after timeoutMs. */
export async function waitUntil(fn, { timeout = 5000, interval = 20, what = 'condition' } = {}) {
    const deadline = Date.now() + timeout;
    let last;
    for (;;) {
        try {
            const v = await fn();
            if (v) return v;
        } catch (e) {
            last = e;
        }
        if (Date.now() > deadline) {
            throw new Error(`timed out after ${timeout} ms waiting for ${what}` +
                (last ? ` (last error: ${last.message})` : ''));
        }
        await sleep(interval);
    }
}

/* A directory that is removed when the process exits. */
const tempDirs = [];
export function tempDir() {
    const d = mkdtempSync(path.join(tmpdir(), 'unbusy-it-'));
    tempDirs.push(d);
    return d;
}

/* Processes still running: killed by PID if the test process exits anyway. */
const liveProcs = new Set();
function killLeftovers() {
    for (const p of liveProcs) {
        try { process.kill(p.pid, 'SIGKILL'); } catch { /* already gone */ }
    }
    liveProcs.clear();
    for (const d of tempDirs) {
        try { rmSync(d, { recursive: true, force: true }); } catch { /* best effort */ }
    }
}
process.on('exit', killLeftovers);
// A runner timeout sends SIGTERM, which would skip 'exit' handlers and orphan the children.
for (const [sig, n] of [['SIGTERM', 15], ['SIGINT', 2], ['SIGHUP', 1]]) {
    process.once(sig, () => {
        killLeftovers();
        process.exit(128 + n);
    });
}

function tail(s, n = 3000) {
    return s.length > n ? '...' + s.slice(-n) : s;
}

/* A child process with its output collected and waitable. */
export class Proc extends EventEmitter {
    constructor(name, bin, args, { env = {} } = {}) {
        super();
        this.name = name;
        this.bin = bin;
        this.args = args;
        this.stdout = '';
        this.stderr = '';
        this.exit = null; // { code, signal } once exited
        this.signalled = null; // the signal we sent, if any
        this.child = spawn(bin, args, {
            env: { ...process.env, ...env },
            stdio: ['ignore', 'pipe', 'pipe'],
        });
        this.pid = this.child.pid;
        liveProcs.add(this);
        this.child.stdout.setEncoding('utf8');
        this.child.stderr.setEncoding('utf8');
        this.child.stdout.on('data', (d) => {
            this.stdout += d;
            this.emit('change');
        });
        this.child.stderr.on('data', (d) => {
            this.stderr += d;
            if (VERBOSE) process.stderr.write(`[${name} ${this.pid}] ${d}`);
            this.emit('change');
        });
        this.exited = new Promise((resolve) => {
            let done = false;
            const finish = (exit) => {
                if (done) return;
                done = true;
                this.exit = exit;
                this.exitTime = Date.now();
                liveProcs.delete(this);
                this.emit('change');
                resolve(exit);
            };
            this.child.on('error', (e) => finish({ code: null, signal: null, error: e }));
            // 'close' comes after the output pipes are drained, so stderr is complete.
            this.child.on('close', (code, signal) => finish({ code, signal }));
        });
    }

    get running() {
        return this.exit === null;
    }

    describe() {
        return `${this.name} (pid ${this.pid}, ${path.relative(ROOT, this.bin) || this.bin})`;
    }

    /* Waits for a regex to match the collected stdout or stderr; returns the match. */
    waitFor(stream, regex, timeout = 5000) {
        return new Promise((resolve, reject) => {
            const check = () => {
                const m = this[stream].match(regex);
                if (m) return done(null, m);
                if (!this.running) {
                    const why = this.exit.error ? this.exit.error.message
                        : `exit code ${this.exit.code}, signal ${this.exit.signal}`;
                    return done(new Error(`${this.describe()} exited (${why}) before printing ` +
                        `${regex} on ${stream}; stderr:\n${tail(this.stderr)}`));
                }
                return undefined;
            };
            const timer = setTimeout(() => done(new Error(
                `${this.describe()}: no ${regex} on ${stream} within ${timeout} ms; ` +
                `stderr:\n${tail(this.stderr)}`)), timeout);
            const done = (err, m) => {
                clearTimeout(timer);
                this.off('change', check);
                if (err) reject(err); else resolve(m);
            };
            this.on('change', check);
            check();
        });
    }

    signal(sig) {
        if (!this.running) return false;
        this.signalled = sig;
        try {
            process.kill(this.pid, sig);
            return true;
        } catch {
            return false;
        }
    }

    /* Resolves with the exit status, or null after timeout ms. */
    async waitExit(timeout) {
        let timer;
        const t = new Promise((r) => { timer = setTimeout(() => r(null), timeout); });
        const r = await Promise.race([this.exited, t]);
        clearTimeout(timer);
        return r;
    }

    /* SIGTERM, then SIGKILL after graceMs. Returns { exit, killed }. Idempotent. */
    async terminate(graceMs = 5000) {
        if (!this.running) return { exit: this.exit, killed: false };
        this.signal('SIGTERM');
        let exit = await this.waitExit(graceMs);
        if (exit) return { exit, killed: false };
        this.signal('SIGKILL');
        exit = await this.waitExit(5000);
        return { exit, killed: true };
    }

    /* Sanitizer and crash reports found in stderr. */
    sanitizerReports() {
        return SANITIZER_PATTERNS.filter((re) => re.test(this.stderr)).map(String);
    }
}

/* ---------------------------------------------------------------- YAML */

const PLAIN = /^[A-Za-z0-9_./$-][A-Za-z0-9_./:${}@+-]*$/;
const RESERVED = /^(true|false|null|yes|no|on|off|y|n|~)$/i;

function yamlScalar(v) {
    if (v === null || v === undefined) return 'null';
    if (typeof v === 'number' || typeof v === 'boolean') return String(v);
    const s = String(v);
    if (s !== '' && PLAIN.test(s) && !RESERVED.test(s) && !s.endsWith(':')) return s;
    return JSON.stringify(s); // a JSON string is a valid YAML double-quoted scalar
}

function yamlKey(k) {
    return PLAIN.test(k) && !RESERVED.test(k) && !k.includes(':') ? k : JSON.stringify(k);
}

const isScalar = (v) => v === null || typeof v !== 'object';

function yamlLines(v, indent, out) {
    const pad = ' '.repeat(indent);
    if (Array.isArray(v)) {
        for (const item of v) {
            if (isScalar(item)) {
                out.push(`${pad}- ${yamlScalar(item)}`);
            } else if (Array.isArray(item) ? item.length === 0 : Object.keys(item).length === 0) {
                out.push(`${pad}- ${Array.isArray(item) ? '[]' : '{}'}`);
            } else {
                const sub = [];
                yamlLines(item, indent + 2, sub);
                sub[0] = `${pad}- ${sub[0].slice(indent + 2)}`;
                out.push(...sub);
            }
        }
        return out;
    }
    for (const [k, val] of Object.entries(v)) {
        if (val === undefined) continue;
        if (isScalar(val)) {
            out.push(`${pad}${yamlKey(k)}: ${yamlScalar(val)}`);
        } else if (Array.isArray(val) ? val.length === 0 : Object.keys(val).length === 0) {
            out.push(`${pad}${yamlKey(k)}: ${Array.isArray(val) ? '[]' : '{}'}`);
        } else {
            out.push(`${pad}${yamlKey(k)}:`);
            yamlLines(val, indent + 2, out);
        }
    }
    return out;
}

/* A YAML document for a plain JS object (maps, lists, strings, numbers, booleans). */
export function toYAML(obj) {
    return yamlLines(obj, 0, []).join('\n') + '\n';
}

/* ---------------------------------------------------------------- plain HTTP */

/*
 * One request on a fresh connection (Connection: close), so nothing stays
 * pooled between tests. Returns { status, headers, text, json() }. An https://
 * url is verified against ca (PEM) when given.
 */
export function httpRequest(url, { method = 'GET', headers = {}, body, timeout = 10000, ca } = {}) {
    return new Promise((resolve, reject) => {
        const u = new URL(url);
        const payload = body === undefined ? undefined
            : typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body);
        const h = { ...headers };
        if (payload !== undefined && !Object.keys(h).some((k) => k.toLowerCase() === 'content-type')) {
            h['Content-Type'] = 'application/json';
        }
        const tls = u.protocol === 'https:';
        const req = (tls ? https : http).request({
            host: u.hostname, port: u.port, path: u.pathname + u.search, method, headers: h,
            agent: false, timeout, ...(tls && ca ? { ca } : {}),
        }, (res) => {
            const chunks = [];
            res.on('data', (c) => chunks.push(c));
            res.on('end', () => {
                const text = Buffer.concat(chunks).toString('utf8');
                resolve({
                    status: res.statusCode,
                    headers: res.headers,
                    text,
                    json() { return JSON.parse(text); },
                });
            });
            res.on('error', reject);
        });
        req.on('timeout', () => req.destroy(new Error(`${method} ${url}: no answer in ${timeout} ms`)));
        req.on('error', reject);
        if (payload !== undefined) req.write(payload);
        req.end();
    });
}

/* The data fields of an SSE text, in order (comments and other fields dropped). */
export function sseData(text) {
    const out = [];
    for (const block of text.replace(/\r\n/g, '\n').split('\n\n')) {
        const data = block.split('\n').filter((l) => l.startsWith('data:'))
            .map((l) => l.slice(5).replace(/^ /, ''));
        if (data.length) out.push(data.join('\n'));
    }
    return out;
}

/* Concatenated delta content of chat chunks (or text of completion chunks) in SSE data. */
export function sseContent(text) {
    let s = '';
    for (const d of sseData(text)) {
        if (d === '[DONE]') continue;
        let j;
        try { j = JSON.parse(d); } catch { continue; }
        for (const c of j.choices || []) s += c.delta?.content ?? c.text ?? '';
    }
    return s;
}

/* "tok0 tok1 ... tok{n-1} ": what the fake sends as n content chunks. */
export function expectedContent(n) {
    let s = '';
    for (let i = 0; i < n; i++) s += `tok${i} `;
    return s;
}

/* The fake's prompt_tokens for an upstream body of this many bytes. */
export function fakePromptTokens(bodyLen) {
    return Math.max(1, Math.floor(bodyLen / 4));
}

let markerSeq = 0;
/* A string unique in this test process, to find one request among many in the fake's log. */
export function marker(prefix = 'm') {
    return `${prefix}-${process.pid}-${++markerSeq}-${Math.random().toString(36).slice(2, 8)}`;
}

/* A TCP port that nothing listens on (bound once, then closed). */
export async function closedPort() {
    const srv = net.createServer();
    await new Promise((r) => srv.listen(0, '127.0.0.1', r));
    const { port } = srv.address();
    await new Promise((r) => srv.close(r));
    return port;
}

/* VmRSS of a process in KiB, from /proc. */
export function rssKiB(pid) {
    const m = readFileSync(`/proc/${pid}/status`, 'utf8').match(/^VmRSS:\s+(\d+)\s+kB/m);
    if (!m) throw new Error(`no VmRSS for pid ${pid}`);
    return Number(m[1]);
}

/* ---------------------------------------------------------------- the fake upstream */

export class Fake {
    constructor(proc, port) {
        this.proc = proc;
        this.port = port;
        this.url = `http://127.0.0.1:${port}`;
        this.baseURL = `${this.url}/v1`;
    }

    async control(method, p) {
        const r = await httpRequest(this.url + p, { method, body: method === 'POST' ? '{}' : undefined });
        if (r.status !== 200) throw new Error(`fake ${method} ${p}: status ${r.status}: ${r.text}`);
        return r.text ? r.json() : null;
    }

    /* Recent requests: { method, path, headers, body, json } (json: the parsed body or null). */
    async requests() {
        const list = await this.control('GET', '/_fake/requests');
        return list.map((r) => {
            let json = null;
            try { json = JSON.parse(r.body); } catch { /* not JSON */ }
            return { ...r, json };
        });
    }

    /* Requests whose body contains the string. */
    async requestsWith(s) {
        return (await this.requests()).filter((r) => typeof r.body === 'string' && r.body.includes(s));
    }

    /* Proxied requests (the fake's own /_fake/ endpoints excluded). */
    async apiRequests() {
        return (await this.requests()).filter((r) => !r.path.startsWith('/_fake/'));
    }

    stats() { return this.control('GET', '/_fake/stats'); }
    reset() { return this.control('POST', '/_fake/reset'); }

    async stop() {
        const { killed } = await this.proc.terminate(3000);
        const problems = this.proc.sanitizerReports();
        if (killed) problems.push('did not exit on SIGTERM (killed)');
        if (problems.length) {
            throw new Error(`${this.proc.describe()}: ${problems.join('; ')}\nstderr:\n${tail(this.proc.stderr)}`);
        }
    }
}

/* Starts build/fakeup on an ephemeral port; behavior is its default --behavior, args more
   options (e.g. --engine vllm --slots 4). */
export async function startFake({ behavior, name = 'fakeup', args: extra = [] } = {}) {
    const args = ['--port', '0', ...extra];
    if (behavior) args.push('--behavior', behavior);
    const proc = new Proc(name, FAKEUP_BIN, args);
    let m;
    try {
        m = await proc.waitFor('stdout', /^listening (\d+)\s*$/m, 10000);
    } catch (e) {
        await proc.terminate(1000);
        throw e;
    }
    const fake = new Fake(proc, Number(m[1]));
    await waitUntil(() => fake.stats().then(() => true), { timeout: 5000, what: 'fake /_fake/stats' });
    return fake;
}

/* ---------------------------------------------------------------- the gateway */

/* Values that must never show up in the gateway's output: api keys, substituted secrets. */
function collectSecrets(cfg, env) {
    const out = new Set();
    const walk = (v) => {
        if (!v || typeof v !== 'object') return;
        for (const [k, val] of Object.entries(v)) {
            if (/api_key|secret|password|token/i.test(k) && typeof val === 'string' && val.length >= 6 &&
                !val.includes('${')) out.add(val);
            walk(val);
        }
    };
    walk(cfg);
    for (const [k, v] of Object.entries(env || {})) {
        if (/KEY|SECRET|TOKEN|PASSWORD/i.test(k) && typeof v === 'string' && v.length >= 6) out.add(v);
    }
    return [...out];
}

/* A provider entry pointing at a fake, with a test api key. */
export function fakeProvider(fake, extra = {}) {
    return { base_url: fake.baseURL, api_key: `sk-test-${fake.port}-secret`, ...extra };
}

export class Gateway {
    constructor(proc, port, { file, secrets, strictStderr, allowStderr, drainMs, scheme = 'http', ca }) {
        this.proc = proc;
        this.port = port;
        this.file = file;
        this.ca = ca; // PEM the https listener's certificate is verified against
        this.url = `${scheme}://127.0.0.1:${port}`;
        this.baseURL = `${this.url}/v1`;
        this.secrets = secrets;
        this.strictStderr = strictStderr;
        this.allowStderr = allowStderr;
        this.drainMs = drainMs;
        this.stopped = null;
    }

    get pid() { return this.proc.pid; }

    /* An SDK client; no retries of its own, so what the test sees is what the gateway did. */
    client(opts = {}) {
        return new OpenAI({
            baseURL: this.baseURL, apiKey: 'sk-client-not-a-provider-key', maxRetries: 0,
            timeout: 30000, ...opts,
        });
    }

    request(p, opts) { return httpRequest(this.url + p, { ca: this.ca, ...opts }); }

    /* Complete stdout lines parsed as JSON; lines that do not parse are in .bad. */
    accessLog() {
        const lines = this.proc.stdout.split('\n');
        lines.pop(); // an incomplete last line (or the empty string after the final \n)
        const entries = [];
        const bad = [];
        for (const l of lines) {
            if (!l.trim()) continue;
            try {
                const j = JSON.parse(l);
                if (j && typeof j === 'object' && !Array.isArray(j)) entries.push(j); else bad.push(l);
            } catch {
                bad.push(l);
            }
        }
        entries.bad = bad;
        return entries;
    }

    /* Polls the access log for the line with this request id. */
    logFor(requestId, timeout = 5000) {
        return waitUntil(() => this.accessLog().find((e) => e.request_id === requestId),
            { timeout, what: `access log line for request ${requestId}` });
    }

    /*
     * SIGTERM and wait; then check what a clean run must show: exit code 0, no
     * sanitizer report, no unexpected error line, no secret in the output.
     * Throws on any problem. Idempotent (the second call repeats the verdict).
     */
    async stop() {
        if (!this.stopped) this.stopped = this._stop();
        return this.stopped;
    }

    async _stop() {
        const problems = [];
        const wasRunning = this.proc.running;
        const { exit, killed } = await this.proc.terminate(this.drainMs + 5000 * SLOW);
        if (killed) problems.push('did not exit after SIGTERM (killed with SIGKILL)');
        else if (!wasRunning && this.proc.signalled === null) {
            problems.push(`exited on its own (code ${exit.code}, signal ${exit.signal})`);
        } else if (exit.code !== 0) {
            problems.push(`exit code ${exit.code}, signal ${exit.signal} (expected 0)`);
        }
        problems.push(...this.checkOutput());
        if (problems.length) {
            throw new Error(`${this.proc.describe()}: ${problems.join('; ')}\nstderr:\n${tail(this.proc.stderr)}`);
        }
        return exit;
    }

    /* Problems in the output so far (sanitizer reports, error lines, leaked secrets). */
    checkOutput() {
        const problems = this.proc.sanitizerReports().map((r) => `sanitizer/crash report ${r}`);
        if (this.strictStderr) {
            const bad = this.proc.stderr.split('\n').filter((l) => ERROR_LINE.test(l) &&
                !this.allowStderr.some((re) => re.test(l)));
            if (bad.length) problems.push(`unexpected error lines on stderr: ${JSON.stringify(bad.slice(0, 5))}`);
        }
        for (const s of this.secrets) {
            if (this.proc.stdout.includes(s)) problems.push(`secret ${s.slice(0, 7)}... appears on stdout`);
            if (this.proc.stderr.includes(s)) problems.push(`secret ${s.slice(0, 7)}... appears on stderr`);
        }
        return problems;
    }
}

/* Adds what every test config needs: an ephemeral port, a short drain and no drain delay
   (no load balancer waits to take a test's gateway out). */
export function withServerDefaults(config) {
    return {
        ...config,
        server: { listen: '127.0.0.1:0', drain_timeout: '2s', drain_delay: '0s', ...(config.server || {}) },
    };
}

function parseDurationMs(v) {
    if (typeof v === 'number') return v;
    const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(String(v || ''));
    if (!m) return 30000;
    return Number(m[1]) * ({ ms: 1, s: 1000, m: 60000 }[m[2] || 'ms']);
}

/*
 * Starts the gateway. config: a JS object (written as YAML, server defaults
 * added) or a YAML string (written as is). strictStderr: error lines on stderr
 * fail the test unless they match one of allowStderr. ca: the PEM certificate
 * an https listener (server.tls) is verified against. Returns a Gateway once
 * /healthz answers 200.
 */
export async function startGateway({ config, env = {}, strictStderr = true, allowStderr = [], args = [], ca }) {
    const dir = tempDir();
    const file = path.join(dir, 'unbusy.yaml');
    const obj = typeof config === 'string' ? null : withServerDefaults(config);
    writeFileSync(file, obj ? toYAML(obj) : config);
    const proc = new Proc('unbusy', UNBUSY_BIN, ['--config', file, ...args], { env });
    const secrets = collectSecrets(obj, env);
    const drainMs = parseDurationMs(obj?.server?.drain_timeout ?? '30s') +
        parseDurationMs(obj?.server?.drain_delay ?? '5s');
    let m;
    try {
        m = await proc.waitFor('stderr', /listening on (https?):\/\/127\.0\.0\.1:(\d+)/, 10000 * SLOW);
    } catch (e) {
        await proc.terminate(2000);
        throw e;
    }
    const gw = new Gateway(proc, Number(m[2]), {
        file, secrets, strictStderr, allowStderr, drainMs, scheme: m[1], ca,
    });
    try {
        await waitUntil(async () => (await gw.request('/healthz', { timeout: 2000 })).status === 200,
            { timeout: 5000 * SLOW, what: 'GET /healthz -> 200' });
    } catch (e) {
        await proc.terminate(2000);
        throw new Error(`${e.message}; stderr:\n${tail(proc.stderr)}`);
    }
    return gw;
}

/*
 * Runs `unbusy ARGS...` to completion (e.g. --check). Returns { code, signal,
 * stdout, stderr, output } (output: stdout + stderr).
 */
export async function runGateway(args, { env = {}, timeout = 10000 * SLOW } = {}) {
    const proc = new Proc('unbusy', UNBUSY_BIN, args, { env });
    const exit = await proc.waitExit(timeout);
    if (!exit) {
        await proc.terminate(1000);
        throw new Error(`unbusy ${args.join(' ')} did not exit within ${timeout} ms`);
    }
    return {
        code: exit.code, signal: exit.signal, stdout: proc.stdout, stderr: proc.stderr,
        output: proc.stdout + proc.stderr, proc,
    };
}

/* Writes a file into a fresh temporary directory and returns its path. */
export function writeTemp(name, text) {
    const file = path.join(tempDir(), name);
    writeFileSync(file, text);
    return file;
}

/*
 * Per-test (or per-file) process registry: everything started through it is
 * stopped when the test ends, the gateways first (so their drain does not see
 * the fakes vanish), and their verdicts fail the test.
 * Pass the test context to register the cleanup on it, or call cleanup() from
 * an after() hook.
 */
export function harness(t) {
    const gateways = [];
    const fakes = [];
    const h = {
        async fake(opts) {
            const f = await startFake(opts);
            fakes.push(f);
            return f;
        },
        async gateway(opts) {
            const g = await startGateway(opts);
            gateways.push(g);
            return g;
        },
        async cleanup() {
            const errors = [];
            for (const g of gateways) {
                try { await g.stop(); } catch (e) { errors.push(e); }
            }
            await Promise.all(fakes.map((f) => f.stop().catch((e) => errors.push(e))));
            if (errors.length === 1) throw errors[0];
            if (errors.length) throw new Error(errors.map((e) => e.message).join('\n---\n'));
        },
    };
    if (t) t.after(() => h.cleanup());
    return h;
}

/* Reads an SDK stream to the end. Returns { chunks, content, usage, error }. */
export async function drainStream(stream, { onChunk } = {}) {
    const chunks = [];
    let content = '';
    let usage = null;
    let error = null;
    try {
        for await (const c of stream) {
            chunks.push(c);
            if (c.usage) usage = c.usage;
            for (const ch of c.choices || []) content += ch.delta?.content ?? ch.text ?? '';
            if (onChunk) await onChunk(c, chunks.length);
        }
    } catch (e) {
        error = e;
    }
    return { chunks, content, usage, error };
}

/* Checks the OpenAI error shape; returns the error object. */
export function assertErrorShape(assert, body, what = 'error body') {
    let j = body;
    if (typeof body === 'string') {
        try { j = JSON.parse(body); } catch { assert.fail(`${what} is not JSON: ${body.slice(0, 300)}`); }
    }
    assert.ok(j && typeof j.error === 'object' && j.error !== null, `${what} has no "error" object: ${JSON.stringify(j)}`);
    assert.equal(typeof j.error.message, 'string', `${what}: error.message is not a string`);
    assert.ok(j.error.message.length > 0, `${what}: error.message is empty`);
    assert.ok('type' in j.error, `${what}: error.type missing`);
    assert.ok('param' in j.error, `${what}: error.param missing`);
    assert.ok('code' in j.error, `${what}: error.code missing`);
    return j.error;
}

/* ---------------------------------------------------------------- raw HTTP over a socket */

/*
 * A bare TCP connection with a small HTTP/1.1 response reader. Responses are
 * read one at a time from the byte stream, so pipelined answers come out in
 * the order they were sent.
 */
export class RawClient {
    static connect(port, host = '127.0.0.1') {
        return new Promise((resolve, reject) => {
            const s = net.connect({ port, host });
            s.once('connect', () => { s.off('error', reject); resolve(new RawClient(s)); });
            s.once('error', reject);
        });
    }

    constructor(socket) {
        this.socket = socket;
        this.chunks = [];
        this.buffered = 0;
        this.received = 0;
        this.closed = false;
        this.error = null;
        this.events = new EventEmitter();
        socket.setNoDelay(true);
        socket.on('data', (d) => {
            this.chunks.push(d);
            this.buffered += d.length;
            this.received += d.length;
            this.events.emit('change');
        });
        socket.on('error', (e) => { this.error = e; });
        socket.on('close', () => {
            this.closed = true;
            this.closedAt = Date.now();
            this.events.emit('change');
        });
    }

    write(data) {
        return new Promise((resolve, reject) => {
            this.socket.write(data, (err) => (err ? reject(err) : resolve()));
        });
    }

    pause() { this.socket.pause(); }
    resume() { this.socket.resume(); }
    destroy() { this.socket.destroy(); }

    /* Everything received and not yet consumed, as one Buffer. */
    peek() {
        if (this.chunks.length > 1) this.chunks = [Buffer.concat(this.chunks)];
        return this.chunks[0] || Buffer.alloc(0);
    }

    consume(n) {
        const b = this.peek();
        this.chunks = n < b.length ? [b.subarray(n)] : [];
        this.buffered = b.length - n;
    }

    /* Resolves on the next data or close; rejects at the deadline. */
    more(deadline, what) {
        if (this.closed) return Promise.reject(new Error(`connection closed while waiting for ${what}`));
        return new Promise((resolve, reject) => {
            const left = deadline - Date.now();
            if (left <= 0) return reject(new Error(`timed out waiting for ${what}`));
            const timer = setTimeout(() => {
                this.events.off('change', on);
                reject(new Error(`timed out waiting for ${what}`));
            }, left);
            const on = () => {
                clearTimeout(timer);
                this.events.off('change', on);
                resolve();
            };
            this.events.on('change', on);
            return undefined;
        });
    }

    /*
     * Reads one response. Returns { status, reason, headers (lower-case names;
     * repeated ones joined by ", "), head (raw text), body (Buffer), text }.
     * noBody: the request was HEAD. A 1xx response is returned by itself.
     */
    async readResponse({ timeout = 10000, noBody = false } = {}) {
        const deadline = Date.now() + timeout;
        let headEnd;
        for (;;) {
            const b = this.peek();
            headEnd = b.indexOf('\r\n\r\n');
            if (headEnd >= 0) break;
            if (this.closed) {
                throw new Error(`connection closed before a response head (got ${JSON.stringify(b.toString('latin1').slice(0, 200))})`);
            }
            await this.more(deadline, 'a response head');
        }
        const head = this.peek().subarray(0, headEnd).toString('latin1');
        this.consume(headEnd + 4);
        const [statusLine, ...lines] = head.split('\r\n');
        const sm = /^HTTP\/1\.[01] (\d{3})(?: (.*))?$/.exec(statusLine);
        if (!sm) throw new Error(`bad status line ${JSON.stringify(statusLine)}`);
        const status = Number(sm[1]);
        const headers = {};
        for (const l of lines) {
            const i = l.indexOf(':');
            if (i <= 0) throw new Error(`bad header line ${JSON.stringify(l)}`);
            const k = l.slice(0, i).trim().toLowerCase();
            const v = l.slice(i + 1).trim();
            headers[k] = k in headers ? `${headers[k]}, ${v}` : v;
        }
        const res = { status, reason: sm[2] || '', headers, head };
        if (noBody || (status >= 100 && status < 200) || status === 204 || status === 304) {
            res.body = Buffer.alloc(0);
        } else if (/\bchunked\b/i.test(headers['transfer-encoding'] || '')) {
            res.body = await this.readChunked(deadline);
        } else if ('content-length' in headers) {
            const n = Number(headers['content-length']);
            while (this.buffered < n) {
                if (this.closed) throw new Error(`connection closed after ${this.buffered} of ${n} body bytes`);
                await this.more(deadline, `${n} body bytes`);
            }
            res.body = Buffer.from(this.peek().subarray(0, n));
            this.consume(n);
        } else {
            while (!this.closed) await this.more(deadline, 'the end of a close-delimited body');
            res.body = Buffer.from(this.peek());
            this.consume(res.body.length);
        }
        res.text = res.body.toString('utf8');
        return res;
    }

    async readChunked(deadline) {
        const parts = [];
        for (;;) {
            let b = this.peek();
            let eol = b.indexOf('\r\n');
            while (eol < 0) {
                if (this.closed) throw new Error('connection closed inside a chunk size line');
                await this.more(deadline, 'a chunk size line');
                b = this.peek();
                eol = b.indexOf('\r\n');
            }
            const size = parseInt(b.subarray(0, eol).toString('latin1').split(';')[0], 16);
            if (Number.isNaN(size)) throw new Error(`bad chunk size line ${JSON.stringify(b.subarray(0, eol).toString('latin1'))}`);
            this.consume(eol + 2);
            if (size === 0) {
                // trailers, then an empty line
                for (;;) {
                    b = this.peek();
                    const e = b.indexOf('\r\n');
                    if (e === 0) { this.consume(2); return Buffer.concat(parts); }
                    if (e > 0) { this.consume(e + 2); continue; }
                    if (this.closed) throw new Error('connection closed inside the chunked trailer');
                    await this.more(deadline, 'the end of the chunked body');
                }
            }
            while (this.buffered < size + 2) {
                if (this.closed) throw new Error(`connection closed inside a ${size}-byte chunk`);
                await this.more(deadline, 'chunk data');
            }
            parts.push(Buffer.from(this.peek().subarray(0, size)));
            this.consume(size + 2);
        }
    }

    /* Resolves when the server closes the connection; rejects after timeout. */
    async waitClosed(timeout = 5000) {
        const deadline = Date.now() + timeout;
        while (!this.closed) {
            try {
                await this.more(deadline, 'the server to close the connection');
            } catch (e) {
                if (this.closed) break;
                throw e;
            }
        }
        return this.closedAt;
    }
}

/* A request as bytes: method, path, headers (object), body (string/Buffer; sets Content-Length). */
export function rawRequest(method, p, { headers = {}, body, host = '127.0.0.1' } = {}) {
    const h = { Host: host, ...headers };
    const payload = body === undefined ? null
        : typeof body === 'string' || Buffer.isBuffer(body) ? Buffer.from(body) : Buffer.from(JSON.stringify(body));
    if (payload && !Object.keys(h).some((k) => /^(content-length|transfer-encoding)$/i.test(k))) {
        h['Content-Length'] = String(payload.length);
    }
    if (payload && !Object.keys(h).some((k) => /^content-type$/i.test(k))) h['Content-Type'] = 'application/json';
    const head = `${method} ${p} HTTP/1.1\r\n` +
        Object.entries(h).map(([k, v]) => `${k}: ${v}\r\n`).join('') + '\r\n';
    return payload ? Buffer.concat([Buffer.from(head, 'latin1'), payload]) : Buffer.from(head, 'latin1');
}
