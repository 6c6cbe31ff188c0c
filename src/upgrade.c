#include "upgrade.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/log.h"

extern char **environ;

/* ---- the new process ---- */

static unsigned inherited;
static int ready_fd = -1;

long upgrade_parse_count(const char *s, long max)
{
    if (!s || !*s || strlen(s) > 9) return -1;
    long v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9') return -1;
        v = v * 10 + (*p - '0');
    }
    return v >= 1 && v <= max ? v : -1;
}

static bool is_listening_tcp(int fd)
{
    int type = 0, listening = 0;
    socklen_t len = sizeof type;
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0 || type != SOCK_STREAM) return false;
    len = sizeof listening;
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) < 0 || !listening) return false;
    struct sockaddr_storage ss;
    len = sizeof ss;
    return getsockname(fd, (struct sockaddr *)&ss, &len) == 0 &&
           (ss.ss_family == AF_INET || ss.ss_family == AF_INET6);
}

int upgrade_inherit(char *err, size_t errlen)
{
    const char *n = getenv(UPGRADE_ENV_FDS), *r = getenv(UPGRADE_ENV_READY);
    if (!n) return 0;
    long count = upgrade_parse_count(n, UPGRADE_MAX_FDS);
    long rfd = r ? upgrade_parse_count(r, 3 + UPGRADE_MAX_FDS) : -1;
    /* gone from the environment: a process this one starts later must not see them */
    unsetenv(UPGRADE_ENV_FDS);
    unsetenv(UPGRADE_ENV_READY);
    if (count < 0) {
        snprintf(err, errlen, "%s: not a count of listening sockets", UPGRADE_ENV_FDS);
        return -1;
    }
    for (long i = 0; i < count; i++) {
        if (!is_listening_tcp(3 + (int)i)) {
            snprintf(err, errlen, "%s=%ld: fd %ld is not a listening TCP socket", UPGRADE_ENV_FDS,
                     count, 3 + i);
            return -1;
        }
        fcntl(3 + (int)i, F_SETFD, FD_CLOEXEC);
    }
    if (rfd == 3 + count) {
        ready_fd = (int)rfd;
        fcntl(ready_fd, F_SETFD, FD_CLOEXEC);
    }
    inherited = (unsigned)count;
    return (int)count;
}

int upgrade_inherited_fd(unsigned i)
{
    return i < inherited ? 3 + (int)i : -1;
}

void upgrade_inherited_close_from(unsigned i)
{
    for (; i < inherited; i++)
        close(3 + (int)i);
}

void upgrade_fd_port(int fd, uint16_t *port)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0)
        *port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                               : ((struct sockaddr_in *)&ss)->sin_port);
}

bool upgrade_fd_matches(int fd, const char *host, uint16_t port)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0) return false;
    struct addrinfo hints = {.ai_family = ss.ss_family,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    if (getaddrinfo(host && *host ? host : NULL, "0", &hints, &res) != 0) return false;
    bool same = false;
    for (struct addrinfo *a = res; a && !same; a = a->ai_next) {
        if (ss.ss_family == AF_INET) {
            const struct sockaddr_in *x = (void *)&ss, *y = (void *)a->ai_addr;
            same = x->sin_addr.s_addr == y->sin_addr.s_addr &&
                   (port == 0 || ntohs(x->sin_port) == port);
        } else {
            const struct sockaddr_in6 *x = (void *)&ss, *y = (void *)a->ai_addr;
            same = memcmp(&x->sin6_addr, &y->sin6_addr, sizeof x->sin6_addr) == 0 &&
                   (port == 0 || ntohs(x->sin6_port) == port);
        }
    }
    freeaddrinfo(res);
    return same;
}

bool upgrade_tell_ready(void)
{
    if (ready_fd < 0) return false;
    ssize_t n;
    do
        n = write(ready_fd, "R", 1); /* a pipe with room: does not block */
    while (n < 0 && errno == EINTR);
    close(ready_fd);
    ready_fd = -1;
    return true;
}

/* ---- the old process ---- */

struct upgrade {
    uv_process_t proc;
    uv_pipe_t ready;  /* the read end: one byte when the new process serves */
    uv_timer_t timer; /* UPGRADE_READY_TIMEOUT_MS */
    upgrade_done_fn done;
    void *ud;
    int pid;
    bool told; /* done was called */
    bool exited;
    int open_handles;
    char byte;
};

static void tell(struct upgrade *u, int pid)
{
    if (u->told) return;
    u->told = true;
    uv_timer_stop(&u->timer);
    if (!uv_is_closing((uv_handle_t *)&u->ready)) uv_read_stop((uv_stream_t *)&u->ready);
    u->done(u->ud, pid);
}

static void on_child_exit(uv_process_t *p, int64_t status, int signum)
{
    struct upgrade *u = p->data;
    u->exited = true;
    if (!u->told) {
        if (signum)
            log_error("upgrade: the new process %d was killed by signal %d before it served",
                      u->pid, signum);
        else
            log_error("upgrade: the new process %d exited with status %lld before it served "
                      "(its error is above)",
                      u->pid, (long long)status);
    } else {
        log_info("upgrade: process %d exited with status %lld", u->pid, (long long)status);
    }
    tell(u, 0);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    struct upgrade *u = h->data;
    (void)suggested;
    *b = uv_buf_init(&u->byte, 1);
}

static void on_ready_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
    struct upgrade *u = s->data;
    (void)b;
    if (nread == 0) return;
    if (nread > 0) {
        tell(u, u->pid);
        return;
    }
    /* the pipe closed without the byte: the new process gave up (its exit follows) */
    if (!u->exited) uv_process_kill(&u->proc, SIGTERM);
    tell(u, 0);
}

static void on_timeout(uv_timer_t *t)
{
    struct upgrade *u = t->data;
    log_error("upgrade: the new process %d did not serve within %d s; stopping it", u->pid,
              UPGRADE_READY_TIMEOUT_MS / 1000);
    if (!u->exited) uv_process_kill(&u->proc, SIGTERM);
    tell(u, 0);
}

/* The environment with the two variables set to this upgrade's values. */
static char **child_env(unsigned nfds)
{
    size_t n = 0;
    while (environ[n])
        n++;
    char **env = calloc(n + 3, sizeof *env);
    if (!env) return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], UPGRADE_ENV_FDS "=", strlen(UPGRADE_ENV_FDS) + 1) != 0 &&
            strncmp(environ[i], UPGRADE_ENV_READY "=", strlen(UPGRADE_ENV_READY) + 1) != 0)
            env[k++] = environ[i];
    static char fds_var[48], ready_var[48];
    snprintf(fds_var, sizeof fds_var, "%s=%u", UPGRADE_ENV_FDS, nfds);
    snprintf(ready_var, sizeof ready_var, "%s=%u", UPGRADE_ENV_READY, 3 + nfds);
    env[k++] = fds_var;
    env[k++] = ready_var;
    return env;
}

static void on_handle_closed(uv_handle_t *h)
{
    struct upgrade *u = h->data;
    if (--u->open_handles == 0) free(u);
}

int upgrade_start(uv_loop_t *loop, char *const *argv, const int *fds, unsigned nfds,
                  upgrade_done_fn done, void *ud, struct upgrade **out)
{
    if (nfds == 0 || nfds > UPGRADE_MAX_FDS) return UV_EINVAL;
    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) < 0) return uv_translate_sys_error(errno);
    struct upgrade *u = calloc(1, sizeof *u);
    uv_stdio_container_t *stdio = calloc(4 + nfds, sizeof *stdio);
    char **env = child_env(nfds);
    int rc = UV_ENOMEM;
    if (!u || !stdio || !env) goto fail;
    for (int i = 0; i < 3; i++)
        stdio[i] = (uv_stdio_container_t){.flags = UV_INHERIT_FD, .data.fd = i};
    for (unsigned i = 0; i < nfds; i++)
        stdio[3 + i] = (uv_stdio_container_t){.flags = UV_INHERIT_FD, .data.fd = fds[i]};
    stdio[3 + nfds] = (uv_stdio_container_t){.flags = UV_INHERIT_FD, .data.fd = pfd[1]};
    uv_process_options_t opt = {
        .exit_cb = on_child_exit,
        .file = argv[0],
        .args = (char **)argv,
        .env = env,
        .stdio_count = (int)(4 + nfds),
        .stdio = stdio,
        /* its own session: a terminal's ^C to the old process group leaves the new one be */
        .flags = UV_PROCESS_DETACHED,
    };
    u->proc.data = u;
    rc = uv_spawn(loop, &u->proc, &opt);
    if (rc < 0) {
        close(pfd[0]);
        close(pfd[1]);
        free(stdio);
        free(env);
        u->open_handles = 1; /* the handle was initialised: closed, then u freed */
        uv_close((uv_handle_t *)&u->proc, on_handle_closed);
        return rc;
    }
    close(pfd[1]);
    pfd[1] = -1;
    u->done = done;
    u->ud = ud;
    u->pid = u->proc.pid;
    u->open_handles = 1;
    uv_pipe_init(loop, &u->ready, 0);
    u->ready.data = u;
    u->open_handles++;
    uv_pipe_open(&u->ready, pfd[0]);
    uv_read_start((uv_stream_t *)&u->ready, on_alloc, on_ready_read);
    uv_timer_init(loop, &u->timer);
    u->timer.data = u;
    u->open_handles++;
    uv_timer_start(&u->timer, on_timeout, UPGRADE_READY_TIMEOUT_MS, 0);
    free(stdio);
    free(env);
    *out = u;
    return 0;
fail:
    close(pfd[0]);
    if (pfd[1] >= 0) close(pfd[1]);
    free(u);
    free(stdio);
    free(env);
    return rc;
}

int upgrade_pid_of(const struct upgrade *u)
{
    return u->pid;
}

void upgrade_abort(struct upgrade *u)
{
    if (!u || u->told) return;
    if (!u->exited) uv_process_kill(&u->proc, SIGTERM);
    u->told = true; /* the caller is going away: no done call */
    uv_timer_stop(&u->timer);
}

void upgrade_close(struct upgrade *u)
{
    if (!u) return;
    u->told = true;
    uv_close((uv_handle_t *)&u->proc, on_handle_closed);
    uv_close((uv_handle_t *)&u->ready, on_handle_closed);
    uv_close((uv_handle_t *)&u->timer, on_handle_closed);
}
