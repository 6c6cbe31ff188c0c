#include "fakeup_engine.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FKE_MAX_BACKGROUND 1024
#define FKE_PREFIX_CACHE 4096
#define FKE_MAX_MESSAGES 256

enum fke_kind { FKE_NONE, FKE_VLLM, FKE_SGLANG, FKE_LLAMA_CPP, FKE_TGI };

struct phantom {
    uv_timer_t timer;
    struct fke_slot slot;
    unsigned id;
    bool running;
};

static struct {
    enum fke_kind kind;
    unsigned slots;
    unsigned background;
    unsigned background_ms;
    const char *served_model;
    int metrics_status;
    uv_loop_t *loop;
    void (*start)(void *owner);
    unsigned running, waiting;
    struct fke_slot *head, *tail; /* the FIFO of waiting requests */
    uint64_t seq;
    struct phantom *phantoms; /* FKE_MAX_BACKGROUND of them */
    bool started;
    uint64_t cache[FKE_PREFIX_CACHE];
    size_t cache_next, cache_len;
    unsigned long lookups, hits;
} fke = {.background_ms = 200, .served_model = "model", .metrics_status = 200};

int fke_option(int argc, char **argv, int *i)
{
    const char *o = argv[*i];
    bool takes = strcmp(o, "--engine") == 0 || strcmp(o, "--slots") == 0 ||
                 strcmp(o, "--served-model") == 0 || strcmp(o, "--background") == 0 ||
                 strcmp(o, "--background-ms") == 0;
    if (!takes) return 0;
    if (*i + 1 >= argc) {
        fprintf(stderr, "fakeup: %s needs a value\n", o);
        return -1;
    }
    const char *v = argv[++*i];
    if (strcmp(o, "--engine") == 0) {
        static const char *const names[] = {"", "vllm", "sglang", "llama.cpp", "tgi"};
        for (unsigned k = 1; k < 5; k++)
            if (strcmp(v, names[k]) == 0) fke.kind = (enum fke_kind)k;
        if (fke.kind == FKE_NONE) {
            fprintf(stderr, "fakeup: --engine: vllm, sglang, llama.cpp or tgi\n");
            return -1;
        }
        return 1;
    }
    if (strcmp(o, "--served-model") == 0) {
        fke.served_model = v;
        return 1;
    }
    char *end;
    long n = strtol(v, &end, 10);
    if (*end || n < 0 || n > 1000000) {
        fprintf(stderr, "fakeup: bad %s '%s'\n", o, v);
        return -1;
    }
    if (strcmp(o, "--slots") == 0) fke.slots = (unsigned)n;
    if (strcmp(o, "--background") == 0)
        fke.background = n > FKE_MAX_BACKGROUND ? FKE_MAX_BACKGROUND : (unsigned)n;
    if (strcmp(o, "--background-ms") == 0) fke.background_ms = n ? (unsigned)n : 1;
    return 1;
}

/* ---- the slots and their queue ---- */

static void enqueue(struct fke_slot *s)
{
    s->queued = true;
    s->seq = ++fke.seq;
    s->next = NULL;
    s->prev = fke.tail;
    if (fke.tail)
        fke.tail->next = s;
    else
        fke.head = s;
    fke.tail = s;
    fke.waiting++;
}

static void unqueue(struct fke_slot *s)
{
    if (s->prev)
        s->prev->next = s->next;
    else
        fke.head = s->next;
    if (s->next)
        s->next->prev = s->prev;
    else
        fke.tail = s->prev;
    s->queued = false;
    s->next = s->prev = NULL;
    fke.waiting--;
}

static void phantom_done(uv_timer_t *t);

static void grant(struct fke_slot *s)
{
    s->holding = true;
    fke.running++;
    if (s->owner) {
        fke.start(s->owner);
    } else {
        struct phantom *p = (struct phantom *)((char *)s - offsetof(struct phantom, slot));
        uv_timer_start(&p->timer, phantom_done, fke.background_ms, 0);
    }
}

static void dispatch(void)
{
    while (fke.head && (fke.slots == 0 || fke.running < fke.slots)) {
        struct fke_slot *s = fke.head;
        unqueue(s);
        grant(s);
    }
}

static void phantom_go(struct phantom *p)
{
    p->running = true;
    p->slot.owner = NULL;
    enqueue(&p->slot);
}

static void phantom_done(uv_timer_t *t)
{
    struct phantom *p = t->data;
    p->slot.holding = false;
    fke.running--;
    if (p->id < fke.background)
        phantom_go(p); /* a closed loop: it asks again at once */
    else
        p->running = false;
    dispatch();
}

static void set_background(unsigned n)
{
    fke.background = n > FKE_MAX_BACKGROUND ? FKE_MAX_BACKGROUND : n;
    for (unsigned i = 0; fke.phantoms && i < fke.background; i++)
        if (!fke.phantoms[i].running) phantom_go(&fke.phantoms[i]);
    /* phantoms past n stop when their turn ends; waiting ones leave now */
    for (unsigned i = fke.background; fke.phantoms && i < FKE_MAX_BACKGROUND; i++) {
        struct phantom *p = &fke.phantoms[i];
        if (p->running && p->slot.queued) {
            unqueue(&p->slot);
            p->running = false;
        }
    }
    dispatch();
}

int fke_start(uv_loop_t *loop, void (*start)(void *owner))
{
    fke.loop = loop;
    fke.start = start;
    if (fke.kind == FKE_NONE && fke.slots == 0) return 0;
    fke.phantoms = calloc(FKE_MAX_BACKGROUND, sizeof *fke.phantoms);
    if (!fke.phantoms) return -1;
    for (unsigned i = 0; i < FKE_MAX_BACKGROUND; i++) {
        uv_timer_init(loop, &fke.phantoms[i].timer);
        fke.phantoms[i].timer.data = &fke.phantoms[i];
        fke.phantoms[i].id = i;
    }
    fke.started = true;
    set_background(fke.background);
    return 0;
}

static void freed(uv_handle_t *h)
{
    static unsigned closed;
    if (++closed == FKE_MAX_BACKGROUND) {
        free(fke.phantoms);
        fke.phantoms = NULL;
    }
}

void fke_stop(void)
{
    if (!fke.started) return;
    fke.started = false;
    for (unsigned i = 0; i < FKE_MAX_BACKGROUND; i++)
        uv_close((uv_handle_t *)&fke.phantoms[i].timer, freed);
}

bool fke_admit(struct fke_slot *s, void *owner)
{
    s->owner = owner;
    if (!fke.started) return true;
    if (fke.slots == 0 || (fke.running < fke.slots && !fke.head)) {
        s->holding = true;
        fke.running++;
        return true;
    }
    enqueue(s);
    return false;
}

void fke_release(struct fke_slot *s)
{
    if (s->queued) unqueue(s);
    if (s->holding) {
        s->holding = false;
        fke.running--;
        dispatch();
    }
}

/* ---- /metrics ---- */

static char *metrics_text(void)
{
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    if (!f) return NULL;
    double kv = fke.slots ? (double)fke.running / fke.slots : 0;
    if (kv > 1) kv = 1;
    const char *m = fke.served_model;
    switch (fke.kind) {
    case FKE_VLLM:
        fprintf(f,
                "# HELP vllm:num_requests_running Number of requests in model execution batches.\n"
                "# TYPE vllm:num_requests_running gauge\n"
                "vllm:num_requests_running{engine=\"0\",model_name=\"%s\"} %u.0\n"
                "# HELP vllm:num_requests_waiting Number of requests waiting to be processed.\n"
                "# TYPE vllm:num_requests_waiting gauge\n"
                "vllm:num_requests_waiting{engine=\"0\",model_name=\"%s\"} %u.0\n"
                "# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.\n"
                "# TYPE vllm:kv_cache_usage_perc gauge\n"
                "vllm:kv_cache_usage_perc{engine=\"0\",model_name=\"%s\"} %.4f\n"
                "# TYPE vllm:prefix_cache_hits_total counter\n"
                "vllm:prefix_cache_hits_total{engine=\"0\",model_name=\"%s\"} %lu.0\n",
                m, fke.running, m, fke.waiting, m, kv, m, fke.hits);
        break;
    case FKE_SGLANG:
        fprintf(f,
                "# TYPE sglang:num_running_reqs gauge\n"
                "sglang:num_running_reqs{model_name=\"%s\"} %u.0\n"
                "# TYPE sglang:num_queue_reqs gauge\n"
                "sglang:num_queue_reqs{model_name=\"%s\"} %u.0\n"
                "# TYPE sglang:token_usage gauge\n"
                "sglang:token_usage{model_name=\"%s\"} %.4f\n",
                m, fke.running, m, fke.waiting, m, kv);
        break;
    case FKE_LLAMA_CPP:
        fprintf(f,
                "# HELP llamacpp:requests_processing Number of requests processing.\n"
                "# TYPE llamacpp:requests_processing gauge\n"
                "llamacpp:requests_processing %u\n"
                "# HELP llamacpp:requests_deferred Number of requests deferred.\n"
                "# TYPE llamacpp:requests_deferred gauge\n"
                "llamacpp:requests_deferred %u\n",
                fke.running, fke.waiting);
        break;
    case FKE_TGI:
        fprintf(f,
                "# TYPE tgi_batch_current_size gauge\ntgi_batch_current_size %u\n"
                "# TYPE tgi_queue_size gauge\ntgi_queue_size %u\n",
                fke.running, fke.waiting);
        break;
    default:
        break;
    }
    fclose(f);
    return out;
}

bool fke_handle(const char *method, const char *path, const char *body, size_t len, int *status,
                const char **type, char **out)
{
    *type = "application/json";
    if (strcmp(method, "GET") == 0 && strcmp(path, "/metrics") == 0 && fke.kind != FKE_NONE) {
        *status = fke.metrics_status;
        if (*status != 200) {
            *out = strdup("{\"error\":\"metrics unavailable\"}");
            return true;
        }
        *type = "text/plain; version=0.0.4";
        *out = metrics_text();
        return true;
    }
    if (strcmp(method, "POST") == 0 &&
        (strcmp(path, "/_fake/background") == 0 || strcmp(path, "/_fake/metrics") == 0)) {
        char num[16];
        size_t n = len < sizeof num - 1 ? len : sizeof num - 1;
        memcpy(num, body, n);
        num[n] = '\0';
        long v = strtol(num, NULL, 10);
        *status = 200;
        if (strcmp(path, "/_fake/background") == 0 && fke.started && v >= 0)
            set_background((unsigned)v);
        else if (strcmp(path, "/_fake/metrics") == 0 && v >= 100 && v <= 599)
            fke.metrics_status = (int)v;
        else
            *status = 400;
        *out = strdup(*status == 200 ? "{\"ok\":true}" : "{\"error\":\"bad value\"}");
        return true;
    }
    return false;
}

/* ---- the prefix cache ---- */

static uint64_t mix(uint64_t h, const char *s)
{
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3ull;
    }
    h ^= 0xff; /* a message boundary */
    return h * 0x100000001b3ull;
}

static bool cached(uint64_t h)
{
    for (size_t i = 0; i < fke.cache_len; i++)
        if (fke.cache[i] == h) return true;
    return false;
}

static void remember(uint64_t h)
{
    if (cached(h)) return;
    fke.cache[fke.cache_next] = h;
    fke.cache_next = (fke.cache_next + 1) % FKE_PREFIX_CACHE;
    if (fke.cache_len < FKE_PREFIX_CACHE) fke.cache_len++;
}

void fke_observe(const char *body, size_t len)
{
    cJSON *j = cJSON_ParseWithLength(body, len);
    cJSON *msgs = j ? cJSON_GetObjectItemCaseSensitive(j, "messages") : NULL;
    if (!cJSON_IsArray(msgs)) {
        cJSON_Delete(j);
        return;
    }
    uint64_t prefix[FKE_MAX_MESSAGES];
    size_t n = 0, nsys = 0;
    bool leading = true;
    uint64_t h = 0xcbf29ce484222325ull;
    cJSON *m;
    cJSON_ArrayForEach(m, msgs)
    {
        if (n == FKE_MAX_MESSAGES) break;
        cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        bool sys = cJSON_IsString(role) && (strcmp(role->valuestring, "system") == 0 ||
                                            strcmp(role->valuestring, "developer") == 0);
        if (leading && sys)
            nsys++;
        else
            leading = false;
        /* the role and the text: what a chat template turns into the prompt's tokens */
        cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");
        h = mix(h, cJSON_IsString(role) ? role->valuestring : "");
        h = mix(h, cJSON_IsString(content) ? content->valuestring : "");
        prefix[n++] = h;
    }
    /* a hit: the previous turn's prompt (all but the last answer and question) or more of
       this one is in the cache; an older turn alone is a miss (most of the prompt is new) */
    if (n >= nsys + 2) {
        fke.lookups++;
        size_t lo = n >= nsys + 3 ? n - 3 : nsys;
        for (size_t k = lo; k <= n - 2; k++) {
            if (cached(prefix[k])) {
                fke.hits++;
                break;
            }
        }
    }
    if (n) remember(prefix[n - 1]);
    cJSON_Delete(j);
}

void fke_stats(cJSON *stats)
{
    if (!fke.started) return;
    cJSON *e = cJSON_CreateObject();
    if (!e) return;
    cJSON_AddNumberToObject(e, "running", fke.running);
    cJSON_AddNumberToObject(e, "waiting", fke.waiting);
    cJSON_AddNumberToObject(e, "background", fke.background);
    cJSON_AddNumberToObject(e, "prefix_lookups", (double)fke.lookups);
    cJSON_AddNumberToObject(e, "prefix_hits", (double)fke.hits);
    cJSON_AddItemToObject(stats, "engine", e);
}

void fke_reset(void)
{
    fke.lookups = fke.hits = 0;
    fke.cache_len = fke.cache_next = 0;
}
