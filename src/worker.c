#include "worker.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "admit/admission.h"
#include "base/log.h"
#include "proxy/proxy.h"
#include "http/server.h"

int worker_listen_socket(const char *host, uint16_t port, uint16_t *bound_port)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    char portstr[8];
    snprintf(portstr, sizeof portstr, "%u", port);
    int rc = getaddrinfo(host && *host ? host : NULL, portstr, &hints, &res);
    if (rc != 0)
        return -EADDRNOTAVAIL;
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        freeaddrinfo(res);
        return -errno;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    if (bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, 1024) < 0) {
        int err = -errno;
        close(fd);
        freeaddrinfo(res);
        return err;
    }
    freeaddrinfo(res);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (bound_port && getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
        *bound_port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                      : ((struct sockaddr_in *)&ss)->sin_port);
    return fd;
}

void worker_request_id(struct worker *w, char *out)
{
    /* xorshift64*: request ids need to be unique, not secret. */
    uint64_t x = w->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    w->rng = x;
    snprintf(out, 17, "%016llx", (unsigned long long)(x * 0x2545F4914F6CDD1DULL));
}

void worker_admission_ready(void *owner, struct admission_waiter *aw)
{
    struct worker *w = owner;
    pthread_mutex_lock(&w->admit_lock);
    aw->next = w->admit_ready;
    w->admit_ready = aw;
    pthread_mutex_unlock(&w->admit_lock);
    uv_async_send(&w->admit_async);
}

static void on_admit_async(uv_async_t *a)
{
    struct worker *w = a->data;
    pthread_mutex_lock(&w->admit_lock);
    struct admission_waiter *list = w->admit_ready;
    w->admit_ready = NULL;
    pthread_mutex_unlock(&w->admit_lock);
    /* oldest first: the list was built newest first */
    struct admission_waiter *rev = NULL;
    while (list) {
        struct admission_waiter *next = list->next;
        list->next = rev;
        rev = list;
        list = next;
    }
    while (rev) {
        struct admission_waiter *next = rev->next;
        rev->next = NULL;
        proxy_admitted(rev);
        rev = next;
    }
}

static void on_flush_check(uv_check_t *h)
{
    server_flush_all(h->data);
}

static void on_flush_prepare(uv_prepare_t *h)
{
    server_flush_all(h->data);
}

static void on_pool_closed(void *ud)
{
    struct worker *w = ud;
    uv_close((uv_handle_t *)&w->wake, NULL);
    uv_close((uv_handle_t *)&w->admit_async, NULL);
    uv_close((uv_handle_t *)&w->flush_check, NULL);
    uv_close((uv_handle_t *)&w->flush_prepare, NULL);
    uv_close((uv_handle_t *)&w->drain_timer, NULL);
}

static void worker_finish(struct worker *w)
{
    if (w->stopped)
        return;
    w->stopped = true;
    transport_pool_close(w->pool, on_pool_closed, w);
}

static void maybe_finished(struct worker *w)
{
    if (w->draining && w->nconns == 0)
        worker_finish(w);
}

void worker_conn_closed(struct worker *w)
{
    maybe_finished(w);
}

static void on_drain_timeout(uv_timer_t *t)
{
    struct worker *w = t->data;
    if (w->nconns > 0)
        log_warn("worker %u: drain timeout with %u connection(s) still open; closing them", w->id,
                 w->nconns);
    worker_finish(w);
    uv_stop(&w->loop);
}

static void on_wake(uv_async_t *a)
{
    struct worker *w = a->data;
    if (!atomic_load(&w->drain_requested) || w->draining)
        return;
    w->draining = true;
    uv_close((uv_handle_t *)&w->listener, NULL);
    server_drain(w);
    uv_timer_start(&w->drain_timer, on_drain_timeout, w->cfg->server.drain_timeout_ms, 0);
    maybe_finished(w);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    uv_run(&w->loop, UV_RUN_DEFAULT);
    return NULL;
}

int worker_start(struct worker *w, unsigned id, int listen_fd, struct config *cfg, struct runtime *rt)
{
    w->id = id;
    w->rt = rt;
    w->cfg = config_ref(cfg);
    w->listen_fd = listen_fd;
    if (getrandom(&w->rng, sizeof w->rng, 0) != sizeof w->rng || w->rng == 0)
        w->rng = 0x9E3779B97F4A7C15ULL ^ ((uint64_t)id << 32) ^ (uint64_t)uv_hrtime();
    int rc = uv_loop_init(&w->loop);
    if (rc < 0)
        return rc;
    uv_tcp_init(&w->loop, &w->listener);
    w->listener.data = w;
    if ((rc = uv_tcp_open(&w->listener, listen_fd)) < 0)
        return rc;
    if ((rc = uv_listen((uv_stream_t *)&w->listener, 1024, server_on_connection)) < 0)
        return rc;
    uv_async_init(&w->loop, &w->wake, on_wake);
    w->wake.data = w;
    uv_check_init(&w->loop, &w->flush_check);
    w->flush_check.data = w;
    uv_check_start(&w->flush_check, on_flush_check);
    uv_prepare_init(&w->loop, &w->flush_prepare);
    w->flush_prepare.data = w;
    uv_prepare_start(&w->flush_prepare, on_flush_prepare);
    pthread_mutex_init(&w->admit_lock, NULL);
    uv_async_init(&w->loop, &w->admit_async, on_admit_async);
    w->admit_async.data = w;
    uv_timer_init(&w->loop, &w->drain_timer);
    w->drain_timer.data = w;
    w->pool = transport_pool_new(&w->loop);
    if (!w->pool)
        return -ENOMEM;
    /* Load CA stores now, off the loop, so a first request does not pay for it. */
    for (size_t i = 0; i < cfg->nproviders; i++)
        if (cfg->providers[i].tls)
            transport_pool_warm(w->pool, &cfg->providers[i]);
    rc = pthread_create(&w->thread, NULL, worker_main, w);
    return rc ? -rc : 0;
}

void worker_drain(struct worker *w)
{
    atomic_store(&w->drain_requested, true);
    uv_async_send(&w->wake);
}

void worker_join(struct worker *w)
{
    pthread_join(w->thread, NULL);
}
