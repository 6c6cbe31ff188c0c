/*
 * The page lives here as one C string so that the binary stays a single file
 * with nothing to install beside it. It is plain HTML: no framework, no
 * build step, no external font or script (the page must render on a machine
 * that cannot reach the internet, during the outage it is meant to explain).
 */
#include "api/status_page.h"

#include <string.h>
#include <time.h>

#include "api/admin.h"
#include "obs/metrics.h"
#include "http/server.h"
#include "proxy/proxy.h"

static const char page[] =
    "<!doctype html>\n"
    "<html lang=\"en\">\n"
    "<head>\n"
    "<meta charset=\"utf-8\">\n"
    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
    "<title>unbusy status</title>\n"
    "<style>\n"
    ":root {\n"
    "  --bg: #f6f7f9; --panel: #ffffff; --text: #1a202c; --muted: #64748b; --line: #e2e8f0;\n"
    "  --up: #15803d; --up-bg: #dcfce7; --deg: #b45309; --deg-bg: #fef3c7; --down: #b91c1c; --down-bg: #fee2e2;\n"
    "  --idle: #475569; --idle-bg: #e2e8f0; --accent: #2563eb; --shadow: 0 1px 2px rgba(15,23,42,.06);\n"
    "}\n"
    "@media (prefers-color-scheme: dark) {\n"
    "  :root:not([data-theme=light]) {\n"
    "    --bg: #0b1017; --panel: #121a24; --text: #e2e8f0; --muted: #8b9bb0; --line: #223044;\n"
    "    --up: #4ade80; --up-bg: #12331f; --deg: #fbbf24; --deg-bg: #3a2c0c; --down: #f87171; --down-bg: #3b1517;\n"
    "    --idle: #94a3b8; --idle-bg: #1e293b; --accent: #60a5fa; --shadow: none;\n"
    "  }\n"
    "}\n"
    ":root[data-theme=dark] {\n"
    "  --bg: #0b1017; --panel: #121a24; --text: #e2e8f0; --muted: #8b9bb0; --line: #223044;\n"
    "  --up: #4ade80; --up-bg: #12331f; --deg: #fbbf24; --deg-bg: #3a2c0c; --down: #f87171; --down-bg: #3b1517;\n"
    "  --idle: #94a3b8; --idle-bg: #1e293b; --accent: #60a5fa; --shadow: none;\n"
    "}\n"
    "* { box-sizing: border-box; }\n"
    "body { margin: 0; background: var(--bg); color: var(--text);\n"
    "  font: 14px/1.45 system-ui, -apple-system, \"Segoe UI\", Roboto, \"Noto Sans\", sans-serif; }\n"
    "main { max-width: 1180px; margin: 0 auto; padding: 20px 24px 40px; }\n"
    "header { display: flex; align-items: center; gap: 16px; flex-wrap: wrap; margin-bottom: 18px; }\n"
    "h1 { font-size: 20px; margin: 0; letter-spacing: -.01em; }\n"
    "h1 span { color: var(--muted); font-weight: 500; }\n"
    "h2 { font-size: 16px; margin: 0; }\n"
    ".grow { flex: 1; }\n"
    ".muted { color: var(--muted); }\n"
    ".num { font-variant-numeric: tabular-nums; text-align: right; white-space: nowrap; }\n"
    "button { background: var(--panel); color: var(--text); border: 1px solid var(--line); border-radius: 6px;\n"
    "  padding: 4px 10px; font: inherit; cursor: pointer; }\n"
    ".banner { display: flex; align-items: center; gap: 10px; padding: 12px 16px; border-radius: 10px;\n"
    "  font-weight: 600; margin-bottom: 18px; border: 1px solid transparent; }\n"
    ".banner.up { background: var(--up-bg); color: var(--up); }\n"
    ".banner.degraded { background: var(--deg-bg); color: var(--deg); }\n"
    ".banner.down { background: var(--down-bg); color: var(--down); }\n"
    ".banner.unknown { background: var(--idle-bg); color: var(--idle); }\n"
    ".dot { width: 10px; height: 10px; border-radius: 50%; background: currentColor; flex: none; }\n"
    ".card { background: var(--panel); border: 1px solid var(--line); border-radius: 10px; box-shadow: var(--shadow);\n"
    "  margin-bottom: 16px; overflow: hidden; }\n"
    ".card-head { display: flex; align-items: center; gap: 12px; padding: 12px 16px; border-bottom: 1px solid var(--line);\n"
    "  flex-wrap: wrap; }\n"
    ".stats { display: flex; gap: 18px; color: var(--muted); font-size: 13px; flex-wrap: wrap; }\n"
    ".stats b { color: var(--text); font-weight: 600; font-variant-numeric: tabular-nums; }\n"
    "table { width: 100%; border-collapse: collapse; table-layout: fixed; }\n"
    "table.incidents { table-layout: auto; }\n"
    "th, td { padding: 8px 16px; overflow: hidden; text-overflow: ellipsis; border-bottom: 1px solid var(--line); text-align: left; vertical-align: middle; }\n"
    "th { font-size: 12px; font-weight: 600; color: var(--muted); text-transform: uppercase; letter-spacing: .04em; }\n"
    "th.num { text-align: right; }\n"
    "tr:last-child td { border-bottom: 0; }\n"
    "td .sub { display: block; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; color: var(--muted); font-size: 12px; }\n"
    ".pill { display: inline-flex; align-items: center; gap: 6px; padding: 2px 9px; border-radius: 999px;\n"
    "  font-size: 12px; font-weight: 600; white-space: nowrap; }\n"
    ".pill .dot { width: 7px; height: 7px; }\n"
    ".pill.up { background: var(--up-bg); color: var(--up); }\n"
    ".pill.degraded { background: var(--deg-bg); color: var(--deg); }\n"
    ".pill.down { background: var(--down-bg); color: var(--down); }\n"
    ".pill.unknown { background: var(--idle-bg); color: var(--idle); }\n"
    ".bad { color: var(--down); font-weight: 600; }\n"
    ".warn { color: var(--deg); font-weight: 600; }\n"
    ".incidents td { font-size: 13px; }\n"
    ".kind { font-weight: 600; }\n"
    ".empty { padding: 14px 16px; color: var(--muted); }\n"
    "#error { display: none; }\n"
    "@media (max-width: 760px) { .hide-sm { display: none; } th, td { padding: 8px 10px; } }\n"
    "</style>\n"
    "</head>\n"
    "<body>\n"
    "<main>\n"
    "<header>\n"
    "  <h1>unbusy <span>status</span></h1>\n"
    "  <div class=\"grow\"></div>\n"
    "  <span class=\"muted\" id=\"updated\">loading&hellip;</span>\n"
    "  <button id=\"theme\" type=\"button\" title=\"Switch between light and dark\">Theme</button>\n"
    "</header>\n"
    "<div class=\"banner unknown\" id=\"banner\"><span class=\"dot\"></span><span id=\"banner-text\">Loading status&hellip;</span></div>\n"
    "<div class=\"banner down\" id=\"error\"><span class=\"dot\"></span><span id=\"error-text\"></span></div>\n"
    "<div id=\"models\"></div>\n"
    "<div class=\"card\">\n"
    "  <div class=\"card-head\"><h2>Recent incidents</h2><div class=\"grow\"></div><span class=\"muted\">failovers, continued streams, hedges, breaker trips, failed requests</span></div>\n"
    "  <div id=\"incidents\"><div class=\"empty\">None yet.</div></div>\n"
    "</div>\n"
    "</main>\n"
    "<script>\n"
    "'use strict';\n"
    "const $ = (id) => document.getElementById(id);\n"
    "const POLL_MS = 2000;\n"
    "const RATE_WINDOW_MS = 30000;\n"
    "let history = [];      // recent polls: { t, tokens: Map(key -> completion tokens) }, oldest first\n"
    "let rates = new Map(); // key -> completion tokens/s over the window\n"
    "\n"
    "const root = document.documentElement;\n"
    "// ?theme=dark|light (a wall screen) wins over the choice saved in this browser.\n"
    "const asked = new URLSearchParams(location.search).get('theme');\n"
    "const saved = asked || localStorage.getItem('unbusy-theme');\n"
    "if (saved === 'dark' || saved === 'light') root.dataset.theme = saved;\n"
    "$('theme').onclick = () => {\n"
    "  const dark = root.dataset.theme ? root.dataset.theme === 'dark'\n"
    "    : matchMedia('(prefers-color-scheme: dark)').matches;\n"
    "  root.dataset.theme = dark ? 'light' : 'dark';\n"
    "  localStorage.setItem('unbusy-theme', root.dataset.theme);\n"
    "};\n"
    "\n"
    "function el(tag, attrs, ...kids) {\n"
    "  const e = document.createElement(tag);\n"
    "  for (const [k, v] of Object.entries(attrs || {})) {\n"
    "    if (k === 'class') e.className = v; else if (k.startsWith('data-')) e.setAttribute(k, v); else e[k] = v;\n"
    "  }\n"
    "  for (const k of kids) if (k !== null && k !== undefined) e.append(k instanceof Node ? k : String(k));\n"
    "  return e;\n"
    "}\n"
    "\n"
    "const LABEL = { up: 'Up', degraded: 'Degraded', down: 'Down', unknown: 'Unknown' };\n"
    "function pill(state, text) {\n"
    "  return el('span', { class: 'pill ' + state }, el('span', { class: 'dot' }), text || LABEL[state]);\n"
    "}\n"
    "\n"
    "const WHY = {\n"
    "  open: 'breaker open', half_open: 'breaker half-open', disabled: 'disabled', draining: 'draining',\n"
    "  auth: 'credentials refused', cooldown: 'cooling down (Retry-After)', saturated: 'at concurrency limit',\n"
    "  rpm: 'at RPM limit', probe_down: 'probe failing',\n"
    "};\n"
    "\n"
    "// up: takes traffic normally; degraded: takes some or is recovering; down: takes none.\n"
    "function depState(d) {\n"
    "  if (d.admin === 'disabled' || d.auth_out || d.breaker === 'open' || d.probe.down) return 'down';\n"
    "  if (!d.eligible && d.why_not === 'cooldown') return 'down';\n"
    "  if (d.breaker === 'half_open' || d.admin === 'draining' || !d.eligible) return 'degraded';\n"
    "  if (d.window_requests >= 5 && d.window_failure_ratio >= 0.1) return 'degraded';\n"
    "  return 'up';\n"
    "}\n"
    "\n"
    "function modelState(states) {\n"
    "  if (!states.length) return 'unknown';\n"
    "  if (states.every((s) => s === 'up')) return 'up';\n"
    "  if (states.some((s) => s === 'up' || s === 'degraded')) return 'degraded';\n"
    "  return 'down';\n"
    "}\n"
    "\n"
    "const ms = (v, n) => (n ? (v >= 10000 ? (v / 1000).toFixed(1) + ' s' : Math.round(v) + ' ms') : '—');\n"
    "const pct = (r) => (r * 100 >= 10 ? Math.round(r * 100) : (r * 100).toFixed(1)) + '%';\n"
    "const rate = (v) => (v === undefined ? '—' : v >= 100 ? Math.round(v) : v.toFixed(1));\n"
    "const count = (n) => (n >= 1e6 ? (n / 1e6).toFixed(1) + 'M' : n >= 1e4 ? (n / 1e3).toFixed(1) + 'k' : String(n));\n"
    "\n"
    "function ago(msAgo) {\n"
    "  const s = Math.max(0, Math.round(msAgo / 1000));\n"
    "  if (s < 60) return s + 's ago';\n"
    "  if (s < 3600) return Math.floor(s / 60) + 'm ago';\n"
    "  if (s < 86400) return Math.floor(s / 3600) + 'h ago';\n"
    "  return Math.floor(s / 86400) + 'd ago';\n"
    "}\n"
    "\n"
    "const WIDTHS = ['19%', '6%', '14%', '11%', '9%', '9%', '11%', '10%', '11%'];\n"
    "const cols = () => el('colgroup', null, ...WIDTHS.map((w) => el('col', { style: 'width:' + w })));\n"
    "\n"
    "const CAUSE = {\n"
    "  connect: 'connect failed', tls: 'TLS failed', connect_timeout: 'connect timeout',\n"
    "  first_token: 'no first token in time', stall: 'stream stalled', rate_limited: 'rate limited',\n"
    "  server_error: 'server error', auth: 'credentials refused', bad_reply: 'malformed reply', cut: 'stream cut',\n"
    "  io: 'connection error', status: 'unexpected status',\n"
    "};\n"
    "\n"
    "function depRow(d, key) {\n"
    "  const st = depState(d);\n"
    "  const why = d.why_not && d.why_not !== 'saturated' ? WHY[d.why_not] || d.why_not\n"
    "    : d.admin !== 'active' ? d.admin : '';\n"
    "  const err = d.window_failure_ratio;\n"
    "  const errCls = d.window_requests && err >= 0.25 ? 'bad' : d.window_requests && err >= 0.05 ? 'warn' : '';\n"
    "  return el('tr', { 'data-deployment': d.provider + '/' + d.model, 'data-state': st },\n"
    "    el('td', null, el('b', null, d.provider), el('span', { class: 'sub' }, d.model)),\n"
    "    el('td', { class: 'num hide-sm' }, d.tier),\n"
    "    el('td', null, pill(st), why ? el('span', { class: 'sub' }, why) : null),\n"
    "    el('td', { class: 'hide-sm' }, d.breaker.replace('_', '-'),\n"
    "      d.trips ? el('span', { class: 'sub' }, d.trips + (d.trips === 1 ? ' trip' : ' trips')) : null),\n"
    "    el('td', { class: 'num' }, ms(d.ttft_p50_ms, d.ttft_samples)),\n"
    "    el('td', { class: 'num' }, ms(d.ttft_p99_ms, d.ttft_samples)),\n"
    "    el('td', { class: 'num ' + errCls }, d.window_requests ? pct(err) : '—',\n"
    "      el('span', { class: 'sub' }, 'of ' + d.window_requests + ' req')),\n"
    "    el('td', { class: 'num' }, d.inflight + ' / ' + d.concurrency_limit + (d.max_concurrency ? '' : ' (learnt)')),\n"
    "    el('td', { class: 'num' }, rate(rates.get(key))));\n"
    "}\n"
    "\n"
    "function render(s) {\n"
    "  const now = Date.now();\n"
    "  const tokens = new Map();\n"
    "  const models = $('models');\n"
    "  models.replaceChildren();\n"
    "  s.models.forEach((m, mi) => {\n"
    "    const usage = (s.usage && s.usage[mi]) || [];\n"
    "    let mtok = 0;\n"
    "    m.deployments.forEach((d, di) => {\n"
    "      const u = usage[di] || { completion_tokens: 0 };\n"
    "      tokens.set(m.model + '|' + di, u.completion_tokens);\n"
    "      mtok += u.completion_tokens;\n"
    "    });\n"
    "    tokens.set(m.model, mtok);\n"
    "  });\n"
    "  history.push({ t: now, tokens });\n"
    "  while (history.length > 2 && now - history[1].t >= RATE_WINDOW_MS) history.shift();\n"
    "  const base = history[0];\n"
    "  rates = new Map();\n"
    "  if (now > base.t) {\n"
    "    for (const [k, v] of tokens) {\n"
    "      if (base.tokens.has(k)) rates.set(k, Math.max(0, v - base.tokens.get(k)) / ((now - base.t) / 1000));\n"
    "    }\n"
    "  }\n"
    "\n"
    "  s.models.forEach((m) => {\n"
    "    const states = m.deployments.map(depState);\n"
    "    const st = modelState(states);\n"
    "    const upCount = states.filter((x) => x === 'up').length;\n"
    "    const head = el('div', { class: 'card-head' },\n"
    "      el('h2', null, m.model), pill(st), el('div', { class: 'grow' }),\n"
    "      el('div', { class: 'stats' },\n"
    "        el('span', null, el('b', null, upCount + '/' + states.length), ' up'),\n"
    "        el('span', null, el('b', null, count(m.requests)), ' requests'),\n"
    "        el('span', null, el('b', null, count(m.failovers)), ' failovers'),\n"
    "        m.hedges.enabled ? el('span', null, el('b', null, count(m.hedges.started)), ' hedges') : null,\n"
    "        m.admission && m.admission.capacity ? el('span', null, el('b', null, count(m.admission.queued)), ' queued') : null,\n"
    "        m.admission && m.admission.shed ? el('span', null, el('b', null, count(m.admission.shed)), ' shed') : null,\n"
    "        m.admission && m.admission.degraded ? el('span', null, el('b', null, 'degraded'), ' to fallback') : null,\n"
    "        el('span', null, el('b', null, rate(rates.get(m.model))), ' tokens/s')));\n"
    "    const table = el('table', null, cols(),\n"
    "      el('thead', null, el('tr', null,\n"
    "        el('th', null, 'Deployment'), el('th', { class: 'num hide-sm' }, 'Tier'), el('th', null, 'State'),\n"
    "        el('th', { class: 'hide-sm' }, 'Breaker'), el('th', { class: 'num' }, 'TTFT p50'),\n"
    "        el('th', { class: 'num' }, 'TTFT p99'), el('th', { class: 'num', title: 'failed attempts in the breaker window (default 30 s)' }, 'Errors'),\n"
    "        el('th', { class: 'num' }, 'In flight'), el('th', { class: 'num' }, 'Tokens/s'))),\n"
    "      el('tbody', null, ...m.deployments.map((d, di) => depRow(d, m.model + '|' + di))));\n"
    "    models.append(el('section', { class: 'card', 'data-model': m.model, 'data-state': st }, head, table));\n"
    "  });\n"
    "  const mstates = s.models.map((m) => modelState(m.deployments.map(depState)));\n"
    "  const downModels = s.models.filter((m, i) => mstates[i] === 'down').map((m) => m.model);\n"
    "  const overall = !mstates.length ? 'unknown' : downModels.length ? 'down'\n"
    "    : mstates.every((x) => x === 'up') ? 'up' : 'degraded';\n"
    "  const text = {\n"
    "    up: 'All models operational',\n"
    "    degraded: 'Some deployments are degraded or down; requests fail over to the others',\n"
    "    down: 'Outage: no working deployment for ' + downModels.join(', '),\n"
    "    unknown: 'No models configured',\n"
    "  }[overall];\n"
    "  $('banner').className = 'banner ' + overall;\n"
    "  $('banner').dataset.state = overall;\n"
    "  $('banner-text').textContent = text;\n"
    "\n"
    "  const list = s.incidents || [];\n"
    "  const box = $('incidents');\n"
    "  if (!list.length) {\n"
    "    box.replaceChildren(el('div', { class: 'empty' }, 'None yet.'));\n"
    "  } else {\n"
    "    const KIND = {\n"
    "      attempt_failed: ['Attempt failed', 'degraded'], stream_failed: ['Stream broke', 'down'],\n"
    "      breaker_opened: ['Breaker opened', 'down'], breaker_closed: ['Breaker closed', 'up'],\n"
    "      auth_refused: ['Credentials refused', 'down'], request_failed: ['Request failed', 'down'],\n"
    "      continued: ['Stream continued elsewhere', 'degraded'], hedged: ['Slow first token, hedged', 'degraded'],\n"
    "    };\n"
    "    const serverNow = s.now_ms || now;\n"
    "    box.replaceChildren(el('table', { class: 'incidents' },\n"
    "      el('thead', null, el('tr', null, el('th', null, 'When'), el('th', null, 'Event'), el('th', null, 'Model'),\n"
    "        el('th', null, 'Deployment'), el('th', null, 'Cause'), el('th', { class: 'num' }, 'Count'))),\n"
    "      el('tbody', null, ...list.map((i) => {\n"
    "        const [label, cls] = KIND[i.kind] || [i.kind, 'unknown'];\n"
    "        const cause = [i.class ? CAUSE[i.class] || i.class : '', i.status ? 'HTTP ' + i.status : '']\n"
    "          .filter(Boolean).join(', ');\n"
    "        return el('tr', { 'data-incident': i.kind },\n"
    "          el('td', { class: 'muted', title: new Date(i.last_ms).toLocaleString() }, ago(serverNow - i.last_ms)),\n"
    "          el('td', null, pill(cls, label)), el('td', null, i.model), el('td', null, i.deployment || '—'),\n"
    "          el('td', null, cause || '—'), el('td', { class: 'num' }, i.count > 1 ? '×' + i.count : '1'));\n"
    "      }))));\n"
    "  }\n"
    "  $('updated').textContent = 'updated ' + new Date(now).toLocaleTimeString();\n"
    "}\n"
    "\n"
    "async function poll() {\n"
    "  try {\n"
    "    const r = await fetch('/status.json', { cache: 'no-store' });\n"
    "    if (!r.ok) throw new Error('HTTP ' + r.status);\n"
    "    render(await r.json());\n"
    "    $('error').style.display = 'none';\n"
    "  } catch (e) {\n"
    "    $('error').style.display = 'flex';\n"
    "    $('error-text').textContent = 'Cannot reach the gateway (' + e.message + '); showing the last known state.';\n"
    "  }\n"
    "  setTimeout(poll, POLL_MS);\n"
    "}\n"
    "poll();\n"
    "</script>\n"
    "</body>\n"
    "</html>\n";
/* end of page */

const char *status_page_html(void)
{
    return page;
}

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void status_write_json(struct buf *out, struct runtime *rt, struct metrics *m)
{
    size_t start = out->len;
    admin_write_state(out, rt);
    /* Reopen the state object to add the page's fields. */
    if (out->len > start && out->data[out->len - 1] == '}')
        out->len--;
    buf_append_str(out, ",\"usage\":[");
    for (size_t i = 0; i < rt->cfg->nmodels; i++) {
        buf_append_str(out, i ? ",[" : "[");
        for (size_t j = 0; j < rt->cfg->models[i].ndeployments; j++) {
            struct metrics_dep_totals t;
            metrics_dep_totals(m, i, j, &t);
            buf_printf(out,
                       "%s{\"requests\":%llu,\"failed\":%llu,\"errors\":%llu,\"prompt_tokens\":%llu,"
                       "\"completion_tokens\":%llu,\"reasoning_tokens\":%llu}",
                       j ? "," : "", (unsigned long long)t.requests, (unsigned long long)t.failed,
                       (unsigned long long)t.errors, (unsigned long long)t.tokens[METRICS_TOKENS_PROMPT],
                       (unsigned long long)t.tokens[METRICS_TOKENS_COMPLETION],
                       (unsigned long long)t.tokens[METRICS_TOKENS_REASONING]);
        }
        buf_append_str(out, "]");
    }
    buf_append_str(out, "],\"incidents\":");
    if (m)
        incidents_write_json(metrics_incidents(m), out);
    else
        buf_append_str(out, "[]");
    buf_printf(out, ",\"now_ms\":%llu}", (unsigned long long)wall_ms());
}

void status_page_handle(struct server_conn *c)
{
    static const char headers[] =
        "Cache-Control: no-cache\r\n"
        "X-Content-Type-Options: nosniff\r\n"
        "Content-Security-Policy: default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
        "connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'\r\n";
    server_respond(c, 200, "text/html; charset=utf-8", headers, page, sizeof page - 1);
    server_request_done(c);
}

void status_json_handle(struct server_conn *c)
{
    struct proxy_env *env = proxy_env_of(c);
    struct buf b;
    buf_init(&b, 0);
    status_write_json(&b, env->rt, metrics_of(env->metrics));
    server_respond(c, 200, "application/json", "Cache-Control: no-store\r\n", b.data, b.len);
    buf_free(&b);
    server_request_done(c);
}
