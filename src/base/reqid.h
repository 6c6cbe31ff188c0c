/*
 * reqid — request ids and trace ids: 16 hex digits from a per-thread
 * xorshift64* generator. Ids need to be unique, not secret, so the generator
 * is seeded once from getrandom and never locked: each event loop owns one
 * (the server keeps one per listener).
 */
#ifndef UNBUSY_REQID_H
#define UNBUSY_REQID_H

#include <stdint.h>

struct reqid {
    uint64_t state; /* never 0 */
};

/* Seeds from getrandom; salt (e.g. a worker number) keeps fallback seeds apart. */
void reqid_init(struct reqid *r, uint64_t salt);
/* The next 64-bit value. */
uint64_t reqid_next_u64(struct reqid *r);
/* The next id as 16 hex digits and a NUL into out (at least 17 bytes). */
void reqid_next(struct reqid *r, char *out);

#endif
