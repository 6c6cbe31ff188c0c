/*
 * pool.c — per-thread free lists (pool.h). The thread-exit hook is one
 * pthread key whose destructor drains the pools the thread registered on
 * their first use (at most POOL_MAX_PER_THREAD; a pool past that bound is
 * still bounded by max_free, and drained by whoever calls pool_drain).
 */
#include "base/pool.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define POOL_MAX_PER_THREAD 32

static pthread_key_t exit_key;
static pthread_once_t exit_once = PTHREAD_ONCE_INIT;
static __thread struct pool *registered[POOL_MAX_PER_THREAD];
static __thread unsigned nregistered;

static void on_thread_exit(void *unused)
{
    (void)unused;
    for (unsigned i = 0; i < nregistered; i++) {
        pool_drain(registered[i]);
        registered[i]->registered = false;
    }
    nregistered = 0;
}

static void make_key(void)
{
    pthread_key_create(&exit_key, on_thread_exit);
}

static void enroll(struct pool *p)
{
    p->registered = true;
    if (nregistered == POOL_MAX_PER_THREAD) return;
    pthread_once(&exit_once, make_key);
    registered[nregistered++] = p;
    pthread_setspecific(exit_key, registered); /* any non-NULL value: the destructor runs */
}

void *pool_get(struct pool *p)
{
    void *b = p->free;
    if (b) {
        memcpy(&p->free, b, sizeof(void *));
        p->nfree--;
        return b;
    }
    return malloc(p->size < sizeof(void *) ? sizeof(void *) : p->size);
}

void *pool_get_zeroed(struct pool *p)
{
    void *b = pool_get(p);
    if (b) memset(b, 0, p->size);
    return b;
}

void pool_put(struct pool *p, void *block)
{
    if (!block) return;
    if (p->nfree >= p->max_free) {
        free(block);
        return;
    }
    if (!p->registered) enroll(p);
    memcpy(block, &p->free, sizeof(void *));
    p->free = block;
    p->nfree++;
}

void pool_drain(struct pool *p)
{
    while (p->free) {
        void *b = p->free;
        memcpy(&p->free, b, sizeof(void *));
        free(b);
    }
    p->nfree = 0;
}

unsigned pool_free_count(const struct pool *p)
{
    return p->nfree;
}
