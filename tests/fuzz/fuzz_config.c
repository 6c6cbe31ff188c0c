/*
 * Fuzz target for the config loader: the input is the text of a YAML config
 * file. Whatever it holds, the load returns 0 with a snapshot or -1 with at
 * least one problem, every problem is a line of text, and the snapshot frees
 * without leaks. Time and memory must stay bounded by the text's size, also
 * when YAML aliases make a short text stand for a huge document.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) abort();                                                                      \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* The loader takes text and a length; a NUL inside must not cut it short. */
    struct config *c = NULL;
    struct config_errors errs;
    config_errors_init(&errs);
    int rc = config_load_text("fuzz.yaml", (const char *)data, size, &c, &errs);
    CHECK(rc == 0 || rc == -1);
    if (rc == 0) {
        CHECK(c != NULL && errs.count == 0);
        CHECK(atomic_load(&c->refs) == 1);
        /* every model is found by its name through the index */
        for (size_t i = 0; i < c->nmodels; i++)
            CHECK(config_find_model(c, c->models[i].name) == &c->models[i]);
        config_unref(c);
    } else {
        CHECK(c == NULL && errs.count > 0);
        CHECK(errs.text.len > 0 && errs.text.data[errs.text.len - 1] == '\n');
        CHECK(memchr(errs.text.data, '\0', errs.text.len) == NULL);
    }
    config_errors_free(&errs);
    return 0;
}
