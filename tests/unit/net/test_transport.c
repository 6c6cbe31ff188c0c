/*
 * Unit tests for transport (pool, tcp, tls): a real libuv loop in-process,
 * a tiny uv TCP server on 127.0.0.1:0 in the same loop, and for TLS a
 * blocking OpenSSL echo server on a thread with a certificate made at test
 * time by the openssl command.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <openssl/ssl.h>

#include "net/read_budget.h"
#include "net/transport.h"

/* The sim transport lives in sim.c; this stands in when the test is linked without it. */
__attribute__((weak)) const struct transport_ops transport_sim_ops = {.name = "sim-stub"};

/* ---- the in-loop test server ---- */

struct srv_conn {
    uv_tcp_t h;
    struct server *srv;
    struct srv_conn *next;
    bool closed;
};

struct server {
    uv_tcp_t listen;
    uint16_t port;
    bool echo; /* echo what arrives (else stay silent) */
    int accepted;
    int peer_closed; /* connections the client side closed */
    size_t bytes_in;
    int writes_done;
    struct srv_conn *conns, *last;
};

struct srv_write {
    uv_write_t req;
    struct server *srv;
    char data[];
};

static void srv_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    static char space[65536];
    *buf = uv_buf_init(space, sizeof space);
}

static void srv_conn_close(struct srv_conn *sc)
{
    if (!sc->closed) {
        sc->closed = true;
        uv_close((uv_handle_t *)&sc->h, NULL);
    }
}

static void srv_write_done(uv_write_t *req, int status)
{
    struct srv_write *w = (struct srv_write *)req;
    w->srv->writes_done++;
    free(w);
}

static void srv_send(struct srv_conn *sc, const char *data, size_t len)
{
    struct srv_write *w = malloc(sizeof *w + len);
    assert_non_null(w);
    w->srv = sc->srv;
    memcpy(w->data, data, len);
    uv_buf_t b = uv_buf_init(w->data, (unsigned)len);
    assert_int_equal(uv_write(&w->req, (uv_stream_t *)&sc->h, &b, 1, srv_write_done), 0);
}

static void srv_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct srv_conn *sc = s->data;
    if (n == 0) return;
    if (n < 0) {
        sc->srv->peer_closed++;
        srv_conn_close(sc);
        return;
    }
    sc->srv->bytes_in += (size_t)n;
    if (sc->srv->echo) srv_send(sc, buf->base, (size_t)n);
}

static void srv_on_connection(uv_stream_t *l, int status)
{
    struct server *srv = l->data;
    assert_int_equal(status, 0);
    struct srv_conn *sc = calloc(1, sizeof *sc);
    assert_non_null(sc);
    sc->srv = srv;
    uv_tcp_init(l->loop, &sc->h);
    sc->h.data = sc;
    assert_int_equal(uv_accept(l, (uv_stream_t *)&sc->h), 0);
    uv_read_start((uv_stream_t *)&sc->h, srv_alloc, srv_read);
    sc->next = srv->conns;
    srv->conns = sc;
    srv->last = sc;
    srv->accepted++;
}

static void server_start(uv_loop_t *loop, struct server *srv)
{
    struct sockaddr_in addr;
    uv_ip4_addr("127.0.0.1", 0, &addr);
    uv_tcp_init(loop, &srv->listen);
    srv->listen.data = srv;
    assert_int_equal(uv_tcp_bind(&srv->listen, (const struct sockaddr *)&addr, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&srv->listen, 64, srv_on_connection), 0);
    int len = sizeof addr;
    uv_tcp_getsockname(&srv->listen, (struct sockaddr *)&addr, &len);
    srv->port = ntohs(addr.sin_port);
    srv->echo = true;
}

/* ---- fixture ---- */

struct fx {
    uv_loop_t loop;
    uv_timer_t tick;
    struct transport_pool *pool;
    bool pool_done;
    bool pool_closed;
    struct server srv;
};

static void tick_cb(uv_timer_t *t)
{
}

/* Runs the loop until cond holds or ms pass; a ticking timer keeps UV_RUN_ONCE from blocking long.
 */
#define RUN_UNTIL(f, cond, ms)                                                                     \
    do {                                                                                           \
        uv_update_time(&(f)->loop);                                                                \
        uint64_t deadline_ = uv_now(&(f)->loop) + (ms);                                            \
        uv_timer_start(&(f)->tick, tick_cb, 5, 5);                                                 \
        while (!(cond) && uv_now(&(f)->loop) < deadline_)                                          \
            uv_run(&(f)->loop, UV_RUN_ONCE);                                                       \
        uv_timer_stop(&(f)->tick);                                                                 \
    } while (0)

#define RUN_FOR(f, ms) RUN_UNTIL(f, false, ms)

static void pool_done_cb(void *ud)
{
    struct fx *f = ud;
    f->pool_done = true;
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    uv_timer_init(&f->loop, &f->tick);
    f->pool = transport_pool_new(&f->loop);
    assert_non_null(f->pool);
    server_start(&f->loop, &f->srv);
    *state = f;
    return 0;
}

static void close_walk(uv_handle_t *h, void *arg)
{
    if (!uv_is_closing(h)) uv_close(h, NULL);
}

static int teardown(void **state)
{
    struct fx *f = *state;
    if (!f->pool_closed) transport_pool_close(f->pool, pool_done_cb, f);
    RUN_UNTIL(f, f->pool_done, 2000);
    assert_true(f->pool_done); /* every connection was released and closed */
    for (struct srv_conn *sc = f->srv.conns; sc; sc = sc->next)
        srv_conn_close(sc);
    uv_close((uv_handle_t *)&f->srv.listen, NULL);
    uv_close((uv_handle_t *)&f->tick, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    int rc = uv_loop_close(&f->loop);
    if (rc != 0) {
        uv_walk(&f->loop, close_walk, NULL);
        uv_run(&f->loop, UV_RUN_DEFAULT);
        uv_loop_close(&f->loop);
    }
    assert_int_equal(rc, 0); /* no handle left behind */
    struct srv_conn *sc = f->srv.conns;
    while (sc) {
        struct srv_conn *next = sc->next;
        free(sc);
        sc = next;
    }
    free(f);
    return 0;
}

/* ---- the transport's user ---- */

struct user {
    struct transport_conn *conn;
    int connects;
    bool reused;
    int errors;
    enum transport_err err;
    int data_calls;
    char data[131072];
    size_t len;
    bool inside_api;    /* set around every call into the transport */
    int sync_callbacks; /* callbacks made while inside_api */
    bool pause_on_data;
    bool release_on_data;
    unsigned costly_us; /* each on_data spins this long: a relay that costs */
};

static void u_connect(void *ud, bool reused)
{
    struct user *u = ud;
    if (u->inside_api) u->sync_callbacks++;
    u->connects++;
    u->reused = reused;
}

static void u_data(void *ud, char *data, size_t len)
{
    struct user *u = ud;
    if (u->inside_api) u->sync_callbacks++;
    u->data_calls++;
    if (u->len + len <= sizeof u->data) {
        memcpy(u->data + u->len, data, len);
        u->len += len;
    }
    if (u->costly_us) {
        uint64_t until = uv_hrtime() + u->costly_us * 1000ull;
        while (uv_hrtime() < until) {
        }
    }
    if (u->pause_on_data) transport_pause(u->conn, true);
    if (u->release_on_data) {
        transport_release(u->conn, true);
        u->conn = NULL;
    }
}

static void u_error(void *ud, enum transport_err err)
{
    struct user *u = ud;
    if (u->inside_api) u->sync_callbacks++;
    u->errors++;
    u->err = err;
}

static const struct transport_events u_events = {u_connect, u_data, u_error};

static struct cfg_provider provider(const char *host, uint16_t port)
{
    struct cfg_provider p;
    memset(&p, 0, sizeof p);
    p.name = (char *)"test";
    p.kind = CFG_PROVIDER_OPENAI;
    p.host = (char *)host;
    p.port = port;
    p.tls_verify = true;
    p.max_idle_conns = 4;
    p.idle_conn_timeout_ms = 10000;
    return p;
}

static int u_open(struct fx *f, struct user *u, const struct cfg_provider *p, uint32_t timeout_ms)
{
    u->inside_api = true;
    int rc = transport_open(f->pool, p, timeout_ms, &u_events, u, &u->conn);
    u->inside_api = false;
    return rc;
}

static int u_write(struct user *u, const char *s)
{
    u->inside_api = true;
    int rc = transport_write(u->conn, s, strlen(s));
    u->inside_api = false;
    return rc;
}

static void u_release(struct user *u, bool keep_alive)
{
    u->inside_api = true;
    transport_release(u->conn, keep_alive);
    u->inside_api = false;
    u->conn = NULL;
}

/* Opens, waits for on_connect, checks it was not synchronous. */
static void u_connect_ok(struct fx *f, struct user *u, const struct cfg_provider *p)
{
    assert_int_equal(u_open(f, u, p, 2000), 0);
    assert_int_equal(u->connects, 0);
    RUN_UNTIL(f, u->connects == 1 || u->errors > 0, 3000);
    assert_int_equal(u->errors, 0);
    assert_int_equal(u->connects, 1);
    assert_int_equal(u->sync_callbacks, 0);
}

static void u_echo_ok(struct fx *f, struct user *u, const char *s)
{
    size_t before = u->len;
    assert_int_equal(u_write(u, s), 0);
    RUN_UNTIL(f, u->len >= before + strlen(s) || u->errors > 0, 3000);
    assert_int_equal(u->errors, 0);
    assert_int_equal(u->len, before + strlen(s));
    assert_memory_equal(u->data + before, s, strlen(s));
}

static struct transport_stats stats(struct fx *f)
{
    struct transport_stats s;
    transport_pool_stats(f->pool, &s);
    return s;
}

/* ---- plain TCP ---- */

static void test_names_and_ops(void **state)
{
    struct cfg_provider p = provider("127.0.0.1", 1);
    assert_ptr_equal(transport_for(&p), &transport_tcp_ops);
    p.kind = CFG_PROVIDER_SIM;
    assert_ptr_equal(transport_for(&p), &transport_sim_ops);
    assert_string_equal(transport_err_name(TRANSPORT_ERR_DNS), "dns");
    assert_string_equal(transport_err_name(TRANSPORT_ERR_CONNECT_TIMEOUT), "connect_timeout");
    assert_string_equal(transport_err_name(TRANSPORT_ERR_TLS), "tls");
    assert_string_equal(transport_err_name(TRANSPORT_ERR_EOF), "eof");
    assert_string_equal(transport_err_name((enum transport_err)99), "unknown");
}

static void test_connect_write_read(void **state)
{
    struct fx *f = *state;
    struct user u = {0};
    struct cfg_provider p = provider("127.0.0.1", f->srv.port);
    assert_int_equal(u_open(f, &u, &p, 2000), 0);
    /* Nothing is ready before the loop runs, and writing early is refused. */
    assert_int_equal(u_write(&u, "early"), -ENOTCONN);
    RUN_UNTIL(f, u.connects == 1, 3000);
    assert_int_equal(u.connects, 1);
    assert_false(u.reused);
    u_echo_ok(f, &u, "hello");
    u_echo_ok(f, &u, "world");
    assert_int_equal(f->srv.accepted, 1);
    assert_int_equal(u.sync_callbacks, 0);
    u_release(&u, false);
    RUN_UNTIL(f, f->srv.peer_closed == 1, 3000);
    assert_int_equal(f->srv.peer_closed, 1);
    struct transport_stats s = stats(f);
    assert_int_equal(s.opened, 1);
    assert_int_equal(s.reused, 0);
    assert_int_equal(s.idle_now, 0);
    assert_int_equal(s.failed, 0);
}

/* ---- the read budget: a burst of upstream data over several loop iterations ---- */

#define BURST_CONNS 100 /* past READ_BUDGET_ARMED: some wait armed, some stopped */

static struct user *burst_open(struct fx *f, const struct cfg_provider *p)
{
    struct user *us = calloc(BURST_CONNS, sizeof *us);
    assert_non_null(us);
    for (int i = 0; i < BURST_CONNS; i++) {
        u_connect_ok(f, &us[i], p);
        us[i].costly_us = 300;
    }
    return us;
}

static bool all_have(const struct user *us, size_t len)
{
    for (int i = 0; i < BURST_CONNS; i++)
        if (us[i].len < len) return false;
    return true;
}

static void test_read_budget_spreads_a_burst(void **state)
{
    struct fx *f = *state;
    struct cfg_provider p = provider("127.0.0.1", f->srv.port);
    p.max_idle_conns = BURST_CONNS;
    struct user *us = burst_open(f, &p);
    /* The first burst is read at once (nothing measured yet); each read costs 300 µs, so the
       next iteration may serve only the minimum. */
    for (int i = 0; i < BURST_CONNS; i++)
        assert_int_equal(u_write(&us[i], "a"), 0);
    RUN_UNTIL(f, all_have(us, 1), 5000);
    assert_true(all_have(us, 1));
    assert_int_equal(stats(f).reads_postponed, 0);
    RUN_FOR(f, 10); /* the next iteration measures this one */
    assert_int_equal(read_budget_allowance(transport_pool_read_budget(f->pool)),
                     READ_BUDGET_MIN_READS);

    /* The second burst: 100 answers ready together, 16 served, the rest postponed, and every
       byte still reaches its user, in order. */
    char msg[16];
    for (int i = 0; i < BURST_CONNS; i++) {
        snprintf(msg, sizeof msg, "b%02d", i);
        assert_int_equal(u_write(&us[i], msg), 0);
    }
    RUN_UNTIL(f, all_have(us, 4), 5000);
    assert_true(all_have(us, 4));
    assert_true(stats(f).reads_postponed >= BURST_CONNS - READ_BUDGET_MIN_READS);
    for (int i = 0; i < BURST_CONNS; i++) {
        snprintf(msg, sizeof msg, "ab%02d", i);
        assert_int_equal(us[i].len, 4);
        assert_memory_equal(us[i].data, msg, 4);
        assert_int_equal(us[i].errors, 0);
        assert_int_equal(us[i].sync_callbacks, 0);
    }
    /* Back in the pool with nothing waiting: reused later like any other. */
    for (int i = 0; i < BURST_CONNS; i++)
        u_release(&us[i], true);
    assert_int_equal(read_budget_waiting(transport_pool_read_budget(f->pool)), 0);
    assert_int_equal(stats(f).idle_now, BURST_CONNS);
    free(us);
}

/* Connections released while they wait (a client gone, a deadline) leave the FIFO: nothing
   resumes them, and the rest are still served. */
static void test_read_budget_release_while_waiting(void **state)
{
    struct fx *f = *state;
    struct cfg_provider p = provider("127.0.0.1", f->srv.port);
    struct user *us = burst_open(f, &p);
    for (int i = 0; i < BURST_CONNS; i++)
        assert_int_equal(u_write(&us[i], "a"), 0);
    RUN_UNTIL(f, all_have(us, 1), 5000);
    for (int i = 0; i < BURST_CONNS; i++)
        assert_int_equal(u_write(&us[i], "b"), 0);
    struct read_budget *rb = transport_pool_read_budget(f->pool);
    RUN_UNTIL(f, read_budget_waiting(rb) > 0, 5000);
    assert_true(read_budget_waiting(rb) > 0);
    int released = 0;
    for (int i = 0; i < BURST_CONNS; i++) {
        if (us[i].len == 1 && i % 2 == 0) {
            u_release(&us[i], i % 4 == 0); /* half to the pool (not clean: closed), half closed */
            released++;
        }
    }
    assert_true(released > 0);
    for (int i = 0; i < BURST_CONNS; i++) {
        if (!us[i].conn) continue;
        RUN_UNTIL(f, us[i].len == 2 || us[i].errors > 0, 3000);
        assert_int_equal(us[i].errors, 0);
        assert_int_equal(us[i].len, 2);
        assert_memory_equal(us[i].data, "ab", 2);
        u_release(&us[i], false);
    }
    assert_int_equal(read_budget_waiting(rb), 0);
    free(us);
}

static void test_pool_reuse(void **state)
{
    struct fx *f = *state;
    /* By name, so DNS runs too; and the second open uses another provider struct with
       equal values, as after a config reload. */
    char *host1 = strdup("localhost"), *host2 = strdup("localhost");
    struct cfg_provider p1 = provider(host1, f->srv.port);
    struct cfg_provider p2 = provider(host2, f->srv.port);
    struct user u1 = {0}, u2 = {0};
    u_connect_ok(f, &u1, &p1);
    u_echo_ok(f, &u1, "a");
    struct transport_conn *first = u1.conn;
    u_release(&u1, true);
    assert_int_equal(stats(f).idle_now, 1);
    free(host1);

    u_connect_ok(f, &u2, &p2);
    assert_true(u2.reused);
    assert_ptr_equal(u2.conn, first);
    assert_int_equal(stats(f).idle_now, 0);
    u_echo_ok(f, &u2, "b");
    assert_int_equal(f->srv.accepted, 1); /* the same socket */
    assert_int_equal(u1.len, 1);          /* nothing reached the first user */
    struct transport_stats s = stats(f);
    assert_int_equal(s.opened, 1);
    assert_int_equal(s.reused, 1);
    u_release(&u2, false);
    free(host2);
}

static void test_pool_keyed_by_identity(void **state)
{
    struct fx *f = *state;
    struct cfg_provider p = provider("127.0.0.1", f->srv.port);
    struct user u1 = {0}, u2 = {0};
    u_connect_ok(f, &u1, &p);
    u_release(&u1, true);
    /* Same address, but TLS settings differ: a different identity. */
    struct cfg_provider other = p;
    other.tls = true;
    other.tls_verify = false;
    f->srv.echo = false;
    assert_int_equal(u_open(f, &u2, &other, 100), 0);
    RUN_UNTIL(f, u2.errors == 1, 3000);
    assert_int_equal(u2.errors, 1);
    assert_int_equal(u2.err,
                     TRANSPORT_ERR_CONNECT_TIMEOUT); /* silent server, TLS never completes */
    assert_int_equal(u2.connects, 0);
    assert_int_equal(stats(f).idle_now, 1);
    assert_int_equal(stats(f).reused, 0);
    u_release(&u2, false);
}

static void test_pool_bound(void **state)
{
    struct fx *f = *state;
    struct cfg_provider p = provider("127.0.0.1", f->srv.port);
    p.max_idle_conns = 2;
    struct user u[3];
    memset(u, 0, sizeof u);
    for (int i = 0; i < 3; i++)
        u_connect_ok(f, &u[i], &p);
    assert_int_equal(f->srv.accepted, 3);
    for (int i = 0; i < 3; i++)
        u_release(&u[i], true);
    assert_int_equal(stats(f).idle_now, 2);
    RUN_UNTIL(f, f->srv.peer_closed == 1, 3000);
    assert_int_equal(f->srv.peer_closed, 1); /* the third was closed, not kept */

    struct user again[3];
    memset(again, 0, sizeof again);
    for (int i = 0; i < 3; i++)
        u_connect_ok(f, &again[i], &p);
    assert_true(again[0].reused);
    assert_true(again[1].reused);
    assert_false(again[2].reused);
    assert_int_equal(f->srv.accepted, 4);
    for (int i = 0; i < 3; i++)
        u_echo_ok(f, &again[i], "x");
    for (int i = 0; i < 3; i++)
        u_release(&again[i], false);
}

static void test_no_pooling_when_max_idle_zero(void **state)
{
    struct fx *f = *state;
    struct cfg_provider p = provider("127.0.0.1", f->srv.port);
    p.max_idle_conns = 0;
    struct user u = {0};
    u_connect_ok(f, &u, &p);
    u_release(&u, true);
    assert_int_equal(stats(f).idle_now, 0);
    RUN_UNTIL(f, f->srv.peer_closed == 1, 3000);
    assert_int_equal(f->srv.peer_closed, 1);
}

static void test_idle_timeout(void **state)
{
    struct fx *f = *state;
    struct cfg_provider p = provider("127.0.0.1", f->srv.port);
    p.idle_conn_timeout_ms = 80;
    struct user u = {0};
    u_connect_ok(f, &u, &p);
    uv_update_time(&f->loop);
    uint64_t t0 = uv_now(&f->loop);
    u_release(&u, true);
    assert_int_equal(stats(f).idle_now, 1);
    RUN_UNTIL(f, stats(f).idle_now == 0, 3000);
    assert_int_equal(stats(f).idle_now, 0);
    assert_true(uv_now(&f->loop) - t0 >= 70);
    RUN_UNTIL(f, f->srv.peer_closed == 1, 3000);
    assert_int_equal(f->srv.peer_closed, 1);

    struct user u2 = {0};
    u_connect_ok(f, &u2, &p);
    assert_false(u2.reused);
    assert_int_equal(f->srv.accepted, 2);
    u_release(&u2, false);
}

static void test_idle_peer_close(void **state)
{
    struct fx *f = *state;
    struct cfg_provider p = provider("127.0.0.1", f->srv.port);
    struct user u = {0};
    u_connect_ok(f, &u, &p);
    u_release(&u, true);
    assert_int_equal(stats(f).idle_now, 1);
    srv_conn_close(f->srv.last);
    RUN_UNTIL(f, stats(f).idle_now == 0, 3000);
    assert_int_equal(stats(f).idle_now, 0);
    assert_int_equal(u.errors, 0); /* the old user hears nothing */

    struct user u2 = {0};
    u_connect_ok(f, &u2, &p);
    assert_false(u2.reused);
    assert_int_equal(f->srv.accepted, 2);
    u_echo_ok(f, &u2, "fresh");
    u_release(&u2, false);
}

static void test_idle_unexpected_bytes(void **state)
{
    struct fx *f = *state;
    struct cfg_provider p = provider("127.0.0.1", f->srv.port);
    struct user u = {0};
    u.release_on_data = true; /* give it back from inside on_data */
    u_connect_ok(f, &u, &p);
    assert_int_equal(u_write(&u, "ping"), 0);
    RUN_UNTIL(f, u.data_calls == 1, 3000);
    assert_int_equal(u.data_calls, 1);
    assert_null(u.conn);
    assert_int_equal(stats(f).idle_now, 1);
    srv_send(f->srv.last, "junk", 4);
    RUN_UNTIL(f, stats(f).idle_now == 0, 3000);
    assert_int_equal(stats(f).idle_now, 0);
    RUN_UNTIL(f, f->srv.peer_closed == 1, 3000);
    assert_int_equal(f->srv.peer_closed, 1);
    assert_int_equal(u.data_calls, 1);
    assert_int_equal(u.errors, 0);
}

static void test_peer_eof_active(void **state)
{
    struct fx *f = *state;
    struct cfg_provider p = provider("127.0.0.1", f->srv.port);
    struct user u = {0};
    u_connect_ok(f, &u, &p);
    u_echo_ok(f, &u, "hi");
    srv_conn_close(f->srv.last);
    RUN_UNTIL(f, u.errors == 1, 3000);
    assert_int_equal(u.errors, 1);
    assert_int_equal(u.err, TRANSPORT_ERR_EOF);
    assert_int_equal(u_write(&u, "late"), -EPIPE);
    /* A failed connection is never pooled, even when offered. */
    u_release(&u, true);
    assert_int_equal(stats(f).idle_now, 0);
}

static uint16_t unused_port(uv_loop_t *loop)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t len = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &len);
    close(fd); /* bound, never listened: connecting there is refused */
    return ntohs(a.sin_port);
}

static void test_connect_refused(void **state)
{
    struct fx *f = *state;
    struct cfg_provider p = provider("127.0.0.1", unused_port(&f->loop));
    struct user u = {0};
    assert_int_equal(u_open(f, &u, &p, 2000), 0);
    assert_int_equal(u.errors, 0);
    RUN_UNTIL(f, u.errors == 1, 3000);
    assert_int_equal(u.errors, 1);
    assert_int_equal(u.err, TRANSPORT_ERR_CONNECT);
    assert_int_equal(u.connects, 0);
    assert_int_equal(u.sync_callbacks, 0);
    assert_int_equal(stats(f).failed, 1);
    u_release(&u, false);
}

/* transport_open_at, as for a discovered endpoint; inside_api checked as u_open does. */
static int u_open_at(struct fx *f, struct user *u, const struct cfg_provider *p, const char *ip,
                     uint16_t port)
{
    struct sockaddr_in a;
    assert_int_equal(uv_ip4_addr(ip, port, &a), 0);
    u->inside_api = true;
    int rc = transport_open_at(f->pool, p, (struct sockaddr *)&a, 2000, &u_events, u, &u->conn);
    u->inside_api = false;
    return rc;
}

/* An endpoint's address is used as given (the name is never resolved) and its idle
   connections are pooled apart from the name's and from other addresses'. */
static void test_open_at_address(void **state)
{
    struct fx *f = *state;
    struct cfg_provider p = provider("nonexistent.invalid", f->srv.port);
    struct user u1 = {0}, u2 = {0}, u3 = {0};
    assert_int_equal(u_open_at(f, &u1, &p, "127.0.0.1", f->srv.port), 0);
    RUN_UNTIL(f, u1.connects == 1 || u1.errors > 0, 3000);
    assert_int_equal(u1.connects, 1);
    u_echo_ok(f, &u1, "to the address");
    struct transport_conn *first = u1.conn;
    u_release(&u1, true);
    assert_int_equal(stats(f).idle_now, 1);
    /* the same address again: the pooled connection */
    assert_int_equal(u_open_at(f, &u2, &p, "127.0.0.1", f->srv.port), 0);
    RUN_UNTIL(f, u2.connects == 1 || u2.errors > 0, 3000);
    assert_true(u2.reused);
    assert_ptr_equal(u2.conn, first);
    u_release(&u2, true);
    /* another address of the name: not that connection (nothing listens there) */
    assert_int_equal(u_open_at(f, &u3, &p, "127.0.0.2", f->srv.port), 0);
    RUN_UNTIL(f, u3.errors == 1 || u3.connects == 1, 3000);
    assert_int_equal(u3.errors, 1);
    assert_int_equal(u3.err, TRANSPORT_ERR_CONNECT);
    assert_int_equal(stats(f).idle_now, 1);
    assert_int_equal(u3.sync_callbacks + u1.sync_callbacks, 0);
    u_release(&u3, false);
    assert_int_equal(f->srv.accepted, 1);
}

static void test_dns_failure(void **state)
{
    struct fx *f = *state;
    struct cfg_provider p = provider("nonexistent.invalid", 80);
    struct user u = {0};
    assert_int_equal(u_open(f, &u, &p, 5000), 0);
    RUN_UNTIL(f, u.errors == 1, 6000);
    assert_int_equal(u.errors, 1);
    assert_int_equal(u.err, TRANSPORT_ERR_DNS);
    assert_int_equal(u.sync_callbacks, 0);
    u_release(&u, false);
}

static void test_connect_timeout(void **state)
{
    struct fx *f = *state;
    /* A listener whose accept queue is full drops further SYNs: connect hangs. */
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(lfd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(lfd, 0), 0);
    socklen_t alen = sizeof a;
    getsockname(lfd, (struct sockaddr *)&a, &alen);
    int fillers[3];
    for (int i = 0; i < 3; i++) {
        fillers[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        connect(fillers[i], (struct sockaddr *)&a, sizeof a);
    }
    struct cfg_provider p = provider("127.0.0.1", ntohs(a.sin_port));
    struct user u = {0};
    uv_update_time(&f->loop);
    uint64_t t0 = uv_now(&f->loop);
    assert_int_equal(u_open(f, &u, &p, 150), 0);
    RUN_UNTIL(f, u.errors == 1, 3000);
    assert_int_equal(u.errors, 1);
    assert_int_equal(u.err, TRANSPORT_ERR_CONNECT_TIMEOUT);
    assert_true(uv_now(&f->loop) - t0 >= 140);
    assert_int_equal(u.connects, 0);
    u_release(&u, false);
    for (int i = 0; i < 3; i++)
        close(fillers[i]);
    close(lfd);
}

static void test_pause_stops_on_data(void **state)
{
    struct fx *f = *state;
    struct cfg_provider p = provider("127.0.0.1", f->srv.port);
    struct user u = {0};
    u_connect_ok(f, &u, &p);
    u.pause_on_data = true;
    assert_int_equal(u_write(&u, "one"), 0);
    RUN_UNTIL(f, u.data_calls == 1, 3000);
    assert_int_equal(u.data_calls, 1);
    u.pause_on_data = false;

    int writes = f->srv.writes_done;
    srv_send(f->srv.last, "two", 3);
    RUN_UNTIL(f, f->srv.writes_done == writes + 1, 3000);
    RUN_FOR(f, 100);
    assert_int_equal(u.data_calls, 1); /* sent, but held back */

    u.inside_api = true;
    transport_pause(u.conn, false);
    u.inside_api = false;
    assert_int_equal(u.data_calls, 1);
    RUN_UNTIL(f, u.len == 6, 3000);
    assert_int_equal(u.len, 6);
    assert_memory_equal(u.data, "onetwo", 6);
    assert_int_equal(u.sync_callbacks, 0);
    u_release(&u, false);
}

static void test_release_before_connect(void **state)
{
    struct fx *f = *state;
    struct cfg_provider p = provider("127.0.0.1", f->srv.port);
    struct user u = {0}, named = {0};
    assert_int_equal(u_open(f, &u, &p, 2000), 0);
    u_release(&u, true); /* not connected yet: closed, and never called back */
    struct cfg_provider byname = provider("localhost", f->srv.port);
    assert_int_equal(u_open(f, &named, &byname, 2000), 0);
    u_release(&named, false); /* while DNS is in flight */
    RUN_FOR(f, 100);
    assert_int_equal(u.connects + u.errors + named.connects + named.errors, 0);
    assert_int_equal(stats(f).idle_now, 0);
}

static void test_pool_close_refuses_and_closes_idle(void **state)
{
    struct fx *f = *state;
    struct cfg_provider p = provider("127.0.0.1", f->srv.port);
    struct user u = {0}, late = {0};
    u_connect_ok(f, &u, &p);
    u_release(&u, true);
    transport_pool_close(f->pool, pool_done_cb, f);
    f->pool_closed = true;
    assert_false(f->pool_done); /* from the loop, not from inside the call */
    assert_int_equal(u_open(f, &late, &p, 2000), -ESHUTDOWN);
    RUN_UNTIL(f, f->pool_done && f->srv.peer_closed == 1, 3000);
    assert_true(f->pool_done);
    assert_int_equal(f->srv.peer_closed, 1);
}

/* ---- TLS ---- */

struct tls_server {
    int lfd;
    uint16_t port;
    int stop_pipe[2];
    SSL_CTX *ctx;
    pthread_t thread;
    atomic_int handshakes_ok;
    atomic_int handshakes_failed;
    atomic_int big_sent;
    int go_pipe[2]; /* the test says when to send the late record */
    atomic_int late_sent;
};

struct tls_fx {
    struct fx base; /* first: the plain fixture's teardown works on it */
    char dir[256];
    char cert[300];
    char key[300];
    struct tls_server ts;
};

/* Two TLS records that arrive in one socket read: after the first, the rest waits inside TLS. */
#define TLS_BIG_REPLY 17000

/* One connection at a time: handshake, then echo. "big" asks for a long reply;
   "okticket" gets "ok" and a session ticket right behind it;
   "ticket" and "late" get "ok", then — once the test says so — a TLS 1.3 session
   ticket (a record with no plaintext) or unsolicited bytes. */
static void tls_serve(struct tls_server *ts, int fd)
{
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    SSL *ssl = SSL_new(ts->ctx);
    SSL_set_fd(ssl, fd);
    if (SSL_accept(ssl) != 1) {
        atomic_fetch_add(&ts->handshakes_failed, 1);
    } else {
        atomic_fetch_add(&ts->handshakes_ok, 1);
        char buf[4096];
        int n;
        while ((n = SSL_read(ssl, buf, sizeof buf)) > 0) {
            if (n == 3 && memcmp(buf, "big", 3) == 0) {
                char *big = malloc(TLS_BIG_REPLY);
                for (int i = 0; i < TLS_BIG_REPLY; i++)
                    big[i] = (char)('a' + i % 26);
                SSL_write(ssl, big, TLS_BIG_REPLY);
                free(big);
                atomic_fetch_add(&ts->big_sent, 1);
            } else if (n == 8 && memcmp(buf, "okticket", 8) == 0) {
                SSL_write(ssl, "ok", 2);
                SSL_new_session_ticket(ssl);
                SSL_do_handshake(ssl);
                atomic_fetch_add(&ts->late_sent, 1);
            } else if ((n == 6 && memcmp(buf, "ticket", 6) == 0) ||
                       (n == 4 && memcmp(buf, "late", 4) == 0)) {
                SSL_write(ssl, "ok", 2);
                char go;
                if (read(ts->go_pipe[0], &go, 1) != 1 || go != 'g') break;
                if (n == 6) {
                    SSL_new_session_ticket(ssl);
                    SSL_do_handshake(ssl);
                } else {
                    SSL_write(ssl, "junk", 4);
                }
                atomic_fetch_add(&ts->late_sent, 1);
            } else if (SSL_write(ssl, buf, n) <= 0) {
                break;
            }
        }
    }
    SSL_free(ssl);
    close(fd);
}

static void *tls_server_main(void *arg)
{
    struct tls_server *ts = arg;
    for (;;) {
        struct pollfd pf[2] = {{ts->lfd, POLLIN, 0}, {ts->stop_pipe[0], POLLIN, 0}};
        if (poll(pf, 2, -1) < 0 && errno != EINTR) break;
        if (pf[1].revents) break;
        if (pf[0].revents & POLLIN) {
            int fd = accept(ts->lfd, NULL, NULL);
            if (fd >= 0) tls_serve(ts, fd);
        }
    }
    return NULL;
}

static int tls_setup(void **state)
{
    struct tls_fx *t = calloc(1, sizeof *t);
    assert_non_null(t);
    const char *tmp = getenv("TMPDIR");
    snprintf(t->dir, sizeof t->dir, "%s/transport-test-XXXXXX", tmp && *tmp ? tmp : P_tmpdir);
    assert_non_null(mkdtemp(t->dir));
    snprintf(t->cert, sizeof t->cert, "%s/cert.pem", t->dir);
    snprintf(t->key, sizeof t->key, "%s/key.pem", t->dir);
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
             "-keyout '%s' -out '%s' -days 2 -subj /CN=localhost "
             "-addext subjectAltName=DNS:localhost >/dev/null 2>&1",
             t->key, t->cert);
    assert_int_equal(system(cmd), 0);

    struct tls_server *ts = &t->ts;
    ts->ctx = SSL_CTX_new(TLS_server_method());
    assert_non_null(ts->ctx);
    assert_int_equal(SSL_CTX_use_certificate_file(ts->ctx, t->cert, SSL_FILETYPE_PEM), 1);
    assert_int_equal(SSL_CTX_use_PrivateKey_file(ts->ctx, t->key, SSL_FILETYPE_PEM), 1);
    ts->lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(ts->lfd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(ts->lfd, 16), 0);
    socklen_t alen = sizeof a;
    getsockname(ts->lfd, (struct sockaddr *)&a, &alen);
    ts->port = ntohs(a.sin_port);
    assert_int_equal(pipe(ts->stop_pipe), 0);
    assert_int_equal(pipe(ts->go_pipe), 0);
    assert_int_equal(pthread_create(&ts->thread, NULL, tls_server_main, ts), 0);

    struct fx *f = &t->base;
    assert_int_equal(uv_loop_init(&f->loop), 0);
    uv_timer_init(&f->loop, &f->tick);
    f->pool = transport_pool_new(&f->loop);
    assert_non_null(f->pool);
    server_start(&f->loop, &f->srv);
    *state = t;
    return 0;
}

static int tls_teardown(void **state)
{
    struct tls_fx *t = *state;
    struct tls_server *ts = &t->ts;
    struct fx *f = &t->base;
    /* Client connections close first, so the server thread is back at poll. */
    if (!f->pool_closed) transport_pool_close(f->pool, pool_done_cb, f);
    f->pool_closed = true;
    RUN_UNTIL(f, f->pool_done, 2000);
    assert_int_equal(write(ts->go_pipe[1], "x", 1), 1); /* in case it waits there */
    assert_int_equal(write(ts->stop_pipe[1], "x", 1), 1);
    pthread_join(ts->thread, NULL);
    close(ts->go_pipe[0]);
    close(ts->go_pipe[1]);
    close(ts->stop_pipe[0]);
    close(ts->stop_pipe[1]);
    close(ts->lfd);
    SSL_CTX_free(ts->ctx);
    unlink(t->cert);
    unlink(t->key);
    rmdir(t->dir);
    /* Frees t: base is its first member, allocated as one block. */
    return teardown(state);
}

static struct cfg_provider tls_provider(struct tls_fx *t, const char *host, const char *ca_file)
{
    struct cfg_provider p = provider(host, t->ts.port);
    p.tls = true;
    p.tls_verify = true;
    p.ca_file = (char *)ca_file;
    return p;
}

static void test_tls_echo_and_reuse(void **state)
{
    struct tls_fx *t = *state;
    struct fx *f = &t->base;
    struct cfg_provider p = tls_provider(t, "localhost", t->cert);
    struct user u = {0}, u2 = {0};
    u_connect_ok(f, &u, &p);
    assert_false(u.reused);
    u_echo_ok(f, &u, "ping");
    struct transport_conn *first = u.conn;
    u_release(&u, true);
    assert_int_equal(stats(f).idle_now, 1);
    /* The server's session tickets must not count as unexpected bytes. */
    RUN_FOR(f, 50);
    assert_int_equal(stats(f).idle_now, 1);

    u_connect_ok(f, &u2, &p);
    assert_true(u2.reused);
    assert_ptr_equal(u2.conn, first);
    u_echo_ok(f, &u2, "again");
    assert_int_equal(atomic_load(&t->ts.handshakes_ok), 1);
    assert_int_equal(u2.sync_callbacks, 0);
    u_release(&u2, false);
}

static void test_tls_pause_holds_buffered_plaintext(void **state)
{
    struct tls_fx *t = *state;
    struct fx *f = &t->base;
    struct cfg_provider p = tls_provider(t, "localhost", t->cert);
    struct user u = {0};
    u_connect_ok(f, &u, &p);
    u.pause_on_data = true;
    assert_int_equal(u_write(&u, "big"), 0);
    /* Let the whole reply reach our socket before the loop reads any of it (the request
       went out inside uv_write; the loop is not running while we poll). */
    for (int i = 0; i < 3000 && atomic_load(&t->ts.big_sent) == 0; i++)
        poll(NULL, 0, 1);
    assert_int_equal(atomic_load(&t->ts.big_sent), 1);
    RUN_UNTIL(f, u.data_calls == 1, 3000);
    assert_int_equal(u.data_calls, 1);
    RUN_FOR(f, 100);
    assert_int_equal(u.data_calls, 1);
    assert_true(u.len < TLS_BIG_REPLY);

    u.pause_on_data = false;
    u.inside_api = true;
    transport_pause(u.conn, false);
    u.inside_api = false;
    assert_int_equal(u.data_calls, 1); /* buffered plaintext comes from the loop */
    RUN_UNTIL(f, u.len == TLS_BIG_REPLY, 3000);
    assert_int_equal(u.len, TLS_BIG_REPLY);
    for (size_t i = 0; i < TLS_BIG_REPLY; i++)
        if (u.data[i] != (char)('a' + i % 26)) fail_msg("byte %zu differs", i);
    assert_int_equal(u.sync_callbacks, 0);
    u_release(&u, false);
}

/* An idle TLS connection receives a record after its response has ended. */
static void tls_idle_then(struct tls_fx *t, const char *cmd, bool kept)
{
    struct fx *f = &t->base;
    struct cfg_provider p = tls_provider(t, "localhost", t->cert);
    struct user u = {0};
    u_connect_ok(f, &u, &p);
    assert_int_equal(u_write(&u, cmd), 0);
    RUN_UNTIL(f, u.len == 2, 3000);
    assert_memory_equal(u.data, "ok", 2);
    u_release(&u, true);
    assert_int_equal(stats(f).idle_now, 1);
    assert_int_equal(write(t->ts.go_pipe[1], "g", 1), 1);
    RUN_UNTIL(f, atomic_load(&t->ts.late_sent) == 1, 3000);
    assert_int_equal(atomic_load(&t->ts.late_sent), 1);
    if (!kept) {
        RUN_UNTIL(f, stats(f).idle_now == 0, 3000);
        assert_int_equal(stats(f).idle_now, 0);
        assert_int_equal(u.len, 2); /* the old user heard nothing */
        return;
    }
    RUN_FOR(f, 100);
    assert_int_equal(stats(f).idle_now, 1);
    struct user u2 = {0};
    u_connect_ok(f, &u2, &p);
    assert_true(u2.reused);
    u_echo_ok(f, &u2, "still");
    u_release(&u2, false);
}

static void test_tls_idle_ticket_kept(void **state)
{
    tls_idle_then(*state, "ticket", true);
}

static void test_tls_idle_unexpected_bytes_dropped(void **state)
{
    tls_idle_then(*state, "late", false);
}

static void test_tls_ticket_behind_response_kept(void **state)
{
    struct tls_fx *t = *state;
    struct fx *f = &t->base;
    struct cfg_provider p = tls_provider(t, "localhost", t->cert);
    struct user u = {0};
    u_connect_ok(f, &u, &p);
    u.release_on_data = true;
    assert_int_equal(u_write(&u, "okticket"), 0);
    /* Both records reach our socket before the loop reads: one read holds them. */
    for (int i = 0; i < 3000 && atomic_load(&t->ts.late_sent) == 0; i++)
        poll(NULL, 0, 1);
    assert_int_equal(atomic_load(&t->ts.late_sent), 1);
    RUN_UNTIL(f, u.data_calls == 1, 3000);
    assert_int_equal(u.len, 2);
    assert_null(u.conn);
    assert_int_equal(stats(f).idle_now, 1); /* the ticket did not make it unreusable */
    struct user u2 = {0};
    u_connect_ok(f, &u2, &p);
    assert_true(u2.reused);
    u_echo_ok(f, &u2, "more");
    u_release(&u2, false);
}

static void tls_expect_failure(struct fx *f, const struct cfg_provider *p)
{
    struct user u = {0};
    assert_int_equal(u_open(f, &u, p, 3000), 0);
    RUN_UNTIL(f, u.errors == 1, 4000);
    assert_int_equal(u.errors, 1);
    assert_int_equal(u.err, TRANSPORT_ERR_TLS);
    assert_int_equal(u.connects, 0);
    u_release(&u, false);
}

static void test_tls_untrusted_cert(void **state)
{
    struct tls_fx *t = *state;
    struct fx *f = &t->base;
    struct cfg_provider p = tls_provider(t, "localhost", NULL); /* the system store */
    tls_expect_failure(f, &p);
    assert_int_equal(stats(f).failed, 1);
}

/* Connecting to an address of the name: TLS still names the host (SNI and the certificate
   check), so a certificate for "localhost" is accepted at 127.0.0.1. */
static void test_tls_open_at_keeps_the_name(void **state)
{
    struct tls_fx *t = *state;
    struct fx *f = &t->base;
    struct cfg_provider p = tls_provider(t, "localhost", t->cert);
    struct user u = {0};
    assert_int_equal(u_open_at(f, &u, &p, "127.0.0.1", t->ts.port), 0);
    RUN_UNTIL(f, u.connects == 1 || u.errors > 0, 3000);
    assert_int_equal(u.errors, 0);
    assert_int_equal(u.connects, 1);
    u_echo_ok(f, &u, "named");
    u_release(&u, false);
}

static void test_tls_wrong_host(void **state)
{
    struct tls_fx *t = *state;
    struct fx *f = &t->base;
    /* Trusted certificate, but it names localhost, not this address. */
    struct cfg_provider p = tls_provider(t, "127.0.0.1", t->cert);
    tls_expect_failure(f, &p);
}

static void test_tls_bad_ca_file(void **state)
{
    struct tls_fx *t = *state;
    struct fx *f = &t->base;
    char missing[320];
    snprintf(missing, sizeof missing, "%s/missing.pem", t->dir);
    struct cfg_provider p = tls_provider(t, "localhost", missing);
    tls_expect_failure(f, &p);
}

static void test_tls_verify_off(void **state)
{
    struct tls_fx *t = *state;
    struct fx *f = &t->base;
    struct cfg_provider p = tls_provider(t, "127.0.0.1", NULL);
    p.tls_verify = false;
    struct user u = {0};
    u_connect_ok(f, &u, &p);
    u_echo_ok(f, &u, "unverified");
    u_release(&u, false);
}

static void test_tls_handshake_timeout(void **state)
{
    struct tls_fx *t = *state;
    struct fx *f = &t->base;
    f->srv.echo = false; /* TCP accepts, TLS never answers */
    struct cfg_provider p = provider("127.0.0.1", f->srv.port);
    p.tls = true;
    p.tls_verify = false; /* no CA store to load first */
    struct user u = {0};
    assert_int_equal(u_open(f, &u, &p, 120), 0);
    RUN_UNTIL(f, u.errors == 1, 3000);
    assert_int_equal(u.errors, 1);
    assert_int_equal(u.err, TRANSPORT_ERR_CONNECT_TIMEOUT);
    assert_true(f->srv.bytes_in > 0); /* the ClientHello went out */
    u_release(&u, false);
}

static void test_tls_pool_close_waits_for_ctx_load(void **state)
{
    struct tls_fx *t = *state;
    struct fx *f = &t->base;
    struct cfg_provider p = tls_provider(t, "localhost", t->cert);
    struct cfg_provider sys = tls_provider(t, "localhost", NULL);
    struct user u = {0};
    transport_pool_warm(f->pool, &sys); /* the system store, loading in the thread pool */
    assert_int_equal(u_open(f, &u, &p, 2000), 0);
    u_release(&u, false); /* its CA file is still loading too */
    transport_pool_close(f->pool, pool_done_cb, f);
    f->pool_closed = true;
    assert_false(f->pool_done);
    RUN_UNTIL(f, f->pool_done, 3000);
    assert_true(f->pool_done);
    assert_int_equal(u.connects + u.errors, 0);
    assert_int_equal(atomic_load(&t->ts.handshakes_ok), 0);
}

static void test_tls_warm_then_connect(void **state)
{
    struct tls_fx *t = *state;
    struct fx *f = &t->base;
    struct cfg_provider p = tls_provider(t, "localhost", t->cert);
    transport_pool_warm(f->pool, &p);
    struct user u[3];
    memset(u, 0, sizeof u);
    /* Several connections wait on one load; each completes its own handshake. The
       server takes one connection at a time, in whatever order they arrive. */
    for (int i = 0; i < 3; i++)
        assert_int_equal(u_open(f, &u[i], &p, 3000), 0);
    for (int served = 0; served < 3; served++) {
        RUN_UNTIL(f,
                  (u[0].conn && u[0].connects) || (u[1].conn && u[1].connects) ||
                      (u[2].conn && u[2].connects),
                  3000);
        int i = 0;
        while (i < 3 && !(u[i].conn && u[i].connects))
            i++;
        assert_true(i < 3);
        assert_int_equal(u[i].errors, 0);
        u_echo_ok(f, &u[i], "w");
        u_release(&u[i], false);
    }
    assert_int_equal(atomic_load(&t->ts.handshakes_ok), 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names_and_ops),
        cmocka_unit_test_setup_teardown(test_connect_write_read, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pool_reuse, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_budget_spreads_a_burst, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_budget_release_while_waiting, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pool_keyed_by_identity, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pool_bound, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_pooling_when_max_idle_zero, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idle_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idle_peer_close, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idle_unexpected_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_peer_eof_active, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connect_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_at_address, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dns_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connect_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pause_stops_on_data, setup, teardown),
        cmocka_unit_test_setup_teardown(test_release_before_connect, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pool_close_refuses_and_closes_idle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tls_echo_and_reuse, tls_setup, tls_teardown),
        cmocka_unit_test_setup_teardown(test_tls_pause_holds_buffered_plaintext, tls_setup,
                                        tls_teardown),
        cmocka_unit_test_setup_teardown(test_tls_idle_ticket_kept, tls_setup, tls_teardown),
        cmocka_unit_test_setup_teardown(test_tls_ticket_behind_response_kept, tls_setup,
                                        tls_teardown),
        cmocka_unit_test_setup_teardown(test_tls_idle_unexpected_bytes_dropped, tls_setup,
                                        tls_teardown),
        cmocka_unit_test_setup_teardown(test_tls_untrusted_cert, tls_setup, tls_teardown),
        cmocka_unit_test_setup_teardown(test_tls_wrong_host, tls_setup, tls_teardown),
        cmocka_unit_test_setup_teardown(test_tls_bad_ca_file, tls_setup, tls_teardown),
        cmocka_unit_test_setup_teardown(test_tls_verify_off, tls_setup, tls_teardown),
        cmocka_unit_test_setup_teardown(test_tls_handshake_timeout, tls_setup, tls_teardown),
        cmocka_unit_test_setup_teardown(test_tls_pool_close_waits_for_ctx_load, tls_setup,
                                        tls_teardown),
        cmocka_unit_test_setup_teardown(test_tls_warm_then_connect, tls_setup, tls_teardown),
        cmocka_unit_test_setup_teardown(test_tls_open_at_keeps_the_name, tls_setup, tls_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
