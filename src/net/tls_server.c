#include "net/tls_server.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/x509err.h>

/* TLS 1.2 suites of the intermediate profile: ECDHE or DHE key exchange, AEAD only.
   TLS 1.3 keeps OpenSSL's defaults (all of them AEAD). */
static const char tls_server_ciphers[] =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
    "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305";
static const char tls_server_groups[] = "X25519:P-256:P-384";
static const unsigned char tls_server_alpn[] = "\x08http/1.1";

struct tls_server {
    pthread_mutex_t lock; /* guards ctx: workers take sessions, SIGHUP swaps it */
    SSL_CTX *ctx;
    char *cert, *key;
};

/* The reason of the last OpenSSL error, or the fallback; clears the queue. */
static void fail_text(char *err, size_t errlen, const char *what, const char *path,
                      const char *fallback)
{
    const char *reason = ERR_reason_error_string(ERR_peek_last_error());
    snprintf(err, errlen, "%s %s: %s", what, path, reason ? reason : fallback);
    ERR_clear_error();
}

/* A key file with a passphrase would make OpenSSL ask on the terminal: refuse instead. */
static int no_passphrase(char *buf, int size, int rwflag, void *userdata)
{
    return -1;
}

static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg)
{
    unsigned char *chosen = NULL;
    if (SSL_select_next_proto(&chosen, outlen, tls_server_alpn, sizeof tls_server_alpn - 1, in,
                              inlen) == OPENSSL_NPN_NEGOTIATED) {
        *out = chosen;
        return SSL_TLSEXT_ERR_OK;
    }
    /* No overlap (say, h2 only): no ALPN answer rather than a fatal alert; the client
       then speaks HTTP/1.1 or gives up by itself. */
    return SSL_TLSEXT_ERR_NOACK;
}

/* errno's text when the file cannot be opened at all: clearer than OpenSSL's. */
static bool readable(const char *path, char *err, size_t errlen, const char *what)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "cannot read %s %s: %s", what, path, strerror(errno));
        return false;
    }
    fclose(f);
    return true;
}

int tls_server_ctx_new(const char *cert, const char *key, SSL_CTX **out, char *err, size_t errlen)
{
    *out = NULL;
    if (!readable(cert, err, errlen, "certificate")) return TLS_SERVER_BAD_CERT;
    if (!readable(key, err, errlen, "key")) return TLS_SERVER_BAD_KEY;
    ERR_clear_error();
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        snprintf(err, errlen, "out of memory");
        return TLS_SERVER_BAD_CERT;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
    /* Idle keep-alive clients then hold no 16 KiB read/write buffers. */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_default_passwd_cb(ctx, no_passphrase);
    SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);
    SSL_CTX_set_dh_auto(ctx, 1);
    if (SSL_CTX_set_cipher_list(ctx, tls_server_ciphers) != 1 ||
        SSL_CTX_set1_groups_list(ctx, tls_server_groups) != 1) {
        snprintf(err, errlen, "this OpenSSL lacks the required ciphers or groups");
        ERR_clear_error();
        SSL_CTX_free(ctx);
        return TLS_SERVER_BAD_CERT;
    }
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
        fail_text(err, errlen, "cannot load certificate", cert, "not a PEM certificate");
        SSL_CTX_free(ctx);
        return TLS_SERVER_BAD_CERT;
    }
    /* Loading the key checks it against the certificate already; the explicit check covers
       a key type that cannot be compared on load. */
    bool loaded = SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) == 1;
    unsigned long code = ERR_peek_last_error();
    if (!loaded && !(ERR_GET_LIB(code) == ERR_LIB_X509 &&
                     ERR_GET_REASON(code) == X509_R_KEY_VALUES_MISMATCH)) {
        fail_text(err, errlen, "cannot load key", key, "not an unencrypted PEM private key");
        SSL_CTX_free(ctx);
        return TLS_SERVER_BAD_KEY;
    }
    if (!loaded || SSL_CTX_check_private_key(ctx) != 1) {
        ERR_clear_error();
        snprintf(err, errlen, "key %s does not match the certificate %s", key, cert);
        SSL_CTX_free(ctx);
        return TLS_SERVER_BAD_KEY;
    }
    *out = ctx;
    return TLS_SERVER_OK;
}

int tls_server_check_files(const char *cert, const char *key, char *err, size_t errlen)
{
    SSL_CTX *ctx = NULL;
    int rc = tls_server_ctx_new(cert, key, &ctx, err, errlen);
    SSL_CTX_free(ctx);
    return rc;
}

void tls_server_ctx_describe(SSL_CTX *ctx, char *out, size_t cap)
{
    out[0] = '\0';
    X509 *x = SSL_CTX_get0_certificate(ctx);
    if (!x) return;
    char subject[160] = "";
    X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, subject, sizeof subject);
    struct tm tm;
    if (ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm) == 1)
        snprintf(out, cap, "CN=%s, expires %04d-%02d-%02d", subject[0] ? subject : "(none)",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
    else
        snprintf(out, cap, "CN=%s", subject[0] ? subject : "(none)");
    ERR_clear_error();
}

struct tls_server *tls_server_new(const char *cert, const char *key, char *err, size_t errlen)
{
    struct tls_server *s = calloc(1, sizeof *s);
    if (!s || !(s->cert = strdup(cert)) || !(s->key = strdup(key))) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if (tls_server_ctx_new(cert, key, &s->ctx, err, errlen) != TLS_SERVER_OK) goto fail;
    pthread_mutex_init(&s->lock, NULL);
    return s;

fail:
    if (s) {
        free(s->cert);
        free(s->key);
        free(s);
    }
    return NULL;
}

int tls_server_reload(struct tls_server *s, char *err, size_t errlen)
{
    SSL_CTX *fresh = NULL;
    int rc = tls_server_ctx_new(s->cert, s->key, &fresh, err, errlen);
    if (rc != TLS_SERVER_OK) return rc;
    pthread_mutex_lock(&s->lock);
    SSL_CTX *old = s->ctx;
    s->ctx = fresh;
    pthread_mutex_unlock(&s->lock);
    SSL_CTX_free(old); /* sessions made from it hold their own reference */
    return TLS_SERVER_OK;
}

void tls_server_describe(struct tls_server *s, char *out, size_t cap)
{
    pthread_mutex_lock(&s->lock);
    tls_server_ctx_describe(s->ctx, out, cap);
    pthread_mutex_unlock(&s->lock);
}

struct tls_conn *tls_server_conn_new(struct tls_server *s)
{
    pthread_mutex_lock(&s->lock);
    struct tls_conn *t = tls_conn_new_server(s->ctx);
    pthread_mutex_unlock(&s->lock);
    return t;
}

void tls_server_free(struct tls_server *s)
{
    if (!s) return;
    SSL_CTX_free(s->ctx);
    pthread_mutex_destroy(&s->lock);
    free(s->cert);
    free(s->key);
    free(s);
}
