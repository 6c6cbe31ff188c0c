#include "config/config_value.h"

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

static bool is_var_start(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

int config_value_expand_env(const char *s, size_t len, struct buf *out,
                            void (*on_unset)(void *ud, const char *name), void *ud,
                            const char **why)
{
    size_t i = 0;
    while (i < len) {
        const char *dollar = memchr(s + i, '$', len - i);
        size_t lit = dollar ? (size_t)(dollar - (s + i)) : len - i;
        if (buf_append(out, s + i, lit)) goto too_long;
        i += lit;
        if (i == len) break;
        if (i + 2 < len && s[i + 1] == '$' && s[i + 2] == '{') {
            if (buf_append(out, "${", 2)) goto too_long;
            i += 3;
            continue;
        }
        if (i + 1 == len || s[i + 1] != '{') { /* a lone '$' is itself */
            if (buf_append(out, "$", 1)) goto too_long;
            i++;
            continue;
        }
        const char *start = s + i + 2;
        const char *close = memchr(start, '}', len - (i + 2));
        if (!close) {
            *why = "unterminated ${ (write $${ for a literal \"${\")";
            return -1;
        }
        size_t nlen = 0;
        while (start + nlen < close && (is_var_start(start[nlen]) || is_digit(start[nlen])))
            nlen++;
        const char *def = NULL;
        if (start + nlen + 1 < close && start[nlen] == ':' && start[nlen + 1] == '-')
            def = start + nlen + 2;
        else if (start + nlen != close)
            nlen = 0; /* something other than ":-" follows the name */
        if (nlen == 0 || !is_var_start(start[0]) || nlen > 128) {
            *why = "expected ${NAME} or ${NAME:-default}, NAME of letters, digits and '_'";
            return -1;
        }
        char name[129];
        memcpy(name, start, nlen);
        name[nlen] = '\0';
        const char *value = getenv(name);
        int rc = 0;
        if (value && *value)
            rc = buf_append_str(out, value);
        else if (def)
            rc = buf_append(out, def, (size_t)(close - def));
        else if (!value)
            on_unset(ud, name);
        if (rc) goto too_long;
        i = (size_t)(close - s) + 1;
    }
    return 0;
too_long:
    *why = "value too long after ${...} substitution";
    return -1;
}

bool config_value_has_control(const char *s)
{
    for (; *s; s++)
        if (((unsigned char)*s < ' ' && *s != '\t') || *s == 0x7f) return true;
    return false;
}

bool config_value_is_token(const char *s)
{
    if (!*s) return false;
    for (; *s; s++)
        if (!is_alnum(*s) && !strchr("!#$%&'*+-.^_`|~", *s)) return false;
    return true;
}

int config_parse_duration_ms(const char *s, uint32_t *ms)
{
    const char *p = s;
    uint64_t whole = 0, frac = 0, scale = 1;
    int ndigits = 0;
    for (; is_digit(*p); p++, ndigits++) {
        if (whole > 1000000000ull) return -ERANGE; /* past UINT32_MAX ms in any unit */
        whole = whole * 10 + (uint64_t)(*p - '0');
    }
    if (*p == '.') {
        p++;
        int nfrac = 0;
        for (; is_digit(*p); p++, nfrac++) {
            if (scale >= 1000000) return -EINVAL; /* finer than anything a timer here can use */
            frac = frac * 10 + (uint64_t)(*p - '0');
            scale *= 10;
        }
        if (nfrac == 0) return -EINVAL;
    }
    if (ndigits == 0) return -EINVAL;
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
    if (fraction_ms % scale) return -EINVAL; /* not a whole number of milliseconds */
    uint64_t v = whole * unit + fraction_ms / scale;
    if (v > UINT32_MAX) return -ERANGE;
    *ms = (uint32_t)v;
    return 0;
}

int config_parse_size(const char *s, size_t *bytes)
{
    const char *p = s;
    uint64_t v = 0;
    int ndigits = 0;
    for (; is_digit(*p); p++, ndigits++) {
        uint64_t digit = (uint64_t)(*p - '0');
        if (v > (UINT64_MAX - digit) / 10) return -ERANGE;
        v = v * 10 + digit;
    }
    if (ndigits == 0) return -EINVAL;
    char suffix[4] = {0};
    size_t slen = strlen(p);
    if (slen > 3) return -EINVAL;
    for (size_t i = 0; i < slen; i++)
        suffix[i] = lower(p[i]);
    uint64_t mult;
    static const struct {
        const char *s;
        uint64_t mult;
    } units[] = {
        {"", 1},
        {"b", 1},
        {"k", 1ull << 10},
        {"kb", 1ull << 10},
        {"kib", 1ull << 10},
        {"m", 1ull << 20},
        {"mb", 1ull << 20},
        {"mib", 1ull << 20},
        {"g", 1ull << 30},
        {"gb", 1ull << 30},
        {"gib", 1ull << 30},
    };
    size_t i;
    for (i = 0; i < sizeof units / sizeof units[0]; i++)
        if (strcmp(suffix, units[i].s) == 0) break;
    if (i == sizeof units / sizeof units[0]) return -EINVAL;
    mult = units[i].mult;
    if (v > UINT64_MAX / mult || v * mult > SIZE_MAX) return -ERANGE;
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
    if (neg) p++;
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

int config_value_number(const char *s, double *out, const char **why)
{
    const char *p = s;
    bool neg = *p == '-';
    if (neg) p++;
    uint64_t whole = 0, frac = 0, scale = 1;
    int ndigits = 0, nfrac = 0;
    for (; is_digit(*p); p++) {
        if (++ndigits > 15) {
            *why = "number out of range";
            return -1;
        }
        whole = whole * 10 + (uint64_t)(*p - '0');
    }
    if (*p == '.') {
        for (p++; is_digit(*p); p++) {
            if (++nfrac > 9) {
                *why = "more than 9 digits after the point";
                return -1;
            }
            frac = frac * 10 + (uint64_t)(*p - '0');
            scale *= 10;
        }
        if (nfrac == 0) ndigits = 0; /* "1." */
    }
    if (ndigits == 0 || *p) {
        *why = "expected a number like 0.25";
        return -1;
    }
    double v = (double)whole + (double)frac / (double)scale;
    *out = neg ? -v : v;
    return 0;
}

/* Host names: letters, digits, '-', '.', '_' (the last for internal service names). */
static bool valid_hostname(const char *s, size_t len)
{
    if (len == 0 || len > 253) return false;
    for (size_t i = 0; i < len; i++)
        if (!is_alnum(s[i]) && s[i] != '-' && s[i] != '.' && s[i] != '_') return false;
    return true;
}

static bool valid_ipv6(const char *s, size_t len)
{
    if (len < 2 || len > 45) return false;
    for (size_t i = 0; i < len; i++) {
        char c = lower(s[i]);
        if (!is_digit(c) && !(c >= 'a' && c <= 'f') && c != ':' && c != '.') return false;
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
    if (config_value_has_control(url)) {
        *why = "control characters are not allowed";
        return -1;
    }
    /* A simulator profile is any behaviour string (spaces, '|', '%' included). */
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
    if (strpbrk(rest, " \t")) {
        *why = "spaces are not allowed";
        return -1;
    }
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
    if (split_host_port(rest, alen, false, &p->host, &p->port, &has_port, why)) return -1;
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
    if (split_host_port(s, strlen(s), true, &h, port, &has_port, why)) return -1;
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

static char fold(char c)
{
    return c == '-' ? '_' : lower(c);
}

/*
 * Edit distance counting a swap of neighbours as one edit ("teir" -> "tier"),
 * comparing case-folded with '-' == '_'. Words past 32 letters are never near.
 */
static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    unsigned char d[33][33];
    if (la > 32 || lb > 32) return SIZE_MAX;
    for (size_t i = 0; i <= la; i++)
        d[i][0] = (unsigned char)i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = (unsigned char)j;
    for (size_t i = 1; i <= la; i++) {
        for (size_t j = 1; j <= lb; j++) {
            unsigned best = d[i - 1][j - 1] + (fold(a[i - 1]) != fold(b[j - 1]));
            if (d[i - 1][j] + 1u < best) best = d[i - 1][j] + 1u;
            if (d[i][j - 1] + 1u < best) best = d[i][j - 1] + 1u;
            if (i > 1 && j > 1 && fold(a[i - 1]) == fold(b[j - 2]) &&
                fold(a[i - 2]) == fold(b[j - 1]) && d[i - 2][j - 2] + 1u < best)
                best = d[i - 2][j - 2] + 1u;
            d[i][j] = (unsigned char)best;
        }
    }
    return d[la][lb];
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
    if (!best || best_d > 2 || best_d * 3 > strlen(best)) return NULL;
    return best;
}
