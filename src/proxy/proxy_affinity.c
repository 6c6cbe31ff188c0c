/*
 * proxy_affinity.c — a request's affinity key for the balancer
 * (balancer_pick_keyed): by the model's routing.affinity, the hash of its
 * leading messages (proto/prefix_key.h) or of its session header's value;
 * 0 (none) when affinity is off or the request has neither.
 */
#include "proto/prefix_key.h"
#include "proxy/proxy_int.h"

uint64_t proxy_affinity_key(struct preq *p)
{
    const struct cfg_routing *r = &p->model->routing;
    if (r->affinity == CFG_AFFINITY_PREFIX)
        return prefix_key(p->body ? p->body : "", p->body_len, r->prefix_bytes);
    if (r->affinity == CFG_AFFINITY_HEADER && r->header) {
        const struct http1_str *v =
            http1_find_header(&server_conn_request(p->conn)->http.head, r->header);
        return v && v->len ? prefix_key_bytes(v->p, v->len) : 0;
    }
    return 0;
}
