#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <string.h>

#include "base/pool.h"

/* A block given back is the next one taken (no malloc in the steady state), zeroed on request. */
static void test_reuse(void **state)
{
    (void)state;
    struct pool p = POOL_INIT(100, 4);
    char *a = pool_get(&p);
    assert_non_null(a);
    memset(a, 0x5a, 100);
    pool_put(&p, a);
    assert_int_equal(pool_free_count(&p), 1);
    char *b = pool_get_zeroed(&p);
    assert_ptr_equal(a, b);
    for (int i = 0; i < 100; i++)
        assert_int_equal(b[i], 0);
    assert_int_equal(pool_free_count(&p), 0);
    pool_put(&p, b);
    pool_put(&p, NULL); /* ignored */
    assert_int_equal(pool_free_count(&p), 1);
    pool_drain(&p);
    assert_int_equal(pool_free_count(&p), 0);
}

/* At most max_free blocks wait; the rest go back to the allocator. */
static void test_bounded(void **state)
{
    (void)state;
    struct pool p = POOL_INIT(64, 3);
    void *blocks[10];
    for (int i = 0; i < 10; i++)
        assert_non_null(blocks[i] = pool_get(&p));
    for (int i = 0; i < 10; i++)
        pool_put(&p, blocks[i]);
    assert_int_equal(pool_free_count(&p), 3);
    pool_drain(&p);
}

/* A block smaller than a pointer still carries the list. */
static void test_tiny(void **state)
{
    (void)state;
    struct pool p = POOL_INIT(1, 2);
    void *a = pool_get(&p), *b = pool_get(&p);
    pool_put(&p, a);
    pool_put(&p, b);
    assert_ptr_equal(pool_get(&p), b);
    assert_ptr_equal(pool_get(&p), a);
    pool_put(&p, a);
    pool_put(&p, b);
    pool_drain(&p);
}

/* A thread's pools are drained when it ends (the sanitizer build would report a leak). */
static __thread struct pool thread_pool = POOL_INIT(256, 8);

static void *thread_main(void *arg)
{
    (void)arg;
    for (int i = 0; i < 5; i++)
        pool_put(&thread_pool, pool_get(&thread_pool));
    void *x[4];
    for (int i = 0; i < 4; i++)
        x[i] = pool_get(&thread_pool);
    for (int i = 0; i < 4; i++)
        pool_put(&thread_pool, x[i]);
    return (void *)(uintptr_t)pool_free_count(&thread_pool);
}

static void test_thread_exit(void **state)
{
    (void)state;
    pthread_t t;
    void *kept = NULL;
    assert_int_equal(pthread_create(&t, NULL, thread_main, NULL), 0);
    assert_int_equal(pthread_join(t, &kept), 0);
    assert_int_equal((uintptr_t)kept, 4);
    assert_int_equal(pool_free_count(&thread_pool), 0); /* this thread's own: untouched */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reuse),
        cmocka_unit_test(test_bounded),
        cmocka_unit_test(test_tiny),
        cmocka_unit_test(test_thread_exit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
