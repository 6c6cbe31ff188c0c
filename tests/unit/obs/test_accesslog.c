#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "obs/accesslog.h"

static char path[64];

static int setup(void **state)
{
    snprintf(path, sizeof path, "/tmp/test_accesslog_%d.log", (int)getpid());
    unlink(path);
    return accesslog_open(path);
}

static int teardown(void **state)
{
    accesslog_thread_done();
    unlink(path);
    return 0;
}

static size_t file_size(void)
{
    struct stat st;
    return stat(path, &st) == 0 ? (size_t)st.st_size : 0;
}

static void write_one(const char *target)
{
    struct accesslog_entry e;
    accesslog_entry_init(&e);
    e.status = 200;
    accesslog_write(&e, "rid", NULL, "GET", 3, target, strlen(target), 1, 10);
}

/* Lines wait in the thread's batch and leave together, whole, on flush. */
static void test_batched_until_flush(void **state)
{
    write_one("/a");
    write_one("/b");
    write_one("/c");
    assert_int_equal(file_size(), 0); /* no write per request */
    accesslog_flush();
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char line[512];
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        assert_non_null(strstr(line, "\"request_id\":\"rid\""));
        assert_int_equal(line[strlen(line) - 1], '\n');
        n++;
    }
    fclose(f);
    assert_int_equal(n, 3);
    accesslog_flush(); /* nothing left: nothing written twice */
    assert_int_equal(file_size(), 3 * strlen(line));
}

/* A batch that reaches its size goes out on its own, as whole lines; a line longer than
   any batch is dropped and counted, never written in part. */
static void test_bounded_whole_lines(void **state)
{
    char target[200];
    memset(target, 'x', sizeof target - 1);
    target[0] = '/';
    target[sizeof target - 1] = '\0';
    for (int i = 0; i < 1000; i++)
        write_one(target);
    size_t written = file_size();
    assert_true(written > 0); /* the batch did not wait for a flush */
    FILE *f = fopen(path, "r");
    int lines_out = 0, ch;
    while ((ch = fgetc(f)) != EOF)
        lines_out += ch == '\n';
    fseek(f, (long)written - 1, SEEK_SET);
    assert_int_equal(fgetc(f), '\n'); /* ends on a line's end */
    fclose(f);
    assert_true(lines_out < 1000);     /* nor was it a write per line: the last ones wait */
    size_t huge_len = 300 * 1024;
    char *huge = malloc(huge_len + 1);
    memset(huge, 'Z', huge_len);
    huge[huge_len] = '\0';
    unsigned long long dropped = accesslog_dropped();
    write_one(huge);
    free(huge);
    assert_int_equal(accesslog_dropped(), dropped + 1);
    accesslog_flush();
    f = fopen(path, "r");
    char *line = malloc(4096);
    int n = 0;
    while (fgets(line, 4096, f)) {
        assert_int_equal(line[strlen(line) - 1], '\n');
        assert_true(strlen(line) < 1000); /* none of the outsized line */
        n++;
    }
    free(line);
    fclose(f);
    assert_int_equal(n, 1000);
}

/* Every field a JSON string, escaped; the longest request head's path, each byte escaped to
   six, still fits one line. */
static void test_escaped_and_longest(void **state)
{
    write_one("/q\"uo\\te\n\t\x01");
    size_t n = 64 * 1024;
    char *target = malloc(n + 1);
    memset(target, 0x1f, n);
    target[n] = '\0';
    unsigned long long dropped = accesslog_dropped();
    write_one(target);
    free(target);
    assert_int_equal(accesslog_dropped(), dropped);
    accesslog_flush();
    FILE *f = fopen(path, "r");
    size_t cap = 8 * n;
    char *line = malloc(cap);
    assert_non_null(fgets(line, (int)cap, f));
    assert_non_null(strstr(line, "\"path\":\"/q\\\"uo\\\\te\\n\\t\\u0001\","));
    assert_non_null(fgets(line, (int)cap, f));
    char *p = strstr(line, "\"path\":\"");
    assert_non_null(p);
    p += 8;
    for (size_t i = 0; i < n; i++)
        assert_memory_equal(p + 6 * i, "\\u001f", 6);
    assert_memory_equal(p + 6 * n, "\",", 2);
    assert_null(fgets(line, (int)cap, f));
    free(line);
    fclose(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_batched_until_flush, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bounded_whole_lines, setup, teardown),
        cmocka_unit_test_setup_teardown(test_escaped_and_longest, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
