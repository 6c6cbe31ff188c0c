/*
 * `unbusy usage`: requests, tokens and cost from the ledger file, grouped by
 * key, model, provider or day, as a table, CSV or JSON. A range of whole UTC
 * days is read from the daily rollups (one row per day, key, model, provider
 * and currency: fast over months); any other range from the request rows.
 * Costs are only added up within a currency, so every group is also split
 * by currency. The file is opened read-only; a running unbusy keeps writing
 * to it meanwhile (WAL mode lets readers and the writer proceed together).
 */
#include <errno.h>
#include <inttypes.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/cli.h"
#include "config/config.h"
#include "acct/ledger.h"
#include "cmd/cmd.h"

#define DAY_MS 86400000ll
#define MAX_GROUPS 1000000 /* rows of output; a bigger answer is cut, and says so */

static void usage(FILE *f)
{
    fprintf(f, "usage: unbusy usage --since DATE [--until DATE] [--by key|model|provider|day]\n"
               "                    [--format table|csv|json] [--ledger FILE | --config FILE]\n"
               "  --since DATE    from this moment, UTC (inclusive)\n"
               "  --until DATE    to this moment (exclusive); default: the end of today\n"
               "                  DATE: 2025-03-01, 2025-03-01T16:30[:00][Z], today, yesterday,\n"
               "                  7d (00:00 seven days ago), now\n"
               "  --by WHAT       group by key (default), model, provider or day\n"
               "  --format F      table (default), csv or json\n"
               "  --ledger FILE   the ledger file\n"
               "  --config FILE   take ledger.path from FILE (default: unbusy.yaml)\n"
               "Whole days are read from the daily rollups, other ranges from the request rows.\n"
               "Costs are in each price's currency and never added across currencies.\n");
}

struct args {
    const char *since, *until, *by, *format, *ledger, *config;
};

static int parse_args(int argc, char **argv, struct args *a)
{
    memset(a, 0, sizeof *a);
    static const char *const names[] = {"--since",  "--until",  "--by",
                                        "--format", "--ledger", "--config"};
    const char **slots[] = {&a->since, &a->until, &a->by, &a->format, &a->ledger, &a->config};
    for (int i = 1; i < argc; i++) {
        const char **slot = NULL, *v = NULL;
        for (size_t j = 0; j < sizeof names / sizeof names[0] && !slot; j++)
            if (cli_option(argc, argv, &i, names[j], &v, "unbusy usage")) slot = slots[j];
        if (!slot) {
            fprintf(stderr, "unbusy usage: unknown argument '%s'\n", argv[i]);
            return -1;
        }
        if (!v) return -1;
        *slot = v;
    }
    if (!a->since) {
        fprintf(stderr, "unbusy usage: --since is required\n");
        return -1;
    }
    if (a->ledger && a->config) {
        fprintf(stderr, "unbusy usage: give --ledger or --config, not both\n");
        return -1;
    }
    return 0;
}

/* ---- dates ---- */

static int64_t today_start_ms(void)
{
    int64_t now = (int64_t)time(NULL) * 1000;
    return now - now % DAY_MS;
}

static bool digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9') return false;
    return true;
}

static int num(const char *s, size_t n)
{
    int v = 0;
    for (size_t i = 0; i < n; i++)
        v = v * 10 + (s[i] - '0');
    return v;
}

/* DATE (see usage) to unix ms; -1 when it is none of the forms. */
static int64_t parse_date(const char *s)
{
    if (strcmp(s, "now") == 0) return (int64_t)time(NULL) * 1000;
    if (strcmp(s, "today") == 0) return today_start_ms();
    if (strcmp(s, "yesterday") == 0) return today_start_ms() - DAY_MS;
    size_t n = strlen(s);
    if (n >= 2 && n <= 5 && s[n - 1] == 'd' && digits(s, n - 1))
        return today_start_ms() - num(s, n - 1) * DAY_MS;
    /* YYYY-MM-DD[THH:MM[:SS]][Z] */
    if (n < 10 || !digits(s, 4) || s[4] != '-' || !digits(s + 5, 2) || s[7] != '-' ||
        !digits(s + 8, 2))
        return -1;
    struct tm tm = {
        .tm_year = num(s, 4) - 1900, .tm_mon = num(s + 5, 2) - 1, .tm_mday = num(s + 8, 2)};
    const char *p = s + 10;
    if (*p == 'T' || *p == ' ') {
        if (!digits(p + 1, 2) || p[3] != ':' || !digits(p + 4, 2)) return -1;
        tm.tm_hour = num(p + 1, 2);
        tm.tm_min = num(p + 4, 2);
        p += 6;
        if (*p == ':') {
            if (!digits(p + 1, 2)) return -1;
            tm.tm_sec = num(p + 1, 2);
            p += 3;
        }
    }
    if (*p == 'Z') p++;
    if (*p) return -1;
    struct tm want = tm;
    time_t t = timegm(&tm);
    /* timegm normalises 2025-02-30 to March: refuse what does not come back the same. */
    if (t == (time_t)-1 || tm.tm_year != want.tm_year || tm.tm_mon != want.tm_mon ||
        tm.tm_mday != want.tm_mday || tm.tm_hour != want.tm_hour || tm.tm_min != want.tm_min ||
        tm.tm_sec != want.tm_sec)
        return -1;
    return (int64_t)t * 1000;
}

/* "2025-03-01 16:30" for people, "2025-03-01T16:30:00Z" (iso) for programs. */
static void format_time(int64_t ms, bool iso, char *out, size_t len)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    if (iso)
        strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
    else
        strftime(out, len, "%Y-%m-%d %H:%M", &tm);
}

/* ---- the query ---- */

struct group {
    char *name;     /* NULL: none (no key, no provider, ...) */
    char *currency; /* NULL: not priced */
    int64_t requests, errors, tokens[4];
    double cost;
};

struct result {
    struct group *v;
    size_t n, cap;
    bool cut;
};

static const char *const kinds[] = {"key", "model", "provider", "day"};
static const char *const row_exprs[] = {"key_name", "model", "provider",
                                        "date(time_ms / 1000, 'unixepoch')"};

static char *dup_text(sqlite3_stmt *st, int col)
{
    const char *s = (const char *)sqlite3_column_text(st, col);
    return s && *s ? strdup(s) : NULL;
}

static int run_query(sqlite3 *db, int by, bool rollups, int64_t since, int64_t until,
                     struct result *res)
{
    char sql[1024];
    if (rollups)
        snprintf(sql, sizeof sql,
                 "SELECT %s, currency, sum(requests), sum(errors), sum(prompt_tokens),"
                 " sum(completion_tokens), sum(reasoning_tokens), sum(cached_tokens), sum(cost)"
                 " FROM daily WHERE day >= ?1 AND day < ?2 GROUP BY 1, 2 ORDER BY 1, 2",
                 kinds[by]);
    else
        snprintf(sql, sizeof sql,
                 "SELECT %s, currency, count(*), sum(outcome IS NOT 'ok'),"
                 " sum(coalesce(prompt_tokens, 0)), sum(coalesce(completion_tokens, 0)),"
                 " sum(coalesce(reasoning_tokens, 0)), sum(coalesce(cached_tokens, 0)), sum(cost)"
                 " FROM requests WHERE time_ms >= ?1 AND time_ms < ?2 GROUP BY 1, 2 ORDER BY 1, 2",
                 row_exprs[by]);
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) return -1;
    if (rollups) {
        char a[11], b[11];
        ledger_day_string(since, a);
        ledger_day_string(until, b);
        sqlite3_bind_text(st, 1, a, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 2, b, -1, SQLITE_TRANSIENT);
    } else {
        sqlite3_bind_int64(st, 1, since);
        sqlite3_bind_int64(st, 2, until);
    }
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (res->n == MAX_GROUPS) {
            res->cut = true;
            break;
        }
        if (res->n == res->cap) {
            size_t cap = res->cap ? res->cap * 2 : 64;
            struct group *v = realloc(res->v, cap * sizeof *v);
            if (!v) {
                sqlite3_finalize(st);
                return -ENOMEM;
            }
            res->v = v;
            res->cap = cap;
        }
        struct group *g = &res->v[res->n++];
        g->name = dup_text(st, 0);
        g->currency = dup_text(st, 1);
        g->requests = sqlite3_column_int64(st, 2);
        g->errors = sqlite3_column_int64(st, 3);
        for (int i = 0; i < 4; i++)
            g->tokens[i] = sqlite3_column_int64(st, 4 + i);
        g->cost = sqlite3_column_double(st, 8);
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : -1;
}

static bool same_currency(const char *a, const char *b)
{
    return a && b ? strcmp(a, b) == 0 : a == b;
}

/* Sums per currency, in the order currencies first appear. */
static size_t totals(const struct result *r, struct group *out, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < r->n; i++) {
        const struct group *g = &r->v[i];
        size_t j = 0;
        while (j < n && !same_currency(out[j].currency, g->currency))
            j++;
        if (j == n) {
            if (n == max) continue;
            out[n++] = (struct group){.name = NULL, .currency = g->currency};
        }
        out[j].requests += g->requests;
        out[j].errors += g->errors;
        for (int k = 0; k < 4; k++)
            out[j].tokens[k] += g->tokens[k];
        out[j].cost += g->cost;
    }
    return n;
}

/* ---- output ---- */

static void csv_field(const char *s)
{
    if (!s) return;
    if (!strpbrk(s, ",\"\r\n")) {
        fputs(s, stdout);
        return;
    }
    putchar('"');
    for (; *s; s++) {
        if (*s == '"') putchar('"');
        putchar(*s);
    }
    putchar('"');
}

static void json_string(const char *s)
{
    if (!s) {
        fputs("null", stdout);
        return;
    }
    putchar('"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            printf("\\%c", *p);
        else if (*p < 0x20)
            printf("\\u%04x", *p);
        else
            putchar(*p);
    }
    putchar('"');
}

static void json_group(const char *by, const struct group *g)
{
    putchar('{');
    if (by) {
        printf("\"%s\":", by);
        json_string(g->name);
        putchar(',');
    }
    fputs("\"currency\":", stdout);
    json_string(g->currency);
    printf(",\"requests\":%" PRId64 ",\"errors\":%" PRId64 ",\"prompt_tokens\":%" PRId64
           ",\"completion_tokens\":%" PRId64 ",\"reasoning_tokens\":%" PRId64
           ",\"cached_tokens\":%" PRId64 ",\"cost\":%.10g}",
           g->requests, g->errors, g->tokens[0], g->tokens[1], g->tokens[2], g->tokens[3], g->cost);
}

static void print_json(int by, bool rollups, int64_t since, int64_t until, const struct result *r,
                       const struct group *tot, size_t ntot)
{
    char s[32], u[32];
    format_time(since, true, s, sizeof s);
    format_time(until, true, u, sizeof u);
    printf("{\"since\":\"%s\",\"until\":\"%s\",\"by\":\"%s\",\"source\":\"%s\",\"rows\":[", s, u,
           kinds[by], rollups ? "rollups" : "requests");
    for (size_t i = 0; i < r->n; i++) {
        if (i) putchar(',');
        json_group(kinds[by], &r->v[i]);
    }
    fputs("],\"totals\":[", stdout);
    for (size_t i = 0; i < ntot; i++) {
        if (i) putchar(',');
        json_group(NULL, &tot[i]);
    }
    printf("],\"cut\":%s}\n", r->cut ? "true" : "false");
}

static void print_csv(int by, const struct result *r)
{
    printf("%s,currency,requests,errors,prompt_tokens,completion_tokens,reasoning_tokens,"
           "cached_tokens,cost\n",
           kinds[by]);
    for (size_t i = 0; i < r->n; i++) {
        const struct group *g = &r->v[i];
        csv_field(g->name);
        putchar(',');
        csv_field(g->currency);
        printf(",%" PRId64 ",%" PRId64 ",%" PRId64 ",%" PRId64 ",%" PRId64 ",%" PRId64 ",%.6f\n",
               g->requests, g->errors, g->tokens[0], g->tokens[1], g->tokens[2], g->tokens[3],
               g->cost);
    }
}

enum { NCOL = 9 };

/* The cells of one row; the first (a name, maybe long) points at its text. */
static void row_cells(const struct group *g, bool total, const char *cells[NCOL],
                      char num[NCOL][32])
{
    cells[0] = total ? "total" : g->name ? g->name : "(none)";
    cells[1] = g->currency ? g->currency : "-";
    snprintf(num[2], 32, "%" PRId64, g->requests);
    snprintf(num[3], 32, "%" PRId64, g->errors);
    for (int k = 0; k < 4; k++)
        snprintf(num[4 + k], 32, "%" PRId64, g->tokens[k]);
    snprintf(num[8], 32, "%.6f", g->cost);
    for (int c = 2; c < NCOL; c++)
        cells[c] = num[c];
}

/* Names left-aligned, numbers right-aligned, two spaces apart. */
static void table_row(const char *const *cells, const int *width)
{
    for (int c = 0; c < NCOL; c++) {
        if (c < 2)
            printf("%-*s", width[c], cells[c]);
        else
            printf("%*s", width[c], cells[c]);
        fputs(c + 1 < NCOL ? "  " : "\n", stdout);
    }
}

static void print_table(int by, bool rollups, int64_t since, int64_t until, const struct result *r,
                        const struct group *tot, size_t ntot)
{
    char s[32], u[32];
    format_time(since, false, s, sizeof s);
    format_time(until, false, u, sizeof u);
    printf("usage %s .. %s UTC by %s (from the %s)\n\n", s, u, kinds[by],
           rollups ? "daily rollups" : "request rows");
    const char *head[NCOL] = {kinds[by],    "currency",  "requests", "errors", "prompt",
                              "completion", "reasoning", "cached",   "cost"};
    int width[NCOL];
    for (int c = 0; c < NCOL; c++)
        width[c] = (int)strlen(head[c]);
    const char *cells[NCOL];
    char num[NCOL][32];
    for (size_t i = 0; i < r->n + ntot; i++) {
        row_cells(i < r->n ? &r->v[i] : &tot[i - r->n], i >= r->n, cells, num);
        for (int c = 0; c < NCOL; c++) {
            int w = (int)strlen(cells[c]);
            if (w > width[c]) width[c] = w;
        }
    }
    table_row(head, width);
    for (size_t i = 0; i < r->n + ntot; i++) {
        if (i == r->n) putchar('\n');
        row_cells(i < r->n ? &r->v[i] : &tot[i - r->n], i >= r->n, cells, num);
        table_row(cells, width);
    }
    if (r->n == 0) printf("(no requests in this range)\n");
    if (r->cut) printf("(cut at %d rows)\n", MAX_GROUPS);
}

/* ---- main ---- */

static char *ledger_from_config(const char *path)
{
    struct config *cfg = NULL;
    struct config_errors errs;
    config_errors_init(&errs);
    int rc = config_load_file(path, &cfg, &errs);
    if (rc) fputs(errs.text.data ? errs.text.data : "", stderr);
    config_errors_free(&errs);
    if (rc) return NULL;
    char *ledger = cfg->ledger.path ? strdup(cfg->ledger.path) : NULL;
    if (!cfg->ledger.path)
        fprintf(stderr, "unbusy usage: %s has no ledger (ledger: path: FILE)\n", path);
    config_unref(cfg);
    return ledger;
}

static int index_of(const char *s, const char *const *names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(s, names[i]) == 0) return (int)i;
    return -1;
}

int usage_cli_main(int argc, char **argv)
{
    struct args a;
    if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        usage(stdout);
        return 0;
    }
    if (parse_args(argc, argv, &a)) {
        usage(stderr);
        return 2;
    }
    static const char *const formats[] = {"table", "csv", "json"};
    int by = index_of(a.by ? a.by : "key", kinds, 4);
    int format = index_of(a.format ? a.format : "table", formats, 3);
    int64_t since = parse_date(a.since);
    int64_t until = a.until ? parse_date(a.until) : today_start_ms() + DAY_MS;
    if (by < 0 || format < 0 || since < 0 || until < 0) {
        fprintf(stderr, "unbusy usage: bad %s '%s'\n",
                by < 0       ? "--by"
                : format < 0 ? "--format"
                : since < 0  ? "--since"
                             : "--until",
                by < 0       ? a.by
                : format < 0 ? a.format
                : since < 0  ? a.since
                             : a.until);
        usage(stderr);
        return 2;
    }
    if (until <= since) {
        fprintf(stderr, "unbusy usage: --until must come after --since\n");
        return 2;
    }
    char *path =
        a.ledger ? strdup(a.ledger) : ledger_from_config(a.config ? a.config : "unbusy.yaml");
    if (!path) return 1;
    if (access(path, R_OK) != 0) {
        fprintf(stderr, "unbusy usage: %s: %s\n", path, strerror(errno));
        free(path);
        return 1;
    }
    sqlite3 *db = NULL;
    struct result res = {0};
    int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_busy_timeout(db, 5000);
        bool rollups = since % DAY_MS == 0 && until % DAY_MS == 0;
        rc = run_query(db, by, rollups, since, until, &res);
        if (rc == 0) {
            struct group tot[16];
            size_t ntot = totals(&res, tot, 16);
            if (format == 0)
                print_table(by, rollups, since, until, &res, tot, ntot);
            else if (format == 1)
                print_csv(by, &res);
            else
                print_json(by, rollups, since, until, &res, tot, ntot);
        }
    }
    if (rc)
        fprintf(stderr, "unbusy usage: %s: %s\n", path,
                rc == -ENOMEM ? "out of memory"
                : db && strstr(sqlite3_errmsg(db), "no such table")
                    ? "not an unbusy ledger (no requests / daily tables)"
                : db ? sqlite3_errmsg(db)
                     : "cannot open");
    for (size_t i = 0; i < res.n; i++) {
        free(res.v[i].name);
        free(res.v[i].currency);
    }
    free(res.v);
    sqlite3_close(db);
    free(path);
    return rc ? 1 : 0;
}
