/* Unit tests for the new process's side of upgrade.c: the count in UNBUSY_LISTEN_FDS,
   taking listeners handed over at fds 3.. (and refusing what is not one), and whether
   an inherited socket is bound where the config listens. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "upgrade.h"

static void test_parse_count(void **state)
{
    (void)state;
    assert_int_equal(upgrade_parse_count("1", 64), 1);
    assert_int_equal(upgrade_parse_count("64", 64), 64);
    static const char *const bad[] = {
        "", "0", "65", "-1", "+1", " 1", "1 ", "1x", "0x10", "99999999999999999999", "4294967297"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (upgrade_parse_count(bad[i], 64) != -1) fail_msg("\"%s\" was taken as a count", bad[i]);
    assert_int_equal(upgrade_parse_count(NULL, 64), -1);
}

/* A listening socket on 127.0.0.1 (any port), moved to fd `at`; its port in *port. */
static void listener_at(int at, uint16_t *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(fd, 8), 0);
    socklen_t len = sizeof sa;
    getsockname(fd, (struct sockaddr *)&sa, &len);
    *port = ntohs(sa.sin_port);
    if (fd != at) {
        assert_int_equal(dup2(fd, at), at);
        close(fd);
    }
}

static void test_inherit(void **state)
{
    (void)state;
    char err[160];
    unsetenv(UPGRADE_ENV_FDS);
    assert_int_equal(upgrade_inherit(err, sizeof err), 0); /* nothing handed over */
    /* the pipe first, kept out of the way of fds 3..5 */
    int raw[2];
    assert_int_equal(pipe(raw), 0);
    int pfd[2] = {dup2(raw[0], 20), dup2(raw[1], 21)};
    close(raw[0]);
    close(raw[1]);
    uint16_t p3, p4;
    listener_at(3, &p3);
    listener_at(4, &p4);
    assert_int_equal(dup2(pfd[1], 5), 5);
    setenv(UPGRADE_ENV_FDS, "2", 1);
    setenv(UPGRADE_ENV_READY, "5", 1);
    assert_int_equal(upgrade_inherit(err, sizeof err), 2);
    assert_null(getenv(UPGRADE_ENV_FDS)); /* not passed on to a later child */
    assert_null(getenv(UPGRADE_ENV_READY));
    assert_int_equal(upgrade_inherited_fd(0), 3);
    assert_int_equal(upgrade_inherited_fd(1), 4);
    assert_int_equal(upgrade_inherited_fd(2), -1);
    assert_true(fcntl(3, F_GETFD) & FD_CLOEXEC);
    /* where the config listens */
    uint16_t got = 0;
    upgrade_fd_port(3, &got);
    assert_int_equal(got, p3);
    assert_true(upgrade_fd_matches(3, "127.0.0.1", 0));
    assert_true(upgrade_fd_matches(3, "127.0.0.1", p3));
    assert_false(upgrade_fd_matches(3, "127.0.0.1", (uint16_t)(p3 + 1)));
    assert_false(upgrade_fd_matches(3, "127.0.0.2", p3));
    assert_false(upgrade_fd_matches(3, "0.0.0.0", p3));
    /* the ready byte reaches the old side, once */
    assert_true(upgrade_tell_ready());
    assert_false(upgrade_tell_ready());
    char byte = 0;
    assert_int_equal(read(pfd[0], &byte, 1), 1);
    close(pfd[0]);
    close(pfd[1]);
    upgrade_inherited_close_from(0);
    assert_int_equal(fcntl(3, F_GETFD), -1);
    (void)p4;
}

static void test_refuses_what_is_not_a_listener(void **state)
{
    (void)state;
    char err[160];
    int pfd[2];
    assert_int_equal(pipe(pfd), 0);
    assert_int_equal(dup2(pfd[0], 3), 3);
    setenv(UPGRADE_ENV_FDS, "1", 1);
    assert_int_equal(upgrade_inherit(err, sizeof err), -1);
    assert_non_null(strstr(err, "fd 3 is not a listening TCP socket"));
    setenv(UPGRADE_ENV_FDS, "many", 1);
    assert_int_equal(upgrade_inherit(err, sizeof err), -1);
    close(3);
    close(pfd[0]);
    close(pfd[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_count),
        cmocka_unit_test(test_inherit),
        cmocka_unit_test(test_refuses_what_is_not_a_listener),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
