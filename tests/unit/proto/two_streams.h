/*
 * Two streams of one server, as the chunks kept across streams see them (test_chunk_shape,
 * test_assemble): the second's role chunk, first text and finish are the first's with
 * another id, "created", text and pad; its usage differs.
 */
#ifndef UNBUSY_TEST_TWO_STREAMS_H
#define UNBUSY_TEST_TWO_STREAMS_H

#include <stddef.h>

#define STREAM_CHUNK(id, created, rest)                                                            \
    "{\"id\":\"" id "\",\"object\":\"chat.completion.chunk\",\"created\":" created                 \
    ",\"model\":\"m\",\"choices\":[{\"index\":0," rest

static const char *const stream_first[] = {
    STREAM_CHUNK("chatcmpl-1", "1700000000",
                 "\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}],\"obfuscation\":\"k\"}"),
    STREAM_CHUNK("chatcmpl-1", "1700000000",
                 "\"delta\":{\"content\":\"He\"}}],\"obfuscation\":\"abc\"}"),
    STREAM_CHUNK("chatcmpl-1", "1700000000",
                 "\"delta\":{\"content\":\"llo\"}}],\"obfuscation\":\"d\"}"),
    STREAM_CHUNK("chatcmpl-1", "1700000000",
                 "\"delta\":{},\"finish_reason\":\"stop\"}],\"obfuscation\":\"\"}"),
    "{\"id\":\"chatcmpl-1\",\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_"
    "tokens\":2}}",
    NULL};

static const char *const stream_next[] = {
    STREAM_CHUNK("chatcmpl-22\\u0041", "1700000001.5",
                 "\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}],\"obfuscation\":\"\"}"),
    STREAM_CHUNK("chatcmpl-22\\u0041", "1700000001.5",
                 "\"delta\":{\"content\":\"W\\u00e9\"}}],\"obfuscation\":\"xyzw\"}"),
    STREAM_CHUNK("chatcmpl-22\\u0041", "1700000001.5",
                 "\"delta\":{\"content\":\"orld\"}}],\"obfuscation\":\"x\"}"),
    STREAM_CHUNK("chatcmpl-22\\u0041", "1700000001.5",
                 "\"delta\":{},\"finish_reason\":\"stop\"}],\"obfuscation\":\"qq\"}"),
    "{\"id\":\"chatcmpl-22\\u0041\",\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_"
    "tokens\":4}}",
    NULL};

#endif
