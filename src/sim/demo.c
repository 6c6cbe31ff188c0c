#include "sim/demo.h"

#include <stdlib.h>

struct real_provider {
    const char *name;
    const char *env;
    const char *base_url;
    const char *r1_model;
    const char *v3_model;
};

static const struct real_provider real_providers[] = {
    {"deepseek", "DEEPSEEK_API_KEY", "https://api.deepseek.com/v1", "deepseek-reasoner", "deepseek-chat"},
    {"siliconflow", "SILICONFLOW_API_KEY", "https://api.siliconflow.cn/v1", "deepseek-ai/DeepSeek-R1",
     "deepseek-ai/DeepSeek-V3"},
    {"bailian", "DASHSCOPE_API_KEY", "https://dashscope.aliyuncs.com/compatible-mode/v1", "deepseek-r1",
     "deepseek-v3"},
};

#define NREAL (sizeof real_providers / sizeof real_providers[0])

static void model_section(struct buf *out, const char *name, int which)
{
    buf_printf(out,
               "  %s:\n"
               "    timeouts: {connect: 3s, first_token: 4s, stall: 10s, total: 60s}\n"
               "    deployments:\n",
               name);
    for (size_t i = 0; i < NREAL; i++) {
        const char *key = getenv(real_providers[i].env);
        if (!key || !*key)
            continue;
        buf_printf(out, "      - {provider: %s, model: %s, tier: 0}\n", real_providers[i].name,
                   which ? real_providers[i].v3_model : real_providers[i].r1_model);
    }
    /* The busy one first within its tier half of the time: failover is visible at once. */
    buf_printf(out,
               "      - {provider: sim-busy, model: %s, tier: 1}\n"
               "      - {provider: sim-flaky, model: %s, tier: 1}\n"
               "      - {provider: sim-healthy, model: %s, tier: 1}\n",
               name, name, name);
}

void demo_config_text(struct buf *out, const char *listen)
{
    buf_printf(out,
               "server:\n"
               "  listen: %s\n"
               "  drain_delay: 0s # no load balancer to wait for\n"
               "providers:\n"
               "  sim-healthy:\n"
               "    base_url: sim://healthy\n"
               "  sim-busy:\n"
               "    base_url: sim://busy\n"
               "  sim-flaky:\n"
               "    base_url: sim://flaky\n",
               listen ? listen : "127.0.0.1:8080");
    for (size_t i = 0; i < NREAL; i++) {
        const char *key = getenv(real_providers[i].env);
        if (!key || !*key)
            continue;
        buf_printf(out,
                   "  %s:\n"
                   "    base_url: %s\n"
                   "    api_key: ${%s}\n",
                   real_providers[i].name, real_providers[i].base_url, real_providers[i].env);
    }
    buf_append_str(out, "models:\n");
    model_section(out, "deepseek-r1", 0);
    model_section(out, "deepseek-v3", 1);
}
