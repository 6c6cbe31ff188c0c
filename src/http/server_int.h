/*
 * server_int — what server.c (a connection: reading, framing, limits,
 * writing, closing, accepting) and server_tls.c (HTTPS: the TLS layer
 * between the socket and the rest, and the plain-HTTP-on-TLS-port answer)
 * share: the connection itself, the write request, the read buffer, and the
 * few calls each makes into the other. Internal to those two files.
 */
#ifndef UNBUSY_SERVER_INT_H
#define UNBUSY_SERVER_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "base/buf.h"
#include "http/server.h"
#include "proto/http1.h"

struct tls_conn;

/* The states are drawn at the top of server.c. */
enum conn_state { CS_READ_HEAD, CS_READ_BODY, CS_ACTIVE, CS_CLOSING };

/*
 * Which of the server's deadline lists a connection is on (at most one at a
 * time): every list has one duration, so it is ordered by deadline and one
 * uv_timer per server serves all of them (server_deadline.c).
 */
enum conn_timer {
    CT_NONE = -1,
    CT_HEAD,    /* server.header_timeout: a request's head and body, a TLS handshake */
    CT_IDLE,    /* server.idle_timeout: a keep-alive connection between requests */
    CT_LINGER,  /* SERVER_LINGER_MS: reading and dropping after a refused body */
    CT_DRAINED, /* SERVER_DRAIN_GRACE_MS: between requests (or none yet) while draining */
    CT_KICK,    /* at once: pipelined input waits to be processed */
    CT_KICKING, /* the kicks being processed by this sweep */
};

/* A request's own state: from its first byte to server_request_done. */
struct server_reqstate {
    struct server_request pub;   /* what handlers see (server_conn_request) */
    struct http1_head_scan scan; /* how far the search for the end of the head in `in` got */
    struct buf head;             /* the request's head, copied out of `in` */
    struct buf body;
    struct http1_body framer;
    struct server_hooks hooks;
    size_t bytes_out;            /* response bytes written for this request */
};

/*
 * A connection. What an idle keep-alive connection costs is this struct and
 * the socket, so it holds only what outlives a request: the socket, its place
 * on a deadline list, the buffers that exist only while they hold bytes, and
 * the write accounting (writes may still be in flight after the request).
 */
struct server_conn {
    uv_tcp_t tcp;
    struct server *srv;
    struct server_conn *tnext, *tprev; /* on srv->timer_head[tkind] */
    uint64_t deadline_ms;              /* in uv_now's clock */
    struct server_reqstate *req;       /* NULL: idle */
    struct buf in;  /* bytes read and not yet consumed */
    struct buf out; /* what handlers wrote in this loop iteration: one write per batch */
    struct server_conn *flush_next;
    struct tls_conn *tls; /* NULL: plain HTTP; see server_tls.c */
    size_t pending;       /* bytes in `out` and in writes not yet completed */
    unsigned writes_inflight;
    signed char tkind; /* enum conn_timer */
    unsigned char state; /* enum conn_state */
    bool keep_alive : 1;
    bool http10 : 1;      /* an HTTP/1.0 client: no chunked answers, keep-alive only when asked */
    bool head_only : 1;   /* a HEAD request: answers carry their head and never a body */
    bool chunked_out : 1; /* the streamed answer is chunked (else it ends when the connection does) */
    bool sent_continue : 1;
    bool response_started : 1;
    bool response_done : 1;
    bool reading : 1;
    bool gone : 1;
    bool aborted : 1;
    bool linger : 1; /* close only after the client has stopped sending (see server_conn_close) */
    bool lingering : 1;
    bool flush_queued : 1;
    bool tls_first_read : 1; /* the first bytes have been looked at (plain HTTP on a TLS port?) */
};

/* A batch buffer is a block of a per-worker pool: taken at a batch's first byte, given back
   once the batch is sent, so neither an idle connection nor a request's steady state
   allocates. A batch starts in a small block (SERVER_OUT_SMALL bytes: a head, a whole
   small answer or a few events) and moves to a large one (SERVER_OUT_BLOCK) when it
   outgrows it: a burst of many short answers in one loop iteration then holds small
   blocks only, and does not leave large freed blocks for the connections' own
   structures to split (which grew the RSS of each idle connection by a third). A batch
   that outgrows the large block (an event larger than the rest of it) grows by realloc
   and is freed. At most SERVER_OUT_POOL_KEEP blocks of each size wait in a pool. */
#define SERVER_OUT_SMALL 2048u
#define SERVER_OUT_BLOCK (16u * 1024)
#define SERVER_OUT_POOL_KEEP 32
/* Gives a batch buffer back: to the pool when it is a block of it, else to free(). */
void server_out_put(char *mem, size_t cap);

/* One uv_write of a connection; server_on_write frees it and takes `len` off `pending`. */
struct server_wreq {
    uv_write_t req;
    struct server_conn *c;
    size_t len;
    char *mem;      /* the batch's buffer (written from mem + the part already sent) */
    size_t mem_cap; /* its size, for server_out_put (0: plain malloc) */
};

/* Where a loop's socket reads land (one per thread: the loop is). Over TLS it takes
   the plaintext once tls_feed has copied the ciphertext out. */
#define SERVER_READ_SCRATCH (64u * 1024)
extern __thread char server_read_scratch[SERVER_READ_SCRATCH];

/* server.c */
/* Request bytes from the client, plain or decrypted: framing and dispatch. */
void server_conn_input(struct server_conn *c, const char *data, size_t len);
/* The client is gone (EOF, write error, close_notify): tells an active handler once. */
void server_conn_lost(struct server_conn *c);
/* Closes once the queued writes are out (lingering after a refused body). */
void server_conn_close(struct server_conn *c);
/* `out` has been handed to the socket in full: empties it, freeing what a burst grew. */
void server_conn_out_sent(struct server_conn *c);
/* n bytes of `pending` have left: on_drain below the low-water mark. */
void server_conn_written(struct server_conn *c, size_t n);
/* The write callback of every struct server_wreq. */
void server_on_write(uv_write_t *req, int status);

/* server_tls.c */
/* A new connection on an HTTPS listener gets its TLS state. Returns 0 or -ENOMEM. */
int server_tls_attach(struct server_conn *c);
/* Frees the TLS state (NULL-safe), when the connection's memory goes. */
void server_tls_detach(struct server_conn *c);
/* Ciphertext from the socket: handshake, then plaintext to server_conn_input. */
void server_tls_input(struct server_conn *c, const char *data, size_t len);
/* Encrypts what has gathered in `out` and sends the records. */
void server_tls_flush(struct server_conn *c);
/* Sends close_notify before the connection closes (not after the client went away). */
void server_tls_close_notify(struct server_conn *c);

/* server_deadline.c: c now waits for `kind` (CT_NONE: for nothing), from now; leaves its list. */
void server_timer_set(struct server_conn *c, int kind);
void server_timer_unlink(struct server_conn *c);
/* The server's one deadline timer (s->timer): expires what has passed, re-arms. */
void server_on_deadline_timer(uv_timer_t *t);
/* server.c: what a passed deadline does to c (close, 408, kick). */
void server_conn_deadline(struct server_conn *c, int kind);

#endif
