/*
 * errors — the one place where a gateway error becomes an HTTP status and an
 * OpenAI-shaped body {"error":{"message","type","param","code"}}.
 *
 * Callers name what went wrong (enum gw_err); errors_render writes the body
 * and returns the status. Messages are the caller's; they never contain keys.
 */
#ifndef UNBUSY_ERRORS_H
#define UNBUSY_ERRORS_H

#include "base/buf.h"

enum gw_err {
    GW_ERR_BAD_JSON,         /* 400 */
    GW_ERR_BAD_FIELD,        /* 400 */
    GW_ERR_BAD_REQUEST,      /* 400: malformed HTTP */
    GW_ERR_UNAUTHORIZED,     /* 401 */
    GW_ERR_FORBIDDEN,        /* 403 */
    GW_ERR_UNKNOWN_MODEL,    /* 404 */
    GW_ERR_NOT_FOUND,        /* 404: no such path */
    GW_ERR_METHOD,           /* 405 */
    GW_ERR_TIMEOUT_CLIENT,   /* 408: the request head or body did not arrive in time */
    GW_ERR_TOO_LARGE,        /* 413 */
    GW_ERR_HEADERS_TOO_LARGE,/* 431 */
    GW_ERR_RATE_LIMITED,     /* 429 */
    GW_ERR_QUOTA,            /* 429: the key's budget is spent */
    GW_ERR_INTERNAL,         /* 500 */
    GW_ERR_UPSTREAM,         /* 502: every deployment failed with bad replies or errors */
    GW_ERR_UNAVAILABLE,      /* 503: every deployment busy / overloaded / down; or shutting down */
    GW_ERR_UPSTREAM_TIMEOUT, /* 504: every deployment timed out */
    GW_ERR_MID_STREAM,       /* in-stream error event after the first byte (no status) */
};

/* The HTTP status for an error. */
int errors_status(enum gw_err e);
/* Writes {"error":{...}} to out. param may be NULL. Returns the HTTP status. */
int errors_render(struct buf *out, enum gw_err e, const char *message, const char *param);
/* The same with a finer "code" than e's own (OpenAI's, e.g. "missing_required_parameter"
   for a 400); code NULL: e's. */
int errors_render_code(struct buf *out, enum gw_err e, const char *message, const char *param,
                       const char *code);

#endif
