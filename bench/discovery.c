/*
 * discovery — what a discovered deployment adds to each attempt, and what an answer costs:
 *
 *   pick-N      endpoint_pick + endpoint_release (OK) on a set of N addresses, one thread:
 *               the work an attempt on a discovered deployment does beyond an undiscovered
 *               one (the set's lock, a pass over the addresses, the address's health slot)
 *   pick-N-2t   the same from two threads at once on one set (two workers sharing it)
 *   merge-64    endpoint_set_merge of an unchanged 64-address answer (what every TTL costs)
 *
 * Built by bench/Makefile (make all first); run: build/bench/discovery [seconds per case,
 * default 2]. Prints ns per operation.
 */
#include <arpa/inet.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "route/endpoints.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t now_ms(void)
{
    return (uint64_t)(now_s() * 1000);
}

static void addrs(struct endpoint_addr *a, size_t n)
{
    memset(a, 0, n * sizeof *a);
    for (size_t i = 0; i < n; i++) {
        struct sockaddr_in *in = (struct sockaddr_in *)&a[i].sa;
        in->sin_family = AF_INET;
        in->sin_port = htons(8000);
        in->sin_addr.s_addr = htonl(0x0a000001u + (uint32_t)i);
        a[i].weight = 1;
        a[i].ttl_s = 5;
    }
}

struct run {
    struct endpoint_set *s;
    double seconds;
    unsigned long ops;
};

static void *pick_loop(void *arg)
{
    struct run *r = arg;
    uint64_t rnd = 0x9E3779B97F4A7C15ULL ^ (uintptr_t)r;
    double end = now_s() + r->seconds;
    unsigned long ops = 0;
    while (now_s() < end) {
        for (int i = 0; i < 1000; i++) {
            rnd ^= rnd << 13;
            rnd ^= rnd >> 7;
            rnd ^= rnd << 17;
            struct health_ticket t;
            uint64_t now = now_ms();
            struct endpoint *e = endpoint_pick(r->s, now, NULL, 0, rnd, &t);
            if (!e) {
                fprintf(stderr, "no endpoint\n");
                exit(1);
            }
            endpoint_release(r->s, e, &t, now, HEALTH_OK, 100, 0, rnd, NULL);
        }
        ops += 1000;
    }
    r->ops = ops;
    return NULL;
}

static void bench_pick(size_t n, int threads, double seconds)
{
    struct endpoint_addr a[ENDPOINTS_MAX];
    addrs(a, n);
    struct endpoint_set *s = endpoint_set_new(NULL, 0);
    endpoint_set_merge(s, a, n, now_ms());
    struct run r[2] = {{s, seconds, 0}, {s, seconds, 0}};
    pthread_t th[2];
    for (int i = 0; i < threads; i++)
        pthread_create(&th[i], NULL, pick_loop, &r[i]);
    unsigned long ops = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(th[i], NULL);
        ops += r[i].ops;
    }
    /* per thread: the time one attempt spends */
    printf("pick-%zu%s\t%.0f ns/op per thread\t(%lu ops)\n", n, threads > 1 ? "-2t" : "",
           seconds * 1e9 * threads / (double)ops, ops);
    endpoint_set_free(s);
}

static void bench_merge(double seconds)
{
    struct endpoint_addr a[ENDPOINTS_MAX];
    addrs(a, ENDPOINTS_MAX);
    struct endpoint_set *s = endpoint_set_new(NULL, 0);
    endpoint_set_merge(s, a, ENDPOINTS_MAX, now_ms());
    double start = now_s(), end = start + seconds;
    unsigned long ops = 0;
    while (now_s() < end) {
        for (int i = 0; i < 100; i++)
            endpoint_set_merge(s, a, ENDPOINTS_MAX, now_ms());
        ops += 100;
    }
    printf("merge-64\t%.0f ns/op\t(%lu ops)\n", (now_s() - start) * 1e9 / (double)ops, ops);
    endpoint_set_free(s);
}

int main(int argc, char **argv)
{
    double seconds = argc > 1 ? atof(argv[1]) : 2;
    bench_pick(1, 1, seconds);
    bench_pick(3, 1, seconds);
    bench_pick(64, 1, seconds);
    bench_pick(3, 2, seconds);
    bench_pick(64, 2, seconds);
    bench_merge(seconds);
    return 0;
}
