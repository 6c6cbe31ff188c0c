#include "api/admin.h"
#include "api/admin_endpoints.h"
#include "api/admin_keys.h"
#include "api/admin_reload.h"

#include <cJSON.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <string.h>

#include "admit/keys.h"
#include "http/server.h"
#include "proxy/proxy.h"

static bool str_eq(struct http1_str s, const char *lit)
{
    size_t n = strlen(lit);
    return s.len == n && memcmp(s.p, lit, n) == 0;
}

/* A dotted quad in 127.0.0.0/8, every part 0..255 in decimal. */
static bool loopback_ipv4(const char *p, size_t len)
{
    unsigned parts = 0, value = 0, digits = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i == len || p[i] == '.') {
            if (digits == 0 || value > 255 || (parts == 0 && value != 127)) return false;
            parts++;
            value = digits = 0;
        } else if (p[i] >= '0' && p[i] <= '9' && digits < 3) {
            value = value * 10 + (unsigned)(p[i] - '0');
            digits++;
        } else {
            return false;
        }
    }
    return parts == 4;
}

/* ":PORT", one to five digits. */
static bool port_suffix(const char *p, size_t len)
{
    if (len < 2 || len > 6 || p[0] != ':') return false;
    for (size_t i = 1; i < len; i++)
        if (p[i] < '0' || p[i] > '9') return false;
    return true;
}

bool admin_host_is_loopback(const char *p, size_t len)
{
    static const char v6[] = "[::1]";
    if (len >= sizeof v6 - 1 && memcmp(p, v6, sizeof v6 - 1) == 0)
        return len == sizeof v6 - 1 || port_suffix(p + sizeof v6 - 1, len - (sizeof v6 - 1));
    if (len == 3 && memcmp(p, "::1", 3) == 0) return true; /* a listen address, not a Host */
    const char *colon = memchr(p, ':', len);
    size_t host_len = colon ? (size_t)(colon - p) : len;
    if (colon && !port_suffix(colon, len - host_len)) return false;
    return (host_len == 9 && strncasecmp(p, "localhost", 9) == 0) || loopback_ipv4(p, host_len);
}

/* Constant time in the token's content and length: compare digests. */
static bool token_ok(const struct http1_str *auth, const char *token)
{
    static const char prefix[] = "Bearer ";
    if (!auth || auth->len < sizeof prefix - 1 || strncasecmp(auth->p, prefix, sizeof prefix - 1) != 0)
        return false;
    unsigned char a[SHA256_DIGEST_LENGTH], b[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)auth->p + sizeof prefix - 1, auth->len - (sizeof prefix - 1), a);
    SHA256((const unsigned char *)token, strlen(token), b);
    return CRYPTO_memcmp(a, b, sizeof a) == 0;
}

static void kv_u64(struct buf *b, const char *k, unsigned long long v, bool comma)
{
    buf_printf(b, "%s\"%s\":%llu", comma ? "," : "", k, v);
}

/* The first-token budget in use for a short and a long prompt, and what each prompt-size class
   has learnt. */
static void write_first_token_budget(struct buf *b, struct runtime_model *rm, struct runtime_dep *d)
{
    static const struct {
        const char *name;
        uint32_t tokens;
    } sizes[2] = {{"short", TTFT_BUDGET_SHORT_TOKENS}, {"long", TTFT_BUDGET_LONG_TOKENS}};
    buf_append_str(b, ",\"first_token_budget\":{");
    for (int i = 0; i < 2; i++) {
        struct ttft_budget_info info;
        runtime_dep_first_token_budget(rm, d, sizes[i].tokens, &info);
        buf_printf(b, "%s\"%s\":{\"prompt_tokens\":%u,\"budget_ms\":%u,\"p99_ms\":%u,\"source\":\"%s\"}",
                   i ? "," : "", sizes[i].name, sizes[i].tokens, info.budget_ms, info.p99_ms,
                   ttft_budget_source_name(info.source));
    }
    buf_append_str(b, ",\"classes\":[");
    for (unsigned c = 0; c < TTFT_BUDGET_CLASSES; c++) {
        struct ttft_budget_class_stats st;
        ttft_budget_class_stats(d->ttft, c, &st);
        buf_printf(b, "%s{\"below_tokens\":%u,\"samples\":%llu,\"weight\":%.1f,\"p50_ms\":%u,"
                      "\"p99_ms\":%u}",
                   c ? "," : "", st.max_tokens, (unsigned long long)st.samples, st.weight, st.p50_ms,
                   st.p99_ms);
    }
    buf_append_str(b, "]}");
}

/* What the engine's own metrics said at the last scrape (route/engine.h), when it is scraped. */
static void write_engine(struct buf *b, const struct engine_state *st, uint64_t inflight,
                         uint64_t now)
{
    if (!st->enabled)
        return;
    uint64_t at = atomic_load(&st->scraped_at_ms);
    buf_append_str(b, ",\"engine\":{");
    kv_u64(b, "waiting", atomic_load(&st->waiting), false);
    kv_u64(b, "running", atomic_load(&st->running), true);
    buf_printf(b, ",\"kv_usage\":%.3f", atomic_load(&st->kv_permille) / 1000.0);
    if (at)
        kv_u64(b, "scrape_age_ms", now > at ? now - at : 0, true);
    buf_printf(b, ",\"freshness\":%.2f,\"estimate\":%.2f", engine_freshness(st, now),
               engine_estimate(st, (uint32_t)inflight, now));
    kv_u64(b, "scrapes_ok", atomic_load(&st->scrapes_ok), true);
    kv_u64(b, "scrapes_failed", atomic_load(&st->scrapes_failed), true);
    kv_u64(b, "fail_streak", atomic_load(&st->fail_streak), true);
    buf_printf(b, ",\"marked_down\":%s}", atomic_load(&st->marked_down) ? "true" : "false");
}

static void write_dep(struct buf *b, struct runtime_model *rm, struct runtime_dep *d, uint64_t now)
{
    struct health_snapshot s;
    health_snapshot(d->health, now, &s);
    const char *why = NULL;
    bool eligible = runtime_dep_eligible(d, now, &why);
    buf_append_str(b, "{\"provider\":");
    buf_append_json_str(b, d->cfg->provider->name, strlen(d->cfg->provider->name));
    buf_append_str(b, ",\"model\":");
    buf_append_json_str(b, d->cfg->model, strlen(d->cfg->model));
    buf_printf(b, ",\"tier\":%d,\"weight\":%u,\"breaker\":\"%s\",\"admin\":\"%s\",\"eligible\":%s",
               d->cfg->tier, d->cfg->weight, s.breaker, s.admin, eligible ? "true" : "false");
    if (why)
        buf_printf(b, ",\"why_not\":\"%s\"", why);
    buf_printf(b, ",\"auth_out\":%s", s.auth_out ? "true" : "false");
    kv_u64(b, "inflight", s.inflight, true);
    kv_u64(b, "max_concurrency", s.max_concurrency, true);
    kv_u64(b, "concurrency_limit", s.concurrency_limit, true);
    kv_u64(b, "learnt_limit", s.learnt_limit, true);
    buf_printf(b, ",\"slow_start_factor\":%.3f", s.slow_start_factor);
    kv_u64(b, "ttft_baseline_ms", s.ttft_baseline_ms, true);
    kv_u64(b, "limit_increases", s.limit_increases, true);
    kv_u64(b, "limit_decreases", s.limit_decreases, true);
    kv_u64(b, "rpm_used", s.rpm_used, true);
    kv_u64(b, "rpm_limit", s.rpm_limit, true);
    buf_printf(b, ",\"ewma_ttft_ms\":%.1f", s.ewma_ttft_ms);
    kv_u64(b, "ttft_samples", s.ttft_samples, true);
    kv_u64(b, "ttft_p50_ms", s.ttft_p50_ms, true);
    kv_u64(b, "ttft_p95_ms", s.ttft_p95_ms, true);
    kv_u64(b, "ttft_p99_ms", s.ttft_p99_ms, true);
    write_first_token_budget(b, rm, d);
    kv_u64(b, "requests", s.requests, true);
    kv_u64(b, "successes", s.successes, true);
    kv_u64(b, "window_requests", s.window_requests, true);
    kv_u64(b, "window_failures", s.window_failures, true);
    buf_printf(b, ",\"window_failure_ratio\":%.3f", s.window_failure_ratio);
    kv_u64(b, "trips", s.trips, true);
    kv_u64(b, "consecutive_failures", s.consecutive_failures, true);
    kv_u64(b, "open_remaining_ms", s.open_remaining_ms, true);
    kv_u64(b, "cooldown_remaining_ms", s.cooldown_remaining_ms, true);
    if (s.last_failure)
        buf_printf(b, ",\"last_failure\":\"%s\"", s.last_failure);
    buf_append_str(b, ",\"errors\":{");
    bool first = true;
    for (int c = 1; c < HEALTH__COUNT; c++) {
        buf_printf(b, "%s\"%s\":%llu", first ? "" : ",", health_class_name((enum health_class)c),
                   (unsigned long long)s.counts[c]);
        first = false;
    }
    struct runtime_provider *pv = d->provider;
    buf_printf(b, "},\"probe\":{\"enabled\":%s,\"down\":%s", pv->cfg->probe.enabled ? "true" : "false",
               atomic_load(&pv->probe_down) ? "true" : "false");
    kv_u64(b, "ok", atomic_load(&pv->probes_ok), true);
    kv_u64(b, "failed", atomic_load(&pv->probes_failed), true);
    buf_append_str(b, "}");
    write_engine(b, &pv->engine, s.inflight, now);
    admin_write_endpoints(b, d, now);
    buf_append_str(b, "}");
}

void admin_write_state(struct buf *b, struct runtime *rt)
{
    uint64_t now = runtime_now_ms();
    buf_printf(b, "{\"generation\":%llu,\"models\":[", (unsigned long long)rt->generation);
    for (size_t i = 0; i < rt->cfg->nmodels; i++) {
        struct runtime_model *rm = &rt->models[i];
        struct retry_budget_stats rs;
        retry_budget_get_stats(rm->retries, now, &rs);
        buf_append_str(b, i ? ",{\"model\":" : "{\"model\":");
        buf_append_json_str(b, rm->cfg->name, strlen(rm->cfg->name));
        buf_printf(b, ",\"strategy\":\"%s\"", balancer_strategy_name(rm->strategy));
        kv_u64(b, "requests", atomic_load(&rm->requests), true);
        kv_u64(b, "failovers", atomic_load(&rm->failovers), true);
        buf_printf(b, ",\"retry_budget\":{\"window_requests\":%u,\"window_retries\":%u,\"allowed\":%u,"
                      "\"denied\":%llu}",
                   rs.requests, rs.retries, rs.allowed, (unsigned long long)rs.denied);
        buf_printf(b, ",\"hedges\":{\"enabled\":%s", rm->cfg->resilience.hedge.enabled ? "true" : "false");
        kv_u64(b, "started", atomic_load(&rm->hedges_started), true);
        kv_u64(b, "won", atomic_load(&rm->hedges_won), true);
        kv_u64(b, "wasted", atomic_load(&rm->hedges_wasted), true);
        kv_u64(b, "denied", atomic_load(&rm->hedges_denied), true);
        kv_u64(b, "no_deployment", atomic_load(&rm->hedges_no_deployment), true);
        buf_append_str(b, ",\"by_reason\":{");
        for (int r = 0; r < RUNTIME_HEDGE__REASONS; r++)
            buf_printf(b, "%s\"%s\":%llu", r ? "," : "", runtime_hedge_reason_name((enum runtime_hedge_reason)r),
                       (unsigned long long)atomic_load(&rm->hedges_by_reason[r]));
        struct hedge_budget_stats hs;
        hedge_budget_get_stats(rm->hedges, now, &hs);
        buf_printf(b, "},\"budget\":{\"window_requests\":%u,\"window_hedges\":%u,\"window_useful\":%u,"
                      "\"window_failed\":%u,\"allowed\":%u,\"stopped\":%s}",
                   hs.requests, hs.hedges, hs.useful, hs.failed, hs.allowed, hs.stopped ? "true" : "false");
        struct admission *ad = rm->admission;
        pthread_mutex_lock(&ad->lock);
        buf_printf(b, "},\"admission\":{\"capacity\":%u,\"inflight\":%u,\"queued\":%u,\"queued_total\":%llu,"
                      "\"shed\":%llu,\"evictions\":%llu,\"timeouts\":%llu,\"degraded\":%s,"
                      "\"degraded_total\":%llu,\"drain_per_s\":%.2f",
                   ad->capacity, ad->admitted_inflight, ad->queued, (unsigned long long)ad->queued_total,
                   (unsigned long long)ad->shed, (unsigned long long)ad->evictions,
                   (unsigned long long)ad->timeouts, ad->degraded ? "true" : "false",
                   (unsigned long long)ad->degraded_total, ad->drain_per_s);
        pthread_mutex_unlock(&ad->lock);
        buf_append_str(b, "},\"deployments\":[");
        for (size_t j = 0; j < rm->ndeps; j++) {
            if (j)
                buf_append_str(b, ",");
            write_dep(b, rm, &rm->deps[j], now);
        }
        buf_append_str(b, "]}");
    }
    buf_append_str(b, "]}");
}

static void respond_json(struct server_conn *c, int status, struct buf *b)
{
    server_respond(c, status, "application/json", NULL, b->data, b->len);
    server_request_done(c);
}

static void fail(struct server_conn *c, enum gw_err e, const char *msg)
{
    server_respond_error(c, e, msg, NULL);
    server_request_done(c);
}

/* POST /admin/deployments/{drain|disable|enable|reset} {"provider":"...","model":"..."} */
static void change_dep(struct server_conn *c, struct runtime *rt, const char *action)
{
    const struct server_request *req = server_conn_request(c);
    cJSON *doc = cJSON_ParseWithLength(req->body ? req->body : "", req->body_len);
    const cJSON *pv = doc ? cJSON_GetObjectItemCaseSensitive(doc, "provider") : NULL;
    const cJSON *md = doc ? cJSON_GetObjectItemCaseSensitive(doc, "model") : NULL;
    if (!cJSON_IsString(pv) || !cJSON_IsString(md)) {
        cJSON_Delete(doc);
        fail(c, GW_ERR_BAD_FIELD, "the body must be {\"provider\": \"...\", \"model\": \"...\"}");
        return;
    }
    struct runtime_model *rm = NULL;
    struct runtime_dep *d = runtime_find_dep(rt, pv->valuestring, md->valuestring, &rm);
    cJSON_Delete(doc);
    if (!d) {
        fail(c, GW_ERR_NOT_FOUND, "no such deployment");
        return;
    }
    if (strcmp(action, "reset") == 0) {
        health_reset(d->health);
    } else {
        enum health_admin st;
        const char *state = strcmp(action, "drain") == 0     ? "draining"
                            : strcmp(action, "disable") == 0 ? "disabled"
                                                             : "active";
        health_admin_parse(state, &st);
        health_set_admin(d->health, st);
    }
    struct buf b;
    buf_init(&b, 0);
    write_dep(&b, rm, d, runtime_now_ms());
    respond_json(c, 200, &b);
    buf_free(&b);
}

/*
 * Who may call the admin API; NULL (allowed) or why not, with *status_err.
 *
 * A loopback listener is not a boundary: any web page the operator opens can
 * send requests to 127.0.0.1 (a form POST needs no preflight), and with DNS
 * rebinding read the answers under its own name. So without a token the API
 * is read-only and refuses what only a browser sends: an Origin header, or a
 * Host that is not a loopback name. With a token, the token is the boundary:
 * a page cannot add Authorization to a cross-site request without a CORS
 * preflight, which is never granted (no Access-Control-* header is sent).
 */
static const char *access_refused(struct proxy_env *env, const struct http1_request *r, enum gw_err *e)
{
    const char *token = env->cfg->admin_token;
    if (token) {
        *e = GW_ERR_UNAUTHORIZED;
        return token_ok(http1_find_header(&r->head, "authorization"), token)
                   ? NULL
                   : "the admin API needs the admin token: send 'Authorization: Bearer TOKEN' "
                     "(admin.token in the config)";
    }
    *e = GW_ERR_FORBIDDEN;
    const char *listen = env->cfg->server.listen_host;
    if (!admin_host_is_loopback(listen, strlen(listen)))
        return "the admin API is off: set admin.token to use it on a non-loopback listener";
    if (http1_find_header(&r->head, "origin"))
        return "the admin API refuses requests sent by web pages (an Origin header); without "
               "admin.token it answers only local tools such as curl";
    const struct http1_str *host = http1_find_header(&r->head, "host");
    if (!host || !admin_host_is_loopback(host->p, host->len))
        return "without admin.token the admin API answers only requests whose Host is a loopback "
               "name (localhost, 127.0.0.1, [::1])";
    if (!str_eq(r->method, "GET") && !str_eq(r->method, "HEAD"))
        return "changes through the admin API need the admin token: set admin.token in the "
               "config (e.g. openssl rand -hex 32) and send it as 'Authorization: Bearer TOKEN'";
    return NULL;
}

bool admin_check_head(struct server_conn *c)
{
    enum gw_err e;
    const char *why = access_refused(proxy_env_of(c), &server_conn_request(c)->http, &e);
    if (!why)
        return true;
    server_respond_error(c, e, why, NULL);
    return false;
}

void admin_dispatch(struct server_conn *c)
{
    struct proxy_env *env = proxy_env_of(c);
    const struct server_request *req = server_conn_request(c);
    enum gw_err refused;
    /* checked at the head already; again here, for a dispatch without that step */
    const char *why = access_refused(env, &req->http, &refused);
    if (why) {
        fail(c, refused, why);
        return;
    }
    if (env->keys && admin_keys_dispatch(c, env->keys))
        return;
    if (admin_reload_dispatch(c))
        return;
    struct http1_str path = req->http.target;
    const char *q = memchr(path.p, '?', path.len);
    if (q)
        path.len = (size_t)(q - path.p);
    bool get = str_eq(req->http.method, "GET"), post = str_eq(req->http.method, "POST");
    if (str_eq(path, "/admin/deployments") || str_eq(path, "/admin/state")) {
        if (!get) {
            fail(c, GW_ERR_METHOD, "use GET");
            return;
        }
        struct buf b;
        buf_init(&b, 0);
        admin_write_state(&b, env->rt);
        respond_json(c, 200, &b);
        buf_free(&b);
        return;
    }
    static const char *actions[] = {"drain", "disable", "enable", "reset"};
    for (size_t i = 0; i < sizeof actions / sizeof actions[0]; i++) {
        char want[64];
        snprintf(want, sizeof want, "/admin/deployments/%s", actions[i]);
        if (!str_eq(path, want))
            continue;
        if (!post) {
            fail(c, GW_ERR_METHOD, "use POST");
            return;
        }
        change_dep(c, env->rt, actions[i]);
        return;
    }
    fail(c, GW_ERR_NOT_FOUND, "no such admin endpoint");
}
