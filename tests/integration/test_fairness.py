"""Fairness between jobs: a small job submitted after a large one is not stuck behind it.

The master feeds the active jobs round robin into a short task queue (PROTOCOL.md, Flow 2),
so a 20-URL job must finish long before a slow 3,000-URL job submitted just before it.
Run alone: /usr/bin/python3 tests/integration/test_fairness.py --bin build/bin
"""

import collections
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fp_harness as fp  # noqa: E402


class FairnessTest(unittest.TestCase):
    def setUp(self):
        self.c = fp.Cluster("fairness")
        self.addCleanup(self.c.close)
        self.c.start_redis()

    def check(self, cond, msg):
        if not cond:
            self.fail("%s\n%s" % (msg, self.c.logs()))

    def start_service(self, workers, *worker_args):
        self.c.start_master()
        for _ in range(workers):
            self.c.start_worker(None, *worker_args)
        self.c.wait_workers_registered(workers)

    def assert_queues_drained(self):
        r = self.c.redis()
        self.assertEqual(r.call("LLEN", "fp:tasks"), 0, "fp:tasks not empty")
        for key in r.keys("fp:proc:*"):
            self.assertEqual(r.call("LLEN", key), 0, "%s not empty" % key)

    def run_two_jobs(self, master_args=(), concurrency=64):
        """Submit a slow 3,000-URL job, then a 20-URL job as soon as the first is queued.
        Returns (small_done_s, big_done_s, msg, max tasks a worker held)."""
        org = self.c.start_origin(delay_ms=200)
        self.c.start_master(*master_args)
        for _ in range(2):
            self.c.start_worker(None, "--concurrency", str(concurrency),
                                "--host-conns", str(concurrency))
        self.c.wait_workers_registered(2)
        big = self.c.write_input([org.url("/img/%d.jpg?size=2048" % i) for i in range(3000)],
                                 "big.txt")
        small_urls = [org.url("/img/%d.png?size=1024" % (100000 + i)) for i in range(20)]
        small = self.c.write_input(small_urls, "small.txt")
        big_res, small_res = self.c.path("big.tsv"), self.c.path("small.tsv")

        r = self.c.redis()
        t0 = time.monotonic()
        big_proc = self.c.submit_async("--wait", "--results", big_res, big)
        # The master has taken the big job once its tasks show up in the queue.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and r.call("LLEN", "fp:tasks") == 0:
            time.sleep(0.01)
        small_proc = self.c.submit_async("--wait", "--results", small_res, small)
        small_done = big_done = None
        held = 0
        while small_done is None or big_done is None:
            self.assertLess(time.monotonic() - t0, 240, "jobs did not finish\n" + self.c.logs())
            for key in r.keys("fp:proc:*"):
                held = max(held, r.call("LLEN", key))
            if small_done is None and small_proc.popen.poll() is not None:
                small_done = time.monotonic() - t0
            if big_done is None and big_proc.popen.poll() is not None:
                big_done = time.monotonic() - t0
            time.sleep(0.05)
        self.check(small_proc.popen.returncode == 0, "small job exit %s" % small_proc.popen.returncode)
        self.check(big_proc.popen.returncode == 0, "big job exit %s" % big_proc.popen.returncode)

        rows = fp.read_tsv(small_res)
        self.assertEqual([x["url"] for x in rows], small_urls)
        self.assertTrue(all(x["status"] == "ok" for x in rows), rows)
        big_rows = fp.read_tsv(big_res)
        self.assertEqual(len(big_rows), 3000)
        self.assertEqual(collections.Counter(x["status"] for x in big_rows), {"ok": 3000})
        self.assertEqual(big_rows[1234]["sha256"],
                         fp.origin_mod.image_sha256(1234, "jpg", 2048))

        # The jobs' own finish times too (Redis clock, no client polling noise).
        small_job = small_proc.popen.stdout.read().decode().split()[0]
        big_job = big_proc.popen.stdout.read().decode().split()[0]
        big_meta = r.hgetall("fp:job:%s" % big_job)
        small_meta = r.hgetall("fp:job:%s" % small_job)
        msg = ("small job done after %.2fs, big job after %.2fs (master %s); most tasks one "
               "worker held: %d\nsmall: %s\nbig: %s" % (
                   small_done, big_done, " ".join(master_args) or "defaults", held,
                   small_meta, big_meta))
        sys.stderr.write("\n" + msg.split("\n")[0] + "\n")
        self.assertLess(int(small_meta["finished_us"]), int(big_meta["finished_us"]), msg)
        self.assert_queues_drained()
        self.c.check_alive()
        return small_done, big_done, msg, held

    def test_round_robin(self):
        """With a short task queue, the small job is fed at once and finishes early: this
        checks the master's round robin itself, whatever the default queue depth."""
        small, big, msg, _ = self.run_two_jobs(("--queue-depth", "200", "--feed-batch", "100"))
        self.assertLess(small, big * 0.5, msg)

    def test_defaults(self):
        """The same with the master's default queue depth and feed batch: what a user
        gets. The small job waits behind whatever is already queued, so this holds only
        if the defaults keep the queue short compared with a 3,000-URL job."""
        small, big, msg, _ = self.run_two_jobs()
        self.assertLess(small, big * 0.5, msg)

    def test_worker_prefetch_bounded(self):
        """A worker takes about concurrency * 1.5 tasks (worker.c top_up), not more: tasks
        held in a processing list are stuck behind that worker's backlog."""
        conc = 64
        _, _, msg, held = self.run_two_jobs(("--queue-depth", "200", "--feed-batch", "100"),
                                            concurrency=conc)
        # 1.5 * conc taken, plus finished tasks whose result is still on its way to Redis
        # (more of those on a loaded machine or under ASan).
        self.assertLessEqual(held, 2 * conc + 32, msg)

    def test_last_tasks_go_to_free_slots(self):
        """A worker's spare tasks (taken ahead for the slots that free up next) come only
        out of what the queue holds beyond the other workers' concurrency (the take script,
        fp_scripts.c). Two workers of 10 slots, 40 slow URLs: 2 rounds of 20 transfers. A
        worker that took 5 spare tasks in the second round too would leave the other 5
        slots short, and its 5 spare would run in a third round; so each worker must run
        exactly 20. A worker that wants only spare tasks while the queue has none to
        spare must not ask Redis again and again either (it waits 200 ms, or for a free
        slot): the EVALSHA calls stay few."""
        org = self.c.start_origin(delay_ms=400)
        self.c.start_master()
        for _ in range(2):
            self.c.start_worker(None, "--concurrency", "10", "--host-conns", "10")
        self.c.wait_workers_registered(2)
        urls = [org.url("/img/%d.jpg?size=1024" % i) for i in range(40)]
        res = self.c.path("results.tsv")
        sub = self.c.submit("--wait", "--results", res, self.c.write_input(urls))
        self.check(sub.rc == 0, "submit: %r" % sub)
        rows = fp.read_tsv(res)
        self.assertEqual([x["url"] for x in rows], urls)
        self.assertEqual(collections.Counter(x["status"] for x in rows), {"ok": 40})
        by_worker = collections.Counter(x["worker"] for x in rows)
        calls = 0
        for line in str(self.c.redis().call("INFO", "commandstats")).splitlines():
            if line.startswith("cmdstat_evalsha:calls="):
                calls = int(line.split("=", 1)[1].split(",")[0])
        msg = "results by worker %s, EVALSHA calls %d, job took %.2f s\n%s" % (
            dict(by_worker), calls, sub.elapsed, self.c.logs())
        sys.stderr.write("\n" + msg.split("\n")[0] + "\n")
        self.assertEqual(sorted(by_worker.values()), [20, 20], msg)
        self.assertLess(calls, 300, msg)
        self.assert_queues_drained()
        self.c.check_alive()


if __name__ == "__main__":
    fp.main()
