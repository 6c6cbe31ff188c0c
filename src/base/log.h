/*
 * log — operator messages on stderr ("unbusy: level: text"), one line each,
 * written whole so that lines from several workers never interleave.
 * log_once_key suppresses repeats of the same condition (e.g. a provider that
 * answers 401 on every request is reported once, not per request).
 */
#ifndef UNBUSY_LOG_H
#define UNBUSY_LOG_H

#include <stdbool.h>

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

void log_set_level(enum log_level min);
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

/* True the first time it is called with this key (bounded table; later keys always pass). */
bool log_first_time(const char *key);

#endif
