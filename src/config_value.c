#include "config_value.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool is_alnum(char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static char lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

/* Parses a port of 1-5 digits into 0..65535; allow_zero for listeners (ephemeral). */
static int parse_port(const char *s, size_t len, bool allow_zero, uint16_t *out, const char **why)
{
    if (len == 0 || len > 5) {
        *why = len ? "port out of range" : "missing port";
        return -1;
    }
    unsigned v = 0;
    for (size_t i = 0; i < len; i++) {
        if (!is_digit(s[i])) {
            *why = "port is not a number";
            return -1;
        }
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    if (v > 65535 || (v == 0 && !allow_zero)) {
        *why = "port out of range";
        return -1;
    }
    *out = (uint16_t)v;
    return 0;
}

int config_parse_duration_ms(const char *s, uint32_t *ms)
{
    const char *p = s;
    uint64_t whole = 0, frac = 0, scale = 1;
    int ndigits = 0;
    for (; is_digit(*p); p++, ndigits++) {
        if (whole > 1000000000000ull)
            return -ERANGE;
        whole = whole * 10 + (uint64_t)(*p - '0');
    }
    if (*p == '.') {
        p++;
        int nfrac = 0;
        for (; is_digit(*p); p++, nfrac++) {
            if (scale >= 1000000)
                return -EINVAL; /* finer than anything a timer here can use */
            frac = frac * 10 + (uint64_t)(*p - '0');
            scale *= 10;
        }
        if (nfrac == 0)
            return -EINVAL;
    }
    if (ndigits == 0)
        return -EINVAL;
    uint64_t unit;
    if (strcmp(p, "") == 0 || strcmp(p, "ms") == 0)
        unit = 1;
    else if (strcmp(p, "s") == 0)
        unit = 1000;
    else if (strcmp(p, "m") == 0)
        unit = 60 * 1000;
    else if (strcmp(p, "h") == 0)
        unit = 3600 * 1000;
    else
        return -EINVAL;
    uint64_t fraction_ms = frac * unit;
    if (fraction_ms % scale)
        return -EINVAL; /* not a whole number of milliseconds */
    uint64_t v = whole * unit + fraction_ms / scale;
    if (v > UINT32_MAX)
        return -ERANGE;
    *ms = (uint32_t)v;
    return 0;
}

int config_parse_size(const char *s, size_t *bytes)
{
    const char *p = s;
    uint64_t v = 0;
    int ndigits = 0;
    for (; is_digit(*p); p++, ndigits++) {
        if (v > UINT64_MAX / 10 - 9)
            return -ERANGE;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    if (ndigits == 0)
        return -EINVAL;
    char suffix[4] = {0};
    size_t slen = strlen(p);
    if (slen > 3)
        return -EINVAL;
    for (size_t i = 0; i < slen; i++)
        suffix[i] = lower(p[i]);
    uint64_t mult;
    static const struct {
        const char *s;
        uint64_t mult;
    } units[] = {
        {"", 1},           {"b", 1},          {"k", 1ull << 10},  {"kb", 1ull << 10},
        {"kib", 1ull << 10}, {"m", 1ull << 20}, {"mb", 1ull << 20}, {"mib", 1ull << 20},
        {"g", 1ull << 30}, {"gb", 1ull << 30}, {"gib", 1ull << 30},
    };
    size_t i;
    for (i = 0; i < sizeof units / sizeof units[0]; i++)
        if (strcmp(suffix, units[i].s) == 0)
            break;
    if (i == sizeof units / sizeof units[0])
        return -EINVAL;
    mult = units[i].mult;
    if (v > UINT64_MAX / mult || v * mult > SIZE_MAX)
        return -ERANGE;
    *bytes = (size_t)(v * mult);
    return 0;
}

int config_value_bool(const char *s, bool *out, const char **why)
{
    static const char *const yes[] = {"true", "yes", "on"};
    static const char *const no[] = {"false", "no", "off"};
    for (size_t i = 0; i < 3; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    *why = "expected true or false";
    return -1;
}

int config_value_int(const char *s, int64_t *out, const char **why)
{
    const char *p = s;
    bool neg = *p == '-';
    if (neg)
        p++;
    int64_t v = 0;
    int ndigits = 0;
    for (; is_digit(*p); p++) {
        if (++ndigits > 18) {
            *why = "number out of range";
            return -1;
        }
        v = v * 10 + (*p - '0');
    }
    if (ndigits == 0 || *p) {
        *why = "expected an integer";
        return -1;
    }
    *out = neg ? -v : v;
    return 0;
}

/* Host names: letters, digits, '-', '.', '_' (the last for internal service names). */
static bool valid_hostname(const char *s, size_t len)
{
    if (len == 0 || len > 253)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!is_alnum(s[i]) && s[i] != '-' && s[i] != '.' && s[i] != '_')
            return false;
    return true;
}

static bool valid_ipv6(const char *s, size_t len)
{
    if (len < 2 || len > 45)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = lower(s[i]);
        if (!is_digit(c) && !(c >= 'a' && c <= 'f') && c != ':' && c != '.')
            return false;
    }
    return memchr(s, ':', len) != NULL;
}

/*
 * Splits "HOST", "HOST:PORT", "[V6]" or "[V6]:PORT" (len bytes). *has_port tells
 * whether a port was written. The host is allocated without brackets.
 */
static int split_host_port(const char *s, size_t len, bool allow_zero_port, char **host,
                           uint16_t *port, bool *has_port, const char **why)
{
    const char *h = s, *colon = NULL;
    size_t hlen;
    if (len && s[0] == '[') {
        const char *close = memchr(s, ']', len);
        if (!close) {
            *why = "missing ']' after an IPv6 address";
            return -1;
        }
        h = s + 1;
        hlen = (size_t)(close - h);
        if (!valid_ipv6(h, hlen)) {
            *why = "bad IPv6 address";
            return -1;
        }
        size_t rest = len - (size_t)(close + 1 - s);
        if (rest) {
            if (close[1] != ':') {
                *why = "unexpected text after ']'";
                return -1;
            }
            colon = close + 1;
        }
    } else {
        colon = memchr(s, ':', len);
        hlen = colon ? (size_t)(colon - s) : len;
        if (colon && memchr(colon + 1, ':', len - hlen - 1)) {
            *why = "an IPv6 address must be written in brackets, e.g. [::1]:8080";
            return -1;
        }
        if (hlen && !valid_hostname(h, hlen)) {
            *why = "bad host name";
            return -1;
        }
    }
    *has_port = colon != NULL;
    if (colon && parse_port(colon + 1, len - (size_t)(colon + 1 - s), allow_zero_port, port, why))
        return -1;
    *host = strndup(h, hlen);
    if (!*host) {
        *why = "out of memory";
        return -1;
    }
    return 0;
}

static bool has_prefix_nocase(const char *s, const char *prefix)
{
    return strncasecmp(s, prefix, strlen(prefix)) == 0;
}

int config_value_base_url(const char *url, struct cfg_provider *p, const char **why)
{
    for (const char *c = url; *c; c++) {
        if ((unsigned char)*c <= ' ' || *c == 0x7f) {
            *why = "spaces and control characters are not allowed";
            return -1;
        }
    }
    if (has_prefix_nocase(url, "sim://")) {
        const char *profile = url + 6;
        if (!*profile) {
            *why = "sim:// needs a profile, e.g. sim://healthy, sim://busy or sim://flaky";
            return -1;
        }
        p->kind = CFG_PROVIDER_SIM;
        p->tls = false;
        p->port = 0;
        p->sim_profile = strdup(profile);
        p->host = strdup("");
        p->base_path = strdup("");
        if (!p->sim_profile || !p->host || !p->base_path) {
            *why = "out of memory";
            return -1;
        }
        return 0;
    }
    const char *rest;
    if (has_prefix_nocase(url, "http://")) {
        p->tls = false;
        rest = url + 7;
    } else if (has_prefix_nocase(url, "https://")) {
        p->tls = true;
        rest = url + 8;
    } else {
        *why = "expected http://, https:// or sim://";
        return -1;
    }
    p->kind = CFG_PROVIDER_OPENAI;
    if (strpbrk(rest, "?#")) {
        *why = "a query string or fragment is not allowed";
        return -1;
    }
    size_t alen = strcspn(rest, "/");
    if (memchr(rest, '@', alen)) {
        *why = "credentials in the URL are not supported (use api_key)";
        return -1;
    }
    if (alen == 0) {
        *why = "missing host";
        return -1;
    }
    bool has_port;
    p->port = p->tls ? 443 : 80;
    if (split_host_port(rest, alen, false, &p->host, &p->port, &has_port, why))
        return -1;
    if (!*p->host) {
        *why = "missing host";
        return -1;
    }
    const char *path = rest + alen;
    size_t plen = strlen(path);
    while (plen && path[plen - 1] == '/')
        plen--;
    p->base_path = strndup(path, plen);
    if (!p->base_path) {
        *why = "out of memory";
        return -1;
    }
    return 0;
}

int config_value_listen(const char *s, char **host, uint16_t *port, const char **why)
{
    bool has_port;
    char *h = NULL;
    if (split_host_port(s, strlen(s), true, &h, port, &has_port, why))
        return -1;
    if (!has_port) {
        free(h);
        *why = "expected HOST:PORT, [IPv6]:PORT or :PORT";
        return -1;
    }
    if (!*h) {
        free(h);
        h = strdup("0.0.0.0");
        if (!h) {
            *why = "out of memory";
            return -1;
        }
    }
    *host = h;
    return 0;
}

/* Levenshtein distance over short strings, comparing case-folded with '-' == '_'. */
static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    size_t row[65];
    if (la > 64 || lb > 64)
        return SIZE_MAX;
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        char ca = a[i - 1] == '-' ? '_' : lower(a[i - 1]);
        for (size_t j = 1; j <= lb; j++) {
            char cb = b[j - 1] == '-' ? '_' : lower(b[j - 1]);
            size_t best = diag + (ca != cb);
            if (row[j] + 1 < best)
                best = row[j] + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            diag = row[j];
            row[j] = best;
        }
    }
    return row[lb];
}

const char *config_value_nearest(const char *word, const char *const *candidates, size_t n)
{
    const char *best = NULL;
    size_t best_d = SIZE_MAX;
    for (size_t i = 0; i < n; i++) {
        size_t d = edit_distance(word, candidates[i]);
        if (d < best_d) {
            best_d = d;
            best = candidates[i];
        }
    }
    /* One edit per three letters, at most two: "listn" -> "listen", not "tier" -> "total". */
    if (!best || best_d > 2 || best_d * 3 > strlen(best))
        return NULL;
    return best;
}
