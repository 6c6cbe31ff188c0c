/*
 * admin_reload — the admin API's config endpoints, for admin_dispatch:
 *
 *   POST /admin/reload   read the config file again (the admin token is
 *                        required, as for every admin change): 200 with the
 *                        new generation, the models and deployments added,
 *                        removed and kept, and the changed keys that need a
 *                        restart; 422 with every problem (file:line) when the
 *                        file is invalid (the running config stays)
 *   GET  /admin/config   the generation new requests use, the file, the
 *                        watch, the reload counts and the last reload's answer
 *
 * The reload itself belongs to the composition root (src/reload.c), a layer
 * above this one: main hands it in as ops. The answer comes from the main
 * loop's thread; it reaches the request's own loop through an async handle.
 */
#ifndef UNBUSY_ADMIN_RELOAD_H
#define UNBUSY_ADMIN_RELOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"

struct server_conn;

typedef void (*admin_reload_answer_fn)(int status, const char *json, size_t len, void *ud);

struct admin_reload_ops {
    /* Asks for a reload; answer(..., ud) once, from any thread. 0, or -errno (no answer). */
    int (*request)(admin_reload_answer_fn answer, void *ud);
    /* Appends GET /admin/config's document for this generation. Any thread. */
    void (*describe)(struct buf *out, uint64_t generation);
};

/* Set once by main before the workers serve (NULL: the endpoints answer 404). */
void admin_reload_set_ops(const struct admin_reload_ops *ops);

/* Returns false, doing nothing, when the path is not one of these; true when it
   answered or will answer. Access was checked by admin_dispatch. */
bool admin_reload_dispatch(struct server_conn *c);

#endif
