/*
 * api — the routing table of the HTTP API: which handler answers which
 * method and path. main wires both functions into the listener
 * (server_set_handlers): api_on_head when a request's head is complete
 * (unknown paths and methods, a missing or wrong key and the admin token are
 * answered there, before any body is read), api_dispatch once the whole
 * request is in; the handler ends it with server_request_done.
 */
#ifndef UNBUSY_API_H
#define UNBUSY_API_H

#include <stdbool.h>

struct server_conn;

/* server_handlers.on_head: true to read the body; false after answering. */
bool api_on_head(struct server_conn *c);
/* server_handlers.on_request. */
void api_dispatch(struct server_conn *c);

#endif
