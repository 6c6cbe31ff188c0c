/* Unit tests for admin: which Host headers (and listen addresses) are loopback
   names, the check that keeps web pages (DNS rebinding included) out of the
   admin API when it has no token. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "api/admin.h"

static bool loopback(const char *s)
{
    return admin_host_is_loopback(s, strlen(s));
}

static void test_loopback_names(void **state)
{
    static const char *const yes[] = {
        "localhost", "LocalHost", "localhost:8080", "127.0.0.1", "127.0.0.1:1", "127.255.255.255",
        "127.1.2.3:65535", "[::1]", "[::1]:8080", "::1",
    };
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        if (!loopback(yes[i])) fail_msg("\"%s\" should be a loopback name", yes[i]);
    }
    static const char *const no[] = {
        "", "evil.example", "localhost.evil.example", "localhost.", "127.0.0.1.evil.example",
        "evil-127.0.0.1", "128.0.0.1", "127.0.0", "127.0.0.1.1", "127.0.0.256", "127.0.0.1000",
        "127..0.1", "0x7f.0.0.1", "127.0.0.1:", "127.0.0.1:80x", "127.0.0.1:1234567",
        "localhost:8080:1", "[::1", "[::1]x", "[::1]:", "[::2]", "[::ffff:127.0.0.1]", "::",
        "0.0.0.0", "localhost@evil.example", " localhost",
    };
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++) {
        if (loopback(no[i])) fail_msg("\"%s\" should not be a loopback name", no[i]);
    }
    /* Only the given length counts. */
    assert_true(admin_host_is_loopback("localhost.evil.example", 9));
    assert_false(admin_host_is_loopback("127.0.0.1", 8));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_loopback_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
