/* bucket — a per-minute token bucket in exact integers (see bucket.h). */
#include "admit/bucket.h"

#define MINUTE_MS 60000ull

int64_t bucket_capacity(const struct bucket *b)
{
    return (int64_t)b->limit * BUCKET_UNITS;
}

void bucket_refill(struct bucket *b, uint64_t now_ms)
{
    if (!b->limit || now_ms <= b->at_ms)
        return;
    uint64_t elapsed = now_ms - b->at_ms;
    b->at_ms = now_ms;
    /* From the deepest debt (-capacity) a bucket is full after two minutes. */
    if (elapsed >= 2 * MINUTE_MS) {
        b->level = bucket_capacity(b);
        return;
    }
    b->level += (int64_t)elapsed * b->limit;
    if (b->level > bucket_capacity(b))
        b->level = bucket_capacity(b);
}

uint64_t bucket_wait(const struct bucket *b, int64_t need)
{
    if (!b->limit || b->level >= need)
        return 0;
    return (uint64_t)((need - b->level + b->limit - 1) / b->limit);
}

void bucket_take(struct bucket *b, int64_t units)
{
    if (!b->limit)
        return;
    b->level -= units;
    if (b->level < -bucket_capacity(b))
        b->level = -bucket_capacity(b);
}

void bucket_give(struct bucket *b, int64_t units)
{
    if (!b->limit)
        return;
    b->level += units;
    if (b->level > bucket_capacity(b))
        b->level = bucket_capacity(b);
}

uint32_t bucket_remaining(const struct bucket *b)
{
    return b->level > 0 ? (uint32_t)(b->level / BUCKET_UNITS) : 0;
}

void bucket_set_limit(struct bucket *b, uint32_t limit, uint64_t now_ms)
{
    bucket_refill(b, now_ms);
    if (b->limit == 0) { /* newly limited: a full bucket */
        b->level = (int64_t)limit * BUCKET_UNITS;
        b->at_ms = now_ms;
    }
    b->limit = limit;
    if (b->level > bucket_capacity(b))
        b->level = bucket_capacity(b);
    if (b->level < -bucket_capacity(b))
        b->level = -bucket_capacity(b);
}
