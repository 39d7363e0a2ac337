"""The Lua scripts one call at a time against a real redis-server: what each call leaves in
Redis when a result is sent again, when a key is damaged or a field holds nonsense
(findings 3, 5, 8 and 10 of the code review). The calls are the real ones: tests/
integration/fp_call.c prints them as the fp_call_* builders make them. One test runs the
whole cluster on a damaged host key.
Run alone: /usr/bin/python3 tests/integration/test_scripts.py --bin build/bin
"""

import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fp_harness as fp  # noqa: E402
from test_reliability import ReliabilityBase  # noqa: E402

HOST = "img.example"


def task(job, idx, url=None, flags=0):
    """A T1 task record: job idx line attempt max_attempts flags url."""
    url = url or "http://%s/%d.jpg" % (HOST, idx)
    return "T1\t%d\t%d\t%d\t1\t3\t%d\t%s" % (job, idx, idx + 1, flags, url)


def result(job, idx, status):
    """An R1 result record (the scripts only store it)."""
    return "\t".join(["R1", str(job), str(idx), str(idx + 1), status, "0", "0", "1000", "0",
                      "0", "0", "1", "w1", "", "", "", "http://%s/%d.jpg" % (HOST, idx), ""])


class ScriptBase(ReliabilityBase):

    def call(self, *args):
        """Runs the call fp-call prints for args; the reply, or the error as a RespError."""
        cp = subprocess.run([self.c.exe("fp-call")] + [str(a) for a in args],
                            capture_output=True, check=True)
        argv = cp.stdout.split(b"\0")[:-1]
        return self.rcall(*argv)

    def job(self, jid, total, **fields):
        f = {"total": total, "sealed": 1, "host_conns": 4, "host_rate": 0}
        f.update(fields)
        self.rcall("HSET", "fp:job:%d" % jid, *[x for kv in f.items() for x in kv])

    def taken(self, worker, *tasks):
        """tasks as the take script leaves them: in the processing list, with a lease."""
        self.rcall("RPUSH", "fp:proc:" + worker, *tasks)
        for t in tasks:
            f = t.split("\t")
            self.rcall("ZADD", "fp:lease:" + HOST, 10 ** 15, "%s\t%s\t%s" % (worker, f[1], f[2]))

    def finish(self, worker, *results):
        """results: (task, job, idx, status) tuples, sent in one call."""
        args = []
        for t, job, idx, status in results:
            args += [t, job, idx, result(job, idx, status), int(status == "ok"), status,
                     100 if status == "ok" else 0, 1000]
        return self.call("finish", worker, *args)

    def meta(self, jid):
        return self.c.redis().hgetall("fp:job:%d" % jid)


class ResendTest(ScriptBase):

    def test_resent_result_counts_host_events_once(self):
        """Finding 3: a connection failure's result sent again (a lost reply, a refused
        batch split, a twin) must not count against its host again: ten resends of one
        result would otherwise give the host up for the job. A second task's failure
        still counts."""
        self.job(1, 3)
        t0, t1 = task(1, 0), task(1, 1)
        self.taken("w1", t0, t1)
        for _ in range(10):
            self.assertIn(self.finish("w1", (t0, 1, 0, "connect_refused")), (0, 1))
        host = "fp:host:" + HOST
        self.assertEqual(self.rcall("HGET", host, "fails"), "1")
        self.assertEqual(self.rcall("SISMEMBER", "fp:job:1:down", HOST), 0)
        self.assertEqual(self.meta(1)["done"], "1")
        self.assertEqual(self.finish("w1", (t1, 1, 1, "connect_refused")), 1)
        self.assertEqual(self.rcall("HGET", host, "fails"), "2")
        self.assertEqual(self.rcall("ZCARD", "fp:lease:" + HOST), 0)
        # An answer of the host resent after a later failure does not clear the run.
        t2 = task(1, 2)
        self.taken("w1", t2)
        self.assertEqual(self.finish("w1", (t2, 1, 2, "ok")), 1)
        self.assertIsNone(self.rcall("HGET", host, "fails"))
        self.rcall("HSET", host, "fails", 5)
        self.assertEqual(self.finish("w1", (t2, 1, 2, "ok")), 0)
        self.assertEqual(self.rcall("HGET", host, "fails"), "5")

    def test_resent_retry_counts_host_events_once(self):
        """The same for a retry: sent again, it schedules the task once and tells its
        host once."""
        self.job(1, 1)
        t = task(1, 0)
        nxt = t.replace("\t1\t3\t", "\t2\t3\t")
        self.taken("w1", t)
        for i in range(10):
            self.assertEqual(self.call("retry", "w1", 1, t, nxt, 1000, "timeout", -1),
                             1 if i == 0 else 0)
        self.assertEqual(self.rcall("HGET", "fp:host:" + HOST, "fails"), "1")
        self.assertEqual(self.rcall("ZRANGE", "fp:retry", 0, -1), [nxt])
        self.assertEqual(self.rcall("ZCARD", "fp:lease:" + HOST), 0)

    def test_retry_of_a_task_handed_back_schedules_nothing(self):
        """Finding 6: a worker cut off from Redis (or frozen, or whose id another worker
        took) sends a retry for a task a reaper has handed back meanwhile (attempt raised,
        in fp:tasks): the retry must not put a second copy in fp:retry, or the task runs
        twice (and its attempts are used up twice as fast)."""
        self.job(1, 1)
        t = task(1, 0)
        nxt = t.replace("\t1\t3\t", "\t2\t3\t")
        self.taken("w1", t)
        self.rcall("LREM", "fp:proc:w1", 1, t)   # the reaper's requeue
        self.rcall("LPUSH", "fp:tasks", nxt)
        self.assertEqual(self.call("retry", "w1", 1, t, nxt, 1000, "timeout", -1), 0)
        self.assertEqual(self.rcall("ZCARD", "fp:retry"), 0)
        self.assertEqual(self.rcall("LRANGE", "fp:tasks", 0, -1), [nxt])


class DamagedHostFinishTest(ScriptBase):

    def test_damaged_host_key_loses_no_result(self):
        """A host's politeness keys are only advice: one that is damaged (fp:host:<h> a
        string, so the connection failure's HINCRBY fails) must not fail the finish call
        halfway, after the batch's earlier results left the processing list and took their
        slots (they were lost: sent again, each was a duplicate)."""
        self.job(1, 2)
        other = "http://other.example/1.jpg"
        t0, t1 = task(1, 0, url=other), task(1, 1)
        self.taken("w1", t0, t1)
        self.rcall("SET", "fp:host:" + HOST, "not a hash")
        self.assertEqual(self.finish("w1", (t0, 1, 0, "ok"), (t1, 1, 1, "connect_refused")), 2)
        m = self.meta(1)
        self.assertEqual((m["done"], m["ok"], m["failed"]), ("2", "1", "1"))
        self.assertEqual(self.rcall("LLEN", "fp:job:1:out"), 2)
        self.assertEqual(self.rcall("LRANGE", "fp:done", 0, -1), ["1"])
        self.assertEqual(self.rcall("LLEN", "fp:proc:w1"), 0)

    def test_damaged_host_key_retry_still_scheduled(self):
        """The same for a retry: it is scheduled, not lost between the processing list
        and fp:retry."""
        self.job(1, 1)
        t = task(1, 0)
        nxt = t.replace("\t1\t3\t", "\t2\t3\t")
        self.taken("w1", t)
        self.rcall("SET", "fp:host:" + HOST, "not a hash")
        self.assertEqual(self.call("retry", "w1", 1, t, nxt, 1000, "timeout", -1), 1)
        self.assertEqual(self.rcall("ZRANGE", "fp:retry", 0, -1), [nxt])
        self.assertEqual(self.rcall("LLEN", "fp:proc:w1"), 0)


class PartSizeTest(ScriptBase):

    def test_bad_part_size_refused_before_any_write(self):
        """Finding 10: a part_size that is not an integer from 1 to FP_PART_SIZE_MAX
        refuses that job's results before anything is written (the task stays in the
        processing list); a healthy job's result in the same batch is recorded whole."""
        bad = ["1.5", "0", "-3", "1e3", " 7", "16777217", "4294967297", "x"]
        for i, ps in enumerate(bad):
            good, broken = 10 + 2 * i, 11 + 2 * i
            self.job(good, 1, part_size=4)
            self.job(broken, 3, part_size=ps)
            tg, tb = task(good, 0), task(broken, 2)   # 1.5: SETBIT of bit 0.5 of part 1
            self.taken("w1", tg, tb)
            with self.assertRaises(fp.RespError) as e:
                self.finish("w1", (tg, good, 0, "ok"), (tb, broken, 2, "ok"))
            self.assertTrue(str(e.exception).startswith("FPREFUSED 1 of 2"), (ps, e.exception))
            m = self.meta(good)
            self.assertEqual((m.get("done"), m.get("ok")), ("1", "1"), ps)
            self.assertEqual(self.rcall("LLEN", "fp:job:%d:out" % good), 1, ps)
            self.assertEqual(self.rcall("GETBIT", "fp:job:%d:seen:0" % good, 0), 1, ps)
            m = self.meta(broken)
            self.assertNotIn("done", m, ps)
            self.assertEqual(self.rcall("LRANGE", "fp:proc:w1", 0, -1), [tb], ps)
            self.assertEqual(self.c.redis().keys("fp:job:%d:*" % broken), [], ps)
            self.rcall("DEL", "fp:proc:w1")
        # The largest allowed part size works.
        self.job(99, 1, part_size=16777216)
        t = task(99, 0)
        self.taken("w1", t)
        self.assertEqual(self.finish("w1", (t, 99, 0, "ok")), 1)


class AbandonTest(ScriptBase):

    def abandon(self, t, job, idx):
        return self.call("abandon", "w1", t, job, idx, result(job, idx, "internal_error"),
                         "internal_error")

    def test_abandon_twice(self):
        """Finding 8: an abandon sent again (a lost reply) adds no second dead letter and
        counts nothing twice; the job completes once."""
        self.job(1, 1)
        t = task(1, 0)
        self.taken("w1", t)
        self.assertEqual(self.abandon(t, 1, 0), 1)
        self.assertEqual(self.abandon(t, 1, 0), 0)
        self.assertEqual(self.rcall("LRANGE", "fp:dead", 0, -1), [t])
        m = self.meta(1)
        self.assertEqual((m["done"], m["failed"], m["fail:internal_error"]), ("1", "1", "1"))
        self.assertEqual(self.rcall("LRANGE", "fp:done", 0, -1), ["1"])
        self.assertEqual(self.rcall("LLEN", "fp:proc:w1"), 0)
        self.assertEqual(self.rcall("ZCARD", "fp:lease:" + HOST), 0)

    def test_abandon_after_finish(self):
        """A refused batch is split and its results sent one by one: a result the finish
        script counted there is not dead-lettered by a later abandon of the same task."""
        self.job(1, 2)
        t = task(1, 0)
        self.taken("w1", t)
        self.assertEqual(self.finish("w1", (t, 1, 0, "ok")), 1)
        self.assertEqual(self.abandon(t, 1, 0), 0)
        self.assertEqual(self.rcall("LLEN", "fp:dead"), 0)
        self.assertEqual(self.meta(1)["done"], "1")

    def test_abandon_cancelled_job(self):
        """A cancelled job records no result (as in the finish script): the task only
        leaves the processing list, giving its lease back."""
        self.job(1, 1, cancelled=12345)
        t = task(1, 0)
        self.taken("w1", t)
        self.assertEqual(self.abandon(t, 1, 0), 0)
        self.assertNotIn("done", self.meta(1))
        self.assertEqual(self.rcall("LLEN", "fp:job:1:out"), 0)
        self.assertEqual(self.rcall("LLEN", "fp:dead"), 0)
        self.assertEqual(self.rcall("LLEN", "fp:done"), 0)
        self.assertEqual(self.rcall("LLEN", "fp:proc:w1"), 0)
        self.assertEqual(self.rcall("ZCARD", "fp:lease:" + HOST), 0)

    def test_abandon_unusable_job(self):
        """The job hash is a string, or its part_size is nonsense: the task goes to fp:dead
        once. With a nonsense part_size (no seen bitmap to tell) it counts as failed the
        first time only, so its job still completes."""
        self.rcall("SET", "fp:job:1", "not a hash")
        t = task(1, 0)
        self.taken("w1", t)
        self.abandon(t, 1, 0)
        self.abandon(t, 1, 0)
        self.assertEqual(self.rcall("LRANGE", "fp:dead", 0, -1), [t])
        self.rcall("DEL", "fp:dead")
        self.job(2, 1, part_size="1.5")
        t = task(2, 0)
        self.taken("w1", t)
        self.assertEqual(self.abandon(t, 2, 0), 1)
        self.assertEqual(self.abandon(t, 2, 0), 0)
        self.assertEqual(self.rcall("LRANGE", "fp:dead", 0, -1), [t])
        self.assertEqual(self.meta(2)["done"], "1")
        self.assertEqual(self.rcall("LRANGE", "fp:done", 0, -1), ["2"])
        self.assertEqual(self.c.redis().keys("fp:job:2:seen:*"), [])


class TakeTest(ScriptBase):

    def take(self, n, check=None):
        args = ["take", "w1", n, 1, 90000] + ([check] if check is not None else [])
        return self.call(*args)

    def where(self, tasks):
        """Every task of tasks is in exactly one of fp:tasks, fp:proc:w1 or its host's
        park list: nothing is lost."""
        places = {k: self.rcall("LRANGE", k, 0, -1)
                  for k in ("fp:tasks", "fp:proc:w1", "fp:park:" + HOST)}
        for t in tasks:
            self.assertEqual(sum(v.count(t) for v in places.values()), 1, (t, places))
        return places

    def test_spare_only_from_the_surplus(self):
        """Spare tasks (beyond the free slots) come only out of what the queue holds
        beyond the other workers' concurrency: with one other worker of concurrency 3, a
        take of 2 free and 4 spare from 8 queued tasks gets 2 + (8 - 2 - 3) = 5, and the
        reply counts the 1 held back; from 4 queued, the 2 free ones only. Alone (no other
        worker registered), a worker takes its spare from whatever is there, and the
        reply counts what it did not get (the worker then waits for a free slot, or 200
        ms, instead of blocking in BLMOVE for a spare task)."""
        self.job(1, 20, host_conns=0)
        tasks = [task(1, i) for i in range(8)]
        self.rcall("RPUSH", "fp:tasks", *tasks)
        self.rcall("SADD", "fp:workers", "w0")
        r = self.call("take", "w1", 6, 1, 90000, "", 4, 3)
        self.assertEqual((r[0], r[5]), (tasks[:5], 1))
        self.where(tasks)
        self.rcall("DEL", "fp:proc:w1")
        self.rcall("DEL", "fp:tasks")
        self.rcall("RPUSH", "fp:tasks", *tasks[:4])
        r = self.call("take", "w1", 6, 1, 90000, "", 4, 3)
        self.assertEqual((r[0], r[5]), (tasks[:2], 4))
        self.rcall("SREM", "fp:workers", "w0")
        self.rcall("RPUSH", "fp:tasks", *tasks[4:])
        r = self.call("take", "w1", 6, 1, 90000, "", 4, 3)
        self.assertEqual((r[0], r[5]), (tasks[2:8], 0))
        r = self.call("take", "w1", 6, 1, 90000, "", 4, 3)
        self.assertEqual((r[0], r[5]), ([], 4))

    def test_damaged_host_key(self):
        """Finding 5: a task whose host state cannot be read (fp:host:<h> a string:
        WRONGTYPE) is not lost: it goes to the processing list and the reply names it
        (the worker fails it as internal_error, with the error); a healthy job's tasks
        in the same batch run as before."""
        self.job(1, 4)                      # limited: judged against its host
        self.job(2, 4, host_conns=0)        # not limited: never looks at the host
        tasks = [task(1, 0), task(2, 0), task(1, 1), task(2, 1)]
        self.rcall("RPUSH", "fp:tasks", *tasks)
        self.rcall("SET", "fp:host:" + HOST, "not a hash")
        r = self.take(10)
        places = self.where(tasks)
        self.assertEqual(places["fp:proc:w1"], tasks)
        self.assertEqual(r[0], [tasks[1], tasks[3]])
        self.assertEqual((r[1], r[2]), (0, []))
        self.assertEqual(r[3], [tasks[0], tasks[2]])
        self.assertIn("WRONGTYPE", r[4])
        self.assertEqual(self.rcall("ZCARD", "fp:lease:" + HOST), 0)

    def test_damaged_job_key_and_check(self):
        """The same for a job hash that is not a hash, and for the task BLMOVE moved
        (judged first): nothing leaves the processing list or is lost."""
        self.rcall("SET", "fp:job:1", "not a hash")
        self.job(2, 4)
        moved, queued = task(1, 0), [task(1, 1), task(2, 0)]
        self.rcall("RPUSH", "fp:proc:w1", moved)
        self.rcall("RPUSH", "fp:tasks", *queued)
        r = self.take(5, moved)
        self.where([moved] + queued)
        self.assertEqual(r[0], [queued[1]])
        self.assertEqual(r[3], [moved, queued[0]])
        self.assertIn("WRONGTYPE", r[4])
        # A healthy take says no error.
        self.rcall("DEL", "fp:proc:w1")
        self.rcall("RPUSH", "fp:tasks", task(2, 1))
        r = self.take(5)
        self.assertEqual((r[0], r[3], r[4]), ([task(2, 1)], [], ""))


class PromoteTest(ScriptBase):

    def test_damaged_host_key_stalls_no_other_host(self):
        """A parked host whose state cannot be read (fp:host:<h> a string: WRONGTYPE)
        must not stall every other parked host, as it did when one error failed the whole
        promote call: the healthy host's tasks go back to the queue, and so do the
        damaged host's, unjudged (the take script then fails them as internal_error,
        with the error), so no task stays parked for ever."""
        other = "other.example"
        bad = [task(1, 0), task(1, 1)]
        good = [task(2, 0, "http://%s/0.jpg" % other), task(2, 1, "http://%s/1.jpg" % other)]
        self.rcall("RPUSH", "fp:park:" + HOST, *bad)
        self.rcall("RPUSH", "fp:park:" + other, *good)
        self.rcall("ZADD", "fp:parked", 0, HOST, 0, other)
        self.rcall("HSET", "fp:host:" + other, "conns", 4, "rate", 0)
        self.rcall("SET", "fp:host:" + HOST, "not a hash")
        self.assertEqual(self.call("promote", 1000), 4)
        self.assertEqual(sorted(self.rcall("LRANGE", "fp:tasks", 0, -1)), sorted(bad + good))
        self.assertEqual(self.rcall("ZCARD", "fp:parked"), 0)
        self.assertEqual(self.rcall("EXISTS", "fp:park:" + HOST, "fp:park:" + other), 0)

    def test_robots_wait_holds_no_other_jobs_task(self):
        """A host whose last park was a robots task waiting for its rules (why=robots, no
        fp:crawl key yet) must not hold the other tasks parked on it: a capped job
        without --robots parked there for its caps is promoted as soon as its budget
        allows (the earlier hold moved none of the host's tasks for up to 10 s)."""
        t = task(2, 0)
        self.rcall("RPUSH", "fp:park:" + HOST, t)
        self.rcall("ZADD", "fp:parked", 0, HOST)
        self.rcall("HSET", "fp:host:" + HOST, "conns", 4, "rate", 0, "why", "robots",
                   "robots_of", HOST, "parked_ms", int(self.rcall("TIME")[0]) * 1000)
        self.assertEqual(self.call("promote", 1000), 1)
        self.assertEqual(self.rcall("LRANGE", "fp:tasks", 0, -1), [t])

    def test_damaged_park_list(self):
        """A park list that is not a list holds no task: its host leaves fp:parked, and
        the other hosts are promoted."""
        other = "other.example"
        good = [task(2, 0, "http://%s/0.jpg" % other)]
        self.rcall("SET", "fp:park:" + HOST, "not a list")
        self.rcall("RPUSH", "fp:park:" + other, *good)
        self.rcall("ZADD", "fp:parked", 0, HOST, 0, other)
        self.assertEqual(self.call("promote", 1000), 1)
        self.assertEqual(self.rcall("LRANGE", "fp:tasks", 0, -1), good)
        self.assertEqual(self.rcall("ZCARD", "fp:parked"), 0)


class HostGroupTest(ScriptBase):
    """A job with host_group=domain: the master writes each task's label count into its
    flags (bits 4-7), and every script must derive the same budget key from the record,
    the registered domain, so the lease the take script gives is the one finish and retry
    give back (else it would hold the domain's slot until its expiry, 90 s here)."""

    def group(self, line):
        """(URL, label count, key) as the master makes them (fp-call group)."""
        cp = subprocess.run([self.c.exe("fp-call"), "group", line], capture_output=True,
                            check=True)
        url, labels, key = cp.stdout.decode().split("\0")[:3]
        return url, int(labels), key

    def take(self, n):
        return self.call("take", "w1", n, 1, 90000)

    def leases(self):
        return {k: int(self.rcall("ZCARD", k)) for k in self.c.redis().keys("fp:lease:*")}

    def test_lua_derives_the_masters_key(self):
        """For each URL the lease the take script gives is under the key the master's C
        mapping expects: subdomains, a co.uk-style suffix, upper case, a trailing dot,
        userinfo and port, IP literals (v4, v6), an unknown top-level domain."""
        lines = ["http://a.img.example.co.uk/1.jpg", "http://User@B.IMG.Example.CO.UK:8080/x",
                 "http://c.example.co.uk./x", "http://192.168.1.1/x", "http://[::1]:81/x",
                 "http://a.cdn.example/x", "http://example.com/x", "http://co.uk/x"]
        want = ["example.co.uk", "example.co.uk", "example.co.uk", "192.168.1.1", "[::1]",
                "cdn.example", "example.com", "co.uk"]
        for i, (line, key) in enumerate(zip(lines, want)):
            jid = i + 1
            self.job(jid, 1, host_conns=4)
            url, labels, ckey = self.group(line)
            self.assertEqual(ckey, key, line)
            self.rcall("RPUSH", "fp:tasks", task(jid, 0, url, labels << 4))
            self.assertEqual(len(self.take(1)[0]), 1)
            self.assertIsNotNone(self.rcall("ZSCORE", "fp:lease:" + key, "w1\t%d\t0" % jid),
                                 (line, self.leases()))
        self.assertEqual(sum(self.leases().values()), len(lines), self.leases())
        self.assertEqual(set(self.leases()), set("fp:lease:" + k for k in want))

    def test_robots_probe_empties_the_domains_bucket(self):
        """Crawl-delay under --host-group domain: the request that finds a host's rules
        out empties the token bucket of the domain (the one its job spends from), so the
        request after the delay is learnt waits a whole delay; the worker's reset of the
        host name's own bucket would miss it (review 3, finding 2)."""
        self.job(1, 2, host_conns=0, host_rate=100)
        url, labels, key = self.group("http://a.cdn.example/1.jpg")
        self.assertEqual(key, "cdn.example")
        self.rcall("RPUSH", "fp:tasks", task(1, 0, url, labels << 4 | 8))
        self.assertEqual(len(self.take(1)[0]), 1)
        self.assertEqual(float(self.rcall("HGET", "fp:host:cdn.example", "tok")), 0)

    def test_finish_and_retry_give_the_grouped_lease_back(self):
        """host_conns 2 over four subdomains of example.co.uk: two run, two are parked on
        the domain; finish and retry each give the domain's lease back and let a parked
        task in, and once all are done no lease is left. The same tasks without the label
        count are four hosts of their own (the flag is what groups them)."""
        self.job(1, 5, host_conns=2)
        tasks = []
        for i, sub in enumerate("abcd"):
            url, labels, key = self.group("http://%s.img.example.co.uk/%d.jpg" % (sub, i))
            self.assertEqual((labels, key), (3, "example.co.uk"))
            tasks.append(task(1, i, url, labels << 4))
        self.rcall("RPUSH", "fp:tasks", *tasks)
        r = self.take(10)
        self.assertEqual(r[0], tasks[:2])
        self.assertEqual(self.leases(), {"fp:lease:example.co.uk": 2})
        self.assertEqual(self.rcall("LRANGE", "fp:park:example.co.uk", 0, -1), tasks[2:])
        self.assertEqual(self.rcall("ZRANGE", "fp:parked", 0, -1), ["example.co.uk"])
        self.assertEqual(self.rcall("HGET", "fp:job:1:throttle", "example.co.uk"), "2")
        self.assertEqual(self.finish("w1", (tasks[0], 1, 0, "ok")), 1)
        self.assertEqual(self.leases(), {"fp:lease:example.co.uk": 1})
        self.assertEqual(self.rcall("LRANGE", "fp:tasks", 0, -1), [tasks[2]])
        nxt = tasks[1].replace("\t1\t3\t", "\t2\t3\t")
        self.assertEqual(self.call("retry", "w1", 1, tasks[1], nxt, 0, "http_503", -1), 1)
        self.assertEqual(self.leases(), {})
        self.assertEqual(self.rcall("LRANGE", "fp:tasks", 0, -1), [tasks[3], tasks[2]])
        self.assertEqual(self.rcall("ZCARD", "fp:parked"), 0)
        # The 503 slowed the domain down, not the subdomain.
        self.assertIsNotNone(self.rcall("HGET", "fp:host:example.co.uk", "slow"))
        self.assertEqual(self.c.redis().keys("fp:host:*"), ["fp:host:example.co.uk"])
        self.rcall("DEL", "fp:host:example.co.uk")  # its 503 would halve the budget to 1
        self.assertEqual(self.take(10)[0], [tasks[3], tasks[2]])
        self.assertEqual(self.leases(), {"fp:lease:example.co.uk": 2})
        self.assertEqual(self.finish("w1", (tasks[3], 1, 3, "ok"), (tasks[2], 1, 2, "ok")), 2)
        self.assertEqual(self.leases(), {})
        self.assertEqual(self.rcall("LLEN", "fp:proc:w1"), 0)
        # Without the label count each subdomain is a host of its own.
        plain = [task(1, 4, "http://%s.img.example.co.uk/4.jpg" % sub) for sub in "abc"]
        self.rcall("DEL", "fp:lease:example.co.uk")
        self.rcall("RPUSH", "fp:tasks", *plain)
        self.assertEqual(self.take(10)[0], plain)
        self.assertEqual(self.leases(), {"fp:lease:%s.img.example.co.uk" % sub: 1
                                         for sub in "abc"})


class DamagedHostClusterTest(ReliabilityBase):

    def test_job_finishes_with_a_damaged_host_key(self):
        """Finding 5, the whole way: the host's state key is a string while a job with a
        per-host cap runs. Every URL gets a result (internal_error, naming the error) and
        the job finishes; no task is left anywhere."""
        org = self.c.start_origin()
        self.c.redis().call("SET", "fp:host:127.0.0.1", "not a hash")
        self.c.start_master()
        self.c.start_worker("w1", "--concurrency", "4")
        self.c.wait_workers_registered(1)
        urls = [org.url("/img/%d.jpg?size=512" % i) for i in range(20)]
        jid = self.submit_id("--host-conns", "2", self.c.write_input(urls))
        self.wait_job(jid, 30)
        rows = self.job_rows(jid)
        self.assert_rows(rows, urls, "internal_error")
        self.assertIn("WRONGTYPE", rows[0]["error"])
        self.assertEqual(org.stats()["total"], 0)
        self.assert_queues_drained()
        self.c.check_alive()


if __name__ == "__main__":
    fp.main()
