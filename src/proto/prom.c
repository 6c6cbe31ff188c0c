#include "proto/prom.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/*
 * A sample line, as the format writes it:
 *
 *   name [ "{" label "=" "\"" value "\"" { "," label "=" ... } [","] "}" ] value [ timestamp ]
 *
 * with blanks (spaces, tabs) allowed between the tokens. Names are
 * [a-zA-Z_:][a-zA-Z0-9_:]*, label names the same without ':'; a label value
 * escapes '\\', '"' and newline as \\, \" and \n.
 */

static bool name_start(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
}

static bool name_char(char c)
{
    return name_start(c) || (c >= '0' && c <= '9');
}

static size_t skip_blanks(const char *s, size_t i, size_t len)
{
    while (i < len && (s[i] == ' ' || s[i] == '\t'))
        i++;
    return i;
}

static long wanted_name(const struct prom_query *q, const char *s, size_t len)
{
    for (size_t k = 0; k < q->nnames && k < PROM_MAX_NAMES; k++) {
        const char *n = q->names[k];
        if (n && strlen(n) == len && memcmp(n, s, len) == 0) return (long)k;
    }
    return -1;
}

static bool value_accepted(const struct prom_query *q, const char *v, size_t len)
{
    for (size_t k = 0; k < q->nvalues && k < PROM_MAX_LABEL_VALUES; k++) {
        const char *w = q->values[k];
        if (w && strlen(w) == len && memcmp(w, v, len) == 0) return true;
    }
    return false;
}

/* Reads the label set at s[*i] == '{'; *rejected when the filter label has another value. */
static int read_labels(const struct prom_query *q, const char *s, size_t len, size_t *i,
                       bool *rejected)
{
    char value[PROM_MAX_LINE];
    size_t j = *i + 1;
    for (;;) {
        j = skip_blanks(s, j, len);
        if (j < len && s[j] == '}') break;
        size_t ln = j;
        if (j >= len || !name_start(s[j]) || s[j] == ':') return -1;
        while (j < len && name_char(s[j]) && s[j] != ':')
            j++;
        size_t ln_len = j - ln;
        j = skip_blanks(s, j, len);
        if (j >= len || s[j] != '=') return -1;
        j = skip_blanks(s, j + 1, len);
        if (j >= len || s[j] != '"') return -1;
        j++;
        size_t vlen = 0;
        for (;;) {
            if (j >= len) return -1;
            char c = s[j++];
            if (c == '"') break;
            if (c == '\\') {
                if (j >= len) return -1;
                c = s[j++];
                c = c == 'n' ? '\n' : c;
            }
            value[vlen++] = c; /* vlen < len <= PROM_MAX_LINE */
        }
        if (q->label && strlen(q->label) == ln_len && memcmp(q->label, s + ln, ln_len) == 0 &&
            !value_accepted(q, value, vlen))
            *rejected = true;
        j = skip_blanks(s, j, len);
        if (j < len && s[j] == ',') {
            j++;
            continue;
        }
        if (j < len && s[j] == '}') break;
        return -1;
    }
    *i = j + 1;
    return 0;
}

int prom_line(const struct prom_query *q, const char *s, size_t len, size_t *index, double *value)
{
    if (len > PROM_MAX_LINE) return -1;
    size_t i = skip_blanks(s, 0, len);
    if (i == len || s[i] == '#') return 0;
    if (!name_start(s[i])) return -1;
    size_t name = i;
    while (i < len && name_char(s[i]))
        i++;
    long k = wanted_name(q, s + name, i - name);
    size_t after = i;
    i = skip_blanks(s, i, len);
    bool rejected = false;
    if (i < len && s[i] == '{') {
        if (read_labels(q, s, len, &i, &rejected) < 0) return -1;
        after = i;
    }
    size_t v = skip_blanks(s, after, len);
    if (v == after) return -1; /* the value must be set apart */
    size_t vend = v;
    while (vend < len && s[vend] != ' ' && s[vend] != '\t')
        vend++;
    if (vend == v || vend - v > 63) return -1;
    char num[64];
    memcpy(num, s + v, vend - v);
    num[vend - v] = '\0';
    char *end;
    double d = strtod(num, &end);
    if (*end) return -1;
    size_t t = skip_blanks(s, vend, len); /* an optional timestamp: an integer */
    if (t < len) {
        if (s[t] == '-') t++;
        size_t digits = t;
        while (t < len && s[t] >= '0' && s[t] <= '9')
            t++;
        if (t == digits || skip_blanks(s, t, len) != len) return -1;
    }
    if (k < 0 || rejected || !isfinite(d)) return 0;
    *index = (size_t)k;
    *value = d;
    return 1;
}

void prom_init(struct prom_parser *p, const struct prom_query *q)
{
    memset(p, 0, offsetof(struct prom_parser, line));
    p->q = q;
}

static void judge(struct prom_parser *p)
{
    size_t n = p->len;
    if (n && p->line[n - 1] == '\r') n--;
    size_t k = 0;
    double v = 0;
    int rc = prom_line(p->q, p->line, n, &k, &v);
    p->lines++;
    if (rc < 0) {
        p->bad_lines++;
    } else if (rc > 0) {
        p->sum[k] += v;
        p->count[k]++;
    }
    p->len = 0;
}

void prom_feed(struct prom_parser *p, const char *data, size_t len)
{
    while (len > 0) {
        const char *nl = memchr(data, '\n', len);
        size_t take = nl ? (size_t)(nl - data) : len;
        if (!p->skipping) {
            if (p->len + take > sizeof p->line) {
                p->skipping = true;
                p->len = 0;
            } else {
                memcpy(p->line + p->len, data, take);
                p->len += take;
            }
        }
        if (!nl) return;
        if (p->skipping) {
            p->skipping = false;
            p->long_lines++;
            p->lines++;
        } else {
            judge(p);
        }
        data = nl + 1;
        len -= take + 1;
    }
}

void prom_finish(struct prom_parser *p)
{
    if (p->skipping) {
        p->skipping = false;
        p->long_lines++;
        p->lines++;
    } else if (p->len > 0) {
        judge(p);
    }
}
