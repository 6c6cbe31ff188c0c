/*
 * admin_keys — the admin API's key endpoints, for admin_dispatch.
 */
#ifndef UNBUSY_ADMIN_KEYS_H
#define UNBUSY_ADMIN_KEYS_H

#include <stdbool.h>

struct server_conn;
struct keys;

/*
 * The admin API's key endpoints: GET /admin/keys, POST /admin/keys (create;
 * the answer holds the plaintext, once), POST /admin/keys/{disable,enable,
 * delete} with {"id": N} or {"name": "..."}. The caller (admin_dispatch) has
 * already applied the admin API's access rules: a POST got here only with the
 * admin token. "open" in the listing is the config's auth.open. Returns false, doing nothing, when the path is not one of
 * these; true when it answered (or will answer, from a worker thread's
 * completion, with server_request_done).
 */
bool admin_keys_dispatch(struct server_conn *c, struct keys *k);

#endif
