#include "reload.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "admit/keys.h"
#include "admit/ratelimit.h"
#include "base/log.h"
#include "config/config.h"
#include "config/config_diff.h"
#include "config/config_reload.h"
#include "net/tls_server.h"
#include "obs/metrics.h"
#include "obs/reload_stats.h"
#include "provider/aws_creds.h"
#include "proxy/proxy_gen.h"
#include "route/runtime.h"
#include "route/runtime_carry.h"
#include "worker.h"

#define RELOAD_MAX_PENDING 64       /* reload requests waiting for the next read */
#define RELOAD_MAX_PROBLEMS 200     /* problems listed in an answer (all are logged) */
#define RELOAD_HASH_MAX (64u << 20) /* bytes of the file hashed by the watch */
#define RELOAD_ANSWER_MAX (256u << 10)
/* Generations some loop has not left yet (a loop stuck in a long callback): past this,
   a reload waits, so that reloads cannot pile up generations without bound. */
#define RELOAD_MAX_UNRELEASED 8
/* A change the watch sees is read again this long after (at most the interval), and
   reloaded only if it held still: a file written in place is not read half-way. */
#define RELOAD_SETTLE_MS 250u

/* What the watch compares: where the path leads (a symlink swap changes the inode)
   and what the file holds. */
struct file_id {
    bool ok;
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
    uint64_t hash;
};

struct waiter {
    struct waiter *next;
    enum reload_source src;
    reload_answer_fn answer;
    void *ud;
};

/* One read of the file, on the thread pool. */
struct job {
    uv_work_t work;
    char *path;
    struct waiter *waiters; /* answered when it is done */
    bool signal;            /* a SIGHUP asked: the certificate too */
    struct tls_server *tls;
    struct keys *keys;
    struct ratelimit *rl;
    struct file_id id;
    struct config *cfg; /* NULL: invalid */
    struct config_errors errs;
    int tls_rc;
    char tls_err[512];
};

/* A generation the loops are leaving: freed when every loop has moved (acks). */
struct retired {
    struct retired *next;
    struct runtime *rt;
    struct metrics *metrics;
    void *services; /* its main-loop services, stopped when it is released */
    atomic_uint acks;
    bool done; /* guarded by R.lock */
    /* the reload's askers, answered once every loop serves the next generation, so
       that a 200 means a request sent after it sees the new config */
    struct waiter *waiters;
    int status;
    struct buf body;
    struct proxy_gen_ack ack[]; /* one per worker */
};

static struct {
    uv_loop_t *loop;
    char *path;
    struct worker *workers;
    unsigned nworkers;
    struct runtime *rt;
    struct metrics *metrics;
    struct keys *keys;
    struct ratelimit *rl;
    struct tls_server *tls;
    void *(*start)(struct runtime *rt, struct metrics *m, void *ctx);
    void (*stop)(void *services);
    void *services_ctx;
    void *services; /* the generation in force's */
    admission_ready_fn ready;
    uv_async_t async;
    uv_timer_t watch;
    bool started, closing, running, checking;
    atomic_uint watch_ms; /* 0: not watching (read by reload_describe) */
    struct file_id id;
    struct file_id candidate; /* new content seen once; reloaded when seen again */
    bool settling;
    pthread_mutex_t lock; /* guards pending, npending, retired's done, status */
    struct waiter *pending;
    unsigned npending;
    struct retired *retired;
    struct retired *publishing; /* apply's, until job_done hands it the askers */
    struct buf status;          /* the last reload, for reload_describe */
} R = {.lock = PTHREAD_MUTEX_INITIALIZER};

static const char *source_name(enum reload_source s)
{
    return s == RELOAD_SIGNAL ? "SIGHUP" : s == RELOAD_ADMIN ? "admin" : "watch";
}

static uint64_t wall_s(void)
{
    return (uint64_t)time(NULL);
}

/* ---- the file's identity (thread pool) ------------------------------------------------ */

static void file_identify(const char *path, struct file_id *id)
{
    memset(id, 0, sizeof *id);
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    if (fstat(fd, &st) < 0) {
        close(fd);
        return;
    }
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a, 64 bits */
    unsigned char chunk[16384];
    size_t total = 0;
    ssize_t n;
    while (total < RELOAD_HASH_MAX && (n = read(fd, chunk, sizeof chunk)) > 0) {
        for (ssize_t i = 0; i < n; i++) {
            h ^= chunk[i];
            h *= 0x100000001b3ull;
        }
        total += (size_t)n;
    }
    close(fd);
    *id = (struct file_id){.ok = true,
                           .dev = st.st_dev,
                           .ino = st.st_ino,
                           .size = st.st_size,
                           .mtime = st.st_mtim,
                           .hash = h};
}

/* ---- answering --------------------------------------------------------------------- */

static void answer_all(struct waiter *w, int status, const struct buf *body)
{
    while (w) {
        struct waiter *next = w->next;
        if (w->answer) w->answer(status, body->data ? body->data : "", body->len, w->ud);
        free(w);
        w = next;
    }
}

static void error_body(struct buf *b, const char *code, const char *msg)
{
    buf_append_str(b, "{\"error\":{\"message\":");
    buf_append_json_str(b, msg, strlen(msg));
    buf_printf(b, ",\"type\":\"invalid_request_error\",\"param\":null,\"code\":\"%s\"}}", code);
}

static void set_status(const char *json)
{
    pthread_mutex_lock(&R.lock);
    buf_reset(&R.status);
    buf_append_str(&R.status, json);
    pthread_mutex_unlock(&R.lock);
}

/* ---- applying a valid file (main loop) -------------------------------------------------- */

static void on_switched(void *ud)
{
    struct retired *r = ud;
    if (atomic_fetch_sub(&r->acks, 1) != 1) return;
    pthread_mutex_lock(&R.lock);
    r->done = true;
    bool live = R.started && !R.closing;
    pthread_mutex_unlock(&R.lock);
    if (live) uv_async_send(&R.async);
}

static void free_retired(bool all)
{
    pthread_mutex_lock(&R.lock);
    struct retired **pp = &R.retired;
    struct retired *gone = NULL;
    while (*pp) {
        struct retired *r = *pp;
        if (r->done || all) {
            *pp = r->next;
            r->next = gone;
            gone = r;
        } else {
            pp = &r->next;
        }
    }
    pthread_mutex_unlock(&R.lock);
    while (gone) {
        struct retired *next = gone->next;
        if (all) { /* at exit, the loops are gone: nobody to answer */
            for (struct waiter *w = gone->waiters, *n; w; w = n) {
                n = w->next;
                free(w);
            }
        } else {
            answer_all(gone->waiters, gone->status, &gone->body);
        }
        buf_free(&gone->body);
        if (R.stop) R.stop(gone->services); /* no loop renders its registry any more */
        metrics_free(gone->metrics);
        runtime_unref(gone->rt);
        free(gone);
        gone = next;
    }
}

static void watch_configure(const struct config *cfg);

/* Builds and publishes the next generation from cfg; the answer into body. */
static int apply(struct config *cfg, enum reload_source src, struct buf *body)
{
    struct runtime *old = R.rt;
    struct config_diff_item needs[CONFIG_DIFF_MAX];
    size_t nneeds = config_diff_restart(old->cfg, cfg, needs, CONFIG_DIFF_MAX);
    /* Built while the services still run: they write only from callbacks of this loop, so
       what the probes found is copied whole. Nothing has changed if this fails. */
    struct runtime *next = runtime_build(cfg, R.ready, old);
    struct metrics *nm = next && R.metrics ? metrics_new(next, R.nworkers) : NULL;
    struct retired *ret = calloc(1, sizeof *ret + (R.nworkers + 1) * sizeof ret->ack[0]);
    if (!next || (R.metrics && !nm) || !ret) {
        metrics_free(nm);
        runtime_unref(next);
        free(ret);
        error_body(body, "internal_error", "out of memory: the running config stays");
        return 500;
    }
    metrics_carry(nm, R.metrics);
    struct runtime_carry_report rep;
    runtime_carry_diff(old, next, &rep);
    unsigned answered = runtime_carry_commit(old, next);
    aws_creds_start(cfg);

    ret->rt = old;
    ret->metrics = R.metrics;
    ret->services = R.services;
    buf_init(&ret->body, RELOAD_ANSWER_MAX);
    R.publishing = ret;
    atomic_init(&ret->acks, R.nworkers ? R.nworkers : 1);
    pthread_mutex_lock(&R.lock);
    ret->next = R.retired;
    R.retired = ret;
    pthread_mutex_unlock(&R.lock);
    R.rt = next;
    R.metrics = nm;
    /* before the loops see nm: its renderers are registered by then */
    R.services = R.start ? R.start(next, nm, R.services_ctx) : NULL;
    if (R.start && !R.services)
        log_error("config reload: out of memory starting the probes, model lists, discovery "
                  "and sync of generation %llu; they stay off until the next reload",
                  (unsigned long long)next->generation);
    for (unsigned i = 0; i < R.nworkers; i++) {
        struct worker *w = &R.workers[i];
        struct metrics_shard *shard =
            nm ? metrics_shard(nm, i, &w->server.nconns, &w->env.inflight) : NULL;
        ret->ack[i] = (struct proxy_gen_ack){.switched = on_switched, .ud = ret};
        proxy_gen_offer(&w->env, next, shard, &ret->ack[i]);
    }
    if (!R.nworkers) on_switched(ret);
    watch_configure(cfg);
    reload_stats_record(RELOAD_RESULT_OK, wall_s());

    buf_printf(body, "{\"result\":\"ok\",\"generation\":%llu,\"source\":\"%s\",\"file\":",
               (unsigned long long)next->generation, source_name(src));
    buf_append_json_str(body, R.path, strlen(R.path));
    buf_printf(body, ",\"changes\":%s,\"queued_requests_answered\":%u,\"restart_needed\":[",
               rep.json.data ? rep.json.data : "{}", answered);
    char needtext[512] = "";
    size_t used = 0;
    for (size_t i = 0; i < nneeds; i++) {
        buf_printf(body, "%s{\"key\":\"%s\",\"why\":", i ? "," : "", needs[i].key);
        buf_append_json_str(body, needs[i].why, strlen(needs[i].why));
        buf_append_str(body, "}");
        int k =
            snprintf(needtext + used, sizeof needtext - used, "%s%s", i ? ", " : "", needs[i].key);
        if (k > 0 && (size_t)k < sizeof needtext - used) used += (size_t)k;
    }
    buf_append_str(body, "]}");
    log_info("config reloaded (%s): generation %llu; models +%u -%u =%u, deployments +%u -%u "
             "=%u (state kept); %u queued request%s of removed models answered",
             source_name(src), (unsigned long long)next->generation, rep.models_added,
             rep.models_removed, rep.models_kept, rep.deps_added, rep.deps_removed, rep.deps_kept,
             answered, answered == 1 ? "" : "s");
    if (nneeds) log_warn("config reload: applied, but these changes need a restart: %s", needtext);
    runtime_carry_report_free(&rep);
    return 200;
}

/* An invalid file: every problem in the log and in the answer. */
static int refuse(struct job *j, struct buf *body)
{
    reload_stats_record(RELOAD_RESULT_INVALID, wall_s());
    const char *text = j->errs.text.data ? j->errs.text.data : "";
    char msg[300];
    snprintf(msg, sizeof msg,
             "the config file has %u problem%s; the running config (generation %llu) stays",
             j->errs.count, j->errs.count == 1 ? "" : "s", (unsigned long long)R.rt->generation);
    log_error("config reload: %s", msg);
    buf_append_str(body, "{\"error\":{\"message\":");
    buf_append_json_str(body, msg, strlen(msg));
    buf_append_str(body, ",\"type\":\"invalid_request_error\",\"param\":null,\"code\":"
                         "\"config_invalid\",\"problems\":[");
    unsigned listed = 0;
    for (const char *p = text; *p;) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        if (len) {
            log_error("config reload: %.*s", (int)len, p);
            if (listed < RELOAD_MAX_PROBLEMS && body->len < RELOAD_ANSWER_MAX - 2048) {
                buf_append_str(body, listed ? "," : "");
                buf_append_json_str(body, p, len);
                listed++;
            }
        }
        p += len + (nl ? 1 : 0);
    }
    buf_append_str(body, "]}}");
    return 422;
}

/* ---- the job ------------------------------------------------------------------------ */

static void job_run(uv_work_t *w)
{
    struct job *j = w->data;
    file_identify(j->path, &j->id);
    config_errors_init(&j->errs);
    if (config_load_file(j->path, &j->cfg, &j->errs) < 0) {
        config_unref(j->cfg);
        j->cfg = NULL;
    } else if (j->keys && keys_set_static(j->keys, j->cfg->keys, j->cfg->nkeys) < 0) {
        config_unref(j->cfg);
        j->cfg = NULL;
        j->errs.count++;
        buf_printf(&j->errs.text, "%s: keys: cannot apply the static keys (out of memory)\n",
                   j->path);
    }
    if (j->cfg && j->rl) {
        /* the models' own limits: state kept by model name (ratelimit_sync) */
        const struct config *c = j->cfg;
        struct ratelimit_def *defs = calloc(c->nmodels ? c->nmodels : 1, sizeof *defs);
        size_t n = 0;
        for (size_t i = 0; defs && i < c->nmodels; i++)
            if (c->models[i].rpm || c->models[i].tpm)
                defs[n++] = (struct ratelimit_def){
                    .name = c->models[i].name, .rpm = c->models[i].rpm, .tpm = c->models[i].tpm};
        if (defs) ratelimit_sync(j->rl, RATELIMIT_MODEL, defs, n, runtime_now_ms());
        free(defs);
    }
    if (j->signal && j->tls) j->tls_rc = tls_server_reload(j->tls, j->tls_err, sizeof j->tls_err);
}

static void maybe_start(void);

static void job_done(uv_work_t *w, int status)
{
    (void)status;
    struct job *j = w->data;
    R.running = false;
    if (j->id.ok) R.id = j->id;
    if (j->signal && j->tls) {
        char desc[224];
        if (j->tls_rc != TLS_SERVER_OK) {
            log_error("SIGHUP: keeping the current TLS certificate: %s", j->tls_err);
        } else {
            tls_server_describe(j->tls, desc, sizeof desc);
            log_info("SIGHUP: TLS certificate reloaded (%s)", desc);
        }
    }
    struct buf body;
    buf_init(&body, RELOAD_ANSWER_MAX);
    int code;
    enum reload_source src = j->waiters ? j->waiters->src : RELOAD_WATCH;
    if (R.closing) {
        error_body(&body, "shutting_down", "the gateway is shutting down");
        code = 503;
        config_unref(j->cfg);
    } else if (!j->cfg) {
        code = refuse(j, &body);
    } else {
        /* the loader's warnings (an unset ${VAR}, ...), as at start */
        const char *t = j->errs.text.data ? j->errs.text.data : "";
        for (const char *nl; *t; t = nl ? nl + 1 : t + strlen(t)) {
            nl = strchr(t, '\n');
            int len = (int)(nl ? (size_t)(nl - t) : strlen(t));
            if (len) log_warn("config reload: %.*s", len, t);
        }
        code = apply(j->cfg, src, &body);
        config_unref(j->cfg); /* the runtime holds its own */
    }
    set_status(body.data ? body.data : "{}");
    struct retired *ret = R.publishing;
    R.publishing = NULL;
    if (code == 200 && ret) {
        ret->waiters = j->waiters; /* answered when every loop has switched (free_retired) */
        ret->status = code;
        buf_append(&ret->body, body.data, body.len);
        uv_async_send(&R.async); /* in case every loop switched already */
    } else {
        answer_all(j->waiters, code, &body);
    }
    buf_free(&body);
    config_errors_free(&j->errs);
    free(j->path);
    free(j);
    maybe_start();
}

static void maybe_start(void)
{
    if (R.running || R.closing) return;
    pthread_mutex_lock(&R.lock);
    unsigned unreleased = 0;
    for (struct retired *r = R.retired; r; r = r->next)
        unreleased++;
    if (unreleased >= RELOAD_MAX_UNRELEASED) { /* on_async starts it once loops move on */
        pthread_mutex_unlock(&R.lock);
        return;
    }
    struct waiter *list = R.pending;
    R.pending = NULL;
    R.npending = 0;
    pthread_mutex_unlock(&R.lock);
    if (!list) return;
    if (!R.path) {
        struct buf body;
        buf_init(&body, 0);
        error_body(&body, "no_config_file",
                   "this process serves a built-in config (--demo): there is no file to reload");
        log_info("reload asked for: %s", "the built-in demo config has no file to reload");
        answer_all(list, 400, &body);
        buf_free(&body);
        return;
    }
    struct job *j = calloc(1, sizeof *j);
    if (!j || !(j->path = strdup(R.path))) {
        struct buf body;
        buf_init(&body, 0);
        error_body(&body, "internal_error", "out of memory");
        answer_all(list, 500, &body);
        buf_free(&body);
        free(j);
        return;
    }
    j->work.data = j;
    j->waiters = list;
    j->tls = R.tls;
    j->keys = R.keys;
    j->rl = R.rl;
    for (struct waiter *w = list; w; w = w->next)
        j->signal |= w->src == RELOAD_SIGNAL;
    if (uv_queue_work(R.loop, &j->work, job_run, job_done) < 0) {
        struct buf body;
        buf_init(&body, 0);
        error_body(&body, "internal_error", "cannot queue the reload");
        answer_all(list, 500, &body);
        buf_free(&body);
        free(j->path);
        free(j);
        return;
    }
    R.running = true;
}

static void on_async(uv_async_t *a)
{
    (void)a;
    free_retired(false);
    maybe_start();
}

int reload_request(enum reload_source src, reload_answer_fn answer, void *ud)
{
    struct waiter *w = calloc(1, sizeof *w);
    if (!w) return -ENOMEM;
    *w = (struct waiter){.src = src, .answer = answer, .ud = ud};
    pthread_mutex_lock(&R.lock);
    if (!R.started || R.closing || R.npending >= RELOAD_MAX_PENDING) {
        int rc = R.closing ? -ESHUTDOWN : !R.started ? -EAGAIN : -EBUSY;
        pthread_mutex_unlock(&R.lock);
        free(w);
        return rc;
    }
    /* oldest first, so the batch's first source names the reload */
    struct waiter **pp = &R.pending;
    while (*pp)
        pp = &(*pp)->next;
    *pp = w;
    R.npending++;
    uv_async_send(&R.async);
    pthread_mutex_unlock(&R.lock);
    return 0;
}

/* ---- the file watch ------------------------------------------------------------------- */

struct check {
    uv_work_t work;
    char *path;
    struct file_id id;
};

static void check_run(uv_work_t *w)
{
    struct check *c = w->data;
    file_identify(c->path, &c->id);
}

static bool same_content(const struct file_id *a, const struct file_id *b)
{
    return a->hash == b->hash && a->size == b->size;
}

static void on_watch(uv_timer_t *t);

static void check_done(uv_work_t *w, int status)
{
    (void)status;
    struct check *c = w->data;
    R.checking = false;
    if (!R.closing && c->id.ok) {
        if (R.id.ok && same_content(&c->id, &R.id)) {
            R.id = c->id; /* touched, moved or swapped for the same content: nothing to do */
            R.settling = false;
        } else if (R.settling && same_content(&c->id, &R.candidate)) {
            /* the same new content twice in a row: written whole, not half-way */
            log_info("config file %s changed: reloading", R.path);
            R.id = c->id; /* asked once per change, whatever the reload finds */
            R.settling = false;
            reload_request(RELOAD_WATCH, NULL, NULL);
        } else {
            /* a change: look again shortly, and reload once it holds still */
            R.candidate = c->id;
            R.settling = true;
            uint32_t ms = atomic_load(&R.watch_ms);
            if (ms)
                uv_timer_start(&R.watch, on_watch, ms < RELOAD_SETTLE_MS ? ms : RELOAD_SETTLE_MS,
                               ms);
        }
    }
    free(c->path);
    free(c);
}

static void on_watch(uv_timer_t *t)
{
    (void)t;
    if (R.checking || R.running || R.closing) return;
    struct check *c = calloc(1, sizeof *c);
    if (!c || !(c->path = strdup(R.path))) {
        free(c);
        return;
    }
    c->work.data = c;
    if (uv_queue_work(R.loop, &c->work, check_run, check_done) < 0) {
        free(c->path);
        free(c);
        return;
    }
    R.checking = true;
}

static void watch_configure(const struct config *cfg)
{
    uint32_t ms = cfg->reload.watch && R.path ? config_reload_interval_ms(&cfg->reload) : 0;
    if (ms == atomic_load(&R.watch_ms)) return;
    atomic_store(&R.watch_ms, ms);
    if (!ms) {
        uv_timer_stop(&R.watch);
        log_info("config file watch off");
        return;
    }
    uv_timer_start(&R.watch, on_watch, ms, ms);
    log_info("watching %s for changes every %u ms", R.path, ms);
}

/* ---- life ----------------------------------------------------------------------------- */

int reload_start(const struct reload_setup *s)
{
    R.loop = s->loop;
    R.path = s->path ? strdup(s->path) : NULL;
    R.workers = s->workers;
    R.nworkers = s->nworkers;
    R.rt = s->rt;
    R.metrics = s->metrics;
    R.keys = s->keys;
    R.rl = s->rl;
    R.tls = s->tls;
    R.start = s->start;
    R.stop = s->stop;
    R.services_ctx = s->services_ctx;
    R.services = s->services;
    R.ready = s->ready;
    pthread_mutex_lock(&R.lock);
    buf_init(&R.status, RELOAD_ANSWER_MAX);
    pthread_mutex_unlock(&R.lock);
    int rc = uv_async_init(R.loop, &R.async, on_async);
    if (rc < 0) return rc;
    uv_unref((uv_handle_t *)&R.async);
    uv_timer_init(R.loop, &R.watch);
    uv_unref((uv_handle_t *)&R.watch);
    if (R.path) {
        file_identify(R.path, &R.id); /* before the loop runs: what the running config came from */
        watch_configure(R.rt->cfg);
    }
    reload_stats_started(wall_s());
    pthread_mutex_lock(&R.lock);
    R.started = true;
    pthread_mutex_unlock(&R.lock);
    return 0;
}

void reload_describe(struct buf *out, uint64_t generation)
{
    buf_printf(out, "{\"generation\":%llu,\"file\":", (unsigned long long)generation);
    if (R.path)
        buf_append_json_str(out, R.path, strlen(R.path));
    else
        buf_append_str(out, "null");
    buf_printf(out,
               ",\"watch\":%s,\"watch_interval_ms\":%u,\"reloads\":{\"ok\":%llu,\"invalid\":%llu},"
               "\"last_reload\":",
               atomic_load(&R.watch_ms) ? "true" : "false", atomic_load(&R.watch_ms),
               (unsigned long long)reload_stats_count(RELOAD_RESULT_OK),
               (unsigned long long)reload_stats_count(RELOAD_RESULT_INVALID));
    pthread_mutex_lock(&R.lock);
    buf_append_str(out, R.status.len ? R.status.data : "null");
    pthread_mutex_unlock(&R.lock);
    buf_append_str(out, "}");
}

void reload_close(void)
{
    if (!R.started) return;
    pthread_mutex_lock(&R.lock);
    R.closing = true;
    struct waiter *list = R.pending;
    R.pending = NULL;
    R.npending = 0;
    void *stop[RELOAD_MAX_UNRELEASED + 2];
    size_t nstop = 0;
    stop[nstop++] = R.services;
    R.services = NULL;
    for (struct retired *r = R.retired; r; r = r->next) {
        if (nstop < sizeof stop / sizeof stop[0]) {
            stop[nstop++] = r->services;
            r->services = NULL;
        }
    }
    pthread_mutex_unlock(&R.lock);
    for (size_t i = 0; R.stop && i < nstop; i++)
        R.stop(stop[i]); /* their handles close in main's last loop run */
    struct buf body;
    buf_init(&body, 0);
    error_body(&body, "shutting_down", "the gateway is shutting down");
    answer_all(list, 503, &body);
    buf_free(&body);
    uv_close((uv_handle_t *)&R.async, NULL);
    uv_close((uv_handle_t *)&R.watch, NULL);
}

void reload_free(void)
{
    free_retired(true);
    metrics_free(R.metrics);
    runtime_unref(R.rt);
    R.metrics = NULL;
    R.rt = NULL;
    buf_free(&R.status);
    free(R.path);
    R.path = NULL;
}
