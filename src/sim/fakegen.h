/*
 * fakegen — the misbehaving-provider engine: what a scripted upstream answers.
 *
 * Given one HTTP request (method, path, body) and a behaviour string, fakegen
 * produces the response as a timed sequence of raw HTTP/1.1 byte segments,
 * then an end action (keep the connection, close it, reset it, or hang). It
 * has two front ends: the simulated providers inside the gateway (sim.c,
 * base_url sim://PROFILE) and the fake upstream server of the test suite
 * (tests/fakes/fakeup.c). Both pull segments with fakegen_next and own every
 * timer and socket; fakegen does no I/O and builds one segment at a time, so
 * twenty seconds of keep-alives or a stream of a million chunks never sit in
 * memory. A segment is one event, or a whole non-stream answer: at most
 * FAKEGEN_MAX_SEGMENT_BYTES, and only a large big= comes near that.
 *
 * Behaviour grammar (whitespace around tokens is ignored):
 *
 *   behaviour   := alternative ('|' alternative)*  |  PROFILE
 *   alternative := [N '%'] directive (',' directive)*
 *
 * Request number k (per behaviour string, see fakegen_counters) falls in
 * bucket (k * 37) % 100, and the alternatives own consecutive bucket ranges
 * in the order written. Alternatives without a percentage share what the
 * others leave (evenly, the earlier ones taking any odd bucket); when every
 * alternative has one and they sum to less than 100, the rest answer "ok".
 * Since 37 is prime to 100, any 100 consecutive requests hit every bucket
 * exactly once: "30%a|20%b|c" gives exactly 30, 20 and 50.
 *
 * Directives:
 *   ok               the normal answer (the default)
 *   status=CODE      an OpenAI-shaped JSON error with that status (>= 400)
 *   retry_after=S    a Retry-After: S header (S up to 999999999)
 *   html             the error body is an HTML page (a cloud load balancer's 502)
 *   echo_auth        the error message quotes the credentials the request came
 *                    with ("Incorrect API key provided: Bearer sk-..."), as some
 *                    providers do
 *   ttft=MS          delay before the first content chunk; a stream's head and
 *                    role-only chunk go out at once (after keepalive, if any);
 *                    a non-stream answer comes whole after ttft plus the time
 *                    the chunks would have taken
 *   ttft_per_ktok=MS the first-token delay grows by MS for every 1,000 prompt
 *                    tokens (the fake counts one per 4 bytes of request body,
 *                    as in its usage): a provider whose prefill is slow, so
 *                    that long prompts start late and short ones do not
 *   keepalive=MS     after the head, only ": keep-alive" comments (blank lines
 *                    for a non-stream request, whose body is then chunked) every
 *                    ka_every ms for MS ms, before the answer starts
 *   ka_every=MS      the keep-alive period (default 1000)
 *   chunks=N         content chunks (default 5)
 *   chunk_ms=MS      gap between content chunks (default 0)
 *   cut=N            after N content chunks the connection ends abruptly
 *   stall=MS         a pause after the first content chunk
 *   garbage          200 text/event-stream whose bytes are not SSE JSON
 *   badjson          the first event (or a non-stream body) is invalid JSON
 *   big=BYTES        the content totals BYTES bytes
 *   no_usage         no usage (neither the include_usage chunk nor the field)
 *   no_done          a clean end after finish_reason, without "data: [DONE]"
 *   multiline        each stream event's JSON spans two "data:" lines (split
 *                    after its "model" member), as the SSE spec allows
 *   close            Connection: close, then close
 *   hang             send nothing, never close
 *   reset            close at once, no bytes
 *   tool_call        a chat stream's content chunks are the argument deltas of one
 *                    tool call (the first with its id and name) instead of text
 *   reasoning=N      the first N chunks are delta.reasoning_content (DeepSeek R1);
 *                    when N >= chunks, one answer chunk follows them
 *   slowread         the front end stops reading for 2 s before answering
 *   max_inflight=N   when the front end is already answering N requests, answer
 *                    429 (rate_limit_exceeded) at once instead: a provider's
 *                    concurrency limit (only front ends that count, fakeup)
 *
 * Unknown directives and bad numbers are errors; the request is then answered
 * 400 with the reason. Every answer carries X-Fake-Alternative (the index
 * picked; the count of alternatives for the implicit "ok") and
 * X-Fake-Request (k). Endpoints: POST .../chat/completions, .../completions,
 * .../embeddings, GET .../models; anything else is a 404.
 *
 * Continuations: when a chat request's last message is an assistant message
 * whose content is a prefix of the answer text this request would get (the
 * answer chunks concatenated, reasoning left out; see faketext.h), the answer
 * goes on from where that text stops, as a model continuing its own text
 * would: it sends only the rest (the first chunk possibly a chunk's tail, the
 * others as they would have been), no reasoning, and its usage counts the
 * chunks it sent (the prefix is part of the prompt). cut=, ttft and stall
 * count the chunks of this answer. Whether the message carries "prefix": true
 * or the body "continue_final_message": true makes no difference. Any other
 * trailing message (not a prefix, or with tool_call) gets the whole answer.
 *
 * Profiles: "healthy", "busy", "flaky" (see fakegen_profile).
 */
#ifndef UNBUSY_FAKEGEN_H
#define UNBUSY_FAKEGEN_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One alternative's directives, after parsing. */
struct fakegen_opts {
    int status;        /* 0: a normal answer; >= 400: an error response */
    int retry_after_s; /* -1: no Retry-After */
    bool html;
    uint32_t ttft_ms; /* after fakegen_new: ttft_per_ktok's share for this request included */
    uint32_t ttft_per_ktok_ms;
    uint32_t keepalive_ms;
    uint32_t ka_every_ms;
    uint32_t chunks;
    uint32_t chunk_ms;
    int32_t cut; /* -1: no cut */
    uint32_t stall_ms;
    bool garbage, badjson, no_usage, no_done, close, hang, reset, multiline, echo_auth, tool_call;
    uint64_t big; /* 0: tokens "tokN " */
    uint32_t reasoning;
    uint32_t slowread_ms; /* 0, or how long the front end stops reading */
    uint32_t max_inflight; /* 0: none */
    unsigned alternative; /* which alternative was picked (0-based) */
};

/* Expands a profile name to its behaviour string; NULL if name is not a profile. */
const char *fakegen_profile(const char *name);

/*
 * Picks the alternative for request number k and parses its directives.
 * behavior may be a profile name. Returns 0, or -1 with a message in err
 * (NUL-terminated, at most errcap bytes) on a syntax error.
 */
int fakegen_pick(const char *behavior, uint64_t k, struct fakegen_opts *out, char *err,
                 size_t errcap);

/*
 * Request counters per behaviour string: a fixed table, safe to share between
 * threads (atomics only). Strings are told apart by a 64-bit hash; when the
 * table is full, further strings share one overflow counter. Zero-initialised
 * storage (a static) is a valid empty table.
 */
#define FAKEGEN_COUNTER_SLOTS 64
struct fakegen_counters {
    _Atomic uint64_t key[FAKEGEN_COUNTER_SLOTS];
    _Atomic uint64_t count[FAKEGEN_COUNTER_SLOTS];
    _Atomic uint64_t overflow;
};

/* Returns the request number for this behaviour (0 for the first) and counts it. */
uint64_t fakegen_counters_next(struct fakegen_counters *c, const char *behavior);
/* Forgets every string. Not atomic with respect to concurrent _next calls. */
void fakegen_counters_reset(struct fakegen_counters *c);

struct fakegen_request {
    const char *method;
    size_t method_len;
    const char *path; /* request-target; a query string is ignored */
    size_t path_len;
    const char *body;
    size_t body_len;
    bool client_close; /* the client asked for Connection: close */
    const char *credentials; /* the request's credential headers' values, for echo_auth; may be NULL */
    size_t credentials_len;
    uint32_t inflight; /* requests the front end is answering now, this one not counted */
};

enum fakegen_end {
    FAKEGEN_END_KEEP_ALIVE, /* the response is complete; the connection stays */
    FAKEGEN_END_CLOSE,      /* close (after a complete response, or abruptly for cut) */
    FAKEGEN_END_RESET,      /* close at once, as a reset */
    FAKEGEN_END_HANG,       /* send nothing more and never close */
};

struct fakegen_seg {
    char *data; /* valid until the next fakegen_next or fakegen_free; the caller's to change */
    size_t len;
    uint32_t delay_ms;    /* wait this long after the previous segment */
    enum fakegen_end end; /* when fakegen_next returned 0 */
};

/* The grammar's bounds on chunks=, reasoning=, cut= and big=. */
#define FAKEGEN_MAX_CHUNKS 1000000u
#define FAKEGEN_MAX_BIG (64u << 20)
/* "think4294967295 ": the longest text of one chunk without big=. */
#define FAKEGEN_MAX_TOKEN_TEXT 16u
/* Status line, headers, chunk framing and the JSON around the content of one segment. */
#define FAKEGEN_SEGMENT_FRAME_BYTES (1u << 20)
/*
 * No segment is larger than this: a segment is one event or one whole
 * non-stream answer, whose content is at most big= bytes, or
 * chunks + 1 short "tokN " texts (reasoning chunks included).
 */
#define FAKEGEN_MAX_SEGMENT_BYTES                                                                  \
    ((size_t)FAKEGEN_MAX_BIG + (size_t)(FAKEGEN_MAX_CHUNKS + 1u) * FAKEGEN_MAX_TOKEN_TEXT +        \
     FAKEGEN_SEGMENT_FRAME_BYTES)

struct fakegen;

/*
 * Starts a response. The behaviour is the body's top-level "fake" field when
 * it is a string, else `behavior` (a profile name or a behaviour string;
 * NULL or "" mean "ok"). The request number comes from counters (when not
 * NULL) keyed by that behaviour, else it is 0. A behaviour that does not
 * parse answers 400 with the reason. Returns 0 and *out (free with
 * fakegen_free), or -ENOMEM.
 */
int fakegen_new(const struct fakegen_request *req, const char *behavior,
                struct fakegen_counters *counters, struct fakegen **out);
void fakegen_free(struct fakegen *g);

/*
 * The next step: returns 1 with a segment in *seg, or 0 when the response is
 * over, with seg->end saying what to do with the connection (seg->delay_ms:
 * how long to wait before doing it). Keeps returning 0 after that.
 */
int fakegen_next(struct fakegen *g, struct fakegen_seg *seg);

/* The parsed directives in force and the status line's code (0 for hang/reset). */
const struct fakegen_opts *fakegen_get_opts(const struct fakegen *g);
int fakegen_status(const struct fakegen *g);
/* The behaviour string in force (after the "fake" override, before profile expansion). */
const char *fakegen_behavior(const struct fakegen *g);

#endif
