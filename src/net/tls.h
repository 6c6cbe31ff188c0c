/*
 * tls — TLS sessions over memory BIOs: client side for the tcp transport,
 * server side (tls_conn_new_server, contexts from tls_server.c) for server.c.
 *
 * OpenSSL never touches a socket here: the transport feeds the ciphertext it
 * read (tls_feed), drives the handshake and reads plaintext, and sends
 * whatever ciphertext OpenSSL produced (tls_out_pending / tls_out_read) with
 * its own uv_write. That keeps all I/O on the loop and lets back-pressure stop
 * at the socket: while the transport is paused it stops reading, so the
 * input BIO never holds more than one socket read.
 *
 * A tls_ctx_cache (one per transport pool, so per worker thread) holds one
 * SSL_CTX per (ca_file, verify): loading a CA store is costly (tens of
 * milliseconds to parse a system bundle), a connection is not. The load runs
 * in libuv's thread pool so the loop never waits for it; connections that
 * need a context still loading wait on it. Each tls_conn is owned by one
 * transport connection, or by one client connection in server.c.
 */
#ifndef UNBUSY_TLS_H
#define UNBUSY_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/ssl.h>
#include <uv.h>

/* Results below zero; tls_read returns a byte count above zero. */
enum tls_status {
    TLS_DONE = 0,    /* tls_handshake: finished */
    TLS_WANT = -1,   /* needs more input from the peer */
    TLS_CLOSED = -2, /* the peer sent close_notify */
    TLS_FAIL = -3,   /* handshake, verification or record error: see tls_error */
};

struct tls_ctx_cache;
struct tls_ctx_entry;

/* A connection waiting for a context; embedded in the connection. */
struct tls_ctx_waiter {
    /* Set by the caller. Called from the loop with the context (borrowed:
       SSL_CTX_up_ref to keep it) or NULL and why. */
    void (*ready)(struct tls_ctx_waiter *w, SSL_CTX *ctx, const char *err);
    /* Owned by the cache. */
    struct tls_ctx_waiter *next, *prev;
    struct tls_ctx_entry *entry;
};

/* on_idle(arg) is called from the loop whenever the last load in flight ends. */
struct tls_ctx_cache *tls_ctx_cache_new(uv_loop_t *loop, void (*on_idle)(void *arg), void *arg);
/* True while a load runs in the thread pool. */
bool tls_ctx_cache_busy(const struct tls_ctx_cache *cache);
/* Frees the cache's references (sessions keep their own). Only when not busy. */
void tls_ctx_cache_free(struct tls_ctx_cache *cache);
/*
 * A client SSL_CTX (TLS 1.2+, ALPN http/1.1) verifying against ca_file, or the
 * system store when ca_file is NULL; with verify false nothing is verified and
 * ca_file is ignored. Returns 0 with *ctx (borrowed) when loaded already; 1
 * when loading, w->ready follows from the loop unless tls_ctx_waiter_cancel(w)
 * comes first; -ENOMEM. w may be NULL to only start the load (warming). A failed load (unreadable
 * CA file) is not remembered: the next call tries again.
 */
int tls_ctx_cache_get(struct tls_ctx_cache *cache, const char *ca_file, bool verify, SSL_CTX **ctx,
                      struct tls_ctx_waiter *w);
/* Withdraws a waiting w (no-op when it is not waiting). */
void tls_ctx_waiter_cancel(struct tls_ctx_waiter *w);

struct tls_conn;

/* A client session for host: SNI (unless host is an IP address) and, with
   verify, the certificate must name host (DNS name or IP address). NULL when
   out of memory. */
struct tls_conn *tls_conn_new(SSL_CTX *ctx, const char *host, bool verify);
/* A server session (the peer is the client) on a context from tls_server.c. NULL when out
   of memory. */
struct tls_conn *tls_conn_new_server(SSL_CTX *ctx);
void tls_conn_free(struct tls_conn *t);

/* Ciphertext from the peer. Returns 0 or TLS_FAIL (out of memory). */
int tls_feed(struct tls_conn *t, const char *data, size_t len);
/* Advances the handshake: TLS_DONE, TLS_WANT or TLS_FAIL. Output may be pending after. */
int tls_handshake(struct tls_conn *t);
/* Plaintext into buf: bytes (> 0), TLS_WANT, TLS_CLOSED or TLS_FAIL. */
int tls_read(struct tls_conn *t, char *buf, size_t cap);
/* Encrypts all of data into the output. Returns 0 or TLS_FAIL. */
int tls_write(struct tls_conn *t, const char *data, size_t len);
/* True once the handshake has finished. */
bool tls_handshake_done(const struct tls_conn *t);
/* Queues a close_notify alert (output pending after); no-op before the handshake is done. */
void tls_close_notify(struct tls_conn *t);
/* Ciphertext waiting to be sent, and taking it (returns bytes copied). */
size_t tls_out_pending(const struct tls_conn *t);
size_t tls_out_read(struct tls_conn *t, char *dst, size_t cap);
/* Input not yet turned into plaintext, or plaintext not yet read. */
bool tls_has_buffered(const struct tls_conn *t);
/* Why the last TLS_FAIL happened ("" when it did not). Valid until the next call. */
const char *tls_error(const struct tls_conn *t);

#endif
