#include "obs/reload_stats.h"

#include <stdatomic.h>

static atomic_ullong counts[RELOAD_RESULT__COUNT];
static atomic_ullong last_success_s;

void reload_stats_record(enum reload_result r, uint64_t wall_s)
{
    if ((unsigned)r >= RELOAD_RESULT__COUNT) return;
    atomic_fetch_add_explicit(&counts[r], 1, memory_order_relaxed);
    if (r == RELOAD_RESULT_OK) atomic_store_explicit(&last_success_s, wall_s, memory_order_relaxed);
}

void reload_stats_started(uint64_t wall_s)
{
    atomic_store_explicit(&last_success_s, wall_s, memory_order_relaxed);
}

uint64_t reload_stats_count(enum reload_result r)
{
    return (unsigned)r < RELOAD_RESULT__COUNT
               ? atomic_load_explicit(&counts[r], memory_order_relaxed)
               : 0;
}

void reload_stats_render(struct buf *out, uint64_t generation)
{
    buf_append_str(out, "# HELP unbusy_config_reload_total Config reloads asked for (SIGHUP, POST "
                        "/admin/reload, the file watch), by result: ok (applied) or invalid (the "
                        "file has errors; the running config stays).\n"
                        "# TYPE unbusy_config_reload_total counter\n");
    static const char *const names[RELOAD_RESULT__COUNT] = {"ok", "invalid"};
    for (int r = 0; r < RELOAD_RESULT__COUNT; r++)
        buf_printf(out, "unbusy_config_reload_total{result=\"%s\"} %llu\n", names[r],
                   (unsigned long long)reload_stats_count((enum reload_result)r));
    buf_printf(out,
               "# HELP unbusy_config_generation The config generation new requests use: 1 at "
               "start, one more per applied reload.\n"
               "# TYPE unbusy_config_generation gauge\n"
               "unbusy_config_generation %llu\n",
               (unsigned long long)generation);
    buf_printf(out,
               "# HELP unbusy_config_last_reload_success_timestamp_seconds When the config in "
               "force was loaded (at start, or by the last applied reload).\n"
               "# TYPE unbusy_config_last_reload_success_timestamp_seconds gauge\n"
               "unbusy_config_last_reload_success_timestamp_seconds %llu\n",
               (unsigned long long)atomic_load_explicit(&last_success_s, memory_order_relaxed));
}
