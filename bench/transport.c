/*
 * transport — the upstream client choice of DESIGN.md, measured: libcurl's
 * multi-socket API driven by libuv (curl_multi_socket_action with uv_poll and
 * uv_timer, the pattern of curl's own multi-uv example) against unbusy's own
 * HTTP/1.1 client (src/net/transport.c + src/net/uphttp.c). Both send the same
 * streaming POST to a fake upstream on loopback and reuse keep-alive
 * connections; both run on one libuv loop in this process.
 *
 *   transport --port PORT [--requests N] [--concurrency C] [--duration S]
 *             [--client own|curl|both]
 *
 * Phase "sequential": N requests one after the other; each one's latency runs
 * from the call that starts it to the end of its body (p50/p99).
 * Phase "concurrent": C requests always in flight for S seconds; requests/s
 * and this process's CPU time per request (getrusage: the client's own cost,
 * the fake's is not in it).
 *
 * Every answer is checked (status 200, body ends with "data: [DONE]");
 * anything else counts as an error. bench/run.sh reads the RESULT lines.
 */
#include <curl/curl.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <uv.h>

#include "config/config.h"
#include "net/transport.h"
#include "net/uphttp.h"

#define BENCH_MAX_CONCURRENCY 1024
#define BENCH_MAX_REQUESTS 1000000
#define BENCH_WARMUP_REQUESTS 200
#define BENCH_TAIL 16

static const char bench_body[] =
    "{\"model\":\"bench\",\"stream\":true,\"stream_options\":{\"include_usage\":true},"
    "\"messages\":[{\"role\":\"user\",\"content\":\"Say hello.\"}]}";
static const char bench_done_tail[] = "data: [DONE]\n\n";

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t cpu_us(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000u +
           (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

/* ---- the driver shared by both clients ---- */

struct bench;

struct bench_slot {
    struct bench *b;
    uint64_t t0;
    int status;
    size_t bytes;
    char tail[BENCH_TAIL]; /* the last bytes of the body, to check the end */
    void *client;          /* the client's per-slot state */
};

struct bench_client {
    const char *name;
    int (*init)(struct bench *b);
    void (*start)(struct bench_slot *s); /* calls bench_finish exactly once, from the loop */
    void (*cleanup)(struct bench *b);
};

struct bench {
    uv_loop_t loop;
    const struct bench_client *client;
    void *client_state;
    struct bench_slot slots[BENCH_MAX_CONCURRENCY];
    size_t nslots;
    uint64_t *lat_ns; /* bounded: one per sequential request */
    size_t nlat, caplat;
    bool record;
    size_t to_start;      /* requests left to start (count-bounded phases) */
    uint64_t deadline_ns; /* 0: count-bounded */
    size_t inflight;
    uint64_t completed, errors;
};

static void slot_reset(struct bench_slot *s)
{
    s->status = 0;
    s->bytes = 0;
    memset(s->tail, 0, sizeof s->tail);
}

static void slot_body(struct bench_slot *s, const char *data, size_t len)
{
    s->bytes += len;
    if (len >= BENCH_TAIL) {
        memcpy(s->tail, data + len - BENCH_TAIL, BENCH_TAIL);
    } else {
        memmove(s->tail, s->tail + len, BENCH_TAIL - len);
        memcpy(s->tail + BENCH_TAIL - len, data, len);
    }
}

static bool slot_ok(const struct bench_slot *s)
{
    size_t n = sizeof bench_done_tail - 1;
    return s->status == 200 && memcmp(s->tail + BENCH_TAIL - n, bench_done_tail, n) == 0;
}

static bool bench_more(struct bench *b)
{
    if (b->deadline_ns)
        return now_ns() < b->deadline_ns;
    if (b->to_start == 0)
        return false;
    b->to_start--;
    return true;
}

static void bench_launch(struct bench_slot *s)
{
    slot_reset(s);
    s->t0 = now_ns();
    s->b->client->start(s);
}

/* Called by a client when a request ended (ok or not); starts the next one in this slot. */
static void bench_finish(struct bench_slot *s, bool ok)
{
    struct bench *b = s->b;
    if (ok) {
        b->completed++;
        if (b->record && b->nlat < b->caplat)
            b->lat_ns[b->nlat++] = now_ns() - s->t0;
    } else {
        b->errors++;
    }
    if (bench_more(b))
        bench_launch(s);
    else if (--b->inflight == 0)
        uv_stop(&b->loop);
}

/* Runs one phase: `count` requests (deadline_s 0) or until deadline_s has passed. */
static void bench_phase(struct bench *b, size_t concurrency, size_t count, double deadline_s, bool record)
{
    b->nlat = 0;
    b->completed = b->errors = 0;
    b->record = record;
    b->deadline_ns = deadline_s > 0 ? now_ns() + (uint64_t)(deadline_s * 1e9) : 0;
    b->to_start = count;
    b->nslots = concurrency;
    b->inflight = 0;
    for (size_t i = 0; i < concurrency; i++) {
        if (!bench_more(b))
            break;
        b->inflight++;
        bench_launch(&b->slots[i]);
    }
    if (b->inflight > 0)
        uv_run(&b->loop, UV_RUN_DEFAULT);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static double pct_us(const uint64_t *sorted, size_t n, double p)
{
    if (n == 0)
        return 0;
    size_t i = (size_t)(p / 100.0 * (double)(n - 1) + 0.5);
    return (double)sorted[i] / 1000.0;
}

/* ---- unbusy's own client ---- */

struct own_state {
    struct transport_pool *pool;
    struct cfg_provider provider;
    char *request;
    size_t request_len;
};

static void own_on_head(void *ud, const struct http1_response *resp)
{
    struct bench_slot *s = ud;
    s->status = resp->status;
}

static void own_on_body(void *ud, const char *data, size_t len)
{
    slot_body(ud, data, len);
}

static void own_end(struct bench_slot *s, bool ok)
{
    uphttp_cancel(s->client); /* allowed from inside the callback; freed after it */
    s->client = NULL;
    bench_finish(s, ok);
}

static void own_on_end(void *ud)
{
    struct bench_slot *s = ud;
    own_end(s, slot_ok(s));
}

static void own_on_fail(void *ud, enum uphttp_fail fail, enum transport_err terr)
{
    own_end(ud, false);
}

static const struct uphttp_events own_events = {
    .on_head = own_on_head,
    .on_body = own_on_body,
    .on_end = own_on_end,
    .on_fail = own_on_fail,
};

static void own_start(struct bench_slot *s)
{
    struct own_state *st = s->b->client_state;
    char *req = malloc(st->request_len);
    if (req)
        memcpy(req, st->request, st->request_len);
    s->client = req ? uphttp_start(st->pool, &st->provider, 0, req, st->request_len, &own_events, s)
                    : NULL;
    if (!s->client) {
        fprintf(stderr, "transport: uphttp_start failed\n");
        exit(1);
    }
}

static uint16_t bench_port;

static int own_init(struct bench *b)
{
    struct own_state *st = calloc(1, sizeof *st);
    if (!st)
        return -ENOMEM;
    st->pool = transport_pool_new(&b->loop);
    st->provider.name = "fake";
    st->provider.kind = CFG_PROVIDER_OPENAI;
    st->provider.host = "127.0.0.1";
    st->provider.port = bench_port;
    st->provider.base_path = "/v1";
    st->provider.stream_upstream = true;
    st->provider.max_idle_conns = BENCH_MAX_CONCURRENCY;
    st->provider.idle_conn_timeout_ms = 60000;
    char head[512];
    int n = snprintf(head, sizeof head,
                     "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:%u\r\n"
                     "Content-Type: application/json\r\nAccept: text/event-stream\r\n"
                     "Content-Length: %zu\r\n\r\n",
                     (unsigned)bench_port, sizeof bench_body - 1);
    st->request_len = (size_t)n + sizeof bench_body - 1;
    st->request = malloc(st->request_len);
    if (!st->pool || !st->request)
        return -ENOMEM;
    memcpy(st->request, head, (size_t)n);
    memcpy(st->request + n, bench_body, sizeof bench_body - 1);
    b->client_state = st;
    return 0;
}

static void own_pool_closed(void *ud)
{
    (void)ud;
}

static void own_cleanup(struct bench *b)
{
    struct own_state *st = b->client_state;
    transport_pool_close(st->pool, own_pool_closed, NULL);
    uv_run(&b->loop, UV_RUN_DEFAULT);
    free(st->request);
    free(st);
}

static const struct bench_client own_client = {"own", own_init, own_start, own_cleanup};

/* ---- libcurl multi-socket on libuv ---- */

struct curl_state {
    struct bench *b;
    CURLM *multi;
    uv_timer_t timer;
    struct curl_slist *headers;
    char url[128];
    CURL *easy[BENCH_MAX_CONCURRENCY];
};

struct curl_sock {
    uv_poll_t poll;
    curl_socket_t fd;
    struct curl_state *cs;
};

static void curl_check_done(struct curl_state *cs)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(cs->multi, &left))) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        CURL *e = msg->easy_handle;
        CURLcode res = msg->data.result;
        struct bench_slot *s = NULL;
        curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&s);
        long code = 0;
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
        s->status = (int)code;
        curl_multi_remove_handle(cs->multi, e);
        bench_finish(s, res == CURLE_OK && slot_ok(s));
    }
}

static void curl_on_poll(uv_poll_t *h, int status, int events)
{
    struct curl_sock *cx = h->data;
    int flags = 0;
    if (status < 0)
        flags = CURL_CSELECT_ERR;
    if (events & UV_READABLE)
        flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE)
        flags |= CURL_CSELECT_OUT;
    int running;
    curl_multi_socket_action(cx->cs->multi, cx->fd, flags, &running);
    curl_check_done(cx->cs);
}

static void curl_on_uv_timer(uv_timer_t *t)
{
    struct curl_state *cs = t->data;
    int running;
    curl_multi_socket_action(cs->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    curl_check_done(cs);
}

/* CURLMOPT_TIMERFUNCTION: 0 means "as soon as possible" — a 0 ms uv timer
   fires on the next loop iteration (curl's example rounds it up to 1 ms,
   which would add a millisecond to every request here). */
static int curl_on_timer(CURLM *multi, long timeout_ms, void *userp)
{
    struct curl_state *cs = userp;
    if (timeout_ms < 0)
        uv_timer_stop(&cs->timer);
    else
        uv_timer_start(&cs->timer, curl_on_uv_timer, (uint64_t)timeout_ms, 0);
    return 0;
}

static void curl_sock_closed(uv_handle_t *h)
{
    free(h->data);
}

static int curl_on_socket(CURL *easy, curl_socket_t fd, int action, void *userp, void *socketp)
{
    struct curl_state *cs = userp;
    struct curl_sock *cx = socketp;
    if (action == CURL_POLL_REMOVE) {
        if (cx) {
            uv_poll_stop(&cx->poll);
            uv_close((uv_handle_t *)&cx->poll, curl_sock_closed);
            curl_multi_assign(cs->multi, fd, NULL);
        }
        return 0;
    }
    if (!cx) {
        cx = calloc(1, sizeof *cx);
        if (!cx || uv_poll_init_socket(&cs->b->loop, &cx->poll, fd) != 0) {
            free(cx);
            return -1;
        }
        cx->fd = fd;
        cx->cs = cs;
        cx->poll.data = cx;
        curl_multi_assign(cs->multi, fd, cx);
    }
    int events = 0;
    if (action == CURL_POLL_IN || action == CURL_POLL_INOUT)
        events |= UV_READABLE;
    if (action == CURL_POLL_OUT || action == CURL_POLL_INOUT)
        events |= UV_WRITABLE;
    uv_poll_start(&cx->poll, events, curl_on_poll);
    return 0;
}

static size_t curl_on_write(char *data, size_t size, size_t nmemb, void *ud)
{
    slot_body(ud, data, size * nmemb);
    return size * nmemb;
}

static int curl_init(struct bench *b)
{
    struct curl_state *cs = calloc(1, sizeof *cs);
    if (!cs)
        return -ENOMEM;
    cs->b = b;
    cs->multi = curl_multi_init();
    if (!cs->multi)
        return -ENOMEM;
    curl_multi_setopt(cs->multi, CURLMOPT_SOCKETFUNCTION, curl_on_socket);
    curl_multi_setopt(cs->multi, CURLMOPT_SOCKETDATA, cs);
    curl_multi_setopt(cs->multi, CURLMOPT_TIMERFUNCTION, curl_on_timer);
    curl_multi_setopt(cs->multi, CURLMOPT_TIMERDATA, cs);
    curl_multi_setopt(cs->multi, CURLMOPT_MAXCONNECTS, (long)BENCH_MAX_CONCURRENCY);
    uv_timer_init(&b->loop, &cs->timer);
    cs->timer.data = cs;
    cs->headers = curl_slist_append(NULL, "Content-Type: application/json");
    cs->headers = curl_slist_append(cs->headers, "Accept: text/event-stream");
    cs->headers = curl_slist_append(cs->headers, "Expect:");
    snprintf(cs->url, sizeof cs->url, "http://127.0.0.1:%u/v1/chat/completions", (unsigned)bench_port);
    b->client_state = cs;
    return 0;
}

/* One easy handle per slot, kept between requests (the usual way to reuse
   its buffers); connections live in the multi handle's cache. */
static void curl_start(struct bench_slot *s)
{
    struct curl_state *cs = s->b->client_state;
    size_t i = (size_t)(s - s->b->slots);
    CURL *e = cs->easy[i];
    if (!e) {
        e = cs->easy[i] = curl_easy_init();
        if (!e) {
            fprintf(stderr, "transport: curl_easy_init failed\n");
            exit(1);
        }
        curl_easy_setopt(e, CURLOPT_URL, cs->url);
        curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, cs->headers);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, bench_body);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)(sizeof bench_body - 1));
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, curl_on_write);
        curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(e, CURLOPT_PRIVATE, s);
        curl_easy_setopt(e, CURLOPT_WRITEDATA, s);
    }
    if (curl_multi_add_handle(cs->multi, e) != CURLM_OK) {
        fprintf(stderr, "transport: curl_multi_add_handle failed\n");
        exit(1);
    }
}

/* Whatever curl did not report removed before curl_multi_cleanup closed it. */
static void curl_close_left(uv_handle_t *h, void *arg)
{
    if (uv_is_closing(h))
        return;
    uv_close(h, h->type == UV_POLL ? curl_sock_closed : NULL);
}

static void curl_cleanup(struct bench *b)
{
    struct curl_state *cs = b->client_state;
    for (size_t i = 0; i < BENCH_MAX_CONCURRENCY; i++)
        if (cs->easy[i]) {
            curl_multi_remove_handle(cs->multi, cs->easy[i]);
            curl_easy_cleanup(cs->easy[i]);
        }
    curl_multi_cleanup(cs->multi);
    uv_walk(&b->loop, curl_close_left, NULL);
    uv_run(&b->loop, UV_RUN_DEFAULT);
    curl_slist_free_all(cs->headers);
    free(cs);
}

static const struct bench_client curl_client = {"curl", curl_init, curl_start, curl_cleanup};

/* ---- main ---- */

struct bench_opts {
    size_t requests, concurrency;
    double duration_s;
};

static int run_client(const struct bench_client *c, const struct bench_opts *o)
{
    static struct bench b; /* large (slots); one run at a time */
    memset(&b, 0, sizeof b);
    b.client = c;
    for (size_t i = 0; i < BENCH_MAX_CONCURRENCY; i++)
        b.slots[i].b = &b;
    b.caplat = o->requests;
    b.lat_ns = malloc(b.caplat * sizeof *b.lat_ns);
    if (!b.lat_ns || uv_loop_init(&b.loop) != 0 || c->init(&b) < 0) {
        fprintf(stderr, "transport: %s: init failed\n", c->name);
        return -1;
    }

    /* Warm-up: opens the keep-alive connections the concurrent phase uses. */
    bench_phase(&b, o->concurrency, BENCH_WARMUP_REQUESTS, 0, false);
    uint64_t warm_errors = b.errors;

    bench_phase(&b, 1, o->requests, 0, true);
    uint64_t seq_errors = b.errors;
    qsort(b.lat_ns, b.nlat, sizeof *b.lat_ns, cmp_u64);
    double p50 = pct_us(b.lat_ns, b.nlat, 50), p99 = pct_us(b.lat_ns, b.nlat, 99);
    size_t nseq = b.nlat;

    uint64_t cpu0 = cpu_us(), t0 = now_ns();
    bench_phase(&b, o->concurrency, 0, o->duration_s, false);
    double elapsed = (double)(now_ns() - t0) / 1e9;
    uint64_t cpu = cpu_us() - cpu0;
    double rps = (double)b.completed / elapsed;
    double cpu_per_req = b.completed ? (double)cpu / (double)b.completed : 0;

    printf("RESULT client=%s seq_requests=%zu seq_p50_us=%.1f seq_p99_us=%.1f conc=%zu conc_requests=%llu "
           "rps=%.0f cpu_us_per_req=%.2f errors=%llu\n",
           c->name, nseq, p50, p99, o->concurrency, (unsigned long long)b.completed, rps, cpu_per_req,
           (unsigned long long)(warm_errors + seq_errors + b.errors));
    fflush(stdout);

    c->cleanup(&b);
    uv_loop_close(&b.loop);
    free(b.lat_ns);
    return 0;
}

static void usage(void)
{
    fprintf(stderr, "usage: transport --port PORT [--requests N] [--concurrency C] [--duration S] "
                    "[--client own|curl|both]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    struct bench_opts o = {.requests = 10000, .concurrency = 64, .duration_s = 10};
    const char *which = "both";
    long port = 0;
    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc)
            usage();
        const char *v = argv[++i];
        if (strcmp(argv[i - 1], "--port") == 0)
            port = strtol(v, NULL, 10);
        else if (strcmp(argv[i - 1], "--requests") == 0)
            o.requests = (size_t)strtoul(v, NULL, 10);
        else if (strcmp(argv[i - 1], "--concurrency") == 0)
            o.concurrency = (size_t)strtoul(v, NULL, 10);
        else if (strcmp(argv[i - 1], "--duration") == 0)
            o.duration_s = strtod(v, NULL);
        else if (strcmp(argv[i - 1], "--client") == 0)
            which = v;
        else
            usage();
    }
    if (port <= 0 || port > 65535 || o.requests == 0 || o.requests > BENCH_MAX_REQUESTS ||
        o.concurrency == 0 || o.concurrency > BENCH_MAX_CONCURRENCY || !(o.duration_s > 0))
        usage();
    bench_port = (uint16_t)port;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0)
        return 1;
    int rc = 0;
    if (strcmp(which, "own") == 0 || strcmp(which, "both") == 0)
        rc |= run_client(&own_client, &o);
    if (strcmp(which, "curl") == 0 || strcmp(which, "both") == 0)
        rc |= run_client(&curl_client, &o);
    curl_global_cleanup();
    return rc ? 1 : 0;
}
