/*
 * bedrock — the parts of the Bedrock Converse wire format shared by its two
 * files: bedrock_request.c turns an OpenAI chat request into a Converse body,
 * bedrock.c is the ops table (path, signing, the event stream and the whole
 * answer turned back into OpenAI chunks, errors).
 *
 * Who calls it: provider/bedrock.c and the unit test.
 */
#ifndef UNBUSY_BEDROCK_H
#define UNBUSY_BEDROCK_H

#include "provider/provider.h"

/*
 * The Converse body of an OpenAI chat request c into out:
 *   system / developer messages → system; user content (a string, or text and
 *   image_url parts with data: URLs of png, jpeg, gif or webp) → text and image
 *   blocks; assistant tool_calls → toolUse blocks; tool messages → toolResult
 *   blocks in a user turn; adjacent turns of one role merged (Converse wants
 *   them alternating); tools / tool_choice → toolConfig; max_tokens (or
 *   max_completion_tokens), temperature, top_p, stop → inferenceConfig.
 * A continuation appends the text so far as the closing assistant turn.
 * Returns 0; -1 out of memory; -2 when the request cannot be said in Converse,
 * with *why a static message for the client (an image by http URL, a tool call
 * whose arguments are not JSON, ...).
 */
int bedrock_converse_body(const struct provider_call *c, struct buf *out, const char **why);

/* A message of :message-type exception or error handed to fn as the provider's error event
   ({"error":{message, type, param, code}} in s->out): fn's result; BEDROCK_NOT_EXCEPTION
   for any other message. SageMaker's stream says its errors the same way. */
enum { BEDROCK_NOT_EXCEPTION = -100 };
int bedrock_exception_event(struct provider_stream *s, const struct evs_message *m,
                            provider_event_fn fn, void *ud);

/* An error status and body (the exception's name in __type, else the status) as an error
   kind. */
enum provider_error bedrock_map_error(int status, const char *body, size_t len);

/* The probe verdict of the AWS formats: deep wants 2xx, shallow any answer under 500. */
bool bedrock_probe_ok(bool deep, int status);

/* Converse's stopReason as an OpenAI finish_reason. */
const char *bedrock_finish_reason(const char *stop_reason);

#endif
