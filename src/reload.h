/*
 * reload — reading the config file again while serving, and moving every
 * loop to the result (the composition root's, beside main.c and worker.c).
 *
 * A reload is asked for by SIGHUP, by POST /admin/reload (api/admin_reload.c,
 * through the ops main wires in) or by the file watch (reload: {watch: true}:
 * the file's identity and content hash are checked every reload.interval, a
 * ConfigMap's symlink swap included). Requests that arrive while one runs are
 * answered by the next, so each sees a file read after it asked.
 *
 * Off the loop (the libuv thread pool): the file is read, parsed and
 * validated by the same loader as at start, the static keys are replaced, and
 * on SIGHUP the listener's certificate is read again (net/tls_server). On the
 * main loop: an invalid file changes nothing (every problem is logged with its
 * file:line and listed in the answer, 422); a valid one becomes the next
 * generation (runtime_build: learnt state carried over by key,
 * route/runtime_carry.h), with its own metrics registry continuing the
 * counters, and is offered to every worker loop (proxy/proxy_gen.h); the
 * main loop's services (probes, model-list fetches, DNS discovery, the
 * shared-state sync) restart on it through main's hooks. The old generation is
 * released once every loop has moved; requests still running hold their own
 * reference to it, so it is freed when the last of them ends.
 *
 * Who calls it: main.c (reload_start, reload_request on SIGHUP, reload_close
 * and reload_free at exit) and, through main's ops, the admin API.
 */
#ifndef UNBUSY_RELOAD_H
#define UNBUSY_RELOAD_H

#include <stddef.h>
#include <uv.h>

#include "admit/admission.h"
#include "base/buf.h"

struct worker;
struct runtime;
struct metrics;
struct keys;
struct ratelimit;
struct tls_server;

enum reload_source { RELOAD_SIGNAL, RELOAD_ADMIN, RELOAD_WATCH };

struct reload_setup {
    uv_loop_t *loop;  /* the main loop */
    const char *path; /* the config file; NULL (the demo): nothing to reload */
    struct worker *workers;
    unsigned nworkers;
    struct runtime *rt;      /* the running generation: its reference passes to reload */
    struct metrics *metrics; /* its registry (may be NULL): passes to reload */
    struct keys *keys;       /* may be NULL */
    struct ratelimit *rl;    /* may be NULL */
    struct tls_server *tls;  /* may be NULL */
    /* The main loop's services bound to a generation (probes, model lists, DNS discovery,
       the shared-state sync): start runs them on a generation, their metrics on its
       registry, and returns their handle (NULL: out of memory); stop ends them. main
       started `services` on rt; a reload starts the next generation's before the loops
       see it and stops the old ones once no loop uses the old generation (so a scrape
       of the old registry never meets a stopped service). */
    void *(*start)(struct runtime *rt, struct metrics *m, void *ctx);
    void (*stop)(void *services);
    void *services_ctx;
    void *services;
    admission_ready_fn ready;
};

/* On the main loop, once the workers run. 0 or -errno. */
int reload_start(const struct reload_setup *s);

/* The answer to one reload: status 200 (applied), 422 (invalid, nothing changed), 400 (no
   file to reload), 503 (shutting down, too many pending), 500; json is its body. */
typedef void (*reload_answer_fn)(int status, const char *json, size_t len, void *ud);

/* Any thread: asks for a reload; answer (may be NULL) is called once on the main loop's
   thread. 0, or -EBUSY (too many reloads pending), -EAGAIN (not started yet),
   -ESHUTDOWN (stopping): then no answer will come. */
int reload_request(enum reload_source src, reload_answer_fn answer, void *ud);

/* Appends the GET /admin/config document: generation, file, watch, reload counts and
   the last reload's restart-needed list. Any thread. */
void reload_describe(struct buf *out, uint64_t generation);

/* On the main loop, at exit before its last run: stops the watch, the handles and the
   services of every generation; a reload still reading answers 503. */
void reload_close(void);
/* After the workers are joined: frees the running generation, its registry and the
   old ones (main's runtime and metrics references end here). */
void reload_free(void);

#endif
