#include "acct/ledger.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "base/sqlite_file.h"
#include "config/prices.h"
#include "base/utcdate.h"

/*
 * Layout: dates; the spend map; packing a record; the database (schema,
 * open, one batch); the writer thread; the public calls. Locks: `lock`
 * guards the ring and the writer's progress counters; `spend.lock` guards
 * the spend map. Neither is held while the other is taken, nor across disk
 * I/O, so an event loop waits on either for a few stores at most.
 */

/* ---- dates (UTC, utcdate.c: no libc, gmtime_r takes a global lock) ---- */

static int32_t month_of(int64_t time_ms)
{
    int y;
    unsigned m, d;
    utcdate_civil_from_days(utcdate_day_of(time_ms), &y, &m, &d);
    return y * 12 + (int32_t)m - 1;
}

void ledger_day_string(int64_t time_ms, char out[11])
{
    int y;
    unsigned m, d;
    utcdate_civil_from_days(utcdate_day_of(time_ms), &y, &m, &d);
    if (y < 0 || y > 9999) y = y < 0 ? 0 : 9999;
    snprintf(out, 11, "%04d-%02u-%02u", y, m % 100, d % 100);
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* At most one line per LEDGER_LOG_EVERY_MS per condition, from any thread. */
static bool log_due(_Atomic int64_t *last)
{
    int64_t now = mono_ms(), prev = atomic_load_explicit(last, memory_order_relaxed);
    if (prev && now - prev < LEDGER_LOG_EVERY_MS) return false;
    return atomic_compare_exchange_strong(last, &prev, now);
}

/* ---- the spend map: key name -> this day's and month's cost per currency ---- */

struct spend_cur {
    char code[4];
    double day, month;
};

struct spend_entry {
    char *name;    /* NULL: an empty slot; "" for requests without a key */
    int64_t day;   /* the day (days since 1970-01-01) the day totals belong to */
    int32_t month; /* year * 12 + month - 1 of the month totals */
    unsigned ncur;
    struct spend_cur cur[LEDGER_SPEND_CURRENCIES];
};

struct spend_map {
    pthread_mutex_t lock;
    struct spend_entry *slots; /* open addressing, linear probing, never deleted */
    size_t cap, n;             /* cap: a power of two */
    _Atomic int64_t last_log;
};

static uint32_t name_hash(const char *s)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

static struct spend_entry *spend_slot(struct spend_entry *slots, size_t cap, const char *name)
{
    size_t i = name_hash(name) & (cap - 1);
    while (slots[i].name && strcmp(slots[i].name, name) != 0)
        i = (i + 1) & (cap - 1);
    return &slots[i];
}

static int spend_grow(struct spend_map *m)
{
    size_t cap = m->cap ? m->cap * 2 : 64;
    struct spend_entry *slots = calloc(cap, sizeof *slots);
    if (!slots) return -ENOMEM;
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i].name) *spend_slot(slots, cap, m->slots[i].name) = m->slots[i];
    free(m->slots);
    m->slots = slots;
    m->cap = cap;
    return 0;
}

/* The entry for name, created when missing (NULL when the map is full or out of memory). */
static struct spend_entry *spend_entry(struct spend_map *m, const char *name, bool create)
{
    if (m->cap) {
        struct spend_entry *e = spend_slot(m->slots, m->cap, name);
        if (e->name || !create) return e->name ? e : NULL;
    } else if (!create) {
        return NULL;
    }
    if (m->n >= LEDGER_MAX_SPEND_KEYS || ((m->n + 1) * 4 > m->cap * 3 && spend_grow(m))) {
        if (log_due(&m->last_log))
            log_warn("ledger: spend totals are kept for at most %u keys; others are not tracked",
                     LEDGER_MAX_SPEND_KEYS);
        return NULL;
    }
    struct spend_entry *e = spend_slot(m->slots, m->cap, name);
    if (!(e->name = strdup(name))) return NULL;
    m->n++;
    return e;
}

static struct spend_cur *spend_currency(struct spend_entry *e, const char *code)
{
    for (unsigned i = 0; i < e->ncur; i++)
        if (strcmp(e->cur[i].code, code) == 0) return &e->cur[i];
    if (e->ncur == LEDGER_SPEND_CURRENCIES) return NULL;
    struct spend_cur *c = &e->cur[e->ncur++];
    snprintf(c->code, sizeof c->code, "%s", code);
    c->day = c->month = 0;
    return c;
}

/* Adds cost at time_ms; a cost from an earlier day (month) than the entry's is
   not added to the day (month): that total has moved on. Caller holds the lock. */
static void spend_add_locked(struct spend_map *m, const char *name, const char *currency,
                             double day_cost, double month_cost, int64_t day, int32_t month)
{
    struct spend_entry *e = spend_entry(m, name ? name : "", true);
    if (!e) return;
    if (month > e->month) {
        for (unsigned i = 0; i < e->ncur; i++)
            e->cur[i].month = 0;
        e->month = month;
    }
    if (day > e->day) {
        for (unsigned i = 0; i < e->ncur; i++)
            e->cur[i].day = 0;
        e->day = day;
    }
    struct spend_cur *c = spend_currency(e, currency);
    if (!c) return;
    if (month == e->month) c->month += month_cost;
    if (day == e->day) c->day += day_cost;
}

static void spend_free(struct spend_map *m)
{
    for (size_t i = 0; i < m->cap; i++)
        free(m->slots[i].name);
    free(m->slots);
    pthread_mutex_destroy(&m->lock);
}

/* ---- the ledger ---- */

/* A record as queued: one allocation, its strings after the struct. */
struct lrec {
    int64_t enqueued_ms; /* monotonic: when the flush interval started for it */
    int64_t time_ms, key_id, ttft_ms, duration_ms;
    int64_t tokens[4]; /* prompt, completion, reasoning, cached; -1 unknown */
    double cost;
    int status;
    bool usage_estimated;
    const char *request_id, *key_name, *model, *provider, *deployment_model, *currency;
    enum outcome outcome;
    char text[];
};

struct ledger {
    char *path; /* NULL: spend only, no writer */
    uint32_t cap, batch, flush_ms, reopen_ms, max_pages;

    pthread_mutex_t lock;
    pthread_cond_t wake;     /* the writer: records, hold released, stop, a sync waiting */
    pthread_cond_t progress; /* ledger_sync: the writer finished a batch */
    struct lrec **ring;
    uint32_t head, count;
    uint64_t accepted, done; /* under lock: done = written + lost, of the accepted */
    unsigned sync_waiters;
    bool hold, stop;
    pthread_t writer;
    bool writer_started;

    /* the writer's own */
    sqlite3 *db;
    sqlite3_stmt *insert_row, *upsert_day;
    struct lrec **taken;
    int64_t next_open_ms;
    bool spend_loaded;
    char open_error[320]; /* why the file is not open, for the log */
    bool giving_up;       /* closing, and the file failed */

    _Atomic uint64_t written, dropped_full, dropped_error, batches;
    atomic_bool open;
    _Atomic int64_t last_full_log, last_error_log;

    struct spend_map spend;
};

/* ---- the database ---- */

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS requests ("
    " id INTEGER PRIMARY KEY,"
    " time_ms INTEGER NOT NULL," /* unix ms, when the request ended */
    " request_id TEXT,"
    " key_id INTEGER," /* the key store's id; NULL for a config key or none */
    " key_name TEXT,"  /* NULL: no key */
    " model TEXT,"
    " provider TEXT,"
    " deployment_model TEXT,"
    " status INTEGER NOT NULL,"
    " outcome TEXT,"
    " prompt_tokens INTEGER," /* NULL: unknown */
    " completion_tokens INTEGER,"
    " reasoning_tokens INTEGER,"
    " cached_tokens INTEGER,"
    " usage_estimated INTEGER NOT NULL,"
    " cost REAL NOT NULL,"
    " currency TEXT," /* NULL: not priced */
    " ttft_ms INTEGER,"
    " duration_ms INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS requests_time ON requests (time_ms);"
    "CREATE TABLE IF NOT EXISTS daily ("
    " day TEXT NOT NULL," /* YYYY-MM-DD, UTC */
    " key TEXT NOT NULL," /* '' for no key; likewise model, provider, currency */
    " model TEXT NOT NULL,"
    " provider TEXT NOT NULL,"
    " currency TEXT NOT NULL,"
    " requests INTEGER NOT NULL,"
    " errors INTEGER NOT NULL," /* requests whose outcome was not ok */
    " prompt_tokens INTEGER NOT NULL,"
    " completion_tokens INTEGER NOT NULL,"
    " reasoning_tokens INTEGER NOT NULL,"
    " cached_tokens INTEGER NOT NULL,"
    " cost REAL NOT NULL,"
    " PRIMARY KEY (day, key, model, provider, currency)) WITHOUT ROWID;";

static const char insert_sql[] =
    "INSERT INTO requests (time_ms, request_id, key_id, key_name, model, provider,"
    " deployment_model, status, outcome, prompt_tokens, completion_tokens, reasoning_tokens,"
    " cached_tokens, usage_estimated, cost, currency, ttft_ms, duration_ms)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)";

static const char upsert_sql[] =
    "INSERT INTO daily VALUES (?1, ?2, ?3, ?4, ?5, 1, ?6, ?7, ?8, ?9, ?10, ?11)"
    " ON CONFLICT (day, key, model, provider, currency) DO UPDATE SET"
    " requests = requests + 1, errors = errors + excluded.errors,"
    " prompt_tokens = prompt_tokens + excluded.prompt_tokens,"
    " completion_tokens = completion_tokens + excluded.completion_tokens,"
    " reasoning_tokens = reasoning_tokens + excluded.reasoning_tokens,"
    " cached_tokens = cached_tokens + excluded.cached_tokens,"
    " cost = cost + excluded.cost";

static void db_close(struct ledger *l)
{
    sqlite3_finalize(l->insert_row);
    sqlite3_finalize(l->upsert_day);
    sqlite3_close(l->db);
    l->insert_row = l->upsert_day = NULL;
    l->db = NULL;
    atomic_store(&l->open, false);
}

struct loaded_spend {
    char *key;
    char currency[4];
    double day, month;
};

/* Adds the current day's and month's totals in the rollups to the spend map;
   read first, then added under the lock, so no lookup waits for the disk. */
static int load_spend(struct ledger *l)
{
    int64_t now = wall_ms();
    char today[11], first[11];
    ledger_day_string(now, today);
    memcpy(first, today, sizeof first);
    memcpy(first + 8, "01", 2);
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(l->db,
                           "SELECT key, currency, sum(CASE WHEN day = ?1 THEN cost ELSE 0 END),"
                           " sum(cost) FROM daily WHERE day >= ?2 AND day <= ?1 AND currency <> ''"
                           " GROUP BY key, currency",
                           -1, &st, NULL) != SQLITE_OK)
        return -1;
    sqlite3_bind_text(st, 1, today, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, first, -1, SQLITE_STATIC);
    struct loaded_spend *v = NULL;
    size_t n = 0, cap = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW && n < 4 * (size_t)LEDGER_MAX_SPEND_KEYS) {
        if (n == cap) {
            size_t ncap = cap ? 2 * cap : 64;
            struct loaded_spend *nv = realloc(v, ncap * sizeof *nv);
            if (!nv) break;
            v = nv;
            cap = ncap;
        }
        const char *key = (const char *)sqlite3_column_text(st, 0);
        const char *currency = (const char *)sqlite3_column_text(st, 1);
        if (!(v[n].key = strdup(key ? key : ""))) break;
        snprintf(v[n].currency, sizeof v[n].currency, "%s", currency ? currency : "");
        v[n].day = sqlite3_column_double(st, 2);
        v[n].month = sqlite3_column_double(st, 3);
        n++;
    }
    sqlite3_finalize(st);
    pthread_mutex_lock(&l->spend.lock);
    for (size_t i = 0; i < n; i++)
        spend_add_locked(&l->spend, v[i].key, v[i].currency, v[i].day, v[i].month, utcdate_day_of(now),
                         month_of(now));
    pthread_mutex_unlock(&l->spend.lock);
    for (size_t i = 0; i < n; i++)
        free(v[i].key);
    free(v);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : -1;
}

/* Opens the file for the writer. Returns 0, or -1 with why in err. */
static int db_open(struct ledger *l, char *err, size_t errlen)
{
    const char *why = NULL;
    int64_t version = 0;
    l->db = sqlite_file_open(l->path, 0, LEDGER_SCHEMA_VERSION, &version, &why);
    if (!l->db) {
        snprintf(err, errlen, "ledger %s: %s", l->path, why);
        return -1;
    }
    char pages[64];
    snprintf(pages, sizeof pages, "PRAGMA max_page_count=%u", l->max_pages);
    /* NORMAL: a commit survives the process being killed (the WAL is in the
       kernel's hands); only a power cut can take back the last few. */
    if (sqlite3_exec(l->db, "PRAGMA synchronous=NORMAL", NULL, NULL, NULL) ||
        (l->max_pages && sqlite3_exec(l->db, pages, NULL, NULL, NULL)) ||
        sqlite3_exec(l->db, schema, NULL, NULL, NULL) ||
        (version == 0 && sqlite3_exec(l->db, "PRAGMA user_version=1", NULL, NULL, NULL)) ||
        sqlite3_prepare_v3(l->db, insert_sql, -1, SQLITE_PREPARE_PERSISTENT, &l->insert_row,
                           NULL) ||
        sqlite3_prepare_v3(l->db, upsert_sql, -1, SQLITE_PREPARE_PERSISTENT, &l->upsert_day,
                           NULL) ||
        (!l->spend_loaded && load_spend(l))) {
        why = sqlite3_errmsg(l->db);
        goto fail;
    }
    /* Once: after a reopen the map already holds what the file had. */
    l->spend_loaded = true;
    atomic_store(&l->open, true);
    return 0;
fail:
    snprintf(err, errlen, "ledger %s: %s", l->path, why);
    db_close(l);
    return -1;
}

/* db_open for the writer, keeping the reason for the log. */
static void try_open(struct ledger *l)
{
    if (db_open(l, l->open_error, sizeof l->open_error) == 0) {
        log_info("ledger %s: open", l->path);
    } else {
        l->next_open_ms = mono_ms() + l->reopen_ms;
    }
}

static void bind_text(sqlite3_stmt *st, int i, const char *s)
{
    if (s)
        sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, i);
}

static void bind_count(sqlite3_stmt *st, int i, int64_t n)
{
    if (n >= 0)
        sqlite3_bind_int64(st, i, n);
    else
        sqlite3_bind_null(st, i);
}

static int step_reset(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static int write_one(struct ledger *l, const struct lrec *r)
{
    sqlite3_stmt *st = l->insert_row;
    sqlite3_bind_int64(st, 1, r->time_ms);
    bind_text(st, 2, r->request_id);
    if (r->key_id > 0) sqlite3_bind_int64(st, 3, r->key_id);
    bind_text(st, 4, r->key_name);
    bind_text(st, 5, r->model);
    bind_text(st, 6, r->provider);
    bind_text(st, 7, r->deployment_model);
    sqlite3_bind_int(st, 8, r->status);
    bind_text(st, 9, outcome_name(r->outcome));
    for (int i = 0; i < 4; i++)
        bind_count(st, 10 + i, r->tokens[i]);
    sqlite3_bind_int(st, 14, r->usage_estimated);
    sqlite3_bind_double(st, 15, r->cost);
    bind_text(st, 16, r->currency);
    bind_count(st, 17, r->ttft_ms);
    sqlite3_bind_int64(st, 18, r->duration_ms);
    int rc = step_reset(st);
    if (rc) return rc;

    char day[11];
    ledger_day_string(r->time_ms, day);
    st = l->upsert_day;
    sqlite3_bind_text(st, 1, day, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, r->key_name ? r->key_name : "", -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, r->model ? r->model : "", -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, r->provider ? r->provider : "", -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, r->currency ? r->currency : "", -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 6, r->outcome != OUTCOME_OK);
    for (int i = 0; i < 4; i++)
        sqlite3_bind_int64(st, 7 + i, r->tokens[i] > 0 ? r->tokens[i] : 0);
    sqlite3_bind_double(st, 11, r->cost);
    return step_reset(st);
}

/* Errors after which the connection is not worth keeping: reopen later. */
static bool connection_lost(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_IOERR:
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
    case SQLITE_CANTOPEN:
    case SQLITE_READONLY:
        return true;
    default:
        return false;
    }
}

/* One transaction for v[0..n); returns how many were written (n or 0). */
static size_t write_batch(struct ledger *l, struct lrec **v, size_t n)
{
    if (!l->db && mono_ms() >= l->next_open_ms) try_open(l);
    if (!l->db) {
        if (log_due(&l->last_error_log))
            log_error("%s (tried again every %g s); %zu records lost, %llu in all so far",
                      l->open_error, l->reopen_ms / 1000.0, n,
                      (unsigned long long)atomic_load(&l->dropped_error) + n);
        return 0;
    }
    int rc = sqlite3_exec(l->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    for (size_t i = 0; i < n && rc == SQLITE_OK; i++)
        rc = write_one(l, v[i]);
    if (rc == SQLITE_OK) rc = sqlite3_exec(l->db, "COMMIT", NULL, NULL, NULL);
    if (rc == SQLITE_OK) return n;
    int xrc = sqlite3_extended_errcode(l->db);
    if (log_due(&l->last_error_log))
        log_error("ledger %s: %s (%d); %zu records lost, %llu in all so far", l->path,
                  sqlite3_errmsg(l->db), xrc, n,
                  (unsigned long long)atomic_load(&l->dropped_error) + n);
    if (!sqlite3_get_autocommit(l->db)) sqlite3_exec(l->db, "ROLLBACK", NULL, NULL, NULL);
    if (connection_lost(xrc)) {
        snprintf(l->open_error, sizeof l->open_error, "ledger %s: closed after: %s", l->path,
                 sqlite3_errmsg(l->db));
        db_close(l);
        l->next_open_ms = mono_ms() + l->reopen_ms;
    }
    return 0;
}

/* ---- the writer thread ---- */

static void abs_deadline(struct timespec *ts, int64_t mono_deadline_ms)
{
    ts->tv_sec = (time_t)(mono_deadline_ms / 1000);
    ts->tv_nsec = (long)(mono_deadline_ms % 1000) * 1000000;
}

static void *writer_main(void *arg)
{
    struct ledger *l = arg;
    pthread_mutex_lock(&l->lock);
    for (;;) {
        if (l->stop && l->count == 0) break;
        if (l->hold || l->count == 0) {
            pthread_cond_wait(&l->wake, &l->lock);
            continue;
        }
        /* Fewer than a batch: wait for more until the oldest has waited flush_ms,
           unless someone wants everything now. */
        if (l->count < l->batch && !l->stop && l->sync_waiters == 0) {
            int64_t due = l->ring[l->head]->enqueued_ms + l->flush_ms;
            if (mono_ms() < due) {
                struct timespec ts;
                abs_deadline(&ts, due);
                pthread_cond_timedwait(&l->wake, &l->lock, &ts);
                continue;
            }
        }
        uint32_t n = l->count < l->batch ? l->count : l->batch;
        for (uint32_t i = 0; i < n; i++) {
            l->taken[i] = l->ring[l->head];
            l->ring[l->head] = NULL;
            l->head = (l->head + 1) % l->cap;
        }
        l->count -= n;
        bool stopping = l->stop;
        uint32_t left = l->count;
        pthread_mutex_unlock(&l->lock);

        /* Closing and the file fails: do not make the exit wait on every
           batch's timeout; what is left is counted lost at once. */
        size_t written = l->giving_up ? 0 : write_batch(l, l->taken, n);
        if (!written && stopping && !l->giving_up) {
            l->giving_up = true;
            log_error("ledger: closing; the last %u records are lost", left + n);
        }
        for (uint32_t i = 0; i < n; i++)
            free(l->taken[i]);
        if (written) {
            atomic_fetch_add(&l->written, written);
            atomic_fetch_add(&l->batches, 1);
        } else {
            atomic_fetch_add(&l->dropped_error, n);
        }

        pthread_mutex_lock(&l->lock);
        l->done += n;
        pthread_cond_broadcast(&l->progress);
    }
    pthread_mutex_unlock(&l->lock);
    return NULL;
}

/* ---- the public calls ---- */

void ledger_options_from_config(struct ledger_options *o, const struct cfg_ledger *c)
{
    *o = (struct ledger_options){
        .path = c->path,
        .queue = c->queue,
        .batch = c->batch,
        .flush_interval_ms = c->flush_interval_ms,
    };
}

static void ledger_free(struct ledger *l)
{
    if (l->db) db_close(l);
    for (uint32_t i = 0; l->ring && i < l->count; i++)
        free(l->ring[(l->head + i) % l->cap]);
    free(l->ring);
    free(l->taken);
    free(l->path);
    spend_free(&l->spend);
    pthread_cond_destroy(&l->wake);
    pthread_cond_destroy(&l->progress);
    pthread_mutex_destroy(&l->lock);
    free(l);
}

int ledger_open(const struct ledger_options *o, struct ledger **out, char *err, size_t errlen)
{
    uint32_t cap = o->queue ? o->queue : LEDGER_DEFAULT_QUEUE;
    uint32_t batch = o->batch ? o->batch : LEDGER_DEFAULT_BATCH;
    if (batch > cap) batch = cap;
    if (cap > LEDGER_MAX_QUEUE || batch > LEDGER_MAX_BATCH) {
        snprintf(err, errlen, "ledger: queue at most %u, batch at most %u", LEDGER_MAX_QUEUE,
                 LEDGER_MAX_BATCH);
        return -EINVAL;
    }
    struct ledger *l = calloc(1, sizeof *l);
    if (!l) return -ENOMEM;
    l->cap = cap;
    l->batch = batch;
    l->flush_ms = o->flush_interval_ms ? o->flush_interval_ms : LEDGER_DEFAULT_FLUSH_MS;
    l->max_pages = o->max_pages;
    l->reopen_ms = o->reopen_ms ? o->reopen_ms : LEDGER_REOPEN_MS;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* the flush deadline ignores clock steps */
    pthread_mutex_init(&l->lock, NULL);
    pthread_cond_init(&l->wake, &ca);
    pthread_cond_init(&l->progress, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&l->spend.lock, NULL);
    if (!o->path) { /* spend only */
        *out = l;
        return 0;
    }
    l->path = strdup(o->path);
    l->ring = calloc(cap, sizeof *l->ring);
    l->taken = calloc(batch, sizeof *l->taken);
    if (!l->path || !l->ring || !l->taken) {
        ledger_free(l);
        return -ENOMEM;
    }
    int rc = 0;
    if (db_open(l, l->open_error, sizeof l->open_error)) {
        rc = LEDGER_DEGRADED;
        l->next_open_ms = mono_ms() + l->reopen_ms;
        snprintf(err, errlen, "%s", l->open_error);
    }
    /* The writer takes no signal: they belong to the event loops. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int prc = pthread_create(&l->writer, NULL, writer_main, l);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (prc) {
        snprintf(err, errlen, "ledger: cannot start its writer thread: %s", strerror(prc));
        ledger_free(l);
        return -prc;
    }
    l->writer_started = true;
    *out = l;
    return rc;
}

void ledger_close(struct ledger *l)
{
    if (!l) return;
    if (l->writer_started) {
        pthread_mutex_lock(&l->lock);
        l->stop = true;
        l->hold = false;
        pthread_cond_signal(&l->wake);
        pthread_mutex_unlock(&l->lock);
        pthread_join(l->writer, NULL);
    }
    ledger_free(l);
}

static struct lrec *pack(const struct ledger_record *r)
{
    const char *src[6] = {r->request_id, r->key_name,         r->model,
                          r->provider,   r->deployment_model, r->currency};
    size_t len[6], total = 0;
    for (int i = 0; i < 6; i++) {
        len[i] = src[i] ? strnlen(src[i], LEDGER_MAX_TEXT) : 0;
        total += src[i] ? len[i] + 1 : 0;
    }
    struct lrec *x = malloc(sizeof *x + total);
    if (!x) return NULL;
    *x = (struct lrec){
        .enqueued_ms = mono_ms(),
        .time_ms = r->time_ms,
        .key_id = r->key_id,
        .ttft_ms = r->ttft_ms,
        .duration_ms = r->duration_ms,
        .tokens = {r->prompt_tokens, r->completion_tokens, r->reasoning_tokens, r->cached_tokens},
        .cost = r->cost,
        .status = r->status,
        .usage_estimated = r->usage_estimated,
        .outcome = r->outcome,
    };
    const char **dst[6] = {&x->request_id, &x->key_name,         &x->model,
                           &x->provider,   &x->deployment_model, &x->currency};
    char *p = x->text;
    for (int i = 0; i < 6; i++) {
        if (!src[i]) continue;
        memcpy(p, src[i], len[i]);
        p[len[i]] = '\0';
        *dst[i] = p;
        p += len[i] + 1;
    }
    return x;
}

int ledger_record(struct ledger *l, const struct ledger_record *r)
{
    if (!l) return 0;
    if (r->currency && r->cost != 0) {
        int64_t day = utcdate_day_of(r->time_ms);
        int32_t month = month_of(r->time_ms);
        pthread_mutex_lock(&l->spend.lock);
        spend_add_locked(&l->spend, r->key_name, r->currency, r->cost, r->cost, day, month);
        pthread_mutex_unlock(&l->spend.lock);
    }
    if (!l->writer_started) return 0;
    struct lrec *x = pack(r);
    if (!x) {
        uint64_t lost = atomic_fetch_add(&l->dropped_error, 1) + 1;
        if (log_due(&l->last_error_log))
            log_error("ledger: out of memory; records lost so far: %llu", (unsigned long long)lost);
        return -ENOMEM;
    }
    pthread_mutex_lock(&l->lock);
    if (l->count == l->cap) {
        pthread_mutex_unlock(&l->lock);
        free(x);
        uint64_t lost = atomic_fetch_add(&l->dropped_full, 1) + 1;
        if (log_due(&l->last_full_log))
            log_warn("ledger: queue full (%u records; the disk is slower than the traffic); "
                     "records dropped so far: %llu",
                     l->cap, (unsigned long long)lost);
        return -ENOBUFS;
    }
    l->ring[(l->head + l->count) % l->cap] = x;
    l->count++;
    l->accepted++;
    /* The writer sleeps without a deadline on an empty queue, and until the
       oldest record's deadline on a short one: wake it when either changes. */
    bool wake = l->count == 1 || l->count == l->batch;
    pthread_mutex_unlock(&l->lock);
    if (wake) pthread_cond_signal(&l->wake);
    return 0;
}

void ledger_record_price(struct ledger_record *r, const struct config *cfg)
{
    struct prices_usage u = {r->prompt_tokens, r->completion_tokens, r->reasoning_tokens,
                             r->cached_tokens};
    int64_t start = r->time_ms - (r->duration_ms > 0 ? r->duration_ms : 0);
    prices_cost(cfg, r->provider, r->deployment_model, &u, start, &r->cost, &r->currency);
}

int ledger_sync(struct ledger *l, uint32_t timeout_ms)
{
    if (!l || !l->writer_started) return 0;
    struct timespec ts;
    abs_deadline(&ts, mono_ms() + timeout_ms);
    int rc = 0;
    pthread_mutex_lock(&l->lock);
    uint64_t target = l->accepted;
    l->sync_waiters++;
    pthread_cond_signal(&l->wake);
    while (l->done < target && rc == 0)
        if (pthread_cond_timedwait(&l->progress, &l->lock, &ts) == ETIMEDOUT && l->done < target)
            rc = -ETIMEDOUT;
    l->sync_waiters--;
    pthread_mutex_unlock(&l->lock);
    return rc;
}

void ledger_stats(struct ledger *l, struct ledger_stats *out)
{
    memset(out, 0, sizeof *out);
    if (!l) return;
    pthread_mutex_lock(&l->lock);
    out->queued = l->accepted;
    out->depth = l->count;
    pthread_mutex_unlock(&l->lock);
    out->written = atomic_load(&l->written);
    out->dropped_full = atomic_load(&l->dropped_full);
    out->dropped_error = atomic_load(&l->dropped_error);
    out->batches = atomic_load(&l->batches);
    out->open = atomic_load(&l->open);
}

double ledger_spend(struct ledger *l, const char *key_name, enum ledger_period period,
                    int64_t now_ms, const char *currency)
{
    if (!l) return 0;
    double sum = 0;
    pthread_mutex_lock(&l->spend.lock);
    const struct spend_entry *e = spend_entry(&l->spend, key_name ? key_name : "", false);
    /* Totals of a day (month) that has ended count for nothing now. */
    bool current =
        e && (period == LEDGER_DAY ? utcdate_day_of(now_ms) <= e->day : month_of(now_ms) <= e->month);
    for (unsigned i = 0; current && i < e->ncur; i++)
        if (!currency || strcmp(currency, e->cur[i].code) == 0)
            sum += period == LEDGER_DAY ? e->cur[i].day : e->cur[i].month;
    pthread_mutex_unlock(&l->spend.lock);
    return sum;
}

void ledger_test_hold(struct ledger *l, bool hold)
{
    pthread_mutex_lock(&l->lock);
    l->hold = hold;
    pthread_cond_signal(&l->wake);
    pthread_mutex_unlock(&l->lock);
}
