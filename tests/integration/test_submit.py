"""Submitting input: comments, blank lines, invalid lines, stdin, CRLF, JSONL, exit codes.

Checks what scripts/submit and the master make of each kind of input line: comments and
blank lines are skipped, anything that is not an http(s) URL becomes an `invalid_input`
result carrying its line number, and the job still completes.
Run alone: /usr/bin/python3 tests/integration/test_submit.py --bin build/bin
"""

import os
import re
import signal
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fp_harness as fp  # noqa: E402


class SubmitInputTest(unittest.TestCase):
    """What submit and the master do with the lines of an input file."""

    def setUp(self):
        self.c = fp.Cluster(self.id().rsplit(".", 1)[-1])
        self.addCleanup(self.c.close)
        self.c.start_redis()
        self.files = fp.make_jpegs(self.c.path("www"), 5)
        self.ng = self.c.start_nginx(self.c.path("www"))
        self.c.start_master()
        self.c.start_worker()

    def test_comments_blank_and_invalid_lines(self):
        u = [self.ng.url(name) for name, _ in self.files]
        text = [
            "# a comment",            # 1
            u[0],                     # 2
            "",                       # 3
            "   ",                    # 4 (whitespace only: blank)
            "not a url",              # 5
            u[1],                     # 6
            "#" + u[2],               # 7 (commented out URL)
            "ftp://127.0.0.1/x.jpg",  # 8 (not http/https)
            u[3],                     # 9
        ]
        src = self.c.write_input(text)
        res = self.c.path("results.tsv")
        s = self.c.submit("--wait", "--results", res, src, timeout=60)
        self.assertEqual(s.rc, 1, "invalid input counts as failed: %r" % s)
        rows = fp.read_tsv(res)
        got = [(x["line"], x["status"]) for x in rows]
        self.assertEqual(got, [("2", "ok"), ("5", "invalid_input"), ("6", "ok"),
                               ("8", "invalid_input"), ("9", "ok")], rows)
        self.assertEqual([x["url"] for x in rows if x["status"] == "ok"], [u[0], u[1], u[3]])
        self.assertEqual(s.summary.get("total"), "5", s)
        self.assertEqual(s.summary.get("ok"), "3", s)
        self.assertEqual(s.summary.get("fail:invalid_input"), "2", s)

    def test_stdin_crlf_and_jsonl(self):
        u = [self.ng.url(name) for name, _ in self.files]
        data = "\r\n".join(["# windows line ends", u[0], "", u[1], "bogus"]) + "\r\n"
        res = self.c.path("results.jsonl")
        s = self.c.submit("--wait", "--format", "jsonl", "--results", res, "-",
                          stdin=data, timeout=60)
        self.assertEqual(s.rc, 1, s)
        rows = fp.read_jsonl(res)
        self.assertEqual([(x["line"], x["status"]) for x in rows],
                         [(2, "ok"), (4, "ok"), (5, "invalid_input")], rows)
        self.assertEqual(rows[0]["url"], u[0])
        self.assertEqual(set(rows[0]), set(fp.TSV_COLUMNS))
        self.assertEqual(rows[1]["sha256"], self.files[1][1])

    def test_all_good_exits_zero_and_no_wait_prints_id(self):
        u = [self.ng.url(name) for name, _ in self.files]
        src = self.c.write_input(u)
        s = self.c.submit(src)
        self.assertEqual(s.rc, 0, s)
        self.assertTrue(re.fullmatch(r"\d+", s.job or ""), s)
        s2 = self.c.submit("--wait", src, timeout=60)
        self.assertEqual(s2.rc, 0, s2)
        self.assertEqual(int(s2.job), int(s.job) + 1)
        self.assertEqual(s2.summary.get("ok"), "5", s2)

    def test_unreachable_redis_exits_two(self):
        src = self.c.write_input([self.ng.url(self.files[0][0])])
        port = self.c.closed_port()
        cp = subprocess.run([sys.executable, fp.SUBMIT, "--redis",
                                "redis://127.0.0.1:%d" % port, "--wait", src],
                               capture_output=True, text=True, timeout=30)
        self.assertEqual(cp.returncode, 2, cp)


class SubmitResultsTest(unittest.TestCase):
    """`submit --wait --results` on a large finished job: it survives a Redis restart in
    the middle of reading results relayed through Redis, and its memory does not grow
    with the job.

    The test plays the master's feeding and gathering itself (PROTOCOL.md, "Flow"): it
    takes the job from fp:jobs:new, consumes the input as the client pushes it, writes
    the results files with one row per line, the summary and state=done, so a job of
    100,000 results costs seconds instead of 100,000 downloads. Redis, submit and (for
    the relay) fetchpool-master are the real ones."""

    PART = 50000

    def setUp(self):
        self.c = fp.Cluster(self.id().rsplit(".", 1)[-1])
        self.addCleanup(self.c.close)
        self.srv = self.c.start_redis(aof=True)
        self.r = self.c.redis()
        # AOF written before every reply, so a SIGKILL of Redis loses nothing that was
        # acknowledged (everysec may put the write off while an fsync runs; no fsync is
        # needed for a kill of the process, only for a crash of the machine).
        self.r.call("CONFIG", "SET", "appendfsync", "no")

    def url(self, i):
        return "http://img.invalid/%d.jpg" % i

    def play_master(self, n, timeout=60):
        """Takes the next submitted job, consumes its upload and completes it with n ok
        results in the master's results files."""
        deadline = fp.time.monotonic() + timeout
        jid = None
        while jid is None:
            self.assertLess(fp.time.monotonic(), deadline, "no job submitted")
            jid = self.r.call("LPOP", "fp:jobs:new")
            if jid is None:
                fp.time.sleep(0.02)
        meta, in_key, got = "fp:job:%s" % jid, "fp:job:%s:in" % jid, 0
        while True:
            self.assertLess(fp.time.monotonic(), deadline, "upload not done")
            lines, up = self.r.call("HMGET", meta, "lines", "upload")
            have = self.r.call("LLEN", in_key)
            self.r.call("LTRIM", in_key, have, -1)
            got += have
            if up == "done" and got == int(lines):
                break
            fp.time.sleep(0.005)
        self.assertEqual(got, n)
        d = os.path.join(self.c.results, jid)
        os.makedirs(d)
        for p in range(0, -(-n // self.PART)):
            # As the master does: a part appears complete (rename), never half written.
            name = os.path.join(d, "part-%06d.tsv" % p)
            with open(name + ".tmp", "w") as f:
                if p == 0:
                    f.write("\t".join(fp.TSV_COLUMNS) + "\n")
                for i in range(p * self.PART, min(n, (p + 1) * self.PART)):
                    f.write("\t".join(str(x) for x in [
                        i + 1, self.url(i), "ok", 200, 4096, "1.000", "0.010", "0.020",
                        "0.030", 1, "w1", "%064x" % i, "ab/%064x.jpg" % i, "image/jpeg",
                        ""]) + "\n")
            os.rename(name + ".tmp", name)
        self.r.call("HSET", "fp:job:%s:summary" % jid, "total", n, "ok", n, "failed", 0)
        self.r.call("HSET", meta, "state", "done", "total", n, "done", n, "sealed", 1,
                    "part_size", self.PART)
        self.r.call("RPUSH", "fp:job:%s:wake" % jid, 1)
        return jid

    def check_rows(self, path, n):
        rows = fp.read_tsv(path)
        self.assertEqual(len(rows), n)
        bad = [x for i, x in enumerate(rows) if x["line"] != str(i + 1) or
               x["status"] != "ok" or x["url"] != self.url(i)]
        self.assertEqual(bad[:3], [], "%d rows wrong" % len(bad))

    def test_results_ride_out_a_redis_restart(self):
        n = 40000
        src = self.c.write_input(self.url(i) for i in range(n))
        res = self.c.path("results.tsv")
        # Where the client cannot see the results folder, the master relays the files.
        sub = self.c.submit_async("--wait", "--results", res, "--results-dir",
                                  self.c.path("elsewhere"), src)
        self.play_master(n)
        self.c.start_master()
        # As soon as submit writes results it is reading them: kill Redis then.
        deadline = fp.time.monotonic() + 60
        while not (os.path.exists(res) and os.path.getsize(res) > 0):
            self.assertLess(fp.time.monotonic(), deadline, "submit wrote no results")
            self.assertTrue(sub.alive(), "submit exited early: %s" % sub.tail())
            fp.time.sleep(0.005)
        # SIGKILL, down for a second (so submit's next read meets a closed port, not a
        # Redis already back), then again on the same port from the AOF.
        self.srv.stop(signal.SIGKILL)
        at_restart = os.path.getsize(res)
        fp.time.sleep(1.0)
        self.srv.start()
        self.assertEqual(sub.wait(120), 0, sub.tail())
        self.assertLess(at_restart, os.path.getsize(res),
                        "submit had written every result before the restart")
        err = sub.tail()
        self.assertIn("Redis connection lost", err)
        self.assertIn("Redis is back", err)
        self.check_rows(res, n)

    def test_push_rides_out_a_redis_restart(self):
        """Redis killed while submit pushes the lines: each line is in the job once, in
        order, and the job is queued once (a retry must not push a batch twice)."""
        n = 100000
        src = self.c.write_input(self.url(i) for i in range(n))
        # No master takes the lines: a window as large as the job lets them all in.
        sub = self.c.submit_async("--window", str(n), src)
        deadline = fp.time.monotonic() + 60
        while not self.r.call("LLEN", "fp:job:1:in"):
            self.assertLess(fp.time.monotonic(), deadline, "submit pushed no line")
            self.assertTrue(sub.alive(), "submit exited early: %s" % sub.tail())
            fp.time.sleep(0.002)
        self.srv.stop(signal.SIGKILL)
        self.r.close()
        fp.time.sleep(1.0)
        self.srv.start()
        self.assertEqual(sub.wait(120), 0, sub.tail())
        self.assertIn("Redis connection lost", sub.tail())
        r = self.c.redis()
        self.assertEqual(r.call("LRANGE", "fp:jobs:new", 0, -1), ["1"])
        self.assertEqual(r.call("HGET", "fp:job:1", "lines"), str(n))
        lines = r.call("LRANGE", "fp:job:1:in", 0, -1)
        self.assertEqual(len(lines), n)
        self.assertTrue(lines == [self.url(i) for i in range(n)], "lines out of order")

    def peak_rss_kb(self, n):
        """submit --wait --results on a job of n results; its peak RSS (VmHWM) in KB."""
        src = self.c.write_input((self.url(i) for i in range(n)), name="urls-%d.txt" % n)
        res = self.c.path("results-%d.tsv" % n)
        sub = self.c.submit_async("--wait", "--quiet", "--results", res, src)
        self.play_master(n)
        peak = 0
        while sub.alive():
            try:
                with open("/proc/%d/status" % sub.pid) as f:
                    for line in f:
                        if line.startswith("VmHWM:"):
                            peak = max(peak, int(line.split()[1]))
            except OSError:
                pass
            fp.time.sleep(0.01)
        self.assertEqual(sub.wait(), 0, sub.tail())
        self.check_rows(res, n)
        return peak

    def test_results_memory_flat(self):
        """Four times the results, the same memory: results are copied in
        bounded chunks (holding every index of the job at once costs about 47 bytes a
        result: 4.2 MB more here). Below about 30,000 results the allocator's high-water
        mark still settles, so the smaller job is not smaller than that."""
        small, big = 30000, 120000
        a, b = self.peak_rss_kb(small), self.peak_rss_kb(big)
        fp.sys.stderr.write("    peak RSS %d KB for %d results, %d KB for %d\n" % (
            a, small, b, big))
        self.assertLess(b - a, 2000, "submit's memory grows with the job")


if __name__ == "__main__":
    fp.main()
