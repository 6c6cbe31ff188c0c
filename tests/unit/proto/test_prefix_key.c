#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "proto/prefix_key.h"

static uint64_t key(const char *body)
{
    return prefix_key(body, strlen(body), 4096);
}

/* Every turn of one conversation has the key of its first. */
static void test_turns_share_a_key(void **state)
{
    const char *t1 =
        "{\"model\":\"m\",\"messages\":[{\"role\":\"system\",\"content\":\"Be brief.\"},"
        "{\"role\":\"user\",\"content\":\"What is a KV cache?\"}]}";
    const char *t2 = "{\"messages\": [ {\"role\":\"system\",\"content\":\"Be brief.\"} ,"
                     "{\"role\":\"user\",\"content\":\"What is a KV cache?\"},"
                     "{\"role\":\"assistant\",\"content\":\"A store of keys.\"},"
                     "{\"role\":\"user\",\"content\":\"And paged attention?\"}], \"model\":\"m\"}";
    assert_int_not_equal(key(t1), 0);
    assert_int_equal(key(t1), key(t2));
    /* another first question: another key, though the system prompt is the same */
    const char *other = "{\"messages\":[{\"role\":\"system\",\"content\":\"Be brief.\"},"
                        "{\"role\":\"user\",\"content\":\"What is a GPU?\"}]}";
    assert_int_not_equal(key(t1), key(other));
    /* the role member anywhere in the message; developer counts as system */
    const char *dev = "{\"messages\":[{\"content\":\"Be brief.\",\"role\":\"developer\"},"
                      "{\"role\":\"user\",\"content\":\"x\"}]}";
    const char *dev2 = "{\"messages\":[{\"content\":\"Be brief.\",\"role\":\"developer\"},"
                       "{\"role\":\"user\",\"content\":\"y\"}]}";
    assert_int_not_equal(key(dev), key(dev2));
}

static void test_bound_and_prompt(void **state)
{
    /* past max_bytes only the start counts */
    const char *a = "{\"messages\":[{\"role\":\"system\",\"content\":\"0123456789abcdef\"},"
                    "{\"role\":\"user\",\"content\":\"one\"}]}";
    const char *b = "{\"messages\":[{\"role\":\"system\",\"content\":\"0123456789abcdef\"},"
                    "{\"role\":\"user\",\"content\":\"two\"}]}";
    assert_int_equal(prefix_key(a, strlen(a), 20), prefix_key(b, strlen(b), 20));
    assert_int_not_equal(prefix_key(a, strlen(a), 4096), prefix_key(b, strlen(b), 4096));
    /* a completions prompt */
    const char *p1 = "{\"model\":\"m\",\"prompt\":\"Once upon a time\"}";
    assert_int_not_equal(key(p1), 0);
    /* a lone question: no key */
    assert_int_equal(key("{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}"), 0);
    assert_int_not_equal(key("{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"},{}]}"), 0);
    /* nothing to hash */
    assert_int_equal(key("{\"model\":\"m\",\"input\":\"x\"}"), 0);
    assert_int_equal(key("{\"messages\":[]}"), 0);
    assert_int_equal(key("[1,2]"), 0);
    assert_int_equal(key(""), 0);
    assert_int_not_equal(prefix_key_bytes("session-1", 9), prefix_key_bytes("session-2", 9));
}

/* Cut anywhere, hostile bytes: no crash, and the key of a prefix of the body is stable. */
static void test_truncated_bodies(void **state)
{
    const char *t = "{\"a\":{\"b\":[1,\"}]\\\"\",{}]},\"messages\":[{\"role\":\"system\","
                    "\"content\":\"s\\\"\"},{\"role\":\"user\",\"content\":[{\"type\":\"text\","
                    "\"text\":\"hi\"}]}]}";
    size_t len = strlen(t);
    uint64_t whole = prefix_key(t, len, 4096);
    assert_int_not_equal(whole, 0);
    for (size_t cut = 0; cut < len; cut++)
        (void)prefix_key(t, cut, 4096);
    char deep[3000];
    memset(deep, '[', sizeof deep);
    memcpy(deep, "{\"x\":", 5);
    assert_int_equal(prefix_key(deep, sizeof deep, 4096), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_turns_share_a_key),
        cmocka_unit_test(test_bound_and_prompt),
        cmocka_unit_test(test_truncated_bodies),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
