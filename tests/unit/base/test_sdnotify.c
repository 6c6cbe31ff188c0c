/* Unit tests for sdnotify (a datagram to $NOTIFY_SOCKET, a path or an abstract name)
   and procstate's readiness. */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <cmocka.h>

#include "base/procstate.h"
#include "base/sdnotify.h"

static int bind_dgram(const char *name, bool abstract)
{
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t n = strlen(name);
    memcpy(sa.sun_path + (abstract ? 1 : 0), name, n);
    socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, len), 0);
    return fd;
}

static void expect_message(int fd, const char *want)
{
    char got[1100];
    ssize_t n = recv(fd, got, sizeof got - 1, MSG_DONTWAIT);
    assert_true(n >= 0);
    got[n] = '\0';
    assert_string_equal(got, want);
}

static void test_path_socket(void **state)
{
    (void)state;
    char path[] = "/tmp/unbusy-sdnotify-XXXXXX";
    int tmp = mkstemp(path);
    assert_true(tmp >= 0);
    close(tmp);
    unlink(path);
    int fd = bind_dgram(path, false);
    unsetenv("NOTIFY_SOCKET");
    assert_int_equal(sdnotify("READY=1"), 0); /* not under a service manager */
    setenv("NOTIFY_SOCKET", path, 1);
    assert_int_equal(sdnotify("READY=1\nSTATUS=serving"), 1);
    expect_message(fd, "READY=1\nSTATUS=serving");
    assert_int_equal(sdnotifyf("MAINPID=%d\nREADY=1", 4242), 1);
    expect_message(fd, "MAINPID=4242\nREADY=1");
    close(fd);
    unlink(path);
    /* nobody listening: an error, not a hang */
    assert_true(sdnotify("STOPPING=1") < 0);
    unsetenv("NOTIFY_SOCKET");
}

static void test_abstract_and_bad(void **state)
{
    (void)state;
    char name[64];
    snprintf(name, sizeof name, "unbusy-test-%d", (int)getpid());
    int fd = bind_dgram(name, true);
    char var[80];
    snprintf(var, sizeof var, "@%s", name);
    setenv("NOTIFY_SOCKET", var, 1);
    assert_int_equal(sdnotify("STOPPING=1"), 1); /* "@name": NUL first, no NUL after */
    expect_message(fd, "STOPPING=1");
    close(fd);
    setenv("NOTIFY_SOCKET", "relative/path", 1);
    assert_int_equal(sdnotify("READY=1"), -EINVAL);
    unsetenv("NOTIFY_SOCKET");
    assert_true(sdnotify_monotonic_usec() > 0);
}

static void test_procstate(void **state)
{
    (void)state;
    assert_int_equal(procstate_get(), PROCSTATE_STARTING);
    assert_false(procstate_ready(PROCSTATE_STARTING));
    assert_true(procstate_ready(PROCSTATE_SERVING));
    assert_true(procstate_ready(PROCSTATE_UPGRADING));
    assert_false(procstate_ready(PROCSTATE_STOPPING));
    assert_false(procstate_ready(PROCSTATE_DRAINING));
    procstate_set(PROCSTATE_STOPPING);
    assert_int_equal(procstate_get(), PROCSTATE_STOPPING);
    assert_string_equal(procstate_name(procstate_get()), "stopping");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_path_socket),
        cmocka_unit_test(test_abstract_and_bad),
        cmocka_unit_test(test_procstate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
