/*
 * tls_server — the listener's certificate: the server SSL_CTX built from
 * server.tls.cert and server.tls.key, shared by every worker, replaced on
 * SIGHUP.
 *
 * The context follows the widely used "intermediate" profile: TLS 1.2 and
 * 1.3, forward-secret AEAD ciphers only, no renegotiation, no compression,
 * and ALPN answering http/1.1 only (a client that offers only h2 gets no ALPN
 * answer and so speaks HTTP/1.1, the one protocol served).
 *
 * config_tls.c calls tls_server_check_files (handed in by main.c) to validate the files at load time
 * (--check included); main.c creates the tls_server, hands it to the workers
 * and calls tls_server_reload on SIGHUP; server.c takes one session per
 * accepted connection (tls_server_conn_new). A reload swaps the context under
 * a lock: new handshakes use the new certificate, sessions already made keep
 * a reference to the old context, so established connections go on; a reload
 * that fails leaves the current context in place.
 */
#ifndef UNBUSY_TLS_SERVER_H
#define UNBUSY_TLS_SERVER_H

#include <stddef.h>

#include <openssl/ssl.h>

#include "net/tls.h"

/* tls_server_ctx_new: which file is at fault. */
enum tls_server_status {
    TLS_SERVER_OK = 0,
    TLS_SERVER_BAD_CERT = -1, /* missing, unreadable or not a PEM certificate (chain) */
    TLS_SERVER_BAD_KEY = -2,  /* missing, unreadable, not a PEM key, encrypted, or not the
                                 certificate's key */
};

/*
 * A server context for the PEM certificate file cert (the leaf first, then
 * any intermediates) and the PEM private key file key. Returns TLS_SERVER_OK
 * with *out (caller frees with SSL_CTX_free), or a status with err filled.
 */
int tls_server_ctx_new(const char *cert, const char *key, SSL_CTX **out, char *err, size_t errlen);

/* tls_server_ctx_new as a config_tls_loader (the context is built and freed). */
int tls_server_check_files(const char *cert, const char *key, char *err, size_t errlen);

/* "CN=example.com, expires 2026-05-01" for the log; "" when it cannot be read. */
void tls_server_ctx_describe(SSL_CTX *ctx, char *out, size_t cap);

struct tls_server;

/* Loads the files (the paths are copied). NULL with err filled on failure. */
struct tls_server *tls_server_new(const char *cert, const char *key, char *err, size_t errlen);
/* Reads the same files again. 0, or a tls_server_status with err filled (the current
   certificate stays). */
int tls_server_reload(struct tls_server *s, char *err, size_t errlen);
/* tls_server_ctx_describe of the current certificate. */
void tls_server_describe(struct tls_server *s, char *out, size_t cap);
/* A session on the current certificate for an accepted connection; NULL when out of
   memory. Thread-safe. */
struct tls_conn *tls_server_conn_new(struct tls_server *s);
/* After the workers have stopped; sessions still open keep their context alive. */
void tls_server_free(struct tls_server *s);

#endif
