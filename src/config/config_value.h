/*
 * config_value — the text syntaxes of single config values, for config.c.
 *
 * Pure functions over text: ${ENV} expansion, booleans, integers, numbers, provider
 * base URLs, listen addresses, header-safety checks and the "did you mean"
 * matcher for misspelt keys. No YAML and no I/O (the environment is only
 * read), so each can be tested alone.
 * (Durations and sizes are public, in config.h.) On failure a function returns
 * -1 and points *why at a static message that completes "bad X: ...".
 */
#ifndef UNBUSY_CONFIG_VALUE_H
#define UNBUSY_CONFIG_VALUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "config/config.h"

/*
 * Appends s[0..len) to out with ${NAME} replaced by the environment variable,
 * ${NAME:-default} by the default when NAME is unset or empty, and "$${" by a
 * literal "${" (the default is not expanded again). For each NAME that is
 * unset and has no default, calls on_unset(ud, NAME) and substitutes "".
 */
int config_value_expand_env(const char *s, size_t len, struct buf *out,
                            void (*on_unset)(void *ud, const char *name), void *ud,
                            const char **why);

/* Control characters other than tab (they would split an HTTP header). */
bool config_value_has_control(const char *s);

/* A non-empty HTTP token (RFC 9110): what a header name may be. */
bool config_value_is_token(const char *s);

/* true/false, yes/no, on/off, any case. */
int config_value_bool(const char *s, bool *out, const char **why);

/* An optional '-' and decimal digits (no '+', no spaces, at most 18 digits). */
int config_value_int(const char *s, int64_t *out, const char **why);

/*
 * A decimal number: an optional '-', digits, optionally '.' and more digits
 * ("0.25", "3", "-1"); no exponent, no leading '.', at most 15 digits before
 * the point and 9 after (ratios and rates need no more).
 */
int config_value_number(const char *s, double *out, const char **why);

/*
 * base_url: "http://HOST[:PORT][/PATH]", "https://..." or "sim://PROFILE".
 * HOST is a name, an IPv4 address or "[IPv6]". Fills p->kind, tls, host, port,
 * base_path and sim_profile (allocated; the caller frees them, also on
 * failure, where they may be partly set).
 */
int config_value_base_url(const char *url, struct cfg_provider *p, const char **why);

/* listen: "HOST:PORT", "[IPv6]:PORT" or ":PORT" (all addresses). *host is allocated. */
int config_value_listen(const char *s, char **host, uint16_t *port, const char **why);

/*
 * The candidate nearest to word by edit distance (ignoring case and '-' vs
 * '_'), or NULL when none is near enough to be a likely typo.
 */
const char *config_value_nearest(const char *word, const char *const *candidates, size_t n);

#endif
