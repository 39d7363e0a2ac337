"""Hostile origins: safe fetching and validated content, through the real worker.

Every test submits a job to a real master + worker (tests/origin.py as the origin) and
asserts the exact `status` of each result: schemes and redirects, the SSRF guard (a worker
WITHOUT --allow-private, whose connections must never reach the origin), bounded
downloads, content sniffing and X-Robots-Tag opt-outs. Storage and poison messages are in
test_hostile_store.py. Every address used is loopback (127.0.0.1 / ::1).
Run alone: /usr/bin/python3 tests/integration/test_hostile.py --bin build/bin
"""

import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fp_harness as fp  # noqa: E402

STORED = r"^[0-9a-f]{2}/[0-9a-f]{64}\.%s$"


def start_worker(c, wid, *args, allow_private=True, output=None):
    """A worker like Cluster.start_worker, but --allow-private only when asked."""
    argv = [c.exe("fetchpool-worker"), "--redis", c.redis_srv.url, "--output", output or c.out,
            "--id", wid] + (["--allow-private"] if allow_private else []) + list(args)
    w = fp.Proc("worker-" + wid, argv, c.dir, env=c.env())
    c.workers.append(w)
    c.procs.append(w)
    return w


class HostileCase(unittest.TestCase):
    """One cluster per class (redis, origin, master, one worker with WORKER_ARGS); each
    test submits its own job, so tests stay independent."""

    WORKER_ARGS = ()
    ALLOW_PRIVATE = True

    @classmethod
    def setUpClass(cls):
        cls.c = fp.Cluster(cls.__name__)
        try:
            cls.c.start_redis()
            cls.origin = cls.c.start_origin()
            cls.c.start_master()
            start_worker(cls.c, "w1", *cls.WORKER_ARGS, allow_private=cls.ALLOW_PRIVATE)
            if not cls.c.wait_workers_registered(1):
                raise RuntimeError("worker did not register\n" + cls.c.logs())
        except BaseException:
            cls.c.close()
            raise
        cls.njobs = 0

    @classmethod
    def tearDownClass(cls):
        cls.c.close()

    def url(self, path):
        return self.origin.url(path)

    def run_job(self, urls, *submit_args, timeout=60):
        """Submit urls (text lines) with --attempts 1; returns (rows, SubmitResult)."""
        cls = type(self)
        cls.njobs += 1
        src = self.c.write_input(urls, name="in-%d.txt" % cls.njobs)
        res = self.c.path("res-%d.jsonl" % cls.njobs)
        s = self.c.submit("--wait", "--attempts", "1", "--format", "jsonl", "--results", res,
                          *submit_args, src, timeout=timeout)
        if s.rc not in (0, 1):
            self.fail("submit failed: %r\n%s" % (s, self.c.logs()))
        rows = fp.read_jsonl(res)
        self.assertEqual(len(rows), len(urls), rows)
        return rows, s

    def expect(self, url, status, *submit_args):
        """One URL in, its result row out, with the exact status asserted."""
        rows, _ = self.run_job([url], *submit_args)
        row = rows[0]
        if row["status"] != status:
            self.fail("%s: want %s, got %s\n%s\n%s" % (url, status, row["status"], row,
                                                       self.c.logs(15)))
        if status != "ok":
            self.assertEqual(row["path"], "", row)
            self.assertEqual(row["sha256"], "", row)
        return row

    def stored(self):
        found = []
        for root, dirs, files in os.walk(self.c.out):
            dirs[:] = [d for d in dirs if d != ".tmp"]
            found += [os.path.relpath(os.path.join(root, f), self.c.out) for f in files]
        return sorted(found)

    def tearDown(self):
        self.c.check_alive()


class SchemeRedirectTest(HostileCase):
    """Only http(s), for redirects too; at most 5 redirects."""

    def test_redirect_to_ftp_is_bad_scheme(self):
        row = self.expect(self.url("/fault/redirect?to=ftp://127.0.0.1/x.jpg"), "bad_scheme")
        self.assertEqual(row["http_code"], 302, row)

    def test_redirect_to_file_is_bad_scheme(self):
        self.expect(self.url("/fault/redirect?to=file:///etc/passwd"), "bad_scheme")

    def test_redirect_to_gopher_and_dict_are_bad_scheme(self):
        rows, _ = self.run_job([self.url("/fault/redirect?to=gopher://127.0.0.1/x"),
                                self.url("/fault/redirect?to=dict://127.0.0.1:11211/stat")])
        self.assertEqual([r["status"] for r in rows], ["bad_scheme", "bad_scheme"], rows)

    def test_redirect_loop_is_too_many_redirects(self):
        before = self.origin.stats()["paths"].get("/fault/redirect-loop", 0)
        row = self.expect(self.url("/fault/redirect-loop"), "too_many_redirects")
        # The cap is 5: the 6th redirect is never followed.
        n = self.origin.stats()["paths"].get("/fault/redirect-loop", 0) - before
        self.assertEqual(n, 6, "requests along the loop (first + 5 redirects)")
        self.assertEqual(row["http_code"], 302, row)

    def test_five_redirects_ok_six_fail(self):
        rows, _ = self.run_job([self.url("/fault/redirect-loop?hops=5"),
                                self.url("/fault/redirect-loop?hops=6")])
        self.assertEqual(rows[0]["status"], "ok", rows[0])
        self.assertEqual(rows[0]["sha256"], fp.origin_mod.image_sha256(0, "jpg"), rows[0])
        self.assertEqual(rows[1]["status"], "too_many_redirects", rows[1])

    def test_relative_redirect_to_image_ok(self):
        row = self.expect(self.url("/fault/redirect?to=/img/41.jpg"), "ok")
        self.assertEqual(row["sha256"], fp.origin_mod.image_sha256(41, "jpg"))


class ContentTest(HostileCase):
    """Bodies are judged by their bytes, not by the Content-Type they claim."""

    def test_html_labelled_jpeg_is_not_an_image(self):
        row = self.expect(self.url("/fault/lie"), "not_an_image")
        self.assertEqual(row["content_type"], "image/jpeg", row)
        self.assertEqual(row["http_code"], 200, row)

    def test_html_is_not_an_image(self):
        row = self.expect(self.url("/fault/html"), "not_an_image")
        self.assertEqual(row["content_type"], "text/html", row)

    def test_svg_refused_by_default(self):
        row = self.expect(self.url("/fault/svg?v=default"), "not_an_image")
        self.assertEqual(row["content_type"], "image/svg+xml", row)

    def test_svg_ok_with_allow_svg(self):
        row = self.expect(self.url("/fault/svg?v=allowed"), "ok", "--allow-svg")
        self.assertRegex(row["path"], STORED % "svg")
        with open(os.path.join(self.c.out, row["path"]), "rb") as f:
            self.assertIn(b"<svg", f.read())

    def test_each_image_type_ok_with_its_extension(self):
        exts = ["jpg", "png", "gif", "webp"]
        rows, _ = self.run_job([self.url("/img/7.%s" % e) for e in exts])
        for ext, row in zip(exts, rows):
            self.assertEqual(row["status"], "ok", row)
            sha = fp.origin_mod.image_sha256(7, ext)
            self.assertEqual(row["sha256"], sha, row)
            self.assertEqual(row["path"], "%s/%s.%s" % (sha[:2], sha, ext), row)
            self.assertEqual(fp.sha256_file(os.path.join(self.c.out, row["path"])), sha)

    def test_no_body_is_empty_body(self):
        row = self.expect(self.url("/status/204"), "empty_body")
        self.assertEqual(row["http_code"], 204, row)

    def test_error_status_body_is_not_stored(self):
        row = self.expect(self.url("/status/404?x=content"), "http_404")
        self.assertEqual(row["http_code"], 404, row)


class OptOutTest(HostileCase):
    """X-Robots-Tag noai / noimageai: refused (and not stored) unless --ignore-optout."""

    def test_noai_refused(self):
        self.expect(self.url("/fault/robots?tag=noai&n=101"), "robots_optout")
        self.assertFalse([p for p in self.stored()
                          if fp.origin_mod.image_sha256(101, "jpg") in p])

    def test_noimageai_refused(self):
        self.expect(self.url("/fault/robots?tag=noimageai&n=102"), "robots_optout")
        self.assertFalse([p for p in self.stored()
                          if fp.origin_mod.image_sha256(102, "jpg") in p])

    def test_token_in_a_list_refused(self):
        self.expect(self.url("/fault/robots?tag=noindex,%20NoAI&n=103"), "robots_optout")

    def test_other_tag_ok(self):
        self.expect(self.url("/fault/robots?tag=nofollow&n=104"), "ok")

    def test_ignore_optout_stores_it(self):
        row = self.expect(self.url("/fault/robots?tag=noai&n=105"), "ok", "--ignore-optout")
        sha = fp.origin_mod.image_sha256(105, "jpg")
        self.assertEqual(row["sha256"], sha)
        self.assertTrue(os.path.exists(os.path.join(self.c.out, row["path"])))

    def test_no_temp_files_left(self):
        self.expect(self.url("/fault/robots?tag=noimageai&n=106&size=300000"),
                    "robots_optout")
        self.assertEqual(self.c.temp_leftovers(), [])


class DefaultLimitTest(HostileCase):
    """Default limits (--max-size 50000000)."""

    def test_60mb_declared_is_too_large_quickly(self):
        t0 = time.monotonic()
        row = self.expect(self.url("/fault/big?size=60000000"), "too_large")
        self.assertLess(time.monotonic() - t0, 10, "not cut off quickly")
        self.assertLess(row["total_ms"], 5000, row)
        self.assertEqual(self.c.temp_leftovers(), [])


class SmallLimitTest(HostileCase):
    """--max-size 100000 --timeout 2: big, endless and slow bodies are cut off in seconds."""

    WORKER_ARGS = ("--max-size", "100000", "--timeout", "2")

    def test_200kb_image_is_too_large(self):
        self.expect(self.url("/img/3.jpg?size=200000"), "too_large")

    def test_under_the_limit_ok(self):
        self.expect(self.url("/img/3.jpg?size=99000"), "ok")

    def test_endless_body_is_too_large(self):
        t0 = time.monotonic()
        row = self.expect(self.url("/fault/endless"), "too_large")
        self.assertLess(time.monotonic() - t0, 10, "not cut off quickly")
        self.assertLess(row["total_ms"], 2000, row)
        self.assertEqual(self.c.temp_leftovers(), [])

    def test_slow_body_times_out(self):
        # 1 KB/s for 80 KB: under the size cap, so only the 2 s timeout stops it.
        t0 = time.monotonic()
        row = self.expect(self.url("/fault/trickle?bps=1000&size=80000"), "timeout")
        self.assertLess(time.monotonic() - t0, 10, "not cut off quickly")
        self.assertGreaterEqual(row["total_ms"], 1900, row)
        self.assertLess(row["total_ms"], 4000, row)
        self.assertEqual(self.c.temp_leftovers(), [])

    def test_stalled_origin_times_out(self):
        row = self.expect(self.url("/fault/stall"), "timeout")
        self.assertLess(row["total_ms"], 4000, row)


class SsrfGuardTest(HostileCase):
    """A worker WITHOUT --allow-private: every loopback spelling is blocked_address, and
    the origin never sees a request. rebind.test is pinned to 127.0.0.1 by --resolve, as a
    DNS answer pointing at an internal address would be."""

    ALLOW_PRIVATE = False

    @classmethod
    def setUpClass(cls):
        # The port is only known once the origin runs, so the worker starts here.
        cls.WORKER_ARGS = ()
        cls.c = fp.Cluster(cls.__name__)
        try:
            cls.c.start_redis()
            cls.origin = cls.c.start_origin()
            p = cls.origin.port
            cls.c.start_master()
            start_worker(cls.c, "w1", "--resolve", "rebind.test:%d:127.0.0.1" % p,
                         "--resolve", "rebind6.test:%d:::1" % p, allow_private=False)
            if not cls.c.wait_workers_registered(1):
                raise RuntimeError("worker did not register\n" + cls.c.logs())
        except BaseException:
            cls.c.close()
            raise
        cls.njobs = 0

    def blocked(self, host, tag):
        """Fetch http://host:PORT/img/<tag>.jpg; blocked_address and no request made."""
        before = self.origin.stats()["total"]
        path = "/img/%d.jpg" % tag
        url = "http://%s:%d%s" % (host, self.origin.port, path)
        row = self.expect(url, "blocked_address")
        self.assertIn("SSRF guard", row["error"], row)
        self.assertEqual(row["attempts"], 1, "blocked is not transient: %s" % row)
        st = self.origin.stats()
        self.assertNotIn(path, st["paths"], "the origin got the request: %s" % st)
        self.assertEqual(st["total"], before, st)
        return row

    def test_plain_127_0_0_1(self):
        self.blocked("127.0.0.1", 1)

    def test_decimal_2130706433(self):
        self.blocked("2130706433", 2)

    def test_short_127_1(self):
        self.blocked("127.1", 3)

    def test_hex_0x7f_1(self):
        self.blocked("0x7f.1", 4)

    def test_octal_0177_0_0_1(self):
        self.blocked("0177.0.0.1", 5)

    def test_ipv6_loopback(self):
        row = self.blocked("[::1]", 6)
        self.assertIn("loopback", row["error"], row)

    def test_ipv4_mapped_ipv6(self):
        self.blocked("[::ffff:127.0.0.1]", 7)

    def test_ipv4_mapped_ipv6_hex(self):
        self.blocked("[::ffff:7f00:1]", 8)

    def test_localhost(self):
        self.blocked("localhost", 9)

    def test_dns_rebinding_name(self):
        self.blocked("rebind.test", 10)

    def test_dns_rebinding_name_v6(self):
        self.blocked("rebind6.test", 11)

    def test_blocked_first_hop_of_a_redirect_never_reaches_origin(self):
        before = self.origin.stats()["total"]
        url = "http://rebind.test:%d/fault/redirect?to=/img/12.jpg" % self.origin.port
        self.expect(url, "blocked_address")
        st = self.origin.stats()
        self.assertEqual(st["total"], before, st)
        self.assertNotIn("/fault/redirect", st["paths"], st)

    def test_many_at_once_all_blocked(self):
        before = self.origin.stats()["total"]
        p = self.origin.port
        hosts = ["127.0.0.1", "127.0.0.2", "127.255.255.254", "2130706433", "127.1", "0x7f.1",
                 "[::1]", "[::ffff:127.0.0.1]", "[0:0:0:0:0:ffff:7f00:1]", "rebind.test"]
        urls = ["http://%s:%d/img/%d.jpg" % (h, p, 200 + i) for i, h in enumerate(hosts)]
        rows, s = self.run_job(urls)
        self.assertEqual([r["status"] for r in rows], ["blocked_address"] * len(urls), rows)
        self.assertEqual(s.summary.get("fail:blocked_address"), str(len(urls)), s)
        self.assertEqual(self.origin.stats()["total"], before)


class AllowListRedirectTest(HostileCase):
    """--allow-cidr lets one internal range through (here the origin on 127.0.0.2); a
    redirect from it to another internal address (127.0.0.1) is still blocked: the guard
    checks every hop's address, not only the first."""

    ALLOW_PRIVATE = False

    @classmethod
    def setUpClass(cls):
        cls.WORKER_ARGS = ()
        cls.c = fp.Cluster(cls.__name__)
        try:
            cls.c.start_redis()
            cls.target = cls.c.start_origin()  # 127.0.0.1: must never be reached
            cls.allowed = fp.Origin(cls.c, 0, "127.0.0.2")
            cls.c.procs.append(cls.allowed.proc)
            cls.c.start_master()
            start_worker(cls.c, "w1", "--allow-cidr", "127.0.0.2/32", allow_private=False)
            if not cls.c.wait_workers_registered(1):
                raise RuntimeError("worker did not register\n" + cls.c.logs())
        except BaseException:
            cls.c.close()
            raise
        cls.njobs = 0

    def test_allowed_range_is_fetched(self):
        self.expect(self.allowed.url("/img/21.jpg"), "ok")

    def test_redirect_to_a_blocked_address_is_stopped(self):
        before = self.target.stats()["total"]
        url = self.allowed.url("/fault/redirect?to=" + self.target.url("/img/22.jpg"))
        row = self.expect(url, "blocked_address")
        self.assertIn("loopback", row["error"], row)
        self.assertEqual(self.target.stats()["total"], before, "the redirect reached 127.0.0.1")
        self.assertIn("/fault/redirect", self.allowed.stats()["paths"])

    def test_outside_the_range_is_blocked(self):
        before = self.target.stats()["total"]
        self.expect(self.target.url("/img/23.jpg"), "blocked_address")
        self.assertEqual(self.target.stats()["total"], before)


class MalformedResponseTest(HostileCase):
    """Responses no HTTP server should send are protocol_error, and are not retried (a
    second try gets the same). Submitted with --attempts 2 to see that."""

    def malformed(self, path):
        rows, _ = self.run_job([self.url(path)], "--attempts", "2")
        self.assertEqual((rows[0]["status"], rows[0]["attempts"]), ("protocol_error", 1),
                         rows[0])

    # libcurl 7.88 fails a header line over 100 KB with CURLE_OUT_OF_MEMORY.
    def test_one_huge_header_line(self):
        self.malformed("/fault/header-bomb?size=200000")

    # Over 300 KB of headers and a bad chunk size come back as CURLE_RECV_ERROR with no
    # socket error: a broken peer, not a reset, so not retried.
    def test_too_many_headers(self):
        self.malformed("/fault/header-bomb?size=50&count=8000")

    def test_bad_chunk_size(self):
        self.malformed("/fault/bad-chunk")

    def test_headers_under_the_limit_ok(self):
        self.expect(self.url("/fault/header-bomb?size=1000&count=50"), "ok")


class PathSafetyTest(HostileCase):
    """Files never get a name from the URL: dot segments and odd queries change nothing."""

    def test_dot_dot_in_url_stores_content_addressed(self):
        evil = self.c.path("escaped")
        urls = [self.url("/img/../../../../img/21.jpg"),
                self.url("/img/22.jpg?name=../../../../%s/x.jpg" % evil.lstrip("/")),
                self.url("/img/23.jpg#../../../../etc/passwd"),
                self.url("/fault/redirect?to=/img/24.jpg%3Fa%3D..%252F..%252Fx")]
        rows, _ = self.run_job(urls)
        out = os.path.realpath(self.c.out)
        for row, n in zip(rows, (21, 22, 23, 24)):
            self.assertEqual(row["status"], "ok", row)
            sha = fp.origin_mod.image_sha256(n, "jpg")
            self.assertEqual(row["path"], "%s/%s.jpg" % (sha[:2], sha), row)
            full = os.path.realpath(os.path.join(self.c.out, row["path"]))
            self.assertTrue(full.startswith(out + os.sep), full)
            self.assertEqual(fp.sha256_file(full), sha)
        self.assertFalse(os.path.exists(evil))
        for name in os.listdir(self.c.dir):
            self.assertFalse(name.endswith(".jpg"), "stray file %s" % name)
        for p in self.stored():
            self.assertRegex(p, STORED % "jpg")


if __name__ == "__main__":
    fp.main()
