/*
 * status_page — the public status page: GET / and GET /status serve one
 * self-contained HTML page (inline CSS and JS, no external assets) that polls
 * GET /status.json every two seconds and shows each model and its
 * deployments (state, breaker, TTFT p50/p99, error rate, in flight,
 * tokens/s) and the recent incidents.
 *
 * /status.json is the admin state document (admin_write_state: config names,
 * health, counters; no keys, no client data) plus per-deployment usage
 * totals from the metrics shards ("usage", parallel to models[].deployments),
 * the incident ring ("incidents", newest first) and the server's wall clock
 * ("now_ms"). Both are public, like /metrics. api.c routes them here.
 */
#ifndef UNBUSY_STATUS_PAGE_H
#define UNBUSY_STATUS_PAGE_H

#include "base/buf.h"

struct server_conn;
struct metrics;
struct runtime;

void status_page_handle(struct server_conn *c);
void status_json_handle(struct server_conn *c);

/* The /status.json document for rt; m may be NULL (no usage, no incidents). */
void status_write_json(struct buf *out, struct runtime *rt, struct metrics *m);

/* The page itself (NUL-terminated), for tests. */
const char *status_page_html(void);

#endif
