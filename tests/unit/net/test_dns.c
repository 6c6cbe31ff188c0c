/*
 * dns: c-ares driven by a libuv loop. A small DNS responder on a loopback UDP socket, in
 * the same loop, answers A, AAAA and SRV queries from a table (with TTLs), or stays silent;
 * the tests check the answers and their TTLs, SRV records, timeouts, that no callback comes
 * from inside the call that started a lookup, and that closing cancels and frees.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "net/dns.h"

struct responder {
    uv_udp_t udp;
    uint16_t port;
    bool silent;
    unsigned queries;
};

struct result {
    int calls;
    bool inside_call;
    int calls_inside;
    enum dns_status st;
    size_t n;
    struct dns_addr addrs[DNS_MAX_ADDRS];
    struct dns_srv srv[DNS_MAX_SRV];
};

static uv_loop_t loop;
static struct responder resp;

static void put16(unsigned char *p, unsigned v)
{
    p[0] = (unsigned char)(v >> 8);
    p[1] = (unsigned char)v;
}

static void put32(unsigned char *p, uint32_t v)
{
    put16(p, v >> 16);
    put16(p + 2, v & 0xffff);
}

/* The query's name as dotted text; returns the offset past the question, 0 if malformed. */
static size_t question(const unsigned char *q, size_t len, char *name, size_t cap, unsigned *type)
{
    size_t i = 12, o = 0;
    while (i < len && q[i]) {
        unsigned l = q[i++];
        if (i + l > len || o + l + 2 > cap) return 0;
        if (o) name[o++] = '.';
        memcpy(name + o, q + i, l);
        o += l;
        i += l;
    }
    name[o] = '\0';
    if (i + 5 > len) return 0;
    *type = (unsigned)(q[i + 1] << 8 | q[i + 2]);
    return i + 5;
}

/* One answer record after the question, its name a pointer to the question's. */
static size_t answer(unsigned char *out, size_t at, unsigned type, uint32_t ttl,
                     const unsigned char *rdata, unsigned rdlen)
{
    put16(out + at, 0xc00c);
    put16(out + at + 2, type);
    put16(out + at + 4, 1);
    put32(out + at + 6, ttl);
    put16(out + at + 10, rdlen);
    memcpy(out + at + 12, rdata, rdlen);
    return at + 12 + rdlen;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    static char storage[1500];
    *buf = uv_buf_init(storage, sizeof storage);
}

static void on_sent(uv_udp_send_t *req, int status)
{
    free(req);
}

/*
 * The table: a.test A 10.0.0.1 (TTL 7) and 10.0.0.2 (TTL 30), AAAA fd00::1 (TTL 9);
 * b.test A 10.0.0.3 (TTL 5); _http._tcp.pool.test SRV 0 10 8001 a.test, 1 20 8002 b.test;
 * anything else NXDOMAIN.
 */
static void on_query(uv_udp_t *u, ssize_t n, const uv_buf_t *buf, const struct sockaddr *from,
                     unsigned flags)
{
    if (n <= 12 || !from) return;
    resp.queries++;
    if (resp.silent) return;
    const unsigned char *q = (const unsigned char *)buf->base;
    char name[256];
    unsigned type = 0;
    size_t qend = question(q, (size_t)n, name, sizeof name, &type);
    if (!qend) return;
    unsigned char *out = calloc(1, 1500);
    memcpy(out, q, qend);
    put16(out + 2, 0x8580); /* response, authoritative, recursion desired and available */
    unsigned count = 0;
    size_t at = qend;
    bool known = strcmp(name, "a.test") == 0 || strcmp(name, "b.test") == 0 ||
                 strcmp(name, "_http._tcp.pool.test") == 0;
    if (strcmp(name, "a.test") == 0 && type == 1) {
        unsigned char a1[4] = {10, 0, 0, 1}, a2[4] = {10, 0, 0, 2};
        at = answer(out, at, 1, 7, a1, 4);
        at = answer(out, at, 1, 30, a2, 4);
        count = 2;
    } else if (strcmp(name, "a.test") == 0 && type == 28) {
        unsigned char a6[16] = {0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
        at = answer(out, at, 28, 9, a6, 16);
        count = 1;
    } else if (strcmp(name, "b.test") == 0 && type == 1) {
        unsigned char a3[4] = {10, 0, 0, 3};
        at = answer(out, at, 1, 5, a3, 4);
        count = 1;
    } else if (strcmp(name, "_http._tcp.pool.test") == 0 && type == 33) {
        static const unsigned char s1[] = {0,   0, 0,   10,  0x1f, 0x41, 1,
                                           'a', 4, 't', 'e', 's',  't',  0};
        static const unsigned char s2[] = {0,   1, 0,   20,  0x1f, 0x42, 1,
                                           'b', 4, 't', 'e', 's',  't',  0};
        at = answer(out, at, 33, 60, s1, sizeof s1);
        at = answer(out, at, 33, 60, s2, sizeof s2);
        count = 2;
    }
    if (!known) out[3] = (out[3] & 0xf0) | 3; /* NXDOMAIN */
    put16(out + 6, count);
    put16(out + 8, 0);
    put16(out + 10, 0);
    uv_udp_send_t *req = malloc(sizeof *req + at);
    memcpy((char *)(req + 1), out, at);
    free(out);
    uv_buf_t b = uv_buf_init((char *)(req + 1), (unsigned)at);
    if (uv_udp_send(req, u, &b, 1, from, on_sent) != 0) free(req);
}

static int setup(void **state)
{
    assert_int_equal(uv_loop_init(&loop), 0);
    memset(&resp, 0, sizeof resp);
    uv_udp_init(&loop, &resp.udp);
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    assert_int_equal(uv_udp_bind(&resp.udp, (struct sockaddr *)&a, 0), 0);
    int len = sizeof a;
    uv_udp_getsockname(&resp.udp, (struct sockaddr *)&a, &len);
    resp.port = ntohs(a.sin_port);
    uv_udp_recv_start(&resp.udp, on_alloc, on_query);
    return 0;
}

static int teardown(void **state)
{
    uv_close((uv_handle_t *)&resp.udp, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0); /* nothing of the resolver is left */
    return 0;
}

static struct dns_resolver *resolver(uint32_t timeout_ms)
{
    char servers[64];
    snprintf(servers, sizeof servers, "127.0.0.1:%u", resp.port);
    int err = 0;
    struct dns_resolver *r = dns_resolver_new(&loop, servers, timeout_ms, &err);
    assert_non_null(r);
    return r;
}

static void on_addrs(void *ud, enum dns_status st, const struct dns_addr *addrs, size_t n)
{
    struct result *res = ud;
    res->calls++;
    if (res->inside_call) res->calls_inside++;
    res->st = st;
    res->n = n;
    memcpy(res->addrs, addrs, n * sizeof *addrs);
}

static void on_srv(void *ud, enum dns_status st, const struct dns_srv *recs, size_t n)
{
    struct result *res = ud;
    res->calls++;
    if (res->inside_call) res->calls_inside++;
    res->st = st;
    res->n = n;
    memcpy(res->srv, recs, n * sizeof *recs);
}

static void run_until(struct result *res)
{
    for (int i = 0; i < 2000 && res->calls == 0; i++)
        uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(res->calls, 1);
}

static const char *text(const struct dns_addr *a, char *buf, size_t cap)
{
    if (a->sa.ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)&a->sa;
        char ip[INET_ADDRSTRLEN];
        inet_ntop(AF_INET, &in->sin_addr, ip, sizeof ip);
        snprintf(buf, cap, "%s:%u ttl %u", ip, ntohs(in->sin_port), a->ttl_s);
    } else {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&a->sa;
        char ip[INET6_ADDRSTRLEN];
        inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof ip);
        snprintf(buf, cap, "[%s]:%u ttl %u", ip, ntohs(in6->sin6_port), a->ttl_s);
    }
    return buf;
}

static bool has(const struct result *res, const char *want)
{
    char buf[96];
    for (size_t i = 0; i < res->n; i++)
        if (strcmp(text(&res->addrs[i], buf, sizeof buf), want) == 0) return true;
    return false;
}

static void test_a_and_aaaa_with_ttls(void **state)
{
    struct dns_resolver *r = resolver(1000);
    struct result res = {0};
    res.inside_call = true;
    assert_int_equal(dns_resolve_addrs(r, "a.test", 8000, on_addrs, &res), 0);
    res.inside_call = false;
    run_until(&res);
    assert_int_equal(res.calls_inside, 0);
    assert_int_equal(res.st, DNS_OK);
    assert_int_equal(res.n, 3);
    assert_true(has(&res, "10.0.0.1:8000 ttl 7"));
    assert_true(has(&res, "10.0.0.2:8000 ttl 30"));
    assert_true(has(&res, "[fd00::1]:8000 ttl 9"));
    dns_resolver_close(r);
}

static void test_not_found(void **state)
{
    struct dns_resolver *r = resolver(1000);
    struct result res = {0};
    assert_int_equal(dns_resolve_addrs(r, "nowhere.test", 80, on_addrs, &res), 0);
    run_until(&res);
    assert_int_equal(res.st, DNS_NOT_FOUND);
    assert_int_equal(res.n, 0);
    dns_resolver_close(r);
}

static void test_srv(void **state)
{
    struct dns_resolver *r = resolver(1000);
    struct result res = {0};
    assert_int_equal(dns_resolve_srv(r, "_http._tcp.pool.test", on_srv, &res), 0);
    run_until(&res);
    assert_int_equal(res.st, DNS_OK);
    assert_int_equal(res.n, 2);
    for (size_t i = 0; i < 2; i++) {
        const struct dns_srv *s = &res.srv[i];
        if (strcmp(s->target, "a.test") == 0) {
            assert_int_equal(s->priority, 0);
            assert_int_equal(s->weight, 10);
            assert_int_equal(s->port, 8001);
        } else {
            assert_string_equal(s->target, "b.test");
            assert_int_equal(s->priority, 1);
            assert_int_equal(s->weight, 20);
            assert_int_equal(s->port, 8002);
        }
    }
    dns_resolver_close(r);
}

static void test_numeric_name_from_the_loop(void **state)
{
    struct dns_resolver *r = resolver(1000);
    struct result res = {0};
    res.inside_call = true;
    /* c-ares may answer a numeric name inside the call: it must still come from the loop */
    assert_int_equal(dns_resolve_addrs(r, "127.0.0.9", 81, on_addrs, &res), 0);
    res.inside_call = false;
    assert_int_equal(res.calls, 0);
    run_until(&res);
    assert_int_equal(res.calls_inside, 0);
    assert_int_equal(res.st, DNS_OK);
    assert_true(has(&res, "127.0.0.9:81 ttl 0"));
    dns_resolver_close(r);
}

static void test_silent_server_times_out(void **state)
{
    resp.silent = true;
    struct dns_resolver *r = resolver(100);
    struct result res = {0};
    assert_int_equal(dns_resolve_addrs(r, "a.test", 80, on_addrs, &res), 0);
    run_until(&res);
    assert_int_equal(res.st, DNS_TIMEOUT);
    assert_true(resp.queries >= 2); /* tried again before giving up */
    dns_resolver_close(r);
}

static void test_close_cancels(void **state)
{
    resp.silent = true;
    struct dns_resolver *r = resolver(5000);
    struct result a = {0}, s = {0};
    assert_int_equal(dns_resolve_addrs(r, "a.test", 80, on_addrs, &a), 0);
    assert_int_equal(dns_resolve_srv(r, "_http._tcp.pool.test", on_srv, &s), 0);
    for (int i = 0; i < 50 && resp.queries < 2; i++)
        uv_run(&loop, UV_RUN_NOWAIT);
    a.inside_call = s.inside_call = true;
    dns_resolver_close(r);
    a.inside_call = s.inside_call = false;
    assert_int_equal(a.calls + s.calls, 0);
    run_until(&a);
    run_until(&s);
    assert_int_equal(a.st, DNS_CANCELLED);
    assert_int_equal(s.st, DNS_CANCELLED);
    assert_int_equal(a.calls_inside + s.calls_inside, 0);
}

static void test_bad_servers(void **state)
{
    int err = 0;
    assert_null(dns_resolver_new(&loop, "not a server", 1000, &err));
    assert_int_equal(err, -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_a_and_aaaa_with_ttls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_found, setup, teardown),
        cmocka_unit_test_setup_teardown(test_srv, setup, teardown),
        cmocka_unit_test_setup_teardown(test_numeric_name_from_the_loop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_silent_server_times_out, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_cancels, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_servers, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
