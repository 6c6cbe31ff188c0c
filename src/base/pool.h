/*
 * pool — per-thread free lists of fixed-size blocks, for what every request
 * takes and gives back (the server's request state, a response's output
 * buffer, the proxied request), so that the steady state makes no
 * malloc/free per request.
 *
 * A pool is a `static __thread struct pool` of the module that uses it
 * (POOL_INIT(size, max_free)): each worker's loop runs on its own thread, so
 * a block is taken and given back without a lock. A block given back on
 * another thread joins that thread's list: still a block of the right size.
 * Bounded: at most max_free blocks wait on a list, the rest are freed; what
 * waits is freed when the thread ends (a thread-exit hook), so nothing
 * outlives its thread.
 */
#ifndef UNBUSY_POOL_H
#define UNBUSY_POOL_H

#include <stdbool.h>
#include <stddef.h>

struct pool {
    size_t size;       /* bytes per block */
    unsigned max_free; /* blocks kept at most */
    /* private: */
    unsigned nfree;
    void *free;      /* a list through each block's first bytes */
    bool registered; /* known to the thread-exit hook */
};

#define POOL_INIT(block_size, keep)                                                                \
    {                                                                                              \
        .size = (block_size), .max_free = (keep)                                                   \
    }

/* A block of p->size bytes (contents undefined), or NULL when out of memory. */
void *pool_get(struct pool *p);
/* The same, zeroed. */
void *pool_get_zeroed(struct pool *p);
/* Gives a block back (NULL is ignored). It must be p->size bytes from malloc or this pool. */
void pool_put(struct pool *p, void *block);
/* Frees every block waiting on the list. */
void pool_drain(struct pool *p);
/* Blocks waiting on the list (for tests). */
unsigned pool_free_count(const struct pool *p);

#endif
