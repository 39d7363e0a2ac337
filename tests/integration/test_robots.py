#!/usr/bin/python3
"""robots.txt per job (issue 15): `submit --robots` makes the workers obey each host's
robots.txt, fetched once per origin for the whole cluster (fp:robots:<origin> in Redis).

Each test starts its own origin (tests/origin.py --robots FILE / --robots-status CODE),
which counts the requests for /robots.txt, and two workers, so "once for the cluster" is
checked where it could fail: both workers get tasks of the host at once.
Run alone: /usr/bin/python3 tests/integration/test_robots.py --bin build/bin
"""

import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fp_harness as fp  # noqa: E402
from test_reliability import ReliabilityBase  # noqa: E402

RULES = (b"User-agent: *\nDisallow: /\nCrawl-delay: 5\n\n"
         b"# ours: the * group above must not apply (nor its Crawl-delay)\n"
         b"User-agent: FetchPool/9\nDisallow: /img/1\nAllow: /img/10\n")


class RobotsTest(ReliabilityBase):
    def start(self, robots=None, status=None, workers=2):
        extra = []
        if robots is not None:
            path = self.c.path("robots%d.txt" % time.monotonic_ns())
            with open(path, "wb") as f:
                f.write(robots)
            extra += ["--robots", path]
        if status is not None:
            extra += ["--robots-status", str(status)]
        org = self.c.start_origin(extra=extra)
        self.c.start_master()
        for i in range(workers):
            self.c.start_worker("w%d" % (i + 1), "--concurrency", "16")
        self.c.wait_workers_registered(workers)
        return org

    def run_urls(self, urls, *args):
        res = self.c.path("r%d.tsv" % time.monotonic_ns())
        s = self.c.submit("--wait", "--results", res, *args, self.c.write_input(urls),
                          timeout=120)
        self.check(s.rc in (0, 1), "submit: %r" % s)
        return {r["url"]: r for r in fp.read_tsv(res)}

    def robots_fetches(self, org):
        return org.stats()["paths"].get("/robots.txt", 0)

    def test_rules_once_per_host_for_the_cluster(self):
        """Disallowed paths fail as robots_disallowed without a request, allowed ones are
        ok, our group wins over *, the longest rule wins; two workers, one fetch; the key
        in Redis expires in about a day."""
        org = self.start(RULES)
        urls = [org.url("/img/%d.jpg?size=512" % i) for i in range(40)]
        rows = self.run_urls(urls, "--robots")
        for i, u in enumerate(urls):
            s = str(i)
            want = "robots_disallowed" if s.startswith("1") and not s.startswith("10") else "ok"
            self.assertEqual(rows[u]["status"], want, rows[u])
            if want != "ok":
                self.assertIn("robots.txt", rows[u]["error"], rows[u])
        paths = org.stats()["paths"]
        self.assertEqual(paths.get("/robots.txt"), 1, paths)
        self.assertNotIn("/img/1.jpg", paths)
        self.assertIn("/img/10.jpg", paths)
        by = {r["worker"] for r in rows.values() if r["status"] == "ok"}
        self.say("ok rows by workers %s; robots.txt fetched %d time(s)", sorted(by),
                 paths.get("/robots.txt"))
        key = "fp:robots:http://127.0.0.1:%d" % org.port
        ttl = self.rcall("TTL", key)
        self.assertTrue(86000 < ttl <= 86400, ttl)
        self.assertEqual(self.rcall("EXISTS", key + ":lock"), 0)
        self.assert_queues_drained()
        # the * group's Crawl-delay does not apply to us: 40 URLs did not take 200 s
        self.assertEqual(self.rcall("GET", "fp:crawl:127.0.0.1"), "0")
        self.assertTrue(86000 < self.rcall("TTL", "fp:crawl:127.0.0.1") <= 86400)

    def test_crawl_delay_spaces_the_host(self):
        """Crawl-delay: 1 for our group, 6 URLs, 2 workers: the origin sees one image
        request a second at most (a lower bound on the spacing, not a speed check), the
        host shows as throttled for its crawl delay; then a job without --robots on the
        same host is not spaced."""
        org = self.start(b"User-agent: fetchpool\nCrawl-delay: 1\nDisallow: /private\n")
        urls = [org.url("/img/%d.jpg?size=512" % i) for i in range(6)]
        rows = self.run_urls(urls, "--robots")
        self.assertEqual({r["status"] for r in rows.values()}, {"ok"}, rows)
        got = sorted(t for t, p in org.stats()["log"] if p.startswith("/img/"))
        self.assertEqual(len(got), 6, got)
        gaps = [b - a for a, b in zip(got, got[1:])]
        self.say("crawl-delay 1 s: gaps between image requests %s",
                 ["%.3f" % g for g in gaps])
        self.assertGreaterEqual(min(gaps), 0.9, gaps)
        self.assertEqual(self.robots_fetches(org), 1)
        self.assertEqual(self.rcall("GET", "fp:crawl:127.0.0.1"), "1000")
        self.assertEqual(self.rcall("HGET", "fp:host:127.0.0.1", "why"), "crawl")
        # the job's summary counts the host among its throttled ones (fp:job:<id>:throttle)
        tk = self.rcall("KEYS", "fp:job:*:throttle")
        self.assertEqual(len(tk), 1, tk)
        self.assertGreater(int(self.rcall("HGET", tk[0], "127.0.0.1") or 0), 0)
        self.assertIn("Crawl-delay of 1 s", self.c.logs(200))
        self.assert_queues_drained()
        # the same host for a job without --robots: its requests are not spaced
        urls = [org.url("/img/%d.jpg?size=256" % i) for i in range(10, 16)]
        rows = self.run_urls(urls)
        self.assertEqual({r["status"] for r in rows.values()}, {"ok"}, rows)
        plain = sorted(t for t, p in org.stats()["log"]
                       if p.startswith("/img/") and t > got[-1])
        self.assertEqual(len(plain), 6, plain)
        self.assertLess(min(b - a for a, b in zip(plain, plain[1:])), 0.9, plain)

    def test_damaged_crawl_key_is_rewritten(self):
        """A fp:crawl:<host> of the wrong type (damaged) reads as no delay known; the
        worker that learns the rules replaces it, so the host is not held at one probe per
        10 s for good: 3 URLs with Crawl-delay 1 finish in seconds, spaced by the delay
        (review 3, finding 6)."""
        org = self.start(b"User-agent: fetchpool\nCrawl-delay: 1\n", workers=1)
        self.rcall("HSET", "fp:crawl:127.0.0.1", "x", "1")
        urls = [org.url("/img/%d.jpg?size=512" % i) for i in range(3)]
        t0 = time.monotonic()
        rows = self.run_urls(urls, "--robots")
        took = time.monotonic() - t0
        self.assertEqual({r["status"] for r in rows.values()}, {"ok"}, rows)
        self.assertEqual(self.rcall("GET", "fp:crawl:127.0.0.1"), "1000")
        self.assertLess(took, 15, "held at one request per 10 s: %.1f s" % took)

    def test_without_robots_never_asks(self):
        """A job without --robots fetches everything and never asks for robots.txt, even
        from a host whose robots.txt disallows everything."""
        org = self.start(b"User-agent: *\nDisallow: /\n")
        urls = [org.url("/img/%d.jpg?size=512" % i) for i in range(10)]
        rows = self.run_urls(urls)
        self.assertEqual({r["status"] for r in rows.values()}, {"ok"})
        self.assertEqual(self.robots_fetches(org), 0)

    def test_missing_is_allowed(self):
        """robots.txt answers 404: everything is allowed."""
        org = self.start()
        urls = [org.url("/img/%d.jpg?size=512" % i) for i in range(10)]
        rows = self.run_urls(urls, "--robots")
        self.assertEqual({r["status"] for r in rows.values()}, {"ok"})
        self.assertEqual(self.robots_fetches(org), 1)

    def test_server_error_disallows(self):
        """robots.txt answers 503: every URL of the host fails as robots_disallowed (RFC
        9309 2.3.1.4), the error says so, and the answer is kept for 10 minutes only."""
        org = self.start(status=503)
        urls = [org.url("/img/%d.jpg?size=512" % i) for i in range(10)]
        rows = self.run_urls(urls, "--robots")
        for r in rows.values():
            self.assertEqual(r["status"], "robots_disallowed", r)
            self.assertIn("HTTP 503", r["error"], r)
        self.assertEqual(self.robots_fetches(org), 1)
        ttl = self.rcall("TTL", "fp:robots:http://127.0.0.1:%d" % org.port)
        self.assertTrue(500 < ttl <= 600, ttl)

    def test_unreachable_disallows(self):
        """Nothing listens: robots.txt could not be had, the URLs fail as
        robots_disallowed (not as connect errors after burning their attempts)."""
        self.start(workers=1)
        port = fp.free_port()
        urls = ["http://127.0.0.1:%d/img/%d.jpg" % (port, i) for i in range(4)]
        rows = self.run_urls(urls, "--robots")
        for r in rows.values():
            self.assertEqual(r["status"], "robots_disallowed", r)
            self.assertIn("could not be had", r["error"], r)
            self.assertEqual(r["attempts"], "1", r)

    def test_waiting_holds_no_slot(self):
        """One worker with one slot: while host A's robots.txt takes 2 s to answer, host
        B's URLs (queued behind A's) are fetched: a task waiting for its rules holds no
        transfer slot."""
        slow = fp.Origin(self.c, delay_ms=2000)
        self.addCleanup(slow.stop)
        fast = self.start(workers=0)
        self.c.start_worker("w1", "--concurrency", "1")
        self.c.wait_workers_registered(1)
        urls = [slow.url("/img/0.jpg?size=512")] + \
            [fast.url("/img/%d.jpg?size=512" % i) for i in range(5)]
        rows = self.run_urls(urls, "--robots")
        self.assertEqual({r["status"] for r in rows.values()}, {"ok"}, rows)
        asked = [t for t, p in slow.stats()["log"] if p == "/robots.txt"]
        self.assertEqual(len(asked), 1)
        got = [t for t, p in fast.stats()["log"] if p.startswith("/img/")]
        self.assertEqual(len(got), 5)
        # every fast image was asked for while the slow robots.txt was still being answered
        self.assertLess(max(got), asked[0] + 2.0, (asked, got))

    def test_huge_or_binary_is_ignored(self):
        """Rules past the first 500 KiB are not read; a file with a NUL byte is not text
        and has no rules: both allow everything."""
        for body in (b"# pad\n" * (600 * 1024 // 6) + b"User-agent: *\nDisallow: /\n",
                     b"User-agent: *\nDisallow: /\n\0\x01\x02binary"):
            with self.subTest(size=len(body)):
                self.tearDown_cluster()
                org = self.start(body, workers=1)
                urls = [org.url("/img/%d.jpg?size=512" % i) for i in range(4)]
                rows = self.run_urls(urls, "--robots")
                self.assertEqual({r["status"] for r in rows.values()}, {"ok"}, rows)
                self.assertEqual(self.robots_fetches(org), 1)

    def tearDown_cluster(self):
        """A fresh cluster for a subtest (the first one uses setUp's)."""
        if getattr(self, "_used", False):
            self._close_rc()
            self.c.close()
            self.c = fp.Cluster(self.id().rsplit(".", 1)[-1] + str(time.monotonic_ns()))
            self.addCleanup(self.c.close)
            self.c.start_redis()
        self._used = True


if __name__ == "__main__":
    fp.main()
