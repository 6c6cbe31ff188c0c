#include "obs/accesslog.h"

#include <errno.h>
#include <fcntl.h>
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

static void field_str(struct buf *b, const char *key, const char *val, size_t len)
{
    buf_printf(b, ",\"%s\":", key);
    buf_append_json_str(b, val, len);
}

static void field_int(struct buf *b, const char *key, int64_t v)
{
    if (v >= 0)
        buf_printf(b, ",\"%s\":%lld", key, (long long)v);
}

void accesslog_write(const struct accesslog_entry *e, const char *request_id, const char *trace_id,
                     const char *method,
                     size_t method_len, const char *path, size_t path_len, int64_t total_ms,
                     uint64_t bytes_out)
{
    if (log_fd < 0)
        return;
    char line_mem[2048];
    struct buf b = {.data = NULL};
    buf_init(&b, 64 * 1024);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    strftime(line_mem, sizeof line_mem, "%Y-%m-%dT%H:%M:%S", &tm);
    buf_printf(&b, "{\"ts\":\"%s.%03ldZ\"", line_mem, ts.tv_nsec / 1000000);
    field_str(&b, "request_id", request_id, strlen(request_id));
    if (trace_id && trace_id[0])
        field_str(&b, "trace_id", trace_id, strlen(trace_id));
    field_str(&b, "method", method, method_len);
    field_str(&b, "path", path, path_len);
    const char *model = e->model ? e->model : (e->model_buf[0] ? e->model_buf : NULL);
    if (model)
        field_str(&b, "model", model, strlen(model));
    if (e->provider)
        field_str(&b, "provider", e->provider, strlen(e->provider));
    if (e->deployment_model)
        field_str(&b, "deployment_model", e->deployment_model, strlen(e->deployment_model));
    buf_printf(&b, ",\"status\":%d", e->status);
    const char *outcome = outcome_name(outcome_or_status(e->outcome, e->status));
    field_str(&b, "outcome", outcome, strlen(outcome));
    if (e->attempts)
        buf_printf(&b, ",\"attempts\":%u", e->attempts);
    if (e->model)
        buf_printf(&b, ",\"stream\":%s", e->stream ? "true" : "false");
    field_int(&b, "ttft_ms", e->ttft_ms);
    buf_printf(&b, ",\"total_ms\":%lld", (long long)total_ms);
    field_int(&b, "prompt_tokens", e->prompt_tokens);
    field_int(&b, "completion_tokens", e->completion_tokens);
    field_int(&b, "reasoning_tokens", e->reasoning_tokens);
    field_int(&b, "cached_tokens", e->cached_tokens);
    if (e->usage_estimated)
        buf_append_str(&b, ",\"usage_estimated\":true");
    buf_printf(&b, ",\"bytes_out\":%llu", (unsigned long long)bytes_out);
    if (e->error[0])
        field_str(&b, "error", e->error, strlen(e->error));
    buf_append_str(&b, "}\n");
    /* One write per line: lines from several workers never interleave. */
    ssize_t w = write(log_fd, b.data, b.len);
    (void)w;
    buf_free(&b);
}
