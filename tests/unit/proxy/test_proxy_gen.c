/* proxy_gen: a loop moves to the newest generation offered, acknowledges every offer only
   once it has left what they free, and drops its references when it closes. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>
#include <uv.h>

#include "config/config.h"
#include "proxy/proxy.h"
#include "proxy/proxy_gen.h"
#include "route/runtime.h"

static const char text[] = "providers:\n  p: {base_url: 'http://127.0.0.1:9/v1'}\n"
                           "models:\n  m: [{provider: p, model: x}]\n";

static struct runtime *gen(void)
{
    struct config *c = NULL;
    assert_int_equal(config_load_text("t.yaml", text, sizeof text - 1, &c, NULL), 0);
    struct runtime *rt = runtime_new(c, NULL);
    config_unref(c);
    return rt;
}

struct acks {
    unsigned n;
    struct runtime *seen_rt; /* env->rt when an ack came */
    struct proxy_env *env;
};

static void on_ack(void *ud)
{
    struct acks *a = ud;
    a->n++;
    a->seen_rt = a->env->rt;
}

static void on_closed(void *ud)
{
    (*(int *)ud)++;
}

static void test_newest_offer_wins(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct runtime *g1 = gen(), *g2 = gen(), *g3 = gen();
    struct proxy_env env = {.loop = &loop, .rt = g1, .cfg = g1->cfg};
    assert_int_equal(proxy_gen_init(&env), 0);
    assert_int_equal(atomic_load(&g1->refs), 2);

    struct acks a = {.env = &env};
    struct proxy_gen_ack k2 = {.switched = on_ack, .ud = &a}, k3 = {.switched = on_ack, .ud = &a};
    proxy_gen_offer(&env, g2, NULL, &k2);
    proxy_gen_offer(&env, g3, NULL, &k3);
    assert_int_equal(a.n, 0); /* nothing before the loop runs */
    assert_ptr_equal(env.rt, g1);
    assert_int_equal(atomic_load(&g2->refs), 1); /* the skipped offer's reference dropped */
    uv_run(&loop, UV_RUN_NOWAIT);
    assert_ptr_equal(env.rt, g3); /* straight to the newest */
    assert_ptr_equal(env.cfg, g3->cfg);
    assert_int_equal(a.n, 2);        /* both acknowledged ... */
    assert_ptr_equal(a.seen_rt, g3); /* ... once the loop had left g1 */
    assert_int_equal(atomic_load(&g1->refs), 1);
    assert_int_equal(atomic_load(&g2->refs), 1);
    assert_int_equal(atomic_load(&g3->refs), 2);

    int closed = 0;
    proxy_gen_close(&env, on_closed, &closed);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(closed, 1);
    assert_null(env.rt);
    assert_int_equal(atomic_load(&g3->refs), 1);
    runtime_unref(g1);
    runtime_unref(g2);
    runtime_unref(g3);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* An offer the loop never took (it closed first) is still acknowledged and released. */
static void test_offer_at_close(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct runtime *g1 = gen(), *g2 = gen();
    struct proxy_env env = {.loop = &loop, .rt = g1, .cfg = g1->cfg};
    assert_int_equal(proxy_gen_init(&env), 0);
    struct acks a = {.env = &env};
    struct proxy_gen_ack k = {.switched = on_ack, .ud = &a};
    int closed = 0;
    proxy_gen_close(&env, on_closed, &closed);
    proxy_gen_offer(&env, g2, NULL, &k);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(closed, 1);
    assert_int_equal(a.n, 1);
    assert_int_equal(atomic_load(&g1->refs), 1);
    assert_int_equal(atomic_load(&g2->refs), 1);
    runtime_unref(g1);
    runtime_unref(g2);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_newest_offer_wins),
        cmocka_unit_test(test_offer_at_close),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
