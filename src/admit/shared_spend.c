/* shared_spend — budgets' spend added up across replicas (see shared_spend.h). */
#include "admit/shared_spend.h"

#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/utcdate.h"

#define DAY_TTL_MS (2 * UTCDATE_DAY_MS)
#define MONTH_TTL_MS (32 * UTCDATE_DAY_MS)

/* KEYS[1] the counter; ARGV: the amount to add, its time to live in ms. Returns the total. */
static const char add_script[] = "local v = redis.call('INCRBYFLOAT', KEYS[1], ARGV[1])\n"
                                 "redis.call('PEXPIRE', KEYS[1], ARGV[2])\n"
                                 "return v\n";

struct entry {
    const struct cfg_budget *b; /* NULL: the budget has no amount for this period */
    enum ledger_period period;
    int64_t number;  /* the period the fields below are for; INT64_MIN: none yet */
    double reported; /* this replica's spend counted in Redis's total (sent, not lost) */
    double others;   /* the total minus reported, at the last reply */
    bool in_flight;
};

struct shared_spend {
    const struct config *cfg;
    const struct cfg_redis *rc;
    struct ledger *ledger;
    pthread_mutex_t lock;
    struct entry *e;
    size_t n, cursor;
};

static int64_t period_number(enum ledger_period p, int64_t now_ms)
{
    int64_t day = utcdate_day_of(now_ms);
    if (p == LEDGER_DAY) return day;
    int y;
    unsigned m, d;
    utcdate_civil_from_days(day, &y, &m, &d);
    return (int64_t)y * 12 + m - 1;
}

struct shared_spend *shared_spend_new(const struct config *cfg, const struct cfg_redis *rc,
                                      struct ledger *l)
{
    struct shared_spend *ss = calloc(1, sizeof *ss);
    if (!ss) return NULL;
    ss->e = calloc(cfg->nbudgets * 2 + 1, sizeof *ss->e);
    if (!ss->e) {
        free(ss);
        return NULL;
    }
    /* entry 2 * budget + period: found from the budget without a search */
    for (size_t i = 0; i < cfg->nbudgets; i++)
        for (int p = LEDGER_DAY; p <= LEDGER_MONTH; p++) {
            const struct cfg_budget *b = &cfg->budgets[i];
            ss->e[2 * i + (size_t)p] =
                (struct entry){.b = (p == LEDGER_DAY ? b->daily : b->monthly) > 0 ? b : NULL,
                               .period = (enum ledger_period)p,
                               .number = INT64_MIN};
        }
    ss->n = cfg->nbudgets * 2;
    ss->cfg = cfg;
    ss->rc = rc;
    ss->ledger = l;
    pthread_mutex_init(&ss->lock, NULL);
    return ss;
}

void shared_spend_free(struct shared_spend *ss)
{
    if (!ss) return;
    pthread_mutex_destroy(&ss->lock);
    free(ss->e);
    free(ss);
}

double shared_spend_total(struct shared_spend *ss, const struct cfg_budget *b,
                          enum ledger_period period, int64_t now_ms, double local)
{
    if (!ss || !b || b < ss->cfg->budgets || b >= ss->cfg->budgets + ss->cfg->nbudgets)
        return local;
    double others = 0;
    pthread_mutex_lock(&ss->lock);
    struct entry *e = &ss->e[2 * (size_t)(b - ss->cfg->budgets) + (size_t)period];
    if (e->b && e->number == period_number(period, now_ms)) others = e->others;
    pthread_mutex_unlock(&ss->lock);
    return local + (others > 0 ? others : 0);
}

size_t shared_spend_report(struct shared_spend *ss, int64_t now_ms, struct buf *out,
                           struct shared_spend_report *reports, size_t max)
{
    size_t count = 0;
    pthread_mutex_lock(&ss->lock);
    for (size_t k = 0; k < ss->n && count < max; k++) {
        struct entry *e = &ss->e[(ss->cursor + k) % ss->n];
        if (!e->b || e->in_flight) continue;
        int64_t number = period_number(e->period, now_ms);
        if (e->number != number) { /* a new period: nothing reported in it yet */
            e->number = number;
            e->reported = e->others = 0;
        }
        double local = ledger_spend(ss->ledger, e->b->key_name, e->period, now_ms, e->b->currency);
        double delta = local - e->reported;
        if (delta < 0 || !isfinite(delta)) delta = 0;
        char key[CONFIG_REDIS_MAX_PREFIX + CONFIG_KEY_NAME_MAX + 64], amount[40], ttl[24];
        snprintf(key, sizeof key, "%sspend:%c:%" PRId64 ":%s:%s",
                 ss->rc->prefix ? ss->rc->prefix : "", e->period == LEDGER_DAY ? 'd' : 'm', number,
                 e->b->key_name, e->b->currency);
        snprintf(amount, sizeof amount, "%.17g", delta);
        snprintf(ttl, sizeof ttl, "%lld",
                 (long long)(e->period == LEDGER_DAY ? DAY_TTL_MS : MONTH_TTL_MS));
        const char *argv[] = {"EVAL", add_script, "1", key, amount, ttl};
        if (resp_command(out, 6, argv, NULL) < 0) break;
        e->in_flight = true;
        reports[count++] = (struct shared_spend_report){
            .entry = (size_t)(e - ss->e), .number = number, .reported = e->reported + delta};
    }
    if (ss->n && count) /* on after the last one reported */
        ss->cursor = (reports[count - 1].entry + 1) % ss->n;
    pthread_mutex_unlock(&ss->lock);
    return count;
}

void shared_spend_seen(struct shared_spend *ss, const struct shared_spend_report *r,
                       const struct resp_reply *reply)
{
    pthread_mutex_lock(&ss->lock);
    struct entry *e = &ss->e[r->entry];
    e->in_flight = false;
    if (reply && e->number == r->number && reply->items[0].type == RESP_BULK &&
        reply->items[0].len < 40) {
        char num[40];
        memcpy(num, reply->items[0].str, reply->items[0].len);
        num[reply->items[0].len] = '\0';
        char *end;
        double total = strtod(num, &end);
        if (end != num && isfinite(total)) {
            e->reported = r->reported;
            e->others = total - r->reported;
        }
    }
    pthread_mutex_unlock(&ss->lock);
}
