/*
 * endpoints — the addresses a deployment's host name resolves to, each with
 * its own health.
 *
 * A deployment whose provider has discovery: on (config/config_discovery.h)
 * gets one struct endpoint_set, hanging off its struct runtime_dep. The
 * discovery loop (route/discovery.c) merges every DNS answer into it; the
 * proxy picks an endpoint for each attempt after the balancer has picked the
 * deployment, and gives its outcome back. Each endpoint embeds a struct
 * health (route/health.h): its own breaker, cooldown, in-flight count and
 * latency, so one broken replica is taken out while the others serve.
 *
 * Merging an answer:
 *
 *   in the answer, not in the set ──────────▶ added (ACTIVE), if fewer than
 *                                              max_endpoints are active
 *   in both ─────────────────────────────────▶ kept (its health with it);
 *                                              TTL, priority, weight updated
 *   in the set, not in the answer ───────────▶ DRAINING: no new attempt; freed
 *                                              once its last attempt has ended
 *   DRAINING, back in an answer ─────────────▶ ACTIVE again, health kept
 *
 * A failed resolution changes nothing (the last good set serves, marked
 * stale). Before the first answer the set is "pending": the proxy then
 * connects by host name as without discovery, so a restart does not wait
 * for DNS. After an answer with no address the deployment is ineligible
 * ("no_addresses").
 *
 * Picking: among the eligible ACTIVE endpoints of the lowest SRV priority
 * that has one, the least loaded (in flight / weight), ties broken by the
 * random value the caller passes. An endpoint the request already tried is
 * skipped while another is left.
 *
 * Threads: one mutex per set; every worker picks and releases, the discovery
 * loop merges. An endpoint is freed only when it is draining and no attempt
 * holds it (refs), so a pointer an attempt holds stays valid until its
 * release. Time and randomness are passed in; nothing here does I/O.
 */
#ifndef UNBUSY_ENDPOINTS_H
#define UNBUSY_ENDPOINTS_H

#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "route/health.h"

/* The hard bound on addresses per deployment (the config's max_endpoints is at most this). */
#define ENDPOINTS_MAX 64
/* "[IPv6]:port" at its longest, with the NUL. */
#define ENDPOINT_NAME_MAX 56
/* Endpoints an attempt's request remembers as tried. */
#define ENDPOINTS_TRIED_MAX 8

enum endpoint_source { ENDPOINT_SRC_A, ENDPOINT_SRC_AAAA, ENDPOINT_SRC_SRV };

/* One address of a DNS answer, as discovery hands it to the merge. */
struct endpoint_addr {
    struct sockaddr_storage sa; /* with the port to connect to */
    uint16_t priority, weight;  /* SRV's; 0 and 1 for A/AAAA */
    uint32_t ttl_s;
    enum endpoint_source source;
};

struct endpoint {
    struct endpoint *next;
    uint64_t id; /* unique within the set, never reused */
    struct sockaddr_storage sa;
    char name[ENDPOINT_NAME_MAX]; /* "127.0.0.2:8000", "[::1]:8000" */
    uint16_t priority, weight;
    uint32_t ttl_s;
    enum endpoint_source source;
    bool draining;
    unsigned refs;     /* attempts holding it (under the set's lock) */
    uint64_t added_ms; /* when it first appeared */
    struct health health;
};

/* What the admin API and the metrics see of an endpoint. */
struct endpoint_view {
    char name[ENDPOINT_NAME_MAX];
    const char *source; /* "a", "aaaa", "srv" */
    const char *state;  /* "active", "draining" */
    uint16_t priority, weight;
    uint32_t ttl_s;
    struct health_snapshot health;
};

struct endpoint_set {
    pthread_mutex_t lock;
    struct health_params hp; /* each endpoint's breaker; no concurrency limit of its own */
    uint32_t max_endpoints;
    struct endpoint *list; /* active and draining */
    unsigned nactive, ndraining;
    uint64_t next_id;
    bool answered;        /* an answer has been merged */
    bool stale;           /* the latest resolution failed: the last good set serves */
    uint64_t resolved_ms; /* when the latest answer was merged */
    char last_error[96];
    atomic_ullong resolutions_ok, resolutions_failed;
    atomic_ullong added, removed;
};

/* hp: the deployment's health parameters (its max_concurrency and rpm stay the
   deployment's); max_endpoints 0 or above ENDPOINTS_MAX means ENDPOINTS_MAX.
   Returns NULL when out of memory. Free with endpoint_set_free when no attempt
   holds an endpoint any more. */
struct endpoint_set *endpoint_set_new(const struct health_params *hp, uint32_t max_endpoints);
void endpoint_set_free(struct endpoint_set *s);

/* Merges one answer (see the header comment). Addresses are compared with their port;
   duplicates in the answer count once. Returns how many endpoints were added. */
unsigned endpoint_set_merge(struct endpoint_set *s, const struct endpoint_addr *addrs, size_t n,
                            uint64_t now_ms);
/* A resolution failed: the set stays, marked stale, with why (copied). */
void endpoint_set_failed(struct endpoint_set *s, const char *why);

/*
 * May a request go to the deployment as far as its addresses go? True while
 * pending (no answer yet) and when an ACTIVE endpoint is eligible; else false
 * with *why "no_addresses" or "endpoints_out" (static strings; why may be NULL).
 */
bool endpoint_set_eligible(struct endpoint_set *s, uint64_t now_ms, const char **why);
/* Eligible ACTIVE endpoints now (the deployment's share grows with them); 0 while pending. */
unsigned endpoint_set_healthy(struct endpoint_set *s, uint64_t now_ms);
/* The earliest time an endpoint takes a request again (health_returns_at); now while
   pending; UINT64_MAX with no address. */
uint64_t endpoint_set_returns_at(struct endpoint_set *s, uint64_t now_ms);
/* True once an answer has been merged (the proxy connects to endpoints, not the name). */
bool endpoint_set_answered(struct endpoint_set *s);

/*
 * Chooses an endpoint for an attempt and takes its slot (health_acquire into
 * *ticket) and a reference, avoiding the ids in tried[0..ntried) while another
 * is eligible. NULL when none is eligible. Give it back with exactly one of
 * endpoint_release / endpoint_abandon.
 */
struct endpoint *endpoint_pick(struct endpoint_set *s, uint64_t now_ms, const uint64_t *tried,
                               size_t ntried, uint64_t rand, struct health_ticket *ticket);
/*
 * Records the attempt's outcome at the endpoint (health_release's arguments)
 * and drops the reference (a draining endpoint's last is freed). Returns
 * health_release's flags. *deployment_verdict (may be NULL) says whether the
 * deployment's own health should count the outcome: a success always; a
 * failure only when no other endpoint is eligible now, since while others
 * serve the failure belongs to this address, not to the deployment.
 */
unsigned endpoint_release(struct endpoint_set *s, struct endpoint *e, struct health_ticket *ticket,
                          uint64_t now_ms, enum health_class cls, uint32_t ttft_ms,
                          uint32_t penalty_ms, uint64_t rand, bool *deployment_verdict);
/* health_abandon (waited_ms > 0: health_abandon_after) and drop the reference. */
void endpoint_abandon(struct endpoint_set *s, struct endpoint *e, struct health_ticket *ticket,
                      uint32_t waited_ms);
/* A Retry-After for this endpoint (health_cooldown). */
void endpoint_cooldown(struct endpoint_set *s, struct endpoint *e, uint64_t now_ms, uint32_t ms);

/* Copies up to max endpoints (active first, in list order) into out; returns how many. */
size_t endpoint_set_view(struct endpoint_set *s, uint64_t now_ms, struct endpoint_view *out,
                         size_t max);
/* Counts for metrics and the admin API, read together under the lock. */
struct endpoint_set_stats {
    unsigned active, draining, healthy;
    bool answered, stale;
    uint64_t resolved_ms;
    char last_error[96];
};
void endpoint_set_stats(struct endpoint_set *s, uint64_t now_ms, struct endpoint_set_stats *out);

/* "127.0.0.1:8000" / "[::1]:8000" into out (ENDPOINT_NAME_MAX bytes hold any). */
void endpoint_format(const struct sockaddr_storage *sa, char *out, size_t cap);
const char *endpoint_source_name(enum endpoint_source s);

#endif
