/* Unit tests for the shared admission step (step_shared.c) and the Redis client under it,
   against a fake Redis on the test's own loop (real sockets, RESP both ways): a take
   admitted with extras leased (the next request served from the lease, nothing sent), a
   refusal (429 with Retry-After, the local take undone), NOSCRIPT then EVAL, and the
   fallbacks: no reply within redis.timeout, the connection lost mid-request, Redis down. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "admit/admit.h"
#include "admit/keys.h"
#include "admit/ratelimit.h"
#include "admit/shared_limits.h"
#include "admit/steps.h"
#include "config/config.h"
#include "net/redis.h"
#include "proto/jsonx.h"

/* ---- a fake Redis: answers the handshake, then each EVALSHA/EVAL as told ---- */

enum mode {
    ANSWER_ADMIT,
    ANSWER_REFUSE,
    ANSWER_SILENT,
    ANSWER_NOSCRIPT_ONCE,
    ANSWER_HANGUP,
    ANSWER_TOO_MANY
};

static uv_loop_t loop;
static uv_tcp_t server;
static uv_tcp_t *client_conn;
static int port;
static enum mode mode;
static int takes_seen, evals_seen, zrems_seen, last_take_keys, owed;
static char rbuf[1 << 16];
static size_t rlen;

static void on_alloc(uv_handle_t *h, size_t sz, uv_buf_t *b)
{
    b->base = rbuf + rlen;
    b->len = sizeof rbuf - rlen;
}

static void reply(const char *s)
{
    uv_buf_t b = uv_buf_init((char *)s, (unsigned)strlen(s));
    uv_try_write((uv_stream_t *)client_conn, &b, 1);
}

static void on_closed(uv_handle_t *h)
{
    free(h);
}

static void on_server_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    if (n < 0) {
        uv_close((uv_handle_t *)s, on_closed);
        if (client_conn == (uv_tcp_t *)s) client_conn = NULL;
        return;
    }
    rlen += (size_t)n;
    static struct resp_reply cmd;
    long used;
    while ((used = resp_parse(rbuf, rlen, &cmd)) > 0) {
        const struct resp_item *name = &cmd.items[1];
        if (resp_item_is(name, "PING")) {
            reply("+PONG\r\n");
        } else if (resp_item_is(name, "EVALSHA") || resp_item_is(name, "EVAL")) {
            takes_seen++;
            if (resp_item_is(name, "EVAL")) evals_seen++;
            last_take_keys = (int)strtol(cmd.items[3].str, NULL, 10);
            /* replies come in order: the ones held back while silent go first (late refusals) */
            if (mode == ANSWER_SILENT) owed++;
            for (; mode != ANSWER_SILENT && owed; owed--)
                reply("*2\r\n:0\r\n:1\r\n");
            if (mode == ANSWER_TOO_MANY) reply("*2\r\n:2\r\n:0\r\n");
            if (mode == ANSWER_ADMIT) reply("*6\r\n:1\r\n:0\r\n:2\r\n:2000\r\n:2\r\n:0\r\n");
            if (mode == ANSWER_REFUSE) reply("*2\r\n:0\r\n:1500\r\n");
            if (mode == ANSWER_NOSCRIPT_ONCE)
                reply(resp_item_is(name, "EVAL") ? "*4\r\n:1\r\n:0\r\n:0\r\n:0\r\n"
                                                 : "-NOSCRIPT No matching script.\r\n");
            if (mode == ANSWER_HANGUP) {
                uv_close((uv_handle_t *)client_conn, on_closed);
                client_conn = NULL;
                rlen = 0;
                return;
            }
        } else if (resp_item_is(name, "ZREM")) {
            zrems_seen++;
            reply(":1\r\n");
        } else {
            reply("+OK\r\n");
        }
        memmove(rbuf, rbuf + used, rlen - (size_t)used);
        rlen -= (size_t)used;
    }
}

static void on_connection(uv_stream_t *srv, int status)
{
    owed = 0; /* a new connection owes nothing */
    uv_tcp_t *c = malloc(sizeof *c);
    uv_tcp_init(&loop, c);
    uv_accept(srv, (uv_stream_t *)c);
    uv_tcp_nodelay(c, 1); /* as Redis: no Nagle delay on pipelined replies */
    client_conn = c;
    rlen = 0;
    uv_read_start((uv_stream_t *)c, on_alloc, on_server_read);
}

/* ---- the request as the step sees it ---- */

static struct admit_run run;
static struct admit_req req;
static int go_calls, answers, last_retry_after;
static uv_timer_t deadline;

static uint64_t op_now(struct admit_req *r)
{
    return uv_now(&loop);
}

static void on_deadline(uv_timer_t *t)
{
    admit_timer(&run, ADMIT_TIMER_DEADLINE);
}

static void op_arm(struct admit_req *r, enum admit_timer which, uint64_t ms, uint64_t repeat)
{
    if (ms)
        uv_timer_start(&deadline, on_deadline, ms, 0);
    else
        uv_timer_stop(&deadline);
}

static void op_go(struct admit_req *r)
{
    go_calls++;
}

static void op_answer(struct admit_req *r, enum admit_refusal why, const char *msg, int ra,
                      enum outcome o)
{
    answers++;
    last_retry_after = ra;
    admit_finish(&run);
}

static void op_usage(struct admit_req *r, struct ratelimit_usage *u)
{
    *u = (struct ratelimit_usage){.reported_tokens = 10};
}

static const struct admit_ops ops = {
    .answer = op_answer, .usage = op_usage, .arm = op_arm, .now_ms = op_now, .go = op_go};

static struct cfg_model model = {.name = "m1", .rpm = 100};
static struct key_info key = {.name = "alpha", .rpm = 50, .limit_id = "config:alpha"};
static struct jsonx_request scan = {.has_max_tokens = true, .max_tokens = 10};
static struct cfg_redis rcfg = {.host = "127.0.0.1",
                                .prefix = "t:",
                                .timeout_ms = 40,
                                .connect_timeout_ms = 2000,
                                .lease = 4,
                                .url_shown = "redis://test"};
static struct redis_stats stats;
static struct shared_limits *sl;
static struct redis *client;

static const struct admit_step *const only_shared[] = {&admit_step_shared};

/* Runs one request through the step; returns its first verdict and lets the loop settle it. */
static enum admit_verdict one_request(void)
{
    go_calls = answers = 0;
    req = (struct admit_req){.ops = &ops,
                             .model = &model,
                             .key = &key,
                             .limit_key = key.limit_id,
                             .scan = &scan,
                             .shared = sl,
                             .redis = client};
    assert_int_equal(admit_init(&run, only_shared, 1, &req), 0);
    enum admit_verdict v = admit_run(&run);
    if (v == ADMIT_WAIT)
        while (!go_calls && !answers)
            uv_run(&loop, UV_RUN_ONCE);
    return v;
}

static void run_for(uint64_t ms)
{
    uint64_t until = uv_now(&loop) + ms;
    while (uv_now(&loop) < until)
        uv_run(&loop, UV_RUN_NOWAIT), uv_sleep(1), uv_update_time(&loop);
}

static void wait_up(bool up)
{
    for (int i = 0; i < 4000 && redis_is_up(client) != up; i++)
        run_for(1);
    assert_true(redis_is_up(client) == up);
}

static int setup(void **state)
{
    uv_loop_init(&loop);
    uv_tcp_init(&loop, &server);
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    assert_int_equal(uv_tcp_bind(&server, (struct sockaddr *)&a, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&server, 8, on_connection), 0);
    struct sockaddr_storage ss;
    int len = sizeof ss;
    uv_tcp_getsockname(&server, (struct sockaddr *)&ss, &len);
    port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    rcfg.port = (uint16_t)port;
    uv_timer_init(&loop, &deadline);
    sl = shared_limits_new(&rcfg);
    struct redis_options o = {.cfg = &rcfg, .name = "test", .stats = &stats};
    client = redis_new(&loop, &o);
    wait_up(true);
    return 0;
}

static void closed_done(void *ud)
{
    *(int *)ud = 1;
}

static int teardown(void **state)
{
    int done = 0;
    redis_close(client, closed_done, &done);
    while (!done)
        uv_run(&loop, UV_RUN_ONCE);
    shared_limits_free(sl);
    if (client_conn) uv_close((uv_handle_t *)client_conn, on_closed);
    uv_close((uv_handle_t *)&server, NULL);
    uv_close((uv_handle_t *)&deadline, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    return 0;
}

static void test_admitted_then_lease(void **state)
{
    mode = ANSWER_ADMIT;
    takes_seen = 0;
    assert_int_equal(one_request(), ADMIT_WAIT);
    assert_int_equal(go_calls, 1);
    assert_int_equal(takes_seen, 1);
    admit_finish(&run);
    /* 2 extras leased on both buckets: the next two requests cost no round trip */
    for (int i = 0; i < 2; i++) {
        assert_int_equal(one_request(), ADMIT_GO);
        admit_finish(&run);
    }
    assert_int_equal(takes_seen, 1);
    assert_int_equal(one_request(), ADMIT_WAIT); /* the lease is spent */
    assert_int_equal(takes_seen, 2);
    admit_finish(&run);
    for (int i = 0; i < 2; i++) { /* that take leased two more: use them up for the next tests */
        assert_int_equal(one_request(), ADMIT_GO);
        admit_finish(&run);
    }
}

static void test_refused(void **state)
{
    mode = ANSWER_REFUSE;
    assert_int_equal(one_request(), ADMIT_WAIT);
    assert_int_equal(answers, 1);
    assert_int_equal(go_calls, 0);
    assert_int_equal(last_retry_after, 2); /* 1500 ms rounded up */
}

static void test_noscript_then_eval(void **state)
{
    mode = ANSWER_NOSCRIPT_ONCE;
    evals_seen = 0;
    assert_int_equal(one_request(), ADMIT_WAIT);
    assert_int_equal(go_calls, 1);
    assert_int_equal(evals_seen, 1);
    admit_finish(&run);
}

static void test_timeout_falls_back(void **state)
{
    mode = ANSWER_SILENT;
    struct shared_limits_stats before, after;
    shared_limits_stats(sl, &before);
    uint64_t t0 = uv_now(&loop);
    assert_int_equal(one_request(), ADMIT_WAIT);
    assert_int_equal(go_calls, 1); /* went on locally */
    assert_true(uv_now(&loop) - t0 >= rcfg.timeout_ms);
    shared_limits_stats(sl, &after);
    assert_int_equal(after.fallbacks[SHARED_FALLBACK_TIMEOUT],
                     before.fallbacks[SHARED_FALLBACK_TIMEOUT] + 1);
    admit_finish(&run);
    assert_true(redis_is_up(client)); /* late, not lost: the connection stays */
}

static void test_concurrency_across_replicas(void **state)
{
    key.max_concurrency = 2;
    mode = ANSWER_TOO_MANY;
    zrems_seen = 0;
    /* no lease for a key with a concurrency bound: every request asks, with its member */
    assert_int_equal(one_request(), ADMIT_WAIT);
    assert_int_equal(answers, 1);
    assert_int_equal(last_take_keys, 3); /* the key's and the model's buckets, its in-flight set */
    run_for(20);
    assert_int_equal(zrems_seen, 1); /* settled: taken out (it was never in; harmless) */
    mode = ANSWER_ADMIT;
    assert_int_equal(one_request(), ADMIT_WAIT);
    assert_int_equal(go_calls, 1);
    assert_int_equal(one_request(), ADMIT_WAIT); /* not from a lease */
    admit_finish(&run);
    run_for(20);
    assert_int_equal(zrems_seen, 2);
    key.max_concurrency = 0;
    for (int i = 0; i < 4; i++) { /* leave no lease behind for the next tests */
        shared_limits_lease_take(
            sl, (struct shared_bucket[]){{.scope = 'k', .name = "config:alpha", .rpm = 50}}, 1, 0,
            0);
        shared_limits_lease_take(
            sl, (struct shared_bucket[]){{.scope = 'm', .name = "m1", .rpm = 100}}, 1, 0, 0);
    }
}

static void test_lost_then_down(void **state)
{
    mode = ANSWER_HANGUP;
    struct shared_limits_stats before, after;
    shared_limits_stats(sl, &before);
    assert_int_equal(one_request(), ADMIT_WAIT);
    assert_int_equal(go_calls, 1);
    shared_limits_stats(sl, &after);
    assert_int_equal(after.fallbacks[SHARED_FALLBACK_ERROR],
                     before.fallbacks[SHARED_FALLBACK_ERROR] + 1);
    admit_finish(&run);
    assert_false(redis_is_up(client));
    /* while down, the step decides at once, no waiting */
    assert_int_equal(one_request(), ADMIT_GO);
    admit_finish(&run);
    shared_limits_stats(sl, &after);
    assert_true(after.fallbacks[SHARED_FALLBACK_DOWN] >= 1);
    /* and it reconnects by itself (backoff) */
    mode = ANSWER_ADMIT;
    wait_up(true);
    assert_true(atomic_load(&stats.connects) >= 2);
}

static void test_ended_while_waiting(void **state)
{
    mode = ANSWER_SILENT;
    req = (struct admit_req){.ops = &ops,
                             .model = &model,
                             .key = &key,
                             .limit_key = key.limit_id,
                             .scan = &scan,
                             .shared = sl,
                             .redis = client};
    assert_int_equal(admit_init(&run, only_shared, 1, &req), 0);
    go_calls = 0;
    assert_int_equal(admit_run(&run), ADMIT_WAIT);
    admit_finish(&run); /* the client went away: the step lets go of the take */
    run_for(rcfg.timeout_ms * 2);
    assert_int_equal(go_calls, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_admitted_then_lease),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_noscript_then_eval),
        cmocka_unit_test(test_timeout_falls_back),
        cmocka_unit_test(test_ended_while_waiting),
        cmocka_unit_test(test_concurrency_across_replicas),
        cmocka_unit_test(test_lost_then_down),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
