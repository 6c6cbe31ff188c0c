/*
 * prom — a pure, resumable reader of the Prometheus text exposition format
 * (version 0.0.4, which every inference engine's /metrics speaks) that keeps
 * only the series it was asked for.
 *
 * The engine scraper (route/engine_scrape.c) feeds it a /metrics body in
 * pieces of any size and reads, per wanted metric name, the sum of the
 * matching samples' values and how many there were. A sample matches when
 * its name is one of the query's names and, if the query names a label
 * (e.g. vLLM's and SGLang's `model_name`), the sample either lacks that label
 * or carries one of the query's values for it; so one engine serving several
 * models is read for the deployments' models only.
 *
 * No I/O, no allocation: the parser owns one line buffer of PROM_MAX_LINE
 * bytes. A longer line (a histogram with many labels) is skipped whole, not
 * an error; a line that is not a well-formed sample or comment counts in
 * bad_lines and is skipped; non-finite values (NaN, ±Inf) are skipped. So a
 * hostile body costs at most its length in time and nothing in memory.
 * Lines end in LF (CRLF too). What the engines write that the format allows
 * and this reader does not need (timestamps, HELP and TYPE comments, escaped
 * label values) is read and ignored, escapes unescaped before comparing.
 */
#ifndef UNBUSY_PROM_H
#define UNBUSY_PROM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PROM_MAX_LINE 4096
#define PROM_MAX_NAMES 8
#define PROM_MAX_LABEL_VALUES 16

/* What to extract. Strings are borrowed and must outlive the parser. */
struct prom_query {
    const char *names[PROM_MAX_NAMES]; /* exact metric names; NULL entries ignored */
    size_t nnames;
    const char *label;                         /* the filter label; NULL: no filter */
    const char *values[PROM_MAX_LABEL_VALUES]; /* accepted values of label */
    size_t nvalues;
};

struct prom_parser {
    const struct prom_query *q;
    /* results, by position in q->names */
    double sum[PROM_MAX_NAMES];
    uint32_t count[PROM_MAX_NAMES];
    uint32_t lines;      /* complete lines seen */
    uint32_t bad_lines;  /* malformed, skipped */
    uint32_t long_lines; /* longer than PROM_MAX_LINE, skipped */
    /* private */
    bool skipping; /* inside a line that is too long */
    size_t len;
    char line[PROM_MAX_LINE];
};

void prom_init(struct prom_parser *p, const struct prom_query *q);
/* Reads len bytes; every complete line is judged now. Never fails. */
void prom_feed(struct prom_parser *p, const char *data, size_t len);
/* The body ended: a last line without its newline is judged too. */
void prom_finish(struct prom_parser *p);

/* Judges one line (no newline) against q: 1 and the index and value of a matching sample;
   0 when it is a comment, a blank line or another series; -1 when it is malformed. Pure;
   for the parser and its tests. */
int prom_line(const struct prom_query *q, const char *line, size_t len, size_t *index,
              double *value);

#endif
