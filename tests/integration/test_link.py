"""The Redis link under faults that do not close it (issue 14): a half-open connection (a
NAT or firewall drops it silently: tests/tcpproxy.py stops forwarding one connection and
keeps it open), a result batch Redis refuses for good (WRONGTYPE, a script error), a slow
Redis (DEBUG SLEEP, CLIENT PAUSE), a Redis that forgets its scripts (SCRIPT FLUSH), two live
workers with the same id, two masters on one Redis. Nothing may be lost, nothing counted
twice, no live worker reaped.
Helpers come from test_reliability.py; the cluster from fp_harness.py.
Run alone: python3 tests/integration/test_link.py --bin build/bin
"""

import collections
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fp_harness as fp  # noqa: E402
from test_reliability import ReliabilityBase, parse_t1  # noqa: E402

sys.path.insert(0, os.path.join(fp.REPO, "tests"))
import tcpproxy  # noqa: E402

# The pulling connection: its take and BLMOVE name the queue, which the command
# connection names only when it gives tasks back (a pause, the shutdown).
PULL = b"\r\nfp:tasks\r\n"
HEARTBEAT = b"'owner='"    # only the heartbeat script (owner.c) says this: the command connection


class LinkBase(ReliabilityBase):

    def proxy(self):
        p = tcpproxy.Proxy(self.c.redis_srv.port).start()
        self.addCleanup(p.close)
        return p

    def worker_via(self, proxy, wid, *args, name=None, redis=None):
        """A worker whose Redis connections go through proxy (name: of its log; redis:
        another address instead)."""
        argv = [self.c.exe("fetchpool-worker"), "--redis",
                redis or "redis://127.0.0.1:%d" % proxy.port,
                "--output", self.c.out, "--id", wid, "--allow-private"] + list(args)
        w = fp.Proc(name or "worker-" + wid, argv, self.c.dir, env=self.c.env())
        self.c.workers.append(w)
        self.c.procs.append(w)
        return w

    def master_via(self, proxy, *args):
        argv = [self.c.exe("fetchpool-master"), "--redis",
                "redis://127.0.0.1:%d" % proxy.port, "--host-conns", "0",
                "--host-rate", "0"] + list(args)
        self.c.master = fp.Proc("master", argv, self.c.dir, env=self.c.env())
        self.c.procs.append(self.c.master)
        return self.c.master

    def done(self, jid):
        return int(self.rcall("HGET", "fp:job:%s" % jid, "done") or 0)

    def ss(self, port):
        """ss's lines for the connections to port (-o: their timers)."""
        return subprocess.run(["ss", "-tnoH", "state", "established", "dport", "= :%d" % port],
                              capture_output=True, text=True).stdout.splitlines()

    def keepalive_sockets(self, port):
        """(connections to port, how many of them have TCP keepalive on), from ss. ss shows
        one timer: a connection with data in flight shows the retransmission timer, so look
        a few times."""
        conns, ka = set(), set()
        for _ in range(20):
            for line in self.ss(port):
                local = line.split()[2]
                conns.add(local)
                if "timer:(keepalive" in line:
                    ka.add(local)
            time.sleep(0.05)
        return len(conns), len(ka)


class HalfOpenTest(LinkBase):

    def test_half_open_links(self):
        """1. The worker's pulling connection goes half-open right after it sent BLMOVE,
        just before a job's tasks arrive: Redis moves a task into the worker's processing
        list and the reply is lost. The worker must notice (a reply deadline), reconnect,
        take that task back from its own list, and the job must finish.
        2. Mid-job the worker's command connection (results, heartbeats) and then the
        master's connection go half-open: both reconnect, the job finishes, the worker is
        never reaped (it noticed within about two heartbeats), nothing is lost or doubled."""
        org = self.c.start_origin(delay_ms=50)
        wp, mp = self.proxy(), self.proxy()
        self.worker_via(wp, "w1", "--concurrency", "8", "--host-conns", "8")
        self.wait_registered("w1")
        # Every connection has TCP keepalive (what finds a dead idle link in the real world;
        # the proxy's kernel answers the probes, so the deadline is what this test sees).
        n_conns, n_ka = self.keepalive_sockets(wp.port)
        self.assertEqual((n_conns, n_ka), (2, 2), "worker connections with keepalive: %s" % self.ss(wp.port))

        # Phase 1: the job waits in fp:jobs:new while no master runs.
        n1 = 40
        urls1 = [org.url("/img/%d.jpg?size=2048&a=1" % i) for i in range(n1)]
        jid1 = self.submit_id("--attempts", "1", self.c.write_input(urls1, "a.txt"))
        # The BLMOVE is held in the proxy until the tasks are there, then forwarded and its
        # reply lost: it moves a task however slowly the master starts (forwarded at once,
        # it would time out in Redis after 1 s with nothing moved, and no task to take
        # back). The worker gives the link up 3 s after it sent the BLMOVE; if the master
        # was slower than that, the BLMOVE still moves a task into fp:proc:w1 once
        # released, and the worker's periodic look there takes it back.
        pull = wp.wait_link(lambda link: PULL in link.sent)
        pull.hold_at(b"BLMOVE")
        pull.wait_frozen(5)
        t_hold = time.monotonic()
        self.master_via(mp, "--queue-depth", "50", "--feed-batch", "50")   # feeds at once
        self.wait_for("the master to feed", lambda: self.rcall("LLEN", "fp:tasks") > 0, 30)
        self.say("BLMOVE held %.2fs, until the tasks were there", time.monotonic() - t_hold)
        pull.release()
        self.wait_for("the lost BLMOVE to move a task", lambda: self.rcall(
            "LLEN", "fp:proc:w1") > 0 or self.done(jid1) > 0, 5)
        t0 = time.monotonic()
        took = self.wait_job(jid1, 30)
        self.assertEqual(self.keepalive_sockets(mp.port), (1, 1), "master keepalive")
        self.say("pull link half-open: job of %d done %.1fs later", n1, took)
        rows = self.job_rows(jid1)
        self.assert_rows(rows, urls1, "ok", attempts=1)
        log = self.worker_log(self.c.workers[0])
        self.assertIn("took back 1 tasks", log)
        self.assertIn("no reply", log)

        # Phase 2: command connection, then the master's, half-open mid-job.
        n2 = 300
        urls2 = [org.url("/img/%d.jpg?size=2048&b=1" % i) for i in range(n2)]
        jid2 = self.submit_id("--attempts", "1", self.c.write_input(urls2, "b.txt"))
        self.wait_for("20% done", lambda: self.done(jid2) >= 0.2 * n2, 30)
        cmd = wp.wait_link(lambda link: HEARTBEAT in link.sent)
        cmd.freeze()
        t_cmd = time.monotonic()
        self.wait_for("the worker's new command connection", lambda: wp.find(
            lambda link: HEARTBEAT in link.sent and link.opened > t_cmd), 15)
        self.say("command link half-open: a new one after %.1fs", time.monotonic() - t_cmd)
        self.wait_for("progress", lambda: self.done(jid2) >= 0.4 * n2, 30)
        mlink = mp.wait_link(lambda link: b"fp:jobs:new" in link.sent)
        mlink.freeze()
        t_m = time.monotonic()
        self.wait_for("the master's new connection", lambda: mp.find(
            lambda link: link.opened > t_m), 15)
        self.say("master link half-open: a new one after %.1fs", time.monotonic() - t_m)
        took = self.wait_job(jid2, 60)
        rows = self.job_rows(jid2)
        self.assert_rows(rows, urls2, "ok", attempts=1)
        self.assertNotIn("w1 has no heartbeat", self.c.master.tail(200))
        self.assertEqual(org.stats()["total"], n1 + n2, "URLs downloaded twice")
        self.assert_files(self.job_rows(jid1) + rows)
        self.wait_drained()
        self.c.check_alive()
        self.say("all done %.1fs after phase 1", time.monotonic() - t0)


class RefusedTest(LinkBase):

    def test_refused_results(self):
        """Four jobs fetched side by side, their results sharing finish calls; one job's
        written-parts bitmap is a list (WRONGTYPE for SETBIT), another job's results list
        is a string. Redis refuses their results for good. The healthy job's results,
        counters and latency histogram must all be there (none written without being
        counted); each task of a broken job goes to fp:dead and counts as failed
        (internal_error), so both broken jobs complete; no task is left in a processing
        list. The fourth job's latency histogram is a string: the master keeps it out of
        the histogram only, with a warning, and its results are all ok."""
        org = self.c.start_origin(delay_ms=20)
        self.c.start_worker("w1", "--concurrency", "8", "--host-conns", "8")
        self.wait_registered("w1")
        n = 60
        jobs = {}
        for name in ("good", "badparts", "badres", "badlat"):
            urls = [org.url("/img/%d.jpg?size=1024&%s=1" % (i, name)) for i in range(n)]
            jobs[name] = (self.submit_id(self.c.write_input(urls, name + ".txt")), urls)
        self.rcall("RPUSH", "fp:job:%s:parts" % jobs["badparts"][0], "not a bitmap")
        self.rcall("SET", "fp:job:%s:lat" % jobs["badlat"][0], "not a hash")
        self.rcall("SET", "fp:job:%s:out" % jobs["badres"][0], "not a list")
        # The master feeds the jobs in turns of 10, so batches mix them.
        self.c.start_master("--queue-depth", "40", "--feed-batch", "10")
        for name, (jid, urls) in jobs.items():
            self.wait_job(jid, 30)
        good, urls = jobs["good"]
        rows = self.job_rows(good)
        self.assert_rows(rows, urls, "ok", attempts=1)
        meta = self.rcall("HGETALL", "fp:job:%s" % good)
        meta = dict(zip(meta[0::2], meta[1::2]))
        self.assertEqual((meta["done"], meta["ok"], meta.get("failed", "0")),
                         (str(n), str(n), "0"), meta)
        lat = self.rcall("HGETALL", "fp:job:%s:lat" % good)
        self.assertEqual(sum(int(v) for v in lat[1::2]), n, lat)
        badlat, urls = jobs["badlat"]
        self.assert_rows(self.job_rows(badlat), urls, "ok", attempts=1)
        self.assertEqual(self.rcall("GET", "fp:job:%s:lat" % badlat), "not a hash")
        with open(self.c.master.log_path, encoding="utf-8", errors="replace") as f:
            self.assertIn("job %s: cannot read its latency histogram" % badlat, f.read())
        for name in ("badparts", "badres"):
            jid = jobs[name][0]
            sm = self.rcall("HGETALL", "fp:job:%s:summary" % jid)
            summary = dict(zip(sm[0::2], sm[1::2]))
            self.assertEqual((summary.get("total"), summary.get("failed"),
                              summary.get("fail:internal_error")), (str(n), str(n), str(n)),
                             "%s: %s" % (name, summary))
        badparts = self.job_rows(jobs["badparts"][0])
        self.assertEqual({r["status"] for r in badparts}, {"internal_error"})
        self.assertIn("Redis refused the result", badparts[0]["error"])
        dead = self.rcall("LRANGE", "fp:dead", 0, -1)
        self.assertEqual(len(dead), 2 * n, dead[:3])
        self.assertEqual(sorted(d.split("\t")[1] for d in dead),
                         sorted([jobs["badparts"][0]] * n + [jobs["badres"][0]] * n))
        self.assertEqual(self.c.redis().keys("fp:proc:*"), [])
        self.rcall("DEL", "fp:dead")
        self.assert_queues_drained()
        log = self.worker_log(self.c.workers[0])
        self.assertIn("sending them one by one", log)


class SlowRedisTest(LinkBase):

    def setUp(self):
        self.c = fp.Cluster(self.id().rsplit(".", 1)[-1])
        self.addCleanup(self.c.close)
        self.c.start_redis(extra=["--enable-debug-command", "yes"])
        self._rc = None
        self.addCleanup(self._close_rc)

    def stall_after_heartbeat(self, wid, *cmd):
        """Runs cmd when worker wid's heartbeat is 0.9 s old, so that it has expired by
        the time a 4.5 s stall ends (the worst case for the reaper)."""
        self.wait_for("a heartbeat 0.9 s old", lambda: 0 < self.rcall(
            "PTTL", "fp:worker:" + wid) <= 4100, 5, step=0.005)
        t0 = time.monotonic()
        self.rcall(*cmd)
        return time.monotonic() - t0

    def test_slow_redis(self):
        """Redis stalls for 4.5 s three times mid-job, each time 0.9 s after a heartbeat,
        so that every heartbeat has expired when it ends: DEBUG SLEEP 4.5, CLIENT PAUSE
        4500 (all commands wait) and CLIENT PAUSE 4500 WRITE (reads go on: the reaper sees
        the heartbeat gone while the workers' refreshes wait). No live worker may be
        reaped: with --attempts 1 a reaped task would end as worker_lost."""
        org = self.c.start_origin(delay_ms=50)
        self.c.start_master()
        for w in ("w1", "w2"):
            self.c.start_worker(w, "--concurrency", "8", "--host-conns", "8")
        self.c.wait_workers_registered(2)
        n = 1200
        urls = [org.url("/img/%d.jpg?size=1024" % i) for i in range(n)]
        jid = self.submit_id("--attempts", "1", self.c.write_input(urls))
        stalls = (("DEBUG", "SLEEP", "4.5"), ("CLIENT", "PAUSE", "4500"),
                  ("CLIENT", "PAUSE", "4500", "WRITE"))
        for i, cmd in enumerate(stalls):
            self.wait_for("progress", lambda: self.done(jid) >= (i + 1) * n / 8, 60)
            took = self.stall_after_heartbeat("w%d" % (i % 2 + 1), *cmd)
            if cmd[0] == "CLIENT":
                time.sleep(4.5)
            self.say("%s: %.1fs; done %d/%d", " ".join(cmd), took, self.done(jid), n)
        self.wait_job(jid, 60)
        rows = self.job_rows(jid)
        bad = collections.Counter(r["status"] for r in rows if r["status"] != "ok")
        self.assertEqual(dict(bad), {}, "tasks of live workers failed: %s" %
                         self.c.master.tail(20))
        self.assert_rows(rows, urls, "ok", attempts=1)
        mlog = self.c.master.tail(200)
        self.assertNotIn("has no heartbeat", mlog)
        self.assertIn("Redis took", mlog)   # the master saw each stall
        self.assert_files(rows)
        self.wait_drained()
        self.c.check_alive()


class ScriptCacheTest(LinkBase):

    def test_scripts_by_sha_survive_a_script_flush(self):
        """The take and the finish, and the master's calls, go as EVALSHA, so Redis neither
        receives nor hashes 9-12 KB of source with every call. A Redis that lost its
        scripts (SCRIPT FLUSH; a restart does the same) answers NOSCRIPT without running
        anything, and the call must go again at once as EVAL. SCRIPT FLUSH three times
        mid-job: every task ends ok exactly once, neither the worker nor the master logs a
        failed or refused call, Redis answered NOSCRIPT after each flush, and EVALSHA
        carried the calls."""
        org = self.c.start_origin(delay_ms=20)
        self.c.start_master()
        self.c.start_worker("w1", "--concurrency", "8", "--host-conns", "8")
        self.c.wait_workers_registered(1)
        n = 600
        urls = [org.url("/img/%d.jpg?size=1024" % i) for i in range(n)]
        jid = self.submit_id("--attempts", "1", self.c.write_input(urls))
        noscript = []
        for k in (1, 2, 3):
            self.wait_for("progress", lambda: self.done(jid) >= k * n / 4, 60)
            before = self.error_count("NOSCRIPT")
            self.rcall("SCRIPT", "FLUSH")
            self.wait_for("a NOSCRIPT", lambda: self.error_count("NOSCRIPT") > before, 10)
            noscript.append(self.error_count("NOSCRIPT") - before)
        self.wait_job(jid, 60)
        rows = self.job_rows(jid)
        self.assert_rows(rows, urls, "ok", attempts=1)
        self.assert_files(rows)
        log = self.worker_log(self.c.workers[0])
        for bad in ("taking tasks failed", "command failed", "refused", "will retry"):
            self.assertNotIn(bad, log)
        self.assertNotIn("NOSCRIPT", self.c.master.tail(300))
        calls = self.command_calls("evalsha")
        self.say("EVALSHA calls %d, NOSCRIPT answers after the flushes %s", calls, noscript)
        self.assertGreater(calls, 100, "the take and finish calls went as EVAL")
        self.wait_drained()
        self.c.check_alive()

    def error_count(self, name):
        """How many errors of this kind Redis answered (INFO errorstats)."""
        for line in str(self.rcall("INFO", "errorstats")).splitlines():
            if line.startswith("errorstat_%s:count=" % name):
                return int(line.split("=", 1)[1].split(",")[0])
        return 0

    def command_calls(self, name):
        """How many times Redis ran this command (INFO commandstats)."""
        for line in str(self.rcall("INFO", "commandstats")).splitlines():
            if line.startswith("cmdstat_%s:calls=" % name):
                return int(line.split("=", 1)[1].split(",")[0])
        return 0


class TwinTest(LinkBase):

    def test_same_id(self):
        """A second worker started with the id of a live one must refuse to start (exit
        non-zero, saying why) and leave the live one's tasks alone; a worker started with
        the id of one that was just killed takes its place at once (its heartbeat has not
        expired yet) and hands its predecessor's tasks back."""
        org = self.c.start_origin(delay_ms=200)
        self.c.start_master()
        first = self.c.start_worker("w1", "--concurrency", "8", "--host-conns", "8")
        self.wait_registered("w1")
        n = 120
        urls = [org.url("/img/%d.jpg?size=1024" % i) for i in range(n)]
        jid = self.submit_id("--attempts", "3", self.c.write_input(urls))
        self.wait_for("w1 to hold tasks", lambda: self.rcall("LLEN", "fp:proc:w1") > 0, 10)
        twin = fp.Proc("worker-w1-twin", [self.c.exe("fetchpool-worker"), "--redis",
                                          self.c.redis_srv.url, "--output", self.c.out,
                                          "--id", "w1", "--allow-private"],
                       self.c.dir, env=self.c.env())
        self.c.procs.append(twin)
        t0 = time.monotonic()
        rc = twin.wait(15)
        self.say("twin refused after %.1fs (exit %s)", time.monotonic() - t0, rc)
        self.assertNotEqual(rc, 0)
        self.assertIn("another worker with id w1 is running", twin.tail())
        self.assertTrue(first.alive())
        self.wait_for("30% done", lambda: self.done(jid) >= 0.3 * n, 30)
        first.kill(signal.SIGKILL)
        first.wait(5)
        self.c.workers.remove(first)
        held = self.rcall("LLEN", "fp:proc:w1")
        t0 = time.monotonic()
        again = self.c.start_worker("w1", "--concurrency", "8", "--host-conns", "8")
        self.wait_for("the new w1 to take its place", lambda: "taking its place" in
                      self.worker_log(again), 10)
        self.say("a new w1 took the dead one's place after %.1fs (%d tasks held)",
                 time.monotonic() - t0, held)
        self.wait_job(jid, 60)
        rows = self.job_rows(jid)
        self.assert_rows(rows, urls, "ok")
        # Before the kill nothing was handed back: only what the dead w1 held was retried.
        self.assertLessEqual(sum(1 for r in rows if r["attempts"] != "1"), held)
        self.wait_drained()


class TakeoverTest(LinkBase):
    """Review finding 6: worker A (id w1) goes away mid-job long enough that a new worker B
    with the same id takes its place (A's heartbeat stands still for 2.5 s) and hands A's
    tasks back; then A comes back. A must find its id taken on its first heartbeat, say so
    in one line, take and adopt nothing more, leave B's processing list and heartbeat alone
    and exit 3; B goes on. Every URL gets exactly one result, and only the tasks A held when
    it went away run twice (A ran them, B again after the hand-back)."""

    def takeover(self, away, back, via_proxy):
        org = self.c.start_origin(delay_ms=300)
        self.c.start_master()
        wp = self.proxy()
        args = ("--concurrency", "4", "--host-conns", "4")
        # A log file of its own (the harness names logs by worker id).
        a = self.worker_via(wp, "w1", *args, name="worker-w1-a",
                            redis=None if via_proxy else self.c.redis_srv.url)
        self.wait_registered("w1")
        owner_a = self.rcall("GET", "fp:worker:w1").split()[0]
        n = 100
        urls = [org.url("/img/%d.jpg?size=1024" % i) for i in range(n)]
        jid = self.submit_id("--attempts", "3", self.c.write_input(urls))
        self.wait_for("A to be at work", lambda: self.done(jid) >= 10 and self.rcall(
            "LLEN", "fp:proc:w1") > 0, 30)
        away(a, wp)
        held = {parse_t1(t)["line"] for t in self.rcall("LRANGE", "fp:proc:w1", 0, -1)}
        t0 = time.monotonic()
        b = self.c.start_worker("w1", *args)
        self.wait_for("B to take A's place", lambda: "taking its place" in
                      self.worker_log(b), 15)
        self.say("B took over %.1fs after A went away (A held lines %s)",
                 time.monotonic() - t0, sorted(held))
        # B's own heartbeat (set right after the hand-back, before its tasks come): had A
        # come back before it, the id would have stayed A's and B would have refused.
        self.wait_for("B's heartbeat", lambda: (self.rcall("GET", "fp:worker:w1") or
                                                owner_a).split()[0] != owner_a, 10)
        self.wait_for("B to run", lambda: self.rcall("LLEN", "fp:proc:w1") > 0, 10)
        back(a, wp)
        t1 = time.monotonic()
        try:
            rc = a.wait(20)
        except Exception:
            self.fail("A still runs %.0fs after it came back\n%s" % (
                time.monotonic() - t1, a.tail()))
        self.c.workers.remove(a)
        log = self.worker_log(a)
        self.say("A exited %s %.1fs after it came back", rc, time.monotonic() - t1)
        self.assertEqual(rc, 3, a.tail())
        self.assertIn("took over id w1 while this one", log)
        self.assertNotIn("not acknowledged", log)   # its last results reached Redis
        self.assertNotIn("handing back unfinished", log)
        self.assertNotIn("took back", log)
        self.assertTrue(b.alive(), b.tail())
        self.wait_job(jid, 60)
        rows = self.job_rows(jid)
        self.assert_rows(rows, urls, "ok")
        hb = self.rcall("GET", "fp:worker:w1")
        self.assertTrue(hb and hb.split()[0] != owner_a, hb)   # B's heartbeat stands
        paths = org.stats()["paths"]
        hits = [paths.get("/img/%d.jpg" % i, 0) for i in range(n)]
        self.assertNotIn(0, hits, "URLs never fetched")
        twice = {i + 1 for i in range(n) if hits[i] > 1}
        self.assertLessEqual(twice, held,
                             "run twice although A did not hold them when it went away")
        self.wait_drained()
        self.c.check_alive()

    def test_taken_over_while_cut_off(self):
        """A's every link to Redis is cut and no new one accepted until it comes back."""
        state = {}

        def away(a, wp):
            state["port"] = wp.port
            wp.close()

        def back(a, wp):
            p = tcpproxy.Proxy(self.c.redis_srv.port, port=state["port"]).start()
            self.addCleanup(p.close)
        self.takeover(away, back, via_proxy=True)

    def test_taken_over_while_frozen(self):
        """A is frozen (SIGSTOP, as a paused VM) and woken (SIGCONT): its timers fire at
        once, the adoption's among them, and replies it had waiting are read right after;
        none of it may run B's tasks before the heartbeat says whose the id is."""
        self.takeover(lambda a, wp: a.kill(signal.SIGSTOP),
                      lambda a, wp: a.kill(signal.SIGCONT), via_proxy=False)


class TwoMastersTest(LinkBase):

    def test_two_masters(self):
        """Two masters on one Redis, both feeding the same job of 5,000 lines in batches
        of 50 (the second starts while the first feeds, so both hold the job): every line
        gets exactly one result, in its slot, with its own line number and URL."""
        n = 1500 if fp.sanitized(self.c.bin) else 5000
        nginx = self.c.start_nginx()
        files = fp.make_jpegs(nginx.root, 50, size=512)
        args = ("--queue-depth", "100", "--feed-batch", "50")
        self.c.start_master(*args)
        first = self.c.master
        for w in ("w1", "w2"):
            self.c.start_worker(w, "--concurrency", "32", "--host-conns", "32")
        self.c.wait_workers_registered(2)
        urls = [nginx.url("%s?line=%d" % (files[i % len(files)][0], i + 1)) for i in range(n)]
        jid = self.submit_id(self.c.write_input(urls))
        self.wait_for("feeding to start", lambda: int(
            self.rcall("HGET", "fp:job:%s" % jid, "fed") or 0) > 0, 10)
        second = self.c.start_master(*args, name="master-2")
        took = self.wait_job(jid, 90)
        self.say("two masters: %d lines done %.1fs after the second started", n, took)
        rows = self.job_rows(jid)
        self.assert_rows(rows, urls, "ok")
        meta = self.rcall("HGETALL", "fp:job:%s" % jid)
        meta = dict(zip(meta[0::2], meta[1::2]))
        self.assertEqual((meta["fed"], meta["total"], meta["done"]), (str(n),) * 3, meta)
        self.assertTrue(first.alive() and second.alive())
        self.wait_drained()

    def test_waits_on_a_completion_it_cannot_report_without_spinning(self):
        """While it has a job the idle master waits on fp:done (so a job is reported the
        moment it is done), but not while fp:done's head is a job whose results another
        master writes: that wait would return at once, every time. The master's loop
        rounds are counted by its LINDEX of fp:done: a few dozen a second, not thousands."""
        nginx = self.c.start_nginx()
        files = fp.make_jpegs(nginx.root, 5, size=512)
        self.c.start_master()
        jid = self.submit_id(self.c.write_input([nginx.url(f) for f, _ in files]))
        self.wait_for("the job to be fed (no worker runs it)", lambda: self.rcall(
            "HGET", "fp:job:%s" % jid, "sealed") == "1", 20)
        other = str(int(jid) + 100)
        self.rcall("HSET", "fp:job:" + other, "state", "running", "total", "1", "done", "1",
                   "sealed", "1", "created_us", "1")
        self.rcall("SET", "fp:job:%s:writer" % other, "another-master", "PX", "60000")
        for stage in ("fp:done empty", "a foreign job at fp:done's head"):
            self.rcall("CONFIG", "RESETSTAT")
            time.sleep(2)
            stats = self.rcall("INFO", "commandstats")
            calls = {}
            for line in stats.splitlines():
                if line.startswith("cmdstat_"):
                    name, _, rest = line[8:].partition(":")
                    calls[name] = int(rest.split(",")[0].split("=")[1])
            self.say("%s: %d LINDEX, %d BLMOVE in 2 s", stage, calls.get("lindex", 0),
                     calls.get("blmove", 0))
            self.check(0 < calls.get("lindex", 0) < 400,
                       "%s: %r calls in 2 s" % (stage, calls))
            self.rcall("RPUSH", "fp:done", other)
        self.assertEqual(self.rcall("LRANGE", "fp:done", 0, -1), [other, other])
        self.assertEqual(self.rcall("HGET", "fp:job:%s" % jid, "state"), "running")
        self.assertTrue(self.c.master.alive())


if __name__ == "__main__":
    fp.main()
