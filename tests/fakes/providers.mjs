// providers.mjs — an in-process fake of one provider's API quirks, for
// tests/integration/providers.test.mjs (fakeup, in C, is the general misbehaving upstream;
// this one checks what a particular provider demands of a request and answers as it would).
//
//   const f = await startProviderFake({ azure, auth, reasoningField, rejectReasoningHistory,
//                                       maxTokens, models });
//
//   azure: { key, apiVersion, deployments: [...] }  Azure OpenAI: the path must be
//       /openai/deployments/{deployment}/chat/completions?api-version=V with an api-key header
//       (or Authorization: Bearer KEY, Entra ID); a missing or wrong key is 401, an unknown
//       deployment 404 DeploymentNotFound, a missing or other api-version 404, as Azure
//       answers. Streams open with Azure's prompt_filter_results chunk (no choices), and
//       GET /openai/models?api-version=V lists the deployments.
//       A prompt containing FILTER_ME is refused as Azure's content filter refuses one (400,
//       code content_filter); a prompt containing FILTER_ANSWER ends the answer with
//       finish_reason content_filter; one containing UNSUPPORTED is Azure's 400
//       OperationNotSupported ({"error":{"code","message"}}, not OpenAI's four members).
//   auth: the exact Authorization value required (401 otherwise)
//   reasoningField: name of the reasoning delta ("reasoning" as vLLM, "reasoning_content")
//   rejectReasoningHistory: 400 when a message sent carries reasoning_content (DeepSeek)
//   maxTokens: 400 when max_tokens or max_completion_tokens is larger (DeepSeek's wording)
//   models: the ids GET /models lists (setModels changes them)
//
// f.requests: every request seen ({method, url, headers, json}); f.baseURL, f.url, f.stop().
import http from 'node:http';

const ANSWER = ['Hello', ' from', ' the', ' fake'];

function send(res, status, obj, headers = {}) {
    const body = JSON.stringify(obj);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...headers });
    res.end(body);
}

function chunk(model, delta, finish = null, extra = {}) {
    return { id: 'chatcmpl-prov', object: 'chat.completion.chunk', created: 1700000000, model,
        choices: [{ index: 0, delta, finish_reason: finish, ...extra }] };
}

export async function startProviderFake(opts = {}) {
    const requests = [];
    let models = opts.models || [];
    const server = http.createServer((req, res) => {
        let body = '';
        req.on('data', (d) => { body += d; });
        req.on('end', () => {
            let json = null;
            try { json = body ? JSON.parse(body) : null; } catch { /* recorded as null */ }
            requests.push({ method: req.method, url: req.url, headers: req.headers, json });
            handle(req, res, json);
        });
    });

    function handle(req, res, json) {
        const url = new URL(req.url, 'http://fake');
        let deployment = null;
        if (opts.azure) {
            const az = opts.azure;
            const keyOk = req.headers['api-key'] === az.key || req.headers.authorization === `Bearer ${az.key}`;
            if (!keyOk) {
                return send(res, 401, { error: { code: '401', message: 'Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource.' } });
            }
            if (url.searchParams.get('api-version') !== az.apiVersion) {
                return send(res, 404, { error: { code: '404', message: 'Resource not found' } });
            }
            if (req.method === 'GET' && url.pathname === '/openai/models') {
                return send(res, 200, { object: 'list', data: az.deployments.map((id) => ({ id, object: 'model' })) });
            }
            const m = url.pathname.match(/^\/openai\/deployments\/([^/]+)\/chat\/completions$/);
            if (!m) return send(res, 404, { error: { code: '404', message: 'Resource not found' } });
            deployment = decodeURIComponent(m[1]);
            if (!az.deployments.includes(deployment)) {
                return send(res, 404, { error: { code: 'DeploymentNotFound', message: 'The API deployment for this resource does not exist. If you created the deployment within the last 5 minutes, please wait a moment and try again.' } });
            }
        } else if (opts.auth !== undefined && req.headers.authorization !== opts.auth) {
            return send(res, 401, { error: { message: 'Authentication Fails, Your api key is invalid', type: 'authentication_error', param: null, code: 'invalid_request_error' } });
        }
        if (req.method === 'GET' && /\/models$/.test(url.pathname)) {
            return send(res, 200, { object: 'list', data: models.map((id) => ({ id, object: 'model', owned_by: 'fake' })) });
        }
        if (req.method !== 'POST' || !/\/chat\/completions$/.test(url.pathname) || !json) {
            return send(res, 404, { error: { message: 'not found', type: 'invalid_request_error', param: null, code: null } });
        }
        if (opts.rejectReasoningHistory && (json.messages || []).some((m) => m && 'reasoning_content' in m && !m.tool_calls)) {
            return send(res, 400, { error: { message: 'The reasoning_content is an intermediate result for display purposes only and will not be included in the context for inference. Please remove the reasoning_content from your message to reduce network traffic.', type: 'invalid_request_error', param: null, code: 'invalid_request_error' } });
        }
        const prompt = JSON.stringify(json.messages || []);
        if (opts.azure && prompt.includes('FILTER_ME')) {
            return send(res, 400, { error: { message: "The response was filtered due to the prompt triggering Azure OpenAI's content management policy. Please modify your prompt and retry.", type: null, param: 'prompt', code: 'content_filter', status: 400,
                innererror: { code: 'ResponsibleAIPolicyViolation', content_filter_result: { hate: { filtered: true, severity: 'high' } } } } });
        }
        if (opts.azure && prompt.includes('UNSUPPORTED')) {
            return send(res, 400, { error: { code: 'OperationNotSupported', message: 'The chatCompletion operation does not work with the specified model. Please choose different model and try again.' } });
        }
        const finishReason = opts.azure && prompt.includes('FILTER_ANSWER') ? 'content_filter' : 'stop';
        const asked = json.max_tokens ?? json.max_completion_tokens;
        if (opts.maxTokens && asked > opts.maxTokens) {
            return send(res, 400, { error: { message: `Invalid max_tokens value, the valid range of max_tokens is [1, ${opts.maxTokens}]`, type: 'invalid_request_error', param: null, code: 'invalid_request_error' } });
        }
        const model = json.model;
        const reasoning = opts.reasoningField ? ['Let me', ' think'] : [];
        if (!json.stream) {
            const message = { role: 'assistant', content: ANSWER.join('') };
            if (opts.reasoningField) message[opts.reasoningField] = reasoning.join('');
            return send(res, 200, { id: 'chatcmpl-prov', object: 'chat.completion', created: 1700000000, model,
                choices: [{ index: 0, message, finish_reason: finishReason }],
                usage: { prompt_tokens: 5, completion_tokens: 6, total_tokens: 11 } });
        }
        res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
        const events = [];
        if (opts.azure) {
            events.push({ choices: [], created: 0, id: '', model: '', object: '',
                prompt_filter_results: [{ prompt_index: 0, content_filter_results: { hate: { filtered: false, severity: 'safe' } } }] });
        }
        events.push(chunk(model, { role: 'assistant', content: '' }));
        for (const r of reasoning) events.push(chunk(model, { [opts.reasoningField]: r }));
        for (const t of ANSWER) {
            const extra = opts.azure ? { content_filter_results: { hate: { filtered: false, severity: 'safe' } } } : {};
            events.push(chunk(model, { content: t }, null, extra));
        }
        events.push(chunk(model, {}, finishReason));
        if (json.stream_options?.include_usage) {
            events.push({ id: 'chatcmpl-prov', object: 'chat.completion.chunk', created: 1700000000, model, choices: [],
                usage: { prompt_tokens: 5, completion_tokens: 6, total_tokens: 11 } });
        }
        for (const e of events) res.write(`data: ${JSON.stringify(e)}\n\n`);
        res.end('data: [DONE]\n\n');
    }

    await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = server.address().port;
    return {
        port,
        url: `http://127.0.0.1:${port}`,
        baseURL: `http://127.0.0.1:${port}/v1`,
        requests,
        apiRequests() { return requests.filter((r) => r.method === 'POST'); },
        setModels(list) { models = list; },
        stop() {
            server.closeAllConnections();
            return new Promise((resolve) => server.close(() => resolve()));
        },
    };
}

export const PROVIDER_FAKE_ANSWER = ANSWER.join('');
