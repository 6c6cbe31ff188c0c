/*
 * bench/probe.c — the loop-latency probe of bench/memory.sh: every INTERVAL ms one
 * GET /healthz on a new connection to 127.0.0.1:PORT, timed from connect(2) to the
 * answer's close, and the same to CONTROL_PORT (an idle gateway) right after, if given.
 *
 *   probe PORT [CONTROL_PORT [INTERVAL_MS]]
 *
 * A probe written in C and run at a real-time priority (memory.sh starts it under
 * `chrt -f`, where it may) is woken the moment its answer comes: what it measures is the
 * gateway, not a busy machine's scheduler or a garbage collector. SIGUSR1 marks the time
 * from which probes are also counted apart ("steady": once every stream flows); SIGTERM
 * ends it. It then prints one line of JSON, {"lat":[...],"control":[...],"steady":[...]},
 * the milliseconds of each probe sorted, and exits. A probe that fails or takes more than
 * 10 s counts as 10,000 ms. Plain libc: nothing of the gateway.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define PROBE_MAX 100000 /* probes kept (about 3 hours at 100 ms) */
#define PROBE_LIMIT_MS 10000

static volatile sig_atomic_t stopping, steady_from;

static void on_signal(int sig)
{
    if (sig == SIGUSR1)
        steady_from = 1;
    else
        stopping = 1;
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* One probe: milliseconds from connect to the answer's close (PROBE_LIMIT_MS: failed). */
static double probe_once(int port)
{
    static const char req[] = "GET /healthz HTTP/1.1\r\nHost: p\r\nConnection: close\r\n\r\n";
    double t0 = now_ms();
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return PROBE_LIMIT_MS;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    double ms = PROBE_LIMIT_MS;
    if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        send(fd, req, sizeof req - 1, MSG_NOSIGNAL) == (ssize_t)(sizeof req - 1)) {
        char buf[4096];
        for (;;) {
            double left = PROBE_LIMIT_MS - (now_ms() - t0);
            struct pollfd p = {.fd = fd, .events = POLLIN};
            if (left <= 0 || poll(&p, 1, (int)left + 1) <= 0) break;
            ssize_t n = recv(fd, buf, sizeof buf, 0);
            if (n == 0) {
                ms = now_ms() - t0;
                break;
            }
            if (n < 0 && errno != EINTR) break;
        }
    }
    close(fd);
    return ms;
}

static int cmp(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return a < b ? -1 : a > b;
}

static void print_list(const char *name, double *v, size_t n, const char *sep)
{
    qsort(v, n, sizeof *v, cmp);
    printf("\"%s\":[", name);
    for (size_t i = 0; i < n; i++)
        printf("%s%.3f", i ? "," : "", v[i]);
    printf("]%s", sep);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: probe PORT [CONTROL_PORT [INTERVAL_MS]]\n");
        return 2;
    }
    int port = atoi(argv[1]), control = argc > 2 ? atoi(argv[2]) : 0;
    int interval = argc > 3 ? atoi(argv[3]) : 100;
    static double lat[PROBE_MAX], ctl[PROBE_MAX], steady[PROBE_MAX];
    size_t nl = 0, nc = 0, ns = 0;
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    while (!stopping && nl < PROBE_MAX) {
        int counted_steady = steady_from;
        double ms = probe_once(port);
        lat[nl++] = ms;
        if (counted_steady) steady[ns++] = ms;
        if (control) ctl[nc++] = probe_once(control);
        struct timespec ts = {.tv_sec = interval / 1000,
                              .tv_nsec = (long)(interval % 1000) * 1000000L};
        while (!stopping && nanosleep(&ts, &ts) < 0 && errno == EINTR)
            ;
    }
    printf("{");
    print_list("lat", lat, nl, ",");
    print_list("control", ctl, nc, ",");
    print_list("steady", steady, ns, "}\n");
    fflush(stdout);
    return 0;
}
