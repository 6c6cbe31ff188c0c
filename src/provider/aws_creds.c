/*
 * aws_creds.c — static keys from the config; the container endpoint's keys kept fresh by a
 * background thread.
 *
 *   start ──▶ FETCH ──ok──▶ WAIT until 5 min before expiry ──▶ FETCH
 *               │  ▲
 *               └──┘ failed: wait 1 s, 2 s, ... 60 s
 *   stop (any time): the thread wakes from its wait and ends
 */
#include "provider/aws_creds.h"

#include <cJSON.h>
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "base/redact.h"

#define ECS_HOST_URI "http://169.254.170.2"
#define REFRESH_BEFORE_S 300
#define FETCH_TIMEOUT_S 5
#define MAX_ANSWER 65536

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;
static struct aws_creds current; /* under lock */
static int64_t current_expires;  /* under lock; 0: none */
static bool have_current;        /* under lock */
static bool started, stopping;   /* under lock */
static uint64_t fetches;         /* under lock */
static pthread_t thread;

static int copy_str(char *dst, size_t cap, const char *src)
{
    if (!src || strlen(src) >= cap) return -1;
    memcpy(dst, src, strlen(src) + 1);
    return 0;
}

int aws_creds_get(const struct cfg_provider *pv, struct aws_creds *out)
{
    const struct cfg_aws *a = pv->aws;
    if (!a) return -1;
    if (a->credentials != CFG_AWS_CRED_CONTAINER) {
        out->session_token[0] = '\0';
        if (copy_str(out->access_key_id, sizeof out->access_key_id, a->access_key_id) < 0 ||
            copy_str(out->secret_access_key, sizeof out->secret_access_key, a->secret_access_key) <
                0 ||
            (a->session_token &&
             copy_str(out->session_token, sizeof out->session_token, a->session_token) < 0))
            return -1;
        return 0;
    }
    pthread_mutex_lock(&lock);
    int rc = -1;
    if (have_current && (current_expires == 0 || current_expires > (int64_t)time(NULL))) {
        *out = current;
        rc = 0;
    }
    pthread_mutex_unlock(&lock);
    return rc;
}

static int64_t parse_iso8601(const char *s)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *end = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!end) return -1;
    return (int64_t)timegm(&tm);
}

int aws_creds_parse(const char *json, size_t len, struct aws_creds *out, int64_t *expires)
{
    cJSON *j = cJSON_ParseWithLength(json, len);
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "AccessKeyId");
    const cJSON *secret = cJSON_GetObjectItemCaseSensitive(j, "SecretAccessKey");
    const cJSON *token = cJSON_GetObjectItemCaseSensitive(j, "Token");
    const cJSON *exp = cJSON_GetObjectItemCaseSensitive(j, "Expiration");
    int rc = -1;
    memset(out, 0, sizeof *out);
    *expires = 0;
    if (cJSON_IsString(id) && cJSON_IsString(secret) && id->valuestring[0] &&
        secret->valuestring[0] &&
        copy_str(out->access_key_id, sizeof out->access_key_id, id->valuestring) == 0 &&
        copy_str(out->secret_access_key, sizeof out->secret_access_key, secret->valuestring) == 0 &&
        (!cJSON_IsString(token) ||
         copy_str(out->session_token, sizeof out->session_token, token->valuestring) == 0)) {
        rc = 0;
        if (cJSON_IsString(exp) && (*expires = parse_iso8601(exp->valuestring)) < 0) rc = -1;
    }
    cJSON_Delete(j);
    if (rc < 0) memset(out, 0, sizeof *out);
    return rc;
}

int64_t aws_creds_refresh_in(int64_t expires, int64_t now)
{
    if (expires == 0) return 3600; /* keys without an expiry: look again within the hour anyway */
    int64_t left = expires - now;
    if (left > 2 * REFRESH_BEFORE_S) return left - REFRESH_BEFORE_S;
    return left / 2 > 1 ? left / 2 : 1;
}

uint64_t aws_creds_fetches(void)
{
    pthread_mutex_lock(&lock);
    uint64_t n = fetches;
    pthread_mutex_unlock(&lock);
    return n;
}

/* ---- the fetch (blocking, on the refresher thread only) ---- */

/* http://host[:port]/path split up; -1 for another scheme (https needs a client this
   thread does not have; the endpoints the SDKs call are plain HTTP on a link-local or
   loopback address). */
static int split_uri(const char *uri, char *host, size_t hcap, char *port, size_t pcap,
                     const char **path)
{
    if (strncmp(uri, "http://", 7) != 0) return -1;
    const char *h = uri + 7, *slash = strchr(h, '/');
    const char *end = slash ? slash : h + strlen(h);
    const char *colon = memchr(h, ':', (size_t)(end - h));
    size_t hl = (size_t)((colon ? colon : end) - h);
    if (hl == 0 || hl >= hcap) return -1;
    memcpy(host, h, hl);
    host[hl] = '\0';
    size_t pl = colon ? (size_t)(end - colon - 1) : 2;
    if (pl == 0 || pl >= pcap) return -1;
    if (colon) {
        memcpy(port, colon + 1, pl);
        port[pl] = '\0';
    } else {
        memcpy(port, "80", 3);
    }
    *path = slash ? slash : "/";
    return 0;
}

/* The authorization token: the variable, or the file (read each time: it is rotated). */
static void read_token(char *out, size_t cap)
{
    out[0] = '\0';
    const char *t = getenv("AWS_CONTAINER_AUTHORIZATION_TOKEN");
    const char *file = getenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
    if (file && file[0]) {
        FILE *f = fopen(file, "r");
        if (f) {
            size_t n = fread(out, 1, cap - 1, f);
            fclose(f);
            while (n && (out[n - 1] == '\n' || out[n - 1] == '\r'))
                n--;
            out[n] = '\0';
        }
    } else if (t && strlen(t) < cap) {
        memcpy(out, t, strlen(t) + 1);
    }
}

/* One GET of the endpoint; the body into out (NUL-terminated). 0 or -1 (*why). */
static int fetch(char *out, size_t cap, const char **why)
{
    char uri[2048];
    const char *full = getenv("AWS_CONTAINER_CREDENTIALS_FULL_URI");
    const char *rel = getenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
    if (rel && rel[0])
        snprintf(uri, sizeof uri, "%s%s", ECS_HOST_URI, rel);
    else
        snprintf(uri, sizeof uri, "%s", full ? full : "");
    char host[256], port[8], token[4096];
    const char *path;
    if (split_uri(uri, host, sizeof host, port, sizeof port, &path) < 0) {
        *why = "the credentials URI is not http://host[:port]/path";
        return -1;
    }
    read_token(token, sizeof token);
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL;
    if (getaddrinfo(host, port, &hints, &ai) != 0 || !ai) {
        *why = "the credentials host does not resolve";
        return -1;
    }
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct timeval tv = {.tv_sec = FETCH_TIMEOUT_S};
    if (fd >= 0) {
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    }
    int rc = fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 ? 0 : -1;
    freeaddrinfo(ai);
    if (rc < 0) {
        *why = "cannot connect to the credentials endpoint";
        if (fd >= 0) close(fd);
        return -1;
    }
    char req[8192];
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: %s:%s\r\nAccept: "
                     "application/json\r\n%s%s%sConnection: close\r\n\r\n",
                     path, host, port, token[0] ? "Authorization: " : "", token,
                     token[0] ? "\r\n" : "");
    if (n < 0 || (size_t)n >= sizeof req || send(fd, req, (size_t)n, MSG_NOSIGNAL) != n) {
        close(fd);
        *why = "cannot send to the credentials endpoint";
        return -1;
    }
    size_t len = 0;
    ssize_t got;
    while (len < cap - 1 && (got = recv(fd, out + len, cap - 1 - len, 0)) > 0)
        len += (size_t)got;
    close(fd);
    out[len] = '\0';
    int status = 0;
    char *body = strstr(out, "\r\n\r\n");
    if (sscanf(out, "HTTP/1.%*d %d", &status) != 1 || !body) {
        *why = "the credentials endpoint's answer is not HTTP";
        return -1;
    }
    if (status != 200) {
        *why = "the credentials endpoint refused (not 200)";
        return -1;
    }
    memmove(out, body + 4, strlen(body + 4) + 1);
    return 0;
}

static void *refresher(void *arg)
{
    static char answer[MAX_ANSWER];
    int64_t backoff = 1;
    pthread_mutex_lock(&lock);
    while (!stopping) {
        pthread_mutex_unlock(&lock);
        const char *why = NULL;
        struct aws_creds c;
        int64_t expires = 0, wait_s;
        int rc = fetch(answer, sizeof answer, &why);
        if (rc == 0 && aws_creds_parse(answer, strlen(answer), &c, &expires) < 0) {
            rc = -1;
            why = "the credentials endpoint's answer has no keys";
        }
        memset(answer, 0, sizeof answer);
        pthread_mutex_lock(&lock);
        if (rc == 0) {
            /* never logged by us; redacted if a provider's error text echoes them */
            redact_learn(c.secret_access_key);
            redact_learn(c.session_token);
            current = c;
            current_expires = expires;
            have_current = true;
            fetches++;
            backoff = 1;
            wait_s = aws_creds_refresh_in(expires, (int64_t)time(NULL));
            log_info(
                "AWS credentials from the container endpoint (key %.4s..., next fetch in %llds)",
                c.access_key_id, (long long)wait_s);
        } else {
            wait_s = backoff;
            backoff = backoff * 2 > 60 ? 60 : backoff * 2;
            log_warn("AWS credentials: %s; again in %llds", why, (long long)wait_s);
        }
        memset(&c, 0, sizeof c);
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += (time_t)wait_s;
        while (!stopping && pthread_cond_timedwait(&wake, &lock, &until) != ETIMEDOUT)
            ;
    }
    pthread_mutex_unlock(&lock);
    return NULL;
}

int aws_creds_start(const struct config *cfg)
{
    bool need = false;
    for (size_t i = 0; i < cfg->nproviders; i++)
        need |=
            cfg->providers[i].aws && cfg->providers[i].aws->credentials == CFG_AWS_CRED_CONTAINER;
    pthread_mutex_lock(&lock);
    int rc = 0;
    if (need && !started) {
        stopping = false;
        rc = pthread_create(&thread, NULL, refresher, NULL) == 0 ? 0 : -1;
        started = rc == 0;
    }
    pthread_mutex_unlock(&lock);
    return rc;
}

void aws_creds_stop(void)
{
    pthread_mutex_lock(&lock);
    bool join = started;
    stopping = true;
    started = false;
    pthread_cond_broadcast(&wake);
    pthread_mutex_unlock(&lock);
    if (join) pthread_join(thread, NULL);
}
