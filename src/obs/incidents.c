#include "obs/incidents.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static const char *const kind_names[INCIDENT__COUNT] = {
    [INCIDENT_ATTEMPT_FAILED] = "attempt_failed", [INCIDENT_STREAM_FAILED] = "stream_failed",
    [INCIDENT_BREAKER_OPENED] = "breaker_opened", [INCIDENT_BREAKER_CLOSED] = "breaker_closed",
    [INCIDENT_AUTH_REFUSED] = "auth_refused",     [INCIDENT_REQUEST_FAILED] = "request_failed",
    [INCIDENT_CONTINUED] = "continued",           [INCIDENT_HEDGED] = "hedged",
};

const char *incidents_kind_name(enum incident_kind k)
{
    return (unsigned)k < INCIDENT__COUNT ? kind_names[k] : "?";
}

void incidents_init(struct incidents *in)
{
    memset(in, 0, sizeof *in);
    pthread_mutex_init(&in->lock, NULL);
}

void incidents_destroy(struct incidents *in)
{
    pthread_mutex_destroy(&in->lock);
}

static bool same_event(const struct incident *e, enum incident_kind kind, const char *model,
                       const char *deployment, enum health_class cls, int status)
{
    return e->kind == kind && e->cls == cls && e->status == status &&
           strncmp(e->model, model, sizeof e->model - 1) == 0 &&
           strncmp(e->deployment, deployment, sizeof e->deployment - 1) == 0;
}

/* The i-th newest entry (0: the newest); i < in->n. */
static struct incident *nth_newest(struct incidents *in, size_t i)
{
    return &in->ring[(in->next + INCIDENTS_MAX - 1 - i) % INCIDENTS_MAX];
}

void incidents_add(struct incidents *in, enum incident_kind kind, const char *model,
                   const char *deployment, enum health_class cls, int status, uint64_t now_ms)
{
    if (!in) return;
    if (!model) model = "";
    if (!deployment) deployment = "";
    if (status < 400) status = 0;
    pthread_mutex_lock(&in->lock);
    /* A repeat of a recent entry (a failover and the failed request it caused
       interleave) moves that entry to the front with its count bumped, so the
       ring stays ordered by last occurrence and one outage stays a few rows. */
    for (size_t i = 0; i < in->n; i++) {
        struct incident *e = nth_newest(in, i);
        if (!same_event(e, kind, model, deployment, cls, status) || now_ms < e->last_ms ||
            now_ms - e->last_ms >= INCIDENTS_COALESCE_MS)
            continue;
        struct incident moved = *e;
        for (size_t j = i; j > 0; j--)
            *nth_newest(in, j) = *nth_newest(in, j - 1);
        moved.count++;
        moved.last_ms = now_ms;
        *nth_newest(in, 0) = moved;
        pthread_mutex_unlock(&in->lock);
        return;
    }
    struct incident *e = &in->ring[in->next];
    memset(e, 0, sizeof *e);
    e->first_ms = e->last_ms = now_ms;
    e->count = 1;
    e->kind = kind;
    e->cls = cls;
    e->status = status;
    snprintf(e->model, sizeof e->model, "%s", model);
    snprintf(e->deployment, sizeof e->deployment, "%s", deployment);
    in->next = (in->next + 1) % INCIDENTS_MAX;
    if (in->n < INCIDENTS_MAX) in->n++;
    in->total++;
    pthread_mutex_unlock(&in->lock);
}

size_t incidents_snapshot(struct incidents *in, struct incident *out, size_t max)
{
    if (!in) return 0;
    pthread_mutex_lock(&in->lock);
    size_t n = in->n < max ? in->n : max;
    for (size_t i = 0; i < n; i++)
        out[i] = *nth_newest(in, i);
    pthread_mutex_unlock(&in->lock);
    return n;
}

void incidents_write_json(struct incidents *in, struct buf *out)
{
    struct incident list[INCIDENTS_MAX];
    size_t n = incidents_snapshot(in, list, INCIDENTS_MAX);
    buf_append_str(out, "[");
    for (size_t i = 0; i < n; i++) {
        const struct incident *e = &list[i];
        buf_printf(out, "%s{\"kind\":\"%s\",\"model\":", i ? "," : "",
                   incidents_kind_name(e->kind));
        buf_append_json_str(out, e->model, strlen(e->model));
        buf_append_str(out, ",\"deployment\":");
        buf_append_json_str(out, e->deployment, strlen(e->deployment));
        buf_printf(
            out, ",\"class\":\"%s\",\"status\":%d,\"count\":%u,\"first_ms\":%llu,\"last_ms\":%llu}",
            e->cls == HEALTH_OK ? "" : health_class_name(e->cls), e->status, e->count,
            (unsigned long long)e->first_ms, (unsigned long long)e->last_ms);
    }
    buf_append_str(out, "]");
}
