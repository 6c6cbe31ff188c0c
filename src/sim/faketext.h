/*
 * faketext — the deterministic text a fake answer is made of, chunk by chunk,
 * and where a given prefix of it stops.
 *
 * fakegen answers with text that depends only on its directives: chunk i is
 * "thinkI " while reasoning, "tokJ " after (J counted from the first answer
 * chunk), or, with big=, a run of lorem ipsum that continues across chunks
 * (chunk i starts at byte big / chunks * i; the last one takes the rest).
 * The answer text is the concatenation of the answer chunks (the reasoning
 * ones left out). Tests compute the same text (tests/integration/lib.mjs
 * expectedContent) and compare it byte for byte.
 *
 * faketext_resume finds where the answer text goes on after a prefix of it,
 * so that a request continuing a cut answer (its last message the answer so
 * far) gets only the rest, as a real model that continues its own text would
 * give. Pure functions; no allocation but the caller's buffer.
 */
#ifndef UNBUSY_FAKETEXT_H
#define UNBUSY_FAKETEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"

struct faketext {
    uint64_t big;       /* total bytes of lorem ipsum; 0: "thinkN " / "tokN " chunks */
    uint32_t chunks;    /* chunks in all, reasoning ones included; at least 1 with big */
    uint32_t reasoning; /* the first `reasoning` chunks are reasoning, not answer */
};

/*
 * Appends chunk i's text to b from byte `from` of it on (0: the whole chunk;
 * at or past its length: nothing). The text needs no JSON escaping. Returns
 * 0, or buf's error.
 */
int faketext_put(const struct faketext *t, struct buf *b, uint32_t i, size_t from);

/*
 * When prefix[0..len) is a prefix of the answer text, returns true with
 * *chunk the first answer chunk not wholly in it and *from the bytes of that
 * chunk it already holds (*chunk == t->chunks: the prefix is the whole
 * answer). Otherwise (a byte differs, or the prefix is longer than the
 * answer) returns false. Reads at most len bytes of prefix.
 */
bool faketext_resume(const struct faketext *t, const char *prefix, size_t len, uint32_t *chunk,
                     size_t *from);

#endif
