/*
 * The operator's ways to the key store (keys.h): the `unbusy keys ...`
 * command line and the admin API's /admin/keys endpoints. Both go through
 * keys_create / keys_set_disabled / keys_delete; the admin API runs them on
 * the libuv thread pool, since they write to disk, and answers from the
 * completion on the worker's loop.
 */
#include "admit/keys.h"

#include <cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

#include "base/cli.h"
#include "http/errors.h"
#include "http/server.h"
#include "worker.h"

void keys_write_json(struct buf *b, const struct key_info *ki)
{
    if (ki->from_config)
        buf_append_str(b, "{\"id\":null,\"name\":");
    else
        buf_printf(b, "{\"id\":%" PRId64 ",\"name\":", ki->id);
    buf_append_json_str(b, ki->name, strlen(ki->name));
    buf_printf(b, ",\"source\":\"%s\",\"prefix\":", ki->from_config ? "config" : "store");
    if (ki->prefix[0])
        buf_append_json_str(b, ki->prefix, strlen(ki->prefix));
    else
        buf_append_str(b, "null");
    buf_append_str(b, ",\"models\":[");
    for (size_t i = 0; i < ki->nmodels; i++) {
        if (i) buf_append_str(b, ",");
        buf_append_json_str(b, ki->models[i], strlen(ki->models[i]));
    }
    buf_printf(b,
               "],\"priority\":%d,\"rpm\":%" PRIu32 ",\"tpm\":%" PRIu32
               ",\"max_concurrency\":%" PRIu32 ",\"disabled\":%s",
               ki->priority, ki->rpm, ki->tpm, ki->max_concurrency,
               ki->disabled ? "true" : "false");
    if (ki->from_config)
        buf_append_str(b, ",\"created_at\":null}");
    else
        buf_printf(b, ",\"created_at\":%" PRId64 "}", ki->created_at);
}

/* ---- the command line ---- */

static void usage(FILE *f)
{
    fprintf(f, "usage: unbusy keys COMMAND [--store FILE | --config FILE]\n"
               "  create --name NAME [--models A,B] [--priority 0-3] [--rpm N] [--tpm N]\n"
               "         [--max-concurrency N]   issue a key; prints it once, on stdout\n"
               "  list [--json]                  every key (config file and store)\n"
               "  disable ID|NAME                refuse the key from now on\n"
               "  enable ID|NAME\n"
               "  delete ID|NAME\n"
               "  --store FILE    the SQLite key store\n"
               "  --config FILE   take key_store (and the config's keys) from FILE\n"
               "                  (default: unbusy.yaml, when --store is not given)\n"
               "A running unbusy using the same store sees a change within a few seconds.\n");
}

struct cli {
    const char *command, *target, *store, *config;
    const char *name, *models;
    const char *priority, *rpm, *tpm, *max_concurrency;
    bool json;
};

static int parse_args(int argc, char **argv, struct cli *a)
{
    memset(a, 0, sizeof *a);
    if (argc < 2) return -1;
    a->command = argv[1];
    for (int i = 2; i < argc; i++) {
        const char **slot = NULL, *v = NULL;
        static const char *const names[] = {"--store",  "--config",         "--name",
                                            "--models", "--priority",       "--rpm",
                                            "--tpm",    "--max-concurrency"};
        const char **slots[] = {&a->store,    &a->config, &a->name, &a->models,
                                &a->priority, &a->rpm,    &a->tpm,  &a->max_concurrency};
        for (size_t j = 0; j < sizeof names / sizeof names[0] && !slot; j++)
            if (cli_option(argc, argv, &i, names[j], &v, "unbusy keys")) slot = slots[j];
        if (slot) {
            if (!v) return -1;
            *slot = v;
        } else if (strcmp(argv[i], "--json") == 0) {
            a->json = true;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "unbusy keys: unknown option '%s'\n", argv[i]);
            return -1;
        } else if (!a->target) {
            a->target = argv[i];
        } else {
            fprintf(stderr, "unbusy keys: unexpected argument '%s'\n", argv[i]);
            return -1;
        }
    }
    if (a->store && a->config) {
        fprintf(stderr, "unbusy keys: give --store or --config, not both\n");
        return -1;
    }
    return 0;
}

static int parse_u32(const char *opt, const char *s, uint32_t max, uint32_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = s && *s >= '0' && *s <= '9' ? strtoull(s, &end, 10) : 0;
    if (!s || *s < '0' || *s > '9' || *end || errno || v > max) {
        fprintf(stderr, "unbusy keys: %s: expected an integer from 0 to %" PRIu32 "\n", opt, max);
        return -1;
    }
    *out = (uint32_t)v;
    return 0;
}

/* Splits "a, b,c" (trimmed, repeats dropped) into list (pointers into text). */
static int split_models(char *text, const char **list, size_t *n)
{
    *n = 0;
    for (char *save = NULL, *tok = strtok_r(text, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ')
            tok++;
        size_t len = strlen(tok);
        while (len && tok[len - 1] == ' ')
            tok[--len] = '\0';
        bool seen = false;
        for (size_t i = 0; i < *n; i++)
            seen |= strcmp(list[i], tok) == 0;
        if (seen || !*tok) continue;
        if (*n == KEYS_MAX_MODELS) {
            fprintf(stderr, "unbusy keys: --models: at most %d models\n", KEYS_MAX_MODELS);
            return -1;
        }
        list[(*n)++] = tok;
    }
    return 0;
}

/* Opens the store named by --store, or the config's key_store (with its keys). */
static int open_keys(const struct cli *a, bool need_store, struct keys **k, struct config **cfg)
{
    char err[512];
    *cfg = NULL;
    if (a->store) {
        if (keys_new(a->store, NULL, 0, k, err, sizeof err) == 0) return 0;
        fprintf(stderr, "unbusy keys: %s\n", err);
        return -1;
    }
    const char *path = a->config ? a->config : "unbusy.yaml";
    struct config_errors errs;
    config_errors_init(&errs);
    int rc = config_load_file(path, cfg, &errs);
    if (errs.text.len) fputs(errs.text.data, stderr);
    config_errors_free(&errs);
    if (rc) {
        fprintf(stderr, "unbusy keys: %s: configuration has errors\n", path);
        return -1;
    }
    if (need_store && !(*cfg)->key_store) {
        fprintf(stderr, "unbusy keys: %s has no key_store; add `key_store: FILE` or give --store\n",
                path);
        config_unref(*cfg);
        return -1;
    }
    if (keys_new((*cfg)->key_store, (*cfg)->keys, (*cfg)->nkeys, k, err, sizeof err) == 0) return 0;
    fprintf(stderr, "unbusy keys: %s\n", err);
    config_unref(*cfg);
    return -1;
}

static int cli_create(const struct cli *a, struct keys *k, const struct config *cfg)
{
    struct keys_spec spec = {.name = a->name, .priority = KEYS_PRIORITY_DEFAULT};
    uint32_t priority = KEYS_PRIORITY_DEFAULT;
    if (!a->name) {
        fprintf(stderr, "unbusy keys create: --name is required\n");
        return 2;
    }
    if ((a->priority && parse_u32("--priority", a->priority, KEYS_PRIORITY_MAX, &priority)) ||
        (a->rpm && parse_u32("--rpm", a->rpm, KEYS_MAX_RPM, &spec.rpm)) ||
        (a->tpm && parse_u32("--tpm", a->tpm, KEYS_MAX_TPM, &spec.tpm)) ||
        (a->max_concurrency && parse_u32("--max-concurrency", a->max_concurrency,
                                         KEYS_MAX_CONCURRENCY, &spec.max_concurrency)))
        return 2;
    spec.priority = (int)priority;
    const char *models[KEYS_MAX_MODELS];
    char *text = a->models ? strdup(a->models) : NULL;
    if (text && split_models(text, models, &spec.nmodels)) {
        free(text);
        return 2;
    }
    spec.models = models;
    for (size_t i = 0; cfg && i < spec.nmodels; i++)
        if (!config_find_model(cfg, models[i])) {
            fprintf(stderr, "unbusy keys create: unknown model \"%s\" (not in %s)\n", models[i],
                    cfg->source);
            free(text);
            return 1;
        }
    char plaintext[KEYS_PLAINTEXT_LEN + 1];
    int64_t id = 0;
    const char *why = NULL;
    int rc = keys_create(k, &spec, plaintext, &id, &why);
    free(text);
    if (rc) {
        fprintf(stderr, "unbusy keys create: %s\n", why ? why : strerror(-rc));
        return 1;
    }
    printf("%s\n", plaintext);
    fflush(stdout);
    OPENSSL_cleanse(plaintext, sizeof plaintext);
    fprintf(stderr,
            "created key %" PRId64 " \"%s\". This is the only time the key is shown: "
            "store it now.\n",
            id, a->name);
    return 0;
}

static void print_row(const struct key_info *ki, void *ud)
{
    char id[24], prefix[32], created[32] = "-", limits[64];
    if (ki->from_config)
        snprintf(id, sizeof id, "config");
    else
        snprintf(id, sizeof id, "%" PRId64, ki->id);
    if (ki->prefix[0])
        snprintf(prefix, sizeof prefix, KEYS_PREFIX "%s...", ki->prefix);
    else
        snprintf(prefix, sizeof prefix, "-");
    if (ki->created_at) {
        time_t t = (time_t)ki->created_at;
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(created, sizeof created, "%Y-%m-%dT%H:%M:%SZ", &tm);
    }
    snprintf(limits, sizeof limits, "%" PRIu32 "/%" PRIu32 "/%" PRIu32, ki->rpm, ki->tpm,
             ki->max_concurrency);
    printf("%-7s %-24s %-18s %-8s %3d  %-22s %-20s ", id, ki->name, prefix,
           ki->disabled ? "disabled" : "active", ki->priority, limits, created);
    if (ki->nmodels == 0) printf("*");
    for (size_t i = 0; i < ki->nmodels; i++)
        printf("%s%s", i ? "," : "", ki->models[i]);
    printf("\n");
}

static void json_row(const struct key_info *ki, void *ud)
{
    struct buf *b = ud;
    if (b->len > 1) buf_append_str(b, ",");
    keys_write_json(b, ki);
}

static int cli_list(const struct cli *a, struct keys *k, const struct config *cfg)
{
    if (a->json) {
        struct buf b;
        buf_init(&b, 1u << 30);
        buf_append_str(&b, "[");
        keys_each(k, json_row, &b);
        buf_append_str(&b, "]\n");
        fwrite(b.data, 1, b.len, stdout);
        buf_free(&b);
        return 0;
    }
    if (keys_count(k) == 0) {
        /* Only the config opens the gateway; a store without keys refuses everyone. */
        if (cfg && cfg->auth.open)
            printf("no keys: auth is open, the gateway serves anyone who can reach it\n");
        else
            printf("no keys: every request is refused (401) until one is created\n");
        return 0;
    }
    printf("%-7s %-24s %-18s %-8s %3s  %-22s %-20s %s\n", "ID", "NAME", "KEY", "STATUS", "PRI",
           "RPM/TPM/CONCURRENCY", "CREATED", "MODELS");
    keys_each(k, print_row, NULL);
    return 0;
}

static int cli_change(const struct cli *a, struct keys *k)
{
    if (!a->target) {
        fprintf(stderr, "unbusy keys %s: which key? give its ID or NAME\n", a->command);
        return 2;
    }
    const char *why = NULL;
    int rc;
    if (strcmp(a->command, "delete") == 0)
        rc = keys_delete(k, a->target, &why);
    else
        rc = keys_set_disabled(k, a->target, strcmp(a->command, "disable") == 0, &why);
    if (rc) {
        fprintf(stderr, "unbusy keys %s %s: %s\n", a->command, a->target,
                why ? why : strerror(-rc));
        return 1;
    }
    printf("%sd key %s\n", a->command, a->target); /* disabled, enabled, deleted */
    return 0;
}

int keys_cli_main(int argc, char **argv)
{
    struct cli a;
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        usage(stdout);
        return 0;
    }
    if (parse_args(argc, argv, &a)) {
        usage(stderr);
        return 2;
    }
    bool create = strcmp(a.command, "create") == 0, list = strcmp(a.command, "list") == 0;
    bool change = strcmp(a.command, "disable") == 0 || strcmp(a.command, "enable") == 0 ||
                  strcmp(a.command, "delete") == 0;
    if (!create && !list && !change) {
        fprintf(stderr, "unbusy keys: unknown command '%s'\n", a.command);
        usage(stderr);
        return 2;
    }
    if ((create && a.target) ||
        (!create && (a.name || a.models || a.priority || a.rpm || a.tpm || a.max_concurrency)) ||
        (list && a.target) || (!list && a.json)) {
        fprintf(stderr, "unbusy keys %s: unexpected argument\n", a.command);
        usage(stderr);
        return 2;
    }
    struct keys *k;
    struct config *cfg;
    if (open_keys(&a, !list, &k, &cfg)) return 1;
    int rc = create ? cli_create(&a, k, cfg) : list ? cli_list(&a, k, cfg) : cli_change(&a, k);
    keys_free(k);
    config_unref(cfg);
    return rc;
}

/* ---- the admin API ---- */

enum job_op { JOB_CREATE, JOB_DISABLE, JOB_ENABLE, JOB_DELETE };

/* One change, run on the thread pool; everything it needs is owned here. */
struct job {
    uv_work_t work;
    struct server_conn *c;
    struct keys *k;
    enum job_op op;
    struct keys_spec spec;
    char *name;
    char *models[KEYS_MAX_MODELS];
    char target[CONFIG_KEY_NAME_MAX + 1];
    int rc;
    const char *why;
    int64_t id;
    char plaintext[KEYS_PLAINTEXT_LEN + 1];
};

static void job_free(struct job *j)
{
    free(j->name);
    for (size_t i = 0; i < j->spec.nmodels; i++)
        free(j->models[i]);
    OPENSSL_cleanse(j->plaintext, sizeof j->plaintext);
    free(j);
}

static bool path_is(const char *p, size_t len, const char *lit)
{
    return strlen(lit) == len && memcmp(p, lit, len) == 0;
}

static void answer(struct server_conn *c, int status, const char *headers, struct buf *b)
{
    server_respond(c, status, "application/json", headers, b->data, b->len);
    server_request_done(c);
}

/* An OpenAI-shaped error with a status of our choosing (409 has no gw_err). */
static void answer_error(struct server_conn *c, int status, enum gw_err e, const char *msg)
{
    struct buf b;
    buf_init(&b, 0);
    errors_render(&b, e, msg, NULL);
    answer(c, status, NULL, &b);
    buf_free(&b);
}

static void answer_rc(struct server_conn *c, int rc, const char *why)
{
    const char *msg = why ? why : "the key store failed";
    switch (rc) {
    case -EINVAL:
        answer_error(c, 400, GW_ERR_BAD_FIELD, msg);
        break;
    case -ENOENT:
        answer_error(c, 404, GW_ERR_NOT_FOUND, msg);
        break;
    case -EPERM:
        answer_error(c, 403, GW_ERR_FORBIDDEN, msg);
        break;
    case -EEXIST:
    case -ENOTSUP:
    case -ENOSPC:
        answer_error(c, 409, GW_ERR_BAD_REQUEST, msg);
        break;
    default:
        answer_error(c, 500, GW_ERR_INTERNAL, msg);
    }
}

static void job_run(uv_work_t *w)
{
    struct job *j = w->data;
    switch (j->op) {
    case JOB_CREATE:
        j->rc = keys_create(j->k, &j->spec, j->plaintext, &j->id, &j->why);
        break;
    case JOB_DISABLE:
    case JOB_ENABLE:
        j->rc = keys_set_disabled(j->k, j->target, j->op == JOB_DISABLE, &j->why);
        break;
    case JOB_DELETE:
        j->rc = keys_delete(j->k, j->target, &j->why);
        break;
    }
}

struct find_ctx {
    int64_t id;
    const char *name;
    struct buf *out;
    bool found;
};

static void find_json(const struct key_info *ki, void *ud)
{
    struct find_ctx *f = ud;
    if (f->found || ki->from_config) return;
    if (f->id ? ki->id == f->id : strcmp(ki->name, f->name) == 0) {
        keys_write_json(f->out, ki);
        f->found = true;
    }
}

static void job_done(uv_work_t *w, int status)
{
    struct job *j = w->data;
    struct server_conn *c = j->c;
    if (server_conn_gone(c)) {
        server_request_done(c);
    } else if (j->rc) {
        answer_rc(c, j->rc, j->why);
    } else {
        struct buf b, info;
        buf_init(&b, 0);
        buf_init(&info, 0);
        /* A target of all digits is an id (key names never are). */
        bool numeric = j->target[0] && strspn(j->target, "0123456789") == strlen(j->target);
        int64_t id = j->op == JOB_CREATE ? j->id : numeric ? strtoll(j->target, NULL, 10) : 0;
        struct find_ctx f = {id, j->target, &info, false};
        if (j->op != JOB_DELETE) keys_each(j->k, find_json, &f);
        if (j->op == JOB_CREATE) {
            /* The one time the key exists outside the client: keep it out of caches. */
            buf_append_str(&b, "{\"key\":");
            buf_append_json_str(&b, j->plaintext, strlen(j->plaintext));
            buf_printf(&b, ",\"id\":%" PRId64 ",\"info\":%s}", j->id, f.found ? info.data : "null");
            answer(c, 201, "Cache-Control: no-store\r\n", &b);
            OPENSSL_cleanse(b.data, b.len);
        } else if (j->op == JOB_DELETE) {
            buf_append_str(&b, "{\"deleted\":");
            buf_append_json_str(&b, j->target, strlen(j->target));
            buf_append_str(&b, "}");
            answer(c, 200, NULL, &b);
        } else {
            buf_append_str(&b, f.found ? info.data : "{}");
            answer(c, 200, NULL, &b);
        }
        buf_free(&info);
        buf_free(&b);
    }
    job_free(j);
}

static bool json_u32(const cJSON *v, uint32_t max, uint32_t *out)
{
    if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > max ||
        v->valuedouble != (double)(uint64_t)v->valuedouble)
        return false;
    *out = (uint32_t)v->valuedouble;
    return true;
}

/* {"name", "models", "priority", "rpm", "tpm", "max_concurrency"}: NULL or a problem. */
static const char *parse_create(struct job *j, const cJSON *doc)
{
    if (!cJSON_IsObject(doc)) return "the body must be a JSON object with at least \"name\"";
    j->spec.priority = KEYS_PRIORITY_DEFAULT;
    const cJSON *f;
    cJSON_ArrayForEach(f, doc)
    {
        uint32_t u;
        if (strcmp(f->string, "name") == 0) {
            if (!cJSON_IsString(f)) return "\"name\" must be a string";
            free(j->name);
            if (!(j->name = strdup(f->valuestring))) return "out of memory";
        } else if (strcmp(f->string, "models") == 0) {
            if (!cJSON_IsArray(f)) return "\"models\" must be a list of model names";
            const cJSON *m;
            for (size_t i = 0; i < j->spec.nmodels; i++)
                free(j->models[i]);
            j->spec.nmodels = 0;
            cJSON_ArrayForEach(m, f)
            {
                if (!cJSON_IsString(m)) return "\"models\" must be a list of model names";
                if (j->spec.nmodels == KEYS_MAX_MODELS) return "too many models (at most 64)";
                if (!(j->models[j->spec.nmodels] = strdup(m->valuestring))) return "out of memory";
                j->spec.nmodels++;
            }
        } else if (strcmp(f->string, "priority") == 0) {
            if (!json_u32(f, KEYS_PRIORITY_MAX, &u)) return "\"priority\" must be 0 to 3";
            j->spec.priority = (int)u;
        } else if (strcmp(f->string, "rpm") == 0) {
            if (!json_u32(f, KEYS_MAX_RPM, &j->spec.rpm)) return "\"rpm\" must be 0 to 100000000";
        } else if (strcmp(f->string, "tpm") == 0) {
            if (!json_u32(f, KEYS_MAX_TPM, &j->spec.tpm)) return "\"tpm\" must be 0 to 4000000000";
        } else if (strcmp(f->string, "max_concurrency") == 0) {
            if (!json_u32(f, KEYS_MAX_CONCURRENCY, &j->spec.max_concurrency))
                return "\"max_concurrency\" must be 0 to 1000000";
        } else {
            return "unknown field (expected name, models, priority, rpm, tpm, max_concurrency)";
        }
    }
    if (!j->name) return "\"name\" is required";
    j->spec.name = j->name;
    j->spec.models = (const char *const *)j->models;
    return NULL;
}

/* {"id": N} or {"name": "..."} into j->target. */
static const char *parse_target(struct job *j, const cJSON *doc)
{
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(doc, "id");
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(doc, "name");
    uint32_t n;
    if (id && !name && json_u32(id, UINT32_MAX, &n) && n > 0)
        snprintf(j->target, sizeof j->target, "%" PRIu32, n);
    else if (name && !id && cJSON_IsString(name) && config_key_name_valid(name->valuestring))
        snprintf(j->target, sizeof j->target, "%s", name->valuestring);
    else
        return "the body must be {\"id\": N} or {\"name\": \"...\"}";
    return NULL;
}

static void list_json(const struct key_info *ki, void *ud)
{
    struct buf *b = ud;
    if (b->data[b->len - 1] != '[') buf_append_str(b, ",");
    keys_write_json(b, ki);
}

bool keys_admin_dispatch(struct server_conn *c, struct keys *k)
{
    const struct server_request *req = server_conn_request(c);
    const char *path = req->http.target.p;
    size_t len = req->http.target.len;
    const char *q = memchr(path, '?', len);
    if (q) len = (size_t)(q - path);
    static const char base[] = "/admin/keys";
    if (len < sizeof base - 1 || memcmp(path, base, sizeof base - 1) != 0 ||
        (len > sizeof base - 1 && path[sizeof base - 1] != '/'))
        return false;
    bool get = path_is(req->http.method.p, req->http.method.len, "GET");
    bool post = path_is(req->http.method.p, req->http.method.len, "POST");
    enum job_op op;
    if (path_is(path, len, base) && get) {
        if (!k) {
            answer_error(c, 404, GW_ERR_NOT_FOUND, "keys are not set up");
            return true;
        }
        struct buf b;
        buf_init(&b, 1u << 30);
        bool open = server_conn_worker(c)->cfg->auth.open;
        buf_printf(&b, "{\"open\":%s,\"store\":%s,\"keys\":[", open ? "true" : "false",
                   keys_has_store(k) ? "true" : "false");
        keys_each(k, list_json, &b);
        buf_append_str(&b, "]}");
        answer(c, 200, NULL, &b);
        buf_free(&b);
        return true;
    } else if (path_is(path, len, base)) {
        op = JOB_CREATE;
    } else if (path_is(path, len, "/admin/keys/disable")) {
        op = JOB_DISABLE;
    } else if (path_is(path, len, "/admin/keys/enable")) {
        op = JOB_ENABLE;
    } else if (path_is(path, len, "/admin/keys/delete")) {
        op = JOB_DELETE;
    } else {
        answer_error(c, 404, GW_ERR_NOT_FOUND, "no such admin endpoint");
        return true;
    }
    if (!post) {
        answer_error(c, 405, GW_ERR_METHOD, op == JOB_CREATE ? "use GET or POST" : "use POST");
        return true;
    }
    if (!k) {
        answer_error(c, 404, GW_ERR_NOT_FOUND, "keys are not set up");
        return true;
    }
    struct job *j = calloc(1, sizeof *j);
    if (!j) {
        answer_error(c, 500, GW_ERR_INTERNAL, "out of memory");
        return true;
    }
    j->c = c;
    j->k = k;
    j->op = op;
    j->work.data = j;
    cJSON *doc = cJSON_ParseWithLength(req->body ? req->body : "", req->body_len);
    bool parsed = doc != NULL;
    const char *problem = !parsed            ? "the body is not valid JSON"
                          : op == JOB_CREATE ? parse_create(j, doc)
                                             : parse_target(j, doc);
    cJSON_Delete(doc);
    /* The CLI checks the models against the config it reads; here it is the running one. */
    const struct config *cfg = server_conn_worker(c)->cfg;
    for (size_t i = 0; !problem && cfg && i < j->spec.nmodels; i++)
        if (!config_find_model(cfg, j->models[i])) problem = "unknown model in \"models\"";
    if (problem) {
        answer_error(c, 400, parsed ? GW_ERR_BAD_FIELD : GW_ERR_BAD_JSON, problem);
        job_free(j);
        return true;
    }
    int rc = uv_queue_work(&server_conn_worker(c)->loop, &j->work, job_run, job_done);
    if (rc) {
        answer_error(c, 500, GW_ERR_INTERNAL, "cannot queue the change");
        job_free(j);
    }
    return true;
}
