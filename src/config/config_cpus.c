/*
 * config_cpus.c — how many CPUs this process may use, for `server.workers: 0`
 * (declared in config.h). Kept apart from config.c: the one part of loading a
 * config that looks at the machine.
 */
#include <stdio.h>
#include <uv.h>

#include "config/config.h"

unsigned config_default_workers(unsigned affinity_cpus, const char *cpu_max)
{
    unsigned n = affinity_cpus < 1 ? 1 : affinity_cpus;
    unsigned long long quota, period;
    if (cpu_max && sscanf(cpu_max, "%llu %llu", &quota, &period) == 2 && quota > 0 && period > 0) {
        unsigned long long cpus = (quota + period - 1) / period; /* 1.5 CPUs: 2 loops */
        if (cpus < n)
            n = (unsigned)cpus;
    }
    return n > 1024 ? 1024 : n;
}

/* Two loops time-sliced on one CPU answer no more than one does, and each waits for the
   other's slice: count the CPUs this process may use (the affinity mask, which
   uv_available_parallelism reads, and a cgroup v2 quota), not the machine's. */
unsigned config_usable_cpus(void)
{
    char text[64] = "";
    FILE *f = fopen("/sys/fs/cgroup/cpu.max", "r");
    if (f) {
        if (!fgets(text, sizeof text, f))
            text[0] = '\0';
        fclose(f);
    }
    return config_default_workers(uv_available_parallelism(), text[0] ? text : NULL);
}
