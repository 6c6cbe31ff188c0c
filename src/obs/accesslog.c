#include "obs/accesslog.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/buf.h"

static int log_fd = STDOUT_FILENO;
static char *log_path; /* NULL: stdout or off */

void accesslog_entry_init(struct accesslog_entry *e)
{
    memset(e, 0, sizeof *e);
    e->ttft_ms = -1;
    e->prompt_tokens = e->completion_tokens = e->reasoning_tokens = e->cached_tokens = -1;
}

int accesslog_open(const char *path)
{
    if (!path || strcmp(path, "-") == 0) {
        log_fd = STDOUT_FILENO;
        return 0;
    }
    if (strcmp(path, "off") == 0) {
        log_fd = -1;
        return 0;
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (fd < 0)
        return -errno;
    log_fd = fd;
    free(log_path);
    log_path = strdup(path);
    return 0;
}

int accesslog_reopen(void)
{
    if (!log_path || log_fd < 0)
        return 0;
    int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (fd < 0)
        return -errno;
    int rc = dup3(fd, log_fd, O_CLOEXEC) < 0 ? -errno : 0;
    close(fd);
    return rc;
}

/* The field writers take the key with its quotes and colon spelled out (",\"status\":"): no
   printf and no strlen per field, since this runs for every request. */
#define FIELD_KEY(b, key) buf_append_lit((b), ",\"" key "\":")

static int field_str(struct buf *b, const char *key, size_t key_len, const char *val, size_t len)
{
    int rc = buf_append(b, key, key_len);
    return rc < 0 ? rc : buf_append_json_str(b, val, len);
}
#define FIELD_STR(b, key, val, len)                                                                \
    field_str((b), ",\"" key "\":", sizeof(",\"" key "\":") - 1, (val), (len))

static int field_int(struct buf *b, const char *key, size_t key_len, int64_t v)
{
    if (v < 0) return 0;
    int rc = buf_append(b, key, key_len);
    return rc < 0 ? rc : buf_append_i64(b, v);
}
#define FIELD_INT(b, key, v) field_int((b), ",\"" key "\":", sizeof(",\"" key "\":") - 1, (v))

/* The second of the last line's stamp and its text ("2026-12-03T06:00:00"), per thread: the
   date is formatted once a second, not once a line. */
static __thread time_t stamp_sec = -1;
static __thread char stamp_text[32];
static __thread size_t stamp_len;

/* The lines of this thread (a worker's loop) not yet written. */
static __thread struct buf batch;
static _Atomic unsigned long long lines_dropped;

#define ACCESSLOG_BATCH_FLUSH (32u * 1024) /* a batch this big is written at once */
#define ACCESSLOG_BATCH_LIMIT (256u * 1024) /* no line is longer (the request head is at most 64 KiB) */

void accesslog_flush(void)
{
    if (batch.len == 0)
        return;
    /* One write(2) of whole lines on an O_APPEND descriptor: the batches of several workers
       land one after the other, never inside each other. */
    size_t off = 0;
    while (log_fd >= 0 && off < batch.len) {
        ssize_t w = write(log_fd, batch.data + off, batch.len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    if (batch.cap > 2 * ACCESSLOG_BATCH_FLUSH)
        buf_free(&batch); /* after an outsized line: back to the usual size */
    else
        buf_reset(&batch);
}

void accesslog_thread_done(void)
{
    accesslog_flush();
    buf_free(&batch);
}

unsigned long long accesslog_dropped(void)
{
    return atomic_load_explicit(&lines_dropped, memory_order_relaxed);
}

/* Appends one whole line to b. Returns 0 or -ENOBUFS/-ENOMEM (b then holds part of it). */
static int format_line(struct buf *b, const struct accesslog_entry *e, const char *request_id,
                       const char *trace_id, const char *method, size_t method_len,
                       const char *path, size_t path_len, int64_t total_ms, uint64_t bytes_out)
{
    bool bad = false;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME_COARSE, &ts); /* a log stamp in ms: the coarse clock is enough */
    if (ts.tv_sec != stamp_sec) {
        struct tm tm;
        gmtime_r(&ts.tv_sec, &tm);
        stamp_len = strftime(stamp_text, sizeof stamp_text, "%Y-%m-%dT%H:%M:%S", &tm);
        stamp_sec = ts.tv_sec;
    }
    long ms = ts.tv_nsec / 1000000;
    char frac[6] = {
        '.', (char)('0' + ms / 100), (char)('0' + ms / 10 % 10), (char)('0' + ms % 10), 'Z', '"'};
    bad |= buf_append_lit(b, "{\"ts\":\"") < 0;
    bad |= buf_append(b, stamp_text, stamp_len) < 0;
    bad |= buf_append(b, frac, sizeof frac) < 0;
    bad |= FIELD_STR(b, "request_id", request_id, strlen(request_id)) < 0;
    if (trace_id && trace_id[0]) bad |= FIELD_STR(b, "trace_id", trace_id, strlen(trace_id)) < 0;
    bad |= FIELD_STR(b, "method", method, method_len) < 0;
    bad |= FIELD_STR(b, "path", path, path_len) < 0;
    const char *model = e->model ? e->model : (e->model_buf[0] ? e->model_buf : NULL);
    if (model) bad |= FIELD_STR(b, "model", model, strlen(model)) < 0;
    if (e->provider) bad |= FIELD_STR(b, "provider", e->provider, strlen(e->provider)) < 0;
    if (e->deployment_model)
        bad |=
            FIELD_STR(b, "deployment_model", e->deployment_model, strlen(e->deployment_model)) < 0;
    if (e->endpoint[0]) bad |= FIELD_STR(b, "endpoint", e->endpoint, strlen(e->endpoint)) < 0;
    bad |= FIELD_KEY(b, "status") < 0;
    bad |= buf_append_i64(b, e->status) < 0;
    const char *outcome = outcome_name(outcome_or_status(e->outcome, e->status));
    bad |= FIELD_STR(b, "outcome", outcome, strlen(outcome)) < 0;
    if (e->attempts) bad |= FIELD_INT(b, "attempts", e->attempts) < 0;
    if (e->model)
        bad |= (e->stream ? buf_append_lit(b, ",\"stream\":true")
                          : buf_append_lit(b, ",\"stream\":false")) < 0;
    bad |= FIELD_INT(b, "ttft_ms", e->ttft_ms) < 0;
    bad |= FIELD_KEY(b, "total_ms") < 0;
    bad |= buf_append_i64(b, total_ms) < 0;
    bad |= FIELD_INT(b, "prompt_tokens", e->prompt_tokens) < 0;
    bad |= FIELD_INT(b, "completion_tokens", e->completion_tokens) < 0;
    bad |= FIELD_INT(b, "reasoning_tokens", e->reasoning_tokens) < 0;
    bad |= FIELD_INT(b, "cached_tokens", e->cached_tokens) < 0;
    if (e->usage_estimated) bad |= buf_append_lit(b, ",\"usage_estimated\":true") < 0;
    bad |= FIELD_KEY(b, "bytes_out") < 0;
    bad |= buf_append_u64(b, bytes_out) < 0;
    if (e->error[0]) bad |= FIELD_STR(b, "error", e->error, strlen(e->error)) < 0;
    bad |= buf_append_lit(b, "}\n") < 0;
    return bad ? -ENOBUFS : 0;
}

void accesslog_write(const struct accesslog_entry *e, const char *request_id, const char *trace_id,
                     const char *method,
                     size_t method_len, const char *path, size_t path_len, int64_t total_ms,
                     uint64_t bytes_out)
{
    if (log_fd < 0)
        return;
    if (batch.limit == 0)
        buf_init(&batch, ACCESSLOG_BATCH_LIMIT);
    for (int attempt = 0; attempt < 2; attempt++) {
        size_t start = batch.len;
        if (format_line(&batch, e, request_id, trace_id, method, method_len, path, path_len,
                        total_ms, bytes_out) == 0) {
            if (batch.len >= ACCESSLOG_BATCH_FLUSH)
                accesslog_flush();
            return;
        }
        batch.len = start; /* never a part of a line */
        if (start == 0)
            break;
        accesslog_flush(); /* full: write what is there, then try on an empty batch */
    }
    atomic_fetch_add_explicit(&lines_dropped, 1, memory_order_relaxed);
}
