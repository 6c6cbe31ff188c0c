#include "provider/aws_sign.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "provider/aws_creds.h"
#include "provider/sigv4.h"

int aws_path_segment(struct buf *out, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        bool keep = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '.' || c == '_' || c == '~';
        if ((keep ? buf_append(out, s, 1) : buf_printf(out, "%%%02X", c)) < 0) return -1;
    }
    return 0;
}

static bool signed_name(const char *name, size_t n)
{
    return (n == 4 && strncasecmp(name, "host", 4) == 0) ||
           (n == 12 && strncasecmp(name, "content-type", 12) == 0) ||
           (n > 6 && strncasecmp(name, "x-amz-", 6) == 0);
}

int aws_sign_at(const struct cfg_provider *pv, struct provider_request *r, int64_t now_unix_s)
{
    struct aws_creds c;
    if (!pv->aws || aws_creds_get(pv, &c) < 0) return -1;
    char date[17], hash[65];
    sigv4_amz_date(now_unix_s, date);
    sigv4_sha256_hex(r->body.data ? r->body.data : "", r->body.len, hash);
    int rc = buf_printf(&r->head, "X-Amz-Date: %s\r\nX-Amz-Content-Sha256: %s\r\n", date, hash);
    if (c.session_token[0])
        rc |= buf_printf(&r->head, "X-Amz-Security-Token: %s\r\n", c.session_token);
    if (rc < 0) return -1;
    /* the request line: METHOD SP path[?query] SP HTTP/1.1 */
    const char *h = r->head.data, *end = h + r->head.len;
    const char *sp1 = memchr(h, ' ', r->head.len);
    const char *eol = sp1 ? memchr(sp1, '\r', (size_t)(end - sp1)) : NULL;
    const char *sp2 = eol ? memrchr(sp1 + 1, ' ', (size_t)(eol - sp1 - 1)) : NULL;
    if (!sp2) return -1;
    char method[16];
    if ((size_t)(sp1 - h) >= sizeof method) return -1;
    memcpy(method, h, (size_t)(sp1 - h));
    method[sp1 - h] = '\0';
    const char *target = sp1 + 1, *q = memchr(target, '?', (size_t)(sp2 - target));
    struct sigv4_header hs[SIGV4_MAX_HEADERS];
    size_t n = 0;
    for (const char *line = eol + 2; line < end && n < SIGV4_MAX_HEADERS;) {
        const char *le = memchr(line, '\r', (size_t)(end - line));
        const char *colon = le ? memchr(line, ':', (size_t)(le - line)) : NULL;
        if (!le) break;
        if (colon && signed_name(line, (size_t)(colon - line)))
            hs[n++] = (struct sigv4_header){line, (size_t)(colon - line), colon + 1,
                                            (size_t)(le - colon - 1)};
        line = le + 2;
    }
    struct sigv4_input in = {
        .method = method,
        .path = target,
        .path_len = (size_t)((q ? q : sp2) - target),
        .query = q ? q + 1 : NULL,
        .query_len = q ? (size_t)(sp2 - q - 1) : 0,
        .headers = hs,
        .nheaders = n,
        .payload_hash = hash,
        .amz_date = date,
        .region = pv->aws->region,
        .service = pv->aws->service,
    };
    struct buf auth;
    buf_init(&auth, 0);
    rc = sigv4_authorization(&in, c.access_key_id, c.secret_access_key, &auth);
    if (rc == 0)
        rc = buf_printf(&r->head, "Authorization: %.*s\r\n", (int)auth.len, auth.data) < 0 ? -1 : 0;
    buf_free(&auth);
    memset(&c, 0, sizeof c);
    return rc;
}

int aws_sign(const struct cfg_provider *pv, struct provider_request *r)
{
    return aws_sign_at(pv, r, (int64_t)time(NULL));
}

enum provider_head aws_head(const struct http1_response *resp, bool asked_stream)
{
    if (resp->status != 200) return PROVIDER_HEAD_ERROR;
    const struct http1_str *ct = http1_find_header(&resp->head, "content-type");
    bool evs =
        ct && ct->len >= 34 && strncasecmp(ct->p, "application/vnd.amazon.eventstream", 34) == 0;
    return evs && asked_stream ? PROVIDER_HEAD_STREAM : PROVIDER_HEAD_ANSWER;
}
