#include "config/config_yaml.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config/config_value.h"

#define MAX_SCALAR_BYTES (1u << 20) /* one value after ${ENV} substitution */

#define ERR CONFIG_YAML_ERR

/* ---- problems and key paths ---- */

void config_yaml_report(struct config_yaml_loader *ld, int line, bool warning, const char *fmt, ...)
{
    if (warning)
        ld->warnings++;
    else
        ld->errors++;
    if (ld->nmsgs == CONFIG_YAML_MAX_MESSAGES) {
        ld->dropped++;
        return;
    }
    char message[768], text[1280];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    /* A problem tied to no key (YAML syntax, the file as a whole) has no path. */
    snprintf(text, sizeof text, "%s:%d: %s%s%s%s\n", ld->source, line, ld->path,
             ld->pathlen ? ": " : "", warning ? "warning: " : "", message);
    struct config_yaml_msg *m = &ld->msgs[ld->nmsgs];
    if (!(m->text = strdup(text))) return; /* still counted, so the load fails */
    m->line = line;
    m->seq = (unsigned)ld->nmsgs++;
}

static size_t path_push(struct config_yaml_loader *ld, const char *segment, bool dot)
{
    size_t old = ld->pathlen, room = sizeof ld->path - old;
    int n = snprintf(ld->path + old, room, "%s%s", dot && old ? "." : "", segment);
    ld->pathlen = (n < 0 || (size_t)n >= room) ? sizeof ld->path - 1 : old + (size_t)n;
    return old;
}

size_t config_yaml_path_key(struct config_yaml_loader *ld, const char *key)
{
    return path_push(ld, key, true);
}

size_t config_yaml_path_index(struct config_yaml_loader *ld, size_t index)
{
    char segment[32];
    snprintf(segment, sizeof segment, "[%zu]", index);
    return path_push(ld, segment, false);
}

void config_yaml_path_pop(struct config_yaml_loader *ld, size_t old)
{
    ld->pathlen = old;
    ld->path[old] = '\0';
}

static int cmp_msg(const void *a, const void *b)
{
    const struct config_yaml_msg *x = a, *y = b;
    if (x->line != y->line) return x->line < y->line ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

void config_yaml_flush(struct config_yaml_loader *ld, struct config_errors *errs)
{
    qsort(ld->msgs, ld->nmsgs, sizeof ld->msgs[0], cmp_msg);
    for (size_t i = 0; i < ld->nmsgs; i++) {
        if (errs) buf_append_str(&errs->text, ld->msgs[i].text);
        free(ld->msgs[i].text);
    }
    ld->nmsgs = 0;
    if (errs) {
        if (ld->dropped)
            buf_printf(&errs->text, "%s: %u more problems not shown\n", ld->source, ld->dropped);
        errs->count += ld->errors;
        errs->warnings += ld->warnings;
    }
}

/* ---- nodes and scalars ---- */

int config_yaml_line(const yaml_node_t *n)
{
    return (int)n->start_mark.line + 1;
}

yaml_node_t *config_yaml_node(struct config_yaml_loader *ld, int index)
{
    return yaml_document_get_node(&ld->doc, index);
}

const char *config_yaml_kind(const yaml_node_t *n)
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

bool config_yaml_is_null(const yaml_node_t *n)
{
    if (!n) return true;
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    const char *s = (const char *)n->data.scalar.value;
    return n->data.scalar.length == 0 || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 ||
           strcmp(s, "Null") == 0 || strcmp(s, "NULL") == 0;
}

char *config_yaml_strdup(struct config_yaml_loader *ld, const char *s)
{
    char *copy = strdup(s);
    if (!copy) config_yaml_report(ld, 1, false, "out of memory");
    return copy;
}

struct unset_ctx {
    struct config_yaml_loader *ld;
    int line;
};

/* An unset ${VAR} warns instead of failing: `--check` on a machine without the
   secrets must pass, but a missing key should still show. */
static void warn_unset(void *ud, const char *name)
{
    struct unset_ctx *u = ud;
    config_yaml_report(u->ld, u->line, true, "${%s} is not set; using an empty value", name);
}

/* For a value whose absence would weaken the gateway (a token that guards it): the
   variable is part of the configuration, and a missing one must stop the load. */
static void fail_unset(void *ud, const char *name)
{
    struct unset_ctx *u = ud;
    config_yaml_report(u->ld, u->line, false,
                       "${%s} is not set (required here: set it, or remove this key)", name);
}

static char *expand_text(struct config_yaml_loader *ld, yaml_node_t *n, bool unset_is_error)
{
    if (n->type != YAML_SCALAR_NODE) {
        ERR(ld, n, "expected a single value, got %s", config_yaml_kind(n));
        return NULL;
    }
    const char *s = (const char *)n->data.scalar.value;
    size_t len = n->data.scalar.length;
    if (memchr(s, '\0', len)) {
        ERR(ld, n, "value contains a NUL character");
        return NULL;
    }
    struct buf out;
    struct unset_ctx u = {ld, config_yaml_line(n)};
    const char *why;
    buf_init(&out, MAX_SCALAR_BYTES);
    if (config_value_expand_env(s, len, &out, unset_is_error ? fail_unset : warn_unset, &u, &why)) {
        ERR(ld, n, "bad ${...}: %s", why);
        buf_free(&out);
        return NULL;
    }
    if (buf_append(&out, "", 0)) { /* an empty value still needs its terminator */
        config_yaml_report(ld, 1, false, "out of memory");
        buf_free(&out);
        return NULL;
    }
    return buf_steal(&out, NULL);
}

char *config_yaml_text(struct config_yaml_loader *ld, yaml_node_t *n)
{
    return expand_text(ld, n, false);
}

/* ---- field parsers ---- */

static void store_string(void *obj, const struct config_yaml_field *f, char *s)
{
    char **dst = config_yaml_field_ptr(obj, f);
    free(*dst);
    *dst = s;
}

void config_yaml_string(struct config_yaml_loader *ld, yaml_node_t *v, void *obj,
                        const struct config_yaml_field *f)
{
    char *s = expand_text(ld, v, f->flags & CONFIG_YAML_UNSET_IS_ERROR);
    if (!s) return;
    if (!*s && (f->flags & CONFIG_YAML_NONEMPTY)) {
        ERR(ld, v, "must not be empty");
        free(s);
        return;
    }
    if ((f->flags & CONFIG_YAML_HEADER_SAFE) && config_value_has_control(s)) {
        ERR(ld, v, "control characters (line breaks) are not allowed in a header value");
        free(s);
        return;
    }
    if (!*s && (f->flags & CONFIG_YAML_EMPTY_IS_NULL)) {
        free(s);
        s = NULL;
    }
    store_string(obj, f, s);
}

void config_yaml_header_name(struct config_yaml_loader *ld, yaml_node_t *v, void *obj,
                             const struct config_yaml_field *f)
{
    char *s = config_yaml_text(ld, v);
    if (s && !config_value_is_token(s)) {
        ERR(ld, v, "\"%s\" is not a valid HTTP header name", s);
        free(s);
    } else if (s) {
        store_string(obj, f, s);
    }
}

void config_yaml_bool(struct config_yaml_loader *ld, yaml_node_t *v, void *obj,
                      const struct config_yaml_field *f)
{
    char *s = config_yaml_text(ld, v);
    const char *why;
    if (s && config_value_bool(s, config_yaml_field_ptr(obj, f), &why))
        ERR(ld, v, "%s, got \"%s\"", why, s);
    free(s);
}

/* An integer within [f->min, f->max]; 0, or -1 (reported). */
static int parse_integer(struct config_yaml_loader *ld, yaml_node_t *v,
                         const struct config_yaml_field *f, int64_t *out)
{
    char *s = config_yaml_text(ld, v);
    const char *why;
    int rc = -1;
    if (!s) return -1;
    if (config_value_int(s, out, &why))
        ERR(ld, v, "%s, got \"%s\"", why, s);
    else if (*out < f->min || *out > f->max)
        ERR(ld, v, "%s is out of range (%lld to %lld)", s, (long long)f->min, (long long)f->max);
    else
        rc = 0;
    free(s);
    return rc;
}

void config_yaml_u32(struct config_yaml_loader *ld, yaml_node_t *v, void *obj,
                     const struct config_yaml_field *f)
{
    int64_t x;
    if (parse_integer(ld, v, f, &x) == 0) *(uint32_t *)config_yaml_field_ptr(obj, f) = (uint32_t)x;
}

void config_yaml_int(struct config_yaml_loader *ld, yaml_node_t *v, void *obj,
                     const struct config_yaml_field *f)
{
    int64_t x;
    if (parse_integer(ld, v, f, &x) == 0) *(int *)config_yaml_field_ptr(obj, f) = (int)x;
}

void config_yaml_duration(struct config_yaml_loader *ld, yaml_node_t *v, void *obj,
                          const struct config_yaml_field *f)
{
    char *s = config_yaml_text(ld, v);
    uint32_t ms;
    if (!s) return;
    const char *or_auto = f->flags & CONFIG_YAML_AUTO_IS_ZERO ? ", or auto" : "";
    bool is_auto = *or_auto && strcmp(s, "auto") == 0;
    int rc = is_auto ? 0 : config_parse_duration_ms(s, &ms);
    if (is_auto) ms = 0;
    if (rc)
        ERR(ld, v, "bad duration \"%s\": %s%s", s,
            rc == -ERANGE ? "too long"
                          : "expected e.g. 500ms, 30s, 1.5m, 2h or an integer of milliseconds",
            rc == -ERANGE ? "" : or_auto);
    else if (!is_auto && (ms < f->min || ms > f->max))
        ERR(ld, v, "%s is out of range (%lldms to %lldms%s)", s, (long long)f->min,
            (long long)f->max, or_auto);
    else
        *(uint32_t *)config_yaml_field_ptr(obj, f) = ms;
    free(s);
}

void config_yaml_size(struct config_yaml_loader *ld, yaml_node_t *v, void *obj,
                      const struct config_yaml_field *f)
{
    char *s = config_yaml_text(ld, v);
    size_t bytes;
    if (!s) return;
    int rc = config_parse_size(s, &bytes);
    if (rc == 0 && bytes > (uint64_t)INT64_MAX) rc = -ERANGE;
    if (rc)
        ERR(ld, v, "bad size \"%s\": %s", s,
            rc == -ERANGE ? "too large" : "expected e.g. 65536, 64k, 8m or 1g");
    else if ((int64_t)bytes < f->min || (int64_t)bytes > f->max)
        ERR(ld, v, "%s is out of range (%lld to %lld bytes)", s, (long long)f->min,
            (long long)f->max);
    else
        *(size_t *)config_yaml_field_ptr(obj, f) = bytes;
    free(s);
}

void config_yaml_number(struct config_yaml_loader *ld, yaml_node_t *v, void *obj,
                        const struct config_yaml_field *f)
{
    char *s = config_yaml_text(ld, v);
    const char *why;
    double x;
    if (!s) return;
    double min = (double)f->min / CONFIG_YAML_MICRO, max = (double)f->max / CONFIG_YAML_MICRO;
    bool above = f->flags & CONFIG_YAML_ABOVE_MIN;
    if (config_value_number(s, &x, &why))
        ERR(ld, v, "%s, got \"%s\"", why, s);
    else if (x < min || (above && x == min) || x > max)
        ERR(ld, v, "%s is out of range (%s%.15g%s %.15g)", s, above ? "more than " : "", min,
            above ? ", at most" : " to", max);
    else
        *(double *)config_yaml_field_ptr(obj, f) = x;
    free(s);
}

/* ---- mappings ---- */

static void report_unknown_key(struct config_yaml_loader *ld, yaml_node_t *k, const char *key,
                               const struct config_yaml_field *fields, size_t nfields)
{
    const char *names[CONFIG_YAML_MAX_FIELDS];
    char list[512] = "";
    size_t used = 0;
    for (size_t i = 0; i < nfields; i++) {
        names[i] = fields[i].key;
        int n = snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "", fields[i].key);
        if (n > 0 && (size_t)n < sizeof list - used) used += (size_t)n;
    }
    const char *near = config_value_nearest(key, names, nfields);
    size_t old = config_yaml_path_key(ld, key);
    if (near)
        ERR(ld, k, "unknown key; did you mean \"%s\"?", near);
    else
        ERR(ld, k, "unknown key (expected one of: %s)", list);
    config_yaml_path_pop(ld, old);
}

int config_yaml_choice(struct config_yaml_loader *ld, yaml_node_t *v, const char *s, const char *what,
                       const char *const *names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(s, names[i]) == 0)
            return (int)i;
    const char *near = config_value_nearest(s, names, n);
    if (near) {
        ERR(ld, v, "unknown %s \"%s\"; did you mean \"%s\"?", what, s, near);
        return -1;
    }
    char list[512] = "";
    size_t used = 0;
    for (size_t i = 0; i < n; i++) {
        int k = snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "", names[i]);
        if (k > 0 && (size_t)k < sizeof list - used) used += (size_t)k;
    }
    ERR(ld, v, "unknown %s \"%s\" (expected one of: %s)", what, s, list);
    return -1;
}

void config_yaml_walk(struct config_yaml_loader *ld, yaml_node_t *map,
                      const struct config_yaml_field *fields, size_t nfields, void *obj)
{
    yaml_node_t *value[CONFIG_YAML_MAX_FIELDS] = {0}, *key[CONFIG_YAML_MAX_FIELDS] = {0};
    if (nfields > CONFIG_YAML_MAX_FIELDS)
        abort(); /* a table past the limit is a programming error */
    if (!config_yaml_is_null(map)) {
        if (map->type != YAML_MAPPING_NODE) {
            ERR(ld, map, "expected a mapping, got %s", config_yaml_kind(map));
            return;
        }
        for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
             p++) {
            yaml_node_t *k = config_yaml_node(ld, p->key);
            if (k->type != YAML_SCALAR_NODE) {
                ERR(ld, k, "expected a key name, got %s", config_yaml_kind(k));
                continue;
            }
            const char *name = (const char *)k->data.scalar.value;
            size_t i = 0;
            while (i < nfields && strcmp(name, fields[i].key) != 0)
                i++;
            if (i == nfields) {
                report_unknown_key(ld, k, name, fields, nfields);
            } else if (key[i]) {
                size_t old = config_yaml_path_key(ld, name);
                ERR(ld, k, "duplicate key (first at line %d)", config_yaml_line(key[i]));
                config_yaml_path_pop(ld, old);
            } else {
                key[i] = k;
                value[i] = config_yaml_node(ld, p->value);
            }
        }
    }
    for (size_t i = 0; i < nfields; i++) {
        size_t old = config_yaml_path_key(ld, fields[i].key);
        if (!config_yaml_is_null(value[i]))
            fields[i].parse(ld, value[i], obj, &fields[i]);
        else if (fields[i].flags & CONFIG_YAML_REQUIRED)
            config_yaml_report(
                ld, key[i] ? config_yaml_line(key[i]) : (map ? config_yaml_line(map) : 1), false,
                "missing (required)");
        config_yaml_path_pop(ld, old);
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
    if (c) return c;
    return x->index < y->index ? -1 : x->index > y->index;
}

/* Sorting keeps this O(n log n) for a config with thousands of models. */
static int find_duplicates(struct config_yaml_loader *ld, yaml_node_t *map, bool nocase,
                           const char *what, bool *dup)
{
    size_t n = (size_t)(map->data.mapping.pairs.top - map->data.mapping.pairs.start);
    struct named_pair *v = calloc(n ? n : 1, sizeof *v);
    if (!v) return -1;
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *k = config_yaml_node(ld, map->data.mapping.pairs.start[i].key);
        if (k->type == YAML_SCALAR_NODE)
            v[m++] =
                (struct named_pair){(const char *)k->data.scalar.value, config_yaml_line(k), i};
    }
    qsort_r(v, m, sizeof *v, cmp_named_pair, &nocase);
    for (size_t i = 1, first = 0; i < m; i++) {
        bool same =
            nocase ? !strcasecmp(v[i].name, v[first].name) : !strcmp(v[i].name, v[first].name);
        if (!same) {
            first = i;
            continue;
        }
        dup[v[i].index] = true;
        size_t old = config_yaml_path_key(ld, v[i].name);
        config_yaml_report(ld, v[i].line, false, "duplicate %s (first at line %d)", what,
                           v[first].line);
        config_yaml_path_pop(ld, old);
    }
    free(v);
    return 0;
}

long config_yaml_named_begin(struct config_yaml_loader *ld, yaml_node_t *map, size_t limit,
                             bool nocase, const char *what, bool **dup)
{
    *dup = NULL;
    if (map->type != YAML_MAPPING_NODE) {
        ERR(ld, map, "expected a mapping of %s names, got %s", what, config_yaml_kind(map));
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

const char *config_yaml_named_key(struct config_yaml_loader *ld, yaml_node_t *map, size_t i,
                                  yaml_node_t **key, yaml_node_t **value)
{
    yaml_node_pair_t *p = &map->data.mapping.pairs.start[i];
    *key = config_yaml_node(ld, p->key);
    *value = config_yaml_node(ld, p->value);
    if ((*key)->type != YAML_SCALAR_NODE) {
        ERR(ld, *key, "expected a name, got %s", config_yaml_kind(*key));
        return NULL;
    }
    const char *name = (const char *)(*key)->data.scalar.value;
    if (!*name || config_value_has_control(name) || strpbrk(name, " \t")) {
        size_t old = config_yaml_path_key(ld, name);
        ERR(ld, *key, "a name must be non-empty, without spaces or control characters");
        config_yaml_path_pop(ld, old);
        return NULL;
    }
    return name;
}

/* ---- the document ---- */

static void report_syntax(struct config_yaml_loader *ld, const yaml_parser_t *parser)
{
    int line = (int)parser->problem_mark.line + 1;
    const char *problem = parser->problem ? parser->problem : "cannot parse";
    if (parser->context)
        config_yaml_report(ld, line, false, "YAML syntax: %s (%s at line %zu)", problem,
                           parser->context, parser->context_mark.line + 1);
    else
        config_yaml_report(ld, line, false, "YAML syntax: %s", problem);
}

/*
 * Nesting, anchors and aliases, checked on the event stream before libyaml
 * builds the document. libyaml's scanner looks at every open flow level
 * ([ or {) for each token, so a text nested thousands deep costs it time
 * quadratic in the depth; no config needs more than a few levels. An alias
 * is a few bytes that stand for a whole node, and the walk copies every
 * scalar each time it is reached: nested aliases ("billion laughs") would
 * make a short text cost gigabytes. libyaml also looks each alias up among
 * all anchors defined so far, one by one. So nesting is shallow, anchors are
 * few, and the document with every alias expanded weighs no more than an
 * alias-free text of the largest size could (each node counting 1 plus its
 * scalar's length; escapes such as \L make a value at most half again longer
 * than its source). Stopping at the first level too deep keeps this pass
 * linear too. Returns 0, or -1 (reported). A syntax error is left to the
 * load, which reports it.
 */
struct anchor_weight {
    char *name;
    uint64_t start;  /* the expanded weight when its node began */
    uint64_t weight; /* the node's own expanded weight, once it has ended */
    size_t depth;    /* the collection depth it opened at, while open */
    bool open;
};

static int check_bounds(struct config_yaml_loader *ld, const char *text, size_t len)
{
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser)) {
        config_yaml_report(ld, 1, false, "out of memory");
        return -1;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    yaml_parser_set_encoding(&parser, YAML_UTF8_ENCODING);
    struct anchor_weight anchors[CONFIG_YAML_MAX_ANCHORS];
    size_t nanchors = 0, depth = 0;
    uint64_t expanded = 0;
    int rc = 0;
    for (bool done = false; !done && rc == 0;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&parser, &ev)) break;
        int line = (int)ev.start_mark.line + 1;
        const char *anchor = NULL;
        switch (ev.type) {
        case YAML_STREAM_END_EVENT:
            done = true;
            break;
        case YAML_SCALAR_EVENT:
            expanded += 1 + ev.data.scalar.length;
            anchor = (const char *)ev.data.scalar.anchor;
            break;
        case YAML_SEQUENCE_START_EVENT:
        case YAML_MAPPING_START_EVENT:
            expanded += 1;
            if (++depth > CONFIG_YAML_MAX_DEPTH) {
                config_yaml_report(ld, line, false, "nested deeper than %d levels",
                                   CONFIG_YAML_MAX_DEPTH);
                rc = -1;
            }
            anchor = ev.type == YAML_SEQUENCE_START_EVENT
                         ? (const char *)ev.data.sequence_start.anchor
                         : (const char *)ev.data.mapping_start.anchor;
            break;
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT:
            /* open anchors nest, so the one closing now is the latest still open */
            for (size_t i = nanchors; i-- > 0;) {
                if (!anchors[i].open) continue;
                if (anchors[i].depth == depth) {
                    anchors[i].open = false;
                    anchors[i].weight = expanded - anchors[i].start;
                }
                break;
            }
            depth--;
            break;
        case YAML_ALIAS_EVENT: {
            const char *name = (const char *)ev.data.alias.anchor;
            size_t i = nanchors;
            while (i > 0 && strcmp(anchors[i - 1].name, name) != 0)
                i--;
            if (i > 0 && anchors[i - 1].open) {
                config_yaml_report(ld, line, false,
                                   "the alias *%.64s is inside the node it names (&%.64s)", name,
                                   name);
                rc = -1;
            } else if (i > 0) {
                expanded += anchors[i - 1].weight;
            } /* an unknown anchor: the load reports it */
            break;
        }
        default:
            break;
        }
        if (rc == 0 && anchor) {
            if (nanchors == CONFIG_YAML_MAX_ANCHORS) {
                config_yaml_report(ld, line, false, "more than %d YAML anchors (&name)",
                                   CONFIG_YAML_MAX_ANCHORS);
                rc = -1;
            } else if (!(anchors[nanchors].name = strdup(anchor))) {
                config_yaml_report(ld, line, false, "out of memory");
                rc = -1;
            } else {
                /* a scalar's node is whole already; a collection's ends at its depth */
                struct anchor_weight *a = &anchors[nanchors++];
                bool scalar = ev.type == YAML_SCALAR_EVENT;
                uint64_t own = scalar ? 1 + ev.data.scalar.length : 1;
                a->start = expanded - own;
                a->weight = scalar ? own : 0;
                a->depth = depth;
                a->open = !scalar;
            }
        }
        if (rc == 0 && expanded > CONFIG_YAML_MAX_EXPANDED) {
            config_yaml_report(ld, line, false,
                               "YAML aliases expand the document past %u MiB, refused",
                               (unsigned)(CONFIG_YAML_MAX_EXPANDED >> 20));
            rc = -1;
        }
        yaml_event_delete(&ev);
    }
    for (size_t i = 0; i < nanchors; i++)
        free(anchors[i].name);
    yaml_parser_delete(&parser);
    return rc;
}

void config_yaml_load(struct config_yaml_loader *ld, const char *text, size_t len,
                      const struct config_yaml_field *top, size_t ntop, void *obj)
{
    if (check_bounds(ld, text, len)) return;
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser)) {
        config_yaml_report(ld, 1, false, "out of memory");
        return;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    yaml_parser_set_encoding(&parser, YAML_UTF8_ENCODING);
    if (!yaml_parser_load(&parser, &ld->doc)) {
        report_syntax(ld, &parser);
        yaml_parser_delete(&parser);
        return;
    }
    yaml_document_t extra;
    if (yaml_parser_load(&parser, &extra)) {
        yaml_node_t *root = yaml_document_get_root_node(&extra);
        if (root)
            config_yaml_report(ld, config_yaml_line(root), false,
                               "only one YAML document is allowed per file");
        yaml_document_delete(&extra);
    } else {
        report_syntax(ld, &parser);
    }
    yaml_parser_delete(&parser);

    yaml_node_t *root = yaml_document_get_root_node(&ld->doc);
    if (root && !config_yaml_is_null(root) && root->type != YAML_MAPPING_NODE)
        ERR(ld, root, "the file must be a mapping (server:, providers:, models:), got %s",
            config_yaml_kind(root));
    else
        config_yaml_walk(ld, root, top, ntop, obj);
    yaml_document_delete(&ld->doc);
}
