/*
 * fastfake — a fast fake LLM upstream, for benchmarks only.
 *
 *   fastfake [--port N] [--chunks N]
 *
 * bench/run.sh puts it behind unbusy, nginx and HAProxy so that the proxies,
 * not the upstream, are what is measured: the test suite's fakeup writes each
 * SSE event with its own write() and serves about 5,000 streams a second on
 * one CPU, which is where every proxy used to land.
 *
 * One thread, one epoll set (level-triggered), non-blocking sockets on
 * 127.0.0.1 (port 0, the default, picks a free one); the first line on stdout
 * is "listening PORT". HTTP/1.1 with keep-alive and pipelining; a request body
 * must come with Content-Length (a chunked request body is answered 400 and
 * the connection closed). Every answer is prepared once at start and sent
 * with one write() (the rest, if the socket takes less, when it is writable),
 * its id ("chatcmpl-" and 16 hex digits, one more per answer) and "created"
 * (the time) written in as it is queued, as a server gives each answer its own:
 *
 *   POST .../chat/completions whose body has "stream": true
 *       200 text/event-stream, chunked: a role chunk, N content chunks
 *       ("tok0 " ... , 20 by default), a finish chunk, a usage chunk and
 *       "data: [DONE]", one HTTP chunk per SSE event — the shape and bytes of
 *       fakeup's "chunks=20" answer
 *   POST .../chat/completions otherwise
 *       200 application/json, the same answer as one chat.completion body
 *   GET .../models
 *       200, a list with the model "bench" (what a gateway's health probe asks)
 *   anything else
 *       404 with a JSON error
 *
 * Bounded: at most FF_MAX_CONNS connections, a request head of 16 KiB, a body
 * of 1 MiB, FF_OUT_MAX bytes queued per connection (then it stops reading
 * until the queue drains). SIGTERM or SIGINT ends it (exit 0).
 */

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define FF_MAX_CONNS 8192
#define FF_HEAD_MAX (16u * 1024)
#define FF_BODY_MAX (1u << 20)
#define FF_IN_CAP (FF_HEAD_MAX + FF_BODY_MAX)
#define FF_OUT_MAX (256u * 1024)
#define FF_READ (64u * 1024)

struct ff_conn {
    int fd;
    char *in;
    size_t in_len;
    char *out;
    size_t out_len, out_off;
    bool want_out;    /* EPOLLOUT registered */
    bool close_after; /* close once out is sent */
};

/* An answer's id and "created": each answer gets its own, in place, as a server's do. */
#define FF_ID "chatcmpl-0000000000000000"
#define FF_ID_DIGITS 16
#define FF_CREATED "1796277561"
#define FF_MAX_MARKS 512

struct ff_marks {
    size_t id[FF_MAX_MARKS], created[FF_MAX_MARKS]; /* where the digits are, in the answer */
    size_t n_id, n_created;
};

static struct {
    char *stream, *whole, *models, *notfound, *bad;
    size_t stream_len, whole_len, models_len, notfound_len, bad_len;
    struct ff_marks stream_marks, whole_marks;
    uint64_t answers;
    volatile sig_atomic_t stop;
    int ep;
} ff;

static void on_signal(int sig)
{
    (void)sig;
    ff.stop = 1;
}

/* A growing string for building the canned answers once at start. */
struct ff_str {
    char *p;
    size_t len, cap;
};

static void str_add(struct ff_str *s, const char *data, size_t n)
{
    if (s->len + n + 1 > s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 4096;
        while (cap < s->len + n + 1)
            cap *= 2;
        s->p = realloc(s->p, cap);
        if (!s->p) {
            perror("fastfake: realloc");
            exit(1);
        }
        s->cap = cap;
    }
    memcpy(s->p + s->len, data, n);
    s->len += n;
    s->p[s->len] = '\0';
}

static void str_addf(struct ff_str *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void str_addf(struct ff_str *s, const char *fmt, ...)
{
    char tmp[2048];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof tmp) {
        fprintf(stderr, "fastfake: line too long\n");
        exit(1);
    }
    str_add(s, tmp, (size_t)n);
}

/* One SSE event as one HTTP chunk. */
static void add_event(struct ff_str *s, const char *json)
{
    size_t n = strlen("data: ") + strlen(json) + 2;
    str_addf(s, "%zx\r\ndata: %s\n\n\r\n", n, json);
}

static void find_marks(const char *p, size_t n, struct ff_marks *m)
{
    const char *end = p + n;
    for (const char *q = p; (q = memmem(q, (size_t)(end - q), FF_ID, strlen(FF_ID)));
         q += strlen(FF_ID))
        if (m->n_id < FF_MAX_MARKS)
            m->id[m->n_id++] = (size_t)(q - p) + strlen(FF_ID) - FF_ID_DIGITS;
    const char *key = "\"created\":" FF_CREATED;
    for (const char *q = p; (q = memmem(q, (size_t)(end - q), key, strlen(key))); q += strlen(key))
        if (m->n_created < FF_MAX_MARKS)
            m->created[m->n_created++] = (size_t)(q - p) + strlen(key) - 10;
}

/* The answer just queued at out[0..) with this answer's id and the time. */
static void stamp(char *out, const struct ff_marks *m)
{
    char id[FF_ID_DIGITS + 1], created[16];
    snprintf(id, sizeof id, "%016llx", (unsigned long long)++ff.answers);
    snprintf(created, sizeof created, "%010lld", (long long)time(NULL) % 10000000000LL);
    for (size_t i = 0; i < m->n_id; i++)
        memcpy(out + m->id[i], id, FF_ID_DIGITS);
    for (size_t i = 0; i < m->n_created; i++)
        memcpy(out + m->created[i], created, 10);
}

static void build_answers(int chunks)
{
    const char *head =
        "{\"id\":\"" FF_ID "\",\"object\":\"chat.completion.chunk\",\"created\":" FF_CREATED ","
        "\"model\":\"bench\",\"choices\":";
#define FF_USAGE                                                                                   \
    "\"usage\":{\"prompt_tokens\":30,\"completion_tokens\":%d,\"total_tokens\":%d,"                \
    "\"prompt_cache_hit_tokens\":0,\"prompt_cache_miss_tokens\":30,"                               \
    "\"completion_tokens_details\":{\"reasoning_tokens\":0}}"
    struct ff_str s = {0}, ev = {0}, text = {0};
    char u[512];
    snprintf(u, sizeof u, FF_USAGE, chunks, 30 + chunks);

    str_add(
        &s,
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: keep-alive\r\n"
        "Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n",
        strlen("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: keep-alive\r\n"
               "Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n"));
    ev.len = 0;
    str_addf(&ev,
             "%s[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_"
             "reason\":null}]}",
             head);
    add_event(&s, ev.p);
    for (int i = 0; i < chunks; i++) {
        ev.len = 0;
        str_addf(&ev,
                 "%s[{\"index\":0,\"delta\":{\"content\":\"tok%d \"},\"finish_reason\":null}]}",
                 head, i);
        add_event(&s, ev.p);
        str_addf(&text, "tok%d ", i);
    }
    ev.len = 0;
    str_addf(&ev, "%s[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}", head);
    add_event(&s, ev.p);
    ev.len = 0;
    str_addf(&ev, "%s[],%s}", head, u);
    add_event(&s, ev.p);
    str_addf(&s, "e\r\ndata: [DONE]\n\n\r\n0\r\n\r\n");
    ff.stream = s.p;
    ff.stream_len = s.len;
    find_marks(ff.stream, ff.stream_len, &ff.stream_marks);

    struct ff_str body = {0}, w = {0};
    str_addf(&body,
             "{\"id\":\"" FF_ID "\",\"object\":\"chat.completion\",\"created\":" FF_CREATED ","
             "\"model\":\"bench\","
             "\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"%s\"},"
             "\"logprobs\":null,\"finish_reason\":\"stop\"}],%s}",
             text.p ? text.p : "", u);
    str_addf(&w,
             "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: keep-alive\r\n"
             "Content-Length: %zu\r\n\r\n",
             body.len);
    str_add(&w, body.p, body.len);
    ff.whole = w.p;
    ff.whole_len = w.len;
    find_marks(ff.whole, ff.whole_len, &ff.whole_marks);
    free(body.p);
    free(ev.p);
    free(text.p);

    static const char models_body[] =
        "{\"object\":\"list\",\"data\":[{\"id\":\"bench\",\"object\":\"model\","
        "\"created\":1796277561,\"owned_by\":\"fastfake\"}]}";
    struct ff_str md = {0};
    str_addf(&md,
             "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
             sizeof models_body - 1, models_body);
    ff.models = md.p;
    ff.models_len = md.len;
    static const char nf_body[] =
        "{\"error\":{\"message\":\"not found\",\"type\":\"invalid_request_error\","
        "\"param\":null,\"code\":null}}";
    struct ff_str nf = {0};
    str_addf(
        &nf,
        "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
        sizeof nf_body - 1, nf_body);
    ff.notfound = nf.p;
    ff.notfound_len = nf.len;
    struct ff_str bad = {0};
    str_addf(&bad, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    ff.bad = bad.p;
    ff.bad_len = bad.len;
}

/* The value of header NAME (case-insensitive) in HEAD, or NULL; *len its length. */
static const char *header(const char *head, size_t head_len, const char *name, size_t *len)
{
    size_t nl = strlen(name);
    const char *p = memchr(head, '\n', head_len), *end = head + head_len;
    while (p && p + 1 < end) {
        const char *line = p + 1;
        const char *eol = memchr(line, '\n', (size_t)(end - line));
        if (!eol) break;
        if ((size_t)(eol - line) > nl && line[nl] == ':' && strncasecmp(line, name, nl) == 0) {
            const char *v = line + nl + 1;
            while (v < eol && (*v == ' ' || *v == '\t'))
                v++;
            const char *e = eol;
            while (e > v && (e[-1] == '\r' || e[-1] == ' '))
                e--;
            *len = (size_t)(e - v);
            return v;
        }
        p = eol;
    }
    return NULL;
}

/* True when the JSON body has a top-level-looking "stream": true (enough for a benchmark). */
static bool wants_stream(const char *body, size_t len)
{
    const char *end = body + len, *p = body;
    while ((p = memmem(p, (size_t)(end - p), "\"stream\"", 8))) {
        p += 8;
        while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
            p++;
        if (p < end && *p == ':') {
            p++;
            while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
                p++;
            return end - p >= 4 && memcmp(p, "true", 4) == 0;
        }
    }
    return false;
}

static int queue_out(struct ff_conn *c, const char *data, size_t n)
{
    if (c->out_len + n > FF_OUT_MAX + FF_IN_CAP) return -1;
    if (!c->out) {
        c->out = malloc(FF_OUT_MAX + FF_IN_CAP);
        if (!c->out) return -1;
    }
    memcpy(c->out + c->out_len, data, n);
    c->out_len += n;
    return 0;
}

/* Answers the complete requests in c->in (until the queue is full); returns the bytes
 * consumed, or -1 to close. */
static long serve(struct ff_conn *c)
{
    size_t off = 0;
    while (off < c->in_len && !c->close_after && c->out_len < FF_OUT_MAX) {
        const char *h = c->in + off;
        size_t avail = c->in_len - off;
        const char *eoh = memmem(h, avail, "\r\n\r\n", 4);
        if (!eoh) {
            if (avail > FF_HEAD_MAX) return -1;
            break;
        }
        size_t head_len = (size_t)(eoh - h) + 4, vlen, body_len = 0;
        const char *v;
        if ((v = header(h, head_len, "transfer-encoding", &vlen))) {
            c->close_after = true;
            if (queue_out(c, ff.bad, ff.bad_len)) return -1;
            break;
        }
        if ((v = header(h, head_len, "content-length", &vlen))) {
            char num[24];
            if (vlen == 0 || vlen >= sizeof num) return -1;
            memcpy(num, v, vlen);
            num[vlen] = '\0';
            char *e;
            unsigned long long n = strtoull(num, &e, 10);
            if (*e || n > FF_BODY_MAX) return -1;
            body_len = (size_t)n;
        }
        if (avail < head_len + body_len) break;
        const char *sp = memchr(h, ' ', head_len);
        const char *sp2 = sp ? memchr(sp + 1, ' ', head_len - (size_t)(sp + 1 - h)) : NULL;
        bool chat = sp && sp2 && (size_t)(sp2 - sp - 1) >= 17 &&
                    memcmp(sp2 - 17, "/chat/completions", 17) == 0 && memcmp(h, "POST ", 5) == 0;
        bool models = sp && sp2 && (size_t)(sp2 - sp - 1) >= 7 &&
                      memcmp(sp2 - 7, "/models", 7) == 0 && memcmp(h, "GET ", 4) == 0;
        int rc;
        if (models)
            rc = queue_out(c, ff.models, ff.models_len);
        else if (!chat)
            rc = queue_out(c, ff.notfound, ff.notfound_len);
        else if (wants_stream(h + head_len, body_len)) {
            size_t at = c->out_len;
            if (!(rc = queue_out(c, ff.stream, ff.stream_len)))
                stamp(c->out + at, &ff.stream_marks);
        } else {
            size_t at = c->out_len;
            if (!(rc = queue_out(c, ff.whole, ff.whole_len))) stamp(c->out + at, &ff.whole_marks);
        }
        if (rc) return -1;
        off += head_len + body_len;
    }
    if (off) {
        memmove(c->in, c->in + off, c->in_len - off);
        c->in_len -= off;
    }
    return (long)off;
}

static void conn_close(struct ff_conn *c)
{
    epoll_ctl(ff.ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c->in);
    free(c->out);
    free(c);
}

static int set_events(struct ff_conn *c)
{
    /* Stop reading while a full queue waits; ask for writability while anything is queued. */
    bool want_out = c->out_len > c->out_off;
    if (want_out == c->want_out) return 0;
    struct epoll_event ev = {.events = (want_out ? EPOLLOUT : EPOLLIN), .data.ptr = c};
    c->want_out = want_out;
    return epoll_ctl(ff.ep, EPOLL_CTL_MOD, c->fd, &ev);
}

/* Writes what is queued; returns -1 on error. */
static int flush(struct ff_conn *c)
{
    while (c->out_off < c->out_len) {
        ssize_t n = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN) break;
            return -1;
        }
        c->out_off += (size_t)n;
    }
    if (c->out_off == c->out_len) {
        c->out_off = c->out_len = 0;
        if (c->close_after) return -1;
    }
    return set_events(c);
}

/* Answers what is buffered, as long as the socket takes it; returns -1 to close. */
static int answer(struct ff_conn *c)
{
    for (;;) {
        long n = serve(c);
        if (n < 0 || flush(c)) return -1;
        if (n == 0 || c->want_out || !c->in_len) return 0;
    }
}

/* Returns -1 to close. */
static int on_readable(struct ff_conn *c)
{
    for (;;) {
        if (c->in_len == FF_IN_CAP) return -1;
        size_t room = FF_IN_CAP - c->in_len;
        ssize_t n = read(c->fd, c->in + c->in_len, room < FF_READ ? room : FF_READ);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) break;
        if (n <= 0) return -1;
        c->in_len += (size_t)n;
        if ((size_t)n < (room < FF_READ ? room : FF_READ)) break;
    }
    return answer(c);
}

static void on_accept(int lfd, int *nconns)
{
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) return;
        if (*nconns >= FF_MAX_CONNS) {
            close(fd);
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct ff_conn *c = calloc(1, sizeof *c);
        if (c) c->in = malloc(FF_IN_CAP);
        if (!c || !c->in) {
            free(c);
            close(fd);
            continue;
        }
        c->fd = fd;
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        if (epoll_ctl(ff.ep, EPOLL_CTL_ADD, fd, &ev)) {
            free(c->in);
            free(c);
            close(fd);
            continue;
        }
        (*nconns)++;
    }
}

int main(int argc, char **argv)
{
    int port = 0, chunks = 20;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--port") && i + 1 < argc)
            port = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--chunks") && i + 1 < argc)
            chunks = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: fastfake [--port N] [--chunks N]\n");
            return 2;
        }
    }
    if (chunks < 0 || chunks > 1000) {
        fprintf(stderr, "fastfake: --chunks 0..1000\n");
        return 2;
    }
    build_answers(chunks);
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof a) || listen(lfd, 4096) ||
        getsockname(lfd, (struct sockaddr *)&a, &al)) {
        perror("fastfake: listen");
        return 1;
    }
    ff.ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event lev = {.events = EPOLLIN, .data.ptr = NULL};
    if (ff.ep < 0 || epoll_ctl(ff.ep, EPOLL_CTL_ADD, lfd, &lev)) {
        perror("fastfake: epoll");
        return 1;
    }
    printf("listening %d\n", ntohs(a.sin_port));
    fflush(stdout);

    int nconns = 0;
    struct epoll_event evs[256];
    while (!ff.stop) {
        int n = epoll_wait(ff.ep, evs, 256, 1000);
        for (int i = 0; i < n; i++) {
            struct ff_conn *c = evs[i].data.ptr;
            if (!c) {
                on_accept(lfd, &nconns);
                continue;
            }
            int rc = 0;
            if (evs[i].events & (EPOLLERR | EPOLLHUP) && !(evs[i].events & EPOLLIN))
                rc = -1;
            else if (evs[i].events & EPOLLOUT)
                rc = flush(c) || (!c->want_out && answer(c)) ? -1 : 0; /* drained: what waited */
            else if (evs[i].events & EPOLLIN)
                rc = on_readable(c);
            if (rc) {
                conn_close(c);
                nconns--;
            }
        }
    }
    return 0;
}
