/*
 * config_yaml — walks a YAML document against tables of known keys, for config.c.
 *
 * config.c describes each section of the file as a table of struct
 * config_yaml_field rows {key, parse function, offset, bounds, flags};
 * config_yaml_walk checks one mapping against such a table: unknown keys
 * (with a "did you mean"), repeated keys, wrong shapes and missing required
 * keys are reported, and each present key's parse function runs in table
 * order, so a later row may rely on an earlier one. Problems are collected
 * with their line and key path, never returned early, so one load reports all
 * of them. This file owns the libyaml document and the collected messages;
 * config.c owns the snapshot being filled.
 */
#ifndef UNBUSY_CONFIG_YAML_H
#define UNBUSY_CONFIG_YAML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <yaml.h>

#include "config/config.h"

#define CONFIG_YAML_MAX_MESSAGES 200 /* problems kept; more are counted and summarised */
#define CONFIG_YAML_MAX_FIELDS 32    /* rows per table */
#define CONFIG_YAML_MAX_DEPTH 64     /* lists and mappings inside each other */
#define CONFIG_YAML_MAX_ANCHORS 100  /* &name definitions per file */
/* The document with every alias expanded, each node weighing 1 plus its scalar's length:
   what an alias-free text of CONFIG_MAX_TEXT_BYTES could weigh at most. */
#define CONFIG_YAML_MAX_EXPANDED ((uint64_t)CONFIG_MAX_TEXT_BYTES * 3 / 2 + 1)

struct config_yaml_msg {
    int line;
    unsigned seq; /* keeps the order of problems on one line */
    char *text;
};

struct config_yaml_loader {
    const char *source; /* the file name in messages */
    yaml_document_t doc;
    struct config *cfg;    /* the snapshot being filled */
    bool providers_broken; /* the providers section is unusable: do not
                              cascade into "unknown provider" errors */
    unsigned errors, warnings, dropped;
    size_t nmsgs;
    struct config_yaml_msg msgs[CONFIG_YAML_MAX_MESSAGES];
    size_t pathlen;
    char path[256]; /* the key path of the node being parsed */
};

struct config_yaml_field;
typedef void (*config_yaml_fn)(struct config_yaml_loader *ld, yaml_node_t *value, void *obj,
                               const struct config_yaml_field *f);

enum {
    CONFIG_YAML_REQUIRED = 1 << 0,
    CONFIG_YAML_EMPTY_IS_NULL = 1 << 1, /* strings: "" stores NULL */
    CONFIG_YAML_NONEMPTY = 1 << 2,      /* strings: "" is an error */
    CONFIG_YAML_HEADER_SAFE = 1 << 3,   /* strings: no control characters (an HTTP header) */
    CONFIG_YAML_AUTO_IS_ZERO = 1 << 4,  /* durations: the word "auto" stores 0 */
    CONFIG_YAML_ABOVE_MIN = 1 << 5,     /* numbers: min itself is out of range */
    CONFIG_YAML_UNSET_IS_ERROR = 1 << 6, /* strings: an unset ${VAR} is an error, not a warning */
};

/* Numbers (doubles) give their bounds in millionths, so a table row stays integers. */
#define CONFIG_YAML_MICRO 1000000ll

struct config_yaml_field {
    const char *key;
    config_yaml_fn parse;
    size_t offset;    /* where in obj the value goes */
    int64_t min, max; /* integers, durations (ms), sizes (bytes), numbers (millionths) */
    unsigned flags;
};

/*
 * Parses text (libyaml) and walks its root mapping with the top-level table,
 * obj being the snapshot. A YAML syntax error stops there (libyaml cannot go
 * on), reported with its line.
 */
void config_yaml_load(struct config_yaml_loader *ld, const char *text, size_t len,
                      const struct config_yaml_field *top, size_t ntop, void *obj);
/* Appends the problems, sorted by line, to errs (may be NULL); frees them. */
void config_yaml_flush(struct config_yaml_loader *ld, struct config_errors *errs);

/* Records a problem at line under the current key path. */
void config_yaml_report(struct config_yaml_loader *ld, int line, bool warning, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Table rows: a key parsed by fn into obj's member, or a whole section handled by fn. */
#define CONFIG_FIELD(key, fn, type, member, min, max, flags)                                       \
    {                                                                                              \
        key, fn, offsetof(type, member), min, max, flags                                           \
    }
#define CONFIG_SECTION(key, fn, flags)                                                             \
    {                                                                                              \
        key, fn, 0, 0, 0, flags                                                                    \
    }
#define CONFIG_COUNT(a) (sizeof(a) / sizeof((a)[0]))

#define CONFIG_YAML_ERR(ld, node, ...)                                                             \
    config_yaml_report((ld), config_yaml_line(node), false, __VA_ARGS__)

/* Key paths: push returns the old length, to pop back to. */
size_t config_yaml_path_key(struct config_yaml_loader *ld, const char *key);
size_t config_yaml_path_index(struct config_yaml_loader *ld, size_t index);
void config_yaml_path_pop(struct config_yaml_loader *ld, size_t old);

int config_yaml_line(const yaml_node_t *n);         /* 1-based */
const char *config_yaml_kind(const yaml_node_t *n); /* "a mapping", "a list", ... */
bool config_yaml_is_null(const yaml_node_t *n);     /* absent, empty, ~ or null */
yaml_node_t *config_yaml_node(struct config_yaml_loader *ld, int index);
/* strdup that reports running out of memory (so the load fails). */
char *config_yaml_strdup(struct config_yaml_loader *ld, const char *s);
/* A scalar's text after ${ENV} substitution (caller frees), or NULL (reported). */
char *config_yaml_text(struct config_yaml_loader *ld, yaml_node_t *n);

/* Checks map against fields and runs the parsers; a null map is an empty one. */
void config_yaml_walk(struct config_yaml_loader *ld, yaml_node_t *map,
                      const struct config_yaml_field *fields, size_t nfields, void *obj);

/*
 * Maps keyed by names the user chooses (providers, models, headers):
 * named_begin checks the shape and size and reports repeated names (compared
 * without case when nocase), setting (*dup)[i] for each repeat (caller frees
 * *dup). Returns the number of pairs, or -1 (reported). named_key returns
 * pair i's key, or NULL for a key that is not a name (not a scalar, empty,
 * with spaces or control characters; reported).
 */
long config_yaml_named_begin(struct config_yaml_loader *ld, yaml_node_t *map, size_t limit,
                             bool nocase, const char *what, bool **dup);
const char *config_yaml_named_key(struct config_yaml_loader *ld, yaml_node_t *map, size_t i,
                                  yaml_node_t **key, yaml_node_t **value);

/* Field parsers for the tables. */
/* Which of names[0..n) the text s (v's) is, or -1 after reporting at v "unknown WHAT \"s\""
   with a "did you mean" or the list of names. */
int config_yaml_choice(struct config_yaml_loader *ld, yaml_node_t *v, const char *s, const char *what,
                       const char *const *names, size_t n);

void config_yaml_string(struct config_yaml_loader *ld, yaml_node_t *v, void *obj,
                        const struct config_yaml_field *f); /* char *, flags apply */
void config_yaml_header_name(struct config_yaml_loader *ld, yaml_node_t *v, void *obj,
                             const struct config_yaml_field *f); /* char * */
void config_yaml_bool(struct config_yaml_loader *ld, yaml_node_t *v, void *obj,
                      const struct config_yaml_field *f); /* bool */
void config_yaml_int(struct config_yaml_loader *ld, yaml_node_t *v, void *obj,
                     const struct config_yaml_field *f); /* int */
void config_yaml_u32(struct config_yaml_loader *ld, yaml_node_t *v, void *obj,
                     const struct config_yaml_field *f); /* uint32_t */
void config_yaml_duration(struct config_yaml_loader *ld, yaml_node_t *v, void *obj,
                          const struct config_yaml_field *f); /* uint32_t ms */
void config_yaml_size(struct config_yaml_loader *ld, yaml_node_t *v, void *obj,
                      const struct config_yaml_field *f); /* size_t */
void config_yaml_number(struct config_yaml_loader *ld, yaml_node_t *v, void *obj,
                        const struct config_yaml_field *f); /* double */

static inline void *config_yaml_field_ptr(void *obj, const struct config_yaml_field *f)
{
    return (char *)obj + f->offset;
}

#endif
