/*
 * accesslog — one JSON line per request, written when the request ends
 * (server_request_done). Handlers fill the entry as they go; fields left
 * empty are omitted. API keys are never part of an entry.
 */
#ifndef UNBUSY_ACCESSLOG_H
#define UNBUSY_ACCESSLOG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "acct/outcome.h"

struct accesslog_entry {
    const char *model;            /* the name the client asked for (points into config) */
    char model_buf[64];           /* an unknown model name, copied and cut */
    const char *provider;
    const char *deployment_model;
    enum outcome outcome;         /* OUTCOME_NONE: ok or rejected, from the status */
    char error[256];              /* why, for failures */
    int status;
    unsigned attempts;
    bool stream;
    int64_t ttft_ms;              /* -1: none */
    int64_t prompt_tokens, completion_tokens, reasoning_tokens, cached_tokens; /* -1: unknown */
    bool usage_estimated;         /* no usage reported: the tokens are the gateway's estimate */
};

void accesslog_entry_init(struct accesslog_entry *e);

/* Where lines go: NULL or "-" is stdout, "off" disables. Returns 0 or -errno. */
int accesslog_open(const char *path);
/* Opens the file again (after logrotate moved it; SIGUSR1). Thread-safe: the new file takes
   the old descriptor's number, so a write in flight goes to one file or the other. */
int accesslog_reopen(void);
/* Writes one line. trace_id may be NULL. */
void accesslog_write(const struct accesslog_entry *e, const char *request_id, const char *trace_id,
                     const char *method,
                     size_t method_len, const char *path, size_t path_len, int64_t total_ms,
                     uint64_t bytes_out);

#endif
