#!/usr/bin/python3
"""The master's results writer (master/results.c) against two ways to lose a result that
the review of /work/notes/review.md found (findings 1 and 2). Redis's side of each race is
set up by hand, so both are deterministic:
- a master whose writer lease went to another master must not trim fp:job:<id>:out (the
  other one reads and trims it: a second trim deletes records nobody has read);
- a worker_lost result that the finish script replaced with the real one after the
  master's LRANGE must not be written to the part file (Redis counts the real one).
ScriptTest runs the trim script and the finish script after the master's mark one call at a
time (calls built by tests/integration/fp_call.c, as in test_scripts.py).
Run alone: /usr/bin/python3 tests/integration/test_writer.py --bin build/bin
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fp_harness as fp  # noqa: E402
from test_reliability import ReliabilityBase  # noqa: E402
from test_scripts import ScriptBase, task  # noqa: E402

SHA = "ab" * 32
PSIZE = 4


def rec(jid, idx, status="ok"):
    """An R1 result record (proto/PROTOCOL.md) for slot idx."""
    ok = status == "ok"
    return "\t".join([
        "R1", str(jid), str(idx), str(idx + 1), status, "200" if ok else "0",
        "100" if ok else "0", "1000", "0", "0", "0", "1", "w1", SHA if ok else "",
        "ab/%s.jpg" % SHA if ok else "", "image/jpeg" if ok else "",
        "http://h.test/%d.jpg" % idx, ""])


class WriterTest(ReliabilityBase):

    def job(self, n):
        """A job of n lines and no worker: its results are whatever the test pushes."""
        self.c.start_master("--part-size", str(PSIZE))
        urls = ["http://127.0.0.1:9/%d.jpg" % i for i in range(n)]
        jid = self.submit_id(self.c.write_input(urls))
        self.check(fp.wait_for(lambda: self.rcall("GET", "fp:job:%s:writer" % jid), 20),
                   "the master never took the writer lease")
        return jid

    def part(self, jid, no):
        return os.path.join(self.c.results, str(jid), "part-%06d.tsv" % no)

    def test_stale_writer_leaves_out_alone(self):
        """Another master took the lease while this one trusted its cached lease: the
        records are left in :out for it; once that lease ends this master carries on."""
        jid = self.job(PSIZE)
        wkey, out = "fp:job:%s:writer" % jid, "fp:job:%s:out" % jid
        # Just after a renewal: the master trusts its lease for the next 3 s.
        self.check(fp.wait_for(lambda: int(self.rcall("PTTL", wkey)) > 14000, 10, step=0.01),
                   "the lease was not renewed")
        self.rcall("EVAL", "redis.call('SET', KEYS[1], ARGV[1], 'PX', 60000)\n"
                   "return redis.call('RPUSH', KEYS[2], unpack(ARGV, 2))", 2, wkey, out,
                   "other-1", *[rec(jid, i) for i in range(PSIZE)])
        refused = lambda: "results not trimmed" in self.c.master.tail(200)  # noqa: E731
        fp.wait_for(lambda: refused() or int(self.rcall("LLEN", out)) < PSIZE, 5)
        self.assertEqual(int(self.rcall("LLEN", out)), PSIZE, self.c.logs())
        self.check(refused(), "the master did not try to drain")
        self.assertEqual(self.rcall("GET", wkey), "other-1")
        self.assertFalse(os.path.exists(self.part(jid, 0)))
        # The other master is gone and its lease with it: this one takes the job back.
        self.rcall("DEL", wkey)
        self.check(fp.wait_for(lambda: os.path.exists(self.part(jid, 0)), 20),
                   "the part was not written after the lease came back")
        rows = fp.read_tsv(self.part(jid, 0))
        self.assertEqual([r["status"] for r in rows], ["ok"] * PSIZE)
        self.assertEqual(int(self.rcall("LLEN", out)), 0)
        self.assertTrue(self.c.master.alive())

    def test_replaced_worker_lost_is_not_written(self):
        """The last missing slot of part 0 is a worker_lost result in the master's batch
        (LRANGE reads 10,000); the finish script then replaced it (its :lost bit is 0)
        and pushed the real result behind the batch. The part must say ok, as Redis does."""
        jid = self.job(PSIZE)
        out = "fp:job:%s:out" % jid
        batch = [rec(jid, i) for i in range(PSIZE - 1)] + [rec(jid, PSIZE - 1, "worker_lost")]
        batch += [rec(jid, 0)] * (10000 - len(batch))  # duplicates, skipped
        self.rcall("RPUSH", out, *(batch + [rec(jid, PSIZE - 1)]))
        self.check(fp.wait_for(lambda: os.path.exists(self.part(jid, 0)), 20),
                   "part 0 was not written")
        rows = fp.read_tsv(self.part(jid, 0))
        self.assertEqual([r["status"] for r in rows], ["ok"] * PSIZE, rows)
        self.assertEqual(int(self.rcall("GETBIT", "fp:job:%s:parts" % jid, 0)), 1)
        self.check(fp.wait_for(lambda: int(self.rcall("LLEN", out)) == 0, 10), ":out left")


    def test_histogram_counts_what_was_trimmed(self):
        """The master adds the successes of each batch it trims to the job's latency
        histogram (fp_trim.c): ok records only, each once."""
        jid = self.job(3 * PSIZE)
        out = "fp:job:%s:out" % jid
        recs = [rec(jid, i, "ok" if i % 3 else "http_404") for i in range(3 * PSIZE)]
        self.rcall("RPUSH", out, *recs)
        self.check(fp.wait_for(lambda: int(self.rcall("LLEN", out)) == 0, 10), ":out left")
        lat = self.rcall("HGETALL", "fp:job:%s:lat" % jid)
        self.assertEqual(len(lat), 2, lat)  # every record took 1000 us: one bucket
        self.assertEqual(int(lat[1]), sum(1 for i in range(3 * PSIZE) if i % 3), lat)


class ScriptTest(ScriptBase):
    """The two scripts one call at a time (tests/integration/fp_call.c builds the calls)."""

    def test_trim_only_by_the_lease_holder_and_only_what_was_read(self):
        out, wkey = "fp:job:5:out", "fp:job:5:writer"
        recs = [rec(5, i) for i in range(6)]
        self.rcall("RPUSH", out, *recs)
        self.rcall("SET", wkey, "m-2", "PX", 60000)  # another master took the lease over
        self.assertEqual(self.call("trim", 5, "m-1", 3, recs[2], 15000), -1)
        self.assertEqual(self.rcall("LRANGE", out, 0, -1), recs)
        # ... read the same 3 and trimmed them: our 3 are no longer at the head.
        self.rcall("SET", wkey, "m-1", "PX", 1000)
        self.rcall("LTRIM", out, 3, -1)
        self.assertEqual(self.call("trim", 5, "m-1", 3, recs[2], 15000), -2)
        self.assertEqual(self.rcall("LRANGE", out, 0, -1), recs[3:])
        self.assertEqual(self.call("trim", 5, "m-1", 2, recs[4], 15000), 2)
        self.assertEqual(self.rcall("LRANGE", out, 0, -1), recs[5:])
        self.assertGreater(int(self.rcall("PTTL", wkey)), 10000)  # renewed
        self.rcall("DEL", wkey)  # expired
        self.assertEqual(self.call("trim", 5, "m-1", 1, recs[5], 15000), -1)
        self.assertEqual(self.rcall("LLEN", out), 1)

    def test_trim_adds_its_histogram_once(self):
        """The histogram comes with the trim: a trim refused (the head moved) adds
        nothing, and a histogram key that is not a hash is left alone while the trim
        goes on (the job's report warns)."""
        out, wkey, lat = "fp:job:5:out", "fp:job:5:writer", "fp:job:5:lat"
        recs = [rec(5, i) for i in range(4)]
        self.rcall("RPUSH", out, *recs)
        self.rcall("SET", wkey, "m-1", "PX", 60000)
        self.assertEqual(self.call("trim", 5, "m-1", 2, recs[1], 15000, "70 1 81 1"), 2)
        self.assertEqual(self.c.redis().hgetall(lat), {"70": "1", "81": "1"})
        self.assertEqual(self.call("trim", 5, "m-1", 2, recs[1], 15000, "70 1 81 1"), -2)
        self.assertEqual(self.call("trim", 5, "m-1", 1, recs[2], 15000, "81 1"), 1)
        self.assertEqual(self.c.redis().hgetall(lat), {"70": "1", "81": "2"})
        self.rcall("SET", lat, "not a hash")
        self.assertEqual(self.call("trim", 5, "m-1", 1, recs[3], 15000, "70 1"), 1)
        self.assertEqual(self.rcall("GET", lat), "not a hash")
        self.assertEqual(self.rcall("LLEN", out), 0)

    def test_no_replacement_once_the_part_is_marked(self):
        """The mark the master sets before it writes a part: the worker that was only
        frozen finds its worker_lost result kept, counters and :out unchanged."""
        self.job(6, 4, part_size=4, host_conns=0)
        t = task(6, 3)
        self.taken("w9", t)
        self.assertEqual(self.finish("w9", ("", 6, 3, "worker_lost")), 1)
        self.rcall("SETBIT", "fp:job:6:parts", 0, 1)
        before = self.meta(6)
        self.assertEqual(self.finish("w9", (t, 6, 3, "ok")), 0)
        self.assertEqual(self.meta(6), before)
        self.assertEqual(self.rcall("LLEN", "fp:job:6:out"), 1)
        self.assertEqual(int(self.rcall("GETBIT", "fp:job:6:lost:0", 3)), 1)


if __name__ == "__main__":
    fp.main()
