/*
 * eventstream — a pure, resumable parser for AWS's binary event stream
 * (application/vnd.amazon.eventstream), and its encoder.
 *
 * A message on the wire:
 *
 *   total length u32 | headers length u32 | prelude CRC32 u32      (the 12-byte prelude)
 *   headers: name length u8, name, value type u8, value            (headers length bytes)
 *   payload                                                        (the rest)
 *   message CRC32 u32                                              (over everything before it)
 *
 * Integers are big-endian; the CRC is CRC-32 (IEEE, as zlib's). A header's value
 * is one of ten types: bool true / false (no bytes), byte (1), short (2), int
 * (4), long (8), byte array and string (u16 length, bytes), timestamp (8, ms
 * since the epoch) and UUID (16).
 *
 * Bedrock's ConverseStream and SageMaker's InvokeEndpointWithResponseStream
 * answer in it (provider/bedrock.c, provider/sagemaker.c). The parser is fed
 * bytes in pieces of any size and calls back once per whole, checked message.
 * It refuses a message whose prelude CRC or message CRC is wrong, whose
 * lengths cannot be (total under 16 bytes, headers past the payload, total past
 * max_message) or whose headers do not parse; after an error it is unusable
 * until evs_parser_reset. A message that arrives whole inside one feed is
 * parsed in place; otherwise it is gathered into one buffer bounded by
 * max_message. No I/O.
 *
 * Who calls it: the AWS providers, the fuzz target, the unit test, bench/.
 */
#ifndef UNBUSY_EVENTSTREAM_H
#define UNBUSY_EVENTSTREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"

enum evs_type {
    EVS_BOOL_TRUE = 0,
    EVS_BOOL_FALSE = 1,
    EVS_BYTE = 2,
    EVS_SHORT = 3,
    EVS_INT = 4,
    EVS_LONG = 5,
    EVS_BYTES = 6,
    EVS_STRING = 7,
    EVS_TIMESTAMP = 8,
    EVS_UUID = 9,
};

struct evs_header {
    const char *name; /* not NUL-terminated */
    size_t name_len;
    enum evs_type type;
    int64_t num;       /* bool (1/0), byte, short, int, long, timestamp (ms) */
    const char *bytes; /* byte array, string, UUID (16 bytes) */
    size_t bytes_len;
};

enum { EVS_MAX_HEADERS = 32 }; /* more in one message is an error */

struct evs_message {
    struct evs_header headers[EVS_MAX_HEADERS];
    size_t nheaders;
    const char *payload; /* valid during the callback only */
    size_t payload_len;
};

/* Return 0 to go on, or a positive value to stop the parse (evs_parser_feed returns it). */
typedef int (*evs_message_fn)(void *ud, const struct evs_message *m);

enum {
    EVS_ERR_LENGTH = -1, /* a length that cannot be, or a message past max_message */
    EVS_ERR_PRELUDE_CRC = -2,
    EVS_ERR_MESSAGE_CRC = -3,
    EVS_ERR_HEADER = -4, /* a header that does not parse, or too many */
    EVS_ERR_NOMEM = -5,
};

#define EVS_PRELUDE_LEN 12u
#define EVS_MIN_MESSAGE 16u
#define EVS_DEFAULT_MAX_MESSAGE (16u << 20) /* the service's own bound on one message */

struct evs_parser {
    size_t max_message;
    /* private state: */
    struct buf pending; /* the bytes of a message not yet whole */
    uint32_t total;     /* its total length once the prelude is in, else 0 */
    int error;          /* the error that made it unusable, or 0 */
};

/* max_message 0: EVS_DEFAULT_MAX_MESSAGE. Allocates nothing yet. */
void evs_parser_init(struct evs_parser *p, size_t max_message);
void evs_parser_free(struct evs_parser *p);
void evs_parser_reset(struct evs_parser *p);

/*
 * Feed len bytes; calls fn for each message they complete, in order. Returns 0
 * when every byte was consumed, the callback's positive value when it stopped
 * the parse (*consumed says how far: just past that message), or a negative
 * EVS_ERR_*. consumed may be NULL.
 */
int evs_parser_feed(struct evs_parser *p, const char *data, size_t len, evs_message_fn fn, void *ud,
                    size_t *consumed);

/* True when the parser holds part of a message (a stream that ends here was cut). */
bool evs_parser_partial(const struct evs_parser *p);

/* The header of that name, or NULL. */
const struct evs_header *evs_header_find(const struct evs_message *m, const char *name);

/* A string header's value (NUL-free compare helper): true when it is a string equal to value. */
bool evs_header_is(const struct evs_message *m, const char *name, const char *value);

/* Appends one message; 0 or -1. The headers' name_len must be under 256, byte arrays and
   strings under 65,536. */
int evs_encode(struct buf *out, const struct evs_header *headers, size_t nheaders,
               const void *payload, size_t payload_len);

/* CRC-32 (IEEE) of len bytes continuing crc (0 to start). */
uint32_t evs_crc32(uint32_t crc, const void *data, size_t len);

/* "a parse error" name of an EVS_ERR_* for logs. */
const char *evs_error_name(int err);

#endif
