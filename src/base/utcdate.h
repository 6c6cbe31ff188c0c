/*
 * utcdate — calendar arithmetic in UTC (proleptic Gregorian, H. Hinnant's
 * civil-from-days and days-from-civil), with no libc: gmtime_r takes a global
 * lock, and the ledger and the budgets bucket costs by day and month on the
 * request path. Pure functions; days count from 1970-01-01.
 */
#ifndef UNBUSY_UTCDATE_H
#define UNBUSY_UTCDATE_H

#include <stdint.h>

#define UTCDATE_DAY_MS 86400000ll

/* a / b rounded towards minus infinity (b > 0). */
static inline int64_t utcdate_floor_div(int64_t a, int64_t b)
{
    return a >= 0 ? a / b : -((-a + b - 1) / b);
}

/* The day (since 1970-01-01) of a unix time in ms. */
static inline int64_t utcdate_day_of(int64_t time_ms)
{
    return utcdate_floor_div(time_ms, UTCDATE_DAY_MS);
}

void utcdate_civil_from_days(int64_t days, int *y, unsigned *m, unsigned *d);
int64_t utcdate_days_from_civil(int y, unsigned m, unsigned d);

#endif
