/*
 * demo — the built-in demo configuration (`unbusy --demo`, what `make run`
 * starts): simulated providers inside the binary — one healthy, one busy,
 * one flaky — serving deepseek-r1 and deepseek-v3, so failover can be seen
 * with no key and no network. Real providers whose keys are in the
 * environment (DEEPSEEK_API_KEY, SILICONFLOW_API_KEY, DASHSCOPE_API_KEY) are
 * added in front of the simulated ones (tier 0; the simulated ones are tier 1).
 */
#ifndef UNBUSY_DEMO_H
#define UNBUSY_DEMO_H

#include "base/buf.h"

/* Writes the demo config YAML into out; listen overrides server.listen when not NULL. */
void demo_config_text(struct buf *out, const char *listen);

#endif
