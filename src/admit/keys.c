#include "admit/keys.h"

#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "base/sqlite_file.h"
#include "admit/ratelimit.h"

/*
 * Layout: the immutable table and its lookup; the static keys; the SQLite
 * store (schema, reading every row into a table, the changes); reload,
 * refresh and the watcher thread. Locks, always taken in this order:
 * store_lock (the connection, the statics, the order of reloads), then
 * table_lock (only around reading or swapping `current`).
 */

#define DIGEST_LEN SHA256_DIGEST_LENGTH
#define SCHEMA_VERSION 1

struct keys_table {
    atomic_int refs;
    struct key_info *items;
    size_t n;
    uint32_t *slots; /* open addressing on the digest: item index + 1, 0 empty */
    size_t nslots;   /* a power of two */
};

struct keys {
    pthread_rwlock_t table_lock;
    struct keys_table *current;

    pthread_mutex_t store_lock;
    sqlite3 *db; /* NULL: no store */
    int64_t data_version;
    struct key_info *statics;
    size_t nstatics;
    void (*on_change)(struct keys *k, void *ud);
    void *on_change_ud;

    pthread_mutex_t watch_lock;
    pthread_cond_t watch_cond;
    pthread_t watcher;
    bool watching, stop;
    uint32_t interval_ms;
};

/* ---- small helpers ---- */

static void digest_of(const char *s, size_t len, unsigned char out[DIGEST_LEN])
{
    SHA256((const unsigned char *)s, len, out);
}

static void hex_encode(const unsigned char *in, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[in[i] >> 4];
        out[2 * i + 1] = hex[in[i] & 15];
    }
    out[2 * n] = '\0';
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static bool hex_decode(const char *s, unsigned char out[DIGEST_LEN])
{
    if (!s || strlen(s) != 2 * DIGEST_LEN) return false;
    for (size_t i = 0; i < DIGEST_LEN; i++) {
        int hi = hex_value(s[2 * i]), lo = hex_value(s[2 * i + 1]);
        if (hi < 0 || lo < 0) return false;
        out[i] = (unsigned char)(hi << 4 | lo);
    }
    return true;
}

int keys_generate(char out[KEYS_PLAINTEXT_LEN + 1])
{
    static const char alphabet[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    memcpy(out, KEYS_PREFIX, sizeof KEYS_PREFIX - 1);
    size_t have = 0;
    unsigned char rnd[64];
    while (have < KEYS_RANDOM_CHARS) {
        ssize_t got = getrandom(rnd, sizeof rnd, 0);
        if (got < 0) {
            if (errno == EINTR) continue;
            return -errno;
        }
        /* Bytes of 248 and up are dropped: 248 = 4 × 62, so every character
           is equally likely. */
        for (ssize_t i = 0; i < got && have < KEYS_RANDOM_CHARS; i++)
            if (rnd[i] < 248) out[sizeof KEYS_PREFIX - 1 + have++] = alphabet[rnd[i] % 62];
    }
    OPENSSL_cleanse(rnd, sizeof rnd);
    out[KEYS_PLAINTEXT_LEN] = '\0';
    return 0;
}

static bool all_digits(const char *s)
{
    if (!*s) return false;
    for (; *s; s++)
        if (*s < '0' || *s > '9') return false;
    return true;
}

static bool model_name_ok(const char *m)
{
    size_t n = strlen(m);
    if (n == 0 || n > KEYS_MAX_MODEL_CHARS) return false;
    for (const unsigned char *p = (const unsigned char *)m; *p; p++)
        if (*p < 0x20 || *p == 0x7f || *p == ',') return false;
    return true;
}

/* ---- key_info and the table ---- */

static void info_free(struct key_info *ki)
{
    free((char *)ki->name);
    for (size_t i = 0; i < ki->nmodels; i++)
        free((char *)ki->models[i]);
    free((void *)ki->models);
    free((char *)ki->limit_id);
}

static int set_models(struct key_info *ki, const char *const *models, size_t n)
{
    ki->models = NULL;
    ki->nmodels = 0;
    if (n == 0) return 0;
    char **m = calloc(n, sizeof *m);
    if (!m) return -ENOMEM;
    ki->models = (const char *const *)m;
    for (size_t i = 0; i < n; i++) {
        if (!(m[i] = strdup(models[i]))) return -ENOMEM;
        ki->nmodels++;
    }
    return 0;
}

static int info_copy(struct key_info *dst, const struct key_info *src)
{
    *dst = *src;
    dst->name = strdup(src->name);
    dst->limit_id = strdup(src->limit_id);
    int rc = set_models(dst, src->models, src->nmodels);
    if (!dst->name || !dst->limit_id || rc) {
        info_free(dst);
        return -ENOMEM;
    }
    return 0;
}

static void table_free(struct keys_table *t)
{
    for (size_t i = 0; i < t->n; i++)
        info_free(&t->items[i]);
    free(t->items);
    free(t->slots);
    free(t);
}

static void table_unref(struct keys_table *t)
{
    if (t && atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) == 1) table_free(t);
}

static uint32_t digest_slot(const unsigned char *d)
{
    return (uint32_t)d[0] << 24 | (uint32_t)d[1] << 16 | (uint32_t)d[2] << 8 | d[3];
}

/* Sets every item's back pointer and builds the index. */
static int table_index(struct keys_table *t)
{
    size_t cap = 8;
    while (cap < 2 * t->n)
        cap *= 2;
    if (!(t->slots = calloc(cap, sizeof *t->slots))) return -ENOMEM;
    t->nslots = cap;
    for (size_t i = 0; i < t->n; i++) {
        t->items[i].table_ = t;
        size_t s = digest_slot(t->items[i].digest_) & (cap - 1);
        while (t->slots[s])
            s = (s + 1) & (cap - 1);
        t->slots[s] = (uint32_t)i + 1;
    }
    return 0;
}

static const struct key_info *table_find(const struct keys_table *t,
                                         const unsigned char d[DIGEST_LEN])
{
    size_t mask = t->nslots - 1;
    for (size_t s = digest_slot(d) & mask; t->slots[s]; s = (s + 1) & mask) {
        const struct key_info *ki = &t->items[t->slots[s] - 1];
        if (CRYPTO_memcmp(ki->digest_, d, DIGEST_LEN) == 0) return ki;
    }
    return NULL;
}

static struct keys_table *acquire(struct keys *k)
{
    pthread_rwlock_rdlock(&k->table_lock);
    struct keys_table *t = k->current;
    atomic_fetch_add_explicit(&t->refs, 1, memory_order_relaxed);
    pthread_rwlock_unlock(&k->table_lock);
    return t;
}

/* ---- static keys ---- */

static void statics_free(struct key_info *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        info_free(&s[i]);
    free(s);
}

static int statics_build(const struct cfg_key *cfg, size_t n, struct key_info **out)
{
    *out = NULL;
    if (n == 0) return 0;
    struct key_info *s = calloc(n, sizeof *s);
    if (!s) return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        const struct cfg_key *c = &cfg[i];
        struct key_info *ki = &s[i];
        if (!c->key || !c->name) { /* config_load never hands out such a key */
            statics_free(s, i);
            return -EINVAL;
        }
        size_t len = strlen(c->key);
        digest_of(c->key, len, ki->digest_);
        if (len >= KEYS_PLAINTEXT_LEN && strncmp(c->key, KEYS_PREFIX, sizeof KEYS_PREFIX - 1) == 0)
            memcpy(ki->prefix, c->key + sizeof KEYS_PREFIX - 1, KEYS_DISPLAY_CHARS);
        ki->name = strdup(c->name);
        size_t idlen = strlen(c->name) + sizeof "config:";
        char *id = malloc(idlen);
        if (id) snprintf(id, idlen, "config:%s", c->name);
        ki->limit_id = id;
        ki->priority = c->priority;
        ki->rpm = c->rpm;
        ki->tpm = c->tpm;
        ki->max_concurrency = c->max_concurrency;
        ki->from_config = true;
        if (set_models(ki, (const char *const *)c->models, c->nmodels) || !ki->name || !id) {
            statics_free(s, i + 1);
            return -ENOMEM;
        }
    }
    *out = s;
    return 0;
}

/* ---- the store ---- */

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS keys ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " name TEXT NOT NULL UNIQUE,"
    " prefix TEXT NOT NULL,"
    " hash TEXT NOT NULL UNIQUE,"         /* SHA-256 of the whole key, lowercase hex */
    " models TEXT NOT NULL DEFAULT '[]'," /* a JSON array (or a comma list); empty: all */
    " priority INTEGER NOT NULL DEFAULT 1,"
    " rpm INTEGER NOT NULL DEFAULT 0,"
    " tpm INTEGER NOT NULL DEFAULT 0,"
    " max_concurrency INTEGER NOT NULL DEFAULT 0,"
    " disabled INTEGER NOT NULL DEFAULT 0,"
    " created_at INTEGER NOT NULL);"; /* unix seconds */

static sqlite3 *store_open(const char *path, char *err, size_t errlen)
{
    const char *why = NULL;
    int64_t version = 0;
    /* FULLMUTEX: the gateway and the command line may write at the same moment. */
    sqlite3 *db = sqlite_file_open(path, SQLITE_OPEN_FULLMUTEX, SCHEMA_VERSION, &version, &why);
    if (!db) {
        snprintf(err, errlen, "key_store %s: %s", path, why);
        return NULL;
    }
    /* A created key is shown once: it must survive a power cut, so FULL. The
       schema is written only to a new file: any write would look like a change
       to every other process watching the file. */
    if (sqlite3_exec(db, "PRAGMA synchronous=FULL", NULL, NULL, NULL) ||
        (version == 0 && (sqlite3_exec(db, schema, NULL, NULL, NULL) ||
                          sqlite3_exec(db, "PRAGMA user_version=1", NULL, NULL, NULL)))) {
        why = sqlite3_errmsg(db);
        goto fail;
    }
    return db;
fail:
    snprintf(err, errlen, "key_store %s: %s", path, why);
    sqlite3_close(db);
    return NULL;
}

/* Models as stored: a JSON array, or a comma list; "" and "[]" mean all. */
static int parse_models(const char *text, char ***out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (!text) return 0;
    char **m = calloc(KEYS_MAX_MODELS, sizeof *m);
    if (!m) return -ENOMEM;
    int rc = 0;
    if (text[0] == '[') {
        cJSON *doc = cJSON_Parse(text);
        const cJSON *it;
        if (!cJSON_IsArray(doc)) rc = -EINVAL;
        cJSON_ArrayForEach(it, doc)
        {
            if (rc) break;
            if (!cJSON_IsString(it) || !model_name_ok(it->valuestring) || *n == KEYS_MAX_MODELS)
                rc = -EINVAL;
            else if (!(m[(*n)++] = strdup(it->valuestring)))
                rc = -ENOMEM;
        }
        cJSON_Delete(doc);
    } else {
        for (const char *p = text; *p && !rc;) {
            size_t len = strcspn(p, ",");
            while (len && (*p == ' '))
                p++, len--;
            size_t l = len;
            while (l && p[l - 1] == ' ')
                l--;
            if (l == 0 || *n == KEYS_MAX_MODELS)
                rc = -EINVAL;
            else if (!(m[(*n)++] = strndup(p, l)))
                rc = -ENOMEM;
            p += len + (p[len] == ',');
        }
    }
    if (rc) {
        for (size_t i = 0; i < *n; i++)
            free(m[i]);
        free(m);
        *n = 0;
        return rc;
    }
    if (*n == 0) { /* all models: no list, so a large store of such keys stays small */
        free(m);
        return 0;
    }
    char **fit = realloc(m, *n * sizeof *m);
    *out = fit ? fit : m;
    return 0;
}

/* One row into ki; -EINVAL for a row that is not a valid key (skipped). */
static int row_to_info(sqlite3_stmt *st, struct key_info *ki)
{
    memset(ki, 0, sizeof *ki);
    ki->id = sqlite3_column_int64(st, 0);
    const char *name = (const char *)sqlite3_column_text(st, 1);
    const char *prefix = (const char *)sqlite3_column_text(st, 2);
    const char *hash = (const char *)sqlite3_column_text(st, 3);
    const char *models = (const char *)sqlite3_column_text(st, 4);
    int64_t priority = sqlite3_column_int64(st, 5), rpm = sqlite3_column_int64(st, 6),
            tpm = sqlite3_column_int64(st, 7), conc = sqlite3_column_int64(st, 8);
    if (!name || !config_key_name_valid(name) || !hex_decode(hash, ki->digest_) || priority < 0 ||
        priority > KEYS_PRIORITY_MAX || rpm < 0 || rpm > KEYS_MAX_RPM || tpm < 0 ||
        tpm > KEYS_MAX_TPM || conc < 0 || conc > KEYS_MAX_CONCURRENCY)
        return -EINVAL;
    char **m;
    size_t nm;
    int rc = parse_models(models, &m, &nm);
    if (rc) return rc;
    ki->models = (const char *const *)m;
    ki->nmodels = nm;
    if (prefix) snprintf(ki->prefix, sizeof ki->prefix, "%s", prefix);
    ki->priority = (int)priority;
    ki->rpm = (uint32_t)rpm;
    ki->tpm = (uint32_t)tpm;
    ki->max_concurrency = (uint32_t)conc;
    ki->disabled = sqlite3_column_int64(st, 9) != 0;
    ki->created_at = sqlite3_column_int64(st, 10);
    char id[32];
    snprintf(id, sizeof id, "id:%lld", (long long)ki->id);
    ki->name = strdup(name);
    ki->limit_id = strdup(id);
    if (!ki->name || !ki->limit_id) {
        info_free(ki);
        return -ENOMEM;
    }
    return 0;
}

static void log_store_error(struct keys *k, const char *what)
{
    log_error("key store: %s: %s", what, sqlite3_errmsg(k->db));
}

/*
 * Builds a table of the statics and every row of the store, and swaps it
 * in. store_lock held. The data_version is read before the rows: a commit
 * landing in between is then seen by the next keys_refresh.
 */
static int reload_locked(struct keys *k)
{
    struct keys_table *t = calloc(1, sizeof *t);
    size_t cap = k->nstatics + 16;
    if (!t || !(t->items = calloc(cap, sizeof *t->items))) {
        free(t);
        return -ENOMEM;
    }
    atomic_init(&t->refs, 1);
    int rc = 0;
    for (size_t i = 0; i < k->nstatics && !rc; i++)
        if (!(rc = info_copy(&t->items[t->n], &k->statics[i]))) t->n++;
    if (k->db && !rc) {
        bool ok;
        int64_t version = sqlite_file_int(k->db, "PRAGMA data_version", &ok);
        sqlite3_stmt *st = NULL;
        if (!ok || sqlite3_prepare_v2(k->db,
                                      "SELECT id, name, prefix, hash, models, priority, rpm, tpm,"
                                      " max_concurrency, disabled, created_at FROM keys"
                                      " ORDER BY id",
                                      -1, &st, NULL) != SQLITE_OK) {
            log_store_error(k, "cannot read");
            rc = -EIO;
        }
        size_t rows = 0;
        int step = SQLITE_DONE;
        while (!rc && (step = sqlite3_step(st)) == SQLITE_ROW) {
            if (++rows > KEYS_MAX) {
                log_warn("key store: more than %d keys; the rest are not loaded", KEYS_MAX);
                break;
            }
            if (t->n == cap) {
                struct key_info *more = realloc(t->items, 2 * cap * sizeof *more);
                if (!more) {
                    rc = -ENOMEM;
                    break;
                }
                t->items = more;
                cap *= 2;
            }
            int r = row_to_info(st, &t->items[t->n]);
            if (r == -EINVAL)
                log_warn("key store: row id %lld is not a valid key; ignored",
                         (long long)sqlite3_column_int64(st, 0));
            else if (r)
                rc = r;
            else
                t->n++;
        }
        if (!rc && step != SQLITE_ROW && step != SQLITE_DONE) {
            log_store_error(k, "cannot read");
            rc = -EIO;
        }
        sqlite3_finalize(st);
        if (!rc) k->data_version = version;
    }
    if (!rc && table_index(t)) rc = -ENOMEM;
    if (rc) {
        table_free(t);
        return rc == -ENOMEM ? -ENOMEM : -EIO;
    }
    pthread_rwlock_wrlock(&k->table_lock);
    struct keys_table *old = k->current;
    k->current = t;
    pthread_rwlock_unlock(&k->table_lock);
    table_unref(old);
    return 0;
}

static void notify(struct keys *k)
{
    pthread_mutex_lock(&k->store_lock);
    void (*fn)(struct keys *, void *) = k->on_change;
    void *ud = k->on_change_ud;
    pthread_mutex_unlock(&k->store_lock);
    if (fn) fn(k, ud);
}

/* ---- lifecycle ---- */

int keys_new(const char *store_path, const struct cfg_key *statics, size_t nstatics,
             struct keys **out, char *err, size_t errlen)
{
    struct keys *k = calloc(1, sizeof *k);
    if (!k) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    pthread_rwlock_init(&k->table_lock, NULL);
    pthread_mutex_init(&k->store_lock, NULL);
    pthread_mutex_init(&k->watch_lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&k->watch_cond, &ca);
    pthread_condattr_destroy(&ca);
    if (statics_build(statics, nstatics, &k->statics)) {
        snprintf(err, errlen, "out of memory");
        keys_free(k);
        return -1;
    }
    k->nstatics = nstatics;
    if (store_path && !(k->db = store_open(store_path, err, errlen))) {
        keys_free(k);
        return -1;
    }
    pthread_mutex_lock(&k->store_lock);
    int rc = reload_locked(k);
    pthread_mutex_unlock(&k->store_lock);
    if (rc) {
        snprintf(err, errlen, "key_store %s: cannot be read%s", store_path ? store_path : "-",
                 rc == -ENOMEM ? " (out of memory)" : "");
        keys_free(k);
        return -1;
    }
    *out = k;
    return 0;
}

void keys_free(struct keys *k)
{
    if (!k) return;
    pthread_mutex_lock(&k->watch_lock);
    bool watching = k->watching;
    k->stop = true;
    pthread_cond_signal(&k->watch_cond);
    pthread_mutex_unlock(&k->watch_lock);
    if (watching) pthread_join(k->watcher, NULL);
    table_unref(k->current);
    statics_free(k->statics, k->nstatics);
    sqlite3_close(k->db);
    pthread_cond_destroy(&k->watch_cond);
    pthread_mutex_destroy(&k->watch_lock);
    pthread_mutex_destroy(&k->store_lock);
    pthread_rwlock_destroy(&k->table_lock);
    free(k);
}

int keys_set_static(struct keys *k, const struct cfg_key *statics, size_t nstatics)
{
    struct key_info *s;
    if (statics_build(statics, nstatics, &s)) return -ENOMEM;
    pthread_mutex_lock(&k->store_lock);
    struct key_info *old = k->statics;
    size_t nold = k->nstatics;
    k->statics = s;
    k->nstatics = nstatics;
    int rc = reload_locked(k);
    if (rc) { /* keep the old ones, which match the table still in force */
        k->statics = old;
        k->nstatics = nold;
        old = s;
        nold = nstatics;
    }
    pthread_mutex_unlock(&k->store_lock);
    statics_free(old, nold);
    if (!rc) notify(k);
    return rc;
}

int keys_reload(struct keys *k)
{
    pthread_mutex_lock(&k->store_lock);
    int rc = reload_locked(k);
    pthread_mutex_unlock(&k->store_lock);
    if (!rc) notify(k);
    return rc;
}

int keys_refresh(struct keys *k)
{
    pthread_mutex_lock(&k->store_lock);
    int rc = 0;
    if (k->db) {
        bool ok;
        int64_t version = sqlite_file_int(k->db, "PRAGMA data_version", &ok);
        if (!ok) {
            log_store_error(k, "cannot check for changes");
            rc = -EIO;
        } else if (version != k->data_version) {
            rc = reload_locked(k);
            rc = rc ? rc : 1;
        }
    }
    pthread_mutex_unlock(&k->store_lock);
    if (rc == 1) notify(k);
    return rc;
}

static void *watch_main(void *arg)
{
    struct keys *k = arg;
    pthread_mutex_lock(&k->watch_lock);
    while (!k->stop) {
        struct timespec at;
        clock_gettime(CLOCK_MONOTONIC, &at);
        at.tv_sec += k->interval_ms / 1000;
        at.tv_nsec += (long)(k->interval_ms % 1000) * 1000000;
        if (at.tv_nsec >= 1000000000) {
            at.tv_sec++;
            at.tv_nsec -= 1000000000;
        }
        while (!k->stop && pthread_cond_timedwait(&k->watch_cond, &k->watch_lock, &at) == 0)
            ; /* woken early: only stop matters */
        if (k->stop) break;
        pthread_mutex_unlock(&k->watch_lock);
        keys_refresh(k);
        pthread_mutex_lock(&k->watch_lock);
    }
    pthread_mutex_unlock(&k->watch_lock);
    return NULL;
}

int keys_watch(struct keys *k, uint32_t interval_ms)
{
    pthread_mutex_lock(&k->watch_lock);
    int rc = 0;
    if (k->watching) {
        rc = -EALREADY;
    } else {
        k->interval_ms = interval_ms ? interval_ms : KEYS_WATCH_DEFAULT_MS;
        rc = -pthread_create(&k->watcher, NULL, watch_main, k);
        k->watching = rc == 0;
    }
    pthread_mutex_unlock(&k->watch_lock);
    return rc;
}

void keys_on_change(struct keys *k, void (*fn)(struct keys *k, void *ud), void *ud)
{
    pthread_mutex_lock(&k->store_lock);
    k->on_change = fn;
    k->on_change_ud = ud;
    pthread_mutex_unlock(&k->store_lock);
}

/* ---- the request path ---- */

size_t keys_count(struct keys *k)
{
    pthread_rwlock_rdlock(&k->table_lock);
    size_t n = k->current->n;
    pthread_rwlock_unlock(&k->table_lock);
    return n;
}

const struct key_info *keys_lookup(struct keys *k, const char *bearer, size_t len)
{
    if (len >= 7 && strncasecmp(bearer, "Bearer ", 7) == 0) {
        bearer += 7;
        len -= 7;
        while (len && *bearer == ' ')
            bearer++, len--;
    }
    if (len == 0 || len > KEYS_MAX_SECRET) return NULL;
    unsigned char d[DIGEST_LEN];
    digest_of(bearer, len, d);
    struct keys_table *t = acquire(k);
    const struct key_info *ki = table_find(t, d);
    if (ki && ki->disabled) ki = NULL;
    if (!ki) table_unref(t);
    return ki;
}

void keys_release(const struct key_info *ki)
{
    if (ki) table_unref(ki->table_);
}

bool keys_model_allowed(const struct key_info *ki, const char *model, size_t len)
{
    if (ki->nmodels == 0) return true;
    for (size_t i = 0; i < ki->nmodels; i++)
        if (strlen(ki->models[i]) == len && memcmp(ki->models[i], model, len) == 0) return true;
    return false;
}

void keys_each(struct keys *k, void (*fn)(const struct key_info *ki, void *ud), void *ud)
{
    struct keys_table *t = acquire(k);
    for (size_t i = 0; i < t->n; i++)
        fn(&t->items[i], ud);
    table_unref(t);
}

int keys_sync_ratelimit(struct keys *k, struct ratelimit *rl, uint64_t now_ms)
{
    struct keys_table *t = acquire(k);
    struct ratelimit_def *defs = calloc(t->n ? t->n : 1, sizeof *defs);
    size_t n = 0;
    int rc = -ENOMEM;
    if (defs) {
        for (size_t i = 0; i < t->n; i++) {
            const struct key_info *ki = &t->items[i];
            if (!ki->disabled)
                defs[n++] =
                    (struct ratelimit_def){ki->limit_id, ki->rpm, ki->tpm, ki->max_concurrency};
        }
        rc = ratelimit_sync(rl, RATELIMIT_KEY, defs, n, now_ms);
    }
    free(defs);
    table_unref(t);
    return rc;
}

/* ---- changes to the store ---- */

bool keys_has_store(struct keys *k)
{
    return k->db != NULL; /* set once in keys_new */
}

static const char *spec_problem(const struct keys_spec *s)
{
    if (!s->name || !config_key_name_valid(s->name))
        return "bad name: 1 to 64 characters from A-Z a-z 0-9 . _ - : @, not all digits";
    if (s->nmodels > KEYS_MAX_MODELS) return "too many models (at most 64)";
    for (size_t i = 0; i < s->nmodels; i++)
        if (!s->models[i] || !model_name_ok(s->models[i]))
            return "bad model name (1 to 256 characters, no commas or control characters)";
    if (s->priority < 0 || s->priority > KEYS_PRIORITY_MAX) return "priority must be 0 to 3";
    if (s->rpm > KEYS_MAX_RPM) return "rpm must be at most 100000000";
    if (s->tpm > KEYS_MAX_TPM) return "tpm must be at most 4000000000";
    if (s->max_concurrency > KEYS_MAX_CONCURRENCY) return "max_concurrency must be at most 1000000";
    return NULL;
}

static bool static_named(const struct keys *k, const char *name)
{
    for (size_t i = 0; i < k->nstatics; i++)
        if (strcmp(k->statics[i].name, name) == 0) return true;
    return false;
}

static char *models_json(const struct keys_spec *s)
{
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; a && i < s->nmodels; i++) {
        cJSON *m = cJSON_CreateString(s->models[i]);
        if (!m || !cJSON_AddItemToArray(a, m)) {
            cJSON_Delete(m);
            cJSON_Delete(a);
            return NULL;
        }
    }
    char *text = a ? cJSON_PrintUnformatted(a) : NULL;
    cJSON_Delete(a);
    return text;
}

static int insert_key(struct keys *k, const struct keys_spec *spec, const char *prefix,
                      const char *hash, const char *models, int64_t *id, const char **why)
{
    bool ok;
    if (static_named(k, spec->name)) {
        *why = "a key of the config file has this name";
        return -EEXIST;
    }
    int64_t count = sqlite_file_int(k->db, "SELECT count(*) FROM keys", &ok);
    if (!ok) return -EIO;
    if (count >= KEYS_MAX) {
        *why = "the store is full (100000 keys); delete some first";
        return -ENOSPC;
    }
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(k->db,
                           "INSERT INTO keys (name, prefix, hash, models, priority, rpm, tpm,"
                           " max_concurrency, disabled, created_at)"
                           " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, ?)",
                           -1, &st, NULL) != SQLITE_OK)
        return -EIO;
    sqlite3_bind_text(st, 1, spec->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, prefix, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, hash, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, models, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 5, spec->priority);
    sqlite3_bind_int64(st, 6, spec->rpm);
    sqlite3_bind_int64(st, 7, spec->tpm);
    sqlite3_bind_int64(st, 8, spec->max_concurrency);
    sqlite3_bind_int64(st, 9, (int64_t)time(NULL));
    int step = sqlite3_step(st);
    sqlite3_finalize(st);
    if (step == SQLITE_CONSTRAINT) {
        *why = "a key with this name exists";
        return -EEXIST;
    }
    if (step != SQLITE_DONE) return -EIO;
    *id = sqlite3_last_insert_rowid(k->db);
    return 0;
}

int keys_create(struct keys *k, const struct keys_spec *spec,
                char plaintext[KEYS_PLAINTEXT_LEN + 1], int64_t *id, const char **why)
{
    const char *unused;
    if (!why) why = &unused;
    *why = NULL;
    plaintext[0] = '\0';
    if ((*why = spec_problem(spec))) return -EINVAL;
    if (!k->db) {
        *why = "no key_store is configured";
        return -ENOTSUP;
    }
    char key[KEYS_PLAINTEXT_LEN + 1], hash[2 * DIGEST_LEN + 1], prefix[KEYS_DISPLAY_CHARS + 1];
    unsigned char d[DIGEST_LEN];
    int rc = keys_generate(key);
    if (rc) {
        *why = "no randomness available";
        return rc;
    }
    digest_of(key, KEYS_PLAINTEXT_LEN, d);
    hex_encode(d, DIGEST_LEN, hash);
    memcpy(prefix, key + sizeof KEYS_PREFIX - 1, KEYS_DISPLAY_CHARS);
    prefix[KEYS_DISPLAY_CHARS] = '\0';
    char *models = models_json(spec);
    int64_t new_id = 0;
    pthread_mutex_lock(&k->store_lock);
    rc = models ? insert_key(k, spec, prefix, hash, models, &new_id, why) : -ENOMEM;
    if (rc == -EIO) log_store_error(k, "cannot add a key");
    if (!rc) reload_locked(k); /* a failure is logged; the next refresh retries */
    pthread_mutex_unlock(&k->store_lock);
    free(models);
    if (rc == -EIO || rc == -ENOMEM) *why = "the key store cannot be written (see the log)";
    if (!rc) {
        memcpy(plaintext, key, sizeof key);
        if (id) *id = new_id;
        notify(k);
    }
    OPENSSL_cleanse(key, sizeof key);
    return rc;
}

/* UPDATE or DELETE one key by id or name. sql has the id or name as its last "?". */
static int change_one(struct keys *k, const char *target, const char *by_id, const char *by_name,
                      int disabled, const char **why)
{
    const char *unused;
    if (!why) why = &unused;
    *why = NULL;
    bool numeric = all_digits(target);
    if (!numeric && !config_key_name_valid(target)) {
        *why = "no such key";
        return -ENOENT;
    }
    pthread_mutex_lock(&k->store_lock);
    int rc = 0;
    if (!k->db) {
        rc = static_named(k, target) ? -EPERM : -ENOTSUP;
    } else {
        sqlite3_stmt *st = NULL;
        int n = 1;
        if (sqlite3_prepare_v2(k->db, numeric ? by_id : by_name, -1, &st, NULL) != SQLITE_OK) {
            rc = -EIO;
        } else {
            if (disabled >= 0) sqlite3_bind_int(st, n++, disabled);
            if (numeric)
                sqlite3_bind_int64(st, n, strtoll(target, NULL, 10));
            else
                sqlite3_bind_text(st, n, target, -1, SQLITE_STATIC);
            if (sqlite3_step(st) != SQLITE_DONE)
                rc = -EIO;
            else if (sqlite3_changes(k->db) == 0)
                rc = !numeric && static_named(k, target) ? -EPERM : -ENOENT;
        }
        sqlite3_finalize(st);
        if (rc == -EIO) log_store_error(k, "cannot change a key");
        if (!rc) reload_locked(k);
    }
    pthread_mutex_unlock(&k->store_lock);
    switch (rc) {
    case 0:
        notify(k);
        break;
    case -EPERM:
        *why = "the key is defined in the config file; change it there";
        break;
    case -ENOTSUP:
        *why = "no key_store is configured";
        break;
    case -ENOENT:
        *why = "no such key";
        break;
    default:
        *why = "the key store cannot be written (see the log)";
    }
    return rc;
}

int keys_set_disabled(struct keys *k, const char *target, bool disabled, const char **why)
{
    return change_one(k, target, "UPDATE keys SET disabled = ? WHERE id = ?",
                      "UPDATE keys SET disabled = ? WHERE name = ?", disabled ? 1 : 0, why);
}

int keys_delete(struct keys *k, const char *target, const char **why)
{
    return change_one(k, target, "DELETE FROM keys WHERE id = ?", "DELETE FROM keys WHERE name = ?",
                      -1, why);
}

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
