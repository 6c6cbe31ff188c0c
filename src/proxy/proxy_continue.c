/*
 * continue_on_cut (on by default): when a stream client's answer breaks after
 * it has started, another deployment continues it instead of the stream
 * ending with an error event.
 *
 * The content relayed to the client is kept (bounded by PROXY_MAX_PARTIAL):
 * what the client has, not what was received, so a continuation starts
 * exactly where the client's text stops. It is kept as the relay's chunk scan
 * found it, the escaped bodies of the "content" strings one after another, and
 * decoded only when a continuation is asked for: a relayed chunk is never
 * parsed; a continuation's chunks, which are rewritten, are. On a cut, the request is sent again
 * with that text to continue; the provider seam says how each provider
 * continues a partial answer (provider.h: provider_ops.continuation —
 * DeepSeek's prefix completion, vLLM's and SGLang's continue_final_message,
 * else a trailing assistant message), and a provider set to "off" is never
 * asked. The continuation's chunks are spliced into the same stream as if
 * the first attempt had gone on: its role-only first chunk is not repeated,
 * and every chunk carries the first attempt's id, created and model; its usage
 * chunk shows the sum over the attempts (the cut attempts' usage as reported,
 * or guessed from characters and then marked "estimated").
 *
 * Never continued (the error event as before; unbusy_continuations_total
 * {result="unsafe"}): a tool call already relayed (half of its arguments
 * cannot be re-asked), n > 1, logprobs (another model's probabilities would
 * pass for the first one's), response_format json_object / json_schema
 * (structured-output decoders constrain the generated tokens from the start
 * of the grammar, not from a prefix: a continuation would begin a second JSON
 * document; an error the client can retry beats a broken document), more
 * text than PROXY_MAX_PARTIAL, or no deployment of the model that continues.
 * At most PROXY_MAX_CONTINUATIONS per request; each gets the model's
 * max_attempts afresh, within the total deadline and the retry budget.
 * Reasoning text is not carried over: a continuation of a stream cut while
 * it was reasoning starts the reasoning again.
 */
#include <cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "obs/metrics.h"
#include "proto/jsonx_walk.h"
#include "proxy/proxy_int.h"

/* The text kept for a continuation: about 64k tokens, more than nearly every answer; a
   longer one is not continued, and its text is let go at once, so what a stream costs
   the gateway stays bounded whatever its length. */
#define PROXY_MAX_PARTIAL (256u * 1024)

bool proxy_continue_enabled(const struct preq *p)
{
    return p->model->resilience.continue_on_cut && p->client_stream && p->api == PROXY_API_CHAT;
}

/* An escaped string body into dst (NUL-terminated); false when it does not fit or holds a
   NUL. */
static bool unescape_to(const char *s, size_t n, char *dst, size_t cap)
{
    size_t len = jsonx_unescape_into(s, n, dst, cap);
    return len < cap && strlen(dst) == len;
}

/* The first attempt's id, model and created, which every later chunk takes over (once per
   request, from the chunk scan's spans). */
static void note_meta(struct proxy_cont *c, const char *data, const struct jsonx_chunk *ch)
{
    if (!ch->id.end || !unescape_to(data + ch->id.start, ch->id.end - ch->id.start, c->id, sizeof c->id))
        return;
    c->model[0] = '\0';
    if (ch->model.end &&
        !unescape_to(data + ch->model.start, ch->model.end - ch->model.start, c->model, sizeof c->model))
        c->model[0] = '\0';
    /* a count: digits read as they are, a fraction truncated, a negative one 0 */
    c->has_created = ch->created.end != 0;
    c->created = c->has_created ? (double)jw_count(data, &ch->created) : 0;
    c->meta = true;
}

/* The chunk's content as relayed: its escaped span, kept as it is (decoded only when a
   continuation is asked for, proxy_continue_try). */
static void note_delta(struct proxy_cont *c, const char *data, const struct jsonx_chunk *ch)
{
    if (ch->delta_calls)
        c->tool_call_relayed = true;
    if (!ch->n_content)
        return;
    if (ch->n_content > 1)
        c->many_choices = true;
    if (c->overflow)
        return; /* too long to continue: nothing is kept */
    if (!c->partial.data)
        buf_init(&c->partial, PROXY_MAX_PARTIAL);
    if (buf_append(&c->partial, data + ch->content.start, ch->content.end - ch->content.start) < 0) {
        c->overflow = true;
        buf_free(&c->partial);
    }
}

static void add_tokens(cJSON *obj, const char *key, int64_t v)
{
    cJSON *n = obj ? cJSON_GetObjectItemCaseSensitive(obj, key) : NULL;
    if (cJSON_IsNumber(n) && v > 0)
        cJSON_SetNumberValue(n, n->valuedouble + (double)v);
}

/* A continuation's chunk as the first attempt's stream would have had it. */
static char *rewrite(const struct proxy_cont *c, cJSON *j)
{
    if (cJSON_GetObjectItemCaseSensitive(j, "id"))
        cJSON_ReplaceItemInObjectCaseSensitive(j, "id", cJSON_CreateString(c->id));
    if (c->model[0] && cJSON_GetObjectItemCaseSensitive(j, "model"))
        cJSON_ReplaceItemInObjectCaseSensitive(j, "model", cJSON_CreateString(c->model));
    if (c->has_created && cJSON_GetObjectItemCaseSensitive(j, "created"))
        cJSON_ReplaceItemInObjectCaseSensitive(j, "created", cJSON_CreateNumber(c->created));
    cJSON *usage = cJSON_GetObjectItemCaseSensitive(j, "usage");
    if (cJSON_IsObject(usage)) {
        const struct prices_usage *e = &c->earlier;
        add_tokens(usage, "prompt_tokens", e->prompt_tokens);
        add_tokens(usage, "completion_tokens", e->completion_tokens);
        add_tokens(usage, "total_tokens", e->prompt_tokens + e->completion_tokens);
        add_tokens(cJSON_GetObjectItemCaseSensitive(usage, "completion_tokens_details"), "reasoning_tokens",
                   e->reasoning_tokens);
        add_tokens(cJSON_GetObjectItemCaseSensitive(usage, "prompt_tokens_details"), "cached_tokens",
                   e->cached_tokens);
        if (c->earlier_estimated && !cJSON_GetObjectItemCaseSensitive(usage, "estimated"))
            cJSON_AddTrueToObject(usage, "estimated");
    }
    return cJSON_PrintUnformatted(j);
}

char *proxy_continue_relay(struct preq *p, const struct jsonx_chunk *ch, const char **data, size_t *len)
{
    if (!ch || ch->has_error || !proxy_continue_enabled(p))
        return NULL; /* not a chunk: an error event (ours or the provider's) */
    struct proxy_cont *c = &p->cont;
    if (!c->continued && !c->meta)
        note_meta(c, *data, ch);
    note_delta(c, *data, ch);
    if (!c->continued || !c->meta)
        return NULL; /* relayed as it came */
    /* A continuation's chunk is rewritten, and only such a chunk is parsed. */
    cJSON *j = cJSON_ParseWithLength(*data, *len);
    char *out = cJSON_IsObject(j) ? rewrite(c, j) : NULL;
    cJSON_Delete(j);
    if (out) {
        *data = out;
        *len = strlen(out);
    }
    return out;
}

/* Why the client's request must not be continued, or NULL. */
static const char *unsafe_reason(const struct preq *p)
{
    const struct proxy_cont *c = &p->cont;
    if (c->tool_call_relayed)
        return "a tool call had been sent";
    if (c->overflow)
        return "the answer so far is too long to send again";
    if (c->many_choices)
        return "more than one choice";
    if (p->scan.n > 1)
        return "n > 1";
    const char *why = NULL;
    cJSON *j = cJSON_ParseWithLength(p->body, p->body_len);
    const cJSON *logprobs = cJSON_GetObjectItemCaseSensitive(j, "logprobs");
    const cJSON *top = cJSON_GetObjectItemCaseSensitive(j, "top_logprobs");
    const cJSON *format = cJSON_GetObjectItemCaseSensitive(j, "response_format");
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(format, "type");
    if (cJSON_IsTrue(logprobs) || (cJSON_IsNumber(top) && top->valuedouble > 0))
        why = "logprobs were asked for";
    else if (cJSON_IsString(type) &&
             (strcmp(type->valuestring, "json_object") == 0 || strcmp(type->valuestring, "json_schema") == 0))
        why = "a JSON response_format";
    cJSON_Delete(j);
    if (why)
        return why;
    for (size_t i = 0; i < p->rm->ndeps; i++)
        if (provider_continuation(p->rm->deps[i].cfg->provider) != CFG_CONTINUATION_OFF)
            return NULL;
    return "no deployment of the model continues answers";
}

bool proxy_continue_try(struct preq *p, const struct attempt *a)
{
    struct proxy_cont *c = &p->cont;
    if (!proxy_continue_enabled(p))
        return false;
    const char *unsafe = unsafe_reason(p);
    if (unsafe) {
        metrics_continuation(p->env->metrics, p->model, METRICS_CONTINUATION_UNSAFE);
        log_info("request %s: the stream broke; not continued: %s", server_conn_request(p->conn)->request_id,
                 unsafe);
        return false;
    }
    if (c->n >= PROXY_MAX_CONTINUATIONS || proxy_remaining_ms(p) == 0)
        return false; /* counted as a failed continuation when the request ends */
    /* The relayed text, decoded now that it is needed (no longer than partial). */
    buf_free(&c->text);
    buf_init(&c->text, PROXY_MAX_PARTIAL);
    if (c->partial.len && jsonx_unescape(c->partial.data, c->partial.len, &c->text) < 0)
        return false;
    if (c->n == 0)
        c->prompt_chars = p->scan.prompt_chars;
    /* What the cut attempt used: its own report, or a guess from what it sent and was sent. */
    struct prices_usage u;
    if (a->usage_seen) {
        u = (struct prices_usage){a->usage.prompt_tokens, a->usage.completion_tokens, a->usage.reasoning_tokens,
                                  a->usage.cached_tokens};
    } else {
        u = (struct prices_usage){0};
        prices_estimate_tokens(p->scan.prompt_chars, c->partial.len - c->partial_at_cut, &u.prompt_tokens,
                               &u.completion_tokens);
        c->earlier_estimated = true;
    }
    c->cut[c->n].dep = a->dep;
    c->cut[c->n].usage = u;
    c->earlier.prompt_tokens += u.prompt_tokens > 0 ? u.prompt_tokens : 0;
    c->earlier.completion_tokens += u.completion_tokens > 0 ? u.completion_tokens : 0;
    c->earlier.reasoning_tokens += u.reasoning_tokens > 0 ? u.reasoning_tokens : 0;
    c->earlier.cached_tokens += u.cached_tokens > 0 ? u.cached_tokens : 0;
    c->n++;
    c->continued = true;
    c->attempts_base = p->attempts;
    c->partial_at_cut = c->partial.len;
    /* The prompt the next provider reads holds the answer so far too. */
    p->scan.prompt_chars = c->prompt_chars + c->partial.len;
    log_info("request %s: the stream broke after %zu bytes of content; asking another deployment "
             "to continue it",
             server_conn_request(p->conn)->request_id, c->partial.len);
    return true;
}

const char *proxy_continue_text(const struct preq *p, size_t *len, int64_t *tokens)
{
    const struct proxy_cont *c = &p->cont;
    *len = 0;
    *tokens = 0;
    if (!c->continued || !c->text.len)
        return NULL; /* cut while only reasoning had gone out: the request is simply sent again */
    int64_t unused;
    prices_estimate_tokens(0, c->text.len, &unused, tokens);
    *len = c->text.len;
    return c->text.data;
}

void proxy_continue_usage(struct preq *p, const struct attempt *a, struct accesslog_entry *log)
{
    const struct proxy_cont *c = &p->cont;
    if (!c->n)
        return;
    if (!a->usage_seen) /* the guess of this attempt alone: the cut ones are added below */
        proxy_estimate_usage(p, a->content_chars, &log->prompt_tokens, &log->completion_tokens);
    int64_t *mine[4] = {&log->prompt_tokens, &log->completion_tokens, &log->reasoning_tokens,
                        &log->cached_tokens};
    const int64_t earlier[4] = {c->earlier.prompt_tokens, c->earlier.completion_tokens,
                                c->earlier.reasoning_tokens, c->earlier.cached_tokens};
    for (int i = 0; i < 4; i++)
        if (earlier[i] > 0)
            *mine[i] = (*mine[i] > 0 ? *mine[i] : 0) + earlier[i];
    if (c->earlier_estimated)
        log->usage_estimated = true;
}

static int64_t minus(int64_t total, int64_t part)
{
    return total > part ? total - part : 0;
}

void proxy_continue_price(const struct preq *p, struct ledger_record *r)
{
    const struct proxy_cont *c = &p->cont;
    if (!c->n || r->prompt_tokens < 0)
        return;
    int64_t start = r->time_ms - (r->duration_ms > 0 ? r->duration_ms : 0);
    /* The served deployment's share, then each cut attempt at its own deployment's price. */
    struct prices_usage served = {minus(r->prompt_tokens, c->earlier.prompt_tokens),
                                  minus(r->completion_tokens, c->earlier.completion_tokens),
                                  minus(r->reasoning_tokens, c->earlier.reasoning_tokens),
                                  minus(r->cached_tokens, c->earlier.cached_tokens)};
    double total = 0, cost;
    const char *currency = NULL, *cur;
    if (r->provider) {
        prices_cost(p->cfg, r->provider, r->deployment_model, &served, start, &cost, &cur);
        total += cost;
        currency = cur;
    }
    for (unsigned i = 0; i < c->n && i < PROXY_MAX_CONTINUATIONS; i++) {
        const struct cfg_deployment *d = c->cut[i].dep;
        if (!d)
            continue;
        prices_cost(p->cfg, d->provider->name, d->model, &c->cut[i].usage, start, &cost, &cur);
        if (!cur)
            continue;
        if (!currency)
            currency = cur;
        if (strcmp(cur, currency) == 0) /* one row holds one currency: another one is left out */
            total += cost;
    }
    r->cost = total;
    r->currency = currency;
}

void proxy_continue_finish(struct preq *p, enum outcome outcome)
{
    if (p->cont.n)
        metrics_continuation(p->env->metrics, p->model,
                             outcome == OUTCOME_OK ? METRICS_CONTINUATION_OK : METRICS_CONTINUATION_FAILED);
    buf_free(&p->cont.partial);
    buf_free(&p->cont.text);
}
