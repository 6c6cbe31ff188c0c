/*
 * proxy_endpoint — an attempt on a discovered deployment goes to one of its
 * addresses (route/endpoints.h).
 *
 * After the balancer has chosen the deployment and its slot is taken, the
 * endpoint is chosen here (the least loaded eligible address this request
 * has not tried yet) and its own slot taken; the attempt connects to that
 * address with the host name kept for TLS and Host. At the end the outcome
 * goes to the endpoint, and to the deployment only when it is the
 * deployment's (a success, or a failure with no other address left to
 * serve): one broken replica opens its own breaker, not the deployment's.
 * A deployment whose set is still pending (no answer yet) is used by name.
 */
#include <stdio.h>

#include "base/log.h"
#include "proxy/proxy_int.h"

bool proxy_endpoint_take(struct preq *p, struct attempt *slot, struct runtime_dep *rd,
                         uint64_t now_ms, uint64_t rand)
{
    slot->ep = NULL;
    slot->ep_name[0] = '\0';
    if (!rd->endpoints || !endpoint_set_answered(rd->endpoints)) return true;
    slot->ep =
        endpoint_pick(rd->endpoints, now_ms, p->tried_eps, p->ntried_eps, rand, &slot->ep_ticket);
    if (!slot->ep) return false;
    snprintf(slot->ep_name, sizeof slot->ep_name, "%s", slot->ep->name);
    if (p->ntried_eps < ENDPOINTS_TRIED_MAX) p->tried_eps[p->ntried_eps++] = slot->ep->id;
    return true;
}

bool proxy_endpoint_release(struct attempt *a, enum health_class c, uint32_t penalty_ms,
                            uint64_t now_ms, uint64_t rand)
{
    struct endpoint *e = a->ep;
    if (!e || !a->rd || !a->rd->endpoints) return true;
    a->ep = NULL;
    char name[sizeof e->name];
    snprintf(name, sizeof name, "%s", e->name); /* e may be freed by the release */
    if (a->retry_after_s > 0 && (c == HEALTH_RATE_LIMITED || c == HEALTH_SERVER_ERROR))
        endpoint_cooldown(a->rd->endpoints, e, now_ms, (uint32_t)a->retry_after_s * 1000u);
    bool verdict = true;
    unsigned ev = endpoint_release(a->rd->endpoints, e, &a->ep_ticket, now_ms, c,
                                   c == HEALTH_OK ? a->ttft_ms : 0, penalty_ms, rand, &verdict);
    if (ev & HEALTH_EVENT_TRIPPED)
        log_warn("deployment %s: address %s out, its breaker opened (last failure: %s)", a->rd->key,
                 name, health_class_name(c));
    if (ev & HEALTH_EVENT_CLOSED)
        log_info("deployment %s: address %s back, its breaker closed", a->rd->key, name);
    return verdict;
}

void proxy_endpoint_abandon(struct attempt *a, struct runtime_dep *rd, uint32_t waited_ms)
{
    if (!a->ep || !rd || !rd->endpoints) return;
    endpoint_abandon(rd->endpoints, a->ep, &a->ep_ticket, waited_ms);
    a->ep = NULL;
}

uint32_t proxy_endpoint_weight(struct runtime_dep *rd, uint64_t now_ms)
{
    uint32_t w = rd->cfg->weight ? rd->cfg->weight : 1;
    if (!rd->endpoints) return w;
    unsigned k = endpoint_set_healthy(rd->endpoints, now_ms);
    return k > 1 ? w * k : w; /* grows with its healthy addresses */
}
