/*
 * eventstream.c — the AWS event stream framing: parse (resumable) and encode.
 *
 * The parser's states, per message:
 *
 *   PRELUDE (fewer than 12 bytes seen) ──12 bytes, lengths and CRC good──▶ BODY (total known)
 *        ▲                                                                   │
 *        └──────────── the message is whole: CRC and headers checked, callback ┘
 *
 * A message wholly inside the current feed, with nothing pending, is checked in
 * place; otherwise its bytes gather in `pending` up to its total length.
 */
#include "proto/eventstream.h"

#include <pthread.h>
#include <string.h>

static uint32_t crc_table[8][256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++)
            crc_table[t][i] = (crc_table[t - 1][i] >> 8) ^ crc_table[0][crc_table[t - 1][i] & 0xff];
}

/* Slicing by eight: the CRC of a chat stream is most of the parse's time. */
uint32_t evs_crc32(uint32_t crc, const void *data, size_t len)
{
    pthread_once(&crc_once, crc_init);
    const unsigned char *p = data;
    crc = ~crc;
    while (len >= 8) {
        uint32_t lo = crc ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                             (uint32_t)p[3] << 24);
        crc = crc_table[7][lo & 0xff] ^ crc_table[6][(lo >> 8) & 0xff] ^
              crc_table[5][(lo >> 16) & 0xff] ^ crc_table[4][lo >> 24] ^ crc_table[3][p[4]] ^
              crc_table[2][p[5]] ^ crc_table[1][p[6]] ^ crc_table[0][p[7]];
        p += 8;
        len -= 8;
    }
    while (len--)
        crc = crc_table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return ~crc;
}

static uint32_t be32(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t be_n(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

void evs_parser_init(struct evs_parser *p, size_t max_message)
{
    memset(p, 0, sizeof *p);
    p->max_message = max_message ? max_message : EVS_DEFAULT_MAX_MESSAGE;
    if (p->max_message < EVS_MIN_MESSAGE) p->max_message = EVS_MIN_MESSAGE;
    buf_init(&p->pending, p->max_message);
}

void evs_parser_free(struct evs_parser *p)
{
    buf_free(&p->pending);
}

void evs_parser_reset(struct evs_parser *p)
{
    buf_reset(&p->pending);
    p->total = 0;
    p->error = 0;
}

bool evs_parser_partial(const struct evs_parser *p)
{
    return p->pending.len > 0;
}

/* The prelude's lengths and CRC: the total length, or an error. */
static int64_t check_prelude(const struct evs_parser *p, const char *pre)
{
    uint32_t total = be32(pre), hlen = be32(pre + 4);
    if (evs_crc32(0, pre, 8) != be32(pre + 8)) return EVS_ERR_PRELUDE_CRC;
    if (total < EVS_MIN_MESSAGE || total > p->max_message || hlen > total - EVS_MIN_MESSAGE)
        return EVS_ERR_LENGTH;
    return total;
}

static int parse_headers(const char *h, size_t n, struct evs_message *m)
{
    static const unsigned char fixed_len[] = {
        [EVS_BOOL_TRUE] = 0, [EVS_BOOL_FALSE] = 0, [EVS_BYTE] = 1,      [EVS_SHORT] = 2,
        [EVS_INT] = 4,       [EVS_LONG] = 8,       [EVS_TIMESTAMP] = 8, [EVS_UUID] = 16};
    size_t i = 0;
    m->nheaders = 0;
    while (i < n) {
        if (m->nheaders == EVS_MAX_HEADERS) return EVS_ERR_HEADER;
        struct evs_header *x = &m->headers[m->nheaders++];
        size_t nl = (unsigned char)h[i++];
        if (nl == 0 || nl > n - i || n - i - nl < 1) return EVS_ERR_HEADER;
        x->name = h + i;
        x->name_len = nl;
        i += nl;
        unsigned type = (unsigned char)h[i++];
        x->num = 0;
        x->bytes = NULL;
        x->bytes_len = 0;
        if (type > EVS_UUID) return EVS_ERR_HEADER;
        x->type = (enum evs_type)type;
        size_t vlen;
        if (type == EVS_BYTES || type == EVS_STRING) {
            if (n - i < 2) return EVS_ERR_HEADER;
            vlen = (size_t)be_n(h + i, 2);
            i += 2;
        } else {
            vlen = fixed_len[type];
        }
        if (vlen > n - i) return EVS_ERR_HEADER;
        switch (x->type) {
        case EVS_BOOL_TRUE:
            x->num = 1;
            break;
        case EVS_BOOL_FALSE:
            break;
        case EVS_BYTE:
            x->num = (int8_t)h[i];
            break;
        case EVS_SHORT:
            x->num = (int16_t)be_n(h + i, 2);
            break;
        case EVS_INT:
            x->num = (int32_t)be_n(h + i, 4);
            break;
        case EVS_LONG:
        case EVS_TIMESTAMP:
            x->num = (int64_t)be_n(h + i, 8);
            break;
        case EVS_BYTES:
        case EVS_STRING:
        case EVS_UUID:
            x->bytes = h + i;
            x->bytes_len = vlen;
            break;
        }
        i += vlen;
    }
    return 0;
}

/* A whole message of total bytes at s: its CRCs and headers checked, then the callback. */
static int deliver(const char *s, uint32_t total, evs_message_fn fn, void *ud)
{
    if (evs_crc32(0, s, total - 4) != be32(s + total - 4)) return EVS_ERR_MESSAGE_CRC;
    uint32_t hlen = be32(s + 4);
    struct evs_message m;
    int rc = parse_headers(s + EVS_PRELUDE_LEN, hlen, &m);
    if (rc < 0) return rc;
    m.payload = s + EVS_PRELUDE_LEN + hlen;
    m.payload_len = total - EVS_MIN_MESSAGE - hlen;
    return fn(ud, &m);
}

int evs_parser_feed(struct evs_parser *p, const char *data, size_t len, evs_message_fn fn, void *ud,
                    size_t *consumed)
{
    size_t off = 0;
    int rc = p->error;
    while (rc == 0 && off < len) {
        if (p->pending.len == 0 && len - off >= EVS_PRELUDE_LEN) {
            /* in place when the whole message is here */
            int64_t total = check_prelude(p, data + off);
            if (total < 0) {
                rc = (int)total;
                break;
            }
            if ((size_t)total <= len - off) {
                rc = deliver(data + off, (uint32_t)total, fn, ud);
                if (rc >= 0) off += (size_t)total;
                continue;
            }
        }
        /* gather: the prelude first, then up to the total */
        size_t want = p->total ? p->total - p->pending.len : EVS_PRELUDE_LEN - p->pending.len;
        size_t take = want < len - off ? want : len - off;
        if (buf_append(&p->pending, data + off, take) < 0) {
            rc = EVS_ERR_NOMEM;
            break;
        }
        off += take;
        if (!p->total && p->pending.len == EVS_PRELUDE_LEN) {
            int64_t total = check_prelude(p, p->pending.data);
            if (total < 0) {
                rc = (int)total;
                break;
            }
            p->total = (uint32_t)total;
        }
        if (p->total && p->pending.len == p->total) {
            uint32_t total = p->total;
            p->total = 0;
            rc = deliver(p->pending.data, total, fn, ud);
            /* the callback is done with the bytes: the buffer is free for the next message */
            p->pending.len = 0;
        }
    }
    if (rc < 0) p->error = rc;
    if (consumed) *consumed = off;
    return rc;
}

const struct evs_header *evs_header_find(const struct evs_message *m, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < m->nheaders; i++)
        if (m->headers[i].name_len == n && memcmp(m->headers[i].name, name, n) == 0)
            return &m->headers[i];
    return NULL;
}

bool evs_header_is(const struct evs_message *m, const char *name, const char *value)
{
    const struct evs_header *h = evs_header_find(m, name);
    size_t n = strlen(value);
    return h && h->type == EVS_STRING && h->bytes_len == n && memcmp(h->bytes, value, n) == 0;
}

static void put_be(char *out, uint64_t v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        out[i] = (char)(v >> (8 * (n - 1 - i)));
}

int evs_encode(struct buf *out, const struct evs_header *headers, size_t nheaders,
               const void *payload, size_t payload_len)
{
    static const unsigned char fixed_len[] = {0, 0, 1, 2, 4, 8, 0, 0, 8, 16};
    size_t hlen = 0;
    for (size_t i = 0; i < nheaders; i++) {
        const struct evs_header *h = &headers[i];
        if (h->name_len == 0 || h->name_len > 255 || (unsigned)h->type > EVS_UUID) return -1;
        bool var = h->type == EVS_BYTES || h->type == EVS_STRING;
        if (var && h->bytes_len > 65535) return -1;
        hlen += 2 + h->name_len + (var ? 2 + h->bytes_len : fixed_len[h->type]);
    }
    size_t total = EVS_MIN_MESSAGE + hlen + payload_len;
    if (total > UINT32_MAX || buf_reserve(out, total) < 0) return -1;
    char *s = out->data + out->len, *w = s;
    put_be(w, total, 4);
    put_be(w + 4, hlen, 4);
    put_be(w + 8, evs_crc32(0, w, 8), 4);
    w += EVS_PRELUDE_LEN;
    for (size_t i = 0; i < nheaders; i++) {
        const struct evs_header *h = &headers[i];
        *w++ = (char)h->name_len;
        memcpy(w, h->name, h->name_len);
        w += h->name_len;
        *w++ = (char)h->type;
        if (h->type == EVS_BYTES || h->type == EVS_STRING) {
            put_be(w, h->bytes_len, 2);
            memcpy(w + 2, h->bytes, h->bytes_len);
            w += 2 + h->bytes_len;
        } else if (h->type == EVS_UUID) {
            memcpy(w, h->bytes, 16);
            w += 16;
        } else {
            put_be(w, (uint64_t)h->num, fixed_len[h->type]);
            w += fixed_len[h->type];
        }
    }
    if (payload_len) memcpy(w, payload, payload_len);
    w += payload_len;
    put_be(w, evs_crc32(0, s, (size_t)(w - s)), 4);
    out->len += total;
    return 0;
}

const char *evs_error_name(int err)
{
    switch (err) {
    case EVS_ERR_LENGTH:
        return "an impossible message length";
    case EVS_ERR_PRELUDE_CRC:
        return "a bad prelude CRC";
    case EVS_ERR_MESSAGE_CRC:
        return "a bad message CRC";
    case EVS_ERR_HEADER:
        return "a malformed header";
    case EVS_ERR_NOMEM:
        return "out of memory";
    }
    return "no error";
}
