/*
 * fakeup_engine — fakeup as a self-hosted inference engine: a bounded batch
 * of slots with a FIFO queue in front, the engine's Prometheus /metrics in
 * vLLM's, SGLang's, llama.cpp's or TGI's names, background load from other
 * (phantom) clients, and a prefix cache whose hits it counts.
 *
 *   --engine vllm|sglang|llama.cpp|tgi   serve GET /metrics in that engine's names
 *   --slots N          at most N answers at once; later requests wait in FIFO order
 *                      (num_requests_waiting) until a slot frees (0: no limit)
 *   --served-model M   the model_name label of vLLM's and SGLang's series (default "model")
 *   --background N     N phantom clients in a closed loop, each holding a slot for
 *                      --background-ms (default 200) and queueing again at once
 *
 * Control endpoints:
 *   POST /_fake/background   body N: the phantom clients from now on
 *   POST /_fake/metrics      body CODE: /metrics answers CODE (200 restores it)
 *   /_fake/stats gains "engine": {running, waiting, prefix_lookups, prefix_hits}
 *
 * A request is a prefix lookup when its messages hold at least two messages after
 * the leading system ones (a later turn of a conversation); it hits when the previous
 * turn's prompt (its messages but the last two, the answer and the new question), or
 * a longer leading run of them, was the whole prompt of a request this fake answered
 * before (kept for the last FKE_PREFIX_CACHE prompts): the prefix an engine's cache
 * would hold. /metrics reports the KV cache as running / slots.
 */
#ifndef UNBUSY_FAKEUP_ENGINE_H
#define UNBUSY_FAKEUP_ENGINE_H

#include <cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

/* A request's place with the engine, kept in its connection. */
struct fke_slot {
    bool queued;  /* waits for a slot */
    bool holding; /* holds a slot */
    struct fke_slot *next, *prev;
    uint64_t seq;
    void *owner; /* the connection, handed back to the start callback */
};

/* Parses one engine option at argv[*i] (advancing *i past its value); 1 taken, 0 not
   an engine option, -1 bad value (message printed). */
int fke_option(int argc, char **argv, int *i);
/* After the options: start (a no-op without --engine and --slots). start is called when
   a queued request gets its slot. */
int fke_start(uv_loop_t *loop, void (*start)(void *owner));
void fke_stop(void);
/* A request begins its answer: true when it may start now (a slot taken or no limit),
   false when it waits (start is called later). */
bool fke_admit(struct fke_slot *s, void *owner);
/* The request's answer ended or its connection closed: frees its slot or queue place. */
void fke_release(struct fke_slot *s);
/* GET /metrics and the engine's control endpoints: true when handled, with *status, the
   content type and a malloc'd body. */
bool fke_handle(const char *method, const char *path, const char *body, size_t len, int *status,
                const char **type, char **out);
/* Counts a prompt in the prefix cache (chat bodies only). */
void fke_observe(const char *body, size_t len);
/* Adds "engine" to the stats object. */
void fke_stats(cJSON *stats);
void fke_reset(void);

#endif
