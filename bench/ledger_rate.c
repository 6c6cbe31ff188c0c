/*
 * ledger_rate — how many rows per second the ledger's writer thread commits
 * when it is never starved: bench/ledger.sh's ceiling next to what the
 * gateway's traffic asks of it.
 *
 *   ledger_rate FILE RECORDS BATCH
 *
 * Queues RECORDS records (shaped like a proxied request's: ids, key, model,
 * provider, tokens, cost; a handful of keys and models, so the daily rollup
 * sees UPSERT hits) as fast as one thread can, into a ledger whose queue
 * holds them all, and waits for the writer with ledger_sync. Prints
 *   RESULT records=N written=N seconds=S rows_per_s=R queue_s=Q batches=B
 * where queue_s is the time the producer took (ledger_record's cost on the
 * request path). Built by bench/ledger.sh against the gateway's objects.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "acct/ledger.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: ledger_rate FILE RECORDS BATCH\n");
        return 2;
    }
    long records = atol(argv[2]), batch = atol(argv[3]);
    if (records < 1 || records > (long)LEDGER_MAX_QUEUE || batch < 1 || batch > (long)LEDGER_MAX_BATCH) {
        fprintf(stderr, "ledger_rate: RECORDS 1..%u, BATCH 1..%u\n", LEDGER_MAX_QUEUE, LEDGER_MAX_BATCH);
        return 2;
    }
    struct ledger_options o = {.path = argv[1], .queue = (uint32_t)records, .batch = (uint32_t)batch};
    struct ledger *l;
    char err[256];
    if (ledger_open(&o, &l, err, sizeof err) != 0) {
        fprintf(stderr, "ledger_rate: %s\n", err);
        return 1;
    }
    static const char *keys[] = {"team-a", "team-b", "batch", "ops"};
    static const char *models[] = {"deepseek-r1", "deepseek-v3"};
    struct timespec wall;
    clock_gettime(CLOCK_REALTIME, &wall);
    int64_t t_ms = (int64_t)wall.tv_sec * 1000 + wall.tv_nsec / 1000000;
    double t0 = now_s();
    for (long i = 0; i < records; i++) {
        char id[17];
        snprintf(id, sizeof id, "%016lx", (unsigned long)i * 0x9e3779b97f4a7c15ul);
        struct ledger_record r = {
            .time_ms = t_ms,
            .request_id = id,
            .key_id = (i % 4) + 1,
            .key_name = keys[i % 4],
            .model = models[i % 2],
            .provider = "fake",
            .deployment_model = models[i % 2],
            .status = 200,
            .outcome = OUTCOME_OK,
            .prompt_tokens = 29,
            .completion_tokens = 20,
            .reasoning_tokens = 0,
            .cached_tokens = 0,
            .cost = 0.000042,
            .currency = "USD",
            .ttft_ms = 5,
            .duration_ms = 6,
        };
        if (ledger_record(l, &r) != 0) {
            fprintf(stderr, "ledger_rate: record %ld refused\n", i);
            return 1;
        }
    }
    double t1 = now_s();
    if (ledger_sync(l, 600000) != 0) {
        fprintf(stderr, "ledger_rate: the writer did not finish\n");
        return 1;
    }
    double t2 = now_s();
    struct ledger_stats st;
    ledger_stats(l, &st);
    ledger_close(l);
    printf("RESULT records=%ld written=%llu seconds=%.3f rows_per_s=%.0f queue_s=%.3f batches=%llu\n", records,
           (unsigned long long)st.written, t2 - t0, st.written / (t2 - t0), t1 - t0,
           (unsigned long long)st.batches);
    return st.written == (unsigned long long)records ? 0 : 1;
}
