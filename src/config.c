#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <yaml.h>

#include "config_value.h"

/*
 * How loading works: libyaml builds the document (nodes keep their start
 * line), then walk_map() checks each mapping against a table of fields for its
 * section: unknown and duplicate keys are reported, then each present field's
 * parse function runs in table order (so a section may rely on one listed
 * before it: models on providers and timeouts) and missing required ones are
 * reported. Problems are collected, not returned, so one load reports all of
 * them; they are sorted by line at the end. Adding a section is adding one row
 * to top_fields and its handler.
 */

#define MAX_MESSAGES 200       /* problems kept; more are counted and summarised */
#define MAX_PROVIDERS 1024
#define MAX_MODELS 4096
#define MAX_DEPLOYMENTS 64     /* per model */
#define MAX_HEADERS 64         /* extra headers per provider */
#define MAX_SCALAR_BYTES (1u << 20)
#define MAX_FIELDS 32          /* keys per table */

struct msg {
    int line;
    unsigned seq;              /* keeps the order of problems on one line */
    char *text;
};

struct loader {
    const char *source;
    yaml_document_t doc;
    struct config *cfg;
    struct msg msgs[MAX_MESSAGES];
    size_t nmsgs;
    unsigned errors, warnings, dropped;
    char path[256];            /* the key path of the node being parsed */
    size_t pathlen;
    bool providers_broken;     /* do not cascade into "unknown provider" */
};

struct field;
typedef void (*field_fn)(struct loader *ld, yaml_node_t *v, void *obj, const struct field *f);

enum {
    F_REQUIRED = 1 << 0,
    F_EMPTY_IS_NULL = 1 << 1,  /* strings: "" stores NULL */
    F_NONEMPTY = 1 << 2,       /* strings: "" is an error */
    F_HEADER_SAFE = 1 << 3,    /* strings: goes into an HTTP header, no control characters */
};

struct field {
    const char *key;
    field_fn parse;
    size_t offset;
    int64_t min, max;          /* numbers, durations (ms) and sizes (bytes) */
    unsigned flags;
};

/* ---- problems and key paths ---- */

static int node_line(const yaml_node_t *n)
{
    return (int)n->start_mark.line + 1;
}

static void report(struct loader *ld, int line, bool warning, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void report(struct loader *ld, int line, bool warning, const char *fmt, ...)
{
    if (warning)
        ld->warnings++;
    else
        ld->errors++;
    if (ld->nmsgs == MAX_MESSAGES) {
        ld->dropped++;
        return;
    }
    char message[768], text[1280];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    /* Problems tied to no key (YAML syntax, the file as a whole) have no path. */
    snprintf(text, sizeof text, "%s:%d: %s%s%s%s\n", ld->source, line, ld->path,
             ld->pathlen ? ": " : "", warning ? "warning: " : "", message);
    struct msg *m = &ld->msgs[ld->nmsgs];
    m->text = strdup(text);
    if (!m->text)
        return;
    m->line = line;
    m->seq = (unsigned)ld->nmsgs++;
}

#define ERR(ld, node, ...) report((ld), node_line(node), false, __VA_ARGS__)

/* strdup that reports running out of memory as a problem (so the load fails). */
static char *xstrdup(struct loader *ld, const char *s)
{
    char *copy = strdup(s);
    if (!copy)
        report(ld, 1, false, "out of memory");
    return copy;
}

/* A problem about the text as a whole, before any loader exists: "file: message". */
static void report_whole(struct config_errors *errs, const char *source, const char *problem)
{
    if (errs) {
        buf_printf(&errs->text, "%s: %s\n", source, problem);
        errs->count++;
    }
}

static size_t path_push(struct loader *ld, const char *fmt, const char *key, size_t index)
{
    size_t old = ld->pathlen, room = sizeof ld->path - old;
    int n = key ? snprintf(ld->path + old, room, fmt, old ? "." : "", key)
                : snprintf(ld->path + old, room, fmt, index);
    ld->pathlen = (n < 0 || (size_t)n >= room) ? sizeof ld->path - 1 : old + (size_t)n;
    return old;
}

static size_t path_key(struct loader *ld, const char *key)
{
    return path_push(ld, "%s%s", key, 0);
}

static size_t path_index(struct loader *ld, size_t i)
{
    return path_push(ld, "[%zu]", NULL, i);
}

static void path_pop(struct loader *ld, size_t old)
{
    ld->pathlen = old;
    ld->path[old] = '\0';
}

static int cmp_msg(const void *a, const void *b)
{
    const struct msg *x = a, *y = b;
    if (x->line != y->line)
        return x->line < y->line ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static void flush_messages(struct loader *ld, struct config_errors *errs)
{
    qsort(ld->msgs, ld->nmsgs, sizeof ld->msgs[0], cmp_msg);
    for (size_t i = 0; i < ld->nmsgs; i++) {
        if (errs)
            buf_append_str(&errs->text, ld->msgs[i].text);
        free(ld->msgs[i].text);
    }
    if (errs) {
        if (ld->dropped)
            buf_printf(&errs->text, "%s: %u more problems not shown\n", ld->source, ld->dropped);
        errs->count += ld->errors;
        errs->warnings += ld->warnings;
    }
}

/* ---- scalars ---- */

static yaml_node_t *node_at(struct loader *ld, int index)
{
    return yaml_document_get_node(&ld->doc, index);
}

static const char *kind_name(const yaml_node_t *n)
{
    switch (n->type) {
    case YAML_MAPPING_NODE:
        return "a mapping";
    case YAML_SEQUENCE_NODE:
        return "a list";
    default:
        return "a single value";
    }
}

/* `key:` with nothing after it, `~` or `null` mean "not given" (the default). */
static bool node_is_null(const yaml_node_t *n)
{
    if (!n)
        return true;
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    const char *s = (const char *)n->data.scalar.value;
    return n->data.scalar.length == 0 || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 ||
           strcmp(s, "Null") == 0 || strcmp(s, "NULL") == 0;
}

static bool is_var_start(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool is_var_char(char c)
{
    return is_var_start(c) || (c >= '0' && c <= '9');
}

/*
 * Expands ${NAME} and ${NAME:-default} (default when unset or empty) in s;
 * "$${" is a literal "${". An unset NAME without a default becomes "" with a
 * warning: a missing secret should show, but `--check` on a machine without
 * the secrets must still pass. Returns 0 or -1 (reported).
 */
static int expand_env(struct loader *ld, yaml_node_t *n, const char *s, size_t len,
                      struct buf *out)
{
    size_t i = 0;
    while (i < len) {
        const char *dollar = memchr(s + i, '$', len - i);
        size_t lit = dollar ? (size_t)(dollar - (s + i)) : len - i;
        if (buf_append(out, s + i, lit))
            goto too_long;
        i += lit;
        if (i == len)
            break;
        if (i + 2 < len && s[i + 1] == '$' && s[i + 2] == '{') {
            if (buf_append(out, "${", 2))
                goto too_long;
            i += 3;
            continue;
        }
        if (i + 1 >= len || s[i + 1] != '{') {
            if (buf_append(out, "$", 1))
                goto too_long;
            i++;
            continue;
        }
        const char *start = s + i + 2;
        const char *close = memchr(start, '}', len - (i + 2));
        if (!close) {
            ERR(ld, n, "unterminated ${ (write $${ for a literal \"${\")");
            return -1;
        }
        size_t nlen = 0;
        while (start + nlen < close && is_var_char(start[nlen]))
            nlen++;
        const char *def = NULL;
        size_t dlen = 0;
        if (start + nlen + 1 < close && start[nlen] == ':' && start[nlen + 1] == '-') {
            def = start + nlen + 2;
            dlen = (size_t)(close - def);
        } else if (start + nlen != close) {
            nlen = 0; /* something other than ":-" after the name */
        }
        if (nlen == 0 || !is_var_start(start[0]) || nlen > 128) {
            ERR(ld, n, "bad ${...}: expected ${NAME} or ${NAME:-default}, NAME of letters, "
                       "digits and '_'");
            return -1;
        }
        char name[129];
        memcpy(name, start, nlen);
        name[nlen] = '\0';
        const char *value = getenv(name);
        if (value && *value) {
            if (buf_append_str(out, value))
                goto too_long;
        } else if (def) {
            if (buf_append(out, def, dlen))
                goto too_long;
        } else if (!value) {
            report(ld, node_line(n), true, "${%s} is not set; using an empty value", name);
        }
        i = (size_t)(close - s) + 1;
    }
    return 0;
too_long:
    ERR(ld, n, "value longer than %u bytes after ${...} substitution", MAX_SCALAR_BYTES);
    return -1;
}

/* The scalar's text after ${ENV} substitution (allocated), or NULL (reported). */
static char *scalar_text(struct loader *ld, yaml_node_t *n)
{
    if (n->type != YAML_SCALAR_NODE) {
        ERR(ld, n, "expected a single value, got %s", kind_name(n));
        return NULL;
    }
    const char *s = (const char *)n->data.scalar.value;
    size_t len = n->data.scalar.length;
    if (memchr(s, '\0', len)) {
        ERR(ld, n, "value contains a NUL character");
        return NULL;
    }
    struct buf out;
    buf_init(&out, MAX_SCALAR_BYTES);
    if (expand_env(ld, n, s, len, &out) || buf_append(&out, "", 0)) {
        buf_free(&out);
        return NULL;
    }
    return buf_steal(&out, NULL);
}

static void *field_ptr(void *obj, const struct field *f)
{
    return (char *)obj + f->offset;
}

static bool has_control_chars(const char *s)
{
    for (; *s; s++)
        if (((unsigned char)*s < ' ' && *s != '\t') || *s == 0x7f)
            return true;
    return false;
}

/* HTTP token characters (RFC 9110), for header names. */
static bool is_token(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!strchr("!#$%&'*+-.^_`|~", *s) &&
            !((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z')))
            return false;
    return true;
}

static void parse_string(struct loader *ld, yaml_node_t *v, void *obj, const struct field *f)
{
    char *s = scalar_text(ld, v);
    if (!s)
        return;
    if (!*s && (f->flags & F_NONEMPTY)) {
        ERR(ld, v, "must not be empty");
        free(s);
        return;
    }
    if ((f->flags & F_HEADER_SAFE) && has_control_chars(s)) {
        ERR(ld, v, "control characters (line breaks) are not allowed in a header value");
        free(s);
        return;
    }
    if (!*s && (f->flags & F_EMPTY_IS_NULL)) {
        free(s);
        s = NULL;
    }
    char **dst = field_ptr(obj, f);
    free(*dst);
    *dst = s;
}

static void parse_header_name(struct loader *ld, yaml_node_t *v, void *obj, const struct field *f)
{
    char *s = scalar_text(ld, v);
    if (!s)
        return;
    if (!is_token(s)) {
        ERR(ld, v, "\"%s\" is not a valid HTTP header name", s);
        free(s);
        return;
    }
    char **dst = field_ptr(obj, f);
    free(*dst);
    *dst = s;
}

static void parse_bool(struct loader *ld, yaml_node_t *v, void *obj, const struct field *f)
{
    char *s = scalar_text(ld, v);
    const char *why;
    if (s && config_value_bool(s, field_ptr(obj, f), &why))
        ERR(ld, v, "%s, got \"%s\"", why, s);
    free(s);
}

/* Integers, checked against [min, max]; writes an int or a uint32_t. */
static int parse_integer(struct loader *ld, yaml_node_t *v, const struct field *f, int64_t *out)
{
    char *s = scalar_text(ld, v);
    const char *why;
    int rc = -1;
    if (!s)
        return -1;
    if (config_value_int(s, out, &why))
        ERR(ld, v, "%s, got \"%s\"", why, s);
    else if (*out < f->min || *out > f->max)
        ERR(ld, v, "%s is out of range (%lld to %lld)", s, (long long)f->min, (long long)f->max);
    else
        rc = 0;
    free(s);
    return rc;
}

static void parse_u32(struct loader *ld, yaml_node_t *v, void *obj, const struct field *f)
{
    int64_t x;
    if (parse_integer(ld, v, f, &x) == 0)
        *(uint32_t *)field_ptr(obj, f) = (uint32_t)x;
}

static void parse_int(struct loader *ld, yaml_node_t *v, void *obj, const struct field *f)
{
    int64_t x;
    if (parse_integer(ld, v, f, &x) == 0)
        *(int *)field_ptr(obj, f) = (int)x;
}

static void parse_duration(struct loader *ld, yaml_node_t *v, void *obj, const struct field *f)
{
    char *s = scalar_text(ld, v);
    uint32_t ms;
    if (!s)
        return;
    int rc = config_parse_duration_ms(s, &ms);
    if (rc)
        ERR(ld, v, "bad duration \"%s\": %s", s,
            rc == -ERANGE ? "too long"
                          : "expected e.g. 500ms, 30s, 1.5m, 2h or an integer of milliseconds");
    else if (ms < f->min || ms > f->max)
        ERR(ld, v, "%s is out of range (%lldms to %lldms)", s, (long long)f->min,
            (long long)f->max);
    else
        *(uint32_t *)field_ptr(obj, f) = ms;
    free(s);
}

static void parse_size(struct loader *ld, yaml_node_t *v, void *obj, const struct field *f)
{
    char *s = scalar_text(ld, v);
    size_t bytes;
    if (!s)
        return;
    int rc = config_parse_size(s, &bytes);
    if (rc)
        ERR(ld, v, "bad size \"%s\": %s", s,
            rc == -ERANGE ? "too large" : "expected e.g. 65536, 64k, 8m or 1g");
    else if ((int64_t)bytes < f->min || (int64_t)bytes > f->max)
        ERR(ld, v, "%s is out of range (%lld to %lld bytes)", s, (long long)f->min,
            (long long)f->max);
    else
        *(size_t *)field_ptr(obj, f) = bytes;
    free(s);
}

/* ---- mappings ---- */

static void report_unknown_key(struct loader *ld, yaml_node_t *k, const char *key,
                               const struct field *fields, size_t nfields)
{
    const char *names[MAX_FIELDS];
    char list[512] = "";
    size_t used = 0;
    for (size_t i = 0; i < nfields; i++) {
        names[i] = fields[i].key;
        int n = snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "", fields[i].key);
        if (n > 0 && (size_t)n < sizeof list - used)
            used += (size_t)n;
    }
    const char *near = config_value_nearest(key, names, nfields);
    size_t old = path_key(ld, key);
    if (near)
        ERR(ld, k, "unknown key; did you mean \"%s\"?", near);
    else
        ERR(ld, k, "unknown key (expected one of: %s)", list);
    path_pop(ld, old);
}

/*
 * Checks map against fields and runs each present field's parser in table
 * order. A null map (`section:` with nothing under it) is an empty one.
 */
static void walk_map(struct loader *ld, yaml_node_t *map, const struct field *fields,
                     size_t nfields, void *obj)
{
    yaml_node_t *value[MAX_FIELDS] = {0}, *key[MAX_FIELDS] = {0};
    if (map && !node_is_null(map)) {
        if (map->type != YAML_MAPPING_NODE) {
            ERR(ld, map, "expected a mapping, got %s", kind_name(map));
            return;
        }
        for (yaml_node_pair_t *p = map->data.mapping.pairs.start;
             p < map->data.mapping.pairs.top; p++) {
            yaml_node_t *k = node_at(ld, p->key);
            if (k->type != YAML_SCALAR_NODE) {
                ERR(ld, k, "expected a key name, got %s", kind_name(k));
                continue;
            }
            const char *name = (const char *)k->data.scalar.value;
            size_t i;
            for (i = 0; i < nfields; i++)
                if (strcmp(name, fields[i].key) == 0)
                    break;
            if (i == nfields) {
                report_unknown_key(ld, k, name, fields, nfields);
            } else if (key[i]) {
                size_t old = path_key(ld, name);
                ERR(ld, k, "duplicate key (first at line %d)", node_line(key[i]));
                path_pop(ld, old);
            } else {
                key[i] = k;
                value[i] = node_at(ld, p->value);
            }
        }
    }
    for (size_t i = 0; i < nfields; i++) {
        size_t old = path_key(ld, fields[i].key);
        if (!node_is_null(value[i]))
            fields[i].parse(ld, value[i], obj, &fields[i]);
        else if (fields[i].flags & F_REQUIRED)
            report(ld, key[i] ? node_line(key[i]) : (map ? node_line(map) : 1), false,
                   "missing (required)");
        path_pop(ld, old);
    }
}

struct named_pair {
    const char *name;
    int line;
    size_t index;
};

static int cmp_named_pair(const void *a, const void *b, void *nocase)
{
    const struct named_pair *x = a, *y = b;
    int c = *(bool *)nocase ? strcasecmp(x->name, y->name) : strcmp(x->name, y->name);
    if (c)
        return c;
    return x->index < y->index ? -1 : x->index > y->index;
}

/*
 * For maps keyed by user-chosen names (providers, models, headers): marks
 * dup[i] for every key repeated earlier in the map and reports it. Sorting
 * keeps this O(n log n) for a config with thousands of models.
 */
static int find_duplicates(struct loader *ld, yaml_node_t *map, bool nocase, const char *what,
                           bool *dup)
{
    size_t n = (size_t)(map->data.mapping.pairs.top - map->data.mapping.pairs.start);
    struct named_pair *v = calloc(n ? n : 1, sizeof *v);
    if (!v)
        return -1;
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *k = node_at(ld, map->data.mapping.pairs.start[i].key);
        if (k->type == YAML_SCALAR_NODE)
            v[m++] = (struct named_pair){(const char *)k->data.scalar.value, node_line(k), i};
    }
    qsort_r(v, m, sizeof *v, cmp_named_pair, &nocase);
    for (size_t i = 1, first = 0; i < m; i++) {
        bool same = nocase ? !strcasecmp(v[i].name, v[first].name)
                           : !strcmp(v[i].name, v[first].name);
        if (!same) {
            first = i;
            continue;
        }
        dup[v[i].index] = true;
        size_t old = path_key(ld, v[i].name);
        report(ld, v[i].line, false, "duplicate %s (first at line %d)", what, v[first].line);
        path_pop(ld, old);
    }
    free(v);
    return 0;
}

/*
 * Iterates a map keyed by user-chosen names, skipping non-scalar and repeated
 * keys. Returns the number of pairs, or -1 when map is not a mapping or too big.
 */
static long named_map_begin(struct loader *ld, yaml_node_t *map, size_t limit, bool nocase,
                            const char *what, bool **dup)
{
    if (map->type != YAML_MAPPING_NODE) {
        ERR(ld, map, "expected a mapping of %s names, got %s", what, kind_name(map));
        return -1;
    }
    size_t n = (size_t)(map->data.mapping.pairs.top - map->data.mapping.pairs.start);
    if (n > limit) {
        ERR(ld, map, "too many entries (%zu, at most %zu)", n, limit);
        return -1;
    }
    *dup = calloc(n ? n : 1, sizeof **dup);
    if (!*dup || find_duplicates(ld, map, nocase, what, *dup)) {
        ERR(ld, map, "out of memory");
        return -1;
    }
    return (long)n;
}

/* The key of pair i as a name, or NULL (reported). */
static const char *named_key(struct loader *ld, yaml_node_t *map, size_t i, yaml_node_t **k,
                             yaml_node_t **v)
{
    yaml_node_pair_t *p = &map->data.mapping.pairs.start[i];
    *k = node_at(ld, p->key);
    *v = node_at(ld, p->value);
    if ((*k)->type != YAML_SCALAR_NODE) {
        ERR(ld, *k, "expected a name, got %s", kind_name(*k));
        return NULL;
    }
    const char *name = (const char *)(*k)->data.scalar.value;
    if (!*name || has_control_chars(name) || strpbrk(name, " \t")) {
        size_t old = path_key(ld, name);
        ERR(ld, *k, "a name must be non-empty, without spaces or control characters");
        path_pop(ld, old);
    }
    return name;
}

/* ---- sections ---- */

#define FIELD(key, fn, type, member, min, max, flags)                                          \
    {key, fn, offsetof(type, member), min, max, flags}
#define SECTION(key, fn, flags) {key, fn, 0, 0, 0, flags}
#define COUNT(a) (sizeof(a) / sizeof((a)[0]))
#define SEC 1000ll
#define MIN (60 * SEC)
#define HOUR (60 * MIN)

static void check_timeouts(struct loader *ld, yaml_node_t *v, const struct cfg_timeouts *t)
{
    if (t->first_token_ms > t->total_ms)
        ERR(ld, v, "first_token (%ums) is longer than total (%ums)", t->first_token_ms,
            t->total_ms);
    if (t->connect_ms > t->total_ms)
        ERR(ld, v, "connect (%ums) is longer than total (%ums)", t->connect_ms, t->total_ms);
}

static const struct field timeout_fields[] = {
    FIELD("connect", parse_duration, struct cfg_timeouts, connect_ms, 1, 10 * MIN, 0),
    FIELD("first_token", parse_duration, struct cfg_timeouts, first_token_ms, 1, 24 * HOUR, 0),
    FIELD("stall", parse_duration, struct cfg_timeouts, stall_ms, 1, 24 * HOUR, 0),
    FIELD("total", parse_duration, struct cfg_timeouts, total_ms, 1, 24 * HOUR, 0),
};

/* obj + f->offset is a struct cfg_timeouts already holding the inherited values. */
static void parse_timeouts(struct loader *ld, yaml_node_t *v, void *obj, const struct field *f)
{
    struct cfg_timeouts *t = field_ptr(obj, f);
    unsigned before = ld->errors;
    walk_map(ld, v, timeout_fields, COUNT(timeout_fields), t);
    if (ld->errors == before)
        check_timeouts(ld, v, t);
}

static void parse_listen(struct loader *ld, yaml_node_t *v, void *obj, const struct field *f)
{
    struct cfg_server *s = obj;
    char *text = scalar_text(ld, v), *host;
    const char *why;
    if (!text)
        return;
    if (config_value_listen(text, &host, &s->listen_port, &why)) {
        ERR(ld, v, "bad address \"%s\": %s", text, why);
    } else {
        free(s->listen_host);
        s->listen_host = host;
    }
    free(text);
}

static const struct field server_fields[] = {
    SECTION("listen", parse_listen, 0),
    FIELD("workers", parse_u32, struct cfg_server, workers, 0, 1024, 0),
    FIELD("max_header_bytes", parse_size, struct cfg_server, max_header_bytes, 1024, 1 << 20, 0),
    FIELD("max_body_bytes", parse_size, struct cfg_server, max_body_bytes, 1024, 1ll << 30, 0),
    FIELD("max_response_bytes", parse_size, struct cfg_server, max_response_bytes, 1024,
          1ll << 30, 0),
    FIELD("header_timeout", parse_duration, struct cfg_server, header_timeout_ms, 1, 10 * MIN, 0),
    FIELD("idle_timeout", parse_duration, struct cfg_server, idle_timeout_ms, 1, HOUR, 0),
    FIELD("drain_timeout", parse_duration, struct cfg_server, drain_timeout_ms, 0, HOUR, 0),
    FIELD("max_connections", parse_u32, struct cfg_server, max_connections, 1, 1000000, 0),
    FIELD("access_log", parse_string, struct cfg_server, access_log, 0, 0, F_NONEMPTY),
};

static void parse_server(struct loader *ld, yaml_node_t *v, void *obj, const struct field *f)
{
    walk_map(ld, v, server_fields, COUNT(server_fields), field_ptr(obj, f));
}

static void parse_base_url(struct loader *ld, yaml_node_t *v, void *obj, const struct field *f)
{
    struct cfg_provider *p = obj;
    char *url = scalar_text(ld, v);
    const char *why;
    if (!url)
        return;
    if (config_value_base_url(url, p, &why))
        ERR(ld, v, "bad URL \"%s\": %s", url, why);
    free(p->base_url);
    p->base_url = url;
}

/* Headers unbusy writes itself; a provider may not override them. */
static const char *const reserved_headers[] = {
    "host", "content-length", "transfer-encoding", "connection", "upgrade", "te", "trailer",
};

static void parse_headers(struct loader *ld, yaml_node_t *map, void *obj, const struct field *f)
{
    struct cfg_provider *p = obj;
    bool *dup = NULL;
    long n = named_map_begin(ld, map, MAX_HEADERS, true, "header", &dup);
    if (n > 0 && !(p->headers = calloc((size_t)n, sizeof *p->headers)))
        n = -1;
    for (long i = 0; i < n; i++) {
        yaml_node_t *k, *v;
        const char *name = named_key(ld, map, (size_t)i, &k, &v);
        if (!name || dup[i])
            continue;
        size_t old = path_key(ld, name);
        bool reserved = false;
        for (size_t r = 0; r < COUNT(reserved_headers); r++)
            reserved |= strcasecmp(name, reserved_headers[r]) == 0;
        if (!is_token(name))
            ERR(ld, k, "not a valid HTTP header name");
        else if (reserved)
            ERR(ld, k, "this header is set by unbusy and cannot be configured");
        char *value = scalar_text(ld, v);
        if (value && has_control_chars(value)) {
            ERR(ld, v, "control characters (line breaks) are not allowed in a header value");
        } else if (value) {
            struct cfg_header *h = &p->headers[p->nheaders];
            h->name = xstrdup(ld, name);
            h->value = value;
            value = NULL;
            p->nheaders++;
        }
        free(value);
        path_pop(ld, old);
    }
    free(dup);
}

static const struct field provider_fields[] = {
    SECTION("base_url", parse_base_url, F_REQUIRED),
    FIELD("api_key", parse_string, struct cfg_provider, api_key, 0, 0,
          F_EMPTY_IS_NULL | F_HEADER_SAFE),
    FIELD("auth_header", parse_header_name, struct cfg_provider, auth_header, 0, 0, 0),
    FIELD("auth_prefix", parse_string, struct cfg_provider, auth_prefix, 0, 0, F_HEADER_SAFE),
    SECTION("headers", parse_headers, 0),
    FIELD("ca_file", parse_string, struct cfg_provider, ca_file, 0, 0, F_EMPTY_IS_NULL),
    FIELD("tls_verify", parse_bool, struct cfg_provider, tls_verify, 0, 0, 0),
    FIELD("stream_upstream", parse_bool, struct cfg_provider, stream_upstream, 0, 0, 0),
    FIELD("max_idle_conns", parse_u32, struct cfg_provider, max_idle_conns, 0, 100000, 0),
    FIELD("idle_conn_timeout", parse_duration, struct cfg_provider, idle_conn_timeout_ms, 1,
          HOUR, 0),
    FIELD("connect_timeout", parse_duration, struct cfg_provider, connect_timeout_ms, 0,
          10 * MIN, 0),
};

static void parse_providers(struct loader *ld, yaml_node_t *map, void *obj, const struct field *f)
{
    struct config *c = ld->cfg;
    bool *dup = NULL;
    long n = named_map_begin(ld, map, MAX_PROVIDERS, false, "provider", &dup);
    if (n > 0 && !(c->providers = calloc((size_t)n, sizeof *c->providers)))
        n = -1;
    if (n < 0)
        ld->providers_broken = true;
    for (long i = 0; i < n; i++) {
        yaml_node_t *k, *v;
        const char *name = named_key(ld, map, (size_t)i, &k, &v);
        if (!name || dup[i])
            continue;
        struct cfg_provider *p = &c->providers[c->nproviders++];
        p->name = xstrdup(ld, name);
        p->line = node_line(k);
        p->auth_header = xstrdup(ld, "Authorization");
        p->auth_prefix = xstrdup(ld, "Bearer ");
        p->tls_verify = true;
        p->stream_upstream = true;
        p->max_idle_conns = 64;
        p->idle_conn_timeout_ms = 60 * SEC;
        size_t old = path_key(ld, name);
        walk_map(ld, v, provider_fields, COUNT(provider_fields), p);
        if (p->ca_file && access(p->ca_file, R_OK) != 0)
            ERR(ld, v, "ca_file \"%s\" cannot be read: %s", p->ca_file, strerror(errno));
        path_pop(ld, old);
    }
    free(dup);
}

static const char *const *provider_names(const struct config *c, const char **names)
{
    for (size_t i = 0; i < c->nproviders; i++)
        names[i] = c->providers[i].name ? c->providers[i].name : "";
    return names;
}

static void parse_provider_ref(struct loader *ld, yaml_node_t *v, void *obj, const struct field *f)
{
    struct cfg_deployment *d = obj;
    const struct config *c = ld->cfg;
    char *name = scalar_text(ld, v);
    if (!name)
        return;
    for (size_t i = 0; i < c->nproviders && !d->provider; i++)
        if (c->providers[i].name && strcmp(c->providers[i].name, name) == 0)
            d->provider = &c->providers[i];
    if (!d->provider && !ld->providers_broken) {
        const char *names[MAX_PROVIDERS];
        const char *near = config_value_nearest(name, provider_names(c, names), c->nproviders);
        if (near)
            ERR(ld, v, "unknown provider \"%s\"; did you mean \"%s\"?", name, near);
        else
            ERR(ld, v, "unknown provider \"%s\" (not defined under providers:)", name);
    }
    free(name);
}

static const struct field deployment_fields[] = {
    SECTION("provider", parse_provider_ref, F_REQUIRED),
    FIELD("model", parse_string, struct cfg_deployment, model, 0, 0, F_REQUIRED | F_NONEMPTY),
    FIELD("tier", parse_int, struct cfg_deployment, tier, 0, 1000, 0),
    FIELD("weight", parse_u32, struct cfg_deployment, weight, 1, 1000000, 0),
};

static void parse_deployments(struct loader *ld, yaml_node_t *list, void *obj,
                              const struct field *f)
{
    struct cfg_model *m = obj;
    if (list->type != YAML_SEQUENCE_NODE) {
        ERR(ld, list, "expected a list of deployments, got %s", kind_name(list));
        return;
    }
    size_t n = (size_t)(list->data.sequence.items.top - list->data.sequence.items.start);
    if (n == 0) {
        ERR(ld, list, "no deployments (a model needs at least one)");
        return;
    }
    if (n > MAX_DEPLOYMENTS) {
        ERR(ld, list, "too many deployments (%zu, at most %d)", n, MAX_DEPLOYMENTS);
        return;
    }
    if (!(m->deployments = calloc(n, sizeof *m->deployments))) {
        ERR(ld, list, "out of memory");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *item = node_at(ld, list->data.sequence.items.start[i]);
        struct cfg_deployment *d = &m->deployments[m->ndeployments++];
        d->weight = 1;
        d->line = node_line(item);
        size_t old = path_index(ld, i);
        if (node_is_null(item))
            ERR(ld, item, "empty deployment (expected provider: and model:)");
        else
            walk_map(ld, item, deployment_fields, COUNT(deployment_fields), d);
        path_pop(ld, old);
    }
}

static const struct field model_fields[] = {
    SECTION("deployments", parse_deployments, F_REQUIRED),
    FIELD("timeouts", parse_timeouts, struct cfg_model, timeouts, 0, 0, 0),
    FIELD("max_attempts", parse_u32, struct cfg_model, max_attempts, 1, 10, 0),
};

static void parse_models(struct loader *ld, yaml_node_t *map, void *obj, const struct field *f)
{
    struct config *c = ld->cfg;
    bool *dup = NULL;
    long n = named_map_begin(ld, map, MAX_MODELS, false, "model name", &dup);
    if (n == 0)
        ERR(ld, map, "no models defined (at least one is needed)");
    if (n > 0 && !(c->models = calloc((size_t)n, sizeof *c->models)))
        n = -1;
    for (long i = 0; i < n; i++) {
        yaml_node_t *k, *v;
        const char *name = named_key(ld, map, (size_t)i, &k, &v);
        if (!name || dup[i])
            continue;
        struct cfg_model *m = &c->models[c->nmodels++];
        if (!(m->name = xstrdup(ld, name))) {
            c->nmodels--;
            continue;
        }
        m->line = node_line(k);
        m->timeouts = c->default_timeouts;
        size_t old = path_key(ld, name);
        if (v->type == YAML_SEQUENCE_NODE)
            parse_deployments(ld, v, m, NULL);
        else if (v->type == YAML_MAPPING_NODE)
            walk_map(ld, v, model_fields, COUNT(model_fields), m);
        else if (node_is_null(v))
            ERR(ld, v, "no deployments (a model needs at least one)");
        else
            ERR(ld, v, "expected a list of deployments or a mapping with deployments:, got %s",
                kind_name(v));
        if (m->max_attempts == 0) /* one try per deployment, within 1..10 */
            m->max_attempts = m->ndeployments > 10 ? 10 : m->ndeployments ? (uint32_t)m->ndeployments : 1;
        path_pop(ld, old);
    }
    free(dup);
}

/*
 * The sections, in the order they are applied: models use providers and the
 * default timeouts. A new section is one row here and its parse function.
 */
static const struct field top_fields[] = {
    FIELD("server", parse_server, struct config, server, 0, 0, 0),
    FIELD("timeouts", parse_timeouts, struct config, default_timeouts, 0, 0, 0),
    SECTION("providers", parse_providers, 0),
    SECTION("models", parse_models, F_REQUIRED),
};

_Static_assert(COUNT(server_fields) <= MAX_FIELDS && COUNT(provider_fields) <= MAX_FIELDS &&
                   COUNT(top_fields) <= MAX_FIELDS,
               "raise MAX_FIELDS");
_Static_assert(sizeof(unsigned) == sizeof(uint32_t), "workers is parsed as a uint32_t");

/* ---- the snapshot ---- */

static void set_defaults(struct config *c)
{
    struct cfg_server *s = &c->server;
    s->listen_host = strdup("127.0.0.1");
    s->listen_port = 8080;
    s->workers = 0;
    s->max_header_bytes = 64 << 10;
    s->max_body_bytes = 8 << 20;
    s->max_response_bytes = 32 << 20;
    s->header_timeout_ms = 10 * SEC;
    s->idle_timeout_ms = 60 * SEC;
    s->drain_timeout_ms = 30 * SEC;
    s->max_connections = 10000;
    s->access_log = strdup("-");
    c->default_timeouts = (struct cfg_timeouts){
        .connect_ms = 5 * SEC,
        .first_token_ms = 30 * SEC,
        .stall_ms = 60 * SEC,
        .total_ms = 600 * SEC,
    };
}

static void free_provider(struct cfg_provider *p)
{
    free(p->name);
    free(p->base_url);
    free(p->host);
    free(p->base_path);
    free(p->sim_profile);
    free(p->api_key);
    free(p->auth_header);
    free(p->auth_prefix);
    for (size_t i = 0; i < p->nheaders; i++) {
        free(p->headers[i].name);
        free(p->headers[i].value);
    }
    free(p->headers);
    free(p->ca_file);
}

static void config_free(struct config *c)
{
    free(c->source);
    free(c->server.listen_host);
    free(c->server.access_log);
    for (size_t i = 0; i < c->nproviders; i++)
        free_provider(&c->providers[i]);
    free(c->providers);
    for (size_t i = 0; i < c->nmodels; i++) {
        for (size_t j = 0; j < c->models[i].ndeployments; j++)
            free(c->models[i].deployments[j].model);
        free(c->models[i].deployments);
        free(c->models[i].name);
    }
    free(c->models);
    free(c->model_slots);
    free(c);
}

static uint32_t name_hash(const char *s)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

static int index_models(struct config *c)
{
    size_t cap = 8;
    while (cap < 2 * c->nmodels)
        cap *= 2;
    c->model_slots = calloc(cap, sizeof *c->model_slots);
    if (!c->model_slots)
        return -1;
    c->nmodel_slots = cap;
    for (size_t i = 0; i < c->nmodels; i++) {
        size_t s = name_hash(c->models[i].name) & (cap - 1);
        while (c->model_slots[s])
            s = (s + 1) & (cap - 1);
        c->model_slots[s] = (uint32_t)i + 1;
    }
    return 0;
}

const struct cfg_model *config_find_model(const struct config *c, const char *name)
{
    if (!c->model_slots) {
        for (size_t i = 0; i < c->nmodels; i++)
            if (strcmp(c->models[i].name, name) == 0)
                return &c->models[i];
        return NULL;
    }
    size_t mask = c->nmodel_slots - 1;
    for (size_t s = name_hash(name) & mask; c->model_slots[s]; s = (s + 1) & mask) {
        const struct cfg_model *m = &c->models[c->model_slots[s] - 1];
        if (strcmp(m->name, name) == 0)
            return m;
    }
    return NULL;
}

struct config *config_ref(struct config *c)
{
    atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
    return c;
}

void config_unref(struct config *c)
{
    if (c && atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) == 1)
        config_free(c);
}

void config_errors_init(struct config_errors *e)
{
    buf_init(&e->text, 0);
    e->count = 0;
    e->warnings = 0;
}

void config_errors_free(struct config_errors *e)
{
    buf_free(&e->text);
    e->count = 0;
    e->warnings = 0;
}

static void report_yaml_error(struct loader *ld, const yaml_parser_t *parser)
{
    int line = (int)parser->problem_mark.line + 1;
    const char *problem = parser->problem ? parser->problem : "cannot parse";
    if (parser->context)
        report(ld, line, false, "YAML syntax: %s (%s at line %zu)", problem, parser->context,
               parser->context_mark.line + 1);
    else
        report(ld, line, false, "YAML syntax: %s", problem);
}

static void parse_document(struct loader *ld, const char *text, size_t len)
{
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser)) {
        report(ld, 1, false, "out of memory");
        return;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    yaml_parser_set_encoding(&parser, YAML_UTF8_ENCODING);
    if (!yaml_parser_load(&parser, &ld->doc)) {
        report_yaml_error(ld, &parser);
        yaml_parser_delete(&parser);
        memset(&ld->doc, 0, sizeof ld->doc);
        return;
    }
    yaml_document_t extra;
    if (yaml_parser_load(&parser, &extra)) {
        yaml_node_t *root = yaml_document_get_root_node(&extra);
        if (root)
            report(ld, node_line(root), false, "only one YAML document is allowed per file");
        yaml_document_delete(&extra);
    } else {
        report_yaml_error(ld, &parser);
    }
    yaml_parser_delete(&parser);

    yaml_node_t *root = yaml_document_get_root_node(&ld->doc);
    if (root && !node_is_null(root) && root->type != YAML_MAPPING_NODE)
        ERR(ld, root, "the file must be a mapping (server:, providers:, models:), got %s",
            kind_name(root));
    else
        walk_map(ld, root, top_fields, COUNT(top_fields), ld->cfg);
    yaml_document_delete(&ld->doc);
}

int config_load_text(const char *source, const char *text, size_t len, struct config **out,
                     struct config_errors *errs)
{
    struct loader *ld = calloc(1, sizeof *ld);
    struct config *c = calloc(1, sizeof *c);
    if (!ld || !c) {
        free(ld);
        free(c);
        report_whole(errs, source, "out of memory");
        return -1;
    }
    atomic_init(&c->refs, 1);
    c->source = strdup(source);
    set_defaults(c);
    ld->source = source;
    ld->cfg = c;
    if (len > CONFIG_MAX_TEXT_BYTES) {
        free(ld);
        config_unref(c);
        report_whole(errs, source, "larger than 4 MiB, refused");
        return -1;
    }
    parse_document(ld, text, len);

    if (c->server.workers == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        c->server.workers = n < 1 ? 1 : n > 1024 ? 1024 : (unsigned)n;
    }
    if (!c->source || !c->server.listen_host || !c->server.access_log || index_models(c))
        report(ld, 1, false, "out of memory");
    int rc = ld->errors ? -1 : 0;
    flush_messages(ld, errs);
    free(ld);
    if (rc)
        config_unref(c);
    else
        *out = c;
    return rc;
}

int config_load_file(const char *path, struct config **out, struct config_errors *errs)
{
    FILE *f = fopen(path, "rb");
    const char *problem = NULL;
    char *text = NULL;
    size_t len = 0;
    if (!f) {
        problem = strerror(errno);
    } else {
        /* Read at most one byte past the limit: a pipe or /proc file has no size. */
        text = malloc(CONFIG_MAX_TEXT_BYTES + 1);
        if (!text)
            problem = "out of memory";
        else
            len = fread(text, 1, CONFIG_MAX_TEXT_BYTES + 1, f);
        if (text && ferror(f))
            problem = strerror(errno ? errno : EIO);
        fclose(f);
    }
    if (problem) {
        char message[256];
        snprintf(message, sizeof message, "cannot read: %s", problem);
        report_whole(errs, path, message);
        free(text);
        return -1;
    }
    /* A text one byte past the limit is refused there. */
    int rc = config_load_text(path, text, len, out, errs);
    free(text);
    return rc;
}
