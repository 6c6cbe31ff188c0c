#include "base/reqid.h"

#include <stdio.h>
#include <sys/random.h>
#include <time.h>

void reqid_init(struct reqid *r, uint64_t salt)
{
    if (getrandom(&r->state, sizeof r->state, 0) != sizeof r->state || r->state == 0) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        r->state = 0x9E3779B97F4A7C15ULL ^ (salt << 32) ^ (uint64_t)ts.tv_nsec ^
                   ((uint64_t)ts.tv_sec << 20);
    }
}

uint64_t reqid_next_u64(struct reqid *r)
{
    uint64_t x = r->state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    r->state = x;
    return x * 0x2545F4914F6CDD1DULL;
}

void reqid_next(struct reqid *r, char *out)
{
    /* 16 lower-case hex digits and a NUL, without printf (several per request) */
    static const char hex[] = "0123456789abcdef";
    uint64_t v = reqid_next_u64(r);
    for (int i = 15; i >= 0; i--, v >>= 4)
        out[i] = hex[v & 15];
    out[16] = '\0';
}
