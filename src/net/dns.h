/*
 * dns — asynchronous DNS on a libuv loop, through c-ares.
 *
 * One struct dns_resolver is one c-ares channel driven by one loop: its
 * sockets are watched with uv_poll handles and its timeouts run on one
 * uv_timer, so a lookup never blocks the loop and never uses the thread
 * pool. It answers two questions: the A and AAAA addresses of a name, each
 * with its TTL (dns_resolve_addrs), and the SRV records of a name
 * (dns_resolve_srv: priority, weight, port, target).
 *
 * Who calls it: route/discovery.c, on the main thread's loop. Nothing here
 * is shared between threads.
 *
 * Callbacks always come from the loop, never from inside the call that
 * started the lookup (an answer c-ares has at once — a numeric name, a
 * hosts-file entry, an immediate error — is delivered on the next loop
 * turn). Results are bounded (DNS_MAX_ADDRS, DNS_MAX_SRV) and valid during
 * the callback only. dns_resolver_close ends every lookup with
 * DNS_CANCELLED and frees the resolver once its handles have closed.
 */
#ifndef UNBUSY_DNS_H
#define UNBUSY_DNS_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#define DNS_MAX_ADDRS 64   /* addresses kept from one answer */
#define DNS_MAX_SRV 32     /* SRV records kept from one answer */
#define DNS_MAX_SOCKETS 16 /* sockets c-ares may have open at once on one channel */

/* Outcome of a lookup (0 is success). */
enum dns_status {
    DNS_OK = 0,
    DNS_NOT_FOUND, /* no such name, or no record of the type asked */
    DNS_FAILED,    /* server failure, refused, malformed answer */
    DNS_TIMEOUT,   /* no server answered in time */
    DNS_NO_MEMORY,
    DNS_CANCELLED, /* the resolver is closing */
};

/* "ok", "not_found", "failed", "timeout", "no_memory", "cancelled". */
const char *dns_status_name(enum dns_status s);

struct dns_addr {
    struct sockaddr_storage sa; /* with the port asked for */
    uint32_t ttl_s;
};

struct dns_srv {
    char target[256];
    uint16_t priority, weight, port;
};

typedef void (*dns_addrs_cb)(void *ud, enum dns_status st, const struct dns_addr *addrs, size_t n);
typedef void (*dns_srv_cb)(void *ud, enum dns_status st, const struct dns_srv *recs, size_t n);

struct dns_resolver;

/*
 * A resolver on loop. servers: NULL for the system's (/etc/resolv.conf), or
 * "HOST:PORT[,HOST:PORT...]" (IPv6 as [addr]:port). timeout_ms: per try
 * (c-ares tries each server, twice). Returns NULL with *err (-EINVAL for a
 * bad servers string, -ENOMEM, -EIO when c-ares cannot start).
 */
struct dns_resolver *dns_resolver_new(uv_loop_t *loop, const char *servers, uint32_t timeout_ms,
                                      int *err);
/* Cancels every lookup (their callbacks run with DNS_CANCELLED, from the loop), closes
   the handles and frees the resolver. */
void dns_resolver_close(struct dns_resolver *r);

/* A and AAAA of name, each address with port. 0, or -ENOMEM / -ESHUTDOWN (no callback). */
int dns_resolve_addrs(struct dns_resolver *r, const char *name, uint16_t port, dns_addrs_cb cb,
                      void *ud);
/* The SRV records of name. 0, or -ENOMEM / -ESHUTDOWN (no callback). */
int dns_resolve_srv(struct dns_resolver *r, const char *name, dns_srv_cb cb, void *ud);

#endif
