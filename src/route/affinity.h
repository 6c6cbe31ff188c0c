/*
 * affinity — consistent hashing with bounded load: a request's affinity key
 * (route/prefix hash or a session header, computed by the proxy) names a
 * point on a ring of the model's deployments, and the request goes to the
 * first deployment clockwise from it whose load is at most load_factor x
 * the average over the candidates, plus one request, (Mirrokni, Thorup, Zadimoghaddam,
 * "Consistent Hashing with Bounded Loads", 2018). So requests that share a
 * conversation prefix land on the engine that already holds it in its
 * prefix cache, while no engine takes more than its bounded share: past it,
 * the next on the ring takes the overflow, and the same next one each time,
 * so the overflow's cache is reused too.
 *
 * Each deployment has AFFINITY_VNODES points, placed by a hash of its name
 * ("provider/model"), so a deployment added or removed moves only its own
 * keys. The ring is built once with the balancer (balancer_create) and read
 * by every worker; the counters are atomics. Pure apart from them: loads
 * come from the caller.
 */
#ifndef UNBUSY_AFFINITY_H
#define UNBUSY_AFFINITY_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AFFINITY_VNODES 100

struct affinity {
    double load_factor;
    size_t ncand;
    size_t npoints;
    struct affinity_point {
        uint64_t at;
        uint16_t cand;
    } * points;          /* sorted by at */
    atomic_ullong home;  /* keyed requests sent to their own deployment */
    atomic_ullong spill; /* sent on past it (it was over the bound) */
};

/* A ring over n candidates named names[0..n) (n <= 64), NULL when out of memory. */
struct affinity *affinity_new(const char *const *names, size_t n, double load_factor);
/* NULL is a no-op. */
void affinity_free(struct affinity *a);

/*
 * The position in set[0..m) (candidate indexes, as the balancer's tier set) for key: the
 * first on the ring from key's point whose load[k] <= load_factor x mean(load[0..m)) + 1.
 * Counts a home or a spill. Returns m when set is empty.
 */
size_t affinity_choose(struct affinity *a, uint64_t key, const uint16_t *set, const double *load,
                       size_t m);

/* A 64-bit hash of bytes (FNV-1a, then a finalizer that spreads it over the ring). */
uint64_t affinity_hash(const void *data, size_t len, uint64_t seed);

#endif
