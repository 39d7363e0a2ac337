"""Crash recovery: workers and the master killed with SIGKILL, a task that crashes every
worker taking it, Redis killed (restarted at once, after an outage, or with the last second
of its AOF gone) in the middle of a job. Nothing may be lost, nothing counted twice.

A dead worker's tasks sit in its processing list fp:proc:<id> until the master's reaper
sees its heartbeat fp:worker:<id> (PX 5000, refreshed every second) expire and puts them
back with their attempt raised; over the attempt limit a task ends as `worker_lost`.
These tests print how long that took after each kill (stderr). Helpers come from
test_reliability.py; the cluster from fp_harness.py.
Run alone: /usr/bin/python3 tests/integration/test_recovery.py --bin build/bin
"""

import collections
import glob
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fp_harness as fp  # noqa: E402
from test_reliability import ReliabilityBase, parse_t1  # noqa: E402

CRASH_ENV = "FETCHPOOL_TEST_CRASH_URL"


class RecoveryBase(ReliabilityBase):

    def spawn_worker(self, wid, *args, env_extra=None):
        """A worker like Cluster.start_worker, with extra environment; kept out of
        Cluster.workers because these tests expect workers to die."""
        argv = [self.c.exe("fetchpool-worker"), "--redis", self.c.redis_srv.url,
                "--output", self.c.out, "--id", wid, "--allow-private"] + list(args)
        env = self.c.env()
        env.update(env_extra or {})
        p = fp.Proc("worker-" + wid, argv, self.c.dir, env=env)
        self.c.procs.append(p)
        return p


class KillTest(RecoveryBase):

    def test_kill9_three_times(self):
        """3,000 URLs, 2 workers; three times a worker is SIGKILLed and a new one started.
        The job completes with one ok result per URL, the reaped tasks carry a raised
        attempt, the files are right, and no task is left anywhere."""
        n = 3000
        org = self.c.start_origin(delay_ms=100)
        self.c.start_master()
        wargs = ("--concurrency", "16", "--host-conns", "16")
        live = [self.spawn_worker(w, *wargs) for w in ("w1", "w2")]
        ids = {live[0]: "w1", live[1]: "w2"}
        for w in ("w1", "w2"):
            self.wait_registered(w)
        urls = [org.url("/img/%d.jpg?size=2048" % i) for i in range(n)]
        res = self.c.path("results.tsv")
        # --attempts 5: a task may be in flight on more than one of the killed workers.
        sub = self.c.submit_async("--wait", "--attempts", "5", "--results", res,
                                  self.c.write_input(urls))
        jid = sub.popen.stdout.readline().decode().strip()
        self.check(jid.isdigit(), "submit printed %r" % jid)

        kills = []            # one dict per kill
        marks = [0.15, 0.40, 0.65]
        serial = 3
        t0 = time.monotonic()
        while True:
            now = time.monotonic()
            self.check(now - t0 < 120, "job not done after 120 s; killed %s" % [
                (k["id"], k["requeued"]) for k in kills])
            done = int(self.rcall("HGET", "fp:job:%s" % jid, "done") or 0)
            if marks and done >= marks[0] * n:
                victim = max(live, key=lambda p: self.rcall("LLEN", "fp:proc:" + ids[p]))
                wid = ids[victim]
                if self.rcall("LLEN", "fp:proc:" + wid) > 0:
                    marks.pop(0)
                    victim.kill(signal.SIGKILL)
                    victim.wait(5)
                    t_kill = time.monotonic()
                    time.sleep(0.05)   # a command already sent may still land
                    held = self.rcall("LRANGE", "fp:proc:" + wid, 0, -1)
                    kills.append({"id": wid, "t": t_kill, "held": held, "done": done,
                                  "requeued": None, "hb_gone": None})
                    live.remove(victim)
                    w = self.spawn_worker("w%d" % serial, *wargs)
                    ids[w] = "w%d" % serial
                    live.append(w)
                    serial += 1
            for k in kills:
                if k["hb_gone"] is None and not self.rcall("EXISTS", "fp:worker:" + k["id"]):
                    k["hb_gone"] = time.monotonic() - k["t"]
                if k["requeued"] is None and not self.rcall("EXISTS", "fp:proc:" + k["id"]):
                    k["requeued"] = time.monotonic() - k["t"]
            if sub.popen.poll() is not None and not marks and \
                    all(k["requeued"] is not None for k in kills):
                break
            for p in live:
                self.check(p.alive(), "%s died" % ids[p])
            time.sleep(0.02)
        took = time.monotonic() - t0
        for k in kills:
            self.say("killed %s at %d/%d done holding %d tasks: heartbeat gone after %.2fs, "
                     "tasks requeued after %.2fs", k["id"], k["done"], n, len(k["held"]),
                     k["hb_gone"], k["requeued"])
        self.say("job took %.1fs", took)
        self.check(sub.popen.returncode == 0, "submit exit %s" % sub.popen.returncode)

        with open(res, encoding="utf-8") as f:
            self.assertEqual(sum(1 for _ in f), n + 1, "results file: header + one per URL")
        rows = fp.read_tsv(res)
        self.assert_rows(rows, urls, "ok", http_code=200)
        for i, row in enumerate(rows):
            self.assertEqual(row["sha256"], fp.origin_mod.image_sha256(i, "jpg", 2048), row)
        # Each task a dead worker held came back with its attempt raised, once per death;
        # no other task was charged a try (a healthy origin, live workers never reaped).
        want = [1] * n
        reaped = 0
        for k in kills:
            for raw in k["held"]:
                t = parse_t1(raw)
                self.assertEqual(str(t["job"]), jid)
                want[t["idx"]] += 1
                reaped += 1
        self.assertGreater(reaped, 0)
        wrong = [(i + 1, r["attempts"], want[i]) for i, r in enumerate(rows)
                 if r["attempts"] != str(want[i])]
        self.assertEqual(wrong, [], "(line, attempts, expected) for tasks charged a wrong "
                         "number of tries")
        retried = collections.Counter(r["attempts"] for r in rows)
        self.say("results by attempts: %s; tasks reaped: %d; temp files left by the "
                 "killed workers: %d", dict(retried), reaped, len(self.c.temp_leftovers()))
        self.assert_files(rows)
        self.assert_queues_drained()
        for k in kills:
            self.assertEqual(self.rcall("SISMEMBER", "fp:workers", k["id"]), 0,
                             "dead worker %s still registered" % k["id"])
        sm = self.rcall("HGETALL", "fp:job:%s:summary" % jid)
        summary = dict(zip(sm[0::2], sm[1::2]))
        self.assertEqual((summary.get("total"), summary.get("ok")), (str(n), str(n)), summary)

    def test_master_kill9(self):
        """The master SIGKILLed twice while it feeds a 1,500-URL job (fed in batches of
        100), restarted each time: it resumes from Redis; every URL gets one ok result."""
        n = 1500
        org = self.c.start_origin(delay_ms=100)
        self.c.start_master("--queue-depth", "100", "--feed-batch", "100")
        for w in ("w1", "w2"):
            self.c.start_worker(w, "--concurrency", "16", "--host-conns", "16")
        self.c.wait_workers_registered(2)
        urls = [org.url("/img/%d.jpg?size=2048" % i) for i in range(n)]
        jid = self.submit_id(self.c.write_input(urls))
        for mark in (0.2, 0.5):
            self.wait_for("%d%% done" % (mark * 100), lambda: int(
                self.rcall("HGET", "fp:job:%s" % jid, "done") or 0) >= mark * n, 60)
            fed = self.rcall("HGET", "fp:job:%s" % jid, "fed")
            self.c.master.stop(signal.SIGKILL)
            self.say("master killed with %s/%d lines fed", fed, n)
            time.sleep(1)
            self.c.start_master("--queue-depth", "100", "--feed-batch", "100",
                                name="master-%d" % int(mark * 100))
        took = self.wait_job(jid, 90)
        self.say("job done %.1fs after the second restart", took)
        rows = self.job_rows(jid)
        self.assert_rows(rows, urls, "ok", attempts=1)
        self.assertEqual(self.rcall("HGET", "fp:job:%s:summary" % jid, "ok"), str(n))
        self.assert_files(rows)
        self.assert_queues_drained()


class PoisonTest(RecoveryBase):

    def run_poison(self, same_id, budget_s):
        """One URL crashes every worker that takes it; a supervisor loop restarts dead
        workers (under a new id, or the same id as a container restart would). With
        --attempts 2 the URL must end as worker_lost after exactly two crashes, the
        other URLs ok."""
        org = self.c.start_origin()
        self.c.start_master()
        env = {CRASH_ENV: "POISON"}
        slots = {}
        for s in ("p1", "p2"):
            slots[s] = self.spawn_worker(s, "--concurrency", "4", env_extra=env)
        for s in slots:
            self.wait_registered(s)
        # The poison first: a worker idle in BLMOVE takes it alone, so no innocent task
        # shares its processing list (those would die with it; see the report).
        urls = [org.url("/img/0.jpg?size=1024&POISON=1")]
        urls += [org.url("/img/%d.jpg?size=1024" % i) for i in range(1, 50)]
        jid = self.submit_id("--attempts", "2", self.c.write_input(urls))

        crashes, codes, gen = [], [], 0
        t0 = time.monotonic()
        while self.rcall("HGET", "fp:job:%s" % jid, "state") != "done":
            if time.monotonic() - t0 > budget_s:
                where = {}
                for key in ["fp:tasks"] + self.c.redis().keys("fp:proc:*"):
                    found = [parse_t1(t)["attempt"] for t in self.rcall("LRANGE", key, 0, -1)
                             if "POISON" in t]
                    if found:
                        where[key] = found
                self.fail("job not done after %.0fs: %d crashes; poison (attempts) in %s; "
                          "job %s\n%s" % (budget_s, len(crashes), where,
                                          self.rcall("HGETALL", "fp:job:%s" % jid),
                                          self.c.master.tail(10)))
            for s, p in list(slots.items()):
                if p.alive():
                    continue
                crashes.append(time.monotonic() - t0)
                codes.append(p.popen.returncode)
                gen += 1
                slots[s] = self.spawn_worker(s if same_id else "%s-%d" % (s, gen),
                                             "--concurrency", "4", env_extra=env)
            time.sleep(0.02)
        took = time.monotonic() - t0
        rows = self.job_rows(jid)
        self.say("%d crashes (at %s s); job done after %.1fs; innocent tasks struck: %d",
                 len(crashes), ", ".join("%.1f" % x for x in crashes[:5]) +
                 (", ..." if len(crashes) > 5 else ""), took,
                 sum(1 for r in rows[1:] if r["attempts"] != "1"))

        self.assertEqual(len(rows), len(urls))
        self.assertEqual((rows[0]["status"], rows[0]["attempts"]), ("worker_lost", "2"),
                         rows[0])
        self.assertEqual(rows[0]["path"], "")
        self.assert_rows(rows[1:], urls[1:], "ok", first_line=2)
        # A task fetched in the same batch as the poison dies with it once (then runs as a
        # recovered task, one per worker, never beside the poison again); on a loaded
        # machine the idle worker may batch a few: at most the 5 others one take fetches
        # (concurrency 4 + prefetch 2) at each of the two strikes.
        struck = [r for r in rows[1:] if r["attempts"] != "1"]
        self.assertLessEqual(len(struck), 10, struck)
        self.assertTrue(all(r["attempts"] == "2" for r in struck), struck)
        self.assertEqual(len(crashes), 2, "the poison crashed %d workers" % len(crashes))
        self.assertEqual(codes, [-signal.SIGABRT] * 2)
        self.assert_files(rows)
        self.assert_queues_drained()
        sm = self.rcall("HGETALL", "fp:job:%s:summary" % jid)
        summary = dict(zip(sm[0::2], sm[1::2]))
        self.assertEqual(summary.get("fail:worker_lost"), "1", summary)
        self.assertEqual(summary.get("ok"), str(len(urls) - 1), summary)

    def test_recovered_innocent_tasks_are_not_taken_along(self):
        """Deterministic form of what the poison tests risk: a worker died holding the
        poison and three innocent tasks (--attempts 2, so one more death is their last).
        The restarted worker (same id) hands all four back as recovered and takes tasks
        again: it must never hold the poison beside an innocent recovered task, or those
        die a second time and end as worker_lost. (With four recovered tasks per worker,
        one take fetched all four: 3 innocent tasks lost.)"""
        org = self.c.start_origin()
        self.c.start_master()
        urls = [org.url("/img/0.jpg?size=1024&POISON=1")]
        urls += [org.url("/img/%d.jpg?size=1024" % i) for i in range(1, 4)]
        jid = self.submit_id("--attempts", "2", self.c.write_input(urls))
        self.wait_for("the tasks queued", lambda: self.rcall("LLEN", "fp:tasks") == 4, 20)
        # As if worker p1 had taken them and died (the poison was taken first).
        for _ in urls:
            self.rcall("LMOVE", "fp:tasks", "fp:proc:p1", "LEFT", "RIGHT")
        self.supervise_p1(jid, lambda: None)
        self.check_poison_once(jid, urls)

    def test_recovered_poison_is_not_moved_beside_a_recovered_task(self):
        """The same through BLMOVE: worker p1 runs a recovered innocent task (3 s answer)
        and waits in BLMOVE for more, when the recovered poison comes into the queue. The
        BLMOVE moves it past the take script's count of recovered tasks: it must go back
        (and run once the innocent one is done), not strike beside it."""
        org = self.c.start_origin()
        self.c.start_master()
        urls = [org.url("/img/0.jpg?size=1024&POISON=1"),
                org.url("/img/1.jpg?size=1024&delay=3000")]
        jid = self.submit_id("--attempts", "2", self.c.write_input(urls))
        self.wait_for("the tasks queued", lambda: self.rcall("LLEN", "fp:tasks") == 2, 20)
        poison = self.rcall("LMOVE", "fp:tasks", "test:aside", "LEFT", "RIGHT")
        self.rcall("LMOVE", "fp:tasks", "fp:proc:p1", "LEFT", "RIGHT")   # p1 died with it
        # The poison as the reaper hands it back: attempt 2, flag bit 2 (recovered).
        f = poison.split("\t")
        f[4], f[6] = "2", str(int(f[6]) | 4)
        self.rcall("DEL", "test:aside")

        def recovered_poison_in():
            if self.rcall("LLEN", "fp:proc:p1") != 1 or \
                    "delay=3000" not in self.rcall("LINDEX", "fp:proc:p1", 0):
                return
            time.sleep(1.2)   # p1 blocked in BLMOVE (take found the queue empty)
            self.rcall("LPUSH", "fp:tasks", "\t".join(f))
            return True

        self.supervise_p1(jid, recovered_poison_in)
        self.check_poison_once(jid, urls)

    def supervise_p1(self, jid, step):
        """Worker p1 with the crash hook, restarted with its id whenever it dies, until the
        job is done; step() runs each round until it returns True."""
        env = {CRASH_ENV: "POISON"}
        p = self.spawn_worker("p1", "--concurrency", "4", env_extra=env)
        self.crashes = 0
        t0 = time.monotonic()
        stepping = True
        while self.rcall("HGET", "fp:job:%s" % jid, "state") != "done":
            self.check(time.monotonic() - t0 < 20, "job not done after 20 s: %d crashes; "
                       "job %s" % (self.crashes, self.rcall("HGETALL", "fp:job:%s" % jid)))
            if stepping and step():
                stepping = False
            if not p.alive():
                self.crashes += 1
                p = self.spawn_worker("p1", "--concurrency", "4", env_extra=env)
            time.sleep(0.02)

    def check_poison_once(self, jid, urls):
        """The poison (first URL) worker_lost after one more crash, the others ok at their
        second attempt (none died a second time beside it)."""
        rows = self.job_rows(jid)
        self.assertEqual((rows[0]["status"], rows[0]["attempts"]), ("worker_lost", "2"),
                         rows[0])
        lost = [r for r in rows[1:] if r["status"] != "ok"]
        self.assertEqual(lost, [], "innocent tasks killed twice beside the poison")
        self.assert_rows(rows[1:], urls[1:], "ok", attempts=2, first_line=2)
        self.assertEqual(self.crashes, 1)
        self.assert_files(rows)
        self.assert_queues_drained()

    def test_poison_new_ids(self):
        """Restarted workers get new ids: the reaper recovers the poison twice."""
        self.run_poison(same_id=False, budget_s=40)

    def test_poison_same_id(self):
        """Restarted workers keep their id (docker restart: same hostname, pid 1): the
        restarted worker hands its predecessor's tasks back at start; that must count as a
        lost attempt too, or the poison crashes workers for ever."""
        self.run_poison(same_id=True, budget_s=20)


class RedisRestartTest(RecoveryBase):
    redis_aof = True   # appendfsync everysec: a crash may lose the last second of writes

    def test_redis_restart_mid_job(self):
        """redis-server SIGKILLed while 1,500 URLs are being fetched and started again (AOF)
        3 s later: workers and master reconnect, the job completes, one ok result per URL."""
        n = 1500
        org = self.c.start_origin(delay_ms=150)   # about 7 s for the job
        self.c.start_master()
        for w in ("w1", "w2"):
            self.c.start_worker(w, "--concurrency", "16", "--host-conns", "16")
        self.c.wait_workers_registered(2)
        urls = [org.url("/img/%d.jpg?size=2048" % i) for i in range(n)]
        # submit --wait rides out the restart too: it reconnects and still gets the results.
        res_path = os.path.join(self.c.dir, "restart-results.tsv")
        waiter = self.c.submit_async("--results", res_path, "--quiet", self.c.write_input(urls))
        jid = waiter.popen.stdout.readline().decode().strip()
        self.assertTrue(jid.isdigit(), "no job id from submit: %r" % jid)
        time.sleep(1.2)   # let the AOF fsync what submit wrote
        self.wait_for("30% done", lambda: int(
            self.rcall("HGET", "fp:job:%s" % jid, "done") or 0) >= 0.3 * n, 60)
        before = int(self.rcall("HGET", "fp:job:%s" % jid, "done"))
        # Down for 3 s: results pile up in the workers' outboxes, reconnects back off.
        self._close_rc()
        self.c.redis_srv.stop(signal.SIGKILL)
        time.sleep(3)
        self.c.redis_srv.start()
        t_restart = time.monotonic()
        self.wait_for("progress after the restart", lambda: int(
            self.rcall("HGET", "fp:job:%s" % jid, "done") or 0) > before + 50, 30)
        resumed = time.monotonic() - t_restart
        took = self.wait_job(jid, 90)
        self.say("killed at %d/%d done; progress again %.2fs after the restart; job done "
                 "%.1fs later", before, n, resumed, took)
        self.check_job(jid, urls)
        waiter.popen.wait(timeout=60)
        self.assertEqual(waiter.popen.returncode, 0, waiter.tail())
        with open(res_path, encoding="utf-8") as f:
            got = [line.split("\t") for line in f.read().splitlines()[1:]]
        self.assertEqual([g[1] for g in got], urls)
        self.assertTrue(all(g[2] == "ok" for g in got))
        # Redis lost nothing (SIGKILL, not a host crash): no URL needed a second download.
        took_back = [line for w in self.c.workers for line in self.worker_log(w).splitlines()
                     if "took back" in line or "has no heartbeat" in line]
        took_back += [line for line in self.c.master.tail(30).splitlines()
                      if "has no heartbeat" in line]
        self.assertEqual(org.stats()["total"], n, "URLs downloaded twice after a restart "
                         "that lost nothing:\n%s" % "\n".join(took_back))

    def test_redis_outage_longer_than_heartbeat(self):
        """Redis down for 7 s (more than the 5 s heartbeat expiry) mid-job, the workers
        back 2 s after it (a worker retries its connection every 2 s at most, then
        heartbeats on its next 1 s tick): every worker is alive and holds its tasks, so
        none may be reaped as dead. With --attempts 1 a wrongly reaped task would end as
        worker_lost. (The workers are paused with SIGSTOP during the outage so that they
        are deterministically the last to reconnect.)"""
        n = 1500
        org = self.c.start_origin(delay_ms=100)
        self.c.start_master()
        for w in ("w1", "w2"):
            self.c.start_worker(w, "--concurrency", "16", "--host-conns", "16")
        self.c.wait_workers_registered(2)
        urls = [org.url("/img/%d.jpg?size=2048" % i) for i in range(n)]
        jid = self.submit_id("--attempts", "1", self.c.write_input(urls))
        time.sleep(1.2)
        self.wait_for("20% done", lambda: int(
            self.rcall("HGET", "fp:job:%s" % jid, "done") or 0) >= 0.2 * n, 60)
        self._close_rc()
        for w in self.c.workers:
            w.kill(signal.SIGSTOP)
        try:
            self.c.redis_srv.stop(signal.SIGKILL)
            time.sleep(7)
            self.c.redis_srv.start()
            time.sleep(2)
        finally:
            for w in self.c.workers:
                w.kill(signal.SIGCONT)
        took = self.wait_job(jid, 90)
        rows = self.job_rows(jid)
        bad = collections.Counter(r["status"] for r in rows if r["status"] != "ok")
        self.say("after a 7 s outage: job done %.1fs later; failures %s", took, dict(bad))
        self.assertEqual(dict(bad), {}, "live workers' tasks failed after the outage: %s"
                         % self.c.master.tail(6))
        self.check_job(jid, urls)
        self.assertEqual({r["attempts"] for r in rows}, {"1"})
        # A wrongly reaped task would now end ok all the same (a woken worker's result
        # replaces worker_lost): the reaper must not have run at all.
        self.assertNotIn("has no heartbeat", self.c.master.tail(200))

    def test_redis_loses_last_second(self):
        """As if the host crashed: Redis is SIGKILLed and the last second of its AOF cut
        off (what appendfsync everysec may lose), so writes it acknowledged vanish. Tasks
        may run twice; none may be lost and no result counted twice."""
        n = 1500
        org = self.c.start_origin(delay_ms=150)
        self.c.start_master()
        for w in ("w1", "w2"):
            self.c.start_worker(w, "--concurrency", "16", "--host-conns", "16")
        self.c.wait_workers_registered(2)
        urls = [org.url("/img/%d.jpg?size=2048" % i) for i in range(n)]
        jid = self.submit_id(self.c.write_input(urls))
        aof = glob.glob(os.path.join(self.c.redis_srv.dir, "appendonlydir", "*.incr.aof"))
        self.assertEqual(len(aof), 1, aof)
        sizes = collections.deque()
        while int(self.rcall("HGET", "fp:job:%s" % jid, "done") or 0) < 0.4 * n:
            sizes.append((time.monotonic(), os.path.getsize(aof[0])))
            time.sleep(0.02)
        before = int(self.rcall("HGET", "fp:job:%s" % jid, "done"))
        self._close_rc()
        self.c.redis_srv.stop(signal.SIGKILL)
        t_kill = time.monotonic()
        cut = max(size for t, size in sizes if t <= t_kill - 1.0)
        full = os.path.getsize(aof[0])
        os.truncate(aof[0], cut)
        self.c.redis_srv.start()
        after = int(self.rcall("HGET", "fp:job:%s" % jid, "done") or 0)
        took = self.wait_job(jid, 90)
        self.say("AOF cut from %d to %d bytes: done %d before, %d after the replay; job "
                 "done %.1fs later", full, cut, before, after, took)
        self.assertLess(after, before, "the cut lost no results: test did not test")
        self.check_job(jid, urls)

    def check_job(self, jid, urls):
        """One ok result per URL with the right bytes; counters and summary add up."""
        n = len(urls)
        rows = self.job_rows(jid)
        self.assert_rows(rows, urls, "ok", http_code=200)
        for i, row in enumerate(rows):
            self.assertEqual(row["sha256"], fp.origin_mod.image_sha256(i, "jpg", 2048), row)
        meta = self.rcall("HGETALL", "fp:job:%s" % jid)
        meta = dict(zip(meta[0::2], meta[1::2]))
        self.assertEqual((meta.get("done"), meta.get("ok"), meta.get("failed", "0")),
                         (str(n), str(n), "0"), meta)
        sm = self.rcall("HGETALL", "fp:job:%s:summary" % jid)
        summary = dict(zip(sm[0::2], sm[1::2]))
        self.assertEqual((summary.get("total"), summary.get("ok"), summary.get("failed")),
                         (str(n), str(n), "0"), summary)
        self.assert_files(rows)
        self.wait_drained()
        self.c.check_alive()
        for w in self.c.workers:
            log = self.worker_log(w)
            self.assertIn("connection lost", log)
            self.assertIn("connection back", log)


if __name__ == "__main__":
    fp.main()
