"""Hostile conditions around the fetch: a full disk, stale temp files, poison messages in
every Redis queue, and input files full of junk.

Each asserts the exact result `status` (or where a poison record went) and that the master
and workers stay alive and later jobs still complete. The full-disk test mounts a small
tmpfs as the output folder (needs root / CAP_SYS_ADMIN; skipped with a message otherwise).
Run alone: /usr/bin/python3 tests/integration/test_hostile_store.py --bin build/bin
"""

import os
import shutil
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fp_harness as fp  # noqa: E402
from fp_harness import wait_for  # noqa: E402
from test_hostile import HostileCase, start_worker  # noqa: E402


def log_text(proc):
    with open(proc.log_path, "rb") as f:
        return f.read().decode("utf-8", "replace")


class DiskFullTest(unittest.TestCase):
    """The output folder is a 256 KB tmpfs and the worker does not wait for room
    (--store-wait 0): a body that does not fit is disk_full at once (while streaming to a
    temp file, and when publishing a small in-memory body), the temp file is removed, and
    the worker goes on serving once there is room again."""

    def setUp(self):
        self.c = fp.Cluster("diskfull")
        self.addCleanup(self.c.close)
        self.mnt = self.c.mkdir("tmpfs-out")
        cp = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", self.mnt],
                            capture_output=True, text=True)
        if cp.returncode != 0:
            self.skipTest("cannot mount a tmpfs (need root/CAP_SYS_ADMIN): %s"
                          % cp.stderr.strip())
        self.addCleanup(self.unmount)
        self.c.start_redis()
        self.origin = self.c.start_origin()
        self.c.start_master()
        # --store-wait 0: fail at once instead of pausing (test_disk.py has the pause).
        self.w = start_worker(self.c, "w1", "--store-wait", "0", output=self.mnt)
        self.assertTrue(self.c.wait_workers_registered(1), self.c.logs())

    def unmount(self):
        self.c.close()   # the worker first: it keeps files open under the mount
        if subprocess.run(["umount", self.mnt], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", self.mnt], capture_output=True)
        if not os.environ.get("FP_KEEP"):
            shutil.rmtree(self.c.dir, ignore_errors=True)   # close() could not rmdir the mount

    def job(self, urls):
        src = self.c.write_input(urls, name="in-%d.txt" % time.monotonic_ns())
        res = self.c.path("res-%d.jsonl" % time.monotonic_ns())
        s = self.c.submit("--wait", "--attempts", "1", "--format", "jsonl", "--results", res,
                          src, timeout=60)
        self.assertIn(s.rc, (0, 1), "%r\n%s" % (s, self.c.logs()))
        return fp.read_jsonl(res)

    def leftovers(self):
        return self.c.temp_leftovers(self.mnt)

    def test_disk_full_then_recovers(self):
        # 1. Streaming: 400 KB goes to a temp file (over the 64 KB memory buffer): ENOSPC.
        rows = self.job([self.origin.url("/img/1.jpg?size=400000")])
        self.assertEqual(rows[0]["status"], "disk_full", rows[0])
        self.assertIn("No space left", rows[0]["error"], rows[0])
        self.assertEqual(self.leftovers(), [], "temp file of the failed body left behind")
        self.c.check_alive()

        # 2. Publishing: a 40 KB body kept in memory, with only ~8 KB left on the disk.
        filler = os.path.join(self.mnt, "filler")
        with open(filler, "wb") as f:
            try:
                f.write(bytes(256 * 1024 - 8192))
            except OSError:
                pass
        st = os.statvfs(self.mnt)
        self.assertLess(st.f_bavail * st.f_frsize, 40000, "filler did not fill the disk")
        rows = self.job([self.origin.url("/img/2.jpg?size=40000")])
        self.assertEqual(rows[0]["status"], "disk_full", rows[0])
        self.assertEqual(self.leftovers(), [])
        self.c.check_alive()

        # 3. Room again: the same worker stores both.
        os.unlink(filler)
        rows = self.job([self.origin.url("/img/2.jpg?size=40000"),
                         self.origin.url("/img/3.jpg?size=100000")])
        self.assertEqual([r["status"] for r in rows], ["ok", "ok"], rows)
        for row, n, size in zip(rows, (2, 3), (40000, 100000)):
            self.assertEqual(row["sha256"], fp.origin_mod.image_sha256(n, "jpg", size))
            self.assertTrue(os.path.exists(os.path.join(self.mnt, row["path"])))
        self.assertEqual(self.leftovers(), [])
        self.c.check_alive()


class StaleTempSweepTest(unittest.TestCase):
    """At start a worker removes <out>/.tmp/*.part files older than its threshold
    (2 x --timeout + 600 s), and leaves younger ones (maybe another live worker's)."""

    def test_sweep_at_start(self):
        c = fp.Cluster("sweep")
        self.addCleanup(c.close)
        tmp = c.mkdir("out", ".tmp")
        old = os.path.join(tmp, "deadworker.1.part")
        young = os.path.join(tmp, "liveworker.7.part")
        other = os.path.join(tmp, "notes.txt")
        for p in (old, young, other):
            with open(p, "wb") as f:
                f.write(b"\xff\xd8\xff" + bytes(1000))
        hour_ago = time.time() - 3600
        os.utime(old, (hour_ago, hour_ago))
        os.utime(other, (hour_ago, hour_ago))
        c.start_redis()
        start_worker(c, "w1", "--timeout", "10")   # threshold 620 s
        self.assertTrue(c.wait_workers_registered(1), c.logs())
        self.assertFalse(os.path.exists(old), "stale temp file not swept")
        self.assertTrue(os.path.exists(young), "a young temp file was swept")
        self.assertTrue(os.path.exists(other), "a non-.part file was swept")
        c.check_alive()


class PoisonTest(HostileCase):
    """Garbage in every queue: logged and set aside, the job next to it completes, the master
    and the worker stay alive."""

    def assert_alive(self):
        time.sleep(0.3)
        self.c.check_alive()

    def good_job(self, tag):
        urls = [self.url("/img/%d.jpg" % (tag + i)) for i in range(3)]
        rows, s = self.run_job(urls, timeout=30)
        self.assertEqual([r["status"] for r in rows], ["ok"] * 3, "%r\n%s" % (rows,
                                                                            self.c.logs()))
        return s

    def test_garbage_tasks_are_dead_letters(self):
        r = self.c.redis()
        bad = [b"garbage",
               b"T1\tnot\ta\ttask",
               b"T1\t1\t2\t3\t4\t5\t6\thttp://127.0.0.1/x\x00y",
               b"\xff\xfe\x00\x01 non-utf8",
               b"T9\t" + b"A" * 10000,
               b"T1\t18446744073709551616\t0\t1\t1\t3\t0\thttp://127.0.0.1/overflow",
               b"",
               b"T1\tx\t0\t1\t1\t3\t0\thttps://user:s3cret@127.0.0.1/x"]
        r.call("DEL", "fp:dead")
        r.call("RPUSH", "fp:tasks", *bad)
        got = wait_for(lambda: r.call("LLEN", "fp:dead") >= len(bad), timeout=10)
        dead = r.call("LRANGE", "fp:dead", 0, -1)
        self.assertTrue(got, "dead letters: %r\n%s" % (dead, self.c.logs()))
        self.assertEqual(len(dead), len(bad), dead)
        self.assertEqual(r.call("LLEN", "fp:tasks"), 0)
        self.assertEqual(r.call("LLEN", "fp:proc:w1"), 0)
        log = log_text(self.c.workers[0])
        self.assertIn("dead letter", log)
        self.assertNotIn("s3cret", log, "a dead letter's URL is logged redacted")
        self.assertIn("user:***@127.0.0.1", log)
        self.assert_alive()
        self.good_job(300)

    def test_wellformed_task_of_unknown_job_is_dropped(self):
        # Decodes fine, so it is fetched; the finish script then finds no such job and the
        # result is dropped: nothing is left in the processing list or under the job's keys.
        r = self.c.redis()
        task = "T1\t777777\t0\t1\t1\t1\t0\t%s" % self.url("/img/350.jpg")
        r.call("RPUSH", "fp:tasks", task)
        fetched = wait_for(lambda: "/img/350.jpg" in self.origin.stats()["paths"], timeout=10)
        self.assertTrue(fetched, self.c.logs())
        self.assertTrue(wait_for(lambda: r.call("LLEN", "fp:proc:w1") == 0, timeout=5))
        self.assertEqual(r.keys("fp:job:777777*"), [])
        self.assertEqual(r.call("LLEN", "fp:tasks"), 0)
        self.assert_alive()
        self.good_job(355)

    def test_garbage_retry_entry_is_promoted_then_buried(self):
        r = self.c.redis()
        r.call("DEL", "fp:dead")
        r.call("ZADD", "fp:retry", 0, "retry-garbage\t\x01", 0, "T1\tx")
        got = wait_for(lambda: r.call("LLEN", "fp:dead") >= 2, timeout=10)
        self.assertTrue(got, "retry garbage not buried: dead=%r retry=%r\n%s" % (
            r.call("LRANGE", "fp:dead", 0, -1), r.call("ZRANGE", "fp:retry", 0, -1),
            self.c.logs()))
        self.assertEqual(r.call("ZCARD", "fp:retry"), 0)
        self.assert_alive()
        self.good_job(310)

    def test_garbage_job_ids_are_moved_aside(self):
        r = self.c.redis()
        bad = ["not-a-job", "-1", "99999999", "1e3", "\xff\x00bin", "x" * 10000]
        r.call("RPUSH", "fp:jobs:new", *bad)
        gone = wait_for(lambda: r.call("LLEN", "fp:jobs:new") == 0, timeout=10)
        self.assertTrue(gone, "fp:jobs:new still holds %r\n%s" % (
            r.call("LRANGE", "fp:jobs:new", 0, -1), self.c.logs()))
        active = r.call("LRANGE", "fp:jobs:active", 0, -1)
        self.assertEqual([a for a in active if not a.isdigit() or a == "99999999"], [],
                         "garbage left in fp:jobs:active")
        self.assertIn("not-a-job", r.call("LRANGE", "fp:dead", 0, -1))
        self.assertIn("bad job id", log_text(self.c.master))
        self.assert_alive()
        self.good_job(320)

    def test_garbage_done_ids_are_moved_aside(self):
        r = self.c.redis()
        bad = ["not-a-job", "99999998", "", "\x00", "y" * 10000]
        r.call("RPUSH", "fp:done", *bad)
        gone = wait_for(lambda: r.call("LLEN", "fp:done") == 0, timeout=10)
        self.assertTrue(gone, "fp:done still holds %r\n%s" % (
            r.call("LRANGE", "fp:done", 0, 5), self.c.logs()))
        self.assertIn("not-a-job", r.call("LRANGE", "fp:dead", 0, -1))
        self.assert_alive()
        self.good_job(330)

    def test_junk_input_lines_are_invalid_input(self):
        r = self.c.redis()
        # A job pushed by hand (not through submit), so the master sees the raw bytes.
        jid = r.call("INCR", "fp:seq")
        good = self.url("/img/340.jpg").encode()
        lines = [b"\xff\xfe\xfd", b"http://127.0.0.1/\x00nul", b"http://x/" + b"a" * 10240,
                 good, b"\x1b[31mred", b"http://127.0.0.1/caf\xc3"]
        r.call("RPUSH", "fp:job:%d:in" % jid, *lines)
        r.call("HSET", "fp:job:%d" % jid, "state", "new", "lines", len(lines), "attempts", 1,
               "flags", 0, "created_us", int(time.time() * 1e6))
        r.call("RPUSH", "fp:jobs:new", jid)
        done = wait_for(lambda: r.call("HGET", "fp:job:%d" % jid, "state") == "done",
                        timeout=20)
        self.assertTrue(done, "job %d did not complete\n%s" % (jid, self.c.logs()))
        got = {int(row["line"]): (row["status"], row["error"]) for row in self.c.job_rows(jid)}
        self.assertEqual(sorted(got), [1, 2, 3, 4, 5, 6], got)
        self.assertEqual(got[1], ("invalid_input", "not valid UTF-8"))
        self.assertEqual(got[2], ("invalid_input", "NUL byte in line"))
        self.assertEqual(got[3], ("invalid_input", "line longer than 8192 bytes"))
        self.assertEqual(got[4][0], "ok")
        self.assertEqual(got[5], ("invalid_input", "control character in line"))
        self.assertEqual(got[6], ("invalid_input", "not valid UTF-8"))
        self.assert_alive()


class BadJobFileTest(HostileCase):
    """Input files with junk lines through scripts/submit (test_submit.py has comments,
    'not a url', ftp:// and CRLF; these are the rest): each junk line is an invalid_input
    result carrying its line number and why; the good lines run."""

    def job_bytes(self, data, *args):
        type(self).njobs += 1
        src = self.c.path("bad-%d.txt" % self.njobs)
        with open(src, "wb") as f:
            f.write(data)
        res = self.c.path("bad-%d.jsonl" % self.njobs)
        s = self.c.submit("--wait", "--attempts", "1", "--format", "jsonl", "--results", res,
                          *args, src, timeout=60)
        self.assertIn(s.rc, (0, 1), "%r\n%s" % (s, self.c.logs()))
        return fp.read_jsonl(res), s

    def test_junk_lines(self):
        good = [self.url("/img/%d.jpg" % (400 + i)).encode() for i in range(3)]
        lines = [
            good[0],                                   # 1
            b"http://127.0.0.1/" + b"a" * 9000,        # 2 over 8 KB
            b"http://127.0.0.1/a\x00b.jpg",            # 3 NUL byte
            b"http://127.0.0.1/\xff\xfe.jpg",          # 4 not UTF-8
            b"file:///etc/passwd",                     # 5
            b"gopher://127.0.0.1/x",                   # 6
            b"javascript:alert(1)",                    # 7
            b"data:image/png;base64,iVBORw0KGgo=",     # 8
            good[1] + b"\r",                           # 9 CRLF: fine
            b"http://",                                # 10 no host
            b"http://127.0.0.1/a b.jpg",               # 11 space inside
            b"http://127.0.0.1/\x07bell.jpg",          # 12 control character
            b"http://[::1/x.jpg",                      # 13 broken IPv6 literal
            b"//127.0.0.1/x.jpg",                      # 14 no scheme
            b"http://127.0.0.1:99999/x.jpg",           # 15 bad port
            b"\xef\xbb\xbf" + good[2],                 # 16 BOM (Windows editors): fine
        ]
        data = b"\n".join(lines) + b"\n"
        rows, s = self.job_bytes(data)
        by_line = {r["line"]: r for r in rows}
        self.assertEqual(len(rows), len(lines), rows)
        self.assertEqual(by_line[1]["status"], "ok", by_line[1])
        self.assertEqual(by_line[9]["status"], "ok", by_line[9])
        self.assertEqual(by_line[9]["url"], good[1].decode())
        self.assertEqual(by_line[16]["status"], "ok", by_line[16])
        self.assertEqual(by_line[16]["url"], good[2].decode())
        scheme = "unsupported scheme (only http and https)"
        expect = {2: "line longer than 8192 bytes", 3: "NUL byte in line",
                  4: "not valid UTF-8", 5: scheme, 6: scheme, 7: "not a URL", 8: "not a URL",
                  10: "not a URL", 11: "space inside URL", 12: "control character in line",
                  13: "not a URL", 14: "not a URL", 15: "not a URL"}
        for n, why in expect.items():
            row = by_line[n]
            self.assertEqual((row["status"], row["error"]), ("invalid_input", why), row)
            self.assertEqual(row["path"], "", row)
        # The URL column shows the line made printable: no NUL, no control characters.
        self.assertEqual(by_line[3]["url"], "http://127.0.0.1/a?b.jpg")
        self.assertEqual(s.summary.get("fail:invalid_input"), str(len(expect)), s)
        self.assertEqual(s.summary.get("ok"), "3", s)

    def test_only_junk_still_completes(self):
        rows, s = self.job_bytes(b"\x00\x00\x00\n\xff\n" + b"z" * 20000 + b"\n")
        self.assertEqual(s.rc, 1, s)
        self.assertEqual([(r["line"], r["status"]) for r in rows],
                         [(1, "invalid_input"), (2, "invalid_input"), (3, "invalid_input")])

    def test_no_final_newline_and_crlf_mixed(self):
        u = [self.url("/img/%d.jpg" % (420 + i)).encode() for i in range(2)]
        rows, _ = self.job_bytes(u[0] + b"\r\n\r\nbogus\r\n" + u[1])
        self.assertEqual([(r["line"], r["status"]) for r in rows],
                         [(1, "ok"), (3, "invalid_input"), (4, "ok")], rows)


if __name__ == "__main__":
    fp.main()
