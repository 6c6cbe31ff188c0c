/*
 * proxy — a proxied API request from routing to the last byte: picks the
 * model's deployments in order, runs one attempt at a time over uphttp,
 * watches the first-token and stall deadlines, relays the stream (or
 * assembles the JSON answer for a non-stream client) and fails over while
 * the client has seen nothing. One finalize path ends every request.
 */
#ifndef UNBUSY_PROXY_H
#define UNBUSY_PROXY_H

#include <stdbool.h>

struct server_conn;

enum proxy_api {
    PROXY_API_CHAT = 1,
    PROXY_API_COMPLETIONS,
    PROXY_API_EMBEDDINGS,
};

/*
 * The head of a proxied request is complete and its body not read yet: checks
 * the client's key (Authorization against the virtual keys) so that an
 * unknown client never makes unbusy read a body. Returns true to go on; false
 * after answering 401. proxy_start checks again with the body (a key may be
 * disabled in between) and keeps the key for the request.
 */
bool proxy_check_head(struct server_conn *c);

/* Takes over the connection's current request; ends it with server_request_done. */
void proxy_start(struct server_conn *c, enum proxy_api api);

struct admission_waiter;
/* A queued request may start now (or was evicted from the queue); on its own worker's loop. */
void proxy_admitted(struct admission_waiter *w);

#endif
