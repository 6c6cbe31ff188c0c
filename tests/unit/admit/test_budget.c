/* Unit tests for budgets: spend fed through an in-memory ledger, verdicts
   below, across and past the alert share (refuse or degrade), exactly one
   alert per key, period and level when 4 threads check 100 times each, daily
   and monthly resets at UTC boundaries (the clock is injected), currencies
   kept apart, the bounded alert queue, and delivery to a small HTTP server
   on 127.0.0.1: a 500 then a 200 (one retry, one delivery, the JSON checked),
   a final 400, a receiver that always fails, and a bounded shutdown. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <cJSON.h>
#include <cmocka.h>

#include "admit/budget.h"
#include "config/config.h"
#include "acct/ledger.h"

#define T0 1740830400000ll /* 2025-03-01T12:00:00Z */
#define DAY 86400000ll

#define BASE                                                                                       \
    "providers:\n"                                                                                 \
    "  p:\n"                                                                                       \
    "    base_url: http://127.0.0.1:9000\n"                                                        \
    "models:\n"                                                                                    \
    "  deepseek-r1:\n"                                                                             \
    "    - {provider: p, model: r1}\n"                                                             \
    "  deepseek-v3:\n"                                                                             \
    "    - {provider: p, model: v3}\n"                                                             \
    "keys:\n"                                                                                      \
    "  - {name: team-a, key: sk-ub-0123456789abcdefghijABCDEFGHIJ0123456789}\n"                    \
    "  - {name: batch, key: sk-ub-9876543210abcdefghijABCDEFGHIJ0123456789}\n"                     \
    "  - {name: k3, key: sk-ub-5555555555abcdefghijABCDEFGHIJ0123456789}\n"

#define BUDGET_KEYS                                                                                \
    "  keys:\n"                                                                                    \
    "    team-a: {daily: 10}\n"                                                                    \
    "    batch: {daily: 10, monthly: 25, action: degrade, degrade_to: deepseek-v3}\n"              \
    "    k3: {monthly: 100, currency: CNY}\n"

static struct config *load(const char *budgets_section)
{
    char text[4096];
    snprintf(text, sizeof text, "%s%s", BASE, budgets_section);
    struct config *c = NULL;
    struct config_errors errs;
    config_errors_init(&errs);
    int rc = config_load_text("t.yaml", text, strlen(text), &c, &errs);
    if (rc) fprintf(stderr, "%s", errs.text.data);
    assert_int_equal(rc, 0);
    config_errors_free(&errs);
    return c;
}

static struct ledger *ledger_mem(void)
{
    struct ledger_options o = {0};
    struct ledger *l = NULL;
    char err[256];
    assert_int_equal(ledger_open(&o, &l, err, sizeof err), 0);
    return l;
}

static void spend(struct ledger *l, const char *key, double cost, const char *currency,
                  int64_t time_ms)
{
    struct ledger_record r = {
        .time_ms = time_ms,
        .key_name = key,
        .model = "deepseek-r1",
        .cost = cost,
        .currency = currency,
        .prompt_tokens = -1,
        .completion_tokens = -1,
        .reasoning_tokens = -1,
        .cached_tokens = -1,
        .ttft_ms = -1,
    };
    assert_int_equal(ledger_record(l, &r), 0);
}

static uint64_t fired(struct budgets *b)
{
    struct budgets_stats s;
    budgets_stats(b, &s);
    return s.fired;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void pause_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* Polls the budgets' counters until pred holds or timeout_ms passes. */
static bool wait_stats(struct budgets *b, bool (*pred)(const struct budgets_stats *),
                       int timeout_ms, struct budgets_stats *out)
{
    int64_t end = mono_ms() + timeout_ms;
    do {
        budgets_stats(b, out);
        if (pred(out)) return true;
        pause_ms(5);
    } while (mono_ms() < end);
    return false;
}

/* ---- verdicts and alerts without a webhook ---- */

static void test_no_budget(void **state)
{
    struct config *c = load("");
    struct ledger *l = ledger_mem();
    struct budgets *b = budgets_new(c, l);
    assert_non_null(b);
    spend(l, "team-a", 1000, "USD", T0);
    const char *to = NULL;
    assert_int_equal(budgets_check(b, "team-a", T0, &to, NULL, 0), BUDGET_OK);
    assert_int_equal(budgets_check(b, NULL, T0, &to, NULL, 0), BUDGET_OK);
    assert_int_equal(budgets_check(NULL, "team-a", T0, &to, NULL, 0), BUDGET_OK);
    assert_int_equal(fired(b), 0);
    budgets_free(b);
    budgets_free(NULL);
    ledger_close(l);
    config_unref(c);
}

static void test_below_alert_share(void **state)
{
    struct config *c = load("budgets:\n" BUDGET_KEYS);
    struct ledger *l = ledger_mem();
    struct budgets *b = budgets_new(c, l);
    spend(l, "team-a", 7.99, "USD", T0);
    char why[256] = "";
    assert_int_equal(budgets_check(b, "team-a", T0, NULL, why, sizeof why), BUDGET_OK);
    assert_string_equal(why, "");
    assert_int_equal(fired(b), 0);
    /* A key without a budget, spending a lot. */
    spend(l, "other", 1e6, "USD", T0);
    assert_int_equal(budgets_check(b, "other", T0, NULL, why, sizeof why), BUDGET_OK);
    assert_int_equal(fired(b), 0);
    budgets_free(b);
    ledger_close(l);
    config_unref(c);
}

struct hammer {
    struct budgets *b;
    pthread_barrier_t *start;
    int ok;
};

static void *hammer_main(void *arg)
{
    struct hammer *h = arg;
    pthread_barrier_wait(h->start);
    for (int i = 0; i < 100; i++)
        h->ok += budgets_check(h->b, "team-a", T0 + i, NULL, NULL, 0) == BUDGET_OK;
    return NULL;
}

static void test_alert_once_across_threads(void **state)
{
    /* A webhook nobody answers, held: the one alert stays in the queue to be counted. */
    struct config *c = load("budgets:\n  webhook: http://127.0.0.1:1/h\n" BUDGET_KEYS);
    struct ledger *l = ledger_mem();
    struct budgets_options o = {.drain_ms = 100};
    struct budgets *b = budgets_new_opts(c, l, &o);
    assert_non_null(b);
    budgets_test_hold(b, true);
    spend(l, "team-a", 8.5, "USD", T0);
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, 4);
    pthread_t th[4];
    struct hammer h[4];
    for (int i = 0; i < 4; i++) {
        h[i] = (struct hammer){b, &start, 0};
        assert_int_equal(pthread_create(&th[i], NULL, hammer_main, &h[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(h[i].ok, 100); /* a warning does not refuse */
    }
    pthread_barrier_destroy(&start);
    struct budgets_stats s;
    budgets_stats(b, &s);
    assert_int_equal(s.fired, 1);
    assert_int_equal(s.depth, 1);
    assert_int_equal(s.dropped, 0);
    /* Further checks in the same day: still one. */
    for (int i = 0; i < 10; i++)
        budgets_check(b, "team-a", T0 + 3600000, NULL, NULL, 0);
    budgets_stats(b, &s);
    assert_int_equal(s.fired, 1);
    assert_int_equal(s.depth, 1);
    budgets_free(b); /* held: the alert is dropped after drain_ms */
    ledger_close(l);
    config_unref(c);
}

static void test_exhausted_refuses(void **state)
{
    struct config *c = load("budgets:\n" BUDGET_KEYS);
    struct ledger *l = ledger_mem();
    struct budgets *b = budgets_new(c, l);
    spend(l, "team-a", 6, "USD", T0);
    assert_int_equal(budgets_check(b, "team-a", T0, NULL, NULL, 0), BUDGET_OK);
    spend(l, "team-a", 2.5, "USD", T0);
    assert_int_equal(budgets_check(b, "team-a", T0, NULL, NULL, 0), BUDGET_OK);
    assert_int_equal(fired(b), 1); /* the warning */
    spend(l, "team-a", 1.5, "USD", T0);
    char why[256];
    const char *to = "untouched";
    assert_int_equal(budgets_check(b, "team-a", T0, &to, why, sizeof why), BUDGET_REFUSE);
    assert_string_equal(to, "untouched");
    assert_string_equal(why, "the daily budget of key team-a is spent (10 of 10 USD); it resets at "
                             "2025-03-02T00:00:00Z");
    assert_int_equal(fired(b), 2); /* and "exhausted", once */
    for (int i = 0; i < 5; i++)
        assert_int_equal(budgets_check(b, "team-a", T0, NULL, why, 8), BUDGET_REFUSE);
    assert_int_equal(strlen(why), 7); /* cut to the room given */
    assert_int_equal(fired(b), 2);
    budgets_free(b);
    ledger_close(l);
    config_unref(c);
}

static void test_exhausted_degrades(void **state)
{
    struct config *c = load("budgets:\n" BUDGET_KEYS);
    struct ledger *l = ledger_mem();
    struct budgets *b = budgets_new(c, l);
    spend(l, "batch", 12, "USD", T0);
    const char *to = NULL;
    char why[256];
    assert_int_equal(budgets_check(b, "batch", T0, &to, why, sizeof why), BUDGET_DEGRADE);
    assert_non_null(to);
    assert_string_equal(to, "deepseek-v3");
    assert_non_null(strstr(why, "the daily budget of key batch is spent (12 of 10 USD)"));
    /* Straight past 100 %: one "exhausted" alert for the day, none for the month (12 of 25). */
    assert_int_equal(fired(b), 1);
    budgets_free(b);
    ledger_close(l);
    config_unref(c);
}

static void test_new_day_and_month_reset(void **state)
{
    struct config *c = load("budgets:\n" BUDGET_KEYS);
    struct ledger *l = ledger_mem();
    struct budgets *b = budgets_new(c, l);
    spend(l, "team-a", 10, "USD", T0);
    assert_int_equal(budgets_check(b, "team-a", T0, NULL, NULL, 0), BUDGET_REFUSE);
    assert_int_equal(fired(b), 1);
    /* One millisecond before midnight UTC: still the same day. */
    int64_t midnight = T0 + DAY / 2;
    assert_int_equal(budgets_check(b, "team-a", midnight - 1, NULL, NULL, 0), BUDGET_REFUSE);
    assert_int_equal(budgets_check(b, "team-a", midnight, NULL, NULL, 0), BUDGET_OK);
    assert_int_equal(fired(b), 1);
    /* The new day alerts afresh. */
    spend(l, "team-a", 9, "USD", midnight + 1000);
    assert_int_equal(budgets_check(b, "team-a", midnight + 2000, NULL, NULL, 0), BUDGET_OK);
    assert_int_equal(fired(b), 2);
    spend(l, "team-a", 1, "USD", midnight + 3000);
    assert_int_equal(budgets_check(b, "team-a", midnight + 4000, NULL, NULL, 0), BUDGET_REFUSE);
    assert_int_equal(fired(b), 3);

    /* Monthly (25): batch spends 9, 8, 4 and 4.5 on four days. */
    spend(l, "batch", 9, "USD", T0);
    assert_int_equal(budgets_check(b, "batch", T0, NULL, NULL, 0), BUDGET_OK);
    assert_int_equal(fired(b), 4); /* daily warning (90 %); the month is at 36 % */
    spend(l, "batch", 8, "USD", T0 + DAY);
    assert_int_equal(budgets_check(b, "batch", T0 + DAY, NULL, NULL, 0), BUDGET_OK);
    assert_int_equal(fired(b), 5); /* daily warning of the 2nd (80 %); the month at 68 % */
    spend(l, "batch", 4, "USD", T0 + 2 * DAY);
    assert_int_equal(budgets_check(b, "batch", T0 + 2 * DAY, NULL, NULL, 0), BUDGET_OK);
    assert_int_equal(fired(b), 6); /* monthly warning: 21 of 25; the day is quiet */
    spend(l, "batch", 4.5, "USD", T0 + 3 * DAY);
    const char *to = NULL;
    char why[256];
    assert_int_equal(budgets_check(b, "batch", T0 + 3 * DAY, &to, why, sizeof why), BUDGET_DEGRADE);
    assert_string_equal(to, "deepseek-v3");
    assert_string_equal(why, "the monthly budget of key batch is spent (25.5 of 25 USD); it resets "
                             "at 2025-04-01T00:00:00Z");
    assert_int_equal(fired(b), 7); /* monthly exhausted; the day (4.5 of 10) is quiet */
    /* April: the month starts over. */
    int64_t april = T0 + 31 * DAY - DAY / 2;
    assert_int_equal(budgets_check(b, "batch", april - 1, NULL, NULL, 0), BUDGET_DEGRADE);
    assert_int_equal(budgets_check(b, "batch", april, NULL, NULL, 0), BUDGET_OK);
    assert_int_equal(fired(b), 7);
    budgets_free(b);
    ledger_close(l);
    config_unref(c);
}

static void test_currency_apart(void **state)
{
    struct config *c = load("budgets:\n" BUDGET_KEYS);
    struct ledger *l = ledger_mem();
    struct budgets *b = budgets_new(c, l);
    spend(l, "k3", 500, "USD", T0); /* k3's budget is in CNY */
    assert_int_equal(budgets_check(b, "k3", T0, NULL, NULL, 0), BUDGET_OK);
    assert_int_equal(fired(b), 0);
    spend(l, "k3", 100, "CNY", T0);
    assert_int_equal(budgets_check(b, "k3", T0, NULL, NULL, 0), BUDGET_REFUSE);
    assert_int_equal(fired(b), 1);
    budgets_free(b);
    ledger_close(l);
    config_unref(c);
}

static void test_queue_bounded(void **state)
{
    struct config *c = load("budgets:\n  webhook: http://127.0.0.1:1/h\n" BUDGET_KEYS);
    struct ledger *l = ledger_mem();
    struct budgets_options o = {.queue = 2, .drain_ms = 100};
    struct budgets *b = budgets_new_opts(c, l, &o);
    budgets_test_hold(b, true);
    spend(l, "team-a", 20, "USD", T0);
    spend(l, "batch", 30, "USD", T0);
    budgets_check(b, "team-a", T0, NULL, NULL, 0); /* day exhausted */
    budgets_check(b, "batch", T0, NULL, NULL, 0);  /* day and month exhausted */
    struct budgets_stats s;
    budgets_stats(b, &s);
    assert_int_equal(s.fired, 3);
    assert_int_equal(s.depth, 2);
    assert_int_equal(s.dropped, 1);
    /* Held at shutdown: budgets_free gives the queue up after drain_ms, not later. */
    int64_t t = mono_ms();
    budgets_free(b);
    assert_true(mono_ms() - t < 2000);
    ledger_close(l);
    config_unref(c);
}

/* ---- the webhook, against a small blocking HTTP server ---- */

#define SRV_MAX 8

struct server {
    int fd;
    uint16_t port;
    int statuses[SRV_MAX]; /* the answer to the i-th request; the last repeats */
    int nstatuses;
    atomic_int requests;   /* requests answered */
    atomic_int ok_answers; /* of those, 2xx */
    char seen[SRV_MAX][8192];
    atomic_bool stop;
    pthread_t thread;
};

/* Reads one request (head and Content-Length body) into out; false on EOF or error. */
static bool read_request(int fd, char *out, size_t cap)
{
    size_t len = 0, need = 0;
    for (;;) {
        char *end = len ? strstr(out, "\r\n\r\n") : NULL;
        if (end && !need) {
            const char *cl = strcasestr(out, "\r\nContent-Length:");
            need = (size_t)(end + 4 - out) + (cl ? strtoul(cl + 17, NULL, 10) : 0);
        }
        if (need && len >= need) return true;
        if (len + 1 >= cap) return false;
        ssize_t n = read(fd, out + len, cap - 1 - len);
        if (n <= 0) return false;
        len += (size_t)n;
        out[len] = '\0';
    }
}

static void *server_main(void *arg)
{
    struct server *s = arg;
    while (!atomic_load(&s->stop)) {
        struct pollfd p = {.fd = s->fd, .events = POLLIN};
        if (poll(&p, 1, 20) <= 0) continue;
        int c = accept(s->fd, NULL, NULL);
        if (c < 0) continue;
        int i = atomic_load(&s->requests);
        char *buf = s->seen[i < SRV_MAX ? i : SRV_MAX - 1];
        if (read_request(c, buf, sizeof s->seen[0])) {
            int st = s->statuses[i < s->nstatuses ? i : s->nstatuses - 1];
            char resp[128];
            int n =
                snprintf(resp, sizeof resp,
                         "HTTP/1.1 %d X\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok", st);
            /* Counted before the answer goes out: the client's counters follow it. */
            if (st >= 200 && st < 300) atomic_fetch_add(&s->ok_answers, 1);
            atomic_fetch_add(&s->requests, 1);
            if (write(c, resp, (size_t)n) != n) fprintf(stderr, "short write\n");
        }
        close(c);
    }
    return NULL;
}

static void server_start(struct server *s, const int *statuses, int n)
{
    memset(s, 0, sizeof *s);
    memcpy(s->statuses, statuses, (size_t)n * sizeof *statuses);
    s->nstatuses = n;
    s->fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(s->fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(s->fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(s->fd, 16), 0);
    socklen_t al = sizeof a;
    assert_int_equal(getsockname(s->fd, (struct sockaddr *)&a, &al), 0);
    s->port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&s->thread, NULL, server_main, s), 0);
}

static void server_stop(struct server *s)
{
    atomic_store(&s->stop, true);
    pthread_join(s->thread, NULL);
    close(s->fd);
}

static struct config *load_hook(const struct server *s)
{
    char section[1024];
    snprintf(section, sizeof section,
             "budgets:\n"
             "  webhook: http://127.0.0.1:%u/hook?x=1\n"
             "  webhook_headers: {X-Token: t0k}\n" BUDGET_KEYS,
             s->port);
    return load(section);
}

static bool settled(const struct budgets_stats *s)
{
    return s->delivered + s->failed >= 1 && s->depth == 0;
}

static void test_webhook_retry_then_delivered(void **state)
{
    struct server *srv = calloc(1, sizeof *srv);
    server_start(srv, (const int[]){500, 200}, 2);
    struct config *c = load_hook(srv);
    struct ledger *l = ledger_mem();
    struct budgets_options o = {.backoff_ms = 20, .timeout_ms = 2000};
    struct budgets *b = budgets_new_opts(c, l, &o);
    assert_non_null(b);
    spend(l, "team-a", 8.5, "USD", T0);
    assert_int_equal(budgets_check(b, "team-a", T0, NULL, NULL, 0), BUDGET_OK);
    struct budgets_stats st;
    assert_true(wait_stats(b, settled, 5000, &st));
    assert_int_equal(st.fired, 1);
    assert_int_equal(st.delivered, 1);
    assert_int_equal(st.failed, 0);
    assert_int_equal(st.dropped, 0);
    assert_int_equal(atomic_load(&srv->requests), 2); /* the 500, then the 200 */
    assert_int_equal(atomic_load(&srv->ok_answers), 1);

    const char *req = srv->seen[1];
    assert_true(strncmp(req, "POST /hook?x=1 HTTP/1.1\r\n", 25) == 0);
    assert_non_null(strcasestr(req, "\r\nX-Token: t0k\r\n"));
    assert_non_null(strcasestr(req, "\r\nContent-Type: application/json\r\n"));
    char host[64];
    snprintf(host, sizeof host, "\r\nHost: 127.0.0.1:%u\r\n", srv->port);
    assert_non_null(strstr(req, host));
    assert_string_equal(strstr(srv->seen[0], "\r\n\r\n"), strstr(req, "\r\n\r\n")); /* same alert */
    cJSON *j = cJSON_Parse(strstr(req, "\r\n\r\n") + 4);
    assert_non_null(j);
    assert_string_equal(cJSON_GetObjectItem(j, "type")->valuestring, "budget_alert");
    assert_string_equal(cJSON_GetObjectItem(j, "key")->valuestring, "team-a");
    assert_string_equal(cJSON_GetObjectItem(j, "period")->valuestring, "day");
    assert_string_equal(cJSON_GetObjectItem(j, "level")->valuestring, "warning");
    assert_true(cJSON_GetObjectItem(j, "budget")->valuedouble == 10);
    assert_true(cJSON_GetObjectItem(j, "spent")->valuedouble == 8.5);
    assert_string_equal(cJSON_GetObjectItem(j, "currency")->valuestring, "USD");
    assert_true(cJSON_GetObjectItem(j, "share")->valuedouble == 0.85);
    assert_true(cJSON_GetObjectItem(j, "threshold")->valuedouble == 0.8);
    assert_string_equal(cJSON_GetObjectItem(j, "time")->valuestring, "2025-03-01T12:00:00Z");
    assert_non_null(strstr(cJSON_GetObjectItem(j, "text")->valuestring,
                           "key team-a has spent 85% of its daily budget (8.5 of 10 USD)"));
    cJSON_Delete(j);

    /* Exhausted: a second alert, delivered at once. */
    spend(l, "team-a", 2, "USD", T0);
    assert_int_equal(budgets_check(b, "team-a", T0, NULL, NULL, 0), BUDGET_REFUSE);
    int64_t end = mono_ms() + 5000;
    while (atomic_load(&srv->requests) < 3 && mono_ms() < end)
        pause_ms(5);
    assert_int_equal(atomic_load(&srv->requests), 3);
    j = cJSON_Parse(strstr(srv->seen[2], "\r\n\r\n") + 4);
    assert_non_null(j);
    assert_string_equal(cJSON_GetObjectItem(j, "level")->valuestring, "exhausted");
    assert_true(cJSON_GetObjectItem(j, "threshold")->valuedouble == 1);
    cJSON_Delete(j);
    budgets_free(b); /* waits for the delivery in flight, if any */
    server_stop(srv);
    assert_int_equal(atomic_load(&srv->ok_answers), 2);
    free(srv);
    ledger_close(l);
    config_unref(c);
}

static void test_webhook_final_4xx(void **state)
{
    struct server *srv = calloc(1, sizeof *srv);
    server_start(srv, (const int[]){400}, 1);
    struct config *c = load_hook(srv);
    struct ledger *l = ledger_mem();
    struct budgets_options o = {.backoff_ms = 20, .timeout_ms = 2000};
    struct budgets *b = budgets_new_opts(c, l, &o);
    spend(l, "team-a", 9, "USD", T0);
    budgets_check(b, "team-a", T0, NULL, NULL, 0);
    struct budgets_stats st;
    assert_true(wait_stats(b, settled, 5000, &st));
    assert_int_equal(st.failed, 1);
    assert_int_equal(st.delivered, 0);
    budgets_free(b);
    server_stop(srv);
    assert_int_equal(atomic_load(&srv->requests), 1); /* never tried again */
    free(srv);
    ledger_close(l);
    config_unref(c);
}

static void test_webhook_gives_up(void **state)
{
    struct server *srv = calloc(1, sizeof *srv);
    server_start(srv, (const int[]){503, 429}, 2);
    struct config *c = load_hook(srv);
    struct ledger *l = ledger_mem();
    struct budgets_options o = {.attempts = 3, .backoff_ms = 10, .timeout_ms = 2000};
    struct budgets *b = budgets_new_opts(c, l, &o);
    spend(l, "team-a", 9, "USD", T0);
    budgets_check(b, "team-a", T0, NULL, NULL, 0);
    struct budgets_stats st;
    assert_true(wait_stats(b, settled, 5000, &st));
    assert_int_equal(st.failed, 1);
    assert_int_equal(st.delivered, 0);
    budgets_free(b);
    server_stop(srv);
    assert_int_equal(atomic_load(&srv->requests), 3); /* 503, 429, 429: three attempts */
    free(srv);
    ledger_close(l);
    config_unref(c);
}

static void test_webhook_unreachable_counts_failed(void **state)
{
    /* A port that refuses connections: every attempt fails at connect. */
    struct server srv = {0};
    srv.fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(srv.fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t al = sizeof a;
    getsockname(srv.fd, (struct sockaddr *)&a, &al);
    srv.port = ntohs(a.sin_port);
    close(srv.fd); /* bound, never listened: the port is free and refuses */
    struct config *c = load_hook(&srv);
    struct ledger *l = ledger_mem();
    struct budgets_options o = {.attempts = 2, .backoff_ms = 10, .timeout_ms = 2000};
    struct budgets *b = budgets_new_opts(c, l, &o);
    spend(l, "team-a", 9, "USD", T0);
    budgets_check(b, "team-a", T0, NULL, NULL, 0);
    struct budgets_stats st;
    assert_true(wait_stats(b, settled, 5000, &st));
    assert_int_equal(st.failed, 1);
    assert_int_equal(st.delivered, 0);
    budgets_free(b);
    ledger_close(l);
    config_unref(c);
}

/* budgets_free delivers what is queued before it stops. */
static void test_free_delivers_queue(void **state)
{
    struct server *srv = calloc(1, sizeof *srv);
    server_start(srv, (const int[]){200}, 1);
    struct config *c = load_hook(srv);
    struct ledger *l = ledger_mem();
    struct budgets_options o = {.backoff_ms = 10, .timeout_ms = 2000, .drain_ms = 3000};
    struct budgets *b = budgets_new_opts(c, l, &o);
    spend(l, "team-a", 20, "USD", T0);
    spend(l, "batch", 30, "USD", T0);
    budgets_check(b, "team-a", T0, NULL, NULL, 0);
    budgets_check(b, "batch", T0, NULL, NULL, 0);
    budgets_free(b);
    server_stop(srv);
    assert_int_equal(atomic_load(&srv->ok_answers), 3);
    free(srv);
    ledger_close(l);
    config_unref(c);
}

/* A receiver that accepts and never answers: budgets_free still returns after drain_ms. */
static void test_free_bounded_when_receiver_hangs(void **state)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(fd, 16), 0); /* the kernel completes connects; nobody reads */
    socklen_t al = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &al);
    struct server srv = {.port = ntohs(a.sin_port)};
    struct config *c = load_hook(&srv);
    struct ledger *l = ledger_mem();
    struct budgets_options o = {.timeout_ms = 60000, .drain_ms = 200};
    struct budgets *b = budgets_new_opts(c, l, &o);
    spend(l, "team-a", 9, "USD", T0);
    budgets_check(b, "team-a", T0, NULL, NULL, 0);
    struct budgets_stats st;
    budgets_stats(b, &st);
    assert_int_equal(st.fired, 1);
    int64_t t = mono_ms();
    budgets_free(b);
    int64_t took = mono_ms() - t;
    assert_true(took >= 150 && took < 3000);
    close(fd);
    ledger_close(l);
    config_unref(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_budget),
        cmocka_unit_test(test_below_alert_share),
        cmocka_unit_test(test_alert_once_across_threads),
        cmocka_unit_test(test_exhausted_refuses),
        cmocka_unit_test(test_exhausted_degrades),
        cmocka_unit_test(test_new_day_and_month_reset),
        cmocka_unit_test(test_currency_apart),
        cmocka_unit_test(test_queue_bounded),
        cmocka_unit_test(test_webhook_retry_then_delivered),
        cmocka_unit_test(test_webhook_final_4xx),
        cmocka_unit_test(test_webhook_gives_up),
        cmocka_unit_test(test_webhook_unreachable_counts_failed),
        cmocka_unit_test(test_free_delivers_queue),
        cmocka_unit_test(test_free_bounded_when_receiver_hangs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
