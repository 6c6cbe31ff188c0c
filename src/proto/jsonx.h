/*
 * jsonx — the JSON work on the request path, on tokens (no DOM).
 *
 * The gateway never re-serialises a client's body: it scans it once for the
 * few fields it needs (model, stream, stream_options, max_tokens, tools,
 * messages) and splices the rewritten fields into a copy, so unknown fields,
 * key order, number formats and whitespace reach the provider untouched and a
 * 100 KB body costs one linear pass (the one-pass cursor of jsonx_walk.h,
 * which checks the text strictly as it writes the tokens) and one copy.
 *
 * The scan is also where a body is refused before any upstream sees it: a
 * field the gateway reads spelt twice or in another case (an upstream could
 * read the other copy), a wrong type, or a field the endpoint requires
 * missing — with the parameter named and OpenAI's wording and error code.
 *
 * Also here: the scan of one streamed chunk (does it carry content? usage?
 * an error?) used by the relay, and extraction of an error message from a
 * provider's error body. The answer assembler for non-stream clients lives in
 * assemble.c. All functions are pure; callers own every buffer.
 *
 * Files: jsonx.c (a document's tokens, built on the cursor; the tokenizing
 * chunk scan; provider errors), jsonx_request.c (request scan, checks and
 * rewrite), sharing jsonx_int.h, and jsonx_walk.c (the one-pass cursor and
 * chunk scan). Other modules use these functions or cJSON.
 */
#ifndef UNBUSY_JSONX_H
#define UNBUSY_JSONX_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#include "base/buf.h"

/* A byte span [start, end) inside the scanned text; start == end == 0 when absent. */
struct jsonx_span {
    size_t start, end;
};

enum {
    JSONX_OK = 0,
    JSONX_ERR_SYNTAX = -1,    /* not valid JSON */
    JSONX_ERR_NOT_OBJECT = -2,/* top level is not an object */
    JSONX_ERR_FIELD = -3,     /* a field is wrong or missing; bad_field names it, error says why */
    JSONX_ERR_NOMEM = -4,
    JSONX_ERR_TOO_DEEP = -5,  /* nesting deeper than JSONX_MAX_DEPTH */
};

#define JSONX_MAX_DEPTH 64

/* Which endpoint a body is for: what it requires (JSONX_API_ANY: nothing). */
enum jsonx_api {
    JSONX_API_ANY = 0,
    JSONX_API_CHAT,        /* model, messages */
    JSONX_API_COMPLETIONS, /* model, prompt */
    JSONX_API_EMBEDDINGS,  /* model, input */
};

struct jsonx_request {
    char model[256];           /* unescaped "model" value; "" when absent */
    bool has_model;
    bool stream;               /* "stream": true */
    bool has_stream_options;
    bool include_usage;        /* stream_options.include_usage == true */
    bool has_max_tokens;
    int64_t max_tokens;        /* max_tokens, or max_completion_tokens */
    bool has_n;
    int64_t n;                 /* "n", choices asked for (>= 1); 1 when absent */
    bool has_tools;            /* non-empty "tools" or "functions" */
    size_t n_messages;         /* elements of "messages" (chat) */
    size_t prompt_chars;       /* total length of message contents / prompt strings (an estimate input) */
    /* Spans of the member (key through value) for the splicer; a member whose
       value is null still has its span: */
    struct jsonx_span model_member, stream_member, stream_options_member;
    struct jsonx_span include_usage_member; /* inside stream_options */
    struct jsonx_span object;  /* the top-level object, braces included */
    /* With JSONX_ERR_FIELD: the parameter as OpenAI names it ("model", "messages[0].role",
       or a misspelt key as the client wrote it), a message for the client, and OpenAI's
       error code ("missing_required_parameter", "invalid_type", "empty_array",
       "duplicate_parameter", "unknown_parameter", ...; a static string). */
    char bad_field[96];
    char error[256];
    const char *error_code;
};

/*
 * Scan a request body for an endpoint. Returns JSONX_OK or a negative
 * JSONX_ERR_*. The body must be strict JSON (RFC 8259: no raw control
 * characters in strings, exact number grammar); its top level an object.
 *
 * The members the gateway reads ("model", "stream", "stream_options",
 * "max_tokens", "max_completion_tokens", "n", "messages", "prompt",
 * "input", "tools", "functions", and stream_options.include_usage) must
 * each appear at most once and be spelt exactly so: keys are compared after
 * unescaping, and one that equals a name only case-insensitively (ASCII
 * case, and 'ſ' / the Kelvin sign as Go's encoding/json folds them) is a
 * JSONX_ERR_FIELD, since an upstream may honour another copy than the one
 * the gateway routed and checked by.
 *
 * Types: model a string (at most 255 bytes unescaped, no NUL); stream and
 * include_usage booleans; stream_options an object; max_tokens and
 * max_completion_tokens integers >= 0; n an integer >= 1; tools, functions
 * and messages arrays. Any of them but model may be null (= absent).
 * max_completion_tokens wins over max_tokens.
 *
 * Required, per endpoint: model, non-empty; chat: messages, a non-empty
 * array of objects, each with a string role out of system, assistant, user,
 * function, tool, developer; completions: prompt, a string or a non-empty
 * array of strings, of tokens (integers >= 0) or of token arrays;
 * embeddings: input, the same, with no empty string or array.
 *
 * prompt_chars counts the escaped bytes of messages[].content (strings, and
 * the "text" of content parts) and of "prompt"/"input" strings.
 */
int jsonx_scan_api_request(const char *body, size_t len, enum jsonx_api api, struct jsonx_request *out);

/* jsonx_scan_api_request with JSONX_API_ANY: the checks above but the required fields. */
int jsonx_scan_request(const char *body, size_t len, struct jsonx_request *out);

/*
 * Write body to out with "model" set to new_model (inserted if absent). When
 * force_stream is true, also "stream": true and stream_options.include_usage
 * set to true (other stream_options keys kept). All other bytes are copied as
 * they are. new_model NULL leaves "model" as it is. scan must come from
 * jsonx_scan_request on this same body. Returns 0, -EINVAL when scan does
 * not fit body, or -ENOBUFS/-ENOMEM from buf.
 */
int jsonx_rewrite_request(const char *body, size_t len, const struct jsonx_request *scan,
                          const char *new_model, bool force_stream, struct buf *out);

/* What one streamed chunk ("data: {...}") says. */
struct jsonx_chunk {
    bool valid;           /* parsed as a JSON object */
    bool has_content;     /* a choice carries non-empty content, reasoning_content/reasoning,
                             tool_calls, function_call, text, or a non-null finish_reason */
    bool has_finish;      /* some choice has a non-null finish_reason */
    bool choices_empty;   /* "choices": [] (the include_usage final chunk) */
    bool has_usage;       /* "usage" is a non-null object */
    bool has_error;       /* top-level "error" member (some providers send errors in-stream) */
    int64_t prompt_tokens, completion_tokens, reasoning_tokens, cached_tokens;
    /* cached_tokens: prompt_tokens_details.cached_tokens or DeepSeek's prompt_cache_hit_tokens */
    size_t content_chars; /* generated text in it (content, reasoning, refusal, text, tool-call
                             names and arguments; escaped bytes, as prompt_chars): what a
                             usage estimate counts when the provider reports none */
    /* Spans into the scanned text, for what a continuation keeps and rewrites (one-pass
       scan only; start == end == 0 when absent): */
    struct jsonx_span id, model; /* top-level "id" and "model" string bodies (escaped) */
    struct jsonx_span created;   /* top-level "created" when it is a number */
    struct jsonx_span content;   /* the first non-empty choices[].delta.content body (escaped) */
    unsigned n_content;          /* how many choices' deltas carry non-empty content */
    bool delta_calls;            /* some delta has a tool_calls or function_call member */
    /* The non-empty text strings counted in content_chars (content, reasoning_content,
       reasoning, refusal, text; not tool calls): how many, and the last one's body. */
    unsigned n_text;
    struct jsonx_span text;
    /* The last top-level string member nothing here reads (OpenAI's random "obfuscation"
       padding, an unknown field): a chunk may differ from the last in it too (chunk_shape.h). */
    struct jsonx_span pad;
    /* A line end between its tokens (JSON allows one as whitespace; no string holds one): a
       relay writes such a chunk as one SSE data line per line, any other as it is. */
    bool multiline;
};

/*
 * Also accepts "message" in place of "delta" (some servers stream whole
 * messages) and counts a non-empty "refusal" as content. Token counts are 0
 * when absent. Returns JSONX_OK, or a negative JSONX_ERR_* (then valid is
 * false); a valid chunk that is not an object gives JSONX_ERR_NOT_OBJECT.
 */
int jsonx_scan_chunk(const char *data, size_t len, struct jsonx_chunk *out);

/*
 * jsonx_scan_chunk walks the text once without tokens or allocation
 * (jsonx_walk.c): it runs on every relayed event. jsonx_scan_chunk_tokens is
 * the same scan on a document's tokens, kept as the reference the fuzz target and
 * the unit tests hold it to (same verdict and fields for any text that opens
 * with '{'; the spans are the one-pass scan's only).
 */
int jsonx_scan_chunk_tokens(const char *data, size_t len, struct jsonx_chunk *out);

/* Append the text of an escaped string body (as jsonx_scan_chunk's spans give, or several
   of them one after another) to out, escapes decoded. Returns 0 or -1 (buf full / no memory). */
int jsonx_unescape(const char *s, size_t n, struct buf *out);
/* The same into dst[cap], NUL-terminated: its length, or SIZE_MAX when it does not fit. */
size_t jsonx_unescape_into(const char *s, size_t n, char *dst, size_t cap);

/*
 * From a provider's error body (JSON or not), copy a short human message into
 * msg (NUL-terminated, at most cap-1 bytes): error.message, or message, or
 * the first printable text with HTML tags stripped. Returns msg's length.
 * Also understood: {"error":"text"}, {"detail":...} (FastAPI), a top-level
 * array's first element, and an HTML page's <title>. Whitespace and control
 * characters collapse to single spaces; a cut never splits a UTF-8 sequence.
 */
size_t jsonx_error_message(const char *body, size_t len, char *msg, size_t cap);

#endif
