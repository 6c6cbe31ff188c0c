/*
 * fakeup — a scriptable misbehaving upstream for the integration tests.
 *
 *   fakeup [--host ADDR] [--port N] [--behavior STR] [--log FILE]
 *
 * A libuv HTTP/1.1 server on 127.0.0.1, or on another IPv4 address such as
 * 127.0.0.2 (several fakes on one port, as the addresses of one discovered
 * name), port 0 (the default) picking a free one, that answers like an
 * OpenAI-compatible provider having a good or a bad day. What it answers is
 * decided by the fakegen engine (src/sim/fakegen.h documents the behaviour
 * grammar), from, in order: the request body's
 * top-level "fake" field, an x-fake request header, --behavior. The first line
 * on stdout is "listening PORT".
 *
 * As a self-hosted engine (--engine, --slots: tests/fakes/fakeup_engine.h): a
 * bounded batch with a queue, GET /metrics in the engine's names, background
 * load, and a counted prefix cache.
 *
 * Control endpoints (not recorded, not counted):
 *   GET  /_fake/requests   the last 200 requests: [{method, path, headers, body}]
 *   GET  /_fake/stats      {"requests": N, "by_status": {"200": N, ...}, "open_connections": N}
 *   POST /_fake/reset      forgets requests and statistics, restarts the counters
 *   POST /_fake/behavior   the body (plain text) becomes the default behaviour
 *
 * Keep-alive is supported; pipelined requests are answered one after the
 * other. The directive "slowread" stops reading the socket for 2 s before the
 * answer starts. SIGTERM or SIGINT closes everything and exits 0.
 *
 * --log FILE appends one line per answered (counted) request, written at once:
 * "MS METHOD PATH STATUS REQUEST_ID BODY_BYTES", MS the monotonic clock in
 * milliseconds (the same clock in every fake on one machine), REQUEST_ID the
 * x-request-id header or "-" (path and id cut at 200 bytes, spaces as '_').
 * The benchmarks read it to tell which upstream saw which client request, when,
 * and in what order, beyond the last 200 that /_fake/requests keeps.
 */
#include <cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "base/buf.h"
#include "fakeup_engine.h"
#include "sim/fakegen.h"
#include "proto/http1.h"

#define FK_MAX_RECORDS 200
#define FK_MAX_RECORD_BODY (1u << 20)
#define FK_MAX_REQUEST (64u << 20)
#define FK_MAX_STATUSES 64
#define FK_MAX_BEHAVIOR 4096
/* Past this many bytes queued on a socket, stop producing until it drains. */
#define FK_WRITE_HIGH (1u << 20)
#define FK_TICK_BUDGET 64
#define FK_READ_BUF (64u * 1024)

/*
 *   READING --request--> RESPONDING --end: keep-alive--> READING
 *   RESPONDING --end: hang--> HUNG (reads and drops, until the peer goes)
 *   RESPONDING --end: close--> SHUTDOWN (queued bytes drain, then CLOSING)
 *   anything --end: reset, read error, EOF, signal--> CLOSING
 */
enum fk_state { FK_READING, FK_RESPONDING, FK_HUNG, FK_SHUTDOWN, FK_CLOSING };

struct fk_conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    struct fk_conn *next, *prev;
    enum fk_state state;
    int handles; /* open handles; freed when it drops to 0 */
    bool reading;
    bool continue_sent; /* "100 Continue" went out for the current request */
    bool waiting_drain; /* a due segment waits for the socket to drain */
    struct buf in;
    struct fakegen *gen;
    struct fakegen_seg pending;
    bool pending_end;
    uint32_t extra_ms;
    struct fke_slot slot; /* --engine / --slots: its place with the engine */
};

static struct {
    uv_loop_t *loop;
    uv_tcp_t listener;
    uv_signal_t sigterm, sigint;
    char *behavior;
    struct fakegen_counters counters;
    cJSON *records[FK_MAX_RECORDS];
    size_t rec_head, rec_count;
    unsigned long requests;
    struct {
        int status;
        unsigned long count;
    } by_status[FK_MAX_STATUSES];
    size_t n_status;
    unsigned open_connections;
    struct fk_conn *conns;
    bool stopping;
    FILE *log; /* --log, or NULL */
    char readbuf[FK_READ_BUF];
} fk;

static void fk_tick(uv_timer_t *t);
static void fk_process(struct fk_conn *c);

/* ---- connection lifetime ---- */

static void fk_handle_closed(uv_handle_t *h)
{
    struct fk_conn *c = h->data;
    if (--c->handles > 0) return;
    fakegen_free(c->gen);
    buf_free(&c->in);
    free(c);
}

static void fk_close(struct fk_conn *c, bool reset)
{
    if (c->state == FK_CLOSING) return;
    fke_release(&c->slot);
    c->state = FK_CLOSING;
    fk.open_connections--;
    if (c->prev)
        c->prev->next = c->next;
    else
        fk.conns = c->next;
    if (c->next) c->next->prev = c->prev;
    uv_close((uv_handle_t *)&c->timer, fk_handle_closed);
    if (reset && uv_tcp_close_reset(&c->tcp, fk_handle_closed) == 0) return;
    uv_close((uv_handle_t *)&c->tcp, fk_handle_closed);
}

static void fk_shutdown_cb(uv_shutdown_t *req, int status)
{
    struct fk_conn *c = req->data;
    free(req);
    fk_close(c, false);
}

/* Close after what is queued has been written. */
static void fk_close_graceful(struct fk_conn *c)
{
    uv_shutdown_t *req = malloc(sizeof *req);
    if (!req || uv_shutdown(req, (uv_stream_t *)&c->tcp, fk_shutdown_cb) != 0) {
        free(req);
        fk_close(c, false);
        return;
    }
    req->data = c;
    uv_timer_stop(&c->timer);
    c->state = FK_SHUTDOWN;
}

/* ---- writing ---- */

struct fk_write {
    uv_write_t req;
    struct fk_conn *conn;
    char data[];
};

static void fk_write_cb(uv_write_t *req, int status)
{
    struct fk_write *w = (struct fk_write *)req;
    struct fk_conn *c = w->conn;
    free(w);
    if (c->state == FK_CLOSING) return;
    if (status < 0) {
        fk_close(c, false);
        return;
    }
    if (c->waiting_drain &&
        uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) < FK_WRITE_HIGH / 4) {
        c->waiting_drain = false;
        uv_timer_start(&c->timer, fk_tick, 0, 0);
    }
}

static int fk_write(struct fk_conn *c, const char *data, size_t len)
{
    if (len == 0) return 0;
    struct fk_write *w = malloc(sizeof *w + len);
    if (!w) return -ENOMEM;
    memcpy(w->data, data, len);
    w->conn = c;
    uv_buf_t b = uv_buf_init(w->data, (unsigned)len);
    int rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, fk_write_cb);
    if (rc) free(w);
    return rc;
}

static void fk_respond(struct fk_conn *c, int status, const char *content_type, const char *body,
                       size_t len, bool close)
{
    struct buf b;
    buf_init(&b, 0);
    if (buf_printf(
            &b,
            "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nConnection: %s\r\n\r\n",
            status, http1_reason(status), content_type, len, close ? "close" : "keep-alive") == 0 &&
        buf_append(&b, body, len) == 0)
        fk_write(c, b.data, b.len);
    buf_free(&b);
    if (close) fk_close_graceful(c);
}

/* ---- bookkeeping ---- */

static void fk_count_status(int status)
{
    if (status <= 0) return;
    for (size_t i = 0; i < fk.n_status; i++) {
        if (fk.by_status[i].status == status) {
            fk.by_status[i].count++;
            return;
        }
    }
    if (fk.n_status < FK_MAX_STATUSES) {
        fk.by_status[fk.n_status].status = status;
        fk.by_status[fk.n_status].count = 1;
        fk.n_status++;
    }
}

static char *fk_strndup_lower(const char *p, size_t len)
{
    char *s = malloc(len + 1);
    if (!s) return NULL;
    for (size_t i = 0; i < len; i++)
        s[i] = (char)tolower((unsigned char)p[i]);
    s[len] = '\0';
    return s;
}

static void fk_record(const struct http1_request *req, const char *body, size_t body_len)
{
    cJSON *r = cJSON_CreateObject();
    cJSON *h = cJSON_CreateObject();
    if (!r || !h) {
        cJSON_Delete(r);
        cJSON_Delete(h);
        return;
    }
    char *method = strndup(req->method.p, req->method.len);
    char *path = strndup(req->target.p, req->target.len);
    cJSON_AddStringToObject(r, "method", method ? method : "");
    cJSON_AddStringToObject(r, "path", path ? path : "");
    free(method);
    free(path);
    for (size_t i = 0; i < req->head.nheaders; i++) {
        const struct http1_header *hd = &req->head.headers[i];
        char *name = fk_strndup_lower(hd->name.p, hd->name.len);
        char *value = strndup(hd->value.p, hd->value.len);
        if (name && value) {
            /* A repeated header keeps its values, comma-joined, as HTTP allows. */
            cJSON *old = cJSON_GetObjectItemCaseSensitive(h, name);
            if (old && cJSON_IsString(old)) {
                struct buf j;
                buf_init(&j, 0);
                if (buf_printf(&j, "%s, %s", old->valuestring, value) == 0)
                    cJSON_ReplaceItemInObjectCaseSensitive(h, name, cJSON_CreateString(j.data));
                buf_free(&j);
            } else {
                cJSON_AddStringToObject(h, name, value);
            }
        }
        free(name);
        free(value);
    }
    cJSON_AddItemToObject(r, "headers", h);
    size_t keep = body_len > FK_MAX_RECORD_BODY ? FK_MAX_RECORD_BODY : body_len;
    char *b = strndup(body ? body : "", keep);
    cJSON_AddStringToObject(r, "body", b ? b : "");
    free(b);
    if (keep < body_len) cJSON_AddTrueToObject(r, "body_truncated");

    size_t slot = (fk.rec_head + fk.rec_count) % FK_MAX_RECORDS;
    if (fk.rec_count == FK_MAX_RECORDS) {
        cJSON_Delete(fk.records[fk.rec_head]);
        fk.rec_head = (fk.rec_head + 1) % FK_MAX_RECORDS;
        fk.rec_count--;
    }
    fk.records[slot] = r;
    fk.rec_count++;
}

static void fk_reset_state(void)
{
    for (size_t i = 0; i < fk.rec_count; i++)
        cJSON_Delete(fk.records[(fk.rec_head + i) % FK_MAX_RECORDS]);
    fk.rec_head = fk.rec_count = 0;
    fk.requests = 0;
    fk.n_status = 0;
    fakegen_counters_reset(&fk.counters);
    fke_reset();
}

static void fk_respond_json(struct fk_conn *c, int status, cJSON *j, bool close)
{
    char *text = j ? cJSON_PrintUnformatted(j) : NULL;
    if (text)
        fk_respond(c, status, "application/json", text, strlen(text), close);
    else
        fk_respond(c, 500, "text/plain", "out of memory\n", 14, true);
    free(text);
    cJSON_Delete(j);
}

/* The /_fake/ control endpoints. */
static void fk_control(struct fk_conn *c, const char *method, const char *path, const char *body,
                       size_t body_len, bool close)
{
    if (strcmp(method, "GET") == 0 && strcmp(path, "/_fake/requests") == 0) {
        cJSON *arr = cJSON_CreateArray();
        for (size_t i = 0; arr && i < fk.rec_count; i++)
            cJSON_AddItemReferenceToArray(arr, fk.records[(fk.rec_head + i) % FK_MAX_RECORDS]);
        fk_respond_json(c, 200, arr, close);
    } else if (strcmp(method, "GET") == 0 && strcmp(path, "/_fake/stats") == 0) {
        cJSON *j = cJSON_CreateObject();
        cJSON *bs = cJSON_CreateObject();
        cJSON_AddNumberToObject(j, "requests", (double)fk.requests);
        for (size_t i = 0; bs && i < fk.n_status; i++) {
            char key[16];
            snprintf(key, sizeof key, "%d", fk.by_status[i].status);
            cJSON_AddNumberToObject(bs, key, (double)fk.by_status[i].count);
        }
        cJSON_AddItemToObject(j, "by_status", bs);
        cJSON_AddNumberToObject(j, "open_connections", fk.open_connections);
        fke_stats(j);
        fk_respond_json(c, 200, j, close);
    } else if (strcmp(method, "POST") == 0 && strcmp(path, "/_fake/reset") == 0) {
        fk_reset_state();
        fk_respond(c, 200, "application/json", "{\"ok\":true}", 11, close);
    } else if (strcmp(method, "POST") == 0 && strcmp(path, "/_fake/behavior") == 0) {
        char *b = body_len <= FK_MAX_BEHAVIOR ? strndup(body, body_len) : NULL;
        struct fakegen_opts o;
        char err[160] = "behaviour too long";
        if (b && fakegen_pick(b, 0, &o, err, sizeof err) == 0) {
            free(fk.behavior);
            fk.behavior = b;
            fk_respond(c, 200, "application/json", "{\"ok\":true}", 11, close);
        } else {
            free(b);
            cJSON *j = cJSON_CreateObject();
            cJSON_AddStringToObject(j, "error", err);
            fk_respond_json(c, 400, j, close);
        }
    } else {
        fk_respond(c, 404, "application/json", "{\"error\":\"no such control endpoint\"}", 36,
                   close);
    }
}

/* ---- answering ---- */

static void fk_start_reading(struct fk_conn *c);

static void fk_end(struct fk_conn *c, enum fakegen_end end)
{
    fke_release(&c->slot);
    fakegen_free(c->gen);
    c->gen = NULL;
    switch (end) {
    case FAKEGEN_END_KEEP_ALIVE:
        c->state = FK_READING;
        fk_start_reading(c);
        fk_process(c); /* a request that arrived during the answer */
        return;
    case FAKEGEN_END_CLOSE:
        fk_close_graceful(c);
        return;
    case FAKEGEN_END_RESET:
        fk_close(c, true);
        return;
    case FAKEGEN_END_HANG:
        c->state = FK_HUNG; /* reads go on, so a client that gives up is noticed */
        fk_start_reading(c);
        return;
    }
}

static void fk_pull(struct fk_conn *c, uint32_t extra_ms)
{
    c->pending_end = fakegen_next(c->gen, &c->pending) == 0;
    if (c->pending_end) fke_release(&c->slot); /* the last byte is out: the slot is free */
    uint64_t delay = (uint64_t)c->pending.delay_ms + extra_ms;
    uv_timer_start(&c->timer, fk_tick, delay > UINT32_MAX ? UINT32_MAX : delay, 0);
}

static void fk_tick(uv_timer_t *t)
{
    struct fk_conn *c = t->data;
    if (c->state != FK_RESPONDING) return;
    for (int budget = FK_TICK_BUDGET; budget > 0; budget--) {
        if (c->pending_end) {
            fk_end(c, c->pending.end);
            return;
        }
        if (uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) > FK_WRITE_HIGH) {
            c->waiting_drain = true; /* fk_write_cb re-arms */
            return;
        }
        if (fk_write(c, c->pending.data, c->pending.len)) {
            fk_close(c, false);
            return;
        }
        c->pending_end = fakegen_next(c->gen, &c->pending) == 0;
        if (c->pending_end) fke_release(&c->slot); /* the last byte is out: the slot is free */
        if (c->pending.delay_ms) {
            uv_timer_start(&c->timer, fk_tick, c->pending.delay_ms, 0);
            return;
        }
    }
    uv_timer_start(&c->timer, fk_tick, 0, 0);
}

static void fk_slowread_over(uv_timer_t *t)
{
    struct fk_conn *c = t->data;
    if (c->state != FK_RESPONDING) return;
    fk_start_reading(c);
    fk_pull(c, 0);
}

/* A header value or path for a log line: at most 200 bytes, no spaces or control bytes. */
static void fk_log_word(char *out, size_t cap, const char *p, size_t len)
{
    size_t n = len < cap - 1 ? len : cap - 1;
    for (size_t i = 0; i < n; i++)
        out[i] = (unsigned char)p[i] <= ' ' ? '_' : p[i];
    out[n] = '\0';
    if (n == 0 && cap > 1) snprintf(out, cap, "-");
}

static void fk_log(const struct http1_request *req, int status, size_t body_len)
{
    if (!fk.log) return;
    char method[16], path[201], id[201];
    fk_log_word(method, sizeof method, req->method.p, req->method.len);
    fk_log_word(path, sizeof path, req->target.p, req->target.len);
    const struct http1_str *rid = http1_find_header(&req->head, "x-request-id");
    fk_log_word(id, sizeof id, rid ? rid->p : "", rid ? rid->len : 0);
    fprintf(fk.log, "%llu %s %s %d %s %zu\n", (unsigned long long)(uv_hrtime() / 1000000), method,
            path, status, id, body_len);
    fflush(fk.log); /* a reader polls the file while the fake runs */
}

static void fk_begin(struct fk_conn *c);

static void fk_slot_granted(void *owner)
{
    fk_begin(owner);
}

static void fk_answer(struct fk_conn *c, const struct http1_request *req, const char *body,
                      size_t body_len)
{
    char behavior[FK_MAX_BEHAVIOR + 1];
    const char *b = fk.behavior;
    const struct http1_str *xf = http1_find_header(&req->head, "x-fake");
    if (xf && xf->len <= FK_MAX_BEHAVIOR) {
        memcpy(behavior, xf->p, xf->len);
        behavior[xf->len] = '\0';
        b = behavior;
    }
    /* What a provider that quotes the key it was sent would quote (echo_auth). */
    char creds[512];
    size_t creds_len = 0;
    for (size_t i = 0; i < req->head.nheaders; i++) {
        const struct http1_header *hd = &req->head.headers[i];
        if (!(hd->name.len == 13 && strncasecmp(hd->name.p, "authorization", 13) == 0) &&
            !(hd->name.len >= 3 && strncasecmp(hd->name.p + hd->name.len - 3, "key", 3) == 0))
            continue;
        int w = snprintf(creds + creds_len, sizeof creds - creds_len, "%s%.*s", creds_len ? " " : "",
                         (int)hd->value.len, hd->value.p);
        if (w < 0 || (size_t)w >= sizeof creds - creds_len)
            break;
        creds_len += (size_t)w;
    }
    struct fakegen_request fr = {
        .credentials = creds,
        .credentials_len = creds_len,
        .method = req->method.p,
        .method_len = req->method.len,
        .path = req->target.p,
        .path_len = req->target.len,
        .body = body,
        .body_len = body_len,
        .client_close = req->head.conn_close,
    };
    for (struct fk_conn *o = fk.conns; o; o = o->next)
        if (o != c && o->state == FK_RESPONDING)
            fr.inflight++; /* max_inflight: a provider's concurrency limit */
    if (fakegen_new(&fr, b, &fk.counters, &c->gen)) {
        fk_respond(c, 500, "text/plain", "out of memory\n", 14, true);
        return;
    }
    fk_count_status(fakegen_status(c->gen));
    fk_log(req, fakegen_status(c->gen), body_len);
    c->state = FK_RESPONDING;
    fke_observe(body, body_len);
    if (fke_admit(&c->slot, c)) fk_begin(c); /* else the engine's queue calls it */
}

/* The answer starts (at once, or when the engine gives the request a slot). */
static void fk_begin(struct fk_conn *c)
{
    if (c->state != FK_RESPONDING) return;
    uint32_t slow = fakegen_get_opts(c->gen)->slowread_ms;
    if (slow) {
        if (c->reading) {
            uv_read_stop((uv_stream_t *)&c->tcp);
            c->reading = false;
        }
        uv_timer_start(&c->timer, fk_slowread_over, slow, 0);
        return;
    }
    fk_pull(c, 0);
}

/* Handles one buffered request if it is complete; returns true if it did. */
static bool fk_process_one(struct fk_conn *c)
{
    struct http1_request req;
    int head = http1_parse_request(c->in.data, c->in.len, &req);
    if (head == HTTP1_NEED_MORE) return false;
    if (head < 0) {
        fk_respond(c, 400, "text/plain", "bad request\n", 12, true);
        return false;
    }
    if (req.head.chunked) {
        fk_respond(c, 411, "text/plain", "send a Content-Length\n", 22, true);
        return false;
    }
    uint64_t body_len = req.head.has_content_length ? req.head.content_length : 0;
    if (body_len > FK_MAX_REQUEST - (size_t)head) {
        fk_respond(c, 413, "text/plain", "too large\n", 10, true);
        return false;
    }
    if (c->in.len - (size_t)head < body_len) {
        if (req.head.expect_continue && !c->continue_sent) {
            c->continue_sent = true;
            fk_write(c, "HTTP/1.1 100 Continue\r\n\r\n", 25);
        }
        return false;
    }
    c->continue_sent = false;
    const char *body = c->in.data + head;
    char method[16], path[256];
    snprintf(method, sizeof method, "%.*s", (int)(req.method.len < 15 ? req.method.len : 15),
             req.method.p);
    snprintf(path, sizeof path, "%.*s", (int)(req.target.len < 255 ? req.target.len : 255),
             req.target.p);
    int estatus;
    const char *etype;
    char *ebody = NULL;
    if (fke_handle(method, path, body, (size_t)body_len, &estatus, &etype, &ebody)) {
        if (ebody)
            fk_respond(c, estatus, etype, ebody, strlen(ebody), req.head.conn_close);
        else
            fk_respond(c, 500, "text/plain", "out of memory\n", 14, true);
        free(ebody);
    } else if (strncmp(path, "/_fake/", 7) == 0) {
        fk_control(c, method, path, body, (size_t)body_len, req.head.conn_close);
    } else {
        fk.requests++;
        fk_record(&req, body, (size_t)body_len);
        fk_answer(c, &req, body, (size_t)body_len);
    }
    /* Both paths copied what they need out of the request. */
    buf_consume(&c->in, (size_t)head + (size_t)body_len);
    return true;
}

static void fk_process(struct fk_conn *c)
{
    while (c->state == FK_READING && c->in.len > 0 && fk_process_one(c))
        ;
}

/* ---- reading ---- */

static void fk_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    /* One loop thread, and each read is consumed before the next alloc. */
    *b = uv_buf_init(fk.readbuf, sizeof fk.readbuf);
}

static void fk_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
    struct fk_conn *c = s->data;
    if (nread == 0 || c->state == FK_CLOSING) return;
    if (nread < 0) {
        fk_close(c, false);
        return;
    }
    if (c->state == FK_HUNG || c->state == FK_SHUTDOWN)
        return; /* a hung peer swallows whatever comes */
    if (buf_append(&c->in, b->base, (size_t)nread)) {
        fk_respond(c, 413, "text/plain", "too large\n", 10, true);
        return;
    }
    fk_process(c);
}

static void fk_start_reading(struct fk_conn *c)
{
    if (!c->reading && uv_read_start((uv_stream_t *)&c->tcp, fk_alloc, fk_read) == 0)
        c->reading = true;
}

static void fk_on_connection(uv_stream_t *server, int status)
{
    if (status < 0 || fk.stopping) return;
    struct fk_conn *c = calloc(1, sizeof *c);
    if (!c) return;
    uv_tcp_init(fk.loop, &c->tcp);
    uv_timer_init(fk.loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    c->handles = 2;
    buf_init(&c->in, FK_MAX_REQUEST);
    c->next = fk.conns;
    if (fk.conns) fk.conns->prev = c;
    fk.conns = c;
    fk.open_connections++;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        fk_close(c, false);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    fk_start_reading(c);
}

/* ---- process ---- */

static void fk_stop(uv_signal_t *sig, int signum)
{
    if (fk.stopping) return;
    fk.stopping = true;
    uv_close((uv_handle_t *)&fk.listener, NULL);
    uv_close((uv_handle_t *)&fk.sigterm, NULL);
    uv_close((uv_handle_t *)&fk.sigint, NULL);
    fke_stop();
    while (fk.conns)
        fk_close(fk.conns, false);
}

static void fk_usage(FILE *f)
{
    fprintf(f, "usage: fakeup [--host ADDR] [--port N] [--behavior STR] [--log FILE]\n"
               "  --host ADDR     the IPv4 address to listen on (default 127.0.0.1)\n"
               "  --port N        listen on ADDR:N (0, the default: any free port)\n"
               "  --behavior STR  the default behaviour (see src/sim/fakegen.h), e.g. "
               "\"20%%status=503|ok\"\n"
               "  --log FILE      append a line per request: ms method path status "
               "x-request-id body-bytes\n"
               "  --engine E      vllm, sglang, llama.cpp or tgi: serve GET /metrics in its names\n"
               "  --slots N       at most N answers at once; more wait in a FIFO queue "
               "(num_requests_waiting)\n"
               "  --served-model M  the model_name label of vLLM's and SGLang's series\n"
               "  --background N  N phantom clients keep the engine busy, each holding a slot "
               "for\n"
               "  --background-ms MS  (default 200) and queueing again at once\n"
               "  (POST /_fake/background N, POST /_fake/metrics CODE; see fakeup_engine.h)\n");
}

int main(int argc, char **argv)
{
    long port = 0;
    const char *behavior = "";
    const char *log_path = NULL;
    const char *host = "127.0.0.1";
    for (int i = 1; i < argc; i++) {
        int engine_opt = fke_option(argc, argv, &i);
        if (engine_opt < 0) return 2;
        if (engine_opt > 0) continue;
        if (strcmp(argv[i], "--host") == 0 && i + 1 < argc) {
            host = argv[++i];
        } else if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
            char *end;
            port = strtol(argv[++i], &end, 10);
            if (*end || port < 0 || port > 65535) {
                fprintf(stderr, "fakeup: bad --port '%s'\n", argv[i]);
                return 2;
            }
        } else if ((strcmp(argv[i], "--behavior") == 0 || strcmp(argv[i], "--behaviour") == 0) &&
                   i + 1 < argc) {
            behavior = argv[++i];
        } else if (strcmp(argv[i], "--log") == 0 && i + 1 < argc) {
            log_path = argv[++i];
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fk_usage(stdout);
            return 0;
        } else {
            fk_usage(stderr);
            return 2;
        }
    }
    struct fakegen_opts o;
    char err[160];
    if (fakegen_pick(behavior, 0, &o, err, sizeof err)) {
        fprintf(stderr, "fakeup: --behavior: %s\n", err);
        return 2;
    }
    if (log_path && !(fk.log = fopen(log_path, "a"))) {
        fprintf(stderr, "fakeup: --log %s: %s\n", log_path, strerror(errno));
        return 1;
    }
    fk.behavior = strdup(behavior);
    signal(SIGPIPE, SIG_IGN);

    fk.loop = uv_default_loop();
    struct sockaddr_in addr;
    if (uv_ip4_addr(host, (int)port, &addr) != 0) {
        fprintf(stderr, "fakeup: bad --host '%s'\n", host);
        return 2;
    }
    uv_tcp_init(fk.loop, &fk.listener);
    int rc = uv_tcp_bind(&fk.listener, (const struct sockaddr *)&addr, 0);
    /* a gateway opening thousands of upstream connections at once (bench/memory.sh) must not
       overflow the accept queue: dropped SYNs come back 1 s, 3 s, 7 s later */
    if (!rc) rc = uv_listen((uv_stream_t *)&fk.listener, 4096, fk_on_connection);
    if (rc) {
        fprintf(stderr, "fakeup: listen on %s:%ld: %s\n", host, port, uv_strerror(rc));
        return 1;
    }
    struct sockaddr_storage bound;
    int len = sizeof bound;
    uv_tcp_getsockname(&fk.listener, (struct sockaddr *)&bound, &len);
    printf("listening %d\n", ntohs(((struct sockaddr_in *)&bound)->sin_port));
    fflush(stdout);

    if (fke_start(fk.loop, fk_slot_granted)) {
        fprintf(stderr, "fakeup: out of memory\n");
        return 1;
    }
    uv_signal_init(fk.loop, &fk.sigterm);
    uv_signal_start(&fk.sigterm, fk_stop, SIGTERM);
    uv_signal_init(fk.loop, &fk.sigint);
    uv_signal_start(&fk.sigint, fk_stop, SIGINT);

    uv_run(fk.loop, UV_RUN_DEFAULT);
    fk_reset_state();
    free(fk.behavior);
    if (fk.log) fclose(fk.log);
    uv_loop_close(fk.loop);
    return 0;
}
