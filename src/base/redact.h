/*
 * redact — takes configured secrets out of text that came from elsewhere
 * (a provider's error message or body) before it is logged or passed on.
 *
 * A redact_set holds the secrets to look for: borrowed pointers into the
 * configuration snapshot that owns the strings (config builds one per
 * snapshot; see config.h). redact_text copies text into a caller's bounded
 * buffer with every secret replaced by REDACT_MARK:
 *   - each whole secret, wherever it is (also after "Bearer ");
 *   - a secret cut off at the end of the text (a message cut at N bytes):
 *     a suffix of the text that is a prefix of a secret of at least
 *     REDACT_PARTIAL_MIN_SECRET characters, when that suffix has at least
 *     REDACT_PARTIAL_MIN characters;
 *   - as a defence for keys the configuration does not know: "sk-" followed
 *     by a key-shaped run, and a long token after "Bearer ".
 * No I/O and no allocation in redact_text; the set allocates once when built.
 * Secrets learnt at run time (redact_learn) are looked for too.
 */
#ifndef UNBUSY_REDACT_H
#define UNBUSY_REDACT_H

#include <stddef.h>

#define REDACT_MARK "[redacted]"
#define REDACT_MIN_SECRET 6         /* shorter values are not looked for: they match ordinary words */
#define REDACT_PARTIAL_MIN_SECRET 8 /* secrets this long are also looked for cut off at the end */
#define REDACT_PARTIAL_MIN 4        /* the shortest cut-off prefix redacted */
#define REDACT_MAX_SECRETS 16384

struct redact_secret {
    const char *p;
    size_t len;
};

struct redact_set {
    struct redact_secret *v;
    size_t n, cap;
};

void redact_set_init(struct redact_set *s);
/* Adds value (borrowed: it must outlive the set); a value of the form "<scheme> <token>"
   ("Bearer sk-...") adds the token too. Values shorter than REDACT_MIN_SECRET and NULL
   are skipped. Returns 0, or -1 when out of memory or past REDACT_MAX_SECRETS. */
int redact_set_add(struct redact_set *s, const char *value);
void redact_set_free(struct redact_set *s);

/*
 * Secrets learnt after the configuration was loaded (credentials fetched from
 * an endpoint at run time): copied into a process-wide ring that keeps the
 * last REDACT_LEARNT_MAX, and looked for by every redact_text beside its set.
 * Thread-safe. Returns 0, or -1 when value is too short, too long or out of memory.
 */
#define REDACT_LEARNT_MAX 16
#define REDACT_LEARNT_MAX_LEN 4096
int redact_learn(const char *value);

/*
 * Copies len bytes at in to out (cap bytes, NUL-terminated, cut at cap - 1 when the
 * redacted text does not fit) with the secrets of s (may be NULL: only the key shapes)
 * replaced. Returns the length written. A mark replaces at least REDACT_MIN_SECRET
 * bytes, except once at the very end, so redact_bound(len) bytes always hold the whole
 * result.
 */
size_t redact_text(const struct redact_set *s, const char *in, size_t len, char *out, size_t cap);
static inline size_t redact_bound(size_t len)
{
    return 2 * len + 32;
}

#endif
