/*
 * SigV4 against AWS's published signing test suite (aws-sig-v4-test-suite, the
 * credentials AKIDEXAMPLE / wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY, region
 * us-east-1, service "service", 2015-08-30T12:36:00Z): each vector's canonical
 * request, string to sign and Authorization header. In post-x-www-form-urlencoded
 * the suite's .creq lists content-length while its .sts and .authz were made
 * without it; the canonical request here is the one its string to sign hashes.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "provider/sigv4.h"

#define SECRET "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"

struct vector {
    const char *name, *method, *path, *query;
    const char *headers[4];
    const char *body, *creq, *sts, *authz;
};

static const struct vector vectors[] = {
    {
        .name = "get-vanilla",
        .method = "GET",
        .path = "/",
        .query = "",
        .headers = {"Host:example.amazonaws.com", "X-Amz-Date:20150830T123600Z"},
        .body = "",
        .creq = "GET\n"
                "/\n"
                "\n"
                "host:example.amazonaws.com\n"
                "x-amz-date:20150830T123600Z\n"
                "\n"
                "host;x-amz-date\n"
                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        .sts = "AWS4-HMAC-SHA256\n"
               "20150830T123600Z\n"
               "20150830/us-east-1/service/aws4_request\n"
               "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63",
        .authz = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
                 "SignedHeaders=host;x-amz-date, "
                 "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
    },
    {
        .name = "get-vanilla-query-order-key-case",
        .method = "GET",
        .path = "/",
        .query = "Param2=value2&Param1=value1",
        .headers = {"Host:example.amazonaws.com", "X-Amz-Date:20150830T123600Z"},
        .body = "",
        .creq = "GET\n"
                "/\n"
                "Param1=value1&Param2=value2\n"
                "host:example.amazonaws.com\n"
                "x-amz-date:20150830T123600Z\n"
                "\n"
                "host;x-amz-date\n"
                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        .sts = "AWS4-HMAC-SHA256\n"
               "20150830T123600Z\n"
               "20150830/us-east-1/service/aws4_request\n"
               "816cd5b414d056048ba4f7c5386d6e0533120fb1fcfa93762cf0fc39e2cf19e0",
        .authz = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
                 "SignedHeaders=host;x-amz-date, "
                 "Signature=b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
    },
    {
        .name = "get-vanilla-query-unreserved",
        .method = "GET",
        .path = "/",
        .query = "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz=-._~"
                 "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
        .headers = {"Host:example.amazonaws.com", "X-Amz-Date:20150830T123600Z"},
        .body = "",
        .creq = "GET\n"
                "/\n"
                "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz=-._~"
                "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz\n"
                "host:example.amazonaws.com\n"
                "x-amz-date:20150830T123600Z\n"
                "\n"
                "host;x-amz-date\n"
                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        .sts = "AWS4-HMAC-SHA256\n"
               "20150830T123600Z\n"
               "20150830/us-east-1/service/aws4_request\n"
               "c30d4703d9f799439be92736156d47ccfb2d879ddf56f5befa6d1d6aab979177",
        .authz = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
                 "SignedHeaders=host;x-amz-date, "
                 "Signature=9c3e54bfcdf0b19771a7f523ee5669cdf59bc7cc0884027167c21bb143a40197",
    },
    {
        .name = "get-vanilla-utf8-query",
        .method = "GET",
        .path = "/",
        .query = "\xe1"
                 "\x88"
                 "\xb4"
                 "=bar",
        .headers = {"Host:example.amazonaws.com", "X-Amz-Date:20150830T123600Z"},
        .body = "",
        .creq = "GET\n"
                "/\n"
                "%E1%88%B4=bar\n"
                "host:example.amazonaws.com\n"
                "x-amz-date:20150830T123600Z\n"
                "\n"
                "host;x-amz-date\n"
                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        .sts = "AWS4-HMAC-SHA256\n"
               "20150830T123600Z\n"
               "20150830/us-east-1/service/aws4_request\n"
               "eb30c5bed55734080471a834cc727ae56beb50e5f39d1bff6d0d38cb192a7073",
        .authz = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
                 "SignedHeaders=host;x-amz-date, "
                 "Signature=2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04",
    },
    {
        .name = "post-vanilla",
        .method = "POST",
        .path = "/",
        .query = "",
        .headers = {"Host:example.amazonaws.com", "X-Amz-Date:20150830T123600Z"},
        .body = "",
        .creq = "POST\n"
                "/\n"
                "\n"
                "host:example.amazonaws.com\n"
                "x-amz-date:20150830T123600Z\n"
                "\n"
                "host;x-amz-date\n"
                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        .sts = "AWS4-HMAC-SHA256\n"
               "20150830T123600Z\n"
               "20150830/us-east-1/service/aws4_request\n"
               "553f88c9e4d10fc9e109e2aeb65f030801b70c2f6468faca261d401ae622fc87",
        .authz = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
                 "SignedHeaders=host;x-amz-date, "
                 "Signature=5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
    },
    {
        .name = "post-vanilla-query",
        .method = "POST",
        .path = "/",
        .query = "Param1=value1",
        .headers = {"Host:example.amazonaws.com", "X-Amz-Date:20150830T123600Z"},
        .body = "",
        .creq = "POST\n"
                "/\n"
                "Param1=value1\n"
                "host:example.amazonaws.com\n"
                "x-amz-date:20150830T123600Z\n"
                "\n"
                "host;x-amz-date\n"
                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        .sts = "AWS4-HMAC-SHA256\n"
               "20150830T123600Z\n"
               "20150830/us-east-1/service/aws4_request\n"
               "9d659678c1756bb3113e2ce898845a0a79dbbc57b740555917687f1b3340fbbd",
        .authz = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
                 "SignedHeaders=host;x-amz-date, "
                 "Signature=28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11",
    },
    {
        .name = "post-x-www-form-urlencoded",
        .method = "POST",
        .path = "/",
        .query = "",
        .headers = {"Content-Type:application/x-www-form-urlencoded", "Host:example.amazonaws.com",
                    "X-Amz-Date:20150830T123600Z"},
        .body = "Param1=value1",
        .creq = "POST\n"
                "/\n"
                "\n"
                "content-type:application/x-www-form-urlencoded\n"
                "host:example.amazonaws.com\n"
                "x-amz-date:20150830T123600Z\n"
                "\n"
                "content-type;host;x-amz-date\n"
                "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e",
        .sts = "AWS4-HMAC-SHA256\n"
               "20150830T123600Z\n"
               "20150830/us-east-1/service/aws4_request\n"
               "42a5e5bb34198acb3e84da4f085bb7927f2bc277ca766e6d19c73c2154021281",
        .authz = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
                 "SignedHeaders=content-type;host;x-amz-date, "
                 "Signature=ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a",
    },
    {
        .name = "get-header-value-trim",
        .method = "GET",
        .path = "/",
        .query = "",
        .headers = {"Host:example.amazonaws.com", "My-Header1: value1",
                    "My-Header2: \x22"
                    "a   b   c\x22"
                    "",
                    "X-Amz-Date:20150830T123600Z"},
        .body = "",
        .creq = "GET\n"
                "/\n"
                "\n"
                "host:example.amazonaws.com\n"
                "my-header1:value1\n"
                "my-header2:\"a b c\"\n"
                "x-amz-date:20150830T123600Z\n"
                "\n"
                "host;my-header1;my-header2;x-amz-date\n"
                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        .sts = "AWS4-HMAC-SHA256\n"
               "20150830T123600Z\n"
               "20150830/us-east-1/service/aws4_request\n"
               "a726db9b0df21c14f559d0a978e563112acb1b9e05476f0a6a1c7d68f28605c7",
        .authz = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
                 "SignedHeaders=host;my-header1;my-header2;x-amz-date, "
                 "Signature=acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736",
    },
    {
        .name = "get-slash-dot-slash",
        .method = "GET",
        .path = "/./",
        .query = "",
        .headers = {"Host:example.amazonaws.com", "X-Amz-Date:20150830T123600Z"},
        .body = "",
        .creq = "GET\n"
                "/\n"
                "\n"
                "host:example.amazonaws.com\n"
                "x-amz-date:20150830T123600Z\n"
                "\n"
                "host;x-amz-date\n"
                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        .sts = "AWS4-HMAC-SHA256\n"
               "20150830T123600Z\n"
               "20150830/us-east-1/service/aws4_request\n"
               "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63",
        .authz = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
                 "SignedHeaders=host;x-amz-date, "
                 "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
    },
    {
        .name = "get-relative-relative",
        .method = "GET",
        .path = "/example1/example2/../..",
        .query = "",
        .headers = {"Host:example.amazonaws.com", "X-Amz-Date:20150830T123600Z"},
        .body = "",
        .creq = "GET\n"
                "/\n"
                "\n"
                "host:example.amazonaws.com\n"
                "x-amz-date:20150830T123600Z\n"
                "\n"
                "host;x-amz-date\n"
                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        .sts = "AWS4-HMAC-SHA256\n"
               "20150830T123600Z\n"
               "20150830/us-east-1/service/aws4_request\n"
               "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63",
        .authz = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
                 "SignedHeaders=host;x-amz-date, "
                 "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
    },
    {
        .name = "get-slashes",
        .method = "GET",
        .path = "//example//",
        .query = "",
        .headers = {"Host:example.amazonaws.com", "X-Amz-Date:20150830T123600Z"},
        .body = "",
        .creq = "GET\n"
                "/example/\n"
                "\n"
                "host:example.amazonaws.com\n"
                "x-amz-date:20150830T123600Z\n"
                "\n"
                "host;x-amz-date\n"
                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        .sts = "AWS4-HMAC-SHA256\n"
               "20150830T123600Z\n"
               "20150830/us-east-1/service/aws4_request\n"
               "cb96b4ac96d501f7c5c15bc6d67b3035061cfced4af6585ad927f7e6c985c015",
        .authz = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
                 "SignedHeaders=host;x-amz-date, "
                 "Signature=9a624bd73a37c9a373b5312afbebe7a714a789de108f0bdfe846570885f57e84",
    },
    {
        .name = "post-sts-header-before",
        .method = "POST",
        .path = "/",
        .query = "",
        .headers = {"Host:example.amazonaws.com", "X-Amz-Date:20150830T123600Z",
                    "X-Amz-Security-Token:AQoDYXdzEPT//////////"
                    "wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeoIYR"
                    "qTflfKD8YUuwthAx7mSEI/qkPpKPi/"
                    "kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlR"
                    "d8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+"
                    "scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA=="},
        .body = "",
        .creq = "POST\n"
                "/\n"
                "\n"
                "host:example.amazonaws.com\n"
                "x-amz-date:20150830T123600Z\n"
                "x-amz-security-token:AQoDYXdzEPT//////////"
                "wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTfl"
                "fKD8YUuwthAx7mSEI/qkPpKPi/"
                "kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx"
                "6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+"
                "scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA==\n"
                "\n"
                "host;x-amz-date;x-amz-security-token\n"
                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        .sts = "AWS4-HMAC-SHA256\n"
               "20150830T123600Z\n"
               "20150830/us-east-1/service/aws4_request\n"
               "c237e1b440d4c63c32ca95b5b99481081cb7b13c7e40434868e71567c1a882f6",
        .authz = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
                 "SignedHeaders=host;x-amz-date;x-amz-security-token, "
                 "Signature=85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead",
    },
};

/* The vector's headers split at ':' into hs; the input pointing at them. */
static void input_of(const struct vector *v, struct sigv4_header *hs, char *hash,
                     struct sigv4_input *in)
{
    memset(in, 0, sizeof *in);
    size_t n = 0;
    for (; n < 4 && v->headers[n]; n++) {
        const char *colon = strchr(v->headers[n], ':');
        assert_non_null(colon);
        hs[n] = (struct sigv4_header){v->headers[n], (size_t)(colon - v->headers[n]), colon + 1,
                                      strlen(colon + 1)};
    }
    sigv4_sha256_hex(v->body, strlen(v->body), hash);
    in->method = v->method;
    in->path = v->path;
    in->path_len = strlen(v->path);
    in->query = v->query;
    in->query_len = strlen(v->query);
    in->headers = hs;
    in->nheaders = n;
    in->payload_hash = hash;
    in->amz_date = "20150830T123600Z";
    in->region = "us-east-1";
    in->service = "service";
}

static void test_suite_vectors(void **state)
{
    for (size_t i = 0; i < sizeof vectors / sizeof vectors[0]; i++) {
        const struct vector *v = &vectors[i];
        struct sigv4_header hs[4];
        char hash[65];
        struct sigv4_input in;
        input_of(v, hs, hash, &in);
        struct buf creq, sts, authz;
        buf_init(&creq, 0);
        buf_init(&sts, 0);
        buf_init(&authz, 0);
        assert_int_equal(sigv4_canonical_request(&in, &creq, NULL), 0);
        assert_int_equal(buf_append(&creq, "", 1), 0);
        if (strcmp(creq.data, v->creq) != 0)
            fail_msg("%s: canonical request\n%s\nwanted\n%s", v->name, creq.data, v->creq);
        assert_int_equal(sigv4_string_to_sign(&in, creq.data, creq.len - 1, &sts), 0);
        assert_int_equal(buf_append(&sts, "", 1), 0);
        if (strcmp(sts.data, v->sts) != 0)
            fail_msg("%s: string to sign\n%s\nwanted\n%s", v->name, sts.data, v->sts);
        assert_int_equal(sigv4_authorization(&in, "AKIDEXAMPLE", SECRET, &authz), 0);
        assert_int_equal(buf_append(&authz, "", 1), 0);
        if (strcmp(authz.data, v->authz) != 0)
            fail_msg("%s: authorization\n%s\nwanted\n%s", v->name, authz.data, v->authz);
        buf_free(&creq);
        buf_free(&sts);
        buf_free(&authz);
    }
}

/* The key derivation's intermediate result, from AWS's documented example (secret of the
   suite, 20150830, us-east-1, iam). */
static void test_signing_key(void **state)
{
    unsigned char key[32];
    sigv4_signing_key(SECRET, "20150830", "us-east-1", "iam", key);
    char hex[65];
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", key[i]);
    assert_string_equal(hex, "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9");
}

/* The derived key is computed once per secret, day, region and service. */
static void test_key_cached(void **state)
{
    const struct vector *v = &vectors[0];
    struct sigv4_header hs[4];
    char hash[65];
    struct sigv4_input in;
    input_of(v, hs, hash, &in);
    struct buf a;
    buf_init(&a, 0);
    uint64_t before = sigv4_key_derivations();
    for (int i = 0; i < 10; i++) {
        buf_reset(&a);
        assert_int_equal(sigv4_authorization(&in, "AKIDEXAMPLE", SECRET, &a), 0);
    }
    assert_true(sigv4_key_derivations() - before <= 1);
    before = sigv4_key_derivations();
    in.amz_date = "20150831T000000Z"; /* the next day: a new key */
    assert_int_equal(sigv4_authorization(&in, "AKIDEXAMPLE", SECRET, &a), 0);
    assert_int_equal(sigv4_key_derivations() - before, 1);
    before = sigv4_key_derivations();
    assert_int_equal(sigv4_authorization(&in, "AKIDEXAMPLE", "another-secret", &a), 0);
    assert_int_equal(sigv4_key_derivations() - before, 1);
    buf_free(&a);
}

/* A path segment already percent-encoded is encoded again (every service but S3): a Bedrock
   model id with ':' goes as %3A on the wire and %253A in the canonical request. */
static void test_double_encoding(void **state)
{
    struct sigv4_header hs[1] = {{"host", 4, "bedrock-runtime.us-east-1.amazonaws.com", 39}};
    const char *path = "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse";
    struct sigv4_input in = {.method = "POST",
                             .path = path,
                             .path_len = strlen(path),
                             .headers = hs,
                             .nheaders = 1,
                             .payload_hash = "x",
                             .amz_date = "20150830T123600Z",
                             .region = "us-east-1",
                             .service = "bedrock"};
    struct buf creq;
    buf_init(&creq, 0);
    assert_int_equal(sigv4_canonical_request(&in, &creq, NULL), 0);
    assert_int_equal(buf_append(&creq, "", 1), 0);
    assert_non_null(
        strstr(creq.data, "\n/model/anthropic.claude-3-haiku-20240307-v1%253A0/converse\n"));
    buf_free(&creq);
}

static void test_amz_date(void **state)
{
    char d[17];
    sigv4_amz_date(1440938160, d);
    assert_string_equal(d, "20150830T123600Z");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_suite_vectors), cmocka_unit_test(test_signing_key),
        cmocka_unit_test(test_key_cached),    cmocka_unit_test(test_double_encoding),
        cmocka_unit_test(test_amz_date),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
