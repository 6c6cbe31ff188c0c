#include "base/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static enum log_level min_level = LOG_INFO;
static pthread_mutex_t once_lock = PTHREAD_MUTEX_INITIALIZER;

#define ONCE_SLOTS 256
static char once_keys[ONCE_SLOTS][96];
static unsigned once_used;

void log_set_level(enum log_level min)
{
    min_level = min;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
    static const char *names[] = {"debug", "info", "warning", "error"};
    if (level < min_level)
        return;
    char line[2048];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02dZ unbusy: %s: ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, names[level]);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof line - 2)
        len = sizeof line - 2;
    line[len++] = '\n';
    /* One write(2) per line: lines from several threads do not interleave. */
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}

bool log_first_time(const char *key)
{
    bool first = true;
    pthread_mutex_lock(&once_lock);
    for (unsigned i = 0; i < once_used; i++) {
        if (strncmp(once_keys[i], key, sizeof once_keys[i] - 1) == 0) {
            first = false;
            break;
        }
    }
    if (first && once_used < ONCE_SLOTS) {
        snprintf(once_keys[once_used], sizeof once_keys[once_used], "%s", key);
        once_used++;
    }
    pthread_mutex_unlock(&once_lock);
    return first;
}
