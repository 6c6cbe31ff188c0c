/*
 * dns — c-ares on a libuv loop.
 *
 * c-ares says through its socket-state callback which sockets it wants
 * watched for reading or writing; each gets a uv_poll handle (at most
 * DNS_MAX_SOCKETS), and a socket c-ares no longer wants has its handle
 * stopped at once (c-ares closes the descriptor right after) and closed.
 * After every call into c-ares the one timer is armed for ares_timeout.
 *
 * A finished lookup is not reported from c-ares's callback: its results are
 * copied into the lookup, which moves to the ready list, and a zero-delay
 * timer delivers the ready list from the loop. That keeps every callback out
 * of the calls that start a lookup (c-ares answers some at once) and out of
 * c-ares's own stack.
 */
#include "net/dns.h"

#include <ares.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct dns_poll {
    uv_poll_t handle;
    struct dns_resolver *r;
    ares_socket_t fd;
    bool closing;
    struct dns_poll *next;
};

struct dns_lookup {
    struct dns_lookup *next;
    struct dns_resolver *r;
    bool srv;
    dns_addrs_cb addrs_cb;
    dns_srv_cb srv_cb;
    void *ud;
    uint16_t port;
    enum dns_status st;
    size_t n;
    union {
        struct dns_addr addrs[DNS_MAX_ADDRS];
        struct dns_srv srvs[DNS_MAX_SRV];
    } u;
};

struct dns_resolver {
    uv_loop_t *loop;
    ares_channel channel;
    bool channel_live;
    uv_timer_t timeout; /* c-ares's next timeout */
    uv_timer_t deliver; /* zero-delay: hands the ready list out */
    struct dns_poll *polls;
    unsigned npolls;
    struct dns_lookup *ready, **ready_tail;
    unsigned pending; /* lookups c-ares still owes a callback */
    bool closing;
    int handles_open;
};

static pthread_once_t ares_once = PTHREAD_ONCE_INIT;
static int ares_init_rc;

static void ares_global_init(void)
{
    ares_init_rc = ares_library_init(ARES_LIB_INIT_ALL);
}

const char *dns_status_name(enum dns_status s)
{
    switch (s) {
    case DNS_OK:
        return "ok";
    case DNS_NOT_FOUND:
        return "not_found";
    case DNS_FAILED:
        return "failed";
    case DNS_TIMEOUT:
        return "timeout";
    case DNS_NO_MEMORY:
        return "no_memory";
    case DNS_CANCELLED:
        return "cancelled";
    }
    return "?";
}

static enum dns_status status_of(int ares_status)
{
    switch (ares_status) {
    case ARES_SUCCESS:
        return DNS_OK;
    case ARES_ENODATA:
    case ARES_ENOTFOUND:
    case ARES_ENONAME:
        return DNS_NOT_FOUND;
    case ARES_ETIMEOUT:
        return DNS_TIMEOUT;
    case ARES_ENOMEM:
        return DNS_NO_MEMORY;
    case ARES_ECANCELLED:
    case ARES_EDESTRUCTION:
        return DNS_CANCELLED;
    default:
        return DNS_FAILED;
    }
}

/* ---- driving c-ares from the loop ---- */

static void on_timeout(uv_timer_t *t);

static void arm_timeout(struct dns_resolver *r)
{
    if (!r->channel_live) return;
    struct timeval tv, *tp = ares_timeout(r->channel, NULL, &tv);
    if (!tp) {
        uv_timer_stop(&r->timeout);
        return;
    }
    uint64_t ms = (uint64_t)tp->tv_sec * 1000u + ((uint64_t)tp->tv_usec + 999u) / 1000u;
    uv_timer_start(&r->timeout, on_timeout, ms, 0);
}

static void on_timeout(uv_timer_t *t)
{
    struct dns_resolver *r = t->data;
    if (!r->channel_live) return;
    ares_process_fd(r->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
    arm_timeout(r);
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    struct dns_poll *p = h->data;
    struct dns_resolver *r = p->r;
    if (p->closing || !r->channel_live) return;
    /* An error on the socket: let c-ares read it and find out. */
    ares_socket_t rfd = (status < 0 || (events & UV_READABLE)) ? p->fd : ARES_SOCKET_BAD;
    ares_socket_t wfd = (status >= 0 && (events & UV_WRITABLE)) ? p->fd : ARES_SOCKET_BAD;
    ares_process_fd(r->channel, rfd, wfd);
    arm_timeout(r);
}

static void maybe_free(struct dns_resolver *r)
{
    if (r->closing && r->handles_open == 0 && !r->ready && r->pending == 0) free(r);
}

static void on_handle_closed(uv_handle_t *h)
{
    struct dns_resolver *r = h->data;
    r->handles_open--;
    maybe_free(r);
}

static void on_poll_closed(uv_handle_t *h)
{
    struct dns_poll *p = h->data;
    struct dns_resolver *r = p->r;
    free(p);
    r->handles_open--;
    maybe_free(r);
}

static void poll_drop(struct dns_resolver *r, struct dns_poll *p)
{
    for (struct dns_poll **pp = &r->polls; *pp; pp = &(*pp)->next) {
        if (*pp == p) {
            *pp = p->next;
            break;
        }
    }
    r->npolls--;
    p->closing = true;
    uv_poll_stop(&p->handle); /* before c-ares closes the descriptor */
    uv_close((uv_handle_t *)&p->handle, on_poll_closed);
}

static void on_sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
    struct dns_resolver *r = data;
    struct dns_poll *p = r->polls;
    while (p && p->fd != fd)
        p = p->next;
    if (!readable && !writable) {
        if (p) poll_drop(r, p);
        return;
    }
    if (!p) {
        /* Past the bound the socket goes unwatched: its query times out and fails. */
        if (r->npolls >= DNS_MAX_SOCKETS || !(p = calloc(1, sizeof *p))) return;
        if (uv_poll_init_socket(r->loop, &p->handle, fd) != 0) {
            free(p);
            return;
        }
        p->handle.data = p;
        p->r = r;
        p->fd = fd;
        p->next = r->polls;
        r->polls = p;
        r->npolls++;
        r->handles_open++;
    }
    int events = (readable ? UV_READABLE : 0) | (writable ? UV_WRITABLE : 0);
    uv_poll_start(&p->handle, events, on_poll);
}

/* ---- lifecycle ---- */

struct dns_resolver *dns_resolver_new(uv_loop_t *loop, const char *servers, uint32_t timeout_ms,
                                      int *err)
{
    pthread_once(&ares_once, ares_global_init);
    if (ares_init_rc != ARES_SUCCESS) {
        *err = -EIO;
        return NULL;
    }
    struct dns_resolver *r = calloc(1, sizeof *r);
    if (!r) {
        *err = -ENOMEM;
        return NULL;
    }
    r->loop = loop;
    r->ready_tail = &r->ready;
    struct ares_options opts = {
        .sock_state_cb = on_sock_state,
        .sock_state_cb_data = r,
        .timeout = timeout_ms ? (int)timeout_ms : 2000,
        .tries = 2,
    };
    int mask = ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES;
    int rc = ares_init_options(&r->channel, &opts, mask);
    if (rc != ARES_SUCCESS) {
        free(r);
        *err = rc == ARES_ENOMEM ? -ENOMEM : -EIO;
        return NULL;
    }
    if (servers && ares_set_servers_ports_csv(r->channel, servers) != ARES_SUCCESS) {
        ares_destroy(r->channel);
        free(r);
        *err = -EINVAL;
        return NULL;
    }
    r->channel_live = true;
    uv_timer_init(loop, &r->timeout);
    uv_timer_init(loop, &r->deliver);
    r->timeout.data = r->deliver.data = r;
    r->handles_open = 2;
    return r;
}

static void on_deliver(uv_timer_t *t);

static void ready_push(struct dns_resolver *r, struct dns_lookup *l)
{
    r->pending--;
    l->next = NULL;
    *r->ready_tail = l;
    r->ready_tail = &l->next;
    if (!uv_is_closing((uv_handle_t *)&r->deliver)) uv_timer_start(&r->deliver, on_deliver, 0, 0);
}

static void close_handles(struct dns_resolver *r)
{
    uv_close((uv_handle_t *)&r->timeout, on_handle_closed);
    uv_close((uv_handle_t *)&r->deliver, on_handle_closed);
    while (r->polls)
        poll_drop(r, r->polls);
}

static void on_deliver(uv_timer_t *t)
{
    struct dns_resolver *r = t->data;
    /* Taken whole: a callback may start new lookups, which land on a fresh list. */
    struct dns_lookup *l = r->ready;
    r->ready = NULL;
    r->ready_tail = &r->ready;
    while (l) {
        struct dns_lookup *next = l->next;
        enum dns_status st = r->closing ? DNS_CANCELLED : l->st;
        if (l->srv)
            l->srv_cb(l->ud, st, l->u.srvs, st == DNS_OK ? l->n : 0);
        else
            l->addrs_cb(l->ud, st, l->u.addrs, st == DNS_OK ? l->n : 0);
        free(l);
        l = next;
    }
    if (r->closing && !r->ready) close_handles(r);
}

void dns_resolver_close(struct dns_resolver *r)
{
    if (!r || r->closing) return;
    r->closing = true;
    /* Every pending lookup's callback runs inside ares_destroy (ARES_EDESTRUCTION) and
       lands on the ready list; the deliver timer hands them out, then closes. */
    r->channel_live = false;
    ares_destroy(r->channel);
    uv_timer_stop(&r->timeout);
    uv_timer_start(&r->deliver, on_deliver, 0, 0);
}

/* ---- lookups ---- */

static struct dns_lookup *lookup_new(struct dns_resolver *r, int *err)
{
    if (r->closing) {
        *err = -ESHUTDOWN;
        return NULL;
    }
    struct dns_lookup *l = calloc(1, sizeof *l);
    if (!l) {
        *err = -ENOMEM;
        return NULL;
    }
    l->r = r;
    r->pending++;
    return l;
}

static void on_addrinfo(void *arg, int status, int timeouts, struct ares_addrinfo *res)
{
    struct dns_lookup *l = arg;
    l->st = status_of(status);
    if (status == ARES_SUCCESS && res) {
        for (struct ares_addrinfo_node *n = res->nodes; n && l->n < DNS_MAX_ADDRS; n = n->ai_next) {
            if ((n->ai_family != AF_INET && n->ai_family != AF_INET6) ||
                (size_t)n->ai_addrlen > sizeof l->u.addrs[0].sa)
                continue;
            struct dns_addr *a = &l->u.addrs[l->n++];
            memset(a, 0, sizeof *a);
            memcpy(&a->sa, n->ai_addr, (size_t)n->ai_addrlen);
            if (n->ai_family == AF_INET)
                ((struct sockaddr_in *)&a->sa)->sin_port = htons(l->port);
            else
                ((struct sockaddr_in6 *)&a->sa)->sin6_port = htons(l->port);
            a->ttl_s = n->ai_ttl > 0 ? (uint32_t)n->ai_ttl : 0;
        }
        if (l->n == 0) l->st = DNS_NOT_FOUND;
    }
    if (res) ares_freeaddrinfo(res);
    ready_push(l->r, l);
}

int dns_resolve_addrs(struct dns_resolver *r, const char *name, uint16_t port, dns_addrs_cb cb,
                      void *ud)
{
    int err = 0;
    struct dns_lookup *l = lookup_new(r, &err);
    if (!l) return err;
    l->addrs_cb = cb;
    l->ud = ud;
    l->port = port;
    char service[8];
    snprintf(service, sizeof service, "%u", (unsigned)port);
    struct ares_addrinfo_hints hints = {
        .ai_family = AF_UNSPEC,
        .ai_socktype = SOCK_STREAM,
        .ai_flags = ARES_AI_NOSORT,
    };
    ares_getaddrinfo(r->channel, name, service, &hints, on_addrinfo, l);
    arm_timeout(r);
    return 0;
}

static void on_srv(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
    struct dns_lookup *l = arg;
    l->st = status_of(status);
    if (status == ARES_SUCCESS) {
        struct ares_srv_reply *srv = NULL;
        int rc = ares_parse_srv_reply(abuf, alen, &srv);
        if (rc != ARES_SUCCESS) {
            l->st = status_of(rc) == DNS_OK ? DNS_FAILED : status_of(rc);
        } else {
            for (struct ares_srv_reply *s = srv; s && l->n < DNS_MAX_SRV; s = s->next) {
                struct dns_srv *d = &l->u.srvs[l->n];
                if (!s->host || strlen(s->host) >= sizeof d->target || s->port == 0) continue;
                snprintf(d->target, sizeof d->target, "%s", s->host);
                d->priority = s->priority;
                d->weight = s->weight;
                d->port = s->port;
                l->n++;
            }
            if (l->n == 0) l->st = DNS_NOT_FOUND;
        }
        if (srv) ares_free_data(srv);
    }
    ready_push(l->r, l);
}

int dns_resolve_srv(struct dns_resolver *r, const char *name, dns_srv_cb cb, void *ud)
{
    int err = 0;
    struct dns_lookup *l = lookup_new(r, &err);
    if (!l) return err;
    l->srv = true;
    l->srv_cb = cb;
    l->ud = ud;
    ares_query(r->channel, name, 1 /* C_IN */, 33 /* T_SRV */, on_srv, l);
    arm_timeout(r);
    return 0;
}
