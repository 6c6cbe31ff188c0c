/*
 * sigv4.c — the Signature Version 4 steps and the per-thread signing-key cache.
 */
#include "provider/sigv4.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char hexdig[] = "0123456789abcdef";
static const char HEXDIG[] = "0123456789ABCDEF";

static void to_hex(const unsigned char *p, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hexdig[p[i] >> 4];
        out[2 * i + 1] = hexdig[p[i] & 15];
    }
    out[2 * n] = '\0';
}

/* The digest and the MAC fetched once: OpenSSL 3's one-shot SHA256() and HMAC() look the
   algorithm up on every call, about a third of a signature's time. */
static EVP_MD *sha256_md;
static EVP_MAC *hmac_mac;
static pthread_once_t fetch_once = PTHREAD_ONCE_INIT;

static void fetch_algorithms(void)
{
    sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
    hmac_mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
}

static void sha256(const void *data, size_t len, unsigned char md[32])
{
    pthread_once(&fetch_once, fetch_algorithms);
    unsigned int n = 32;
    if (!sha256_md || !EVP_Digest(data, len, md, &n, sha256_md, NULL))
        memset(md, 0, 32); /* no SHA-256 in this OpenSSL: no signature verifies */
}

void sigv4_sha256_hex(const void *data, size_t len, char out[65])
{
    unsigned char md[32];
    sha256(data, len, md);
    to_hex(md, 32, out);
}

void sigv4_amz_date(int64_t unix_s, char out[17])
{
    time_t t = (time_t)unix_s;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 17, "%Y%m%dT%H%M%SZ", &tm);
}

static bool unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

/* RFC 3986 encoding as SigV4 wants it: unreserved kept, '/' kept when keep_slash, the rest %XX. */
static int uri_encode(struct buf *out, const char *s, size_t n, bool keep_slash)
{
    if (buf_reserve(out, n * 3) < 0) return -1;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (unreserved(c) || (keep_slash && c == '/')) {
            out->data[out->len++] = (char)c;
        } else {
            out->data[out->len++] = '%';
            out->data[out->len++] = HEXDIG[c >> 4];
            out->data[out->len++] = HEXDIG[c & 15];
        }
    }
    out->data[out->len] = '\0';
    return 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* A query component decoded, then encoded with the strict set: the same text however the
   caller escaped it. */
static int query_encode(struct buf *out, const char *s, size_t n)
{
    struct buf raw;
    buf_init(&raw, 0);
    int rc = buf_reserve(&raw, n + 1);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        int hi, lo;
        if (s[i] == '%' && i + 2 < n && (hi = hexval(s[i + 1])) >= 0 &&
            (lo = hexval(s[i + 2])) >= 0) {
            raw.data[raw.len++] = (char)(hi * 16 + lo);
            i += 2;
        } else {
            raw.data[raw.len++] = s[i];
        }
    }
    if (rc == 0) rc = uri_encode(out, raw.data ? raw.data : "", raw.len, false);
    buf_free(&raw);
    return rc;
}

/* The canonical URI: dot segments and empty segments removed (a trailing slash kept),
   then every segment encoded again, as for every service but S3. */
static int canonical_uri(struct buf *out, const char *path, size_t n)
{
    const char *seg[128];
    size_t seglen[128], nseg = 0;
    size_t i = 0;
    while (i < n) {
        while (i < n && path[i] == '/')
            i++;
        size_t start = i;
        while (i < n && path[i] != '/')
            i++;
        size_t len = i - start;
        if (len == 0 || (len == 1 && path[start] == '.')) continue;
        if (len == 2 && path[start] == '.' && path[start + 1] == '.') {
            if (nseg) nseg--;
            continue;
        }
        if (nseg == 128) return -1;
        seg[nseg] = path + start;
        seglen[nseg++] = len;
    }
    if (nseg == 0) return buf_append(out, "/", 1);
    for (size_t k = 0; k < nseg; k++)
        if (buf_append(out, "/", 1) < 0 || uri_encode(out, seg[k], seglen[k], false) < 0) return -1;
    if (n && path[n - 1] == '/') return buf_append(out, "/", 1);
    return 0;
}

struct qparam {
    char *key, *value;
};

static int qparam_cmp(const void *a, const void *b)
{
    const struct qparam *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    return c ? c : strcmp(x->value, y->value);
}

static int canonical_query(struct buf *out, const char *q, size_t n)
{
    struct qparam params[64];
    size_t np = 0;
    int rc = 0;
    size_t i = 0;
    while (rc == 0 && i < n) {
        size_t start = i;
        while (i < n && q[i] != '&')
            i++;
        size_t end = i++;
        if (end == start) continue;
        if (np == 64) {
            rc = -1;
            break;
        }
        const char *eq = memchr(q + start, '=', end - start);
        size_t klen = eq ? (size_t)(eq - (q + start)) : end - start;
        struct buf k, v;
        buf_init(&k, 0);
        buf_init(&v, 0);
        rc |= query_encode(&k, q + start, klen) | buf_append(&k, "", 1);
        rc |= eq ? query_encode(&v, eq + 1, end - start - klen - 1) : 0;
        rc |= buf_append(&v, "", 1);
        params[np].key = buf_steal(&k, NULL);
        params[np].value = buf_steal(&v, NULL);
        if (!params[np].key || !params[np].value) rc = -1;
        np++;
        buf_free(&k);
        buf_free(&v);
    }
    if (rc == 0) {
        qsort(params, np, sizeof *params, qparam_cmp);
        for (size_t k = 0; k < np; k++)
            rc |= buf_printf(out, "%s%s=%s", k ? "&" : "", params[k].key, params[k].value);
    }
    for (size_t k = 0; k < np; k++) {
        free(params[k].key);
        free(params[k].value);
    }
    return rc;
}

struct hdr {
    char name[128];
    const char *value;
    size_t value_len;
};

static int hdr_cmp(const void *a, const void *b)
{
    return strcmp(((const struct hdr *)a)->name, ((const struct hdr *)b)->name);
}

/* A header value trimmed, with each run of spaces inside it made one space. */
static int append_trimmed(struct buf *out, const char *v, size_t n)
{
    while (n && (*v == ' ' || *v == '\t')) {
        v++;
        n--;
    }
    while (n && (v[n - 1] == ' ' || v[n - 1] == '\t'))
        n--;
    if (buf_reserve(out, n) < 0) return -1;
    bool space = false;
    for (size_t i = 0; i < n; i++) {
        bool sp = v[i] == ' ' || v[i] == '\t';
        if (!sp)
            out->data[out->len++] = v[i];
        else if (!space)
            out->data[out->len++] = ' ';
        space = sp;
    }
    out->data[out->len] = '\0';
    return 0;
}

int sigv4_canonical_request(const struct sigv4_input *in, struct buf *creq,
                            struct buf *signed_headers)
{
    if (in->nheaders > SIGV4_MAX_HEADERS) return -1;
    struct hdr h[SIGV4_MAX_HEADERS];
    for (size_t i = 0; i < in->nheaders; i++) {
        size_t n = in->headers[i].name_len;
        if (n >= sizeof h[i].name) return -1;
        for (size_t k = 0; k < n; k++) {
            char c = in->headers[i].name[k];
            h[i].name[k] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
        }
        h[i].name[n] = '\0';
        h[i].value = in->headers[i].value;
        h[i].value_len = in->headers[i].value_len;
    }
    qsort(h, in->nheaders, sizeof *h, hdr_cmp);
    struct buf sh;
    buf_init(&sh, 0);
    int rc = 0;
    for (size_t i = 0; i < in->nheaders; i++)
        rc |= buf_printf(&sh, "%s%s", i ? ";" : "", h[i].name);
    rc |= buf_append(&sh, "", 0);
    if (creq) {
        rc |= buf_printf(creq, "%s\n", in->method);
        rc |= canonical_uri(creq, in->path, in->path_len);
        rc |= buf_append(creq, "\n", 1);
        if (in->query && in->query_len) rc |= canonical_query(creq, in->query, in->query_len);
        rc |= buf_append(creq, "\n", 1);
        for (size_t i = 0; i < in->nheaders; i++) {
            rc |= buf_printf(creq, "%s:", h[i].name);
            rc |= append_trimmed(creq, h[i].value, h[i].value_len);
            rc |= buf_append(creq, "\n", 1);
        }
        rc |= buf_printf(creq, "\n%s\n%s", sh.data ? sh.data : "", in->payload_hash);
    }
    if (signed_headers) rc |= buf_append(signed_headers, sh.data ? sh.data : "", sh.len);
    buf_free(&sh);
    return rc ? -1 : 0;
}

int sigv4_string_to_sign(const struct sigv4_input *in, const char *creq, size_t creq_len,
                         struct buf *out)
{
    char hash[65];
    sigv4_sha256_hex(creq, creq_len, hash);
    return buf_printf(out, "AWS4-HMAC-SHA256\n%s\n%.8s/%s/%s/aws4_request\n%s", in->amz_date,
                      in->amz_date, in->region, in->service, hash) < 0
               ? -1
               : 0;
}

static void hmac(const void *key, size_t klen, const char *msg, size_t mlen, unsigned char out[32])
{
    pthread_once(&fetch_once, fetch_algorithms);
    OSSL_PARAM params[2] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA256", 0),
                            OSSL_PARAM_construct_end()};
    EVP_MAC_CTX *ctx = hmac_mac ? EVP_MAC_CTX_new(hmac_mac) : NULL;
    size_t n = 0;
    if (!ctx || !EVP_MAC_init(ctx, key, klen, params) ||
        !EVP_MAC_update(ctx, (const unsigned char *)msg, mlen) || !EVP_MAC_final(ctx, out, &n, 32))
        memset(out, 0, 32);
    EVP_MAC_CTX_free(ctx);
}

static _Thread_local uint64_t derivations;

void sigv4_signing_key(const char *secret, const char *date8, const char *region,
                       const char *service, unsigned char key[32])
{
    char k0[256];
    int n = snprintf(k0, sizeof k0, "AWS4%s", secret);
    size_t klen = n < 0 ? 0 : (size_t)n < sizeof k0 ? (size_t)n : sizeof k0 - 1;
    unsigned char a[32], b[32];
    hmac(k0, klen, date8, 8, a);
    hmac(a, 32, region, strlen(region), b);
    hmac(b, 32, service, strlen(service), a);
    hmac(a, 32, "aws4_request", 12, key);
    OPENSSL_cleanse(k0, sizeof k0);
    derivations++;
}

uint64_t sigv4_key_derivations(void)
{
    return derivations;
}

/* The derived keys of this thread: a key serves one secret, day, region and service. */
enum { KEY_CACHE = 4 };
struct key_entry {
    bool used;
    unsigned char secret_hash[32];
    char date8[9];
    char region[32];
    char service[32];
    unsigned char key[32];
};
static _Thread_local struct key_entry key_cache[KEY_CACHE];
static _Thread_local unsigned key_next;

static void cached_key(const char *secret, const char *date8, const char *region,
                       const char *service, unsigned char key[32])
{
    unsigned char sh[32];
    sha256(secret, strlen(secret), sh);
    bool cacheable = strlen(region) < sizeof key_cache[0].region &&
                     strlen(service) < sizeof key_cache[0].service;
    for (unsigned i = 0; cacheable && i < KEY_CACHE; i++) {
        struct key_entry *e = &key_cache[i];
        if (e->used && memcmp(e->secret_hash, sh, 32) == 0 && memcmp(e->date8, date8, 8) == 0 &&
            strcmp(e->region, region) == 0 && strcmp(e->service, service) == 0) {
            memcpy(key, e->key, 32);
            return;
        }
    }
    sigv4_signing_key(secret, date8, region, service, key);
    if (!cacheable) return;
    struct key_entry *e = &key_cache[key_next++ % KEY_CACHE];
    e->used = true;
    memcpy(e->secret_hash, sh, 32);
    memcpy(e->date8, date8, 8);
    e->date8[8] = '\0';
    snprintf(e->region, sizeof e->region, "%s", region);
    snprintf(e->service, sizeof e->service, "%s", service);
    memcpy(e->key, key, 32);
}

int sigv4_authorization(const struct sigv4_input *in, const char *access_key_id, const char *secret,
                        struct buf *out)
{
    if (!in->amz_date || strlen(in->amz_date) != 16) return -1;
    struct buf creq, sh, sts;
    buf_init(&creq, 0);
    buf_init(&sh, 0);
    buf_init(&sts, 0);
    int rc = sigv4_canonical_request(in, &creq, &sh);
    if (rc == 0) rc = sigv4_string_to_sign(in, creq.data, creq.len, &sts);
    if (rc == 0) {
        unsigned char key[32], sig[32];
        char date8[9];
        memcpy(date8, in->amz_date, 8);
        date8[8] = '\0';
        cached_key(secret, date8, in->region, in->service, key);
        hmac(key, 32, sts.data, sts.len, sig);
        char sighex[65];
        to_hex(sig, 32, sighex);
        rc = buf_printf(out,
                        "AWS4-HMAC-SHA256 Credential=%s/%s/%s/%s/aws4_request, SignedHeaders=%s, "
                        "Signature=%s",
                        access_key_id, date8, in->region, in->service, sh.data ? sh.data : "",
                        sighex) < 0
                 ? -1
                 : 0;
        OPENSSL_cleanse(key, sizeof key);
    }
    buf_free(&creq);
    buf_free(&sh);
    buf_free(&sts);
    return rc;
}
