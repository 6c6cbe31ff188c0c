/* Unit tests for keys: issuing into a temporary SQLite store, lookup by the
   plaintext (and only by it), disable / enable / delete, a second process's
   change picked up by refresh (through the command line's entry point),
   static keys from a config, WAL mode and what the file holds, references
   surviving a swap, validation, and lookups racing a writer. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "config/config.h"
#include "admit/keys.h"
#include "cmd/cmd.h"
#include "admit/ratelimit.h"

static char dir[256];
static char store[300];

static int setup(void **state)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/unbusy-keys-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    assert_non_null(mkdtemp(dir));
    snprintf(store, sizeof store, "%s/keys.db", dir);
    return 0;
}

static int teardown(void **state)
{
    const char *suffix[] = {"", "-wal", "-shm", "-journal"};
    char path[400];
    for (size_t i = 0; i < 4; i++) {
        snprintf(path, sizeof path, "%s%s", store, suffix[i]);
        unlink(path);
    }
    snprintf(path, sizeof path, "%s/out.txt", dir);
    unlink(path);
    rmdir(dir);
    return 0;
}

static struct keys *open_store(const struct cfg_key *statics, size_t n)
{
    struct keys *k = NULL;
    char err[256] = "";
    int rc = keys_new(store, statics, n, &k, err, sizeof err);
    if (rc) fprintf(stderr, "keys_new: %s\n", err);
    assert_int_equal(rc, 0);
    return k;
}

static int64_t create(struct keys *k, const char *name, char plaintext[KEYS_PLAINTEXT_LEN + 1])
{
    struct keys_spec spec = {.name = name, .priority = KEYS_PRIORITY_DEFAULT};
    int64_t id = 0;
    const char *why = NULL;
    assert_int_equal(keys_create(k, &spec, plaintext, &id, &why), 0);
    assert_true(id > 0);
    return id;
}

static bool found(struct keys *k, const char *plaintext)
{
    const struct key_info *ki = keys_lookup(k, plaintext, strlen(plaintext));
    keys_release(ki);
    return ki != NULL;
}

static bool is_base62(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static void test_generate(void **state)
{
    char a[KEYS_PLAINTEXT_LEN + 1], b[KEYS_PLAINTEXT_LEN + 1];
    assert_int_equal(keys_generate(a), 0);
    assert_int_equal(keys_generate(b), 0);
    assert_int_equal(strlen(a), 46);
    assert_memory_equal(a, "sk-ub-", 6);
    for (size_t i = 6; i < 46; i++)
        assert_true(is_base62(a[i]));
    assert_string_not_equal(a, b);
}

static void test_create_list_lookup(void **state)
{
    struct keys *k = open_store(NULL, 0);
    assert_true(keys_has_store(k));
    assert_int_equal(keys_count(k), 0); /* nothing issued yet */

    const char *models[] = {"deepseek-r1", "deepseek-v3"};
    struct keys_spec spec = {.name = "team-a",
                             .models = models,
                             .nmodels = 2,
                             .priority = 0,
                             .rpm = 60,
                             .tpm = 100000,
                             .max_concurrency = 4};
    char key[KEYS_PLAINTEXT_LEN + 1];
    int64_t id = 0;
    const char *why = "x";
    time_t before = time(NULL);
    assert_int_equal(keys_create(k, &spec, key, &id, &why), 0);
    assert_null(why);
    assert_int_equal(id, 1);
    assert_int_equal(strlen(key), KEYS_PLAINTEXT_LEN);
    assert_int_equal(keys_count(k), 1);
    assert_int_equal(keys_count(k), 1);

    const struct key_info *ki = keys_lookup(k, key, strlen(key));
    assert_non_null(ki);
    assert_int_equal(ki->id, 1);
    assert_string_equal(ki->name, "team-a");
    assert_memory_equal(ki->prefix, key + 6, 8);
    assert_int_equal(strlen(ki->prefix), 8);
    assert_int_equal(ki->nmodels, 2);
    assert_string_equal(ki->models[1], "deepseek-v3");
    assert_int_equal(ki->priority, 0);
    assert_int_equal(ki->rpm, 60);
    assert_int_equal(ki->tpm, 100000);
    assert_int_equal(ki->max_concurrency, 4);
    assert_false(ki->disabled);
    assert_false(ki->from_config);
    assert_string_equal(ki->limit_id, "id:1");
    assert_true(ki->created_at >= before && ki->created_at <= time(NULL));
    assert_true(keys_model_allowed(ki, "deepseek-r1", 11));
    assert_false(keys_model_allowed(ki, "deepseek-r1x", 12));
    assert_false(keys_model_allowed(ki, "deepseek-r", 10));
    keys_release(ki);

    /* The header value works too, with any case of "Bearer". */
    char header[80];
    snprintf(header, sizeof header, "bearer %s", key);
    assert_true(found(k, header));
    /* Anything else is not found: one character changed, cut short, longer, empty. */
    char wrong[KEYS_PLAINTEXT_LEN + 2];
    memcpy(wrong, key, sizeof key);
    wrong[20] = wrong[20] == 'A' ? 'B' : 'A';
    assert_false(found(k, wrong));
    assert_null(keys_lookup(k, key, KEYS_PLAINTEXT_LEN - 1));
    memcpy(wrong, key, KEYS_PLAINTEXT_LEN);
    wrong[KEYS_PLAINTEXT_LEN] = 'x';
    wrong[KEYS_PLAINTEXT_LEN + 1] = '\0';
    assert_false(found(k, wrong));
    assert_null(keys_lookup(k, "", 0));
    assert_null(keys_lookup(k, "Bearer ", 7));

    /* A second key with no models may use any; the name must be new. */
    char key2[KEYS_PLAINTEXT_LEN + 1];
    assert_int_equal(create(k, "team-b", key2), 2);
    ki = keys_lookup(k, key2, strlen(key2));
    assert_non_null(ki);
    assert_int_equal(ki->nmodels, 0);
    assert_int_equal(ki->priority, 1);
    assert_true(keys_model_allowed(ki, "anything", 8));
    keys_release(ki);
    struct keys_spec dup = {.name = "team-a", .priority = 1};
    assert_int_equal(keys_create(k, &dup, key2, &id, &why), -EEXIST);
    assert_string_equal(why, "a key with this name exists");
    assert_string_equal(key2, ""); /* no key on failure */
    keys_free(k);

    /* Another process opening the file sees both. */
    k = open_store(NULL, 0);
    assert_int_equal(keys_count(k), 2);
    assert_true(found(k, key));
    keys_free(k);
}

static void test_disable_enable_delete(void **state)
{
    struct keys *k = open_store(NULL, 0);
    char a[KEYS_PLAINTEXT_LEN + 1], b[KEYS_PLAINTEXT_LEN + 1];
    int64_t ida = create(k, "a", a);
    create(k, "b", b);
    const char *why;
    assert_int_equal(keys_set_disabled(k, "a", true, &why), 0);
    assert_false(found(k, a)); /* disabled is not found */
    assert_true(found(k, b));
    assert_int_equal(keys_count(k), 2); /* still there */
    char id[16];
    snprintf(id, sizeof id, "%lld", (long long)ida);
    assert_int_equal(keys_set_disabled(k, id, false, &why), 0); /* by id */
    assert_true(found(k, a));
    assert_int_equal(keys_set_disabled(k, "nobody", true, &why), -ENOENT);
    assert_string_equal(why, "no such key");
    assert_int_equal(keys_set_disabled(k, "999", true, &why), -ENOENT);
    assert_int_equal(keys_set_disabled(k, "bad name!", true, &why), -ENOENT);
    assert_int_equal(keys_delete(k, "a", &why), 0);
    assert_false(found(k, a));
    assert_int_equal(keys_delete(k, id, &why), -ENOENT);
    assert_int_equal(keys_delete(k, "b", &why), 0);
    assert_int_equal(keys_count(k), 0); /* no key left */
    /* Ids are never reused. */
    assert_int_equal(create(k, "c", a), 3);
    keys_free(k);
}

static void count_cb(struct keys *k, void *ud)
{
    (*(int *)ud)++;
}

/* Runs keys_cli_main with stdout going to a file; returns the status, out gets stdout. */
static int run_cli(char *out, size_t cap, const char *const *args)
{
    char *argv[16];
    int argc = 0;
    for (; args[argc]; argc++)
        argv[argc] = (char *)args[argc];
    argv[argc] = NULL;
    char path[400];
    snprintf(path, sizeof path, "%s/out.txt", dir);
    fflush(stdout);
    int saved = dup(1);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(saved >= 0 && fd >= 0);
    dup2(fd, 1);
    close(fd);
    int rc = keys_cli_main(argc, argv);
    fflush(stdout);
    dup2(saved, 1);
    close(saved);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t n = fread(out, 1, cap - 1, f);
    out[n] = '\0';
    fclose(f);
    return rc;
}

static void test_refresh_sees_cli_changes(void **state)
{
    struct keys *gw = open_store(NULL, 0); /* the running gateway */
    int changes = 0;
    keys_on_change(gw, count_cb, &changes);
    assert_int_equal(keys_refresh(gw), 0); /* nothing changed */

    char out[4096];
    const char *create_args[] = {"keys",     "create",    "--name",       "ci",
                                 "--models", "m1, m2,m1", "--priority=2", "--rpm",
                                 "30",       "--store",   store,          NULL};
    assert_int_equal(run_cli(out, sizeof out, create_args), 0);
    assert_int_equal(strlen(out), KEYS_PLAINTEXT_LEN + 1); /* the key and a newline, nothing else */
    out[KEYS_PLAINTEXT_LEN] = '\0';
    char key[KEYS_PLAINTEXT_LEN + 1];
    memcpy(key, out, sizeof key);

    assert_false(found(gw, key)); /* not until it looks */
    assert_int_equal(keys_refresh(gw), 1);
    assert_int_equal(changes, 1);
    const struct key_info *ki = keys_lookup(gw, key, strlen(key));
    assert_non_null(ki);
    assert_int_equal(ki->priority, 2);
    assert_int_equal(ki->rpm, 30);
    assert_int_equal(ki->nmodels, 2); /* the repeat dropped */
    assert_string_equal(ki->models[0], "m1");
    assert_string_equal(ki->models[1], "m2");
    keys_release(ki);
    assert_int_equal(keys_refresh(gw), 0);

    const char *disable_args[] = {"keys", "disable", "ci", "--store", store, NULL};
    assert_int_equal(run_cli(out, sizeof out, disable_args), 0);
    assert_string_equal(out, "disabled key ci\n");
    assert_true(found(gw, key));
    assert_int_equal(keys_refresh(gw), 1);
    assert_false(found(gw, key));

    const char *list_args[] = {"keys", "list", "--json", "--store", store, NULL};
    assert_int_equal(run_cli(out, sizeof out, list_args), 0);
    assert_non_null(strstr(out, "\"name\":\"ci\""));
    assert_non_null(strstr(out, "\"disabled\":true"));
    assert_non_null(strstr(out, "\"models\":[\"m1\",\"m2\"]"));
    assert_null(strstr(out, key + 6)); /* never the key */

    /* Mistakes: exit status 1 or 2 and nothing changed. */
    const char *enable_missing[] = {"keys", "enable", "nope", "--store", store, NULL};
    assert_int_equal(run_cli(out, sizeof out, enable_missing), 1);
    const char *bad_rpm[] = {"keys", "create",  "--name", "x", "--rpm",
                             "-1",   "--store", store,    NULL};
    assert_int_equal(run_cli(out, sizeof out, bad_rpm), 2);
    const char *no_name[] = {"keys", "create", "--store", store, NULL};
    assert_int_equal(run_cli(out, sizeof out, no_name), 2);
    const char *unknown[] = {"keys", "rotate", "ci", "--store", store, NULL};
    assert_int_equal(run_cli(out, sizeof out, unknown), 2);
    const char *both[] = {"keys", "list", "--store", store, "--config", "x.yaml", NULL};
    assert_int_equal(run_cli(out, sizeof out, both), 2);
    assert_int_equal(keys_refresh(gw), 0);

    const char *delete_args[] = {"keys", "delete", "1", "--store", store, NULL};
    assert_int_equal(run_cli(out, sizeof out, delete_args), 0);
    assert_int_equal(keys_refresh(gw), 1);
    assert_int_equal(keys_count(gw), 0);
    assert_int_equal(changes, 3);
    keys_free(gw);
}

/* The watcher thread reloads by itself; poll for it (bounded) rather than sleep. */
static void test_watcher(void **state)
{
    struct keys *gw = open_store(NULL, 0);
    assert_int_equal(keys_watch(gw, 10), 0);
    assert_int_equal(keys_watch(gw, 10), -EALREADY);
    struct keys *cli = open_store(NULL, 0);
    char key[KEYS_PLAINTEXT_LEN + 1];
    create(cli, "w", key);
    keys_free(cli);
    bool seen = false;
    for (int i = 0; i < 5000 && !seen; i++) {
        seen = found(gw, key);
        if (!seen) nanosleep(&(struct timespec){0, 1000000}, NULL);
    }
    assert_true(seen);
    keys_free(gw); /* stops and joins the watcher */
}

static struct config *load_config(const char *text)
{
    struct config *c = NULL;
    struct config_errors errs;
    config_errors_init(&errs);
    int rc = config_load_text("t.yaml", text, strlen(text), &c, &errs);
    if (rc) fprintf(stderr, "%s", errs.text.data);
    assert_int_equal(rc, 0);
    config_errors_free(&errs);
    return c;
}

#define CONFIG_WITH_KEYS                                                                           \
    "providers:\n  p: {base_url: 'http://127.0.0.1:9'}\n"                                          \
    "models:\n  m1: [{provider: p, model: x}]\n  m2: [{provider: p, model: y}]\n"                  \
    "keys:\n"                                                                                      \
    "  - {name: static-a, key: sk-ub-STATICaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa, models: m1,"    \
    " rpm: 5}\n"                                                                                   \
    "  - {name: legacy, key: legacy-secret-0123456789, priority: 3}\n"

static void test_static_keys(void **state)
{
    struct config *cfg = load_config(CONFIG_WITH_KEYS);
    struct keys *k = NULL;
    char err[256];
    assert_int_equal(keys_new(NULL, cfg->keys, cfg->nkeys, &k, err, sizeof err), 0);
    config_unref(cfg); /* the keys were copied */
    assert_false(keys_has_store(k));
    assert_int_not_equal(keys_count(k), 0);
    const char *static_a = "sk-ub-STATICaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const struct key_info *ki = keys_lookup(k, static_a, strlen(static_a));
    assert_non_null(ki);
    assert_string_equal(ki->name, "static-a");
    assert_true(ki->from_config);
    assert_int_equal(ki->id, 0);
    assert_string_equal(ki->prefix, "STATICaa");
    assert_string_equal(ki->limit_id, "config:static-a");
    assert_int_equal(ki->rpm, 5);
    assert_true(keys_model_allowed(ki, "m1", 2));
    assert_false(keys_model_allowed(ki, "m2", 2));
    keys_release(ki);
    ki = keys_lookup(k, "legacy-secret-0123456789", 24);
    assert_non_null(ki);
    assert_string_equal(ki->prefix, ""); /* not one of ours: nothing shown */
    assert_int_equal(ki->priority, 3);
    keys_release(ki);
    assert_false(found(k, "legacy-secret-012345678"));

    /* No store: nothing can be issued or changed here. */
    char key[KEYS_PLAINTEXT_LEN + 1];
    struct keys_spec spec = {.name = "x", .priority = 1};
    const char *why;
    assert_int_equal(keys_create(k, &spec, key, NULL, &why), -ENOTSUP);
    assert_int_equal(keys_set_disabled(k, "legacy", true, &why), -EPERM);
    assert_int_equal(keys_set_disabled(k, "other", true, &why), -ENOTSUP);

    /* A config reload replaces them. */
    assert_int_equal(keys_set_static(k, NULL, 0), 0);
    assert_false(found(k, "legacy-secret-0123456789"));
    assert_int_equal(keys_count(k), 0);
    keys_free(k);

    /* With a store, both kinds; a config key cannot be changed there nor its name reused. */
    cfg = load_config(CONFIG_WITH_KEYS);
    k = open_store(cfg->keys, cfg->nkeys);
    config_unref(cfg);
    char issued[KEYS_PLAINTEXT_LEN + 1];
    create(k, "issued", issued);
    assert_int_equal(keys_count(k), 3);
    assert_true(found(k, issued));
    assert_true(found(k, "legacy-secret-0123456789"));
    assert_int_equal(keys_set_disabled(k, "legacy", true, &why), -EPERM);
    assert_int_equal(keys_delete(k, "static-a", &why), -EPERM);
    spec.name = "legacy";
    assert_int_equal(keys_create(k, &spec, key, NULL, &why), -EEXIST);
    /* Config keys come first in a listing. */
    struct ratelimit *rl = ratelimit_new(16);
    assert_int_equal(keys_sync_ratelimit(k, rl, 1000), 0);
    struct ratelimit_status st;
    ratelimit_status(rl, "config:static-a", NULL, 1000, &st);
    assert_int_equal(st.limit_requests, 5);
    ratelimit_status(rl, "id:1", NULL, 1000, &st);
    assert_false(st.requests_limited); /* issued without limits */
    ratelimit_free(rl);
    keys_free(k);
}

static void test_store_file(void **state)
{
    struct keys *k = open_store(NULL, 0);
    char key[KEYS_PLAINTEXT_LEN + 1];
    create(k, "filed", key);
    keys_free(k);

    struct stat sb;
    assert_int_equal(stat(store, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);

    sqlite3 *db;
    assert_int_equal(sqlite3_open(store, &db), SQLITE_OK);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
    sqlite3_finalize(st);
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT prefix, hash, models FROM keys", -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_memory_equal(sqlite3_column_text(st, 0), key + 6, 8);
    assert_int_equal(strlen((const char *)sqlite3_column_text(st, 1)), 64);
    assert_string_equal((const char *)sqlite3_column_text(st, 2), "[]");
    sqlite3_finalize(st);

    /* Rows written by hand: one valid (comma list of models), some not. */
    assert_int_equal(
        sqlite3_exec(db,
                     "INSERT INTO keys (name, prefix, hash, models, created_at) VALUES"
                     " ('by-hand', 'x', "
                     /* sha256("sk-by-hand-key") */
                     "'e72756d542841242b769323a329215bab4bd8ea6d398fe26b0cce438596fb42d',"
                     " ' a ,b', 1),"
                     " ('badhash', 'x', 'zz', '', 1),"
                     " ('badmodels', 'x', "
                     "'00000000000000000000000000000000000000000000000000000000000000aa',"
                     " '[1]', 1),"
                     " ('123', 'x', "
                     "'00000000000000000000000000000000000000000000000000000000000000bb',"
                     " '', 1)",
                     NULL, NULL, NULL),
        SQLITE_OK);
    sqlite3_close(db);

    k = open_store(NULL, 0);
    assert_int_equal(keys_count(k), 2); /* the broken rows are skipped */
    assert_true(found(k, key));
    const struct key_info *ki = keys_lookup(k, "sk-by-hand-key", 14);
    assert_non_null(ki);
    assert_int_equal(ki->nmodels, 2);
    assert_string_equal(ki->models[0], "a");
    assert_string_equal(ki->models[1], "b");
    keys_release(ki);
    keys_free(k);

    /* Not a database at all. */
    FILE *f = fopen(store, "w");
    fputs("this is not a database, just text long enough to look like a header.....\n", f);
    fclose(f);
    char wal[400];
    snprintf(wal, sizeof wal, "%s-wal", store);
    unlink(wal);
    snprintf(wal, sizeof wal, "%s-shm", store);
    unlink(wal);
    char err[256] = "";
    assert_int_equal(keys_new(store, NULL, 0, &k, err, sizeof err), -1);
    assert_non_null(strstr(err, "key_store "));
    char missing[400];
    snprintf(missing, sizeof missing, "%s/missing/keys.db", dir);
    assert_int_equal(keys_new(missing, NULL, 0, &k, err, sizeof err), -1);
    assert_non_null(strstr(err, "No such file"));
}

/* A key found before a swap stays readable until released. */
static void test_reference_survives_swap(void **state)
{
    struct keys *k = open_store(NULL, 0);
    char key[KEYS_PLAINTEXT_LEN + 1];
    create(k, "held", key);
    const struct key_info *ki = keys_lookup(k, key, strlen(key));
    assert_non_null(ki);
    const char *why;
    assert_int_equal(keys_delete(k, "held", &why), 0);
    assert_int_equal(keys_reload(k), 0);
    assert_false(found(k, key));
    assert_string_equal(ki->name, "held"); /* ASan would flag a freed table here */
    keys_release(ki);
    keys_free(k);
}

static void test_validation(void **state)
{
    struct keys *k = open_store(NULL, 0);
    char key[KEYS_PLAINTEXT_LEN + 1];
    const char *why;
    const char *many[KEYS_MAX_MODELS + 1];
    for (size_t i = 0; i <= KEYS_MAX_MODELS; i++)
        many[i] = "m";
    const char *bad_model[] = {"a,b"};
    const char *empty_model[] = {""};
    struct keys_spec bad[] = {
        {.name = NULL},
        {.name = ""},
        {.name = "42"},
        {.name = "has space"},
        {.name = "ok", .priority = 4},
        {.name = "ok", .priority = -1},
        {.name = "ok", .rpm = KEYS_MAX_RPM + 1},
        {.name = "ok", .max_concurrency = KEYS_MAX_CONCURRENCY + 1},
        {.name = "ok", .models = many, .nmodels = KEYS_MAX_MODELS + 1},
        {.name = "ok", .models = bad_model, .nmodels = 1},
        {.name = "ok", .models = empty_model, .nmodels = 1},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(keys_create(k, &bad[i], key, NULL, &why), -EINVAL);
        assert_non_null(why);
    }
    assert_int_equal(keys_count(k), 0);
    struct keys_spec max = {
        .name = "max", .tpm = KEYS_MAX_TPM, .models = many, .nmodels = KEYS_MAX_MODELS};
    assert_int_equal(keys_create(k, &max, key, NULL, &why), 0);
    keys_free(k);
}

struct race {
    struct keys *k;
    const char *key;
    atomic_bool stop;
    unsigned lookups, misses;
};

/* cmocka's asserts belong to the main thread: count, assert after the join. */
static void *reader(void *arg)
{
    struct race *r = arg;
    do { /* at least one lookup, however late the thread is scheduled */
        const struct key_info *ki = keys_lookup(r->k, r->key, strlen(r->key));
        if (!ki || strcmp(ki->name, "stable") != 0) r->misses++;
        keys_release(ki);
        r->lookups++;
    } while (!atomic_load(&r->stop));
    return NULL;
}

/* Readers on the request path while a writer issues and deletes keys. */
static void test_readers_and_writer(void **state)
{
    struct keys *k = open_store(NULL, 0);
    char key[KEYS_PLAINTEXT_LEN + 1], other[KEYS_PLAINTEXT_LEN + 1];
    create(k, "stable", key);
    struct race r[4];
    pthread_t t[4];
    for (int i = 0; i < 4; i++) {
        r[i] = (struct race){.k = k, .key = key};
        atomic_init(&r[i].stop, false);
        assert_int_equal(pthread_create(&t[i], NULL, reader, &r[i]), 0);
    }
    const char *why;
    for (int i = 0; i < 20; i++) {
        create(k, "churn", other);
        assert_int_equal(keys_delete(k, "churn", &why), 0);
    }
    for (int i = 0; i < 4; i++) {
        atomic_store(&r[i].stop, true);
        pthread_join(t[i], NULL);
        assert_int_equal(r[i].misses, 0); /* the stable key never disappeared */
        assert_true(r[i].lookups > 0);
    }
    assert_int_equal(keys_count(k), 1);
    keys_free(k);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_generate),
        T(test_create_list_lookup),
        T(test_disable_enable_delete),
        T(test_refresh_sees_cli_changes),
        T(test_watcher),
        T(test_static_keys),
        T(test_store_file),
        T(test_reference_survives_swap),
        T(test_validation),
        T(test_readers_and_writer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
