#include "base/redact.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void redact_set_init(struct redact_set *s)
{
    memset(s, 0, sizeof *s);
}

void redact_set_free(struct redact_set *s)
{
    free(s->v);
    memset(s, 0, sizeof *s);
}

/* The learnt ring: owned copies, the oldest replaced first. */
static pthread_mutex_t learnt_lock = PTHREAD_MUTEX_INITIALIZER;
static struct redact_secret learnt_v[REDACT_LEARNT_MAX];
static struct redact_set learnt = {learnt_v, 0, REDACT_LEARNT_MAX};
static size_t learnt_next;

int redact_learn(const char *value)
{
    size_t len = value ? strlen(value) : 0;
    if (len < REDACT_MIN_SECRET || len > REDACT_LEARNT_MAX_LEN)
        return -1;
    pthread_mutex_lock(&learnt_lock);
    for (size_t i = 0; i < learnt.n; i++)
        if (learnt_v[i].len == len && memcmp(learnt_v[i].p, value, len) == 0) {
            pthread_mutex_unlock(&learnt_lock);
            return 0; /* known already */
        }
    char *copy = strdup(value);
    if (!copy) {
        pthread_mutex_unlock(&learnt_lock);
        return -1;
    }
    size_t slot = learnt_next++ % REDACT_LEARNT_MAX;
    if (slot < learnt.n)
        free((char *)learnt_v[slot].p);
    else
        learnt.n = slot + 1;
    learnt_v[slot] = (struct redact_secret){copy, len};
    pthread_mutex_unlock(&learnt_lock);
    return 0;
}

static int add_one(struct redact_set *s, const char *p, size_t len)
{
    if (len < REDACT_MIN_SECRET)
        return 0;
    for (size_t i = 0; i < s->n; i++)
        if (s->v[i].len == len && memcmp(s->v[i].p, p, len) == 0)
            return 0;
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 8;
        if (cap > REDACT_MAX_SECRETS)
            cap = REDACT_MAX_SECRETS;
        if (s->n == cap)
            return -1;
        struct redact_secret *v = realloc(s->v, cap * sizeof *v);
        if (!v)
            return -1;
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = (struct redact_secret){p, len};
    return 0;
}

int redact_set_add(struct redact_set *s, const char *value)
{
    if (!value)
        return 0;
    size_t len = strlen(value);
    if (add_one(s, value, len) < 0)
        return -1;
    /* "Bearer TOKEN", "Basic TOKEN": the token alone may be echoed too. */
    const char *sp = memchr(value, ' ', len);
    if (sp) {
        while (*sp == ' ')
            sp++;
        if (*sp && !strchr(sp, ' '))
            return add_one(s, sp, len - (size_t)(sp - value));
    }
    return 0;
}

/* ---- the copy ---------------------------------------------------------------------- */

struct out {
    char *p;
    size_t cap, len;
};

static void put(struct out *o, const char *s, size_t n)
{
    if (o->len + 1 >= o->cap)
        return;
    size_t room = o->cap - 1 - o->len;
    if (n > room)
        n = room;
    memcpy(o->p + o->len, s, n);
    o->len += n;
}

static void put_mark(struct out *o)
{
    put(o, REDACT_MARK, sizeof REDACT_MARK - 1);
}

static bool alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static bool key_char(char c)
{
    return alnum(c) || c == '-' || c == '_';
}

/* RFC 9110's token68, what follows "Bearer ". */
static bool token68_char(char c)
{
    return alnum(c) || strchr("-._~+/=", c) != NULL;
}

/* The longest whole secret at in[i..]; 0 if none. */
static size_t secret_at(const struct redact_set *s, const char *in, size_t len, size_t i)
{
    size_t best = 0;
    for (size_t k = 0; s && k < s->n; k++) {
        const struct redact_secret *x = &s->v[k];
        if (x->len > best && x->len <= len - i && in[i] == x->p[0] && memcmp(in + i, x->p, x->len) == 0)
            best = x->len;
    }
    return best;
}

/* in[i..len) is the start of a secret, cut off by the end of the text. */
static bool cut_secret_at(const struct redact_set *s, const char *in, size_t len, size_t i)
{
    size_t rem = len - i;
    if (rem < REDACT_PARTIAL_MIN)
        return false;
    for (size_t k = 0; s && k < s->n; k++) {
        const struct redact_secret *x = &s->v[k];
        if (x->len >= REDACT_PARTIAL_MIN_SECRET && x->len > rem && memcmp(in + i, x->p, rem) == 0)
            return true;
    }
    return false;
}

/* "sk-" and a key-shaped run (OpenAI, DeepSeek, Anthropic and many others), at a word
   start: the length of the whole, or 0. A run cut off by the end counts at any length. */
static size_t sk_key_at(const char *in, size_t len, size_t i)
{
    if (len - i < 4 || memcmp(in + i, "sk-", 3) != 0 || (i > 0 && key_char(in[i - 1])))
        return 0;
    size_t j = i + 3;
    while (j < len && key_char(in[j]))
        j++;
    return j - i - 3 >= 8 || (j == len && j > i + 3) ? j - i : 0;
}

/* "Bearer" and spaces at a word start, then a token of 16 characters or more (or one
   cut off by the end): sets *scheme to the bytes kept and returns the whole length. */
static size_t bearer_at(const char *in, size_t len, size_t i, size_t *scheme)
{
    if (len - i < 8 || strncasecmp(in + i, "bearer ", 7) != 0 || (i > 0 && alnum(in[i - 1])))
        return 0;
    size_t j = i + 7;
    while (j < len && in[j] == ' ')
        j++;
    size_t t = j;
    while (j < len && token68_char(in[j]))
        j++;
    if (j - t >= 16 || (j == len && j > t)) {
        *scheme = t - i;
        return j - i;
    }
    return 0;
}

size_t redact_text(const struct redact_set *s, const char *in, size_t len, char *out, size_t cap)
{
    struct out o = {out, cap, 0};
    if (cap == 0)
        return 0;
    pthread_mutex_lock(&learnt_lock); /* error paths and logs only: no hot path waits here */
    const struct redact_set *l = learnt.n ? &learnt : NULL;
    size_t i = 0;
    while (i < len) {
        size_t n = secret_at(s, in, len, i), ln = secret_at(l, in, len, i), scheme = 0;
        if (ln > n)
            n = ln;
        if (n) {
            put_mark(&o);
            i += n;
        } else if ((n = bearer_at(in, len, i, &scheme)) != 0) {
            put(&o, in + i, scheme);
            put_mark(&o);
            i += n;
        } else if ((n = sk_key_at(in, len, i)) != 0) {
            put_mark(&o);
            i += n;
        } else if (cut_secret_at(s, in, len, i) || cut_secret_at(l, in, len, i)) {
            put_mark(&o);
            i = len;
        } else {
            put(&o, in + i, 1);
            i++;
        }
    }
    pthread_mutex_unlock(&learnt_lock);
    out[o.len] = '\0';
    return o.len;
}
