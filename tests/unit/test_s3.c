/* test_s3.c - the S3 side without a store: --output parsing, keys and URLs, what answers
 * mean, and the requests libcurl signs.
 *
 * s3rver (the integration tests' store) does not check SigV4 signatures, so here a
 * request set up by fp_s3_setup is sent by libcurl to a loopback socket that captures
 * it, and its Authorization header is checked against a signature computed from the
 * captured request with libcrypto's HMAC-SHA256 (the verifier itself is first checked
 * against the example in AWS's S3 SigV4 documentation). */
#define _GNU_SOURCE /* strcasestr */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "s3_req.h"

#define SECRET "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"

static void conf(fp_s3_conf *c, const char *out, const char *endpoint, const char *addressing,
                 const char *token)
{
    char err[256];
    assert_int_equal(fp_s3_conf_parse(c, out, endpoint, "eu-west-1", addressing,
                                      "AKIAIOSFODNN7EXAMPLE", SECRET, token, err, sizeof(err)),
                     0);
}

static int parse_fails(const char *out, const char *endpoint, const char *addressing,
                       const char *key, const char *secret)
{
    fp_s3_conf c;
    char err[256] = "";
    int rc =
        fp_s3_conf_parse(&c, out, endpoint, NULL, addressing, key, secret, NULL, err, sizeof(err));
    if (rc == 0)
        return 0;
    assert_true(err[0] != '\0');
    assert_null(strstr(err, "sekrit")); /* no secret in any message */
    return 1;
}

static void test_parse(void **state)
{
    fp_s3_conf c;
    char key[FP_S3_KEY_MAX + 1], url[1024], path[FP_PATH_MAX + 1];
    const char *sha = "ab34567890123456789012345678901234567890123456789012345678901234";

    (void)state;
    conf(&c, "s3://my-bucket/some/prefix/", "http://127.0.0.1:9000", NULL, NULL);
    assert_string_equal(c.bucket, "my-bucket");
    assert_string_equal(c.prefix, "some/prefix");
    assert_int_equal(c.addressing, FP_S3_PATH); /* auto, with an endpoint */
    assert_string_equal(c.sigv4, "aws:amz:eu-west-1:s3");
    fp_s3_key(&c, sha, "jpg", key);
    assert_string_equal(key,
                        "some/prefix/ab/ab34567890123456789012345678901234567890123456789012345"
                        "678901234.jpg");
    assert_int_equal(fp_s3_url(&c, key, url, sizeof(url)), 0);
    assert_string_equal(url, "http://127.0.0.1:9000/my-bucket/some/prefix/ab/ab3456789012345678901"
                             "2345678901234567890123456789012345678901234.jpg");
    fp_s3_path(&c, key, path);
    assert_string_equal(path, "s3://my-bucket/some/prefix/ab/ab34567890123456789012345678901234567"
                              "890123456789012345678901234.jpg");

    conf(&c, "s3://my-bucket", NULL, NULL, NULL); /* AWS: virtual-hosted */
    assert_int_equal(c.addressing, FP_S3_VIRTUAL);
    fp_s3_key(&c, sha, "png", key);
    assert_int_equal(fp_s3_url(&c, key, url, sizeof(url)), 0);
    assert_string_equal(url, "https://my-bucket.s3.eu-west-1.amazonaws.com/ab/ab3456789012345678901"
                             "2345678901234567890123456789012345678901234.png");
    conf(&c, "s3://my-bucket/p", "https://minio.example:9443", "virtual", NULL);
    fp_s3_key(&c, sha, "gif", key);
    assert_int_equal(fp_s3_url(&c, key, url, sizeof(url)), 0);
    assert_string_equal(url, "https://my-bucket.minio.example:9443/p/ab/ab345678901234567890123456"
                             "78901234567890123456789012345678901234.gif");

    assert_true(parse_fails("s3://ab", NULL, NULL, "k", "sekrit"));          /* short */
    assert_true(parse_fails("s3://My_Bucket/x", NULL, NULL, "k", "sekrit")); /* bad chars */
    assert_true(parse_fails("s3://bucket/../x", NULL, NULL, "k", "sekrit"));
    assert_true(parse_fails("s3://bucket//x", NULL, NULL, "k", "sekrit"));
    assert_true(parse_fails("s3://bucket/a b", NULL, NULL, "k", "sekrit"));
    assert_true(parse_fails("s3://bucket/x", "ftp://h", NULL, "k", "sekrit"));
    assert_true(parse_fails("s3://bucket/x", "http://h/path", NULL, "k", "sekrit"));
    assert_true(parse_fails("s3://bucket/x", "http://u:sekrit@h", NULL, "k", "sekrit"));
    assert_true(parse_fails("s3://bucket/x", NULL, "sideways", "k", "sekrit"));
    assert_true(parse_fails("s3://b.u.cket/x", NULL, "virtual", "k", "sekrit")); /* https */
    assert_true(parse_fails("s3://bucket/x", NULL, NULL, NULL, "sekrit"));
    assert_true(parse_fails("s3://bucket/x", NULL, NULL, "k", ""));
    assert_true(parse_fails("/local/dir", NULL, NULL, "k", "sekrit"));
    assert_false(parse_fails("s3://b.u.cket/x", "http://h:1", "virtual", "k", "sekrit"));
}

static void test_judge(void **state)
{
    char code[64];
    const char *body = "<?xml version=\"1.0\"?><Error><Code>NoSuchBucket</Code><Message>x"
                       "</Message></Error>";

    (void)state;
    assert_int_equal(fp_s3_judge(FP_S3_HEAD, CURLE_OK, 200), FP_S3_DONE);
    assert_int_equal(fp_s3_judge(FP_S3_HEAD, CURLE_OK, 404), FP_S3_MISSING);
    assert_int_equal(fp_s3_judge(FP_S3_HEAD, CURLE_OK, 403), FP_S3_MISSING); /* may not list */
    assert_int_equal(fp_s3_judge(FP_S3_PUT, CURLE_OK, 200), FP_S3_DONE);
    assert_int_equal(fp_s3_judge(FP_S3_PUT, CURLE_OK, 403), FP_S3_DENIED);
    assert_int_equal(fp_s3_judge(FP_S3_PUT, CURLE_OK, 404), FP_S3_DENIED); /* NoSuchBucket */
    assert_int_equal(fp_s3_judge(FP_S3_PUT, CURLE_OK, 400), FP_S3_DENIED);
    assert_int_equal(fp_s3_judge(FP_S3_PUT, CURLE_OK, 503), FP_S3_RETRY); /* SlowDown */
    assert_int_equal(fp_s3_judge(FP_S3_PUT, CURLE_OK, 500), FP_S3_RETRY);
    assert_int_equal(fp_s3_judge(FP_S3_PUT, CURLE_OK, 429), FP_S3_RETRY);
    assert_int_equal(fp_s3_judge(FP_S3_PUT, CURLE_COULDNT_CONNECT, 0), FP_S3_RETRY);
    assert_int_equal(fp_s3_judge(FP_S3_PUT, CURLE_OPERATION_TIMEDOUT, 0), FP_S3_RETRY);
    assert_int_equal(fp_s3_judge(FP_S3_PUT, CURLE_RECV_ERROR, 0), FP_S3_RETRY);
    assert_int_equal(fp_s3_judge(FP_S3_PUT, CURLE_READ_ERROR, 0), FP_S3_LOCAL);
    assert_int_equal(fp_s3_judge(FP_S3_PUT, CURLE_PEER_FAILED_VERIFICATION, 0), FP_S3_DENIED);
    fp_s3_error_code(body, strlen(body), code, sizeof(code));
    assert_string_equal(code, "NoSuchBucket");
    fp_s3_error_code("<Code>", 6, code, sizeof(code));
    assert_string_equal(code, "");
    fp_s3_error_code("nothing here", 12, code, sizeof(code));
    assert_string_equal(code, "");
    assert_string_equal(fp_s3_content_type("jpg"), "image/jpeg");
    assert_string_equal(fp_s3_content_type("zzz"), "application/octet-stream");
}

/* SigV4, computed here ------------------------------------------------------------- */

static void hex(const unsigned char *p, size_t n, char *out)
{
    size_t i;
    for (i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", p[i]);
}

static void sha256_hex(const void *p, size_t n, char out[65])
{
    unsigned char md[32];
    unsigned int len = 0;
    EVP_Digest(p, n, md, &len, EVP_sha256(), NULL);
    hex(md, 32, out);
}

static void hmac(const void *key, size_t klen, const char *msg, unsigned char out[32])
{
    unsigned int len = 32;
    HMAC(EVP_sha256(), key, (int)klen, (const unsigned char *)msg, strlen(msg), out, &len);
}

/* The signature of a canonical request, as AWS's "Signature Version 4" pages define it. */
static void sign(const char *secret, const char *amzdate, const char *region, const char *canonical,
                 char out[65])
{
    char k0[128], date[9], scope[128], sts[512], creq_hash[65];
    unsigned char k[32];

    snprintf(date, sizeof(date), "%.8s", amzdate);
    snprintf(k0, sizeof(k0), "AWS4%s", secret);
    snprintf(scope, sizeof(scope), "%s/%s/s3/aws4_request", date, region);
    sha256_hex(canonical, strlen(canonical), creq_hash);
    snprintf(sts, sizeof(sts), "AWS4-HMAC-SHA256\n%s\n%s\n%s", amzdate, scope, creq_hash);
    hmac(k0, strlen(k0), date, k);
    hmac(k, 32, region, k);
    hmac(k, 32, "s3", k);
    hmac(k, 32, "aws4_request", k);
    hmac(k, 32, sts, k);
    hex(k, 32, out);
}

static void test_verifier_known_answer(void **state)
{
    /* "Example: GET Object" of AWS's S3 SigV4 header-signing documentation. */
    const char *creq =
        "GET\n/test.txt\n\nhost:examplebucket.s3.amazonaws.com\nrange:bytes=0-9\n"
        "x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n"
        "x-amz-date:20130524T000000Z\n\nhost;range;x-amz-content-sha256;x-amz-date\n"
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    char sig[65];

    (void)state;
    sign(SECRET, "20130524T000000Z", "us-east-1", creq, sig);
    assert_string_equal(sig, "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
}

/* A loopback socket that captures one request ------------------------------------- */

typedef struct capture {
    int lfd;
    char req[16384];
    size_t len;
} capture;

static void *serve(void *arg)
{
    capture *cap = arg;
    int fd = accept(cap->lfd, NULL, NULL);
    const char *ok = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    char *end;
    long clen = 0;

    if (fd < 0)
        return NULL;
    for (;;) {
        ssize_t n = read(fd, cap->req + cap->len, sizeof(cap->req) - 1 - cap->len);
        if (n <= 0)
            break;
        cap->len += (size_t)n;
        cap->req[cap->len] = '\0';
        if ((end = strstr(cap->req, "\r\n\r\n")) != NULL) {
            const char *cl = strcasestr(cap->req, "\r\ncontent-length:");
            if (cl)
                clen = strtol(cl + 17, NULL, 10);
            if (cap->len >= (size_t)(end + 4 - cap->req) + (size_t)clen)
                break;
        }
    }
    if (write(fd, ok, strlen(ok)) < 0)
        perror("write");
    close(fd);
    return NULL;
}

static const char *body_src;
static size_t body_off;

static size_t read_body(char *buf, size_t size, size_t n, void *userp)
{
    size_t left = strlen(body_src) - body_off, take = size * n < left ? size * n : left;
    (void)userp;
    memcpy(buf, body_src + body_off, take);
    body_off += take;
    return take;
}

/* The value of header name (lower case) in the captured head, into out; 0 if found. */
static int header(const char *head, const char *name, char *out, size_t outlen)
{
    const char *p = head;
    size_t n = strlen(name);

    while ((p = strstr(p, "\r\n")) != NULL) {
        p += 2;
        if (strncasecmp(p, name, n) == 0 && p[n] == ':') {
            const char *v = p + n + 1, *e = strstr(v, "\r\n");
            while (*v == ' ')
                v++;
            snprintf(out, outlen, "%.*s", (int)(e - v), v);
            return 0;
        }
    }
    return -1;
}

/* Sends one request set up by fp_s3_setup and checks libcurl signed it right. */
static void check_signed(fp_s3_method m, const char *token, const char *addressing)
{
    capture cap = {.len = 0};
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t salen = sizeof(sa);
    pthread_t th;
    fp_s3_conf c;
    char endpoint[64], key[FP_S3_KEY_MAX + 1], sha[65], auth[1024], amzdate[32], v[2048];
    char creq[8192], signed_hdrs[512], *sh, *tok, *save = NULL, want[65], resolve[128];
    const char *method = m == FP_S3_PUT ? "PUT" : "HEAD";
    struct curl_slist *hdrs = NULL, *res = NULL;
    CURL *e = curl_easy_init();
    const char *cred, *sig, *path_start, *sp;
    size_t n;

    body_src = "\xff\xd8\xff the body of an image";
    body_off = 0;
    sha256_hex(body_src, strlen(body_src), sha);
    cap.lfd = socket(AF_INET, SOCK_STREAM, 0);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(cap.lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(cap.lfd, 1), 0);
    getsockname(cap.lfd, (struct sockaddr *)&sa, &salen);
    snprintf(endpoint, sizeof(endpoint), "http://s3.test:%d", ntohs(sa.sin_port));
    /* Virtual-hosted: the bucket's name is pinned to the socket, so no lookup happens. */
    snprintf(resolve, sizeof(resolve), "fp-bucket.s3.test:%d:127.0.0.1", ntohs(sa.sin_port));
    res = curl_slist_append(NULL, resolve);
    snprintf(resolve, sizeof(resolve), "s3.test:%d:127.0.0.1", ntohs(sa.sin_port));
    res = curl_slist_append(res, resolve);
    conf(&c, "s3://fp-bucket/pre/fix", endpoint, addressing, token);
    fp_s3_key(&c, sha, "jpg", key);
    assert_int_equal(pthread_create(&th, NULL, serve, &cap), 0);
    assert_int_equal(
        fp_s3_setup(e, &c, m, key, sha, (curl_off_t)strlen(body_src), "image/jpeg", &hdrs), 0);
    curl_easy_setopt(e, CURLOPT_READFUNCTION, read_body);
    curl_easy_setopt(e, CURLOPT_RESOLVE, res);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 10000L);
    assert_int_equal(curl_easy_perform(e), CURLE_OK);
    pthread_join(th, NULL);
    close(cap.lfd);
    curl_easy_cleanup(e);
    curl_slist_free_all(hdrs);
    curl_slist_free_all(res);

    /* The request line and what it carries. */
    assert_true(strncmp(cap.req, method, strlen(method)) == 0);
    path_start = cap.req + strlen(method) + 1;
    sp = strchr(path_start, ' ');
    assert_non_null(sp);
    assert_int_equal(header(cap.req, "x-amz-content-sha256", v, sizeof(v)), 0);
    if (m == FP_S3_PUT) {
        assert_string_equal(v, sha); /* the body's own digest, not UNSIGNED-PAYLOAD */
        assert_string_equal(strstr(cap.req, "\r\n\r\n") + 4, body_src);
        assert_int_equal(header(cap.req, "content-type", v, sizeof(v)), 0);
        assert_string_equal(v, "image/jpeg");
    }
    if (token) {
        assert_int_equal(header(cap.req, "x-amz-security-token", v, sizeof(v)), 0);
        assert_string_equal(v, token);
    }
    assert_int_equal(header(cap.req, "x-amz-date", amzdate, sizeof(amzdate)), 0);
    assert_int_equal(header(cap.req, "authorization", auth, sizeof(auth)), 0);
    {
        static const char pre[] = "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/";
        assert_true(strncmp(auth, pre, sizeof(pre) - 1) == 0);
        cred = auth + sizeof(pre) - 1;
    }
    assert_true(strncmp(cred, amzdate, 8) == 0);
    assert_true(strncmp(cred + 8, "/eu-west-1/s3/aws4_request,", 27) == 0);
    sh = strstr(auth, "SignedHeaders=");
    sig = strstr(auth, "Signature=");
    assert_non_null(sh);
    assert_non_null(sig);
    snprintf(signed_hdrs, sizeof(signed_hdrs), "%.*s", (int)strcspn(sh + 14, ", "), sh + 14);
    assert_non_null(strstr(signed_hdrs, "host"));
    assert_non_null(strstr(signed_hdrs, "x-amz-content-sha256"));
    assert_non_null(strstr(signed_hdrs, "x-amz-date"));
    if (token)
        assert_non_null(strstr(signed_hdrs, "x-amz-security-token"));

    /* The canonical request, from what arrived. */
    n = (size_t)snprintf(creq, sizeof(creq), "%s\n%.*s\n\n", method, (int)(sp - path_start),
                         path_start);
    {
        char list[512];
        snprintf(list, sizeof(list), "%s", signed_hdrs);
        for (tok = strtok_r(list, ";", &save); tok; tok = strtok_r(NULL, ";", &save)) {
            assert_int_equal(header(cap.req, tok, v, sizeof(v)), 0); /* signed means sent */
            n += (size_t)snprintf(creq + n, sizeof(creq) - n, "%s:%s\n", tok, v);
        }
    }
    header(cap.req, "x-amz-content-sha256", v, sizeof(v));
    snprintf(creq + n, sizeof(creq) - n, "\n%s\n%s", signed_hdrs, v);
    sign(SECRET, amzdate, "eu-west-1", creq, want);
    assert_string_equal(sig + 10, want);
    if (strcmp(addressing, "virtual") == 0) {
        header(cap.req, "host", v, sizeof(v));
        assert_true(strncmp(v, "fp-bucket.s3.test:", 18) == 0);
        assert_true(strncmp(path_start, "/pre/fix/", 9) == 0);
    } else {
        assert_true(strncmp(path_start, "/fp-bucket/pre/fix/", 19) == 0);
    }
}

static void test_put_signed(void **state)
{
    (void)state;
    check_signed(FP_S3_PUT, NULL, "path");
}

static void test_put_signed_with_token_virtual(void **state)
{
    (void)state;
    check_signed(FP_S3_PUT, "FQoGZXIvYXdzEXAMPLE//token+with/odd=chars", "virtual");
}

static void test_head_signed(void **state)
{
    (void)state;
    check_signed(FP_S3_HEAD, "tok", "path");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_judge),
        cmocka_unit_test(test_verifier_known_answer),
        cmocka_unit_test(test_put_signed),
        cmocka_unit_test(test_put_signed_with_token_virtual),
        cmocka_unit_test(test_head_signed),
    };
    curl_global_init(CURL_GLOBAL_DEFAULT);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
