/*
 * proxy_usage — what a proxied request reports of its usage: the estimate
 * when a provider reports none, the stream's id/model/created noted from its
 * first chunk (for an estimated usage chunk), that chunk itself, and the
 * ledger row written at finalize. Internal to the proxy (proxy_int.h).
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "acct/ledger.h"
#include "admit/keys.h"
#include "config/prices.h"
#include "proto/jsonx_walk.h"
#include "proxy/proxy_int.h"

void proxy_estimate_usage(const struct preq *p, uint64_t completion_chars, int64_t *prompt_tokens,
                          int64_t *completion_tokens)
{
    prices_estimate_tokens(p->scan.prompt_chars, (size_t)completion_chars, prompt_tokens,
                           completion_tokens);
}

void proxy_note_chunk_meta(struct preq *p, const char *data, const struct jsonx_chunk *ch)
{
    p->chunk_meta = true;
    /* From the relay's chunk scan: the spans of the first chunk's id, model and created. */
    size_t n;
    if (ch->id.end && ((n = jsonx_unescape_into(data + ch->id.start, ch->id.end - ch->id.start, p->chunk_id,
                                                 sizeof p->chunk_id)) == SIZE_MAX ||
                       strlen(p->chunk_id) != n))
        p->chunk_id[0] = '\0';
    if (ch->model.end && ((n = jsonx_unescape_into(data + ch->model.start, ch->model.end - ch->model.start,
                                                    p->chunk_model, sizeof p->chunk_model)) == SIZE_MAX ||
                          strlen(p->chunk_model) != n))
        p->chunk_model[0] = '\0';
    if (ch->created.end) {
        int64_t created = jw_count(data, &ch->created); /* a fraction truncated, a negative 0 */
        if (created < (int64_t)9e15) p->chunk_created = created;
    }
}

/* The usage chunk a stream client asked for (stream_options.include_usage) when the provider
   sent none: before [DONE], estimated, in the shape of the stream's own chunks. The head has
   gone out, so the mark is in the usage object ("estimated": true), not a header. */
void proxy_estimated_usage_chunk(struct preq *p)
{
    const struct accesslog_entry *log = &server_conn_request_mut(p->conn)->log;
    struct buf ev;
    buf_init(&ev, 0);
    int rc = buf_append_str(&ev, "data: {\"id\":");
    if (!rc)
        rc = buf_append_json_str(&ev, p->chunk_id, strlen(p->chunk_id));
    if (!rc)
        rc = buf_printf(&ev, ",\"object\":\"%s\",\"created\":%lld,\"model\":",
                        p->api == PROXY_API_COMPLETIONS ? "text_completion"
                                                        : "chat.completion.chunk",
                        (long long)(p->chunk_created ? p->chunk_created : (int64_t)time(NULL)));
    const char *model = p->chunk_model[0]                         ? p->chunk_model
                        : p->auto_model && p->model->auto_import ? p->auto_model
                                                                 : p->model->name;
    if (!rc)
        rc = buf_append_json_str(&ev, model, strlen(model));
    if (!rc)
        rc = buf_append_str(&ev, ",\"choices\":[],\"usage\":");
    if (!rc)
        rc = assemble_put_estimated_usage(&ev, log->prompt_tokens, log->completion_tokens);
    if (!rc)
        rc = buf_append_str(&ev, "}\n\n");
    if (!rc)
        server_stream_write(p->conn, ev.data, ev.len);
    buf_free(&ev);
}

void proxy_record_ledger(struct preq *p, const struct accesslog_entry *log)
{
    if (!p->env->ledger)
        return;
    const struct server_request *sr = server_conn_request(p->conn);
    struct ledger_record r = {
        .request_id = sr->request_id,
        .key_id = p->key ? p->key->id : 0,
        .key_name = p->key ? p->key->name : NULL,
        .model = p->degraded_from                             ? p->degraded_from
                 : p->auto_model && p->model->auto_import ? p->auto_model
                                                          : p->model->name,
        .provider = log->provider,
        .deployment_model = log->deployment_model,
        .status = log->status,
        .outcome = log->outcome,
        .prompt_tokens = log->prompt_tokens,
        .completion_tokens = log->completion_tokens,
        .reasoning_tokens = log->reasoning_tokens,
        .cached_tokens = log->cached_tokens,
        .ttft_ms = log->ttft_ms,
        .usage_estimated = log->usage_estimated,
        .duration_ms = (int64_t)((uv_hrtime() - sr->start_ns) / 1000000),
    };
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    r.time_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    if (r.prompt_tokens < 0 && log->provider && log->status == 200) {
        /* Nothing reported: a quarter of the prompt's characters, and of the bytes sent
           to the client (an upper bound: it includes the JSON around the text). */
        prices_estimate_tokens(p->scan.prompt_chars, server_bytes_out(p->conn), &r.prompt_tokens,
                               &r.completion_tokens);
        r.usage_estimated = true;
    }
    ledger_record_price(&r, p->cfg);
    proxy_continue_price(p, &r); /* after cuts: each attempt at its own deployment's price */
    ledger_record(p->env->ledger, &r);
}
