/*
 * config — the parsed, immutable configuration snapshot.
 *
 * config_load_file / config_load_text read YAML (libyaml), substitute
 * ${ENV_VAR} in scalars, apply defaults and validate. Every problem found is
 * reported with file:line and the key's path, all of them, not just the first.
 * A snapshot is refcounted: the server takes one reference per request, a
 * reload builds a new snapshot and swaps it in; running requests keep theirs.
 * Runtime state (counters, breakers) never lives here.
 *
 * Durations in YAML: an integer (milliseconds) or a number with a unit
 * ("250ms", "15s", "1.5m", "2h"). Sizes: an integer (bytes) or "64k", "8m",
 * "1g" (binary multiples; "kb", "kib" spellings too). docs/configuration.md is
 * the reference for every key.
 *
 * The module is three files: config.c holds the schema (one table of keys
 * per section) and the snapshot's lifecycle; config_yaml.c walks the YAML
 * document against those tables and collects the problems; config_value.c
 * holds the pure text-to-value parsers (${ENV}, durations, sizes, URLs,
 * listen addresses).
 */
#ifndef UNBUSY_CONFIG_H
#define UNBUSY_CONFIG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/redact.h"

/* A config text larger than this is refused before parsing. */
#define CONFIG_MAX_TEXT_BYTES (4u << 20)

enum cfg_provider_kind {
    CFG_PROVIDER_OPENAI = 0, /* any OpenAI-compatible HTTP(S) API (the default) */
    CFG_PROVIDER_SIM,        /* a simulated provider inside the binary (demo, base_url sim://PROFILE) */
};

/* The wire format a provider speaks (provider/provider.h picks its ops); the kind above is
   only the transport. */
enum cfg_wire {
    CFG_WIRE_OPENAI = 0, /* OpenAI-compatible HTTP: every provider today, simulated ones included */
    CFG_WIRE_BEDROCK_CONVERSE, /* AWS Bedrock Converse / ConverseStream, SigV4 (wire: bedrock-converse) */
    CFG_WIRE_SAGEMAKER,        /* AWS SageMaker InvokeEndpoint(WithResponseStream) of an OpenAI-compatible
                                  container, SigV4 (wire: sagemaker) */
};

/* Where an AWS provider's credentials come from (aws.credentials; config_aws.c). */
enum cfg_aws_credentials {
    CFG_AWS_CRED_AUTO = 0, /* the keys in the file, else the environment, else the container endpoint */
    CFG_AWS_CRED_STATIC,   /* aws.access_key_id / secret_access_key / session_token */
    CFG_AWS_CRED_ENV,      /* AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN (read at load) */
    CFG_AWS_CRED_CONTAINER,/* AWS_CONTAINER_CREDENTIALS_FULL_URI / _RELATIVE_URI, refreshed in the background */
};

/* The aws: section of a provider with an AWS wire (docs/providers.md). */
struct cfg_aws {
    char *region;              /* aws.region, else AWS_REGION / AWS_DEFAULT_REGION, else from the host */
    char *service;             /* the signing name: "bedrock" / "sagemaker" unless given */
    enum cfg_aws_credentials credentials; /* resolved at load: never AUTO */
    char *access_key_id;       /* STATIC and ENV: the keys (ENV copies the environment's) */
    char *secret_access_key;
    char *session_token;       /* NULL: none */
};

struct cfg_header {
    char *name;
    char *value;
    bool secret;               /* from secret_headers:, or secret by its name (config_secrets.h) */
};

struct cfg_timeouts {
    uint32_t connect_ms;       /* TCP + TLS handshake */
    uint32_t first_token_ms;   /* request sent -> first content event (keep-alives do not count) */
    uint32_t stall_ms;         /* between content events after the first */
    uint32_t total_ms;         /* the whole request, every attempt included */
};

/* Active health probes of a provider (docs/resilience.md). */
struct cfg_probe {
    bool enabled;                 /* default true for http(s) providers, false for sim:// */
    char *path;                   /* under base_path; default "/models" */
    uint32_t interval_ms;         /* default 30 s; at least 50 ms */
    uint32_t timeout_ms;          /* default 5 s */
    uint32_t healthy_threshold;   /* consecutive successes to mark it up again; default 2 */
    uint32_t unhealthy_threshold; /* consecutive failures to mark it down; default 3 */
    bool deep;                    /* also a one-token completion now and then; default false */
    uint32_t deep_interval_ms;    /* default 5 min */
    char *deep_model;             /* NULL: the first deployment's model on this provider */
};

struct cfg_breaker {
    uint32_t window_ms;           /* default 30 s */
    uint32_t min_requests;        /* default 10 */
    double failure_ratio;         /* default 0.5 */
    uint32_t consecutive_failures;/* default 5 */
    uint32_t open_ms;             /* default 5 s, doubling per repeated trip */
    uint32_t open_max_ms;         /* default 120 s */
    uint32_t half_open_trials;    /* default 1 */
};

struct cfg_retry_budget {
    double ratio;                 /* retries at most this share of requests; default 0.2 */
    double min_per_sec;           /* and always this many per second; default 3 */
    uint32_t window_ms;           /* default 10 s */
};

struct cfg_hedge {
    bool enabled;                 /* default true */
    uint32_t after_ms;            /* 0: the deployment's learnt first-token budget
                                     (route/ttft_budget.h); default 0 */
    double max_ratio;             /* hedges at most this share of requests (route/hedge_budget.h);
                                     default 0.2 */
};

struct cfg_resilience {
    char *strategy;               /* p2c (default), round_robin, least_inflight, latency_weight, cost,
                                     engine_load (the default where every deployment is a scraped
                                     engine, config_engine.c) */
    bool strategy_given;          /* strategy: was written (here or in the top-level section) */
    uint32_t ttft_target_ms;      /* cost: a deployment qualifies below this TTFT; 0 (auto): half
                                     the first-token deadline */
    struct cfg_breaker breaker;
    struct cfg_retry_budget retry_budget;
    struct cfg_hedge hedge;
    bool continue_on_cut;         /* continue a cut stream on another deployment; default true */
    uint32_t slow_start_ms;       /* a recovered deployment ramps its share over this; default
                                     30 s; 0: off */
};

/* Admission per model (docs/admission.md). */
struct cfg_queue {
    uint32_t max;                 /* waiting requests at most; default 1000; 0: no queue */
    uint32_t timeout_ms;          /* the longest a request waits; default 30 s */
    uint32_t keepalive_ms;        /* SSE comments to a waiting stream client; default 5 s */
    double reserve_ratio;         /* share of capacity kept for class 0; default 0.2 */
};

struct cfg_degrade {
    bool enabled;                 /* default false */
    double threshold;             /* load (in-flight / capacity) that starts it; default 0.85 */
    double hysteresis;            /* it stops below threshold - hysteresis; default 0.1 */
    char *to;                     /* the fallback model (a configured model name) */
    double share;                 /* share of eligible requests sent there; default 1 */
    unsigned classes;             /* bit mask of priority classes it applies to; default 0b1110 */
};

/* A request tiering rule: the first rule whose match holds routes the request. */
struct cfg_rule {
    char *match_model;            /* NULL: any */
    char *match_key;              /* a key name; NULL: any */
    char *match_header;           /* "name" that must be present; NULL: none */
    char *match_header_value;     /* and equal this; NULL: any value */
    size_t min_prompt_chars;      /* 0: no lower bound */
    size_t max_prompt_chars;      /* 0: no upper bound */
    int match_tools;              /* -1 any, 0 without tools, 1 with tools */
    char *route_model;            /* NULL: keep the model */
    int route_tier;               /* -1: any tier; else only deployments of this tier */
    bool bypass_allowlist;        /* route.model is served even to keys not allowed it */
    int line;
};

/* How a provider continues a partial answer (continue_on_cut; provider/provider.h resolves
   auto). */
enum cfg_continuation {
    CFG_CONTINUATION_AUTO = 0,            /* the preset's (type:); openai-compatible: by the
                                             API host, api.deepseek.com → prefix, else
                                             assistant_message */
    CFG_CONTINUATION_PREFIX,              /* DeepSeek's chat prefix completion */
    CFG_CONTINUATION_CONTINUE_FINAL,      /* vLLM / SGLang continue_final_message */
    CFG_CONTINUATION_ASSISTANT_MESSAGE,   /* a plain trailing assistant message */
    CFG_CONTINUATION_OFF,                 /* never continue on this provider */
};

/* A provider's type: (config/presets.h holds one row of defaults and quirks per type). */
enum cfg_provider_type {
    CFG_TYPE_OPENAI_COMPATIBLE = 0, /* the default: any OpenAI-compatible server */
    CFG_TYPE_OPENAI,
    CFG_TYPE_AZURE_OPENAI,
    CFG_TYPE_DEEPSEEK,
    CFG_TYPE_VOLCENGINE_ARK,
    CFG_TYPE_ALIBABA_BAILIAN,
    CFG_TYPE_ALIBABA_PAI_EAS,
    CFG_TYPE_TENCENT_LKEAP,
    CFG_TYPE_HUAWEI_MODELARTS,
    CFG_TYPE_BAIDU_QIANFAN,
    CFG_TYPE_SILICONFLOW,
    CFG_TYPE_VLLM,
    CFG_TYPE_SGLANG,
    CFG_TYPE_LLAMA_CPP,
    CFG_TYPE_OLLAMA,
    CFG_TYPE_TRITON,
    CFG_TYPE_COUNT
};

/* The inference engine behind a provider, whose Prometheus metrics the balancer reads
   (config_engine.h, docs/routing.md). */
enum cfg_engine {
    CFG_ENGINE_NONE = 0, /* a cloud API or an unknown server: nothing to scrape */
    CFG_ENGINE_VLLM,
    CFG_ENGINE_SGLANG,
    CFG_ENGINE_LLAMA_CPP,
    CFG_ENGINE_TGI,
};

/* A provider's engine: and metrics: keys, resolved at load (config_engine.c). */
struct cfg_engine_metrics {
    enum cfg_engine engine;   /* from type: (vllm, sglang, llama.cpp) unless engine: says */
    bool enabled;             /* scraped: an engine is known and metrics: is not off */
    char *path;               /* default "/metrics", at the base URL's host (not under base_path) */
    char *host;               /* metrics.url's host; NULL: the provider's host and port */
    uint16_t port;
    bool tls;
    uint32_t interval_ms;     /* default 1 s */
    uint32_t timeout_ms;      /* default: the interval, at most 5 s */
    uint32_t unhealthy_threshold; /* scrape failures in a row that mark it down; default 3 */
    bool given;               /* metrics: was written */
    bool engine_given;        /* engine: was written (none included) */
};

/* How a model's requests keep to one deployment (routing:, config_engine.c). */
enum cfg_affinity {
    CFG_AFFINITY_AUTO = 0, /* resolved at load: prefix when every deployment is a scraped engine */
    CFG_AFFINITY_OFF,
    CFG_AFFINITY_PREFIX,   /* the hash of the leading messages */
    CFG_AFFINITY_HEADER,   /* the value of routing.header */
};

struct cfg_routing {
    enum cfg_affinity affinity; /* never AUTO after load */
    char *header;               /* default "x-session-id" (lower case) */
    uint32_t prefix_bytes;      /* bytes of the leading messages hashed; default 4096 */
    double load_factor;         /* a deployment takes at most this x the average; default 1.25 */
};

struct config_preset;

struct cfg_provider {
    char *name;
    enum cfg_provider_type type; /* type:; default openai-compatible */
    const struct config_preset *preset; /* its row (static); NULL in a provider built by hand */
    enum cfg_provider_kind kind; /* the transport */
    enum cfg_wire wire;          /* the wire format */
    char *base_url;            /* as written (after ${ENV} substitution) */
    /* base_url split up: */
    bool tls;
    char *host;                /* IPv6 without brackets; "" for CFG_PROVIDER_SIM */
    uint16_t port;             /* 80 / 443 unless given; 0 for CFG_PROVIDER_SIM */
    char *base_path;           /* "" or "/v1" (no trailing slash) */
    char *sim_profile;         /* CFG_PROVIDER_SIM: "healthy", "busy", "flaky" or a raw
                                  behaviour string; NULL otherwise */
    char *api_key;             /* NULL when not set (or set to an empty string) */
    char *auth_header;         /* default "Authorization" */
    char *auth_prefix;         /* default "Bearer " ("" for the raw token) */
    struct cfg_header *headers;
    size_t nheaders;
    char *ca_file;             /* NULL: the system store */
    bool tls_verify;           /* default true */
    bool stream_upstream;      /* ask for a stream even for non-stream clients (default true) */
    uint32_t max_idle_conns;   /* idle keep-alive connections kept per worker (default 64) */
    uint32_t idle_conn_timeout_ms; /* default 60 s */
    uint32_t connect_timeout_ms;   /* 0: the model's */
    enum cfg_continuation continuation; /* default auto (the preset's) */
    char *api_version;         /* api-version query parameter (azure-openai); NULL: none */
    bool deployment_paths;     /* /openai/deployments/{model}/... (azure-openai, not its v1 API) */
    char *models_path;         /* the model list under base_path; default "/models" */
    bool models_auto;          /* models: auto — serve the models the provider lists */
    uint32_t models_refresh_ms;/* how often the list is fetched again; default 60 s */
    bool rename_reasoning;     /* relay a delta's "reasoning" as "reasoning_content" (vLLM) */
    bool strip_reasoning_history; /* drop reasoning_content from sent messages (DeepSeek) */
    uint32_t max_tokens_limit; /* clamp max_tokens to this; 0: the preset's per model, or none */
    struct cfg_probe probe;
    struct cfg_engine_metrics metrics; /* engine: and metrics: (config_engine.h) */
    struct cfg_aws *aws;       /* an AWS wire's settings; NULL for the OpenAI wire */
    struct cfg_discovery *discovery; /* discovery: (config_discovery.h); NULL: off */
    int line;                  /* where it was defined, for messages */
};

struct cfg_deployment {
    struct cfg_provider *provider; /* points into config.providers */
    char *model;               /* the name the provider expects */
    int tier;                  /* default 0 */
    uint32_t weight;           /* default 1 */
    uint32_t max_concurrency;  /* 0: unlimited; a saturated deployment is skipped */
    uint32_t rpm;              /* requests per minute; 0: unlimited */
    uint32_t max_tokens_limit; /* max_tokens (and max_completion_tokens) clamped to this;
                                  0: none (resolved from the provider and its preset) */
    int line;
};

struct cfg_model {
    char *name;                /* the name clients send */
    bool auto_import;          /* the model of the models: auto providers (config/presets.h):
                                  serves the names they list, never its own name */
    struct cfg_deployment *deployments;
    size_t ndeployments;
    struct cfg_timeouts timeouts;
    uint32_t max_attempts;     /* default: number of deployments, at least 1, at most 10 */
    struct cfg_resilience resilience; /* the top-level resilience: section, overridden per model */
    struct cfg_queue queue;
    struct cfg_degrade degrade;
    uint32_t rpm, tpm;         /* the model's own request and token limits; 0: none */
    struct cfg_routing routing; /* routing: (config_engine.h) */
    int line;
};

/* A static API key from the file's keys: section (docs/admission.md). */
struct cfg_key {
    char *name;                /* unique among the file's keys; see config_key_name_valid */
    char *key;                 /* the secret clients send as "Authorization: Bearer KEY" */
    char **models;             /* the client model names it may use; none: every model */
    size_t nmodels;
    int priority;              /* 0 (highest) .. 3; default 1 */
    uint32_t rpm;              /* requests per minute; 0: unlimited */
    uint32_t tpm;              /* tokens per minute; 0: unlimited */
    uint32_t max_concurrency;  /* requests in flight at once; 0: unlimited */
    int line;
};

/* The ledger of requests, usage and cost (docs/usage.md); read at start only. */
struct cfg_ledger {
    char *path;                /* the SQLite file; NULL: none (spend is still counted in memory) */
    uint32_t queue;            /* records waiting for the writer thread; default 65536 */
    uint32_t batch;            /* records per transaction; default 256 */
    uint32_t flush_interval_ms;/* the longest a record waits for its batch; default 200 ms */
};

/* Prices per million tokens (prices:); prices.h turns them into costs. */
struct cfg_price_rates {
    double input;              /* prompt tokens not served from the provider's cache */
    double cached_input;       /* prompt tokens served from it; default: input */
    double output;             /* completion tokens, reasoning tokens included */
};

struct cfg_price_window {      /* a time of day, in UTC, with other rates */
    uint16_t from_min, to_min; /* minutes after 00:00 (to may be 1440); from > to wraps midnight */
    struct cfg_price_rates rates; /* a rate not given there is the price's own */
    int line;
};

struct cfg_price {
    char *provider;            /* a provider's name, or a glob */
    char *model;               /* a deployment's model (the provider's name for it), or a glob */
    bool provider_glob, model_glob;
    struct cfg_price_rates rates;
    char currency[4];          /* a three-letter code; default "USD" */
    struct cfg_price_window *windows; /* at most one holds at any minute */
    size_t nwindows;
    int line;
};

/* A spending limit on one key (budgets:, docs/usage.md#budgets). */
struct cfg_budget {
    char *key_name;            /* a key's name (keys: or the key store) */
    double daily, monthly;     /* in currency per UTC day / month; 0: none (at least one is set) */
    char *currency;            /* a three-letter code; default "USD" */
    bool degrade;              /* at 100 %: send to degrade_to instead of refusing (the default) */
    char *degrade_to;          /* a configured model's name; set exactly when degrade */
    int line;
};

struct cfg_server {
    char *listen_host;         /* default 127.0.0.1 */
    uint16_t listen_port;      /* default 8080 */
    unsigned workers;          /* default: number of cores */
    size_t max_header_bytes;   /* default 64 KiB */
    size_t max_body_bytes;     /* default 8 MiB */
    size_t max_response_bytes; /* an upstream answer assembled for a non-stream client; default 32 MiB */
    uint32_t header_timeout_ms;/* the whole request head must arrive within this; default 10 s */
    uint32_t idle_timeout_ms;  /* keep-alive idle; default 60 s */
    uint32_t drain_timeout_ms; /* on SIGTERM; default 30 s */
    uint32_t drain_delay_ms;   /* SIGTERM -> not ready, still accepting, this long; default 5 s */
    uint32_t max_connections;  /* per worker; default 10000 */
    char *access_log;          /* path, "-" for stdout (default), "off" */
    char *tls_cert, *tls_key;  /* server.tls: PEM files; NULL: plain HTTP (config_tls.c) */
};

/* Whether clients need an API key (auth:, docs/admission.md#who-needs-a-key). */
struct cfg_auth {
    /* The decision: requests are served without a key. True when the file says
       auth.open: true, or names neither keys: nor key_store:; never because a
       store holds no key at the moment (an empty store refuses everyone). */
    bool open;
    bool open_given;  /* auth.open was written (true or false) */
    int open_line;
    bool keys_given;  /* keys: or key_store: was written, even empty */
};

/* reload: (config_reload.h): watch the file and reload it when it changes. */
struct cfg_reload {
    bool watch;                /* default false */
    uint32_t interval_ms;      /* how often the file is checked; 0: the default, 2 s */
};

struct cfg_redis;

struct config {
    atomic_int refs;
    char *source;              /* file name (or "<demo>") for messages */
    struct cfg_server server;
    struct cfg_timeouts default_timeouts;
    struct cfg_resilience default_resilience;
    struct cfg_rule *rules;
    size_t nrules;
    char *admin_token;         /* admin.token; NULL: admin API read-only, loopback only */
    struct cfg_auth auth;
    struct cfg_provider *providers;
    size_t nproviders;
    struct cfg_model *models;
    size_t nmodels;
    struct cfg_key *keys;      /* static API keys (keys:) */
    size_t nkeys;
    char *key_store;           /* key_store: the SQLite file of issued keys; NULL: none */
    struct cfg_ledger ledger;
    struct cfg_price *prices;  /* prices: in file order */
    size_t nprices;
    struct cfg_budget *budgets; /* budgets.keys, in file order; key names unique */
    size_t nbudgets;
    struct cfg_provider *budget_webhook; /* budgets.webhook as an HTTP target; NULL: none */
    char *budget_webhook_path; /* its path and query, e.g. "/hooks/x?t=1"; "/" at least */
    double budget_alert_at;    /* budgets.alert_at: the share that sends a warning; default 0.8 */
    struct cfg_redis *redis;   /* redis: (config_redis.h); NULL: no state shared across replicas */
    /* Open-addressing index over models for config_find_model: slot = model
       index + 1, 0 = empty. NULL (a snapshot built by hand) means linear search. */
    uint32_t *model_slots;
    size_t nmodel_slots;       /* a power of two */
    /* Every secret value above, to be taken out of provider text before it is logged or
       passed on (config_secrets.h). Empty in a snapshot built by hand. */
    struct redact_set secrets;
    struct cfg_reload reload;  /* reload: */
};

/* Collected problems: each line "file:line: key.path: message\n", sorted by
   line; warnings read "file:line: key.path: warning: message\n". A problem
   with no line (file unreadable, too large) reads "file: message\n". */
struct config_errors {
    struct buf text;
    unsigned count;
    unsigned warnings;         /* non-fatal notes (e.g. an unset ${VAR}) also go to text */
};

void config_errors_init(struct config_errors *e);
void config_errors_free(struct config_errors *e);

/*
 * Load and validate. Returns 0 and sets *out (refs = 1), or -1 with every
 * problem in errs (*out untouched). source names the text in messages.
 */
int config_load_file(const char *path, struct config **out, struct config_errors *errs);
int config_load_text(const char *source, const char *text, size_t len, struct config **out,
                     struct config_errors *errs);
/* errs may be NULL in both (the problems are then dropped). */

/* Frees what a cfg_provider owns (not the struct itself): for providers built outside the
   providers: section too, such as the budget webhook's target. */
void config_provider_free_fields(struct cfg_provider *p);

struct config *config_ref(struct config *c);
void config_unref(struct config *c); /* frees on the last reference */

/* NULL when no model has that name. */
const struct cfg_model *config_find_model(const struct config *c, const char *name);

/*
 * The value syntaxes, for other modules that read durations and sizes (admin
 * API, command line). Return 0, -EINVAL (not that syntax) or -ERANGE
 * (a duration past UINT32_MAX ms, a size past SIZE_MAX).
 */
int config_parse_duration_ms(const char *s, uint32_t *ms);
int config_parse_size(const char *s, size_t *bytes);

/* The workers `server.workers: 0` stands for: the CPUs the process may run on
   (affinity_cpus, from uv_available_parallelism), fewer when a cgroup v2 CPU
   quota allows less: cpu_max is the text of /sys/fs/cgroup/cpu.max
   ("max 100000" or "<quota> <period>", giving ceil(quota / period)), NULL when
   there is none. Between 1 and 1024. */
unsigned config_default_workers(unsigned affinity_cpus, const char *cpu_max);
/* config_default_workers for this process (reads its affinity and cpu.max). */
unsigned config_usable_cpus(void);

/* A key's name: 1 to 64 characters from A-Z a-z 0-9 . _ - : @, not all
   digits (so a command naming "ID or NAME" can tell which). The keys store
   applies the same rule. */
#define CONFIG_KEY_NAME_MAX 64
bool config_key_name_valid(const char *name);

#endif
