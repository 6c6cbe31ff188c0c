/*
 * uphttp — one HTTP/1.1 exchange with a provider over a transport connection.
 *
 * The proxy hands it a complete request (head + body, owned by uphttp from
 * then on) and gets back the response head, the de-framed body bytes as they
 * arrive, and the end — or one failure. A pooled connection that turns out to
 * be stale (closed by the peer before any response byte) is replaced by a
 * fresh one transparently, at most twice. A connection whose response ended
 * cleanly and allows keep-alive goes back to the pool.
 *
 * uphttp_cancel ends the exchange and frees it; the owner calls it exactly
 * once, also after on_end or on_fail. It may be called from inside any of the
 * callbacks; no callback follows it, and the memory is freed once the call
 * stack has unwound.
 */
#ifndef UNBUSY_UPHTTP_H
#define UNBUSY_UPHTTP_H

#include <stdbool.h>
#include <stddef.h>

#include "base/buf.h"
#include "config/config.h"
#include "proto/http1.h"
#include "net/transport.h"

enum uphttp_fail {
    UPHTTP_FAIL_TRANSPORT = 1, /* see terr */
    UPHTTP_FAIL_BAD_RESPONSE,  /* malformed head or body framing */
    UPHTTP_FAIL_TOO_LARGE,     /* response head over its bound */
};

struct uphttp_events {
    void (*on_connected)(void *ud);                       /* the request is being written */
    void (*on_head)(void *ud, const struct http1_response *resp); /* valid during the call only */
    void (*on_body)(void *ud, const char *data, size_t len);
    void (*on_end)(void *ud);
    void (*on_fail)(void *ud, enum uphttp_fail fail, enum transport_err terr);
};

struct uphttp;

/* Starts the exchange; request (malloc'd) is owned by uphttp. Returns NULL on allocation
   failure (request freed). Callbacks come from the loop, never from inside this call. */
struct uphttp *uphttp_start(struct transport_pool *pool, const struct cfg_provider *p,
                            uint32_t connect_timeout_ms, char *request, size_t len,
                            const struct uphttp_events *ev, void *ud);
/* The same to one address of p's host (transport_open_at; addr is copied). */
struct uphttp *uphttp_start_at(struct transport_pool *pool, const struct cfg_provider *p,
                               const struct sockaddr *addr, uint32_t connect_timeout_ms,
                               char *request, size_t len, const struct uphttp_events *ev, void *ud);
void uphttp_pause(struct uphttp *u, bool paused);

/*
 * The head every request to a provider starts with: "METHOD base_path+path HTTP/1.1",
 * Host (port and IPv6 brackets as needed), User-Agent and the provider's fixed headers.
 * No auth: that is the wire format's step (provider/provider.h, sign). The caller adds
 * its own headers and the blank line. Returns 0 or a buf error.
 */
int uphttp_request_head(struct buf *out, const struct cfg_provider *p, const char *method,
                        const char *path, const char *user_agent);
void uphttp_cancel(struct uphttp *u);

#endif
