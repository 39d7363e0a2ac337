"""Reliability of the worker on its own: retries, timeouts, graceful stop, per-host cap.

Part of the "nothing lost" issue. Each test starts a private redis-server, tests/origin.py,
fetchpool-master and workers (fp_harness.Cluster), provokes one kind of trouble and checks
the exact outcome: every URL's final status and attempt count, the origin's request counts,
how long things took, and that no task is left in fp:tasks, fp:retry or fp:proc:*.
Crashes (kill -9, a task that crashes its worker) and Redis restarts are in
test_recovery.py, which reuses the helpers here.
Run alone: /usr/bin/python3 tests/integration/test_reliability.py --bin build/bin
"""

import collections
import os
import re
import signal
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fp_harness as fp  # noqa: E402

FILE_RE = re.compile(r"^([0-9a-f]{2})/([0-9a-f]{64})\.[a-z]+$")


def stored_files(out):
    """Every file under out except the worker's temp dir, as relative paths."""
    found = []
    for root, dirs, files in os.walk(out):
        dirs[:] = [d for d in dirs if d != ".tmp"]
        found += [os.path.relpath(os.path.join(root, f), out) for f in files]
    return sorted(found)


def parse_t1(rec):
    """A T1 task record into a dict: job, idx, line, attempt, max_attempts, flags, url."""
    f = rec.split("\t")
    if len(f) != 8 or f[0] != "T1":
        raise AssertionError("malformed task record %r" % rec[:200])
    return {"job": int(f[1]), "idx": int(f[2]), "line": int(f[3]), "attempt": int(f[4]),
            "max_attempts": int(f[5]), "flags": int(f[6]), "url": f[7]}


class ReliabilityBase(unittest.TestCase):
    """A fresh cluster per test, plus the assertions the reliability tests share."""

    redis_aof = False

    def setUp(self):
        self.c = fp.Cluster(self.id().rsplit(".", 1)[-1])
        self.addCleanup(self.c.close)
        self.c.start_redis(aof=self.redis_aof)
        self._rc = None
        self.addCleanup(self._close_rc)

    def _close_rc(self):
        if self._rc is not None:
            self._rc.close()
            self._rc = None

    def check(self, cond, msg):
        """assertTrue that adds the processes' log tails to the failure message."""
        if not cond:
            self.fail("%s\n%s" % (msg, self.c.logs()))

    def say(self, fmt, *args):
        sys.stderr.write("    [%s] %s\n" % (self.id().rsplit(".", 1)[-1], fmt % args))
        sys.stderr.flush()

    # Redis access that survives a Redis restart (test_recovery restarts it).
    def rcall(self, *args):
        for _ in range(100):
            try:
                if self._rc is None:
                    self._rc = self.c.redis_srv.client()
                return self._rc.call(*args)
            except (OSError, ConnectionError, fp.RespError) as e:
                if isinstance(e, fp.RespError) and not str(e).startswith("LOADING"):
                    raise
                if self._rc is not None:
                    try:
                        self._rc.close()
                    except OSError:
                        pass
                self._rc = None
                time.sleep(0.1)
        raise AssertionError("redis unreachable\n" + self.c.logs())

    def submit_id(self, *args):
        """scripts/submit without --wait: returns the job id."""
        s = self.c.submit(*args, timeout=60)
        self.check(s.rc == 0 and s.job, "submit failed: %r" % s)
        return s.job

    def wait_job(self, jid, timeout):
        """Waits until the master marks the job done; returns the seconds it took."""
        t0 = time.monotonic()
        while True:
            if self.rcall("HGET", "fp:job:%s" % jid, "state") == "done":
                return time.monotonic() - t0
            if time.monotonic() - t0 > timeout:
                meta = self.rcall("HGETALL", "fp:job:%s" % jid)
                self.fail("job %s not done after %.0fs: %s\n%s" % (
                    jid, timeout, meta, self.c.logs()))
            time.sleep(0.05)

    def job_rows(self, jid):
        """Every result of the job from the master's results files, in input order."""
        total = int(self.rcall("HGET", "fp:job:%s" % jid, "total") or 0)
        rows = self.c.job_rows(jid)
        self.assertEqual(len(rows), total, "results vs tasks of job %s" % jid)
        return rows

    def wait_submit(self, proc, timeout):
        """Waits for a submit_async process; returns its exit code (fails on timeout)."""
        try:
            return proc.wait(timeout)
        except Exception:
            self.fail("submit did not finish in %.0fs\n%s" % (timeout, self.c.logs()))

    def assert_rows(self, rows, urls, status, attempts=None, http_code=None, first_line=1):
        """One row per URL in input order, each with this status (and attempts, code)."""
        self.assertEqual(len(rows), len(urls))
        self.assertEqual([r["line"] for r in rows],
                         [str(first_line + i) for i in range(len(urls))])
        for row, url in zip(rows, urls):
            self.assertEqual(row["url"], url, row)
            self.assertEqual(row["status"], status, row)
            if attempts is not None:
                self.assertEqual(row["attempts"], str(attempts), row)
            if http_code is not None:
                self.assertEqual(row["http_code"], str(http_code), row)

    def assert_files(self, rows):
        """The ok rows' files exist with the right bytes, and nothing else was published
        outside <out>/.tmp (a temp file never lands next to the real ones)."""
        want = set()
        for row in rows:
            if row["status"] != "ok":
                self.assertEqual(row["path"], "", row)
                continue
            m = FILE_RE.match(row["path"])
            self.assertTrue(m and m.group(2) == row["sha256"] and
                            m.group(1) == row["sha256"][:2], row)
            self.assertEqual(fp.sha256_file(os.path.join(self.c.out, row["path"])),
                             row["sha256"], row)
            want.add(row["path"])
        self.assertEqual(set(stored_files(self.c.out)), want, "stray or missing files")

    def wait_drained(self, timeout=15):
        """Waits until fp:tasks, fp:retry and the processing lists are empty: where a task
        may legitimately run twice (Redis lost writes), the job can be complete while
        the second copy is still running."""
        def empty():
            return (self.rcall("LLEN", "fp:tasks") == 0 and
                    self.rcall("ZCARD", "fp:retry") == 0 and
                    not self.c.redis().keys("fp:proc:*"))
        deadline = time.monotonic() + timeout
        while not empty() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assert_queues_drained()

    def assert_queues_drained(self, allow_tasks=False):
        """Nothing waits in fp:tasks, fp:retry or any processing list; no dead letters."""
        if not allow_tasks:
            self.assertEqual(self.rcall("LLEN", "fp:tasks"), 0,
                             "fp:tasks: %s" % self.rcall("LRANGE", "fp:tasks", 0, 5))
        self.assertEqual(self.rcall("ZCARD", "fp:retry"), 0,
                         "fp:retry: %s" % self.rcall("ZRANGE", "fp:retry", 0, 5))
        procs = {}
        for key in self.c.redis().keys("fp:proc:*"):
            n = self.rcall("LLEN", key)
            if n:
                procs[key] = self.rcall("LRANGE", key, 0, 3)
        self.assertEqual(procs, {}, "processing lists not empty")
        self.assertEqual(self.rcall("LLEN", "fp:dead"), 0,
                         "dead letters: %s" % self.rcall("LRANGE", "fp:dead", 0, 5))

    def worker_log(self, w):
        with open(w.log_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def wait_registered(self, wid, timeout=10):
        """Waits until worker wid is in fp:workers (the harness's helper also insists that
        every worker it ever started is alive)."""
        self.wait_for("worker %s to register" % wid,
                      lambda: self.rcall("SISMEMBER", "fp:workers", wid) == 1, timeout)

    def wait_for(self, what, cond, timeout, step=0.02):
        deadline = time.monotonic() + timeout
        while not cond():
            if time.monotonic() > deadline:
                self.fail("timed out after %.0fs waiting for %s\n%s" % (
                    timeout, what, self.c.logs()))
            time.sleep(step)


class ReliabilityTest(ReliabilityBase):

    # -- transient HTTP failures are retried through fp:retry --------------------------

    def test_retry_after_503(self):
        """503 + Retry-After twice, then the image: ok on attempt 3, Retry-After honoured;
        with --attempts 2 the URL ends as http_503 after 2 tries. The other transient codes
        are retried once, a 404 never."""
        org = self.c.start_origin()
        self.c.start_master()
        self.c.start_worker(None, "--concurrency", "32", "--host-conns", "32")
        self.c.wait_workers_registered(1)

        n = 20
        flaky = [org.url("/flaky/%d.jpg?fail=2&code=503&retry_after=1&size=1024" % i)
                 for i in range(n)]
        limited = [org.url("/flaky/%d.jpg?fail=2&code=503&retry_after=1&size=1024&j=b" % i)
                   for i in range(n)]
        # Retry-After 4 against the worker's own backoff (about 1 s for a first retry).
        slow = [org.url("/flaky/%d.jpg?fail=1&code=503&retry_after=4&size=1024" % i)
                for i in range(3)]
        codes = [408, 429, 500, 502, 503, 504, 404]
        mixed = [org.url("/flaky/%d.jpg?fail=1&code=%d&size=1024" % (i, c))
                 for i, c in enumerate(codes)]
        jobs = {}
        t0 = time.monotonic()
        for name, urls, extra in (("flaky", flaky, []), ("limited", limited, ["--attempts", "2"]),
                                  ("slow", slow, []), ("mixed", mixed, [])):
            res = self.c.path(name + ".tsv")
            p = self.c.submit_async("--wait", "--results", res, *extra,
                                    self.c.write_input(urls, name + ".txt"))
            jobs[name] = (p, res, urls)
        took = {}
        for name, (p, res, urls) in jobs.items():
            rc = self.wait_submit(p, 60)
            took[name] = time.monotonic() - t0
            self.check(rc == (0 if name in ("flaky", "slow") else 1),
                       "submit of %s exited %s" % (name, rc))
        self.say("job wall times: %s", ", ".join("%s %.1fs" % kv for kv in took.items()))

        rows = fp.read_tsv(jobs["flaky"][1])
        self.assert_rows(rows, flaky, "ok", attempts=3, http_code=200)
        for i, row in enumerate(rows):
            self.assertEqual(row["sha256"], fp.origin_mod.image_sha256(i, "jpg", 1024), row)
        # Two waits of Retry-After: 1 s each.
        self.assertGreaterEqual(took["flaky"], 2.0, "retries came sooner than Retry-After")
        self.assertLess(took["flaky"], 15.0)

        self.assert_rows(fp.read_tsv(jobs["limited"][1]), limited, "http_503", attempts=2,
                         http_code=503)

        self.assert_rows(fp.read_tsv(jobs["slow"][1]), slow, "ok", attempts=2)
        self.assertGreaterEqual(took["slow"], 4.0, "Retry-After: 4 not honoured")
        self.assertLess(took["slow"], 15.0)

        mrows = fp.read_tsv(jobs["mixed"][1])
        self.assertEqual(len(mrows), len(codes))
        for row, code in zip(mrows, codes):
            if code == 404:
                self.assertEqual((row["status"], row["attempts"]), ("http_404", "1"), row)
            else:
                self.assertEqual((row["status"], row["attempts"]), ("ok", "2"),
                                 "HTTP %d must be retried: %s" % (code, row))

        # The origin saw exactly the tries the results claim: nothing extra, nothing lost.
        # (Jobs share paths: the flaky counter keys on the whole URL, stats on the path.)
        want = collections.Counter()
        for i in range(n):
            want["/flaky/%d.jpg" % i] += 3 + 2           # flaky + limited
        for i in range(len(slow)):
            want["/flaky/%d.jpg" % i] += 2
        for i, code in enumerate(codes):
            want["/flaky/%d.jpg" % i] += 1 if code == 404 else 2
        got = {p: c for p, c in org.stats()["paths"].items() if p.startswith("/flaky/")}
        self.assertEqual(got, dict(want))
        self.assert_files(rows + fp.read_tsv(jobs["slow"][1]) +
                          [r for r in mrows if r["status"] == "ok"] +
                          fp.read_tsv(jobs["limited"][1]))
        self.assert_queues_drained()
        self.c.check_alive()

    def test_retry_after_capped(self):
        """Retry-After: 3600 waits 60 s at most: the task sits in fp:retry due in 60 s."""
        org = self.c.start_origin()
        self.c.start_master()
        self.c.start_worker("w1")
        self.c.wait_workers_registered(1)
        self.submit_id(self.c.write_input([org.url("/status/503?retry_after=3600")]))
        self.wait_for("the retry", lambda: self.rcall("ZCARD", "fp:retry") == 1, 10)
        task, due = self.rcall("ZRANGE", "fp:retry", 0, -1, "WITHSCORES")
        sec, usec = self.rcall("TIME")
        wait_ms = int(due) - (int(sec) * 1000 + int(usec) // 1000)
        self.assertTrue(58000 <= wait_ms <= 60000, "retry due in %d ms" % wait_ms)
        self.assertEqual(parse_t1(task)["attempt"], 2)
        self.assertEqual(self.rcall("LLEN", "fp:proc:w1"), 0)

    # -- timeouts fire -----------------------------------------------------------------

    def test_timeouts(self):
        """A stalled answer, a stalled body and a full accept queue end as `timeout` after
        --timeout / --connect-timeout, not after libcurl's defaults; a trickle below
        --low-speed for --low-speed-time ends as `timeout` too, a healthy slow one does not."""
        org = self.c.start_origin()
        # A listener that never accepts, its accept queue filled: the kernel drops further
        # SYNs, so a connect hangs until the connect timeout (loopback only, no firewall).
        lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        lsock.bind(("127.0.0.1", 0))
        lsock.listen(0)
        self.addCleanup(lsock.close)
        port = lsock.getsockname()[1]
        fillers = []
        for _ in range(3):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            try:
                s.connect(("127.0.0.1", port))
            except BlockingIOError:
                pass
            fillers.append(s)
            self.addCleanup(s.close)
        time.sleep(0.1)

        self.c.start_master()
        # One host name per stalled URL: what a stall does to other URLs of its host is
        # test_stall_does_not_block_its_host.
        w1 = self.c.start_worker("w1", "--timeout", "2", "--connect-timeout", "1",
                                 "--resolve", "s1.test:%d:127.0.0.1" % org.port,
                                 "--resolve", "s2.test:%d:127.0.0.1" % org.port)
        self.c.wait_workers_registered(1)
        urls = ["http://s1.test:%d/fault/stall" % org.port,
                "http://s2.test:%d/fault/stall-body?size=100000" % org.port,
                "http://127.0.0.1:%d/never-accepted.jpg" % port]
        res = self.c.path("t1.tsv")
        t0 = time.monotonic()
        s = self.c.submit("--wait", "--attempts", "1", "--results", res,
                          self.c.write_input(urls, "t1.txt"), timeout=60)
        took = time.monotonic() - t0
        self.check(s.rc == 1, "submit: %r" % s)
        rows = fp.read_tsv(res)
        self.assert_rows(rows, urls, "timeout", attempts=1)
        for row, lo, hi in zip(rows, (1900, 1900, 900), (4000, 4000, 3000)):
            self.assertTrue(lo <= float(row["total_ms"]) <= hi,
                            "timeout fired after %s ms, want %d..%d: %s" % (
                                row["total_ms"], lo, hi, row))
        self.assertLess(took, 10.0, "job with 2 s timeouts took %.1fs" % took)
        self.say("stall/stall-body/connect timeouts: %s ms (job %.1fs)",
                 "/".join(r["total_ms"] for r in rows), took)
        self.assertEqual(w1.stop(), 0, "worker exit status")

        self.c.start_worker("w2", "--timeout", "30", "--low-speed", "1000",
                            "--low-speed-time", "2")
        self.wait_registered("w2")
        urls = [org.url("/fault/trickle?bps=200&size=8192"),     # 41 s at 200 B/s
                org.url("/fault/trickle?bps=4000&size=4096")]    # 1 s at 4000 B/s: fine
        res = self.c.path("t2.tsv")
        s = self.c.submit("--wait", "--attempts", "1", "--results", res,
                          self.c.write_input(urls, "t2.txt"), timeout=60)
        self.check(s.rc == 1, "submit: %r" % s)
        rows = fp.read_tsv(res)
        self.assertEqual([r["status"] for r in rows], ["timeout", "ok"], rows)
        self.assertTrue(1900 <= float(rows[0]["total_ms"]) <= 6000,
                        "low-speed abort after %s ms" % rows[0]["total_ms"])
        self.assertEqual(rows[1]["sha256"], fp.origin_mod.image_sha256(0, "jpg", 4096))
        self.say("low-speed abort after %s ms", rows[0]["total_ms"])
        self.assert_queues_drained()

    def test_stall_does_not_block_its_host(self):
        """URLs of a host whose first request stalls are fetched at once, in parallel, not
        held back until the stalled one times out (and then failed as `timeout`)."""
        org = self.c.start_origin()
        self.c.start_master()
        self.c.start_worker("w1", "--timeout", "4", "--concurrency", "8")
        self.c.wait_workers_registered(1)
        stall = self.submit_id("--attempts", "1",
                               self.c.write_input([org.url("/fault/stall")], "stall.txt"))
        self.wait_for("the stalled request", lambda: org.stats()["total"] >= 1, 10)
        urls = [org.url("/img/%d.jpg?size=1024&delay=500" % i) for i in range(4)]
        res = self.c.path("r.tsv")
        t0 = time.monotonic()
        s = self.c.submit("--wait", "--attempts", "1", "--results", res,
                          self.c.write_input(urls), timeout=60)
        took = time.monotonic() - t0
        rows = fp.read_tsv(res)
        self.say("images behind a stall: %s (job %.1fs)",
                 ", ".join("%s %s ms" % (r["status"], r["total_ms"]) for r in rows), took)
        self.check(s.rc == 0, "images failed: %s" % [(r["status"], r["error"]) for r in rows])
        self.assert_rows(rows, urls, "ok", attempts=1)
        for row in rows:
            self.assertLess(float(row["total_ms"]), 2000, row)
        self.assertLess(took, 3.0)
        self.wait_job(stall, 10)
        self.assertEqual(self.job_rows(stall)[0]["status"], "timeout")
        self.assert_queues_drained()

    # -- per-host cap ------------------------------------------------------------------

    def test_host_conns_cap(self):
        """--host-conns 2 against a slow origin reached under two host names: at most two
        requests per host at once (exactly two, so the cap is not stricter either), four
        in all."""
        org = self.c.start_origin(delay_ms=300)
        self.c.start_master()
        self.c.start_worker("w1", "--concurrency", "16", "--host-conns", "2",
                            "--resolve", "a.test:%d:127.0.0.1" % org.port,
                            "--resolve", "b.test:%d:127.0.0.1" % org.port)
        self.c.wait_workers_registered(1)
        urls = []
        for i in range(10):
            urls.append("http://a.test:%d/img/%d.jpg?size=1024" % (org.port, i))
            urls.append("http://b.test:%d/img/%d.jpg?size=1024" % (org.port, 100 + i))
        res = self.c.path("r.tsv")
        t0 = time.monotonic()
        s = self.c.submit("--wait", "--results", res, self.c.write_input(urls), timeout=60)
        took = time.monotonic() - t0
        self.check(s.rc == 0, "submit: %r" % s)
        self.assert_rows(fp.read_tsv(res), urls, "ok", attempts=1)
        st = org.stats()
        self.say("origin peaks: %s total %s; job %.1fs", st["max_concurrent_by_host"],
                 st["max_concurrent"], took)
        self.assertEqual(st["max_concurrent_by_host"],
                         {"a.test:%d" % org.port: 2, "b.test:%d" % org.port: 2})
        self.assertEqual(st["max_concurrent"], 4)
        # 10 URLs per host, 2 at a time, 0.3 s each.
        self.assertGreaterEqual(took, 1.5)
        self.assert_queues_drained()
        self.c.check_alive()

    # -- pooled connections ------------------------------------------------------------

    def test_pooled_connections_closed_by_origin(self):
        """Connections idling in the worker's pool are closed by the origin (it restarts
        on the same port): the worker notices without spinning, and the next job on new
        connections is fetched in full."""
        org = self.c.start_origin()
        port = org.port
        self.c.start_master()
        w = self.c.start_worker("w1", "--concurrency", "8", "--host-conns", "8")
        self.c.wait_workers_registered(1)
        for job in range(2):
            urls = ["http://127.0.0.1:%d/img/%d.jpg?size=2048" % (port, job * 100 + i)
                    for i in range(40)]
            res = self.c.path("r%d.tsv" % job)
            s = self.c.submit("--wait", "--results", res,
                              self.c.write_input(urls, "in%d.txt" % job), timeout=60)
            self.check(s.rc == 0, "submit: %r" % s)
            self.assert_rows(fp.read_tsv(res), urls, "ok", attempts=1)
            if job == 0:
                org.stop()
                cpu0 = fp.proc_cpu(w.popen.pid)
                time.sleep(1.0)
                idle_cpu = fp.proc_cpu(w.popen.pid) - cpu0
                org = self.c.start_origin(port=port)
        self.say("worker CPU in the idle second after the origin closed 8 pooled "
                 "connections: %.2f s", idle_cpu)
        # A socket left watched after its peer closed would spin at a full core.
        self.assertLess(idle_cpu, 0.5)
        self.assert_queues_drained()
        self.c.check_alive()

    # -- SIGTERM: drain, hand back, exit 0 ---------------------------------------------

    def test_sigterm_drains(self):
        """SIGTERM with transfers in flight (2 s each, --grace 5): they finish, the tasks
        not started go back to fp:tasks at once, the worker exits 0 within the grace; a
        worker started later completes the job. Nothing lost, no attempt charged."""
        org = self.c.start_origin()
        self.c.start_master()
        w1 = self.c.start_worker("w1", "--concurrency", "8", "--host-conns", "8",
                                 "--grace", "5")
        self.c.wait_workers_registered(1)
        urls = [org.url("/img/%d.jpg?size=2048&delay=2000" % i) for i in range(20)]
        jid = self.submit_id(self.c.write_input(urls))
        self.wait_for("requests at the origin", lambda: org.stats()["total"] >= 1, 10)
        time.sleep(0.5)
        t0 = time.monotonic()
        w1.kill(signal.SIGTERM)
        rc = w1.wait(15)
        took = time.monotonic() - t0
        log = self.worker_log(w1)
        m = re.search(r"draining \((\d+) transfers in flight", log)
        self.check(m is not None, "no drain line in the log")
        inflight = int(m.group(1))
        done = int(self.rcall("HGET", "fp:job:%s" % jid, "done") or 0)
        self.say("%d transfers in flight at SIGTERM, %d results by w1; exited %s after %.2fs",
                 inflight, done, rc, took)
        self.check(rc == 0, "exit status %s" % rc)
        self.assertLess(took, 5 + 3, "drain took longer than the grace")
        self.assertGreaterEqual(took, 1.0, "exited before its transfers could finish")
        self.assertGreaterEqual(inflight, 1)
        self.assertNotIn("grace period over", log)
        # Every transfer in flight finished; the rest went back to fp:tasks at once and
        # the worker deregistered: no waiting for a reaper, no attempt charged.
        self.assertEqual(self.rcall("EXISTS", "fp:proc:w1"), 0)
        self.assertEqual(self.rcall("EXISTS", "fp:worker:w1"), 0)
        self.assertEqual(self.rcall("SISMEMBER", "fp:workers", "w1"), 0)
        queued = [parse_t1(t) for t in self.rcall("LRANGE", "fp:tasks", 0, -1)]
        self.assertEqual(len(queued), 20 - done, "tasks not done must be back in fp:tasks")
        self.assertEqual([t["attempt"] for t in queued], [1] * len(queued))
        handed = re.search(r"handed (\d+) unfinished tasks back", log)
        # Tasks still in the master's feed are not the worker's: count what it held.
        self.assertTrue(handed is None or int(handed.group(1)) <= len(queued), log)

        self.c.start_worker("w2", "--concurrency", "16", "--host-conns", "16")
        self.wait_job(jid, 30)
        rows = self.job_rows(jid)
        self.assert_rows(rows, urls, "ok", attempts=1)
        by = {w: sum(r["worker"] == w for r in rows) for w in ("w1", "w2")}
        self.assertEqual(by, {"w1": done, "w2": 20 - done})
        self.assert_files(rows)
        self.assert_queues_drained()

    def test_sigterm_grace_over(self):
        """SIGTERM with 10 s transfers and --grace 1: after 1 s they are aborted and every
        task the worker held goes back to fp:tasks unchanged; exit 0. Another worker then
        completes them."""
        org = self.c.start_origin()
        self.c.start_master()
        w1 = self.c.start_worker("w1", "--concurrency", "4", "--host-conns", "4",
                                 "--grace", "1")
        self.c.wait_workers_registered(1)
        urls = [org.url("/img/%d.jpg?size=2048&delay=10000" % i) for i in range(6)]
        jid = self.submit_id(self.c.write_input(urls))
        self.wait_for("a request at the origin", lambda: org.stats()["total"] >= 1, 10)
        time.sleep(0.5)
        held = self.rcall("LLEN", "fp:proc:w1")
        t0 = time.monotonic()
        w1.kill(signal.SIGTERM)
        rc = w1.wait(15)
        took = time.monotonic() - t0
        log = self.worker_log(w1)
        self.say("worker held %d tasks; exited %s after %.2fs", held, rc, took)
        self.check(rc == 0, "exit status %s" % rc)
        self.assertTrue(0.9 <= took < 1 + 3, "exit after %.2fs with --grace 1" % took)
        m = re.search(r"draining \((\d+) transfers in flight", log)
        self.check(m is not None and int(m.group(1)) >= 1, "no drain line in the log")
        self.assertIn("grace period over with %s transfers in flight: handing them back" %
                      m.group(1), log)
        self.assertIn("handed %d unfinished tasks back" % held, log)
        self.assertEqual(self.rcall("HGET", "fp:job:%s" % jid, "done") or "0", "0")
        queued = [parse_t1(t) for t in self.rcall("LRANGE", "fp:tasks", 0, -1)]
        self.assertEqual(sorted(t["idx"] for t in queued), list(range(6)))
        self.assertEqual([t["attempt"] for t in queued], [1] * 6, "hand-back charged a try")
        self.assertEqual(self.rcall("EXISTS", "fp:proc:w1"), 0)
        self.assertEqual(self.c.temp_leftovers(), [])

        self.c.start_worker("w2", "--concurrency", "8", "--host-conns", "8")
        self.wait_job(jid, 30)
        rows = self.job_rows(jid)
        self.assert_rows(rows, urls, "ok", attempts=1)
        self.assertEqual({r["worker"] for r in rows}, {"w2"})
        self.assert_files(rows)
        self.assert_queues_drained()

    def test_second_sigterm_hands_back_at_once(self):
        """A second SIGTERM during a long grace hands everything back at once, exit 0."""
        org = self.c.start_origin()
        self.c.start_master()
        w1 = self.c.start_worker("w1", "--concurrency", "2", "--host-conns", "2",
                                 "--grace", "60")
        self.c.wait_workers_registered(1)
        urls = [org.url("/img/%d.jpg?delay=10000" % i) for i in range(2)]
        self.submit_id(self.c.write_input(urls))
        self.wait_for("a request at the origin", lambda: org.stats()["total"] >= 1, 10)
        time.sleep(0.3)
        t0 = time.monotonic()
        w1.kill(signal.SIGTERM)
        time.sleep(0.3)
        self.check(w1.alive(), "worker exited on the first SIGTERM with transfers in flight")
        w1.kill(signal.SIGTERM)
        rc = w1.wait(15)
        took = time.monotonic() - t0
        self.check(rc == 0, "exit status %s" % rc)
        self.assertLess(took, 3.0)
        self.assertRegex(self.worker_log(w1), r"second signal: handing back [12] transfers now")
        queued = [parse_t1(t) for t in self.rcall("LRANGE", "fp:tasks", 0, -1)]
        self.assertEqual(sorted(t["idx"] for t in queued), [0, 1])
        self.assertEqual([t["attempt"] for t in queued], [1, 1])
        self.assertEqual(self.rcall("EXISTS", "fp:proc:w1"), 0)

    # -- Redis down at start -----------------------------------------------------------

    def test_redis_down_at_start(self):
        """No Redis at the given address: the worker exits non-zero at once, saying why."""
        port = self.c.closed_port()
        argv = [self.c.exe("fetchpool-worker"), "--redis", "redis://127.0.0.1:%d" % port,
                "--output", self.c.out, "--id", "lonely", "--allow-private"]
        p = fp.Proc("worker-lonely", argv, self.c.dir, env=self.c.env())
        self.c.procs.append(p)
        t0 = time.monotonic()
        rc = p.wait(15)
        took = time.monotonic() - t0
        log = p.tail()
        self.assertNotEqual(rc, 0, log)
        self.assertLess(took, 5.0)
        self.assertIn("cannot reach Redis at 127.0.0.1:%d" % port, log)
        self.assertIn("refused", log.lower())


    # -- Redis that may evict ----------------------------------------------------------

    def test_eviction_policy_refused_unless_allowed(self):
        """With a maxmemory-policy that evicts, master and worker refuse to start (exit 2,
        saying why); --allow-eviction (or FETCHPOOL_ALLOW_EVICTION=1) runs with a warning,
        and a policy set back to noeviction runs quietly."""
        r = self.c.redis()
        r.call("CONFIG", "SET", "maxmemory-policy", "allkeys-lru")
        runs = {}
        for name, prog, extra, env_allow in (
                ("master-refused", "fetchpool-master", [], False),
                ("worker-refused", "fetchpool-worker", ["--id", "evict1"], False),
                ("worker-env-allowed", "fetchpool-worker", ["--id", "evict2"], True),
                ("master-allowed", "fetchpool-master", ["--allow-eviction"], False)):
            argv = [self.c.exe(prog), "--redis", self.c.redis_srv.url] + extra
            if prog == "fetchpool-worker":
                argv += ["--output", self.c.out, "--allow-private"]
            env = self.c.env()
            if env_allow:
                env["FETCHPOOL_ALLOW_EVICTION"] = "1"
            p = fp.Proc(name, argv, self.c.dir, env=env)
            self.c.procs.append(p)
            runs[name] = p
        for name in ("master-refused", "worker-refused"):
            rc = runs[name].wait(15)
            log = runs[name].tail()
            self.assertEqual(rc, 2, log)
            self.assertIn("maxmemory-policy allkeys-lru", log)
            self.assertIn("--allow-eviction", log)
        time.sleep(1.5)
        for name in ("worker-env-allowed", "master-allowed"):
            p = runs[name]
            self.assertTrue(p.alive(), p.tail())
            self.assertIn("Running anyway (--allow-eviction)", p.tail())
            self.assertEqual(p.stop(), 0)
        r.call("CONFIG", "SET", "maxmemory-policy", "noeviction")
        p = fp.Proc("worker-quiet", [self.c.exe("fetchpool-worker"), "--redis",
                                     self.c.redis_srv.url, "--output", self.c.out, "--id",
                                     "evict3", "--allow-private"], self.c.dir, env=self.c.env())
        self.c.procs.append(p)
        time.sleep(1.0)
        self.assertTrue(p.alive(), p.tail())
        self.assertNotIn("maxmemory-policy", p.tail())
        self.assertEqual(p.stop(), 0)


if __name__ == "__main__":
    fp.main()
