#include "worker.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/log.h"
#include "obs/accesslog.h"
#include "net/redis.h"

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
    if (bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, SERVER_LISTEN_BACKLOG) < 0) {
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

static void on_handles_closed(void *ud)
{
    struct worker *w = ud;
    uv_close((uv_handle_t *)&w->wake, NULL);
    uv_close((uv_handle_t *)&w->drain_timer, NULL);
    server_close(&w->server);
}

static void worker_finish(struct worker *w)
{
    if (w->stopped)
        return;
    w->stopped = true;
    redis_close(w->env.redis, NULL, NULL); /* its handles close with the loop's others */
    w->env.redis = NULL;
    proxy_env_close(&w->env, on_handles_closed, w);
}

static void maybe_finished(struct worker *w)
{
    if (w->server.draining && w->server.nconns == 0)
        worker_finish(w);
}

static void on_conn_closed(struct server *s)
{
    maybe_finished(s->owner);
}

static void on_drain_timeout(uv_timer_t *t)
{
    struct worker *w = t->data;
    if (w->server.nconns > 0)
        log_warn("worker %u: drain timeout with %u connection(s) still open; closing them", w->id,
                 w->server.nconns);
    worker_finish(w);
    uv_stop(&w->loop);
}

static void on_wake(uv_async_t *a)
{
    struct worker *w = a->data;
    if (!atomic_load(&w->drain_requested) || w->server.draining)
        return;
    server_drain(&w->server);
    uv_timer_start(&w->drain_timer, on_drain_timeout, w->cfg->server.drain_timeout_ms, 0);
    maybe_finished(w);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    uv_run(&w->loop, UV_RUN_DEFAULT);
    accesslog_thread_done(); /* the last lines (a drain that timed out stopped the loop mid-way) */
    return NULL;
}

int worker_init(struct worker *w, unsigned id, struct config *cfg, struct runtime *rt)
{
    w->id = id;
    w->cfg = config_ref(cfg);
    int rc = uv_loop_init(&w->loop);
    if (rc < 0)
        return rc;
    uv_async_init(&w->loop, &w->wake, on_wake);
    w->wake.data = w;
    uv_timer_init(&w->loop, &w->drain_timer);
    w->drain_timer.data = w;
    return proxy_env_init(&w->env, id, &w->loop, w->cfg, rt);
}

int worker_start(struct worker *w, int listen_fd, struct tls_server *tls,
                 const struct server_handlers *handlers)
{
    w->server.owner = w;
    w->server.on_conn_closed = on_conn_closed;
    int rc = server_init(&w->server, &w->loop, listen_fd, &w->cfg->server, tls, handlers, &w->env);
    if (rc < 0)
        return rc;
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
