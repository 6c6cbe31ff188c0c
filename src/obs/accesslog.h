/*
 * accesslog — one JSON line per request, written when the request ends
 * (server_request_done). Handlers fill the entry as they go; fields left
 * empty are omitted. API keys are never part of an entry.
 *
 * Lines are batched per thread: accesslog_write formats into the thread's
 * batch, and the batch goes out in one write(2) when the thread calls
 * accesslog_flush (the server does so once per loop iteration, before the
 * loop waits, and a worker once more when its loop has ended) or when it
 * reaches 32 KiB, whichever is first. A batch is whole lines, so the lines of
 * several workers never interleave. A full batch is written synchronously
 * (a line is never dropped for lack of room); only a line longer than the
 * batch's bound (256 KiB, more than any request head) is dropped and counted.
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
    char endpoint[56];            /* the address of a discovered deployment that answered ("" none;
                                     ENDPOINT_NAME_MAX, route/endpoints.h) */
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
/* Adds one line to this thread's batch. trace_id may be NULL. */
void accesslog_write(const struct accesslog_entry *e, const char *request_id, const char *trace_id,
                     const char *method,
                     size_t method_len, const char *path, size_t path_len, int64_t total_ms,
                     uint64_t bytes_out);
/* Writes this thread's batch (nothing when it is empty). */
void accesslog_flush(void);
/* The thread is ending: writes its batch and frees it. */
void accesslog_thread_done(void);
/* Lines dropped because one alone was longer than a batch may be. */
unsigned long long accesslog_dropped(void);

#endif
