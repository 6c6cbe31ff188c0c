/*
 * api — the routing table of the HTTP API: which handler answers which
 * method and path. server.c calls api_dispatch once per complete request;
 * the handler ends it with server_request_done.
 */
#ifndef UNBUSY_API_H
#define UNBUSY_API_H

struct server_conn;

void api_dispatch(struct server_conn *c);

#endif
