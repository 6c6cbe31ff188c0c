/*
 * tls — client-side TLS over memory BIOs, for the tcp transport.
 *
 * OpenSSL never touches a socket here: the transport feeds the ciphertext it
 * read (tls_feed), drives the handshake and reads plaintext, and sends
 * whatever ciphertext OpenSSL produced (tls_out_pending / tls_out_read) with
 * its own uv_write. That keeps all I/O on the loop and lets back-pressure stop
 * at the socket: while the transport is paused it stops reading, so the
 * input BIO never holds more than one socket read.
 *
 * A tls_ctx_cache (one per transport pool, so per worker thread) holds one
 * SSL_CTX per (ca_file, verify): loading a CA store is costly, a connection
 * is not. Each tls_conn is owned by one transport connection.
 */
#ifndef UNBUSY_TLS_H
#define UNBUSY_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/ssl.h>

/* Results below zero; tls_read returns a byte count above zero. */
enum tls_status {
    TLS_DONE = 0,     /* tls_handshake: finished */
    TLS_WANT = -1,    /* needs more input from the peer */
    TLS_CLOSED = -2,  /* the peer sent close_notify */
    TLS_FAIL = -3,    /* handshake, verification or record error: see tls_error */
};

struct tls_ctx_cache;

struct tls_ctx_cache *tls_ctx_cache_new(void);
/* Frees the cache's references; connections keep their own. */
void tls_ctx_cache_free(struct tls_ctx_cache *cache);
/* A client SSL_CTX (TLS 1.2+, ALPN http/1.1) verifying against ca_file, or the
   system store when ca_file is NULL; with verify false nothing is verified and
   ca_file is ignored. Borrowed from the cache. NULL on failure with a message in
   err (a CA file that cannot be read, out of memory). */
SSL_CTX *tls_ctx_cache_get(struct tls_ctx_cache *cache, const char *ca_file, bool verify, char *err,
                           size_t errlen);

struct tls_conn;

/* A client session for host: SNI (unless host is an IP address) and, with
   verify, the certificate must name host (DNS name or IP address). NULL when
   out of memory. */
struct tls_conn *tls_conn_new(SSL_CTX *ctx, const char *host, bool verify);
void tls_conn_free(struct tls_conn *t);

/* Ciphertext from the peer. Returns 0 or TLS_FAIL (out of memory). */
int tls_feed(struct tls_conn *t, const char *data, size_t len);
/* Advances the handshake: TLS_DONE, TLS_WANT or TLS_FAIL. Output may be pending after. */
int tls_handshake(struct tls_conn *t);
/* Plaintext into buf: bytes (> 0), TLS_WANT, TLS_CLOSED or TLS_FAIL. */
int tls_read(struct tls_conn *t, char *buf, size_t cap);
/* Encrypts all of data into the output. Returns 0 or TLS_FAIL. */
int tls_write(struct tls_conn *t, const char *data, size_t len);
/* Ciphertext waiting to be sent, and taking it (returns bytes copied). */
size_t tls_out_pending(const struct tls_conn *t);
size_t tls_out_read(struct tls_conn *t, char *dst, size_t cap);
/* Input not yet turned into plaintext, or plaintext not yet read. */
bool tls_has_buffered(const struct tls_conn *t);
/* Why the last TLS_FAIL happened ("" when it did not). Valid until the next call. */
const char *tls_error(const struct tls_conn *t);

#endif
