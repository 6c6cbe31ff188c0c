// bench/engine.mjs — the load generator of bench/engine.sh. Plain node (20+), no packages.
//
//   node engine.mjs ttft --port P --model M --seconds S --concurrency C
//       a closed loop of C clients, each asking a new question per request (so that no two
//       requests share a prompt), streamed, for S seconds. Prints
//       RESULT n= errors= ttft_p50= ttft_p90= ttft_p99= ttft_max= by_provider=a:N,b:N,...
//       (milliseconds from the request written to the first content event)
//
//   node engine.mjs turns --port P --model M --conversations K --turns T --concurrency C
//       K conversations of T turns (a long system prompt, then question / answer / question
//       ...), C conversations at a time, each turn sent after the previous answer. Prints
//       RESULT n= errors= ttft_p50= ttft_p99= stayed= (conversations that kept one provider)
import http from 'node:http';

const mode = process.argv[2];
const args = process.argv.slice(3);
const opt = (name, dflt) => {
    const i = args.indexOf('--' + name);
    return i >= 0 && i + 1 < args.length ? args[i + 1] : dflt;
};
const port = Number(opt('port', '0'));
const model = opt('model', 'm');
const agent = new http.Agent({ keepAlive: true, maxSockets: 1024 });

function pct(sorted, p) {
    if (!sorted.length) return NaN;
    return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

/* One streamed chat completion: { ttft, provider, text, error }. */
function ask(messages) {
    return new Promise((resolve) => {
        const payload = JSON.stringify({ model, stream: true, messages });
        const t0 = performance.now();
        const r = { ttft: NaN, provider: null, text: '', error: null };
        const req = http.request({
            host: '127.0.0.1', port, method: 'POST', path: '/v1/chat/completions', agent,
            headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) },
        });
        req.setTimeout(60000, () => { r.error = 'timeout'; req.destroy(); });
        req.on('error', (e) => { r.error = r.error || e.code || e.message; resolve(r); });
        req.on('response', (res) => {
            r.provider = res.headers['x-unbusy-provider'] || null;
            if (res.statusCode !== 200) r.error = 'status_' + res.statusCode;
            let pending = '';
            res.setEncoding('utf8');
            res.on('data', (d) => {
                pending += d;
                let nl;
                while ((nl = pending.indexOf('\n\n')) >= 0) {
                    const ev = pending.slice(0, nl);
                    pending = pending.slice(nl + 2);
                    if (!ev.startsWith('data: ') || ev === 'data: [DONE]') continue;
                    try {
                        const d0 = JSON.parse(ev.slice(6)).choices?.[0]?.delta;
                        if (d0?.content) {
                            if (Number.isNaN(r.ttft)) r.ttft = performance.now() - t0;
                            r.text += d0.content;
                        }
                    } catch { r.error = 'bad_event'; }
                }
            });
            res.on('end', () => resolve(r));
        });
        req.end(payload);
    });
}

function report(results, extra) {
    const ok = results.filter((r) => !r.error && Number.isFinite(r.ttft));
    const t = ok.map((r) => r.ttft).sort((a, b) => a - b);
    const by = {};
    for (const r of ok) by[r.provider] = (by[r.provider] || 0) + 1;
    const f = (x) => (Number.isFinite(x) ? x.toFixed(0) : '-');
    console.log(`RESULT n=${results.length} errors=${results.length - ok.length} ttft_p50=${f(pct(t, 50))} ` +
        `ttft_p90=${f(pct(t, 90))} ttft_p99=${f(pct(t, 99))} ttft_max=${f(t[t.length - 1])} ` +
        `by_provider=${Object.entries(by).sort().map(([k, v]) => `${k}:${v}`).join(',')}${extra || ''}`);
}

async function ttft() {
    const until = performance.now() + Number(opt('seconds', '20')) * 1000;
    const results = [];
    let k = 0;
    await Promise.all(Array.from({ length: Number(opt('concurrency', '8')) }, async () => {
        while (performance.now() < until) {
            results.push(await ask([{ role: 'user', content: `question ${k++}: why is the sky blue?` }]));
        }
    }));
    report(results);
}

async function turns() {
    const system = { role: 'system', content: 'You answer questions about distributed systems. '.repeat(40) };
    const K = Number(opt('conversations', '60')), T = Number(opt('turns', '6'));
    const results = [];
    let next = 0, stayed = 0;
    await Promise.all(Array.from({ length: Number(opt('concurrency', '8')) }, async () => {
        while (next < K) {
            const k = next++;
            const messages = [system];
            const seen = new Set();
            for (let t = 0; t < T; t++) {
                messages.push({ role: 'user', content: `conversation ${k}: question ${t}` });
                const r = await ask(messages);
                results.push(r);
                if (r.provider) seen.add(r.provider);
                messages.push({ role: 'assistant', content: r.text || 'ok' });
            }
            if (seen.size === 1) stayed++;
        }
    }));
    report(results, ` stayed=${stayed}/${K}`);
}

const modes = { ttft, turns };
if (!modes[mode]) {
    console.error('usage: node engine.mjs ttft|turns --port P ...');
    process.exit(2);
}
await modes[mode]();
agent.destroy();
