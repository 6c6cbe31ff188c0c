/*
 * main — command line, configuration, workers and signals.
 *
 *   unbusy [--config FILE]      serve (default config file: unbusy.yaml)
 *   unbusy --check --config F   validate, print every problem, exit 0 or 1
 *   unbusy --demo               serve the built-in demo on 127.0.0.1:8080
 *   unbusy keys COMMAND ...     issue and manage API keys (keys_cli.c)
 *
 * SIGTERM / SIGINT / SIGUSR2: not ready, drain and exit; binary upgrade (lifecycle.c).
 * SIGHUP: reload the config file (reload.c) and read the server.tls certificate and
 * key again (tls_server.c).
 * SIGUSR1: reopen the access log.
 */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#include <uv.h>

#include "obs/accesslog.h"
#include "api/api.h"
#include "config/config.h"
#include "config/config_tls.h"
#include "sim/demo.h"
#include "admit/budget.h"
#include "admit/keys.h"
#include "acct/ledger.h"
#include "base/log.h"
#include "cmd/cmd.h"
#include "obs/metrics.h"
#include "obs/metrics_engine.h"
#include "route/engine_scrape.h"
#include "obs/metrics_discovery.h"
#include "route/discovery.h"
#include "route/model_fetch.h"
#include "route/probe.h"
#include "admit/ratelimit.h"
#include "route/runtime.h"
#include "net/tls_server.h"
#include "http/server.h"
#include "proxy/proxy.h"
#include "provider/aws_creds.h"
#include "api/admin_reload.h"
#include "reload.h"
#include "admit/shared_limits.h"
#include "admit/shared_spend.h"
#include "net/redis.h"
#include "route/shared_sync.h"
#include "worker.h"
#include "lifecycle.h"
#include "upgrade.h"

#define UNBUSY_VERSION "0.1.0"
#define MAX_WORKERS 64

static struct worker workers[MAX_WORKERS];
static unsigned nworkers;

static void usage(FILE *f)
{
    fprintf(f, "usage: unbusy [--config FILE] [--check] [--demo] [--listen HOST:PORT] [--version]\n"
               "  --config FILE   configuration file (default: unbusy.yaml)\n"
               "  --check         validate the configuration, print every problem and exit\n"
               "  --demo          serve the built-in demo (simulated providers, no key needed)\n"
               "  --listen ADDR   with --demo: listen here instead of 127.0.0.1:8080\n"
               "       unbusy keys COMMAND ...   issue and manage API keys (unbusy keys --help)\n");
}

static void sync_limits(struct keys *k, void *ud)
{
    keys_sync_ratelimit(k, ud, runtime_now_ms());
}

/* The models' own request and token limits, as rate-limit entries named after the model. */
static void sync_model_limits(const struct config *cfg, struct ratelimit *rl)
{
    struct ratelimit_def *defs = calloc(cfg->nmodels ? cfg->nmodels : 1, sizeof *defs);
    size_t n = 0;
    for (size_t i = 0; defs && i < cfg->nmodels; i++) {
        if (!cfg->models[i].rpm && !cfg->models[i].tpm)
            continue;
        defs[n++] = (struct ratelimit_def){.name = cfg->models[i].name, .rpm = cfg->models[i].rpm,
                                           .tpm = cfg->models[i].tpm};
    }
    if (defs)
        ratelimit_sync(rl, RATELIMIT_MODEL, defs, n, runtime_now_ms());
    free(defs);
}

static void on_reopen(uv_signal_t *s, int signum)
{
    int rc = accesslog_reopen();
    if (rc < 0)
        log_error("SIGUSR1: cannot reopen the access log: %s", strerror(-rc));
    else
        log_info("SIGUSR1: access log reopened");
}

/* The config file again (reload.c); new handshakes get the files' current certificate,
   connections already made keep theirs. What does not load leaves what is in use. */
static void on_sighup(uv_signal_t *s, int signum)
{
    if (reload_request(RELOAD_SIGNAL, NULL, NULL) < 0)
        log_warn("SIGHUP: a reload is already pending; it will read the file");
}

static int admin_reload(admin_reload_answer_fn answer, void *ud)
{
    return reload_request(RELOAD_ADMIN, answer, ud);
}

/* The main loop's services bound to one generation (probes, model lists, the shared-state
   sync, DNS discovery): started on it, their metrics on its registry; a reload starts them
   on the next generation and stops these once no loop uses the old one (reload.c). */
struct services_ctx {
    uv_loop_t *loop;
    struct shared_limits *shared;
    struct redis_stats *redis_stats;
    struct shared_spend *spend;
};

struct services {
    struct probes *probes;
    struct model_fetches *fetches;
    struct engine_scrapes *engine_metrics;
    struct shared_sync *sync;
    struct discovery *discovery;
};

static void *services_start(struct runtime *rt, struct metrics *metrics, void *ctx)
{
    const struct services_ctx *c = ctx;
    struct services *sv = calloc(1, sizeof *sv);
    if (!sv)
        return NULL;
    sv->probes = probes_start(c->loop, rt);
    sv->fetches = model_fetch_start(c->loop, rt);
    sv->engine_metrics = engine_scrape_start(c->loop, rt);
    metrics_add_renderer(metrics, metrics_engine_renderer, rt);
    sv->sync = c->shared ? shared_sync_start(c->loop, rt, c->shared, c->redis_stats) : NULL;
    shared_sync_spend(sv->sync, c->spend);
    metrics_add_renderer(metrics, shared_sync_render, sv->sync);
    sv->discovery = discovery_start(c->loop, rt);
    metrics_add_renderer(metrics, metrics_discovery_render, rt);
    return sv;
}

static void services_stop(void *services)
{
    struct services *sv = services;
    if (!sv)
        return;
    probes_stop(sv->probes);
    model_fetch_stop(sv->fetches);
    engine_scrape_stop(sv->engine_metrics);
    shared_sync_stop(sv->sync);
    discovery_stop(sv->discovery);
    free(sv);
}

/*
 * The soft limit on open files goes up to the hard one before the workers listen
 * (nginx's worker_rlimit_nofile, without a key: the hard limit is what the
 * administrator allowed). A stream holds two descriptors (client and
 * upstream), and distributions still start services with a soft limit of
 * 1,024, which runs out (EMFILE) at about 500 concurrent streams.
 * Returns the limit in force; warns when it is below what max_connections
 * can need.
 */
static rlim_t raise_nofile(const struct cfg_server *srv, unsigned loops)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return 0;
    rlim_t was = rl.rlim_cur;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        /* an unlimited hard limit is still bounded by fs.nr_open: settle for a large value */
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0 && rl.rlim_max == RLIM_INFINITY) {
            rl.rlim_cur = 1048576;
            setrlimit(RLIMIT_NOFILE, &rl);
        }
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur != was)
        log_info("open files limit raised from %llu to %llu", (unsigned long long)was,
                 (unsigned long long)rl.rlim_cur);
    uint64_t need = 2ull * srv->max_connections * loops + 64;
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need)
        log_warn("open files limit %llu (hard %llu): server.max_connections %u x %u worker%s can "
                 "need %llu (two per streamed request); raise the hard limit (LimitNOFILE=, "
                 "ulimit -Hn) or lower max_connections",
                 (unsigned long long)rl.rlim_cur, (unsigned long long)rl.rlim_max,
                 srv->max_connections, loops, loops == 1 ? "" : "s",
                 (unsigned long long)need);
    return rl.rlim_cur;
}

static int load_config(const char *path, bool demo, const char *listen, struct config **out)
{
    struct config_errors errs;
    config_errors_init(&errs);
    int rc;
    if (demo) {
        struct buf text;
        buf_init(&text, 0);
        demo_config_text(&text, listen);
        rc = config_load_text("<demo>", text.data, text.len, out, &errs);
        buf_free(&text);
    } else {
        rc = config_load_file(path, out, &errs);
    }
    if (errs.text.len)
        fputs(errs.text.data, stderr);
    config_errors_free(&errs);
    return rc;
}

int main(int argc, char **argv)
{
    config_tls_set_loader(tls_server_check_files);
    if (argc > 1 && strcmp(argv[1], "keys") == 0)
        return keys_cli_main(argc - 1, argv + 1);
    if (argc > 1 && strcmp(argv[1], "usage") == 0)
        return usage_cli_main(argc - 1, argv + 1);
    const char *config_path = "unbusy.yaml";
    const char *listen = NULL;
    bool check = false, demo = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
            config_path = argv[++i];
        } else if (strncmp(argv[i], "--config=", 9) == 0) {
            config_path = argv[i] + 9;
        } else if (strcmp(argv[i], "--check") == 0) {
            check = true;
        } else if (strcmp(argv[i], "--demo") == 0) {
            demo = true;
        } else if (strcmp(argv[i], "--listen") == 0 && i + 1 < argc) {
            listen = argv[++i];
        } else if (strcmp(argv[i], "--version") == 0) {
            printf("unbusy %s\n", UNBUSY_VERSION);
            return 0;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "unbusy: unknown argument '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }

    struct config *cfg = NULL;
    if (load_config(config_path, demo, listen, &cfg) < 0) {
        fprintf(stderr, "unbusy: %s: configuration has errors%s\n", demo ? "<demo>" : config_path,
                check ? "" : "; not starting");
        return 1;
    }
    if (check) {
        printf("%s: ok (%zu provider%s, %zu model%s)\n", demo ? "<demo>" : config_path, cfg->nproviders,
               cfg->nproviders == 1 ? "" : "s", cfg->nmodels, cfg->nmodels == 1 ? "" : "s");
        config_unref(cfg);
        return 0;
    }

    signal(SIGPIPE, SIG_IGN);
    if (accesslog_open(cfg->server.access_log) < 0) {
        log_error("cannot open access log %s: %s", cfg->server.access_log, strerror(errno));
        return 1;
    }
    struct runtime *rt = runtime_new(cfg, proxy_env_admission_ready);
    if (!rt) {
        log_error("out of memory");
        return 1;
    }
    char kerr[256];
    struct keys *keys = NULL;
    if (keys_new(cfg->key_store, cfg->keys, cfg->nkeys, &keys, kerr, sizeof kerr) < 0) {
        log_error("keys: %s", kerr);
        return 1;
    }
    if (cfg->auth.open)
        log_warn("auth is open (%s): anyone who can reach the listener can use the gateway, and "
                 "the providers' credentials, without an API key; add keys: or key_store: to "
                 "require one",
                 cfg->auth.open_given ? "auth.open: true" : "no keys: and no key_store: in the config");
    keys_watch(keys, 0);
    struct ratelimit *rl = ratelimit_new(KEYS_MAX + 4096 + 4096);
    if (rl) {
        keys_sync_ratelimit(keys, rl, runtime_now_ms());
        keys_on_change(keys, sync_limits, rl);
        sync_model_limits(cfg, rl);
    }
    struct ledger_options lo;
    ledger_options_from_config(&lo, &cfg->ledger);
    struct ledger *ledger = NULL;
    char lerr[256];
    int lrc = ledger_open(&lo, &ledger, lerr, sizeof lerr);
    if (lrc < 0) {
        log_error("ledger: %s", lerr);
        return 1;
    }
    if (lrc == LEDGER_DEGRADED)
        log_warn("ledger: %s; requests flow, usage is counted as lost until it can be written", lerr);
    struct budgets *budgets = cfg->nbudgets ? budgets_new(cfg, ledger) : NULL;
    if (cfg->nbudgets && !budgets) {
        log_error("budgets: cannot start (out of memory or threads)");
        return 1;
    }
    nworkers = cfg->server.workers ? cfg->server.workers : 1;
    if (nworkers > MAX_WORKERS)
        nworkers = MAX_WORKERS;
    /* listeners handed over by the process this one upgrades (upgrade.h) */
    char uerr[160];
    int ninherited = upgrade_inherit(uerr, sizeof uerr);
    if (ninherited < 0)
        log_warn("upgrade: %s; binding new listeners", uerr);
    if (ninherited > 0 && !upgrade_fd_matches(upgrade_inherited_fd(0), cfg->server.listen_host,
                                              cfg->server.listen_port)) {
        log_warn("upgrade: server.listen changed; the old address is no longer served");
        upgrade_inherited_close_from(0);
        ninherited = 0;
    }
    if (ninherited > 0 && (unsigned)ninherited > nworkers)
        nworkers = (unsigned)ninherited < MAX_WORKERS ? (unsigned)ninherited : MAX_WORKERS;
    raise_nofile(&cfg->server, nworkers);
    /* keys from the container credentials endpoint: fetched and kept fresh by their own thread */
    if (aws_creds_start(cfg) < 0) {
        log_error("AWS credentials: cannot start the refresher thread");
        return 1;
    }
    struct tls_server *tls = NULL;
    if (cfg->server.tls_cert) {
        char err[512];
        tls = tls_server_new(cfg->server.tls_cert, cfg->server.tls_key, err, sizeof err);
        if (!tls) {
            log_error("server.tls: %s", err);
            return 1;
        }
    }
    struct metrics *metrics = metrics_new(rt, nworkers); /* NULL (no memory): serve without metrics */
    metrics_set_sources(metrics, ledger, budgets);
    /* redis: limits and breakers shared across replicas; one client per loop (net/redis.h) */
    static struct redis_stats redis_stats;
    static char redis_names[MAX_WORKERS][24];
    struct shared_limits *shared = cfg->redis ? shared_limits_new(cfg->redis) : NULL;
    /* budgets count the other replicas' spend too (reported by the main loop's sync) */
    struct shared_spend *spend =
        shared && budgets ? shared_spend_new(cfg, cfg->redis, ledger) : NULL;
    if ((cfg->redis && !shared) || (shared && budgets && !spend)) {
        log_error("redis: out of memory");
        return 1;
    }
    budgets_share(budgets, spend);
    /* Signals are ours before the first worker listens: a SIGTERM right after /healthz answers
       must drain, not kill. */
    uv_loop_t *main_loop = uv_default_loop();
    uv_signal_t sigusr1, sighup;
    lifecycle_start(main_loop, workers, nworkers, &cfg->server, argv);
    uv_signal_init(main_loop, &sigusr1);
    uv_signal_start(&sigusr1, on_reopen, SIGUSR1);
    uv_unref((uv_handle_t *)&sigusr1);
    uv_signal_init(main_loop, &sighup);
    uv_signal_start(&sighup, on_sighup, SIGHUP); /* reload_start comes before the loop runs */
    uv_unref((uv_handle_t *)&sighup);
    /* The listener never names a handler: the API's routing table is wired in here. */
    static const struct server_handlers handlers = {.on_head = api_on_head, .on_request = api_dispatch};
    static const struct admin_reload_ops reload_ops = {.request = admin_reload, .describe = reload_describe};
    admin_reload_set_ops(&reload_ops);
    /* The main loop's services (probes, model lists, engine scrapes, the Redis sync, discovery)
       register their metrics before a worker can render /metrics. */
    static struct services_ctx services_ctx;
    services_ctx = (struct services_ctx){
        .loop = main_loop, .shared = shared, .redis_stats = &redis_stats, .spend = spend};
    void *services = services_start(rt, metrics, &services_ctx);
    if (!services) {
        log_error("out of memory");
        return 1;
    }
    uint16_t port = cfg->server.listen_port;
    for (unsigned i = 0; i < nworkers; i++) {
        uint16_t bound = 0;
        int fd = (int)i < ninherited ? upgrade_inherited_fd(i)
                                     : worker_listen_socket(cfg->server.listen_host, port, &bound);
        if ((int)i < ninherited)
            upgrade_fd_port(fd, &bound);
        if (fd < 0) {
            log_error("cannot listen on %s:%u: %s", cfg->server.listen_host, port, strerror(-fd));
            return 1;
        }
        port = bound; /* with port 0, every worker binds the port the first one got */
        struct worker *w = &workers[i];
        int rc = worker_init(w, i, cfg, rt);
        if (rc == 0) {
            w->env.metrics = metrics_shard(metrics, i, &w->server.nconns, &w->env.inflight);
            w->env.keys = keys;
            w->env.ledger = ledger;
            w->env.budgets = budgets;
            w->env.rl = rl;
            if (shared) {
                snprintf(redis_names[i], sizeof redis_names[i], "worker %u", i);
                struct redis_options ro = {
                    .cfg = cfg->redis, .name = redis_names[i], .stats = &redis_stats};
                w->env.shared = shared;
                /* NULL (no memory): that loop decides on local state */
                w->env.redis = redis_new(&w->loop, &ro);
            }
            rc = worker_start(w, fd, tls, &handlers);
        }
        if (rc < 0) {
            log_error("cannot start worker %u: %s", i, uv_strerror(rc));
            return 1;
        }
    }
    /* Ready before "listening" is logged. From here the reload owns rt and metrics (main's
       references) and restarts the services on every generation. */
    struct reload_setup rs = {.loop = main_loop, .path = demo ? NULL : config_path,
                              .workers = workers, .nworkers = nworkers, .rt = rt, .metrics = metrics, .keys = keys,
                              .rl = rl, .tls = tls, .start = services_start,
                              .stop = services_stop, .services_ctx = &services_ctx,
                              .services = services,
                              .ready = proxy_env_admission_ready};
    if (reload_start(&rs) < 0) {
        log_error("cannot start the config reload");
        return 1;
    }
    upgrade_inherited_close_from(nworkers);
    /* Ready (GET /readyz 200, systemd's READY=1) before "listening" is logged: whoever waits for
       that line may ask /readyz at once. */
    lifecycle_serving();
    const char *host = cfg->server.listen_host;
    bool v6 = strchr(host, ':') != NULL;
    log_info("listening on %s://%s%s%s:%u (%u worker%s, %zu model%s)", tls ? "https" : "http", v6 ? "[" : "",
             host, v6 ? "]" : "", port, nworkers, nworkers == 1 ? "" : "s", cfg->nmodels,
             cfg->nmodels == 1 ? "" : "s");
    if (ninherited > 0)
        log_info("upgrade: serving on %d listening socket%s handed over by process %d", ninherited,
                 ninherited == 1 ? "" : "s", (int)getppid());
    if (tls) {
        char desc[224];
        tls_server_describe(tls, desc, sizeof desc);
        log_info("TLS certificate %s (%s); SIGHUP reloads it", cfg->server.tls_cert, desc);
    }
    if (demo) {
        fprintf(stderr,
                "\nunbusy demo: simulated providers sim-healthy, sim-busy (keep-alive stalls and 503s) and\n"
                "sim-flaky (cut streams) serve deepseek-r1 and deepseek-v3. Try:\n\n"
                "  curl -N http://%s:%u/v1/chat/completions -H 'Content-Type: application/json' \\\n"
                "    -d '{\"model\":\"deepseek-r1\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"Hello\"}]}'\n\n"
                "Each request's access-log line (stdout) shows the provider that answered and the attempts.\n"
                "Live status page: http://%s:%u/   metrics: http://%s:%u/metrics\n\n",
                host, port, host, port, host, port);
    }

    uv_run(main_loop, UV_RUN_DEFAULT);
    /* After the drain began, a further signal ends the process at once. */
    lifecycle_close();
    uv_close((uv_handle_t *)&sigusr1, NULL);
    uv_close((uv_handle_t *)&sighup, NULL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    reload_close(); /* stops the services of every generation */
    /* until the probes' and fetches' handles and connections are closed */
    uv_run(main_loop, UV_RUN_DEFAULT);
    for (unsigned i = 0; i < nworkers; i++)
        worker_join(&workers[i]);
    for (unsigned i = 0; i < nworkers; i++)
        config_unref(workers[i].cfg);
    reload_free(); /* the generation in force and its metrics */
    keys_free(keys); /* after the workers: pending admin jobs use it */
    budgets_free(budgets); /* delivers queued alerts, briefly */
    shared_spend_free(spend); /* after the budgets that read it */
    ledger_close(ledger); /* writes what is still queued */
    ratelimit_free(rl);
    shared_limits_free(shared); /* after the workers and the sync: they use it */
    aws_creds_stop();
    tls_server_free(tls); /* after the workers: their connections took sessions from it */
    config_unref(cfg);
    log_info("stopped");
    return 0;
}
