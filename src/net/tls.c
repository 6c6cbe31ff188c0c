#include "net/tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

/* Distinct CA settings in one process are few; evict the oldest loaded past this. */
#define TLS_CTX_CACHE_MAX 32

static const unsigned char tls_alpn_http11[] = "\x08http/1.1";

struct tls_ctx_entry {
    struct tls_ctx_entry *next; /* in cache->head */
    struct tls_ctx_cache *cache;
    char *ca_file; /* NULL: the system store */
    bool verify;
    bool loading; /* work in flight; waiters wait */
    SSL_CTX *ctx; /* once loaded */
    uv_work_t work;
    char err[256]; /* written by the loading thread on failure */
    struct tls_ctx_waiter *waiters;
};

struct tls_ctx_cache {
    uv_loop_t *loop;
    struct tls_ctx_entry *head; /* most recently created first */
    unsigned count;
    unsigned loading;
    void (*on_idle)(void *arg);
    void *idle_arg;
};

struct tls_conn {
    SSL *ssl;
    BIO *in;  /* ciphertext from the peer; SSL reads it */
    BIO *out; /* ciphertext for the peer; SSL writes it */
    bool failed; /* a fatal error happened: no close_notify may follow */
    char error[192];
};

struct tls_ctx_cache *tls_ctx_cache_new(uv_loop_t *loop, void (*on_idle)(void *arg), void *arg)
{
    struct tls_ctx_cache *cache = calloc(1, sizeof *cache);
    if (cache) {
        cache->loop = loop;
        cache->on_idle = on_idle;
        cache->idle_arg = arg;
    }
    return cache;
}

bool tls_ctx_cache_busy(const struct tls_ctx_cache *cache)
{
    return cache->loading > 0;
}

static void entry_free(struct tls_ctx_entry *e)
{
    SSL_CTX_free(e->ctx);
    free(e->ca_file);
    free(e);
}

void tls_ctx_cache_free(struct tls_ctx_cache *cache)
{
    if (!cache) return;
    struct tls_ctx_entry *e = cache->head;
    while (e) {
        struct tls_ctx_entry *next = e->next;
        entry_free(e);
        e = next;
    }
    free(cache);
}

static void openssl_error(char *err, size_t errlen, const char *what)
{
    unsigned long code = ERR_peek_last_error();
    if (code) {
        char detail[160];
        ERR_error_string_n(code, detail, sizeof detail);
        snprintf(err, errlen, "%s: %s", what, detail);
    } else {
        snprintf(err, errlen, "%s", what);
    }
    ERR_clear_error();
}

static SSL_CTX *ctx_new(const char *ca_file, bool verify, char *err, size_t errlen)
{
    ERR_clear_error();
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        openssl_error(err, errlen, "SSL_CTX_new");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    /* Idle pooled connections then hold no 16 KiB read/write buffers. */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    if (SSL_CTX_set_alpn_protos(ctx, tls_alpn_http11, sizeof tls_alpn_http11 - 1) != 0) {
        openssl_error(err, errlen, "ALPN");
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (verify) {
        int ok = ca_file ? SSL_CTX_load_verify_locations(ctx, ca_file, NULL)
                         : SSL_CTX_set_default_verify_paths(ctx);
        if (ok != 1) {
            char what[128];
            snprintf(what, sizeof what, "cannot load CA %s", ca_file ? ca_file : "(system store)");
            openssl_error(err, errlen, what);
            SSL_CTX_free(ctx);
            return NULL;
        }
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    }
    return ctx;
}

static bool same_file(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static void cache_unlink(struct tls_ctx_cache *cache, struct tls_ctx_entry *e)
{
    for (struct tls_ctx_entry **pp = &cache->head; *pp; pp = &(*pp)->next) {
        if (*pp == e) {
            *pp = e->next;
            cache->count--;
            return;
        }
    }
}

/* Past the bound, drop the oldest loaded context; sessions keep their own reference. */
static void cache_trim(struct tls_ctx_cache *cache)
{
    while (cache->count > TLS_CTX_CACHE_MAX) {
        struct tls_ctx_entry *victim = NULL;
        for (struct tls_ctx_entry *e = cache->head; e; e = e->next)
            if (!e->loading) victim = e;
        if (!victim) return;
        cache_unlink(cache, victim);
        entry_free(victim);
    }
}

/* In the thread pool: the costly part (reading and parsing the CA store). */
static void load_work(uv_work_t *req)
{
    struct tls_ctx_entry *e = req->data;
    e->ctx = ctx_new(e->ca_file, e->verify, e->err, sizeof e->err);
}

static void waiter_unlink(struct tls_ctx_waiter *w)
{
    struct tls_ctx_entry *e = w->entry;
    if (w->prev)
        w->prev->next = w->next;
    else
        e->waiters = w->next;
    if (w->next) w->next->prev = w->prev;
    w->next = w->prev = NULL;
    w->entry = NULL;
}

/* Back on the loop: hand the result to every waiter. A waiter's callback may
   cancel other waiters or ask for contexts again, so the list is re-read each
   time and a failed entry leaves the cache first. */
static void load_done(uv_work_t *req, int status)
{
    struct tls_ctx_entry *e = req->data;
    struct tls_ctx_cache *cache = e->cache;
    e->loading = false;
    cache->loading--;
    if (!e->ctx) {
        cache_unlink(cache, e);
        if (!e->err[0]) snprintf(e->err, sizeof e->err, "TLS context load cancelled");
    }
    struct tls_ctx_waiter *w;
    while ((w = e->waiters) != NULL) {
        waiter_unlink(w);
        w->ready(w, e->ctx, e->ctx ? NULL : e->err);
    }
    if (!e->ctx)
        entry_free(e);
    else
        cache_trim(cache);
    if (cache->loading == 0 && cache->on_idle) cache->on_idle(cache->idle_arg);
}

int tls_ctx_cache_get(struct tls_ctx_cache *cache, const char *ca_file, bool verify, SSL_CTX **ctx,
                      struct tls_ctx_waiter *w)
{
    if (!verify) ca_file = NULL;
    struct tls_ctx_entry *e;
    for (e = cache->head; e; e = e->next)
        if (e->verify == verify && same_file(e->ca_file, ca_file)) break;
    if (e && !e->loading) {
        *ctx = e->ctx;
        return 0;
    }
    if (!e) {
        e = calloc(1, sizeof *e);
        if (!e || (ca_file && !(e->ca_file = strdup(ca_file)))) {
            free(e);
            return -ENOMEM;
        }
        e->cache = cache;
        e->verify = verify;
        e->loading = true;
        e->work.data = e;
        if (uv_queue_work(cache->loop, &e->work, load_work, load_done) != 0) {
            free(e->ca_file);
            free(e);
            return -ENOMEM;
        }
        cache->loading++;
        e->next = cache->head;
        cache->head = e;
        cache->count++;
    }
    if (!w) return 1;
    w->entry = e;
    w->prev = NULL;
    w->next = e->waiters;
    if (e->waiters) e->waiters->prev = w;
    e->waiters = w;
    return 1;
}

void tls_ctx_waiter_cancel(struct tls_ctx_waiter *w)
{
    if (w->entry) waiter_unlink(w);
}

static bool is_ip_literal(const char *host)
{
    unsigned char addr[16];
    return inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1;
}

/* A session over two memory BIOs; NULL when out of memory. */
static struct tls_conn *conn_new(SSL_CTX *ctx)
{
    struct tls_conn *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    ERR_clear_error();
    t->ssl = SSL_new(ctx);
    BIO *in = BIO_new(BIO_s_mem());
    BIO *out = BIO_new(BIO_s_mem());
    if (!t->ssl || !in || !out) {
        BIO_free(in);
        BIO_free(out);
        SSL_free(t->ssl);
        ERR_clear_error();
        free(t);
        return NULL;
    }
    /* An empty input BIO means "wait for more", not end of stream: the socket's
       EOF is reported by the transport itself. */
    BIO_set_mem_eof_return(in, -1);
    SSL_set_bio(t->ssl, in, out); /* the SSL owns both from here */
    t->in = in;
    t->out = out;
    return t;
}

struct tls_conn *tls_conn_new(SSL_CTX *ctx, const char *host, bool verify)
{
    struct tls_conn *t = conn_new(ctx);
    if (!t) return NULL;
    SSL_set_connect_state(t->ssl);

    bool ip = is_ip_literal(host);
    /* RFC 6066: SNI carries host names only, never addresses. */
    if (!ip && SSL_set_tlsext_host_name(t->ssl, host) != 1) goto fail_ssl;
    if (verify) {
        int ok;
        if (ip) {
            ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), host);
        } else {
            SSL_set_hostflags(t->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
            ok = SSL_set1_host(t->ssl, host);
        }
        if (ok != 1) goto fail_ssl;
    }
    return t;

fail_ssl:
    tls_conn_free(t);
    ERR_clear_error();
    return NULL;
}

struct tls_conn *tls_conn_new_server(SSL_CTX *ctx)
{
    struct tls_conn *t = conn_new(ctx);
    if (t) SSL_set_accept_state(t->ssl);
    return t;
}

void tls_conn_free(struct tls_conn *t)
{
    if (!t) return;
    SSL_free(t->ssl);
    free(t);
}

/* Records why an SSL call failed: a certificate problem is named as such. */
static int tls_fail(struct tls_conn *t, const char *what)
{
    t->failed = true;
    long vr = SSL_get_verify_result(t->ssl);
    if (vr != X509_V_OK)
        snprintf(t->error, sizeof t->error, "certificate verify failed: %s",
                 X509_verify_cert_error_string(vr));
    else {
        /* The reason alone ("unsupported protocol"): the numeric "error:0A000102:..." form
           reads like a gateway fault in a log line about someone else's handshake. */
        const char *reason = ERR_reason_error_string(ERR_peek_last_error());
        snprintf(t->error, sizeof t->error, "%s%s%s", what, reason ? ": " : "", reason ? reason : "");
    }
    ERR_clear_error();
    return TLS_FAIL;
}

int tls_feed(struct tls_conn *t, const char *data, size_t len)
{
    while (len > 0) {
        int chunk = len > INT_MAX ? INT_MAX : (int)len;
        int n = BIO_write(t->in, data, chunk);
        if (n <= 0) {
            snprintf(t->error, sizeof t->error, "out of memory buffering TLS input");
            return TLS_FAIL;
        }
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

int tls_handshake(struct tls_conn *t)
{
    ERR_clear_error();
    int r = SSL_do_handshake(t->ssl);
    if (r == 1) return TLS_DONE;
    int e = SSL_get_error(t->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return TLS_WANT;
    return tls_fail(t, "TLS handshake failed");
}

int tls_read(struct tls_conn *t, char *buf, size_t cap)
{
    ERR_clear_error();
    int chunk = cap > INT_MAX ? INT_MAX : (int)cap;
    int n = SSL_read(t->ssl, buf, chunk);
    if (n > 0) return n;
    int e = SSL_get_error(t->ssl, n);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return TLS_WANT;
    if (e == SSL_ERROR_ZERO_RETURN) return TLS_CLOSED;
    return tls_fail(t, "TLS read failed");
}

int tls_write(struct tls_conn *t, const char *data, size_t len)
{
    while (len > 0) {
        size_t written = 0;
        ERR_clear_error();
        /* A memory BIO never blocks, so a write either goes through whole or fails. */
        if (SSL_write_ex(t->ssl, data, len, &written) != 1 || written == 0)
            return tls_fail(t, "TLS write failed");
        data += written;
        len -= written;
    }
    return 0;
}

bool tls_handshake_done(const struct tls_conn *t)
{
    return SSL_is_init_finished(t->ssl);
}

void tls_close_notify(struct tls_conn *t)
{
    if (t->failed || !SSL_is_init_finished(t->ssl)) return;
    ERR_clear_error();
    /* One call queues our close_notify; the peer's answer is not waited for. */
    SSL_shutdown(t->ssl);
    ERR_clear_error();
}

size_t tls_out_pending(const struct tls_conn *t)
{
    return BIO_ctrl_pending(t->out);
}

size_t tls_out_read(struct tls_conn *t, char *dst, size_t cap)
{
    size_t total = 0;
    while (total < cap) {
        size_t want = cap - total;
        int n = BIO_read(t->out, dst + total, want > INT_MAX ? INT_MAX : (int)want);
        if (n <= 0) break;
        total += (size_t)n;
    }
    return total;
}

bool tls_has_buffered(const struct tls_conn *t)
{
    return SSL_has_pending(t->ssl) || BIO_ctrl_pending(t->in) > 0;
}

const char *tls_error(const struct tls_conn *t)
{
    return t->error;
}
