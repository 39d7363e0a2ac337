"""End-to-end tests of the core service: master + workers + Redis + a real HTTP origin.

Each test starts its own redis-server, nginx (or tests/origin.py), fetchpool-master and
workers on free loopback ports, submits a job with scripts/submit and checks the results
file, the stored files, the summary and the Redis keys left behind. Fairness between jobs
is in test_fairness.py, input handling in test_submit.py.
Run alone: /usr/bin/python3 tests/integration/test_core.py --bin build/bin
"""

import collections
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fp_harness as fp  # noqa: E402


def stored_files(out):
    """Every file under out except the worker's temp dir, as relative paths."""
    found = []
    for root, dirs, files in os.walk(out):
        dirs[:] = [d for d in dirs if d != ".tmp"]
        found += [os.path.relpath(os.path.join(root, f), out) for f in files]
    return sorted(found)


class CoreTest(unittest.TestCase):
    def setUp(self):
        self.c = fp.Cluster(self.id().rsplit(".", 1)[-1])
        self.addCleanup(self.c.close)
        self.c.start_redis()

    def start_service(self, workers=2, *worker_args):
        self.c.start_master()
        for _ in range(workers):
            self.c.start_worker(None, *worker_args)
        self.c.wait_workers_registered(workers)

    def check(self, cond, msg):
        """assertTrue that adds the processes' log tails to the failure message."""
        if not cond:
            self.fail("%s\n%s" % (msg, self.c.logs()))

    def assert_queues_drained(self):
        r = self.c.redis()
        self.assertEqual(r.call("LLEN", "fp:tasks"), 0, "fp:tasks not empty")
        for key in r.keys("fp:proc:*"):
            self.assertEqual(r.call("LLEN", key), 0, "%s not empty" % key)
        self.assertEqual(r.call("LLEN", "fp:dead"), 0, "dead letters: %s" %
                         r.call("LRANGE", "fp:dead", 0, 5))

    def test_bulk_2000_from_nginx(self):
        """2,000 distinct files through 2 workers: right bytes, input order, both worked."""
        n = 2000
        files = fp.make_jpegs(self.c.path("www"), n)
        ng = self.c.start_nginx(self.c.path("www"))
        self.start_service(2, "--concurrency", "32")
        urls = [ng.url(name) for name, _ in files]
        src = self.c.write_input(urls)
        res = self.c.path("results.tsv")

        s = self.c.submit("--wait", "--results", res, src, timeout=240)
        self.check(s.rc == 0, "submit --wait failed: %r" % s)
        rows = fp.read_tsv(res)
        self.assertEqual(len(rows), n)

        per_worker = collections.Counter()
        for i, (row, url, (name, sha)) in enumerate(zip(rows, urls, files)):
            self.assertEqual(row["line"], str(i + 1), row)
            self.assertEqual(row["url"], url, row)
            self.assertEqual(row["status"], "ok", row)
            self.assertEqual(row["http_code"], "200", row)
            self.assertEqual(row["sha256"], sha, row)
            self.assertEqual(row["bytes"], "4096", row)
            self.assertEqual(row["content_type"], "image/jpeg", row)
            # Content-addressed: <out>/ab/<sha256>.<ext>
            self.assertRegex(row["path"], r"^%s/%s\.jpe?g$" % (sha[:2], sha), row)
            self.assertEqual(fp.sha256_file(os.path.join(self.c.out, row["path"])), sha)
            per_worker[row["worker"]] += 1

        self.assertEqual(set(per_worker), {"w1", "w2"}, per_worker)
        for w, count in per_worker.items():
            self.assertGreaterEqual(count, n // 100, "worker %s did too little: %s" %
                                    (w, per_worker))
        self.assertEqual(len(stored_files(self.c.out)), n, "stray or missing files")
        self.assertEqual(self.c.temp_leftovers(), [], "temp files left behind")

        sm = s.summary
        self.assertEqual(sm.get("total"), str(n), s)
        self.assertEqual(sm.get("ok"), str(n), s)
        self.assertEqual(sm.get("failed"), "0", s)
        self.assertEqual(sm.get("bytes"), str(n * 4096), s)
        self.assertFalse([k for k in sm if k.startswith("fail:")], s)
        for k in ("wall_s", "files_per_s", "p50_ms", "p95_ms", "p99_ms"):
            self.assertIn(k, sm, s)
        self.assertLessEqual(float(sm["p50_ms"]), float(sm["p95_ms"]))
        self.assertLessEqual(float(sm["p95_ms"]), float(sm["p99_ms"]))

        r = self.c.redis()
        self.assertEqual(r.hgetall("fp:job:%s:summary" % s.job).get("ok"), str(n))
        meta = r.hgetall("fp:job:%s" % s.job)
        self.assertEqual(meta.get("state"), "done", meta)
        self.assertEqual(meta.get("sealed"), "1", meta)
        self.assertEqual(meta.get("done"), str(n), meta)
        self.assert_queues_drained()
        self.c.check_alive()

    def test_mixed_failures(self):
        """Good URLs, 404s and a refused port: the job completes, failures by reason."""
        files = fp.make_jpegs(self.c.path("www"), 30)
        ng = self.c.start_nginx(self.c.path("www"))
        refused = self.c.closed_port()
        self.start_service(2)
        lines, want = [], []
        for i, (name, sha) in enumerate(files):
            lines.append(ng.url(name))
            want.append(("ok", sha))
            if i % 5 == 0:
                lines.append(ng.url("missing-%d.jpg" % i))
                want.append(("http_404", ""))
            if i % 10 == 0:
                lines.append("http://127.0.0.1:%d/x%d.jpg" % (refused, i))
                want.append(("connect_refused", ""))
        src = self.c.write_input(lines)
        res = self.c.path("results.tsv")

        s = self.c.submit("--wait", "--attempts", "2", "--results", res, src, timeout=120)
        self.check(s.rc == 1, "want exit 1 when some failed: %r" % s)
        rows = fp.read_tsv(res)
        self.assertEqual(len(rows), len(lines))
        for i, (row, url, (status, sha)) in enumerate(zip(rows, lines, want)):
            self.assertEqual(row["line"], str(i + 1), row)
            self.assertEqual(row["url"], url, row)
            self.assertEqual(row["status"], status, row)
            if status == "ok":
                self.assertEqual(row["sha256"], sha, row)
            else:
                self.assertEqual(row["path"], "", row)
            if status == "http_404":
                self.assertEqual(row["http_code"], "404", row)
                self.assertEqual(row["attempts"], "1", "404 is not transient: %s" % row)

        counts = collections.Counter(st for st, _ in want)
        sm = s.summary
        self.assertEqual(sm.get("total"), str(len(lines)), s)
        self.assertEqual(sm.get("ok"), str(counts["ok"]), s)
        self.assertEqual(sm.get("failed"), str(counts["http_404"] + counts["connect_refused"]), s)
        self.assertEqual(sm.get("fail:http_404"), str(counts["http_404"]), s)
        self.assertEqual(sm.get("fail:connect_refused"), str(counts["connect_refused"]), s)
        self.assertEqual(self.c.temp_leftovers(), [])
        self.assertEqual(len(stored_files(self.c.out)), counts["ok"])
        self.assert_queues_drained()
        self.c.check_alive()


if __name__ == "__main__":
    fp.main()
