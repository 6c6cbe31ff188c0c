/*
 * server_tls.c — HTTPS on a listener (server.tls): the TLS layer between a
 * connection's socket and server.c, the handshake and its failures, and the
 * answer to a plain HTTP request sent to the TLS port.
 *
 * The connection carries a tls_conn (memory BIOs, net/tls_server.h) and
 * server.c never sees ciphertext: its on_read hands what the socket gave to
 * server_tls_input, which drives the handshake and passes the plaintext to
 * server_conn_input; its conn_flush hands the gathered response bytes to
 * server_tls_flush, which encrypts them and sends the records. `pending`
 * counts plaintext, so back-pressure works as without TLS: the bytes of a
 * batch leave `pending` when all of its records have been written.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "base/log.h"
#include "http/server_int.h"
#include "net/tls_server.h"

#define SERVER_TLS_RECORD_SLACK (32u * 1024)

int server_tls_attach(struct server_conn *c)
{
    c->tls = tls_server_conn_new(c->srv->tls);
    if (!c->tls)
        return -ENOMEM;
    /* One socket read decrypts to at most its own size plus a record completed
       from the read before: room for that beside the plain-HTTP bound. */
    c->in.limit += SERVER_TLS_RECORD_SLACK;
    return 0;
}

void server_tls_detach(struct server_conn *c)
{
    tls_conn_free(c->tls);
    c->tls = NULL;
}

/* Sends the records OpenSSL has produced. `accounted` plaintext bytes of `pending`
   go with them (0 for handshake messages, tickets and alerts). */
static void conn_tls_send(struct server_conn *c, size_t accounted)
{
    size_t len = tls_out_pending(c->tls);
    if (len == 0 || c->gone || uv_is_closing((uv_handle_t *)&c->tcp)) {
        c->pending -= accounted;
        return;
    }
    char *mem = malloc(len);
    if (!mem) {
        c->pending -= accounted;
        server_conn_lost(c);
        return;
    }
    tls_out_read(c->tls, mem, len);
    size_t sent = 0;
    if (c->writes_inflight == 0) {
        uv_buf_t b = uv_buf_init(mem, (unsigned)len);
        int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
        if (n > 0)
            sent = (size_t)n;
    }
    if (sent == len) {
        free(mem);
        server_conn_written(c, accounted);
        return;
    }
    struct server_wreq *wr = malloc(sizeof *wr);
    uv_buf_t b = uv_buf_init(mem + sent, (unsigned)(len - sent));
    if (!wr || uv_write(&wr->req, (uv_stream_t *)&c->tcp, &b, 1, server_on_write) < 0) {
        free(wr);
        free(mem);
        c->pending -= accounted;
        server_conn_lost(c);
        return;
    }
    wr->c = c;
    wr->len = accounted; /* server_on_write takes it off `pending` */
    wr->mem = mem;
    wr->mem_cap = 0;
    c->writes_inflight++;
}

void server_tls_flush(struct server_conn *c)
{
    size_t len = c->out.len;
    int rc = tls_write(c->tls, c->out.data, len);
    server_conn_out_sent(c);
    if (rc < 0) {
        c->pending -= len;
        server_conn_lost(c);
        return;
    }
    conn_tls_send(c, len);
}

void server_tls_close_notify(struct server_conn *c)
{
    if (c->gone || c->state == CS_CLOSING)
        return;
    tls_close_notify(c->tls);
    conn_tls_send(c, 0);
}

static void peer_text(struct server_conn *c, char *out, size_t cap)
{
    struct sockaddr_storage ss;
    int len = sizeof ss;
    char host[64] = "?";
    int port = 0;
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0) {
        if (ss.ss_family == AF_INET6) {
            uv_ip6_name((struct sockaddr_in6 *)&ss, host, sizeof host);
            port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
        } else {
            uv_ip4_name((struct sockaddr_in *)&ss, host, sizeof host);
            port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        }
    }
    snprintf(out, cap, "%s:%d", host, port);
}

/* Scanners, health checkers and clients limited to old TLS versions fail here all day:
   the first failure of each kind is logged at info level, the rest at debug level. */
static void conn_tls_failed(struct server_conn *c)
{
    char peer[80], key[224];
    peer_text(c, peer, sizeof peer);
    snprintf(key, sizeof key, "server %s", tls_error(c->tls));
    bool first = log_first_time(key);
    log_msg(first ? LOG_INFO : LOG_DEBUG, "client %s: %s; connection closed%s", peer,
            tls_error(c->tls), first ? " (more like it are logged at debug level)" : "");
    conn_tls_send(c, 0); /* the alert, if OpenSSL made one, tells the client why */
    server_conn_close(c);
}

/* A plain HTTP request on the TLS port: answer it in plain HTTP, as most clients then show
   the message instead of a bare connection error. */
static void conn_tls_plain_http(struct server_conn *c)
{
    tls_conn_free(c->tls);
    c->tls = NULL;
    c->keep_alive = false;
    c->linger = true; /* the rest of the request may still be arriving */
    server_respond_error(c, GW_ERR_BAD_REQUEST,
                         "this port serves HTTPS: send the request with https://", NULL);
    server_conn_close(c);
}

void server_tls_input(struct server_conn *c, const char *data, size_t len)
{
    if (!c->tls_first_read) {
        c->tls_first_read = true;
        /* A TLS connection opens with a handshake record (0x16); a method name is plain HTTP. */
        if (data[0] >= 'A' && data[0] <= 'Z') {
            conn_tls_plain_http(c);
            return;
        }
    }
    if (tls_feed(c->tls, data, len) < 0) {
        server_conn_lost(c);
        return;
    }
    if (!tls_handshake_done(c->tls)) {
        int rc = tls_handshake(c->tls);
        if (rc == TLS_FAIL) {
            conn_tls_failed(c);
            return;
        }
        conn_tls_send(c, 0);
        if (rc != TLS_DONE)
            return;
    }
    /* server_read_scratch held the ciphertext, which tls_feed has copied: now the plaintext. */
    while (c->state != CS_CLOSING && !c->gone) {
        int n = tls_read(c->tls, server_read_scratch, sizeof server_read_scratch);
        if (n > 0) {
            server_conn_input(c, server_read_scratch, (size_t)n);
            continue;
        }
        if (n == TLS_CLOSED) { /* the client's close_notify: as an end of stream */
            server_conn_lost(c);
            return;
        }
        if (n == TLS_FAIL) {
            conn_tls_failed(c);
            return;
        }
        break; /* TLS_WANT */
    }
    if (c->state != CS_CLOSING)
        conn_tls_send(c, 0); /* session tickets after the handshake, key updates */
}
