"""Jobs of any size: Redis holds a window of a job, results land in files in input order.

A job a hundred times the window, with 1 % of its URLs failing once (retried), the master
killed and restarted twice, and the client killed during its upload, resumed, killed
again and re-attached: Redis's used_memory, sampled all along, stays under the window's
bound, and the results file is complete, in input order, every sha256 right, nothing
written twice (one test, so the CI pays for one big job). A job whose input file the master reads itself gives
the same results as the same file uploaded, and as those results relayed through Redis.
Run alone: python3 tests/integration/test_window.py --bin build/bin
"""

import os
import signal
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fp_harness as fp  # noqa: E402

WINDOW = 2000                        # the master's --window (tasks in Redis)
UPLOAD = 2000                        # submit's --window (lines in Redis)
FILES = 100                          # distinct images behind the URLs
# What one task may cost in Redis, as a task, a retry or a result (~400 bytes measured),
# one upload line, and what is there besides (counters, histogram, seen bitmaps, buffers).
PER_TASK, PER_LINE, FIXED = 1024, 256, 2 << 20
TIMING = {"total_ms", "dns_ms", "connect_ms", "ttfb_ms"}


def big_n():
    """URLs of the big job: 200,000, or 20,000 under the sanitizers, or FP_WINDOW_N. Asked
    when a test runs: BIN is set from --bin only then (at import, fp.sanitized() looks at
    build/bin, the release build, and the sanitizer stage ran the full size)."""
    return int(os.environ.get("FP_WINDOW_N", 20000 if fp.sanitized() else 200000))


def used_memory(r):
    for line in r.call("INFO", "memory").splitlines():
        if line.startswith("used_memory:"):
            return int(line.split(":")[1])
    raise AssertionError("no used_memory in INFO")


class Sampler(threading.Thread):
    """Samples Redis's used_memory every 20 ms on a connection of its own."""

    def __init__(self, cluster):
        super().__init__(daemon=True)
        self.r = cluster.redis_srv.client()
        self.peak, self.samples, self.stop = 0, 0, threading.Event()

    def run(self):
        while not self.stop.is_set():
            try:
                self.peak = max(self.peak, used_memory(self.r))
                self.samples += 1
            except (OSError, ConnectionError):
                pass
            time.sleep(0.02)

    def done(self):
        self.stop.set()
        self.join(5)
        self.r.close()
        return self.peak


class WindowTest(unittest.TestCase):
    def setUp(self):
        self.n = big_n()
        self.part = self.n // 10     # the master's --part-size: ten parts of the big job
        self.c = fp.Cluster(self.id().rsplit(".", 1)[-1])
        self.addCleanup(self.c.close)
        self.c.start_redis()
        self.files = fp.make_jpegs(self.c.path("www"), FILES, size=512)
        self.ng = self.c.start_nginx(self.c.path("www"))
        self.jobs = self.c.mkdir("jobs")

    def master(self):
        return self.c.start_master("--window", str(WINDOW), "--part-size", str(self.part),
                                   "--queue-depth", "500", "--jobs-dir", self.jobs)

    def urls(self, n, flaky=None):
        """URL i names image i % FILES (with ?i=i, so every URL is its own); with an
        origin, every 100th fails once with 503 first."""
        out = []
        for i in range(n):
            if flaky and i % 100 == 7:
                out.append(flaky.url("/flaky/%d.jpg?fail=1&code=503&size=512&i=%d" % (i, i)))
            else:
                out.append(self.ng.url(self.files[i % FILES][0]) + "?i=%d" % i)
        return out

    def check_rows(self, path, urls, flaky=None):
        rows = fp.read_tsv(path)
        self.assertEqual(len(rows), len(urls), "rows in %s" % path)
        want = {name: sha for name, sha in self.files}
        for i, (row, url) in enumerate(zip(rows, urls)):
            self.assertEqual((row["line"], row["url"], row["status"]), (str(i + 1), url, "ok"),
                             "row %d" % i)
            if flaky and i % 100 == 7:
                self.assertEqual(row["attempts"], "2", "row %d went through a retry" % i)
                self.assertEqual(row["sha256"], fp.origin_mod.image_sha256(i, "jpg", 512),
                                 "row %d" % i)
            else:
                self.assertEqual(row["sha256"], want[self.files[i % FILES][0]], "row %d" % i)
                fp_path = os.path.join(self.c.out, row["path"])
                self.assertTrue(os.path.isfile(fp_path), fp_path)
        return rows

    def assert_window_gone(self, jid):
        r = self.c.redis()
        left = sorted(k for k in r.keys("fp:job:%s:*" % jid)
                      if k.rsplit(":", 1)[-1] in ("in", "out") or ":seen:" in k)
        self.assertEqual(left, [], "a finished job keeps no window in Redis")

    def wait_done(self, jid, at_least, timeout=300):
        """Waits until the job has at_least results counted (or is done)."""
        r = self.c.redis()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            done, state = r.call("HMGET", "fp:job:%s" % jid, "done", "state")
            if state == "done" or int(done or 0) >= at_least:
                return
            time.sleep(0.05)
        self.fail("job %s: not %d results after %ds\n%s" % (jid, at_least, timeout,
                                                             self.c.logs()))

    def restart_master(self):
        self.c.master.kill(signal.SIGKILL)
        self.c.master.wait(10)
        self.master()

    def test_big_job_in_its_window_through_retries_and_kills(self):
        N = self.n
        flaky = self.c.start_origin()
        self.master()
        self.c.start_worker(concurrency=64)
        self.c.start_worker(concurrency=64)
        self.c.wait_workers_registered(2)
        urls = self.urls(N, flaky)
        src = self.c.write_input(urls)
        res = self.c.path("results.tsv")
        base = used_memory(self.c.redis())
        sampler = Sampler(self.c)
        sampler.start()
        # The client dies during its upload (backpressure keeps it uploading for most of
        # the job) and is resumed, the master dies twice, the resumed client dies once
        # its upload is done and is re-attached.
        p = self.c.submit_async("--results", res, "--window", str(UPLOAD), src)
        jid = p.popen.stdout.readline().decode().strip()
        self.assertTrue(jid.isdigit(), "submit printed %r" % jid)
        self.wait_done(jid, N // 10)
        p.kill(signal.SIGKILL)
        p.wait(10)
        r = self.c.redis()
        pushed = int(r.call("HGET", "fp:job:%s" % jid, "lines"))
        self.assertLess(pushed, N, "the client was killed during its upload")
        p = self.c.submit_async("--resume", jid, src, "--results", res,
                                "--window", str(UPLOAD))
        self.wait_done(jid, N * 3 // 10)
        self.restart_master()
        self.wait_done(jid, N * 5 // 10)
        self.restart_master()
        # Once its upload is complete, the resumed client is killed too, and re-attached.
        deadline = time.monotonic() + 300
        while r.call("HGET", "fp:job:%s" % jid, "upload") != "done":
            self.assertLess(time.monotonic(), deadline, "upload not done\n" + self.c.logs())
            time.sleep(0.05)
        self.wait_done(jid, N * 9 // 10)
        p.kill(signal.SIGKILL)
        p.wait(10)
        self.assertGreater(os.path.getsize(res), 0, "the client had begun its results file")
        s = self.c.submit("--attach", jid, "--results", res, timeout=300)
        peak = sampler.done()
        self.assertEqual(s.rc, 0, "%r\n%s" % (s, self.c.logs()))
        self.assertEqual(s.summary.get("total"), str(N), s)
        self.assertEqual(s.summary.get("ok"), str(N), s)
        self.check_rows(res, urls, flaky)
        with open(res, "rb") as f:
            self.assertEqual(f.read(), self.c.results_bytes(jid))
        bound = base + WINDOW * PER_TASK + UPLOAD * PER_LINE + FIXED
        sys.stderr.write("\n  %d URLs: Redis peak %.2f MB over a %.2f MB base (%d samples),"
                         " bound %.2f MB\n" % (N, peak / 1e6, base / 1e6, sampler.samples,
                                               bound / 1e6))
        self.assertGreater(sampler.samples, 20)
        self.assertLessEqual(peak, bound, "Redis used more than the window allows")
        self.assertEqual(sorted(os.listdir(os.path.join(self.c.results, jid))),
                         ["part-%06d.tsv" % i for i in range(N // self.part)],
                         "only the part files are left")
        self.assert_window_gone(jid)

    def test_master_side_input_equals_upload_and_relay(self):
        self.master()
        self.c.start_worker(concurrency=32)
        n = 3000
        urls = self.urls(n)
        # The first batch begins with an empty line. The master once read such a batch with
        # memcpy from a NULL buffer: UBSan stopped it, and the first submit waited 300 s
        # for a job nobody fed (the invalid lines below start some batches empty too, as
        # the queue's room happens to cut them).
        lines = [""]
        for i, u in enumerate(urls):
            lines.append(u)
            if i % 500 == 3:
                lines += ["# a comment", "", "not a url", "ftp://127.0.0.1/x.jpg",
                          "http://x/" + "a" * 9000, u + "\r"]
        data = "\n".join(lines).encode() + b"\n" + urls[0].encode()   # no last '\n'
        with open(os.path.join(self.jobs, "list.txt"), "wb") as f:
            f.write(data)
        up = self.c.path("upload.txt")
        with open(up, "wb") as f:
            f.write(data)
        got = []
        for args in (["--input", "list.txt"], [up], ["--results-dir", self.c.path("nowhere"), up]):
            res = self.c.path("r%d.jsonl" % len(got))
            s = self.c.submit("--results", res, "--format", "jsonl", *args, timeout=150)
            self.assertEqual(s.rc, 1, "invalid lines count as failed: %r" % s)
            rows = fp.read_jsonl(res)
            self.assertEqual(len(rows), n + 1 + 4 * len(range(3, n, 500)), args)
            got.append([{k: v for k, v in row.items() if k not in TIMING} for row in rows])
        self.assertEqual(got[0], got[1], "master-side input file vs uploaded")
        self.assertEqual(got[1], got[2], "results folder vs relayed through Redis")
        r = self.c.redis()
        self.assertEqual(r.call("SMEMBERS", "fp:relay"), [], "the relay ended")
        # A name that leaves the jobs folder is refused, and said so.
        s = self.c.submit("--wait", "--input", "../upload.txt", timeout=60)
        self.assertEqual(s.rc, 1, s)
        self.assertIn("outside the jobs folder", s.stderr)
        self.assertEqual(s.summary.get("total"), "0", s)


if __name__ == "__main__":
    fp.main()
