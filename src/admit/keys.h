/*
 * keys — the virtual API keys clients present to unbusy, and their limits.
 *
 * Two sources: static keys from the config file (keys:) and keys that unbusy
 * issues into a SQLite store (key_store:, WAL mode). An issued key is
 * "sk-ub-" + 40 random base62 characters (about 238 bits); the store keeps
 * only its SHA-256, its display prefix (the 8 characters after "sk-ub-") and
 * its settings, so the plaintext exists once, in the answer to "create".
 *
 * The request path never touches disk: every key is loaded into an immutable
 * in-memory table indexed by the SHA-256 of the key. keys_lookup hashes what
 * the client sent and finds it there, comparing digests with CRYPTO_memcmp,
 * so the time taken does not depend on how much of a key was guessed right.
 * A change (create, disable, enable, delete through this module, a reload of
 * the config) builds a new table and swaps it in; lookups hold a reference
 * on the table they found the key in, so a swap never frees a key in use.
 * Changes made by another process (the `unbusy keys` command on the same
 * file) are picked up by keys_refresh, which a watcher thread
 * (keys_watch) runs every few seconds: it compares SQLite's data_version
 * and reloads only when the file changed.
 *
 * Who calls it: main (keys_new, keys_watch, keys_set_static on a config
 * reload, keys_free); the request path (keys_lookup,
 * keys_model_allowed, keys_release); the admin API and the command line
 * (api/admin_keys.c, cmd/keys_cli.c) for the store
 * operations, which do disk I/O and so never run on an event loop.
 * Thread-safe throughout.
 */
#ifndef UNBUSY_KEYS_H
#define UNBUSY_KEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "config/config.h"

struct ratelimit;
struct server_conn;

#define KEYS_PREFIX "sk-ub-"
#define KEYS_RANDOM_CHARS 40
#define KEYS_PLAINTEXT_LEN (sizeof KEYS_PREFIX - 1 + KEYS_RANDOM_CHARS) /* 46 */
#define KEYS_DISPLAY_CHARS 8
#define KEYS_MAX 100000    /* keys in a store; creating more is refused */
#define KEYS_MAX_MODELS 64 /* models one key may be limited to */
#define KEYS_MAX_MODEL_CHARS 256
#define KEYS_MAX_SECRET 256 /* a longer bearer token is never a key */
#define KEYS_PRIORITY_MAX 3 /* priority classes 0 (highest) .. 3 */
#define KEYS_PRIORITY_DEFAULT 1
#define KEYS_MAX_RPM 100000000u
#define KEYS_MAX_TPM 4000000000u
#define KEYS_MAX_CONCURRENCY 1000000u
#define KEYS_WATCH_DEFAULT_MS 2000

/* One key, as the request path sees it. Immutable; valid until keys_release. */
struct key_info {
    int64_t id; /* the store's id; 0 for a key from the config file */
    const char *name;
    char prefix[KEYS_DISPLAY_CHARS + 1]; /* for display; "" for a config key not "sk-ub-..." */
    const char *const *models;           /* the client model names it may use; nmodels 0: all */
    size_t nmodels;
    int priority;                       /* 0 (highest) .. 3 */
    uint32_t rpm, tpm, max_concurrency; /* 0: unlimited */
    bool disabled;
    bool from_config;
    int64_t created_at; /* unix seconds; 0 for a config key */
    /* The name of its rate-limit entry ("id:12", "config:NAME"): stable while the key
       exists, whatever else changes, and never the secret. */
    const char *limit_id;
    /* private */
    unsigned char digest_[32];
    struct keys_table *table_;
};

/* What a new key gets (keys_create). */
struct keys_spec {
    const char *name; /* config_key_name_valid */
    const char *const *models;
    size_t nmodels; /* 0: every model */
    int priority;
    uint32_t rpm, tpm, max_concurrency;
};

struct keys;

/*
 * Opens the store (creating the file, mode 0600, and its table when missing;
 * store_path NULL: no store) and loads it with the static keys (copied; the
 * config may go away). Returns 0, or -1 with a message in err.
 */
int keys_new(const char *store_path, const struct cfg_key *statics, size_t nstatics,
             struct keys **out, char *err, size_t errlen);
/* Stops the watcher; every key_info must have been released. */
void keys_free(struct keys *k);

/* Replaces the static keys (a config reload). Returns 0 or -ENOMEM (nothing changed). */
int keys_set_static(struct keys *k, const struct cfg_key *statics, size_t nstatics);
/* Re-reads the store now. Returns 0, or -EIO (logged; the old table stays). */
int keys_reload(struct keys *k);
/* Re-reads the store if another connection changed it since the last read.
   Returns 1 (reloaded), 0 (unchanged, or no store) or -EIO. */
int keys_refresh(struct keys *k);
/* Starts a thread running keys_refresh every interval_ms (0: the default).
   Returns 0, -EALREADY or -errno. keys_free stops it. */
int keys_watch(struct keys *k, uint32_t interval_ms);
/* Called (from whichever thread made the change) after every new table. */
void keys_on_change(struct keys *k, void (*fn)(struct keys *k, void *ud), void *ud);

/* Keys in the table, disabled ones included. Whether the gateway is open is the
   config's decision (config->auth.open), never this count: an empty store
   refuses everyone. */
size_t keys_count(struct keys *k);

/*
 * The enabled key whose secret is bearer[0..len) (a leading "Bearer " is
 * skipped), or NULL. A non-NULL result holds a reference: keys_release it.
 */
const struct key_info *keys_lookup(struct keys *k, const char *bearer, size_t len);
void keys_release(const struct key_info *ki);
/* May this key use the client model name model[0..len)? */
bool keys_model_allowed(const struct key_info *ki, const char *model, size_t len);

/* Calls fn for every key of the current table (config keys first, then the
   store's by id), disabled ones included. Holds a reference on that table,
   no lock: fn may call anything in this module. */
void keys_each(struct keys *k, void (*fn)(const struct key_info *ki, void *ud), void *ud);

/* Makes rl's key entries those of the current table (ratelimit_sync with each
   key's limit_id and limits; disabled keys are left out). */
int keys_sync_ratelimit(struct keys *k, struct ratelimit *rl, uint64_t now_ms);

/*
 * Store operations: disk I/O, for the command line and a worker thread of the
 * admin API, never an event loop. Each reloads the table when it changed
 * something. Return 0 or a negative errno, with *why (may be NULL) a static
 * message for the operator: -EINVAL (bad spec), -EEXIST (name taken),
 * -ENOENT (no such key), -EPERM (a key of the config file), -ENOSPC
 * (KEYS_MAX keys), -ENOTSUP (no store), -EIO (the store failed; logged).
 */
int keys_create(struct keys *k, const struct keys_spec *spec,
                char plaintext[KEYS_PLAINTEXT_LEN + 1], int64_t *id, const char **why);
/* target: an id (all digits) or a name. */
int keys_set_disabled(struct keys *k, const char *target, bool disabled, const char **why);
int keys_delete(struct keys *k, const char *target, const char **why);
bool keys_has_store(struct keys *k);

/* A fresh random key, KEYS_PLAINTEXT_LEN characters + NUL. Returns 0 or -errno. */
int keys_generate(char out[KEYS_PLAINTEXT_LEN + 1]);

/* One key as a JSON object (no secret), for the admin API and `keys list --json`. */
void keys_write_json(struct buf *out, const struct key_info *ki);

#endif
