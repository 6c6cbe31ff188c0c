/*
 * provider — the seam between an attempt and a provider's wire format.
 *
 * What the proxy asks of a protocol, in the order an exchange needs it (the
 * shape of nginx's upstream callbacks):
 *
 *   build      the request for one attempt: method, path, format headers, body
 *              from the client's body; called again for a retry, a hedge and a
 *              continuation (struct provider_call says which text to continue)
 *   continuation  how a provider continues a partial answer (a capability read
 *              before a continuation is sent to it; OFF: it is never asked to)
 *   sign       the auth step: sees the finished head and body, adds its headers
 *   head       the response head: a stream, a whole answer, or an error body
 *   feed       response bytes of a stream → normalised events, resumable, no I/O
 *   answer     a whole-body answer → one event
 *   map_error  an error status and body → an error kind, or the client's fault
 *   probe      the probe request (shallow or deep) and how to judge its answer
 *
 * Every event hands the client-ready OpenAI chunk to relay (for the OpenAI
 * format the upstream's own bytes; another format writes OpenAI-shaped ones):
 * pointers into the parser's buffer, valid during the callback only, so the
 * relay path neither allocates nor copies per event.
 *
 * The transport (TCP/TLS or the in-process simulator, net/transport.h) is not
 * the wire format: cfg_provider.kind picks the one, cfg_provider.wire the
 * other. The simulated providers speak OpenAI bytes, so they use openai ops.
 *
 * Who calls it: proxy/attempt.c (every step), route/probe.c (probe). It owns
 * no connection and no timer; struct provider_stream is the per-attempt parse
 * state, owned by the attempt (init / reset / free).
 */
#ifndef UNBUSY_PROVIDER_H
#define UNBUSY_PROVIDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "config/config.h"
#include "proto/chunk_shape.h"
#include "proto/eventstream.h"
#include "proto/http1.h"
#include "proto/jsonx.h"
#include "proto/sse.h"

/* The client's API, as the provider needs to know it. */
enum provider_api { PROVIDER_API_CHAT = 1, PROVIDER_API_COMPLETIONS, PROVIDER_API_EMBEDDINGS };

/* One attempt's request, as the proxy knows it. */
struct provider_call {
    const struct cfg_provider *provider;
    const char *model;                 /* the deployment's model name */
    enum provider_api api;
    const char *body;                  /* the client's body and its scan */
    size_t body_len;
    const struct jsonx_request *scan;
    bool stream;                       /* ask for a stream */
    const char *continue_text;         /* a continuation: the answer so far (NULL: none) */
    size_t continue_len;
    int64_t continue_tokens;           /* tokens of it (estimated): taken off the client's
                                          max_tokens, so the whole answer stays within it */
    uint32_t max_tokens_limit;         /* the deployment's cap: max_tokens above it is lowered
                                          to it (cfg_deployment.max_tokens_limit); 0: none */
    const char *extra_headers;         /* "Name: value\r\n"... of the caller (trace ids), or NULL */
    const char *user_agent;
    const char **refusal;              /* out, may be NULL: build sets it (a static message) when
                                          the client's request cannot be said in this format */
};

/* A request being built: build fills method, path, headers and body; sign adds to head. */
struct provider_request {
    const char *method;                /* static string */
    const char *path;                  /* under the base path; static, config or path_own */
    struct buf path_buf;               /* when not empty: the path, built (a deployment's path,
                                          a query string); path is then ignored */
    const char *base_path;             /* NULL: the provider's; else this one (static) */
    struct buf head;                   /* request line and headers so far, no blank line */
    struct buf body;
    char path_own[512];                /* a path built per call (a model id in it) */
};

/* What the response head says. */
enum provider_head {
    PROVIDER_HEAD_STREAM = 1, /* an event stream follows: feed it */
    PROVIDER_HEAD_ANSWER,     /* a whole answer follows: collect it, then answer */
    PROVIDER_HEAD_ERROR,      /* an error body follows: collect it, then map_error */
};

/* What went wrong, as far as the provider's reply tells. */
enum provider_error {
    PROVIDER_ERR_CLIENT = 1,  /* the client's request is at fault: every deployment would refuse it */
    PROVIDER_ERR_AUTH,        /* our credentials or balance */
    PROVIDER_ERR_RATE_LIMITED,
    PROVIDER_ERR_SERVER,      /* the provider failed (5xx, an error event) */
    PROVIDER_ERR_BAD_REPLY,   /* not what the format says: a proxy's HTML page, bad JSON */
    PROVIDER_ERR_STATUS,      /* another unexpected status (404, ...) */
    PROVIDER_ERR_TIMEOUT,     /* the provider timed out generating (Bedrock's ModelTimeoutException) */
};

/* Kinds of event a stream gives. */
enum provider_event_kind {
    PROVIDER_EV_CHUNK = 1,    /* a chunk: see what, and relay data */
    PROVIDER_EV_KEEPALIVE,    /* no news, the connection is alive (an SSE comment) */
    PROVIDER_EV_DONE,         /* the stream says it is complete */
    PROVIDER_EV_ERROR,        /* the provider reports an error in the stream; data is its event */
    PROVIDER_EV_BAD,          /* an event that does not parse: the stream is broken */
};

/* What a chunk carries (bits of provider_event.what). */
enum {
    PROVIDER_HAS_CONTENT = 1u << 0,   /* text, reasoning, a tool-call delta or a finish: progress */
    PROVIDER_HAS_FINISH = 1u << 1,    /* a finish reason */
    PROVIDER_HAS_USAGE = 1u << 2,     /* token counts (in chunk) */
    PROVIDER_USAGE_ONLY = 1u << 3,    /* the usage chunk with no choices (asked on the client's behalf) */
};

struct provider_event {
    enum provider_event_kind kind;
    unsigned what;                    /* PROVIDER_HAS_* for a chunk */
    struct jsonx_chunk chunk;         /* counts: content_chars, usage tokens */
    const char *data;                 /* the OpenAI chunk JSON to relay (or the error event), */
    size_t len;                       /* valid during the callback only */
    bool framed;                      /* data lies as "data: " + data + "\n\n" exactly (the
                                         SSE event as it came, not rewritten): see sse_item */
    const struct chunk_shape_scan *scan; /* the scan that gave chunk, with the stream's kept
                                            chunk (NULL: none) */
};

/* Return 0 to go on, non-zero to stop the feed (provider_feed returns it). */
typedef int (*provider_event_fn)(void *ud, const struct provider_event *ev);

/* The per-attempt parse state; a binary format adds its own framing state here. */
struct provider_stream {
    struct sse_parser sse;
    struct evs_parser evs;             /* the AWS event stream (Bedrock, SageMaker) */
    struct buf out;                    /* a chunk this side writes in OpenAI's shape (Bedrock) */
    const char *model;                 /* the deployment's model, named in such chunks */
    char id[48];                       /* the answer's id in them ("" until the first) */
    int64_t created;
    unsigned ntools;                   /* tool calls begun in the answer */
    int tool_of_block[64];             /* a content block's tool call index + 1 (0: text) */
    bool rename_reasoning;            /* the provider's quirk: set by the attempt per provider */
    struct buf rewrite;               /* an event rewritten for the client (bounded as an event) */
    struct chunk_shape_scan *kept;    /* the last chunk, so that the next of its shape is not walked
                                         (taken from a per-thread pool at the first chunk) */
};

enum { PROVIDER_FEED_BAD = -1 }; /* framing broken or an event over its bound */

struct provider_ops {
    const char *name;
    int (*build)(const struct provider_call *c, struct provider_request *r);
    /* The mechanism build uses for a continuation on pv: never AUTO (resolved), OFF when pv
       must not be asked to continue. */
    enum cfg_continuation (*continuation)(const struct cfg_provider *pv);
    int (*sign)(const struct cfg_provider *pv, struct provider_request *r);
    enum provider_head (*head)(const struct http1_response *resp, bool asked_stream);
    int (*feed)(struct provider_stream *s, const char *data, size_t len, provider_event_fn fn, void *ud);
    int (*answer)(struct provider_stream *s, const char *body, size_t len, struct provider_event *ev);
    enum provider_error (*map_error)(int status, const char *body, size_t len);
    int (*probe)(const struct cfg_provider *pv, const char *deep_model, struct provider_request *r);
    bool (*probe_ok)(bool deep, int status);
};

extern const struct provider_ops provider_openai_ops;
extern const struct provider_ops provider_bedrock_ops;
extern const struct provider_ops provider_sagemaker_ops;

/* ev's kind and what-bits from its scanned chunk (ev->chunk): an error member makes it an
   error event. Every format that hands OpenAI chunks uses it. */
void provider_classify(struct provider_event *ev);

/* The ops of a provider's wire format (cfg_provider.wire); never NULL. */
const struct provider_ops *provider_ops_of(const struct cfg_provider *pv);

/* pv's continuation mechanism (its ops' continuation); "prefix", "continue_final_message",
   "assistant_message" or "off" for the log and the admin API. */
enum cfg_continuation provider_continuation(const struct cfg_provider *pv);
const char *provider_continuation_name(enum cfg_continuation c);

/*
 * The whole request for c: build, the common head (request line under base_path,
 * Host, User-Agent, the provider's fixed headers, the caller's extra headers,
 * Content-Length), sign, the blank line and the body. Returns a malloc'd
 * request for uphttp_start (*len set), or NULL.
 */
char *provider_request(const struct provider_ops *ops, const struct provider_call *c, size_t *len);

/* The probe request: deep_model NULL for the shallow probe (probe.path). Same as above. */
char *provider_probe_request(const struct provider_ops *ops, const struct cfg_provider *pv,
                             const char *deep_model, const char *user_agent, size_t *len);

/* Retry-After of a response head in seconds, -1 when absent or unreadable; now_unix_s
   reads the date form. */
int provider_retry_after_s(const struct http1_response *resp, int64_t now_unix_s);

void provider_stream_init(struct provider_stream *s, size_t max_event_bytes);
/* jsonx_scan_chunk for the stream's next chunk, a chunk shaped like the last not walked
   again (chunk_shape.h); the kept chunk is the stream's until reset or free. */
int provider_scan_chunk(struct provider_stream *s, const char *data, size_t len,
                        struct jsonx_chunk *out);
/* Before an attempt's stream: the model its chunks name (a config string). */
void provider_stream_begin(struct provider_stream *s, const char *model);
void provider_stream_reset(struct provider_stream *s);
void provider_stream_free(struct provider_stream *s);

#endif
