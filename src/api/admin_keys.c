/*
 * admin_keys — the admin API's /admin/keys endpoints over the key store
 * (admit/keys.h). Store changes write to disk, so they run on the libuv
 * thread pool and are answered from the completion on the request's loop.
 */
#include "api/admin_keys.h"

#include <cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "admit/keys.h"
#include "http/errors.h"
#include "proxy/proxy.h"


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

bool admin_keys_dispatch(struct server_conn *c, struct keys *k)
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
        bool open = proxy_env_of(c)->cfg->auth.open;
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
    const struct config *cfg = proxy_env_of(c)->cfg;
    for (size_t i = 0; !problem && cfg && i < j->spec.nmodels; i++)
        if (!config_find_model(cfg, j->models[i])) problem = "unknown model in \"models\"";
    if (problem) {
        answer_error(c, 400, parsed ? GW_ERR_BAD_FIELD : GW_ERR_BAD_JSON, problem);
        job_free(j);
        return true;
    }
    int rc = uv_queue_work(proxy_env_of(c)->loop, &j->work, job_run, job_done);
    if (rc) {
        answer_error(c, 500, GW_ERR_INTERNAL, "cannot queue the change");
        job_free(j);
    }
    return true;
}
