#include "obs/accesslog.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stdint.h>
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

/* A line is written at a cursor into room reserved once for its longest form, the keys
   with their quotes and colon spelled out (",\"status\":"): no printf, no strlen of a key,
   no bound check per field, since this runs for every request. */
static char *put(char *w, const char *s, size_t n)
{
    memcpy(w, s, n);
    return w + n;
}
#define PUT_LIT(w, lit) put((w), (lit), sizeof(lit) - 1)
#define PUT_KEY(w, key) PUT_LIT((w), ",\"" key "\":")

static char *put_i64(char *w, int64_t v)
{
    if (v < 0) *w++ = '-';
    return buf_put_u64(w, v < 0 ? 0 - (uint64_t)v : (uint64_t)v);
}

/* The longest a key, a number and the line's fixed text are: room for each field beside the
   strings' own. */
#define LINE_FIXED 640
#define PUT_STR(w, key, val, len) buf_put_json_str(PUT_KEY((w), key), (val), (len))
#define PUT_INT(w, key, v) ((v) < 0 ? (w) : put_i64(PUT_KEY((w), key), (v)))

/* The second of the last line's stamp and its text ("2026-12-03T06:00:00"), per thread: the
   date is formatted once a second, not once a line. */
static __thread time_t stamp_sec = -1;
static __thread char stamp_text[32];
static __thread size_t stamp_len;

/* The lines of this thread (a worker's loop) not yet written. */
static __thread struct buf batch;
static _Atomic unsigned long long lines_dropped;

#define ACCESSLOG_BATCH_FLUSH (32u * 1024) /* a batch this big is written at once */
/* no line needs more room: the request head is at most 64 KiB, each byte escaped to six at worst */
#define ACCESSLOG_BATCH_LIMIT (512u * 1024)

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

/* Appends one whole line to b. Returns 0 or -ENOBUFS/-ENOMEM (b as it was). */
static int format_line(struct buf *b, const struct accesslog_entry *e, const char *request_id,
                       const char *trace_id, const char *method, size_t method_len,
                       const char *path, size_t path_len, int64_t total_ms, uint64_t bytes_out)
{
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
    const char *model = e->model ? e->model : (e->model_buf[0] ? e->model_buf : NULL);
    const char *outcome = outcome_name(outcome_or_status(e->outcome, e->status));
    const char *strs[] = {request_id,          trace_id,    model,   e->provider,
                          e->deployment_model, e->endpoint, outcome, e->error};
    size_t lens[sizeof strs / sizeof strs[0]];
    size_t room = LINE_FIXED + BUF_JSON_STR_MAX(method_len) + BUF_JSON_STR_MAX(path_len);
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++) {
        lens[i] = strs[i] ? strlen(strs[i]) : 0;
        room += BUF_JSON_STR_MAX(lens[i]);
    }
    int rc = buf_reserve(b, room);
    if (rc) return rc;
    char *w = b->data + b->len;
    w = PUT_LIT(w, "{\"ts\":\"");
    w = put(w, stamp_text, stamp_len);
    w = put(w, frac, sizeof frac);
    w = PUT_STR(w, "request_id", request_id, lens[0]);
    if (lens[1]) w = PUT_STR(w, "trace_id", trace_id, lens[1]);
    w = PUT_STR(w, "method", method, method_len);
    w = PUT_STR(w, "path", path, path_len);
    if (model) w = PUT_STR(w, "model", model, lens[2]);
    if (e->provider) w = PUT_STR(w, "provider", e->provider, lens[3]);
    if (e->deployment_model) w = PUT_STR(w, "deployment_model", e->deployment_model, lens[4]);
    if (lens[5]) w = PUT_STR(w, "endpoint", e->endpoint, lens[5]);
    w = put_i64(PUT_KEY(w, "status"), e->status);
    w = PUT_STR(w, "outcome", outcome, lens[6]);
    if (e->attempts) w = buf_put_u64(PUT_KEY(w, "attempts"), e->attempts);
    if (e->model) w = e->stream ? PUT_LIT(w, ",\"stream\":true") : PUT_LIT(w, ",\"stream\":false");
    w = PUT_INT(w, "ttft_ms", e->ttft_ms);
    w = put_i64(PUT_KEY(w, "total_ms"), total_ms);
    w = PUT_INT(w, "prompt_tokens", e->prompt_tokens);
    w = PUT_INT(w, "completion_tokens", e->completion_tokens);
    w = PUT_INT(w, "reasoning_tokens", e->reasoning_tokens);
    w = PUT_INT(w, "cached_tokens", e->cached_tokens);
    if (e->usage_estimated) w = PUT_LIT(w, ",\"usage_estimated\":true");
    w = buf_put_u64(PUT_KEY(w, "bytes_out"), bytes_out);
    if (lens[7]) w = PUT_STR(w, "error", e->error, lens[7]);
    w = PUT_LIT(w, "}\n");
    b->len = (size_t)(w - b->data);
    b->data[b->len] = '\0';
    return 0;
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
