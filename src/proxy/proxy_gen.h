/*
 * proxy_gen — how one event loop moves to a new config generation.
 *
 * A generation is a struct runtime (route/runtime.h) with its config snapshot,
 * plus the metrics shard its counters go to. struct proxy_env holds one
 * reference to the generation new requests on its loop take (env->rt,
 * env->cfg, env->metrics); a request takes its own reference when it starts
 * (proxy_start) and drops it in its finalize, so it ends on the generation it
 * began with. A reload, on whatever thread, offers the next generation to each
 * loop (proxy_gen_offer); the loop switches at its next iteration, between two
 * callbacks, so no handler ever sees env->rt and env->cfg of two generations.
 * Only the loop's own thread reads or writes those fields: no lock on the
 * request path.
 *
 * Who calls it: proxy_env_init / proxy_env_close (set up, tear down), the
 * reload (src/reload.c: proxy_gen_offer).
 */
#ifndef UNBUSY_PROXY_GEN_H
#define UNBUSY_PROXY_GEN_H

struct proxy_env;
struct runtime;
struct metrics_shard;

/* On env's loop, from proxy_env_init: env takes a reference to env->rt and env->cfg.
   0 or -errno. */
int proxy_gen_init(struct proxy_env *env);
/* On env's loop, from its close: closes the handle (done(ud) once it is closed) and,
   then, drops env's references and any offer not taken. */
void proxy_gen_close(struct proxy_env *env, void (*done)(void *ud), void *ud);

/* An offer's acknowledgement, in the caller's memory (so an offer cannot fail); it
   must live until switched(ud) is called. */
struct proxy_gen_ack {
    struct proxy_gen_ack *next;
    void (*switched)(void *ud);
    void *ud;
};

/*
 * Any thread: env's loop switches to rt (a reference is taken here) and shard (NULL:
 * keeps its shard) at its next iteration, then calls ack->switched(ack->ud) on its own
 * thread. An offer not yet taken is replaced (its generation skipped); its ack is
 * called when the loop switches to the newer one, since until then the loop still
 * uses what it would free.
 */
void proxy_gen_offer(struct proxy_env *env, struct runtime *rt, struct metrics_shard *shard,
                     struct proxy_gen_ack *ack);

#endif
