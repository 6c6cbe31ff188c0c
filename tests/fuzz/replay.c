/*
 * Replays fuzz inputs without libFuzzer: calls LLVMFuzzerTestOneInput once per
 * file named on the command line, descending into directories. Built with a
 * fuzz target under ASan/UBSan, it turns a corpus into a regression test.
 * Exits non-zero if a path cannot be read; a crash is the sanitizer's to report.
 */
#if !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L /* opendir, stat, off_t under plain -std=c11 */
#endif
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Bounds a replayed input; corpora hold small seeds, not media files. */
#define REPLAY_MAX_INPUT (16u << 20)
/* Bounds directory nesting, so a symlink loop cannot recurse forever. */
#define REPLAY_MAX_DEPTH 32

static unsigned long replayed;

static int replay_file(const char *path, off_t size)
{
    if (size < 0 || (uint64_t)size > REPLAY_MAX_INPUT) {
        fprintf(stderr, "replay: %s: too large\n", path);
        return -1;
    }
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    size_t n = (size_t)size;
    /* exactly sized, so ASan catches a read one byte past the input */
    uint8_t *data = malloc(n ? n : 1);
    if (!data) {
        fclose(f);
        return -1;
    }
    size_t got = n ? fread(data, 1, n, f) : 0;
    fclose(f);
    if (got != n) {
        fprintf(stderr, "replay: %s: short read\n", path);
        free(data);
        return -1;
    }
    LLVMFuzzerTestOneInput(data, n);
    free(data);
    replayed++;
    return 0;
}

static int replay_path(const char *path, int depth)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    if (S_ISREG(st.st_mode)) return replay_file(path, st.st_size);
    if (!S_ISDIR(st.st_mode)) return 0;
    if (depth >= REPLAY_MAX_DEPTH) {
        fprintf(stderr, "replay: %s: nested too deep\n", path);
        return -1;
    }
    DIR *dir = opendir(path);
    if (!dir) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    int rc = 0;
    struct dirent *de;
    while ((de = readdir(dir)) != NULL) {
        if (de->d_name[0] == '.') continue; /* ".", "..", and hidden files such as .gitkeep */
        size_t len = strlen(path) + 1 + strlen(de->d_name) + 1;
        char *child = malloc(len);
        if (!child) {
            rc = -1;
            break;
        }
        snprintf(child, len, "%s/%s", path, de->d_name);
        if (replay_path(child, depth + 1) != 0) rc = -1;
        free(child);
    }
    closedir(dir);
    return rc;
}

int main(int argc, char **argv)
{
    int rc = 0;
    for (int i = 1; i < argc; i++) {
        if (argv[i][0] == '-') continue; /* libFuzzer flags (-runs=, ...) mean nothing here */
        if (replay_path(argv[i], 0) != 0) rc = 1;
    }
    printf("replayed %lu inputs\n", replayed);
    return rc;
}
