/*
 * `unbusy keys ...`: the operator's command line to the key store
 * (admit/keys.h), through keys_create / keys_set_disabled / keys_delete. The
 * admin API's /admin/keys endpoints are api/admin_keys.c.
 */
#include "admit/keys.h"

#include <cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

#include "base/cli.h"
#include "cmd/cmd.h"


/* ---- the command line ---- */

static void usage(FILE *f)
{
    fprintf(f, "usage: unbusy keys COMMAND [--store FILE | --config FILE]\n"
               "  create --name NAME [--models A,B] [--priority 0-3] [--rpm N] [--tpm N]\n"
               "         [--max-concurrency N]   issue a key; prints it once, on stdout\n"
               "  list [--json]                  every key (config file and store)\n"
               "  disable ID|NAME                refuse the key from now on\n"
               "  enable ID|NAME\n"
               "  delete ID|NAME\n"
               "  --store FILE    the SQLite key store\n"
               "  --config FILE   take key_store (and the config's keys) from FILE\n"
               "                  (default: unbusy.yaml, when --store is not given)\n"
               "A running unbusy using the same store sees a change within a few seconds.\n");
}

struct cli {
    const char *command, *target, *store, *config;
    const char *name, *models;
    const char *priority, *rpm, *tpm, *max_concurrency;
    bool json;
};

static int parse_args(int argc, char **argv, struct cli *a)
{
    memset(a, 0, sizeof *a);
    if (argc < 2) return -1;
    a->command = argv[1];
    for (int i = 2; i < argc; i++) {
        const char **slot = NULL, *v = NULL;
        static const char *const names[] = {"--store",  "--config",         "--name",
                                            "--models", "--priority",       "--rpm",
                                            "--tpm",    "--max-concurrency"};
        const char **slots[] = {&a->store,    &a->config, &a->name, &a->models,
                                &a->priority, &a->rpm,    &a->tpm,  &a->max_concurrency};
        for (size_t j = 0; j < sizeof names / sizeof names[0] && !slot; j++)
            if (cli_option(argc, argv, &i, names[j], &v, "unbusy keys")) slot = slots[j];
        if (slot) {
            if (!v) return -1;
            *slot = v;
        } else if (strcmp(argv[i], "--json") == 0) {
            a->json = true;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "unbusy keys: unknown option '%s'\n", argv[i]);
            return -1;
        } else if (!a->target) {
            a->target = argv[i];
        } else {
            fprintf(stderr, "unbusy keys: unexpected argument '%s'\n", argv[i]);
            return -1;
        }
    }
    if (a->store && a->config) {
        fprintf(stderr, "unbusy keys: give --store or --config, not both\n");
        return -1;
    }
    return 0;
}

static int parse_u32(const char *opt, const char *s, uint32_t max, uint32_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = s && *s >= '0' && *s <= '9' ? strtoull(s, &end, 10) : 0;
    if (!s || *s < '0' || *s > '9' || *end || errno || v > max) {
        fprintf(stderr, "unbusy keys: %s: expected an integer from 0 to %" PRIu32 "\n", opt, max);
        return -1;
    }
    *out = (uint32_t)v;
    return 0;
}

/* Splits "a, b,c" (trimmed, repeats dropped) into list (pointers into text). */
static int split_models(char *text, const char **list, size_t *n)
{
    *n = 0;
    for (char *save = NULL, *tok = strtok_r(text, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ')
            tok++;
        size_t len = strlen(tok);
        while (len && tok[len - 1] == ' ')
            tok[--len] = '\0';
        bool seen = false;
        for (size_t i = 0; i < *n; i++)
            seen |= strcmp(list[i], tok) == 0;
        if (seen || !*tok) continue;
        if (*n == KEYS_MAX_MODELS) {
            fprintf(stderr, "unbusy keys: --models: at most %d models\n", KEYS_MAX_MODELS);
            return -1;
        }
        list[(*n)++] = tok;
    }
    return 0;
}

/* Opens the store named by --store, or the config's key_store (with its keys). */
static int open_keys(const struct cli *a, bool need_store, struct keys **k, struct config **cfg)
{
    char err[512];
    *cfg = NULL;
    if (a->store) {
        if (keys_new(a->store, NULL, 0, k, err, sizeof err) == 0) return 0;
        fprintf(stderr, "unbusy keys: %s\n", err);
        return -1;
    }
    const char *path = a->config ? a->config : "unbusy.yaml";
    struct config_errors errs;
    config_errors_init(&errs);
    int rc = config_load_file(path, cfg, &errs);
    if (errs.text.len) fputs(errs.text.data, stderr);
    config_errors_free(&errs);
    if (rc) {
        fprintf(stderr, "unbusy keys: %s: configuration has errors\n", path);
        return -1;
    }
    if (need_store && !(*cfg)->key_store) {
        fprintf(stderr, "unbusy keys: %s has no key_store; add `key_store: FILE` or give --store\n",
                path);
        config_unref(*cfg);
        return -1;
    }
    if (keys_new((*cfg)->key_store, (*cfg)->keys, (*cfg)->nkeys, k, err, sizeof err) == 0) return 0;
    fprintf(stderr, "unbusy keys: %s\n", err);
    config_unref(*cfg);
    return -1;
}

static int cli_create(const struct cli *a, struct keys *k, const struct config *cfg)
{
    struct keys_spec spec = {.name = a->name, .priority = KEYS_PRIORITY_DEFAULT};
    uint32_t priority = KEYS_PRIORITY_DEFAULT;
    if (!a->name) {
        fprintf(stderr, "unbusy keys create: --name is required\n");
        return 2;
    }
    if ((a->priority && parse_u32("--priority", a->priority, KEYS_PRIORITY_MAX, &priority)) ||
        (a->rpm && parse_u32("--rpm", a->rpm, KEYS_MAX_RPM, &spec.rpm)) ||
        (a->tpm && parse_u32("--tpm", a->tpm, KEYS_MAX_TPM, &spec.tpm)) ||
        (a->max_concurrency && parse_u32("--max-concurrency", a->max_concurrency,
                                         KEYS_MAX_CONCURRENCY, &spec.max_concurrency)))
        return 2;
    spec.priority = (int)priority;
    const char *models[KEYS_MAX_MODELS];
    char *text = a->models ? strdup(a->models) : NULL;
    if (text && split_models(text, models, &spec.nmodels)) {
        free(text);
        return 2;
    }
    spec.models = models;
    for (size_t i = 0; cfg && i < spec.nmodels; i++)
        if (!config_find_model(cfg, models[i])) {
            fprintf(stderr, "unbusy keys create: unknown model \"%s\" (not in %s)\n", models[i],
                    cfg->source);
            free(text);
            return 1;
        }
    char plaintext[KEYS_PLAINTEXT_LEN + 1];
    int64_t id = 0;
    const char *why = NULL;
    int rc = keys_create(k, &spec, plaintext, &id, &why);
    free(text);
    if (rc) {
        fprintf(stderr, "unbusy keys create: %s\n", why ? why : strerror(-rc));
        return 1;
    }
    printf("%s\n", plaintext);
    fflush(stdout);
    OPENSSL_cleanse(plaintext, sizeof plaintext);
    fprintf(stderr,
            "created key %" PRId64 " \"%s\". This is the only time the key is shown: "
            "store it now.\n",
            id, a->name);
    return 0;
}

static void print_row(const struct key_info *ki, void *ud)
{
    char id[24], prefix[32], created[32] = "-", limits[64];
    if (ki->from_config)
        snprintf(id, sizeof id, "config");
    else
        snprintf(id, sizeof id, "%" PRId64, ki->id);
    if (ki->prefix[0])
        snprintf(prefix, sizeof prefix, KEYS_PREFIX "%s...", ki->prefix);
    else
        snprintf(prefix, sizeof prefix, "-");
    if (ki->created_at) {
        time_t t = (time_t)ki->created_at;
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(created, sizeof created, "%Y-%m-%dT%H:%M:%SZ", &tm);
    }
    snprintf(limits, sizeof limits, "%" PRIu32 "/%" PRIu32 "/%" PRIu32, ki->rpm, ki->tpm,
             ki->max_concurrency);
    printf("%-7s %-24s %-18s %-8s %3d  %-22s %-20s ", id, ki->name, prefix,
           ki->disabled ? "disabled" : "active", ki->priority, limits, created);
    if (ki->nmodels == 0) printf("*");
    for (size_t i = 0; i < ki->nmodels; i++)
        printf("%s%s", i ? "," : "", ki->models[i]);
    printf("\n");
}

static void json_row(const struct key_info *ki, void *ud)
{
    struct buf *b = ud;
    if (b->len > 1) buf_append_str(b, ",");
    keys_write_json(b, ki);
}

static int cli_list(const struct cli *a, struct keys *k, const struct config *cfg)
{
    if (a->json) {
        struct buf b;
        buf_init(&b, 1u << 30);
        buf_append_str(&b, "[");
        keys_each(k, json_row, &b);
        buf_append_str(&b, "]\n");
        fwrite(b.data, 1, b.len, stdout);
        buf_free(&b);
        return 0;
    }
    if (keys_count(k) == 0) {
        /* Only the config opens the gateway; a store without keys refuses everyone. */
        if (cfg && cfg->auth.open)
            printf("no keys: auth is open, the gateway serves anyone who can reach it\n");
        else
            printf("no keys: every request is refused (401) until one is created\n");
        return 0;
    }
    printf("%-7s %-24s %-18s %-8s %3s  %-22s %-20s %s\n", "ID", "NAME", "KEY", "STATUS", "PRI",
           "RPM/TPM/CONCURRENCY", "CREATED", "MODELS");
    keys_each(k, print_row, NULL);
    return 0;
}

static int cli_change(const struct cli *a, struct keys *k)
{
    if (!a->target) {
        fprintf(stderr, "unbusy keys %s: which key? give its ID or NAME\n", a->command);
        return 2;
    }
    const char *why = NULL;
    int rc;
    if (strcmp(a->command, "delete") == 0)
        rc = keys_delete(k, a->target, &why);
    else
        rc = keys_set_disabled(k, a->target, strcmp(a->command, "disable") == 0, &why);
    if (rc) {
        fprintf(stderr, "unbusy keys %s %s: %s\n", a->command, a->target,
                why ? why : strerror(-rc));
        return 1;
    }
    printf("%sd key %s\n", a->command, a->target); /* disabled, enabled, deleted */
    return 0;
}

int keys_cli_main(int argc, char **argv)
{
    struct cli a;
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        usage(stdout);
        return 0;
    }
    if (parse_args(argc, argv, &a)) {
        usage(stderr);
        return 2;
    }
    bool create = strcmp(a.command, "create") == 0, list = strcmp(a.command, "list") == 0;
    bool change = strcmp(a.command, "disable") == 0 || strcmp(a.command, "enable") == 0 ||
                  strcmp(a.command, "delete") == 0;
    if (!create && !list && !change) {
        fprintf(stderr, "unbusy keys: unknown command '%s'\n", a.command);
        usage(stderr);
        return 2;
    }
    if ((create && a.target) ||
        (!create && (a.name || a.models || a.priority || a.rpm || a.tpm || a.max_concurrency)) ||
        (list && a.target) || (!list && a.json)) {
        fprintf(stderr, "unbusy keys %s: unexpected argument\n", a.command);
        usage(stderr);
        return 2;
    }
    struct keys *k;
    struct config *cfg;
    if (open_keys(&a, !list, &k, &cfg)) return 1;
    int rc = create ? cli_create(&a, k, cfg) : list ? cli_list(&a, k, cfg) : cli_change(&a, k);
    keys_free(k);
    config_unref(cfg);
    return rc;
}
