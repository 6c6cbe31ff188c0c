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
#include <uv.h>

#include "base/buf.h"
#include "http/server.h"
#include "proto/http1.h"

struct tls_conn;

/* The states are drawn at the top of server.c. */
enum conn_state { CS_READ_HEAD, CS_READ_BODY, CS_ACTIVE, CS_CLOSING };

struct server_conn {
    uv_tcp_t tcp;
    /* head/body read timeout, then idle keep-alive timeout; fires at once for kick_pending */
    uv_timer_t timer;
    struct server *srv;
    struct server_conn *next, *prev;
    enum conn_state state;
    struct buf in;   /* bytes read and not yet consumed */
    struct http1_head_scan scan; /* how far the search for the end of the next head in `in` got */
    struct buf head; /* the current request's head, copied out of `in` */
    struct buf body;
    struct http1_body framer;
    struct server_request *req; /* from the first byte of a request to its end (NULL: idle) */
    struct server_hooks hooks;
    bool keep_alive;
    bool http10;      /* an HTTP/1.0 client: no chunked answers, keep-alive only when asked */
    bool head_only;   /* a HEAD request: answers carry their head and never a body */
    bool chunked_out; /* the streamed answer is chunked (else it ends when the connection does) */
    bool sent_continue;
    bool response_started;
    bool response_done;
    bool reading;
    bool gone;
    bool aborted;
    bool shutting;
    bool linger;    /* close only after the client has stopped sending (see server_conn_close) */
    bool lingering;
    int handles_open;
    size_t pending; /* bytes in `out` and in writes not yet completed */
    struct buf out; /* what handlers wrote in this loop iteration: one write per batch */
    struct server_conn *flush_next;
    bool flush_queued;
    size_t bytes_out;
    size_t bytes_out_at_start; /* bytes_out when the current request began */
    unsigned writes_inflight;
    struct tls_conn *tls; /* NULL: plain HTTP; see server_tls.c */
    bool tls_first_read;  /* the first bytes have been looked at (plain HTTP on a TLS port?) */
    bool kick_pending;    /* pipelined input waits to be processed (deferred out of the handler) */
};

/* A batch buffer kept between batches of a stream; one grown larger is freed once sent. */
#define SERVER_OUT_KEEP (8u * 1024)

/* One uv_write of a connection; server_on_write frees it and takes `len` off `pending`. */
struct server_wreq {
    uv_write_t req;
    struct server_conn *c;
    size_t len;
    char *mem; /* the batch's buffer (written from mem + the part already sent) */
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

#endif
