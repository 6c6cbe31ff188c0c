/*
 * prefix_key — the affinity key of a chat request: a 64-bit hash of its
 * leading messages, the part a multi-turn conversation repeats on every turn
 * and an engine keeps in its prefix cache.
 *
 * The leading messages are the system (and developer) messages at the start
 * of "messages" and the first message after them, hashed as the bytes the
 * client sent, at most max_bytes of them: every turn of one conversation
 * starts with the same ones, while two conversations that share only a
 * system prompt usually differ in their first question, so they spread. A
 * request of one message has no key: a lone question without a system prompt
 * or history shares nothing another request left in an engine's cache, and
 * is better sent by load alone. A
 * completions request's "prompt" (a string) is hashed the same way, its
 * first max_bytes. Pure: the proxy (proxy/proxy_affinity.c) calls it on a
 * body jsonx has already accepted, but it reads any bytes safely.
 */
#ifndef UNBUSY_PREFIX_KEY_H
#define UNBUSY_PREFIX_KEY_H

#include <stddef.h>
#include <stdint.h>

/* The key of body, or 0 when it has no messages or prompt to hash. */
uint64_t prefix_key(const char *body, size_t len, size_t max_bytes);

/* The same hash of any bytes (a session header's value); never 0. */
uint64_t prefix_key_bytes(const char *data, size_t len);

#endif
