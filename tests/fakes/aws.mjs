// Fake AWS endpoints for the integration tests, in the test's own process:
//
//   startAwsFake       Bedrock Converse / ConverseStream and SageMaker InvokeEndpoint(WithResponseStream)
//                      on one port. Every request's SigV4 signature is recomputed here, from the
//                      request as received (its own implementation, not the gateway's), and a
//                      request that does not verify is refused 403 InvalidSignatureException.
//                      Streams are AWS event stream frames with correct CRCs, unless the next
//                      behaviour asks otherwise (fake.next(...)).
//   startCredsFake     the container credentials endpoint (AWS_CONTAINER_CREDENTIALS_FULL_URI):
//                      keys for the right Authorization token, 401 otherwise.
//
// Behaviours, taken one per API request in order from fake.next(...), 'ok' when none is left:
//   ok                 text "Hello from Bedrock" (SageMaker: the container's OpenAI stream)
//   tools              a text block, then a get_weather tool call in two argument pieces
//   throttle           429 ThrottlingException before any stream
//   timeout            408 ModelTimeoutException
//   validation         400 ValidationException
//   exception-mid      some text, then a throttlingException message in the stream
//   badcrc-first       the first frame's message CRC is wrong (nothing was relayed yet)
//   badcrc-after       two text frames, then a frame with a wrong CRC
//   split              the whole stream written a few bytes per write, with pauses

import http from 'node:http';
import crypto from 'node:crypto';

const CRC_TABLE = (() => {
    const t = new Uint32Array(256);
    for (let i = 0; i < 256; i++) {
        let c = i;
        for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
        t[i] = c >>> 0;
    }
    return t;
})();

export function crc32(buf) {
    let c = 0xffffffff;
    for (const b of buf) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
}

/* One event stream message: string headers only (what the services send). */
export function frame(headers, payload) {
    const hs = [];
    for (const [name, value] of Object.entries(headers)) {
        const n = Buffer.from(name);
        const v = Buffer.from(value);
        const h = Buffer.alloc(1 + n.length + 1 + 2 + v.length);
        h[0] = n.length;
        n.copy(h, 1);
        h[1 + n.length] = 7; // string
        h.writeUInt16BE(v.length, 2 + n.length);
        v.copy(h, 4 + n.length);
        hs.push(h);
    }
    const hb = Buffer.concat(hs);
    const pb = Buffer.isBuffer(payload) ? payload : Buffer.from(payload);
    const total = 16 + hb.length + pb.length;
    const msg = Buffer.alloc(total);
    msg.writeUInt32BE(total, 0);
    msg.writeUInt32BE(hb.length, 4);
    msg.writeUInt32BE(crc32(msg.subarray(0, 8)), 8);
    hb.copy(msg, 12);
    pb.copy(msg, 12 + hb.length);
    msg.writeUInt32BE(crc32(msg.subarray(0, total - 4)), total - 4);
    return msg;
}

const event = (type, obj) =>
    frame({ ':event-type': type, ':content-type': 'application/json', ':message-type': 'event' }, JSON.stringify(obj));
const exception = (type, message) =>
    frame({ ':exception-type': type, ':content-type': 'application/json', ':message-type': 'exception' },
        JSON.stringify({ message }));

/* ---- SigV4, as a service checks it ---- */

const sha256 = (b) => crypto.createHash('sha256').update(b).digest('hex');
const hmac = (k, s) => crypto.createHmac('sha256', k).update(s).digest();
const strict = (s) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase());

/* Returns null when the request verifies, else why not. keys: access key id -> { secret, token }. */
export function verifySigV4(req, body, keys, { region, service }) {
    const auth = req.headers.authorization || '';
    const m = /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request, SignedHeaders=([^,]+), Signature=([0-9a-f]{64})$/.exec(auth);
    if (!m) return `malformed Authorization: ${auth.slice(0, 60)}`;
    const [, keyId, date, reg, svc, signed, signature] = m;
    const key = keys[keyId];
    if (!key) return `unknown access key ${keyId}`;
    if (reg !== region || svc !== service) return `scope ${reg}/${svc}, wanted ${region}/${service}`;
    const amzDate = req.headers['x-amz-date'] || '';
    if (amzDate.slice(0, 8) !== date) return 'x-amz-date is not the scope date';
    if (Math.abs(Date.parse(amzDate.replace(/(\d{4})(\d\d)(\d\d)T(\d\d)(\d\d)(\d\d)Z/, '$1-$2-$3T$4:$5:$6Z')) - Date.now()) > 5 * 60000)
        return 'x-amz-date is more than 5 minutes off';
    const bodyHash = sha256(body);
    if (req.headers['x-amz-content-sha256'] && req.headers['x-amz-content-sha256'] !== bodyHash)
        return 'x-amz-content-sha256 is not the body hash';
    if (key.token && req.headers['x-amz-security-token'] !== key.token) return 'wrong or missing x-amz-security-token';
    const names = signed.split(';');
    for (const must of ['host', 'x-amz-date']) if (!names.includes(must)) return `${must} is not signed`;
    if (key.token && !names.includes('x-amz-security-token')) return 'the security token is not signed';
    const [rawPath, rawQuery = ''] = req.url.split('?');
    const canonicalPath = rawPath.split('/').map(strict).join('/');
    const query = rawQuery ? rawQuery.split('&').map((p) => p.split('=').map((x) => strict(decodeURIComponent(x || ''))))
        .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : 1)).map(([k, v]) => `${k}=${v ?? ''}`).join('&') : '';
    const headerLines = names.map((n) => `${n}:${String(req.headers[n] ?? '').trim().replace(/\s+/g, ' ')}\n`).join('');
    const creq = `${req.method}\n${canonicalPath}\n${query}\n${headerLines}\n${signed}\n${bodyHash}`;
    const sts = `AWS4-HMAC-SHA256\n${amzDate}\n${date}/${region}/${service}/aws4_request\n${sha256(creq)}`;
    const kDate = hmac('AWS4' + key.secret, date);
    const kSigning = hmac(hmac(hmac(kDate, region), service), 'aws4_request');
    const want = crypto.createHmac('sha256', kSigning).update(sts).digest('hex');
    return want === signature ? null : 'signature mismatch';
}

/* ---- the fake services ---- */

function converseStream(behavior) {
    const start = event('messageStart', { role: 'assistant' });
    const text = (t) => event('contentBlockDelta', { contentBlockIndex: 0, delta: { text: t } });
    const stop = (r) => event('messageStop', { stopReason: r });
    const meta = event('metadata', {
        usage: { inputTokens: 11, outputTokens: 7, totalTokens: 18, cacheReadInputTokens: 5, cacheWriteInputTokens: 0 },
        metrics: { latencyMs: 12 },
    });
    const hello = [text('Hello'), text(' from'), text(' Bedrock')];
    switch (behavior) {
    case 'tools':
        return [start, text('Checking.'), event('contentBlockStop', { contentBlockIndex: 0 }),
            event('contentBlockStart', { contentBlockIndex: 1, start: { toolUse: { toolUseId: 'tooluse_1', name: 'get_weather' } } }),
            event('contentBlockDelta', { contentBlockIndex: 1, delta: { toolUse: { input: '{"city":' } } }),
            event('contentBlockDelta', { contentBlockIndex: 1, delta: { toolUse: { input: '"Paris"}' } } }),
            event('contentBlockStop', { contentBlockIndex: 1 }), stop('tool_use'), meta];
    case 'exception-mid':
        return [start, ...hello.slice(0, 2), exception('throttlingException', 'Too many tokens, please wait before trying again.')];
    case 'badcrc-first': {
        const f = Buffer.from(start);
        f[f.length - 1] ^= 0xff;
        return [f, ...hello, stop('end_turn'), meta];
    }
    case 'badcrc-after': {
        const f = Buffer.from(hello[2]);
        f[f.length - 1] ^= 0xff;
        return [start, hello[0], hello[1], f, stop('end_turn'), meta];
    }
    default:
        return [start, ...hello, event('contentBlockStop', { contentBlockIndex: 0 }), stop('end_turn'), meta];
    }
}

function converseAnswer(behavior) {
    const content = behavior === 'tools'
        ? [{ text: 'Checking.' }, { toolUse: { toolUseId: 'tooluse_1', name: 'get_weather', input: { city: 'Paris' } } }]
        : [{ text: 'Hello from Bedrock' }];
    return {
        output: { message: { role: 'assistant', content } },
        stopReason: behavior === 'tools' ? 'tool_use' : 'end_turn',
        usage: { inputTokens: 11, outputTokens: 7, totalTokens: 18, cacheReadInputTokens: 5 },
        metrics: { latencyMs: 12 },
    };
}

/* The container's OpenAI stream, cut into PayloadParts every `cut` bytes (lines split anywhere). */
function sagemakerStream(model, cut = 7) {
    const base = { id: 'chatcmpl-sm1', object: 'chat.completion.chunk', created: 1, model };
    const chunks = [
        { ...base, choices: [{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }] },
        ...['Hello', ' from', ' SageMaker', ' ✓'].map((t) => ({ ...base, choices: [{ index: 0, delta: { content: t }, finish_reason: null }] })),
        { ...base, choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] },
        { ...base, choices: [], usage: { prompt_tokens: 9, completion_tokens: 4, total_tokens: 13 } },
    ];
    const sse = Buffer.from(chunks.map((c) => `data: ${JSON.stringify(c)}\n\n`).join('') + 'data: [DONE]\n\n');
    const parts = [];
    for (let i = 0; i < sse.length; i += cut)
        parts.push(frame({ ':event-type': 'PayloadPart', ':content-type': 'application/octet-stream', ':message-type': 'event' },
            sse.subarray(i, i + cut)));
    return parts;
}

const awsError = (res, status, type, message) => {
    const body = JSON.stringify({ message });
    res.writeHead(status, { 'content-type': 'application/json', 'x-amzn-errortype': `${type}:http://internal.amazon.com/coral/com.amazon.bedrock/`, 'content-length': Buffer.byteLength(body) });
    res.end(body);
};

async function writeFrames(res, frames, split) {
    res.writeHead(200, { 'content-type': 'application/vnd.amazon.eventstream', 'x-amzn-requestid': crypto.randomUUID() });
    const all = Buffer.concat(frames);
    if (split) {
        // a few bytes per write, never on a frame boundary on purpose
        for (let i = 0; i < all.length; i += 5) {
            res.write(all.subarray(i, i + 5));
            await new Promise((r) => setTimeout(r, 1));
        }
    } else {
        for (const f of frames) res.write(f);
    }
    res.end();
}

/*
 * keys: access key id -> { secret, token } the fake accepts (more can be added to fake.keys).
 * Returns { url, port, requests, next(...behaviours), keys, close() }.
 */
export async function startAwsFake({ keys = {}, region = 'us-east-1' } = {}) {
    const fake = { requests: [], queue: [], keys: { ...keys }, refused: [] };
    fake.next = (...b) => fake.queue.push(...b);
    const server = http.createServer((req, res) => {
        const parts = [];
        req.on('data', (d) => parts.push(d));
        req.on('end', async () => {
            const body = Buffer.concat(parts);
            const bedrock = /^\/model\/([^/]+)\/(converse|converse-stream)$/.exec(req.url);
            const sagemaker = /^\/endpoints\/([^/]+)\/(invocations|invocations-response-stream)$/.exec(req.url);
            const service = sagemaker ? 'sagemaker' : 'bedrock';
            const why = verifySigV4(req, body, fake.keys, { region, service });
            let json = null;
            try { json = JSON.parse(body.toString()); } catch { /* not JSON */ }
            fake.requests.push({ method: req.method, path: req.url, headers: req.headers, body: body.toString(), json, verified: !why });
            if (why) {
                fake.refused.push(why);
                return awsError(res, 403, 'InvalidSignatureException', `The request signature we calculated does not match the signature you provided (${why})`);
            }
            if (!bedrock && !sagemaker) { // the probe: a signed GET of /
                res.writeHead(404, { 'content-type': 'application/json' });
                return res.end('{"message":"not found"}');
            }
            const behavior = fake.queue.length ? fake.queue.shift() : 'ok';
            if (behavior === 'throttle') return awsError(res, 429, 'ThrottlingException', 'Too many requests, please wait before trying again.');
            if (behavior === 'timeout') return awsError(res, 408, 'ModelTimeoutException', 'Model has timed out in processing the request.');
            if (behavior === 'validation') return awsError(res, 400, 'ValidationException', 'The provided model identifier is invalid.');
            if (bedrock) {
                if (bedrock[2] === 'converse') {
                    const out = JSON.stringify(converseAnswer(behavior));
                    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(out) });
                    return res.end(out);
                }
                return writeFrames(res, converseStream(behavior), behavior === 'split');
            }
            const model = json?.model ?? '';
            if (sagemaker[2] === 'invocations') {
                const out = JSON.stringify({
                    id: 'chatcmpl-sm0', object: 'chat.completion', created: 1, model,
                    choices: [{ index: 0, message: { role: 'assistant', content: 'Hello from SageMaker' }, finish_reason: 'stop' }],
                    usage: { prompt_tokens: 9, completion_tokens: 4, total_tokens: 13 },
                });
                res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(out) });
                return res.end(out);
            }
            return writeFrames(res, sagemakerStream(model), behavior === 'split');
        });
    });
    await new Promise((r) => server.listen(0, '127.0.0.1', r));
    fake.port = server.address().port;
    fake.url = `http://127.0.0.1:${fake.port}`;
    fake.close = () => new Promise((r) => { server.closeAllConnections?.(); server.close(() => r()); });
    return fake;
}

/* The container credentials endpoint: GET path with Authorization: token. */
export async function startCredsFake({ token, creds, path = '/creds' }) {
    const fake = { hits: 0, refused: 0 };
    const server = http.createServer((req, res) => {
        if (req.url !== path || req.headers.authorization !== token) {
            fake.refused++;
            res.writeHead(401, { 'content-length': 0 });
            return res.end();
        }
        fake.hits++;
        const body = JSON.stringify({ ...creds, RoleArn: 'arn:aws:iam::123456789012:role/unbusy' });
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
        res.end(body);
    });
    await new Promise((r) => server.listen(0, '127.0.0.1', r));
    fake.url = `http://127.0.0.1:${server.address().port}${path}`;
    fake.close = () => new Promise((r) => { server.closeAllConnections?.(); server.close(() => r()); });
    return fake;
}
