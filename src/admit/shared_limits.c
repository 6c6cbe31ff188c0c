/* shared_limits — RPM/TPM buckets shared through Redis, with local leases (see shared_limits.h). */
#include "admit/shared_limits.h"

#include <errno.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define UNITS 60000 /* a whole request or token, as in bucket.h */

/*
 * take: KEYS = the buckets, then the key's in-flight set when it has a concurrency bound;
 * ARGV = per bucket (rpm, tpm, lease), then the token estimate, the concurrency bound (0:
 * none), this request's member in the set and how long it counts without a refresh (ms).
 * {2, 0}: as many in flight as the bound (expired members dropped first), nothing taken.
 * Returns {1, 0, requests, tokens, ...} (taken: one request and the estimate from each, and
 * per bucket the requests and tokens leased besides) or {0, wait_ms} (nothing taken). A
 * lease is at most a quarter of what is left; its tokens are lease x the estimate, at least
 * lease x 1000, so that requests using more than their (small) estimate do not drain it.
 */
static const char take_script[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local U = 60000\n"
    "local n = (#ARGV - 4) / 3\n"
    "local tokens = tonumber(ARGV[3 * n + 1])\n"
    "local ccmax = tonumber(ARGV[3 * n + 2])\n"
    "if ccmax > 0 then\n"
    "  redis.call('ZREMRANGEBYSCORE', KEYS[n + 1], '-inf', now)\n"
    "  if redis.call('ZCARD', KEYS[n + 1]) >= ccmax then return {2, 0} end\n"
    "end\n"
    "local lv = {}\n"
    "local wait = 0\n"
    "for i = 1, n do\n"
    "  local rpm, tpm = tonumber(ARGV[3 * i - 2]), tonumber(ARGV[3 * i - 1])\n"
    "  local h = redis.call('HMGET', KEYS[i], 'r', 't', 'at')\n"
    "  local r, tk, at = tonumber(h[1]), tonumber(h[2]), tonumber(h[3])\n"
    "  if not (r and tk and at) then r, tk, at = rpm * U, tpm * U, now end\n"
    "  local el = now - at\n"
    "  if el < 0 then el = 0 end\n"
    "  r = math.min(rpm * U, r + el * rpm)\n"
    "  tk = math.min(tpm * U, tk + el * tpm)\n"
    "  if rpm > 0 and r < U then wait = math.max(wait, math.ceil((U - r) / rpm)) end\n"
    "  if tpm > 0 and tk < tokens * U then\n"
    "    wait = math.max(wait, math.ceil((tokens * U - tk) / tpm))\n"
    "  end\n"
    "  lv[i] = {r, tk}\n"
    "end\n"
    "if wait > 0 then return {0, wait} end\n"
    "local out = {1, 0}\n"
    "for i = 1, n do\n"
    "  local rpm, tpm, lease = tonumber(ARGV[3 * i - 2]), tonumber(ARGV[3 * i - 1]),\n"
    "                         tonumber(ARGV[3 * i])\n"
    "  local r, tk = lv[i][1], lv[i][2]\n"
    "  local extra, textra = lease, 0\n"
    "  if rpm > 0 then extra = math.min(extra, math.floor((r - U) / U / 4)) end\n"
    "  if extra < 0 then extra = 0 end\n"
    "  if tpm > 0 then\n"
    "    textra = math.min(lease * math.max(tokens, 1000), math.floor((tk - tokens * U) / U / 4))\n"
    "    if textra < 0 then textra = 0 end\n"
    "  end\n"
    "  if rpm > 0 then r = r - (1 + extra) * U end\n"
    "  if tpm > 0 then tk = tk - (tokens + textra) * U end\n"
    "  redis.call('HSET', KEYS[i], 'r', r, 't', tk, 'at', now)\n"
    "  redis.call('PEXPIRE', KEYS[i], 120000)\n"
    "  out[2 * i + 1] = extra\n"
    "  out[2 * i + 2] = textra\n"
    "end\n"
    "if ccmax > 0 then\n"
    "  local ttl = tonumber(ARGV[3 * n + 4])\n"
    "  redis.call('ZADD', KEYS[n + 1], now + ttl, ARGV[3 * n + 3])\n"
    "  redis.call('PEXPIRE', KEYS[n + 1], ttl * 2)\n"
    "end\n"
    "return out\n";

/*
 * give: KEYS[1] = a bucket; ARGV = rpm, tpm, requests, tokens (whole, signed: a negative
 * count charges). Levels stay within [-capacity, capacity].
 */
static const char give_script[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local U = 60000\n"
    "local rpm, tpm = tonumber(ARGV[1]), tonumber(ARGV[2])\n"
    "local h = redis.call('HMGET', KEYS[1], 'r', 't', 'at')\n"
    "local r, tk, at = tonumber(h[1]), tonumber(h[2]), tonumber(h[3])\n"
    "if not (r and tk and at) then r, tk, at = rpm * U, tpm * U, now end\n"
    "local el = now - at\n"
    "if el < 0 then el = 0 end\n"
    "r = math.max(-rpm * U, math.min(rpm * U, r + el * rpm + tonumber(ARGV[3]) * U))\n"
    "tk = math.max(-tpm * U, math.min(tpm * U, tk + el * tpm + tonumber(ARGV[4]) * U))\n"
    "redis.call('HSET', KEYS[1], 'r', r, 't', tk, 'at', now)\n"
    "redis.call('PEXPIRE', KEYS[1], 120000)\n"
    "return 1\n";

/* KEYS[1]: a key's in-flight set; ARGV: the time to live (ms), then members still running. */
static const char refresh_script[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local ttl = tonumber(ARGV[1])\n"
    "for i = 2, #ARGV do redis.call('ZADD', KEYS[1], 'XX', now + ttl, ARGV[i]) end\n"
    "redis.call('PEXPIRE', KEYS[1], ttl * 2)\n"
    "return 1\n";

#define REFRESH_MEMBERS 100 /* members per refresh command */

struct inflight_slot {
    bool used;
    uint64_t seq;
    char name[SHARED_MAX_NAME];
};

struct lease {
    bool used; /* the slot holds a lease */
    bool tomb; /* it held one: probes go on past it */
    struct shared_bucket b;
    uint32_t hash;
    int64_t requests;  /* whole requests this replica may still admit */
    int64_t tokens;    /* tokens likewise; negative: owed to the shared bucket */
    uint64_t since_ms; /* when the lease was first credited; 0: nothing leased */
};

struct shared_limits {
    const struct cfg_redis *cfg;
    char take_sha[41], give_sha[41];
    pthread_mutex_t lock;
    struct lease *slots; /* SHARED_MAX_LEASES * 2, open addressing */
    size_t nslots, nused;
    uint32_t leases_now;
    atomic_ullong lease_hits, round_trips, refused, returned;
    atomic_ullong fallbacks[SHARED_FALLBACK__COUNT];
    char id[17];
    struct inflight_slot *inflight; /* SHARED_MAX_INFLIGHT * 2, open addressing on seq */
    size_t ninflight;
    uint64_t next_seq;
};

static void sha1_hex(const char *s, char out[41])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_Digest(s, strlen(s), md, &len, EVP_sha1(), NULL);
    for (unsigned i = 0; i < 20; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

struct shared_limits *shared_limits_new(const struct cfg_redis *cfg)
{
    struct shared_limits *sl = calloc(1, sizeof *sl);
    if (!sl) return NULL;
    sl->nslots = SHARED_MAX_LEASES * 2;
    sl->slots = calloc(sl->nslots, sizeof *sl->slots);
    if (!sl->slots) {
        free(sl);
        return NULL;
    }
    sl->inflight = calloc(SHARED_MAX_INFLIGHT * 2, sizeof *sl->inflight);
    if (!sl->inflight) {
        free(sl->slots);
        free(sl);
        return NULL;
    }
    unsigned char rnd[8];
    if (RAND_bytes(rnd, sizeof rnd) != 1)
        memcpy(rnd, &sl, sizeof rnd < sizeof sl ? sizeof rnd : sizeof sl);
    for (int i = 0; i < 8; i++)
        snprintf(sl->id + 2 * i, 3, "%02x", rnd[i]);
    sl->cfg = cfg;
    sha1_hex(take_script, sl->take_sha);
    sha1_hex(give_script, sl->give_sha);
    pthread_mutex_init(&sl->lock, NULL);
    return sl;
}

void shared_limits_free(struct shared_limits *sl)
{
    if (!sl) return;
    pthread_mutex_destroy(&sl->lock);
    free(sl->slots);
    free(sl->inflight);
    free(sl);
}

const struct cfg_redis *shared_limits_config(const struct shared_limits *sl)
{
    return sl->cfg;
}

static uint32_t bucket_hash(const struct shared_bucket *b)
{
    uint32_t h = (2166136261u ^ (unsigned char)b->scope) * 16777619u; /* FNV-1a */
    for (const char *s = b->name; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

/* The bucket's lease slot; create: claim a free one (NULL when the table is full). Locked. */
/* The bucket's lease slot; create: claim one (NULL when SHARED_MAX_LEASES are held). Open
   addressing with tombstones: a returned lease frees its slot. Locked. */
static struct lease *find(struct shared_limits *sl, const struct shared_bucket *b, bool create)
{
    uint32_t h = bucket_hash(b);
    size_t mask = sl->nslots - 1;
    struct lease *target = NULL;
    for (size_t i = h & mask, k = 0; k < sl->nslots; i = (i + 1) & mask, k++) {
        struct lease *l = &sl->slots[i];
        if (!l->used) {
            if (!target) target = l;
            if (!l->tomb) break; /* never used: the name is not further on */
            continue;
        }
        if (l->hash == h && l->b.scope == b->scope && strcmp(l->b.name, b->name) == 0) {
            l->b.rpm = b->rpm; /* the limits in force now (a reload may change them) */
            l->b.tpm = b->tpm;
            return l;
        }
    }
    if (!create || !target || sl->nused >= SHARED_MAX_LEASES) return NULL;
    *target = (struct lease){.used = true, .b = *b, .hash = h};
    sl->nused++;
    return target;
}

static bool lease_covers(const struct lease *l, uint64_t tokens)
{
    if (!l || !l->since_ms) return false;
    if (l->b.rpm && l->requests < 1) return false;
    if (l->b.tpm && l->tokens < (int64_t)tokens) return false;
    return true;
}

bool shared_limits_lease_take(struct shared_limits *sl, const struct shared_bucket *b, size_t n,
                              uint64_t tokens, uint64_t now_ms)
{
    (void)now_ms;
    bool ok = true;
    struct lease *l[2] = {NULL, NULL};
    pthread_mutex_lock(&sl->lock);
    for (size_t i = 0; i < n && i < 2 && ok; i++)
        ok = lease_covers(l[i] = find(sl, &b[i], false), tokens);
    for (size_t i = 0; ok && i < n && i < 2; i++) {
        if (l[i]->b.rpm) l[i]->requests--;
        if (l[i]->b.tpm) l[i]->tokens -= (int64_t)tokens;
    }
    pthread_mutex_unlock(&sl->lock);
    if (ok) atomic_fetch_add_explicit(&sl->lease_hits, 1, memory_order_relaxed);
    return ok;
}

static int key_name(const struct shared_limits *sl, const struct shared_bucket *b, char *out,
                    size_t cap)
{
    int n =
        snprintf(out, cap, "%srl:%c:%s", sl->cfg->prefix ? sl->cfg->prefix : "", b->scope, b->name);
    return n < 0 || (size_t)n >= cap ? -ENOBUFS : 0;
}

static int member_of(const struct shared_limits *sl, const struct shared_inflight *cc, char *out,
                     size_t cap)
{
    int n = snprintf(out, cap, "%s:%" PRIu64, sl->id, cc->seq);
    return n < 0 || (size_t)n >= cap ? -ENOBUFS : 0;
}

static int cc_key(const struct shared_limits *sl, const char *name, char *out, size_t cap)
{
    int n = snprintf(out, cap, "%scc:k:%s", sl->cfg->prefix ? sl->cfg->prefix : "", name);
    return n < 0 || (size_t)n >= cap ? -ENOBUFS : 0;
}

int shared_limits_command(struct shared_limits *sl, struct buf *out, const struct shared_bucket *b,
                          size_t n, uint64_t tokens, bool eval, const struct shared_inflight *cc)
{
    if (n > 2 || (n == 0 && !cc)) return -EINVAL;
    char keys[3][CONFIG_REDIS_MAX_PREFIX + SHARED_MAX_NAME + 16];
    char nums[2][3][24], tok[24], nkeys[4], ccmax[16], member[48], ttl[16];
    const char *argv[3 + 3 + 6 + 4];
    int argc = 0;
    argv[argc++] = eval ? "EVAL" : "EVALSHA";
    argv[argc++] = eval ? take_script : sl->take_sha;
    snprintf(nkeys, sizeof nkeys, "%zu", n + (cc ? 1 : 0));
    argv[argc++] = nkeys;
    for (size_t i = 0; i < n; i++) {
        if (key_name(sl, &b[i], keys[i], sizeof keys[i]) < 0) return -ENOBUFS;
        argv[argc++] = keys[i];
    }
    if (cc) {
        if (cc_key(sl, cc->name, keys[2], sizeof keys[2]) < 0 ||
            member_of(sl, cc, member, sizeof member) < 0)
            return -ENOBUFS;
        argv[argc++] = keys[2];
    }
    for (size_t i = 0; i < n; i++) {
        snprintf(nums[i][0], sizeof nums[i][0], "%" PRIu32, b[i].rpm);
        snprintf(nums[i][1], sizeof nums[i][1], "%" PRIu32, b[i].tpm);
        snprintf(nums[i][2], sizeof nums[i][2], "%" PRIu32, cc ? 0 : sl->cfg->lease);
        for (int j = 0; j < 3; j++)
            argv[argc++] = nums[i][j];
    }
    snprintf(tok, sizeof tok, "%" PRIu64, tokens);
    argv[argc++] = tok;
    snprintf(ccmax, sizeof ccmax, "%" PRIu32, cc ? cc->max : 0);
    argv[argc++] = ccmax;
    argv[argc++] = cc ? member : "";
    snprintf(ttl, sizeof ttl, "%d", SHARED_INFLIGHT_TTL_MS);
    argv[argc++] = ttl;
    return resp_command(out, argc, argv, NULL);
}

static struct inflight_slot *inflight_find(struct shared_limits *sl, uint64_t seq, bool create)
{
    size_t cap = SHARED_MAX_INFLIGHT * 2;
    for (size_t i = seq % cap, k = 0; k < cap; i = (i + 1) % cap, k++) {
        struct inflight_slot *x = &sl->inflight[i];
        if (create ? !x->used : (x->used && x->seq == seq)) return x;
        if (!create && !x->used && x->seq == 0) return NULL; /* never used: the probe ends */
    }
    return NULL;
}

bool shared_limits_inflight_add(struct shared_limits *sl, struct shared_inflight *cc)
{
    bool ok = false;
    pthread_mutex_lock(&sl->lock);
    if (sl->ninflight < SHARED_MAX_INFLIGHT) {
        cc->seq = ++sl->next_seq;
        struct inflight_slot *x = inflight_find(sl, cc->seq, true);
        if (x) {
            x->used = true;
            x->seq = cc->seq;
            snprintf(x->name, sizeof x->name, "%s", cc->name);
            sl->ninflight++;
            ok = true;
        }
    }
    pthread_mutex_unlock(&sl->lock);
    return ok;
}

void shared_limits_inflight_remove(struct shared_limits *sl, const struct shared_inflight *cc)
{
    pthread_mutex_lock(&sl->lock);
    struct inflight_slot *x = inflight_find(sl, cc->seq, false);
    if (x) {
        x->used = false; /* seq stays: a probe goes on past it */
        sl->ninflight--;
    }
    pthread_mutex_unlock(&sl->lock);
}

int shared_limits_leave_command(struct shared_limits *sl, struct buf *out,
                                const struct shared_inflight *cc)
{
    char key[CONFIG_REDIS_MAX_PREFIX + SHARED_MAX_NAME + 16], member[48];
    if (cc_key(sl, cc->name, key, sizeof key) < 0 || member_of(sl, cc, member, sizeof member) < 0)
        return -ENOBUFS;
    const char *argv[] = {"ZREM", key, member};
    return resp_command(out, 3, argv, NULL);
}

static int by_name(const void *a, const void *b)
{
    const struct inflight_slot *x = a, *y = b;
    return strcmp(x->name, y->name);
}

size_t shared_limits_inflight_refresh(struct shared_limits *sl, struct buf *out, size_t max)
{
    pthread_mutex_lock(&sl->lock);
    size_t n = 0;
    struct inflight_slot *copy = sl->ninflight ? malloc(sl->ninflight * sizeof *copy) : NULL;
    for (size_t i = 0; copy && i < SHARED_MAX_INFLIGHT * 2 && n < sl->ninflight; i++)
        if (sl->inflight[i].used) copy[n++] = sl->inflight[i];
    pthread_mutex_unlock(&sl->lock);
    if (!copy) return 0;
    qsort(copy, n, sizeof *copy, by_name);
    size_t cmds = 0;
    char ttl[16];
    snprintf(ttl, sizeof ttl, "%d", SHARED_INFLIGHT_TTL_MS);
    for (size_t i = 0; i < n && cmds < max;) {
        size_t j = i;
        while (j < n && j - i < REFRESH_MEMBERS && strcmp(copy[j].name, copy[i].name) == 0)
            j++;
        char key[CONFIG_REDIS_MAX_PREFIX + SHARED_MAX_NAME + 16];
        static _Thread_local char members[REFRESH_MEMBERS][48];
        const char *argv[5 + REFRESH_MEMBERS];
        int argc = 0;
        if (cc_key(sl, copy[i].name, key, sizeof key) == 0) {
            argv[argc++] = "EVAL";
            argv[argc++] = refresh_script;
            argv[argc++] = "1";
            argv[argc++] = key;
            argv[argc++] = ttl;
            for (size_t k = i; k < j; k++) {
                struct shared_inflight cc = {.seq = copy[k].seq};
                member_of(sl, &cc, members[k - i], sizeof members[k - i]);
                argv[argc++] = members[k - i];
            }
            if (resp_command(out, argc, argv, NULL) < 0) break;
            cmds++;
        }
        i = j;
    }
    free(copy);
    return cmds;
}

const char *shared_limits_replica(const struct shared_limits *sl)
{
    return sl->id;
}

int shared_limits_read_take(const struct resp_reply *reply, struct shared_take *out)
{
    memset(out, 0, sizeof *out);
    const struct resp_item *it = reply->items;
    if (it[0].type == RESP_ERROR) {
        if (it[0].len >= 8 && memcmp(it[0].str, "NOSCRIPT", 8) == 0) {
            out->noscript = true;
            return 0;
        }
        return -1;
    }
    if (it[0].type != RESP_ARRAY || it[0].integer < 2 || it[0].integer > 6 || it[0].integer % 2 ||
        reply->n != (size_t)it[0].integer + 1)
        return -1;
    for (size_t i = 1; i < reply->n; i++)
        if (it[i].type != RESP_INTEGER || it[i].integer < 0) return -1;
    out->admitted = it[1].integer == 1;
    out->too_many = it[1].integer == 2;
    if (!out->admitted) {
        out->wait_ms = (uint64_t)it[2].integer;
        return 0;
    }
    for (size_t i = 3; i + 1 < reply->n; i += 2) {
        size_t b = (i - 3) / 2;
        out->extra[b] = it[i].integer > UINT32_MAX ? UINT32_MAX : (uint32_t)it[i].integer;
        out->extra_tokens[b] = (uint64_t)it[i + 1].integer;
    }
    return 0;
}

static int64_t clamp_tokens(uint64_t t)
{
    return t > (uint64_t)INT64_MAX / 4 ? INT64_MAX / 4 : (int64_t)t;
}

void shared_limits_credit(struct shared_limits *sl, const struct shared_bucket *b, size_t n,
                          const uint32_t *extra, const uint64_t *extra_tokens, uint64_t now_ms)
{
    pthread_mutex_lock(&sl->lock);
    for (size_t i = 0; i < n && i < 2; i++) {
        if (!extra[i] && !extra_tokens[i]) continue;
        struct lease *l = find(sl, &b[i], true);
        if (!l) continue; /* no room: those extras expire unused in Redis's bucket (over-counted) */
        if (!l->since_ms) {
            l->since_ms = now_ms ? now_ms : 1;
            sl->leases_now++;
        }
        if (l->b.rpm) l->requests += extra[i];
        if (l->b.tpm) l->tokens += clamp_tokens(extra_tokens[i]);
    }
    pthread_mutex_unlock(&sl->lock);
}

void shared_limits_adjust(struct shared_limits *sl, const struct shared_bucket *b, size_t n,
                          uint64_t estimate, uint64_t actual, uint64_t now_ms)
{
    if (estimate == actual) return;
    int64_t delta = clamp_tokens(estimate) - clamp_tokens(actual); /* > 0: back to the lease */
    pthread_mutex_lock(&sl->lock);
    for (size_t i = 0; i < n && i < 2; i++) {
        if (!b[i].tpm) continue;
        struct lease *l = find(sl, &b[i], true);
        if (!l) continue;
        if (!l->since_ms) {
            l->since_ms = now_ms ? now_ms : 1;
            sl->leases_now++;
        }
        l->tokens += delta;
    }
    pthread_mutex_unlock(&sl->lock);
}

size_t shared_limits_expire(struct shared_limits *sl, struct buf *out, uint64_t now_ms, bool all,
                            size_t max)
{
    size_t cmds = 0;
    pthread_mutex_lock(&sl->lock);
    for (size_t i = 0; i < sl->nslots && cmds < max; i++) {
        struct lease *l = &sl->slots[i];
        if (!l->used || !l->since_ms) continue;
        if (!all && now_ms - l->since_ms < SHARED_LEASE_TTL_MS) continue;
        char key[CONFIG_REDIS_MAX_PREFIX + SHARED_MAX_NAME + 16], rpm[16], tpm[16], req[24],
            tok[24];
        if (key_name(sl, &l->b, key, sizeof key) < 0) continue;
        snprintf(rpm, sizeof rpm, "%" PRIu32, l->b.rpm);
        snprintf(tpm, sizeof tpm, "%" PRIu32, l->b.tpm);
        snprintf(req, sizeof req, "%" PRId64, l->b.rpm ? l->requests : 0);
        snprintf(tok, sizeof tok, "%" PRId64, l->b.tpm ? l->tokens : 0);
        const char *argv[] = {"EVAL", give_script, "1", key, rpm, tpm, req, tok};
        if (resp_command(out, 8, argv, NULL) < 0) break; /* the rest next time */
        l->requests = l->tokens = 0;
        l->since_ms = 0;
        l->used = false; /* given back: the slot is free for another name */
        l->tomb = true;
        sl->nused--;
        sl->leases_now--;
        cmds++;
    }
    pthread_mutex_unlock(&sl->lock);
    atomic_fetch_add_explicit(&sl->returned, cmds, memory_order_relaxed);
    return cmds;
}

void shared_limits_count(struct shared_limits *sl, enum shared_fallback why)
{
    if (sl && why < SHARED_FALLBACK__COUNT)
        atomic_fetch_add_explicit(&sl->fallbacks[why], 1, memory_order_relaxed);
}

void shared_limits_count_round_trip(struct shared_limits *sl, bool refused)
{
    atomic_fetch_add_explicit(&sl->round_trips, 1, memory_order_relaxed);
    if (refused) atomic_fetch_add_explicit(&sl->refused, 1, memory_order_relaxed);
}

void shared_limits_stats(struct shared_limits *sl, struct shared_limits_stats *out)
{
    memset(out, 0, sizeof *out);
    if (!sl) return;
    out->lease_hits = atomic_load(&sl->lease_hits);
    out->round_trips = atomic_load(&sl->round_trips);
    out->refused = atomic_load(&sl->refused);
    out->returned = atomic_load(&sl->returned);
    for (int i = 0; i < SHARED_FALLBACK__COUNT; i++)
        out->fallbacks[i] = atomic_load(&sl->fallbacks[i]);
    pthread_mutex_lock(&sl->lock);
    out->leases = sl->leases_now;
    pthread_mutex_unlock(&sl->lock);
}

uint64_t shared_limits_estimate(uint64_t prompt_chars, bool has_max_tokens, int64_t max_tokens)
{
    uint64_t completion = has_max_tokens && max_tokens > 0 ? (uint64_t)max_tokens : 1024;
    return prompt_chars / 4 + completion;
}
