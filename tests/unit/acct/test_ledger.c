/* Unit tests for the ledger: 10,000 records through the queue into a
   temporary file (rows, token and cost totals, rollups equal to the rows,
   spend totals in memory and reloaded from the rollups), the flush interval,
   queue overflow while the writer is held back, a missing or read-only
   directory and a full "disk" (losses counted, no crash, requests still
   accepted), spend across days and months, pricing a record, and a child
   process killed with SIGKILL mid-stream: the file is intact and holds a
   whole prefix of what was recorded. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <math.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "config/config.h"
#include "acct/ledger.h"
#include "cmd/cmd.h"
#include "config/prices.h"

static char dir[256];
static char dbpath[320];

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

static int setup(void **state)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/unbusy-ledger-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    assert_non_null(mkdtemp(dir));
    snprintf(dbpath, sizeof dbpath, "%s/ledger.db", dir);
    return 0;
}

static int teardown(void **state)
{
    chmod(dir, 0700);
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

static struct ledger *open_ledger(const char *path, uint32_t queue, uint32_t batch,
                                  uint32_t flush_ms, int expect_rc)
{
    struct ledger_options o = {
        .path = path, .queue = queue, .batch = batch, .flush_interval_ms = flush_ms};
    struct ledger *l = NULL;
    char err[512] = "";
    int rc = ledger_open(&o, &l, err, sizeof err);
    if (rc != expect_rc) fprintf(stderr, "ledger_open: %d %s\n", rc, err);
    assert_int_equal(rc, expect_rc);
    assert_non_null(l);
    return l;
}

static sqlite3 *open_db(const char *path)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    return db;
}

static int64_t query_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        fprintf(stderr, "%s: %s\n", sql, sqlite3_errmsg(db));
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

static double query_double(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    double v = sqlite3_column_double(st, 0);
    sqlite3_finalize(st);
    return v;
}

#define assert_near(a, b)                                                                          \
    assert_true(fabs((double)(a) - (double)(b)) < 1e-9 * (fabs((double)(b)) + 1))

/* ---- the records the tests write: record i is a function of i alone ---- */

static const char *const key_names[] = {"team-a", "team-b", NULL, "batch"};
static const char *const models[] = {"deepseek-r1", "deepseek-v3", "qwen-max"};
static const char *const providers[] = {"deepseek", "ark"};

struct gen {
    char rid[32];
    struct ledger_record r;
};

static void generate(struct gen *g, uint64_t i, int64_t base_ms)
{
    snprintf(g->rid, sizeof g->rid, "req-%08llu", (unsigned long long)i);
    g->r = (struct ledger_record){
        .time_ms = base_ms - (int64_t)(i % 3) * 86400000, /* today and the two days before */
        .request_id = g->rid,
        .key_id = i % 4 == 1 ? (int64_t)(i % 7) + 1 : 0,
        .key_name = key_names[i % 4],
        .model = models[i % 3],
        .provider = i % 11 == 0 ? NULL : providers[i % 2],
        .deployment_model = i % 11 == 0 ? NULL : "dm",
        .status = i % 13 == 0 ? 503 : 200,
        .outcome = i % 13 == 0 ? OUTCOME_UPSTREAM_FAILED : OUTCOME_OK,
        .prompt_tokens = (int64_t)(i % 1000),
        .completion_tokens = i % 17 == 0 ? -1 : (int64_t)((i * 7) % 500),
        .reasoning_tokens = i % 5 == 0 ? -1 : (int64_t)(i % 50),
        .cached_tokens = (int64_t)(i % 100),
        .usage_estimated = i % 9 == 0,
        .cost = (double)(i % 10) * 0.001 + 0.0005,
        .currency = i % 11 == 0 ? NULL : (i % 6 == 0 ? "CNY" : "USD"),
        .ttft_ms = i % 13 == 0 ? -1 : (int64_t)(i % 300),
        .duration_ms = (int64_t)(i % 3000),
    };
    if (!g->r.currency) g->r.cost = 0;
}

struct totals {
    int64_t prompt, completion, reasoning, cached;
    double cost_usd, cost_cny;
    double spend_day[4], spend_month[4]; /* USD, by key index */
};

static void add_totals(struct totals *t, const struct ledger_record *r, uint64_t i, int64_t now)
{
    t->prompt += r->prompt_tokens > 0 ? r->prompt_tokens : 0;
    t->completion += r->completion_tokens > 0 ? r->completion_tokens : 0;
    t->reasoning += r->reasoning_tokens > 0 ? r->reasoning_tokens : 0;
    t->cached += r->cached_tokens > 0 ? r->cached_tokens : 0;
    if (r->currency && strcmp(r->currency, "USD") == 0) t->cost_usd += r->cost;
    if (r->currency && strcmp(r->currency, "CNY") == 0) t->cost_cny += r->cost;
    if (!r->currency || strcmp(r->currency, "USD") != 0) return;
    char day[11], today[11];
    ledger_day_string(r->time_ms, day);
    ledger_day_string(now, today);
    if (strcmp(day, today) == 0) t->spend_day[i % 4] += r->cost;
    if (strncmp(day, today, 7) == 0) t->spend_month[i % 4] += r->cost;
}

static void check_spend(struct ledger *l, const struct totals *t, int64_t now)
{
    for (int k = 0; k < 4; k++) {
        assert_near(ledger_spend(l, key_names[k], LEDGER_DAY, now, "USD"), t->spend_day[k]);
        assert_near(ledger_spend(l, key_names[k], LEDGER_MONTH, now, "USD"), t->spend_month[k]);
    }
    assert_near(ledger_spend(l, "nobody", LEDGER_MONTH, now, NULL), 0);
}

/* Every rollup equals the sum of its rows, and there is no rollup without rows. */
static void check_rollups(sqlite3 *db)
{
    static const char groups[] =
        "CREATE TEMP TABLE g AS SELECT date(time_ms / 1000, 'unixepoch') AS day,"
        " coalesce(key_name, '') AS key, coalesce(model, '') AS model,"
        " coalesce(provider, '') AS provider, coalesce(currency, '') AS currency,"
        " count(*) AS n, sum(outcome IS NOT 'ok') AS e,"
        " sum(coalesce(prompt_tokens, 0)) AS pt, sum(coalesce(completion_tokens, 0)) AS ct,"
        " sum(coalesce(reasoning_tokens, 0)) AS rt, sum(coalesce(cached_tokens, 0)) AS xt,"
        " sum(cost) AS cost FROM requests GROUP BY 1, 2, 3, 4, 5";
    assert_int_equal(sqlite3_exec(db, groups, NULL, NULL, NULL), SQLITE_OK);
    int64_t ngroups = query_int(db, "SELECT count(*) FROM g");
    assert_true(ngroups > 1);
    assert_int_equal(query_int(db, "SELECT count(*) FROM daily"), ngroups);
    assert_int_equal(query_int(db, "SELECT count(*) FROM g JOIN daily d USING (day, key, model,"
                                   " provider, currency) WHERE g.n = d.requests AND g.e = d.errors"
                                   " AND g.pt = d.prompt_tokens AND g.ct = d.completion_tokens"
                                   " AND g.rt = d.reasoning_tokens AND g.xt = d.cached_tokens"
                                   " AND abs(g.cost - d.cost) < 1e-9"),
                     ngroups);
    sqlite3_exec(db, "DROP TABLE g", NULL, NULL, NULL);
}

static void test_ten_thousand(void **state)
{
    enum { N = 10000 };
    int64_t now = now_ms();
    struct totals t = {0};
    struct ledger *l = open_ledger(dbpath, 0, 256, 50, 0);
    for (uint64_t i = 0; i < N; i++) {
        struct gen g;
        generate(&g, i, now);
        assert_int_equal(ledger_record(l, &g.r), 0);
        add_totals(&t, &g.r, i, now);
    }
    check_spend(l, &t, now);
    assert_int_equal(ledger_sync(l, 30000), 0);
    struct ledger_stats s;
    ledger_stats(l, &s);
    assert_int_equal(s.queued, N);
    assert_int_equal(s.written, N);
    assert_int_equal(s.dropped_full + s.dropped_error, 0);
    assert_true(s.batches >= N / 256 && s.batches <= N);
    assert_int_equal(s.depth, 0);
    assert_true(s.open);
    ledger_close(l);

    sqlite3 *db = open_db(dbpath);
    assert_int_equal(query_int(db, "SELECT count(*) FROM requests"), N);
    assert_int_equal(query_int(db, "SELECT count(DISTINCT request_id) FROM requests"), N);
    assert_int_equal(query_int(db, "SELECT sum(prompt_tokens) FROM requests"), t.prompt);
    assert_int_equal(query_int(db, "SELECT sum(completion_tokens) FROM requests"), t.completion);
    assert_int_equal(query_int(db, "SELECT sum(reasoning_tokens) FROM requests"), t.reasoning);
    assert_int_equal(query_int(db, "SELECT sum(cached_tokens) FROM requests"), t.cached);
    assert_near(query_double(db, "SELECT sum(cost) FROM requests WHERE currency = 'USD'"),
                t.cost_usd);
    assert_near(query_double(db, "SELECT sum(cost) FROM requests WHERE currency = 'CNY'"),
                t.cost_cny);
    /* unknown stays unknown; no key is NULL; config keys have no id */
    assert_int_equal(query_int(db, "SELECT count(*) FROM requests WHERE completion_tokens IS NULL"),
                     (N + 16) / 17);
    assert_int_equal(query_int(db, "SELECT count(*) FROM requests WHERE key_name IS NULL"), N / 4);
    assert_int_equal(query_int(db, "SELECT count(*) FROM requests WHERE key_id IS NOT NULL"),
                     N / 4);
    assert_int_equal(query_int(db, "SELECT count(*) FROM requests WHERE usage_estimated"),
                     (N + 8) / 9);
    assert_int_equal(query_int(db,
                               "SELECT count(*) FROM requests WHERE request_id = 'req-00000042'"
                               " AND model = 'deepseek-r1' AND provider = 'deepseek'"
                               " AND key_name IS NULL AND prompt_tokens = 42"
                               " AND completion_tokens = 294 AND reasoning_tokens = 42"
                               " AND cached_tokens = 42 AND status = 200 AND NOT usage_estimated"
                               " AND outcome = 'ok' AND ttft_ms = 42 AND duration_ms = 42"
                               " AND currency = 'CNY' AND abs(cost - 0.0025) < 1e-12"),
                     1);
    assert_int_equal(query_int(db, "SELECT sum(requests) FROM daily"), N);
    assert_int_equal(query_int(db, "SELECT sum(errors) FROM daily"), (N + 12) / 13);
    assert_int_equal(query_int(db, "SELECT sum(prompt_tokens) FROM daily"), t.prompt);
    check_rollups(db);
    assert_int_equal(query_int(db, "PRAGMA user_version"), LEDGER_SCHEMA_VERSION);
    sqlite3_close(db);

    /* The spend totals come back from the rollups. */
    l = open_ledger(dbpath, 0, 0, 0, 0);
    check_spend(l, &t, now);
    ledger_close(l);
}

static void test_flush_interval(void **state)
{
    struct ledger *l = open_ledger(dbpath, 1024, 256, 20, 0);
    int64_t base = now_ms();
    for (uint64_t i = 0; i < 3; i++) {
        struct gen g;
        generate(&g, i, base);
        assert_int_equal(ledger_record(l, &g.r), 0);
    }
    /* Far fewer than a batch: written once the oldest has waited 20 ms. */
    struct ledger_stats s;
    for (int tries = 0; tries < 5000; tries++) {
        ledger_stats(l, &s);
        if (s.written == 3) break;
        sleep_ms(1);
    }
    assert_int_equal(s.written, 3);
    assert_int_equal(s.batches, 1);
    sqlite3 *db = open_db(dbpath);
    assert_int_equal(query_int(db, "SELECT count(*) FROM requests"), 3);
    sqlite3_close(db);
    ledger_close(l);
}

static void test_overflow(void **state)
{
    struct ledger *l = open_ledger(dbpath, 8, 4, 5, 0);
    ledger_test_hold(l, true);
    int accepted = 0, refused = 0;
    for (uint64_t i = 0; i < 20; i++) {
        struct gen g;
        generate(&g, i, now_ms());
        int rc = ledger_record(l, &g.r);
        assert_true(rc == 0 || rc == -ENOBUFS);
        rc == 0 ? accepted++ : refused++;
    }
    assert_int_equal(accepted, 8);
    assert_int_equal(refused, 12);
    struct ledger_stats s;
    ledger_stats(l, &s);
    assert_int_equal(s.queued, 8);
    assert_int_equal(s.depth, 8);
    assert_int_equal(s.dropped_full, 12);
    assert_int_equal(s.written, 0);
    /* Refused records still count as spend: the money was spent. */
    assert_true(ledger_spend(l, "team-a", LEDGER_DAY, now_ms(), NULL) > 0);
    ledger_test_hold(l, false);
    assert_int_equal(ledger_sync(l, 10000), 0);
    ledger_stats(l, &s);
    assert_int_equal(s.written, 8);
    assert_int_equal(s.depth, 0);
    assert_int_equal(s.batches, 2);
    ledger_close(l);
    sqlite3 *db = open_db(dbpath);
    assert_int_equal(query_int(db, "SELECT count(*) FROM requests"), 8);
    assert_int_equal(
        query_int(db, "SELECT count(*) FROM requests WHERE request_id < 'req-00000008'"), 8);
    sqlite3_close(db);
}

/* Records into a ledger that cannot write: all accepted, all counted lost. */
static void record_into_broken(struct ledger *l, unsigned n)
{
    for (uint64_t i = 0; i < n; i++) {
        struct gen g;
        generate(&g, i, now_ms());
        assert_int_equal(ledger_record(l, &g.r), 0);
    }
    assert_int_equal(ledger_sync(l, 10000), 0);
    struct ledger_stats s;
    ledger_stats(l, &s);
    assert_int_equal(s.queued, n);
    assert_int_equal(s.dropped_error, n);
    assert_int_equal(s.written, 0);
    assert_false(s.open);
}

static void test_missing_directory(void **state)
{
    char path[400];
    snprintf(path, sizeof path, "%s/no/such/dir/ledger.db", dir);
    struct ledger_options o = {.path = path, .queue = 64, .batch = 8, .flush_interval_ms = 5};
    struct ledger *l = NULL;
    char err[512] = "";
    assert_int_equal(ledger_open(&o, &l, err, sizeof err), LEDGER_DEGRADED);
    assert_non_null(strstr(err, path));
    assert_non_null(strstr(err, "No such file or directory"));
    record_into_broken(l, 50);
    assert_true(ledger_spend(l, "team-a", LEDGER_MONTH, now_ms(), "USD") > 0);
    ledger_close(l);
}

/* The directory appears later: the writer opens the file and writes from then on. */
static void test_reopen(void **state)
{
    char sub[400], path[420];
    snprintf(sub, sizeof sub, "%s/later", dir);
    snprintf(path, sizeof path, "%s/ledger.db", sub);
    struct ledger_options o = {
        .path = path, .queue = 64, .batch = 8, .flush_interval_ms = 2, .reopen_ms = 10};
    struct ledger *l = NULL;
    char err[512] = "";
    assert_int_equal(ledger_open(&o, &l, err, sizeof err), LEDGER_DEGRADED);
    record_into_broken(l, 5);
    assert_int_equal(mkdir(sub, 0700), 0);
    struct ledger_stats s = {0};
    uint64_t i = 5;
    for (int tries = 0; tries < 10000 && s.written == 0; tries++, i++) {
        struct gen g;
        generate(&g, i, now_ms());
        assert_int_equal(ledger_record(l, &g.r), 0);
        assert_int_equal(ledger_sync(l, 10000), 0);
        ledger_stats(l, &s);
        if (s.written == 0) sleep_ms(1);
    }
    assert_true(s.written > 0);
    assert_true(s.open);
    assert_int_equal(s.written + s.dropped_error, s.queued);
    ledger_close(l);
    sqlite3 *db = open_db(path);
    assert_int_equal(query_int(db, "SELECT count(*) FROM requests"), (int64_t)s.written);
    sqlite3_close(db);
}

static void test_readonly_directory(void **state)
{
    if (geteuid() == 0) skip(); /* root writes anywhere */
    char sub[400], path[420];
    snprintf(sub, sizeof sub, "%s/ro", dir);
    assert_int_equal(mkdir(sub, 0500), 0);
    snprintf(path, sizeof path, "%s/ledger.db", sub);
    struct ledger *l = open_ledger(path, 64, 8, 5, LEDGER_DEGRADED);
    record_into_broken(l, 20);
    ledger_close(l);
}

/* A "disk" of a few pages: once full, batches fail and are counted; the file stays sound. */
static void test_disk_full(void **state)
{
    struct ledger_options o = {
        .path = dbpath, .queue = 4096, .batch = 16, .flush_interval_ms = 5, .max_pages = 16};
    struct ledger *l = NULL;
    char err[512] = "";
    assert_int_equal(ledger_open(&o, &l, err, sizeof err), 0);
    char big[240];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    enum { N = 2000 };
    for (uint64_t i = 0; i < N; i++) {
        struct gen g;
        generate(&g, i, now_ms());
        g.r.deployment_model = big; /* a few rows fill a page */
        assert_int_equal(ledger_record(l, &g.r), 0);
    }
    assert_int_equal(ledger_sync(l, 30000), 0);
    struct ledger_stats s;
    ledger_stats(l, &s);
    assert_int_equal(s.queued, N);
    assert_true(s.written > 0);
    assert_true(s.dropped_error > 0);
    assert_int_equal(s.written + s.dropped_error, N);
    assert_true(s.open); /* a full disk is not a lost connection */
    ledger_close(l);
    sqlite3 *db = open_db(dbpath);
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "ok");
    sqlite3_finalize(st);
    assert_int_equal(query_int(db, "SELECT count(*) FROM requests"), (int64_t)s.written);
    check_rollups(db);
    sqlite3_close(db);
}

static void test_spend_days_and_months(void **state)
{
    struct ledger *l = open_ledger(NULL, 0, 0, 0, 0); /* spend only */
    /* 2025-01-31 10:00 UTC, the next day (another month), and a day later */
    int64_t jan31 = 1738317600000ll, feb1 = jan31 + 86400000, feb2 = feb1 + 86400000;
    char day[11];
    ledger_day_string(jan31, day);
    assert_string_equal(day, "2025-01-31");
    ledger_day_string(feb1, day);
    assert_string_equal(day, "2025-02-01");
    ledger_day_string(-1, day);
    assert_string_equal(day, "1969-12-31");
    struct ledger_record r = {.time_ms = jan31, .key_name = "a", .cost = 1, .currency = "USD"};
    assert_int_equal(ledger_record(l, &r), 0);
    r.cost = 2;
    r.currency = "CNY";
    ledger_record(l, &r);
    r.key_name = NULL; /* requests without a key have their own total */
    r.cost = 4;
    ledger_record(l, &r);
    r.currency = NULL; /* not priced: no spend */
    r.cost = 0;
    ledger_record(l, &r);
    assert_near(ledger_spend(l, "a", LEDGER_DAY, jan31, "USD"), 1);
    assert_near(ledger_spend(l, "a", LEDGER_DAY, jan31, "CNY"), 2);
    assert_near(ledger_spend(l, "a", LEDGER_DAY, jan31, NULL), 3);
    assert_near(ledger_spend(l, "a", LEDGER_MONTH, jan31, NULL), 3);
    assert_near(ledger_spend(l, NULL, LEDGER_DAY, jan31, NULL), 4);
    assert_near(ledger_spend(l, "b", LEDGER_DAY, jan31, NULL), 0);
    /* a new day and month: nothing spent there yet */
    assert_near(ledger_spend(l, "a", LEDGER_DAY, feb1, NULL), 0);
    assert_near(ledger_spend(l, "a", LEDGER_MONTH, feb1, NULL), 0);
    r = (struct ledger_record){.time_ms = feb1, .key_name = "a", .cost = 8, .currency = "USD"};
    ledger_record(l, &r);
    /* a late record of the old month counts for neither total */
    r.time_ms = jan31;
    r.cost = 16;
    ledger_record(l, &r);
    assert_near(ledger_spend(l, "a", LEDGER_DAY, feb1, "USD"), 8);
    assert_near(ledger_spend(l, "a", LEDGER_MONTH, feb1, NULL), 8);
    r.time_ms = feb2;
    r.cost = 32;
    ledger_record(l, &r);
    assert_near(ledger_spend(l, "a", LEDGER_DAY, feb2, NULL), 32);
    assert_near(ledger_spend(l, "a", LEDGER_MONTH, feb2, NULL), 40);
    assert_near(ledger_spend(NULL, "a", LEDGER_MONTH, feb2, NULL), 0);
    struct ledger_stats s;
    ledger_stats(l, &s);
    assert_int_equal(s.queued + s.written, 0); /* no file: nothing queued */
    ledger_close(l);
}

static void test_record_price(void **state)
{
    static const char text[] =
        "providers:\n  deepseek:\n    base_url: https://api.deepseek.com/v1\n"
        "models:\n  r1:\n    - {provider: deepseek, model: deepseek-reasoner}\n"
        "prices:\n  deepseek:\n    deepseek-reasoner:\n      input: 0.55\n      output: 2.19\n"
        "      windows:\n        - {from: \"16:30\", to: \"00:30\", input: 0.135, output: 0.55}\n";
    struct config *c = NULL;
    assert_int_equal(config_load_text("t.yaml", text, strlen(text), &c, NULL), 0);
    /* ended at 16:31 after two minutes: started at 16:29, before the window */
    int64_t end = (1740960000ll + 16 * 3600 + 31 * 60) * 1000;
    struct ledger_record r = {.time_ms = end,
                              .provider = "deepseek",
                              .deployment_model = "deepseek-reasoner",
                              .prompt_tokens = 1000000,
                              .completion_tokens = 1000000,
                              .reasoning_tokens = 900000,
                              .cached_tokens = 0,
                              .duration_ms = 120000};
    ledger_record_price(&r, c);
    assert_string_equal(r.currency, "USD");
    assert_near(r.cost, 0.55 + 2.19);
    r.duration_ms = 30000; /* started 16:30:30: off-peak */
    ledger_record_price(&r, c);
    assert_near(r.cost, 0.135 + 0.55);
    r.provider = "other";
    ledger_record_price(&r, c);
    assert_null(r.currency);
    assert_near(r.cost, 0);
    config_unref(c);
}

/* Workers record at the same time: nothing lost, nothing doubled. */
struct producer {
    struct ledger *l;
    uint64_t first, n;
    int64_t base;
};

static void *produce(void *arg)
{
    struct producer *p = arg;
    for (uint64_t i = p->first; i < p->first + p->n; i++) {
        struct gen g;
        generate(&g, i, p->base);
        while (ledger_record(p->l, &g.r) == -ENOBUFS)
            sleep_ms(0);
    }
    return NULL;
}

static void test_many_threads(void **state)
{
    enum { THREADS = 4, EACH = 2500 };
    struct ledger *l = open_ledger(dbpath, 1024, 64, 5, 0);
    pthread_t t[THREADS];
    struct producer p[THREADS];
    for (int i = 0; i < THREADS; i++) {
        p[i] = (struct producer){l, (uint64_t)i * EACH, EACH, now_ms()};
        assert_int_equal(pthread_create(&t[i], NULL, produce, &p[i]), 0);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(ledger_sync(l, 30000), 0);
    struct ledger_stats s;
    ledger_stats(l, &s);
    assert_int_equal(s.queued, THREADS * EACH);
    assert_int_equal(s.written, THREADS * EACH);
    ledger_close(l);
    sqlite3 *db = open_db(dbpath);
    assert_int_equal(query_int(db, "SELECT count(DISTINCT request_id) FROM requests"),
                     THREADS * EACH);
    assert_int_equal(query_int(db, "SELECT count(*) FROM requests"), THREADS * EACH);
    check_rollups(db);
    sqlite3_close(db);
}

/* ---- unbusy usage ---- */

/* Runs `unbusy usage ARGS --ledger dbpath`; returns its exit status, its stdout in out. */
static int run_usage(char *out, size_t outlen, const char *const *args)
{
    char *argv[16];
    int argc = 0;
    argv[argc++] = (char *)"usage";
    for (; *args; args++)
        argv[argc++] = (char *)*args;
    argv[argc++] = (char *)"--ledger";
    argv[argc++] = dbpath;
    argv[argc] = NULL;
    char path[400];
    snprintf(path, sizeof path, "%s/out.txt", dir);
    fflush(stdout);
    int saved = dup(1), fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(saved >= 0 && fd >= 0);
    dup2(fd, 1);
    close(fd);
    int rc = usage_cli_main(argc, argv);
    fflush(stdout);
    dup2(saved, 1);
    close(saved);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t n = fread(out, 1, outlen - 1, f);
    out[n] = '\0';
    fclose(f);
    return rc;
}

static void test_usage_cli(void **state)
{
    struct ledger *l = open_ledger(dbpath, 0, 0, 0, 0);
    int64_t mar3 = (1740960000ll + 10 * 3600) * 1000; /* 2025-03-03 10:00 UTC */
    for (int i = 0; i < 30; i++) {
        char rid[16];
        snprintf(rid, sizeof rid, "r%d", i);
        struct ledger_record r = {
            .time_ms = mar3 + (i >= 20 ? 86400000 : 0),
            .request_id = rid,
            .key_name = i % 2 ? "team-a" : NULL,
            .model = "deepseek-r1",
            .provider = "deepseek",
            .status = i % 10 == 9 ? 502 : 200,
            .outcome = i % 10 == 9 ? OUTCOME_UPSTREAM_FAILED : OUTCOME_OK,
            .prompt_tokens = 100,
            .completion_tokens = i % 10 == 9 ? -1 : 10,
            .reasoning_tokens = 4,
            .cached_tokens = 50,
            .cost = i % 10 == 9 ? 0 : 0.25,
            .currency = i % 10 == 9 ? NULL : "USD",
            .duration_ms = 100,
        };
        assert_int_equal(ledger_record(l, &r), 0);
    }
    ledger_close(l);
    char out[4096], again[4096];
    /* whole days: the rollups */
    assert_int_equal(run_usage(out, sizeof out,
                               (const char *const[]){"--since", "2025-03-03", "--until",
                                                     "2025-03-05", "--format", "csv", NULL}),
                     0);
    const char *expect = "key,currency,requests,errors,prompt_tokens,completion_tokens,"
                         "reasoning_tokens,cached_tokens,cost\n"
                         ",USD,15,0,1500,150,60,750,3.750000\n"
                         "team-a,,3,3,300,0,12,150,0.000000\n"
                         "team-a,USD,12,0,1200,120,48,600,3.000000\n";
    if (strcmp(out, expect) != 0) fprintf(stderr, "got:\n%s", out);
    assert_string_equal(out, expect);
    /* a range not made of whole days: the rows, with the same answer */
    assert_int_equal(run_usage(again, sizeof again,
                               (const char *const[]){"--since", "2025-03-03T00:00:01Z", "--until",
                                                     "2025-03-04T23:59", "--format", "csv", NULL}),
                     0);
    assert_string_equal(again, expect);
    /* by day, one day only */
    assert_int_equal(
        run_usage(out, sizeof out,
                  (const char *const[]){"--since", "2025-03-04", "--until", "2025-03-05", "--by",
                                        "day", "--format", "csv", NULL}),
        0);
    assert_non_null(strstr(out, "\n2025-03-04,USD,9,0,900,90,36,450,2.250000\n"));
    assert_null(strstr(out, "2025-03-03"));
    /* JSON says where it read from */
    assert_int_equal(run_usage(out, sizeof out,
                               (const char *const[]){"--since", "2025-03-03", "--by", "model",
                                                     "--format", "json", NULL}),
                     0);
    assert_non_null(strstr(out, "\"source\":\"rollups\""));
    assert_non_null(strstr(out, "\"since\":\"2025-03-03T00:00:00Z\""));
    assert_non_null(
        strstr(out, "{\"model\":\"deepseek-r1\",\"currency\":\"USD\",\"requests\":27,"));
    assert_non_null(strstr(out, "\"totals\":[{\"currency\":null,\"requests\":3,"));
    assert_int_equal(
        run_usage(out, sizeof out,
                  (const char *const[]){"--since", "2025-03-03T12:00", "--until", "now", "--by",
                                        "provider", "--format", "json", NULL}),
        0);
    assert_non_null(strstr(out, "\"source\":\"requests\""));
    assert_non_null(strstr(out, "\"provider\":\"deepseek\",\"currency\":\"USD\",\"requests\":9,"));
    /* the table has a total per currency */
    assert_int_equal(
        run_usage(out, sizeof out, (const char *const[]){"--since", "2025-03-03", NULL}), 0);
    assert_non_null(strstr(out, "from the daily rollups"));
    assert_non_null(strstr(out, "\ntotal   USD"));
    assert_non_null(strstr(out, "6.750000"));
    /* mistakes */
    assert_int_equal(
        run_usage(out, sizeof out, (const char *const[]){"--since", "2025-02-30", NULL}), 2);
    assert_int_equal(run_usage(out, sizeof out, (const char *const[]){"--by", "key", NULL}), 2);
    assert_int_equal(run_usage(out, sizeof out,
                               (const char *const[]){"--since", "today", "--by", "color", NULL}),
                     2);
    assert_int_equal(
        run_usage(out, sizeof out,
                  (const char *const[]){"--since", "today", "--until", "yesterday", NULL}),
        2);
}

/* ---- kill -9 ---- */

struct progress {
    _Atomic uint64_t attempted; /* ledger_record called for records [0, attempted) */
    _Atomic uint64_t accepted;  /* and returned 0 for [0, accepted) */
};

enum { KILL_N = 200000, KILL_QUEUE = 64, KILL_BATCH = 8, KILL_AT = 2000 };

static void child_records(struct progress *p)
{
    struct ledger_options o = {
        .path = dbpath, .queue = KILL_QUEUE, .batch = KILL_BATCH, .flush_interval_ms = 2};
    struct ledger *l = NULL;
    char err[512];
    if (ledger_open(&o, &l, err, sizeof err) != 0) _exit(3);
    int64_t base = now_ms();
    for (uint64_t i = 0; i < KILL_N; i++) {
        struct gen g;
        generate(&g, i, base);
        atomic_store(&p->attempted, i + 1);
        /* Pace with the writer rather than drop: a full queue here is back-pressure. */
        while (ledger_record(l, &g.r) == -ENOBUFS)
            sleep_ms(0);
        atomic_store(&p->accepted, i + 1);
    }
    for (;;)
        pause(); /* never closes: only SIGKILL ends it */
}

static int64_t committed_rows(void)
{
    sqlite3 *db = NULL;
    int64_t n = -1;
    if (sqlite3_open_v2(dbpath, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK) {
        sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(db, "SELECT count(*) FROM requests", -1, &st, NULL) == SQLITE_OK &&
            sqlite3_step(st) == SQLITE_ROW)
            n = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
    }
    sqlite3_close(db);
    return n;
}

static void test_kill9(void **state)
{
    struct progress *p =
        mmap(NULL, sizeof *p, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(p != MAP_FAILED);
    atomic_init(&p->attempted, 0);
    atomic_init(&p->accepted, 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) child_records(p);

    int64_t rows = -1;
    for (int tries = 0; tries < 60000 && rows < KILL_AT; tries++) {
        int status;
        assert_int_equal(waitpid(pid, &status, WNOHANG), 0); /* the child must still run */
        rows = committed_rows();
        if (rows < KILL_AT) sleep_ms(1);
    }
    assert_true(rows >= KILL_AT);
    assert_int_equal(kill(pid, SIGKILL), 0);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    uint64_t attempted = atomic_load(&p->attempted), accepted = atomic_load(&p->accepted);

    /* Reopening runs SQLite's recovery of the WAL. */
    sqlite3 *db = open_db(dbpath);
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "ok");
    sqlite3_finalize(st);
    int64_t n = query_int(db, "SELECT count(*) FROM requests");
    assert_true(n >= KILL_AT);
    assert_true((uint64_t)n <= attempted);
    /* What is lost is at most what was queued plus the batch being written. */
    uint64_t lost = accepted > (uint64_t)n ? accepted - (uint64_t)n : 0;
    printf("kill -9: %llu recorded, %lld committed, %llu lost (at most %d: queue + batch)\n",
           (unsigned long long)accepted, (long long)n, (unsigned long long)lost,
           KILL_QUEUE + KILL_BATCH);
    assert_true(lost <= KILL_QUEUE + KILL_BATCH);

    /* The committed rows are exactly records 0 .. n-1, each whole. */
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT request_id, key_name, model, prompt_tokens,"
                                        " completion_tokens, cached_tokens, status, duration_ms"
                                        " FROM requests ORDER BY id",
                                        -1, &st, NULL),
                     SQLITE_OK);
    for (int64_t i = 0; i < n; i++) {
        assert_int_equal(sqlite3_step(st), SQLITE_ROW);
        struct gen g;
        generate(&g, (uint64_t)i, 0);
        assert_string_equal((const char *)sqlite3_column_text(st, 0), g.rid);
        const char *key = (const char *)sqlite3_column_text(st, 1);
        if (g.r.key_name)
            assert_string_equal(key, g.r.key_name);
        else
            assert_null(key);
        assert_string_equal((const char *)sqlite3_column_text(st, 2), g.r.model);
        assert_int_equal(sqlite3_column_int64(st, 3), g.r.prompt_tokens);
        if (g.r.completion_tokens < 0)
            assert_int_equal(sqlite3_column_type(st, 4), SQLITE_NULL);
        else
            assert_int_equal(sqlite3_column_int64(st, 4), g.r.completion_tokens);
        assert_int_equal(sqlite3_column_int64(st, 5), g.r.cached_tokens);
        assert_int_equal(sqlite3_column_int(st, 6), g.r.status);
        assert_int_equal(sqlite3_column_int64(st, 7), g.r.duration_ms);
    }
    assert_int_equal(sqlite3_step(st), SQLITE_DONE);
    sqlite3_finalize(st);
    /* Rows and rollups are written in one transaction: they agree after the crash. */
    check_rollups(db);
    sqlite3_close(db);
    munmap(p, sizeof *p);
}

static void test_bad_options(void **state)
{
    struct ledger_options o = {.path = dbpath, .queue = LEDGER_MAX_QUEUE + 1};
    struct ledger *l = NULL;
    char err[256] = "";
    assert_int_equal(ledger_open(&o, &l, err, sizeof err), -EINVAL);
    assert_null(l);
    assert_non_null(strstr(err, "queue"));
    ledger_close(NULL);
    struct gen g;
    generate(&g, 1, 0);
    assert_int_equal(ledger_record(NULL, &g.r), 0);
    struct ledger_stats s;
    ledger_stats(NULL, &s);
    assert_int_equal(s.queued, 0);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_ten_thousand), T(test_flush_interval),
        T(test_overflow),     T(test_missing_directory),
        T(test_reopen),       T(test_readonly_directory),
        T(test_disk_full),    T(test_spend_days_and_months),
        T(test_record_price), T(test_many_threads),
        T(test_usage_cli),    T(test_kill9),
        T(test_bad_options),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
