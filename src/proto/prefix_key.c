#include "proto/prefix_key.h"

#include <stdbool.h>
#include <string.h>

#define PREFIX_KEY_MAX_DEPTH 512

struct hasher {
    uint64_t h;
    size_t left; /* bytes still hashed */
};

static void hash_feed(struct hasher *hs, const char *p, size_t n)
{
    if (n > hs->left) n = hs->left;
    for (size_t i = 0; i < n; i++) {
        hs->h ^= (unsigned char)p[i];
        hs->h *= 0x100000001b3ull;
    }
    hs->left -= n;
}

static uint64_t hash_end(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return h ? h : 1;
}

uint64_t prefix_key_bytes(const char *data, size_t len)
{
    struct hasher hs = {0xcbf29ce484222325ull, len};
    hash_feed(&hs, data, len);
    return hash_end(hs.h);
}

static size_t ws(const char *s, size_t i, size_t len)
{
    while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
        i++;
    return i;
}

/* The end of the string opening at s[i] == '"' (past its closing quote), or len. */
static size_t string_end(const char *s, size_t i, size_t len)
{
    for (i++; i < len; i++) {
        if (s[i] == '\\')
            i++;
        else if (s[i] == '"')
            return i + 1;
    }
    return len;
}

/* The end of the value starting at s[i], or len when it does not end. */
static size_t value_end(const char *s, size_t i, size_t len)
{
    if (i >= len) return len;
    if (s[i] == '"') return string_end(s, i, len);
    if (s[i] != '{' && s[i] != '[') {
        while (i < len && s[i] != ',' && s[i] != '}' && s[i] != ']' && s[i] != ' ' &&
               s[i] != '\n' && s[i] != '\r' && s[i] != '\t')
            i++;
        return i;
    }
    unsigned depth = 0;
    for (; i < len; i++) {
        char c = s[i];
        if (c == '"') {
            i = string_end(s, i, len) - 1;
        } else if (c == '{' || c == '[') {
            if (++depth > PREFIX_KEY_MAX_DEPTH) return len;
        } else if (c == '}' || c == ']') {
            if (--depth == 0) return i + 1;
        }
    }
    return len;
}

/* Whether the object s[i..end) has "role" "system" or "developer" among its top-level members. */
static bool is_system(const char *s, size_t i, size_t end)
{
    if (i >= end || s[i] != '{') return false;
    i = ws(s, i + 1, end);
    while (i < end && s[i] == '"') {
        size_t k = i, kend = string_end(s, i, end);
        i = ws(s, kend, end);
        if (i >= end || s[i] != ':') return false;
        i = ws(s, i + 1, end);
        size_t vend = value_end(s, i, end);
        if (kend - k == 6 && memcmp(s + k, "\"role\"", 6) == 0)
            return (vend - i == 8 && memcmp(s + i, "\"system\"", 8) == 0) ||
                   (vend - i == 11 && memcmp(s + i, "\"developer\"", 11) == 0);
        i = ws(s, vend, end);
        if (i < end && s[i] == ',') i = ws(s, i + 1, end);
    }
    return false;
}

/* The leading system messages and the first other one, hashed; 0 for fewer than two messages
   (a lone question shares nothing with another request that an engine would have cached). */
static uint64_t messages_key(const char *s, size_t i, size_t len, size_t max_bytes)
{
    struct hasher hs = {0xcbf29ce484222325ull, max_bytes};
    if (i >= len || s[i] != '[') return 0;
    i = ws(s, i + 1, len);
    bool leading = true; /* still hashing */
    size_t n = 0;
    while (i < len && s[i] != ']') {
        size_t end = value_end(s, i, len);
        if (leading) {
            hash_feed(&hs, s + i, end - i);
            leading = is_system(s, i, end) && hs.left > 0;
        }
        if (++n >= 2 && !leading) break;
        i = ws(s, end, len);
        if (i < len && s[i] == ',') i = ws(s, i + 1, len);
    }
    return n >= 2 ? hash_end(hs.h) : 0;
}

uint64_t prefix_key(const char *s, size_t len, size_t max_bytes)
{
    size_t i = ws(s, 0, len);
    if (i >= len || s[i] != '{') return 0;
    i = ws(s, i + 1, len);
    while (i < len && s[i] == '"') {
        size_t k = i, kend = string_end(s, i, len);
        i = ws(s, kend, len);
        if (i >= len || s[i] != ':') return 0;
        i = ws(s, i + 1, len);
        if (kend - k == 10 && memcmp(s + k, "\"messages\"", 10) == 0)
            return messages_key(s, i, len, max_bytes);
        if (kend - k == 8 && memcmp(s + k, "\"prompt\"", 8) == 0 && i < len && s[i] == '"') {
            struct hasher hs = {0xcbf29ce484222325ull, max_bytes};
            size_t vend = string_end(s, i, len);
            hash_feed(&hs, s + i, vend - i);
            return hash_end(hs.h);
        }
        i = ws(s, value_end(s, i, len), len);
        if (i < len && s[i] == ',') i = ws(s, i + 1, len);
    }
    return 0;
}
