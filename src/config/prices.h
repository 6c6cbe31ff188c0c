/*
 * prices — what a request cost, from the config's prices: section.
 *
 * A price belongs to a provider and the deployment's model name (the name the
 * provider expects, not the one the client sent); either may be a glob
 * ("deepseek-*", fnmatch(3) syntax). It gives rates per million tokens for
 * uncached input, cached input and output, a currency, and optionally
 * time-of-day windows in UTC with other rates (an off-peak discount, a peak
 * surcharge); a window may wrap past midnight ("16:30" to "00:30").
 *
 * How tokens are counted (the OpenAI and DeepSeek usage objects agree):
 * cached tokens are part of prompt_tokens, and reasoning tokens are part of
 * completion_tokens. So the cost is
 *     (prompt - cached) × input + cached × cached_input + completion × output
 * and reasoning tokens are never added on top (that would count them twice).
 *
 * Who calls it: the request's finalize (through ledger_record_price), the
 * cost balancing strategy (prices_find when it is created, prices_rates_at at
 * each choice) and the config loader (prices_config_section parses the
 * section, prices_config_free frees it). prices_cost, prices_find and prices_estimate_tokens are pure:
 * no I/O, no clock, no allocation.
 */
#ifndef UNBUSY_PRICES_H
#define UNBUSY_PRICES_H

#include <stddef.h>
#include <stdint.h>

#include "config/config.h"

#define PRICES_MAX 4096       /* entries under prices: */
#define PRICES_MAX_WINDOWS 24 /* windows per entry */
#define PRICES_MAX_RATE 1e6   /* per million tokens, in any currency */

/* Tokens of one request; a negative count means "not known" and counts as 0. */
struct prices_usage {
    int64_t prompt_tokens;     /* every input token, cached ones included */
    int64_t completion_tokens; /* every output token, reasoning ones included */
    int64_t reasoning_tokens;  /* informational: already inside completion_tokens */
    int64_t cached_tokens;     /* the part of prompt_tokens served from the provider's cache */
};

/*
 * The entry pricing (provider, model), or NULL. Precedence: exact provider
 * and exact model, then exact provider and a model glob, then a provider glob
 * and an exact model, then globs for both; among equals, the first in the
 * file. A linear scan: prices: is short.
 */
const struct cfg_price *prices_find(const struct config *c, const char *provider,
                                    const char *model);

/* The rates in force at time_ms (unix ms; the window is chosen in UTC). */
const struct cfg_price_rates *prices_rates_at(const struct cfg_price *p, int64_t time_ms);

/*
 * The cost of usage u on (provider, model) at time_ms, in *currency (points
 * into the config: valid while the snapshot is). Returns 0; or -ENOENT when
 * no price matches (*cost 0, *currency NULL). Cached tokens above prompt
 * tokens are taken as all of the prompt cached.
 */
int prices_cost(const struct config *c, const char *provider, const char *model,
                const struct prices_usage *u, int64_t time_ms, double *cost, const char **currency);

/* The same for one entry (never NULL). */
double prices_cost_of(const struct cfg_price *p, const struct prices_usage *u, int64_t time_ms);

/*
 * Tokens guessed when a provider reports no usage: a quarter of the bytes,
 * rounded up (English text runs about 4 characters per token; UTF-8 Chinese,
 * 3 bytes a character, comes out near 0.75 tokens a character). A row priced
 * from a guess is flagged usage_estimated in the ledger.
 */
void prices_estimate_tokens(size_t prompt_chars, size_t completion_chars, int64_t *prompt_tokens,
                            int64_t *completion_tokens);

/* "HH:MM" (00:00 to 23:59, or 24:00 when allow_24) to minutes after midnight.
   Returns 0 or -EINVAL. */
int prices_parse_hhmm(const char *s, int allow_24, uint16_t *minutes);

/* ---- the config section (for config.c) ---- */

struct config_yaml_loader;
struct config_yaml_field;
struct yaml_node_s;

/* Parses prices: into the snapshot (obj is the struct config); a config_yaml_fn.
   Runs after providers: (a provider name that is no glob must exist: a warning). */
void prices_config_section(struct config_yaml_loader *ld, struct yaml_node_s *v, void *obj,
                           const struct config_yaml_field *f);
void prices_config_free(struct cfg_price *p, size_t n);

#endif
