/*
 * ledger — every finished request's usage and cost, in an SQLite file, and
 * the per-key spend that budgets check.
 *
 * The request path calls ledger_record when a request ends. That call never
 * touches the disk and never waits for the writer: it copies the record into
 * one allocation and puts a pointer in a bounded ring under a mutex held for
 * a few stores. When the ring is full the record is dropped and counted
 * (ledger_stats().dropped_full, a log line at most every 10 s). One writer
 * thread owns the SQLite connection: it takes up to `batch` records at a
 * time, as soon as `batch` are waiting or the oldest has waited
 * `flush_interval`, and writes them in one transaction: a row each in
 * `requests` and an UPSERT into the day's rollup in `daily` (day, key, model,
 * provider, currency), so rows and rollups never disagree. If the database
 * fails (disk full, I/O error, cannot be opened), that batch is lost and
 * counted (dropped_error, logged at most every 10 s); requests keep flowing
 * and the writer tries to reopen a file it lost every 5 s.
 *
 * Durability: WAL mode with synchronous=NORMAL. A committed transaction is in
 * the WAL file (the kernel has it) before COMMIT returns, so killing the
 * process (kill -9, a crash) loses no committed row; what is lost is what was
 * still in the ring plus the batch being written. A power cut or a kernel
 * crash may also roll back the last transactions before a checkpoint, never
 * corrupting the file: SQLite's own guarantee for WAL + NORMAL.
 *
 * Spend: totals per key and currency for the current UTC day and month, kept
 * in memory (loaded from the rollups at open, added to by ledger_record, also
 * for a record that was then dropped: the money was spent all the same), so
 * a budget check is a hash lookup, no disk.
 *
 * Who calls it: main (ledger_open at start, ledger_close after the workers
 * have stopped), the request's finalize (ledger_record_price, ledger_record),
 * admission (ledger_spend), /metrics (ledger_stats), `unbusy usage`
 * (usage_cli.c, which reads the file on its own). Thread-safe: any thread may
 * record or ask for spend. docs/usage.md describes the tables.
 */
#ifndef UNBUSY_LEDGER_H
#define UNBUSY_LEDGER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "acct/outcome.h"

#define LEDGER_DEFAULT_QUEUE 65536
#define LEDGER_DEFAULT_BATCH 256
#define LEDGER_DEFAULT_FLUSH_MS 200
#define LEDGER_MAX_QUEUE (1u << 24)
#define LEDGER_MAX_BATCH 65536u
#define LEDGER_MAX_TEXT 256          /* a longer string in a record is cut */
#define LEDGER_REOPEN_MS 5000        /* a lost database is tried again this often */
#define LEDGER_LOG_EVERY_MS 10000    /* drops and errors are logged at most this often */
#define LEDGER_MAX_SPEND_KEYS 131072 /* keys with a spend total (more are not tracked; logged) */
#define LEDGER_SPEND_CURRENCIES 4    /* currencies per key with a spend total */
#define LEDGER_SCHEMA_VERSION 1

/* One finished request. Strings are copied; NULL is stored as NULL. */
struct ledger_record {
    int64_t time_ms; /* unix ms, when it ended */
    const char *request_id;
    int64_t key_id;       /* the key store's id; 0 for a key of the config file or none */
    const char *key_name; /* NULL: no key (an open gateway) */
    const char *model;    /* the name the client asked for */
    const char *provider; /* NULL: no deployment was tried */
    const char *deployment_model;
    int status;            /* the HTTP status the client got */
    enum outcome outcome;  /* as in the access log; the row holds its name */
    int64_t prompt_tokens; /* -1 (any negative): unknown */
    int64_t completion_tokens;
    int64_t reasoning_tokens; /* part of completion_tokens */
    int64_t cached_tokens;    /* part of prompt_tokens */
    bool usage_estimated;     /* the provider reported none: prices_estimate_tokens guessed */
    double cost;              /* in currency */
    const char *currency;     /* NULL: no price matched (cost 0) */
    int64_t ttft_ms;          /* -1: no first token */
    int64_t duration_ms;
};

enum ledger_period { LEDGER_DAY, LEDGER_MONTH }; /* UTC */

struct ledger_options {
    const char *path;           /* NULL: no file, only the spend totals (in memory) */
    uint32_t queue;             /* 0: LEDGER_DEFAULT_QUEUE */
    uint32_t batch;             /* 0: LEDGER_DEFAULT_BATCH; at most queue */
    uint32_t flush_interval_ms; /* 0: LEDGER_DEFAULT_FLUSH_MS */
    uint32_t reopen_ms;         /* 0: LEDGER_REOPEN_MS */
    uint32_t max_pages;         /* SQLite's max_page_count; 0: no limit (tests fill a "disk") */
};

struct ledger_stats {
    uint64_t queued;        /* records accepted into the queue since open */
    uint64_t written;       /* of those, committed */
    uint64_t dropped_full;  /* refused: the queue was full */
    uint64_t dropped_error; /* accepted but lost to a database error, or not copied (no memory) */
    uint64_t batches;       /* transactions committed */
    uint32_t depth;         /* waiting in the queue now */
    bool open;              /* the database is open now */
};

struct ledger;

/* The options of a config's ledger: section. */
void ledger_options_from_config(struct ledger_options *o, const struct cfg_ledger *c);

/*
 * Opens (creating, mode 0600) the file, its tables and WAL mode, loads the
 * spend totals and starts the writer. Does disk I/O: call it at start, not
 * on an event loop. Returns 0; LEDGER_DEGRADED when the file cannot be used
 * now (why in err): *out works all the same, losing records (counted) and
 * trying the file again every reopen_ms; or -EINVAL (bad options,
 * in err) / -ENOMEM / -errno with *out untouched.
 */
#define LEDGER_DEGRADED 1
int ledger_open(const struct ledger_options *o, struct ledger **out, char *err, size_t errlen);

/* Flushes what is queued, stops the writer and closes the file. No record may
   come in during or after it. NULL is fine. */
void ledger_close(struct ledger *l);

/*
 * Queues one record (any thread; never blocks on disk or the writer). Returns
 * 0; -ENOBUFS (queue full: dropped, counted) or -ENOMEM (dropped, counted).
 * A NULL ledger does nothing.
 */
int ledger_record(struct ledger *l, const struct ledger_record *r);

/* Fills r->cost and r->currency from cfg's prices for r's provider and
   deployment model, at the time the request started (time_ms - duration_ms). */
void ledger_record_price(struct ledger_record *r, const struct config *cfg);

/* Waits until every record queued before the call is written or lost.
   Returns 0, or -ETIMEDOUT. Not while held (ledger_test_hold). */
int ledger_sync(struct ledger *l, uint32_t timeout_ms);

void ledger_stats(struct ledger *l, struct ledger_stats *out); /* zeros for NULL */

/*
 * What key_name (NULL: requests without a key) has spent in the UTC day or
 * month holding now_ms, in currency (NULL: every currency added up, which
 * only makes sense with one currency). No disk. 0 for a NULL ledger.
 */
double ledger_spend(struct ledger *l, const char *key_name, enum ledger_period period,
                    int64_t now_ms, const char *currency);

/* "YYYY-MM-DD" of the UTC day holding time_ms. */
void ledger_day_string(int64_t time_ms, char out[11]);

/* Tests: while held, the writer takes nothing from the queue. */
void ledger_test_hold(struct ledger *l, bool hold);

#endif
