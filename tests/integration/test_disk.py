#!/usr/bin/python3
"""The store under faults. An output folder that cannot take files for a while: full
(bytes or inodes), remounted read-only. The worker must pause instead of failing its
tasks, say so once in its log and in its heartbeat (`paused=<reason>`), probe, and resume
when the folder takes files again; every URL then ends `ok` on its first attempt, one result each, its file there
with the right SHA-256. A task fails as `disk_full` only after --store-wait. Stored files
damaged behind the worker's back are written again; --fsync syncs the folder too. A
worker frozen past its heartbeat (--attempts 1) and woken: its results replace the
reaper's worker_lost, and each points at a file that is there.

The output folder is a small tmpfs mounted in a mount namespace of this test's own: the
script re-executes itself under `unshare --mount` (as root), so the mounts, remounts
(`size=`, `nr_inodes=`, `ro`) and their cleanup never touch the machine's.
Run alone: /usr/bin/python3 tests/integration/test_disk.py --bin build/bin
"""

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fp_harness as fp  # noqa: E402
from fp_harness import wait_for  # noqa: E402

NS_FLAG = "FP_DISK_NS"
# The worker's test hook: probe the output every 250 ms instead of every 2 s.
os.environ["FETCHPOOL_TEST_PROBE_MS"] = "250"


def enter_mount_namespace():
    if os.environ.get(NS_FLAG) == "1":
        return
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        # A failure, not a skip: ctest would count a skipped test as passed.
        sys.exit("test_disk.py needs root and unshare (util-linux) to mount a tmpfs")
    env = dict(os.environ, **{NS_FLAG: "1"})
    os.execvpe("unshare", ["unshare", "--mount", "--propagation", "private", "--",
                           sys.executable] + sys.argv, env)


def make_images(root, n, size):
    """n distinct JPEG-looking files of size bytes (random: fast to make); [(name, sha)]."""
    out = []
    for i in range(n):
        data = b"\xff\xd8\xff\xe0" + os.urandom(size - 4)
        name = "i%05d.jpg" % i
        with open(os.path.join(root, name), "wb") as f:
            f.write(data)
        out.append((name, hashlib.sha256(data).hexdigest()))
    return out


def mount(*args):
    subprocess.run(["mount"] + list(args), check=True, capture_output=True)


class StoreCase(unittest.TestCase):
    """A cluster (redis, nginx with N distinct 16 KB images, master) and a tmpfs output."""

    N = 600
    SIZE = 16384

    def setUp(self):
        self.c = fp.Cluster("disk")
        self.addCleanup(self.c.close)
        self.mnt = self.c.mkdir("tmpfs")
        self.www = self.c.mkdir("www")
        # The images too live in memory (this machine's disk makes 3,000 files in seconds).
        mount("-t", "tmpfs", "-o", "size=64m", "tmpfs", self.www)
        self.addCleanup(subprocess.run, ["umount", "-l", self.www], capture_output=True)
        self.c.start_redis()
        self.r = self.c.redis()
        self.files = make_images(self.www, self.N, self.SIZE)
        self.c.start_nginx(self.www)
        self.c.start_master()

    def tmpfs(self, opts):
        mount("-t", "tmpfs", "-o", opts, "tmpfs", self.mnt)
        self.addCleanup(self.unmount)

    def unmount(self):
        self.c.close()   # the worker first: it keeps files open under the mount
        subprocess.run(["umount", "-l", self.mnt], capture_output=True)

    def remount(self, opts):
        mount("-o", "remount," + opts, self.mnt)

    def worker(self, *args):
        w = self.c.start_worker("w1", *args, output=self.mnt)
        self.assertTrue(self.c.wait_workers_registered(1), self.c.logs())
        return w

    def heartbeat(self):
        return self.r.call("GET", "fp:worker:w1") or ""

    def log(self):
        with open(self.c.workers[0].log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def start_job(self, n=None):
        urls = [self.c.nginx.url(name) for name, _ in self.files[:n or self.N]]
        self.res = self.c.path("res.jsonl")
        return self.c.submit_async("--wait", "--attempts", "1", "--format", "jsonl",
                                   "--results", self.res, self.c.write_input(urls))

    def wait_paused(self, reason):
        seen = wait_for(lambda: ("paused=" + reason) in self.heartbeat(), timeout=30)
        self.assertTrue(seen, "no paused=%s in the heartbeat %r\n%s" % (
            reason, self.heartbeat(), self.c.logs()))

    def finish(self, sub, n=None):
        """Waits for the job; every URL ok on attempt 1, one result each, files right."""
        n = n or self.N
        rc = sub.wait(120)
        self.assertEqual(rc, 0, self.c.logs())
        rows = fp.read_jsonl(self.res)
        self.assertEqual(len(rows), n)
        self.assertEqual(sorted(r["line"] for r in rows), list(range(1, n + 1)))
        bad = [r for r in rows if r["status"] != "ok" or r["attempts"] != 1]
        self.assertEqual(bad[:5], [], "%d not ok on attempt 1\n%s" % (len(bad), self.c.logs()))
        for row, (_, sha) in zip(rows, self.files):
            self.assertEqual(row["sha256"], sha)
            self.assertEqual(fp.sha256_file(os.path.join(self.mnt, row["path"])), sha)
        r = self.r
        job = r.hgetall("fp:job:%s" % sub_job(sub))
        self.assertEqual((job["done"], job["ok"], job.get("failed", "0")),
                         (str(n), str(n), "0"), job)
        self.assertEqual(len(self.c.job_rows(sub_job(sub))), n)
        self.assertEqual(r.call("LLEN", "fp:proc:w1"), 0)
        self.assertEqual(self.c.temp_leftovers(self.mnt), [])
        self.assertTrue(wait_for(lambda: "paused=" not in self.heartbeat(), timeout=5),
                        self.heartbeat())
        self.c.check_alive()
        return rows

    def assert_said_once(self, reason):
        log = self.log()
        self.assertEqual(log.count("pausing"), 1, log[-3000:])
        self.assertIn("(%s: " % reason, log)
        self.assertEqual(log.count("resuming"), 1, log[-3000:])


_jobs = {}


def sub_job(sub):
    if sub not in _jobs:
        _jobs[sub] = sub.popen.stdout.readline().decode().strip()
    return _jobs[sub]


class DiskFullTest(StoreCase):
    N = 300

    def test_full_disk_pauses_and_resumes(self):
        self.N = 600 if fp.sanitized() else 3000
        self.files = make_images(self.www, self.N, self.SIZE)
        """A 2 MB tmpfs takes about 120 of the 16 KB images: the worker pauses, nothing
        fails; grown to 96 MB a few seconds later, every URL ends ok."""
        self.tmpfs("size=2m")
        self.worker()
        sub = self.start_job()
        sub_job(sub)
        self.wait_paused("disk_full")
        r = self.r
        time.sleep(1.5)   # paused, probing (6 probes): nothing may fail meanwhile
        job = r.hgetall("fp:job:%s" % sub_job(sub))
        self.assertEqual(job.get("failed", "0"), "0", job)
        self.assertLess(int(job.get("done", "0")), self.N, job)
        self.assertIn("paused=disk_full", self.heartbeat())
        self.remount("size=96m")
        self.finish(sub)
        self.assert_said_once("disk_full")

    def test_out_of_inodes_then_read_only(self):
        """nr_inodes=360: 257 folders and ~100 files, then room for all; then a read-only
        remount, then read-write again. Each a pause of its own, said once."""
        self.tmpfs("size=96m,nr_inodes=360")
        self.worker()
        sub = self.start_job(150)
        sub_job(sub)
        self.wait_paused("disk_full")
        time.sleep(0.5)
        self.remount("nr_inodes=4000")
        self.finish(sub, 150)
        self.assert_said_once("disk_full")

        self.remount("ro")
        self.files = self.files[150:]
        self.res = self.c.path("res2.jsonl")
        sub = self.start_job(150)
        sub_job(sub)
        self.wait_paused("io_error")
        time.sleep(0.5)
        self.remount("rw")
        self.finish(sub, 150)
        log = self.log()
        self.assertEqual((log.count("pausing"), log.count("resuming")), (2, 2), log[-3000:])
        self.assertIn("io_error: Read-only file system", log)

    def test_fails_after_store_wait(self):
        """--store-wait 1 on a disk that stays full: a task the worker tried fails as
        disk_full after waiting about a second (not at once); the worker stays paused and
        takes nothing more, so the rest of the job waits in the queue, unspent; with room
        again it runs them, and the job ends with one result per URL."""
        self.fails_after_store_wait(queued=False)

    def test_fails_after_store_wait_joining_a_full_queue(self):
        """The same with the whole job queued before the worker starts: it takes the
        job's tasks and runs 8 at once (its default per host); the first store that fails
        pauses it, and no more tasks are tried than those running then."""
        self.fails_after_store_wait(queued=True)

    def fails_after_store_wait(self, queued):
        self.tmpfs("size=1m")
        with open(os.path.join(self.mnt, "filler"), "wb") as f:
            try:
                f.write(bytes(1 << 20))
            except OSError:
                pass
        r = self.r
        if not queued:
            self.worker("--store-wait", "1")
        t0 = time.monotonic()
        sub = self.start_job(20)
        jid = sub_job(sub)
        if queued:
            self.assertTrue(wait_for(lambda: r.call("LLEN", "fp:tasks") == 20, timeout=30),
                            self.c.logs())
            self.worker("--store-wait", "1")
        failed = wait_for(lambda: int(r.call("HGET", "fp:job:%s" % jid, "failed") or 0),
                          timeout=30)
        waited = time.monotonic() - t0
        self.assertTrue(failed, self.c.logs())
        self.assertGreaterEqual(waited, 1.0)
        time.sleep(1.5)   # the worker stays paused: nothing more is tried, nothing fails
        job = r.hgetall("fp:job:%s" % jid)
        self.assertLessEqual(int(job["done"]), 8 if queued else 19, job)
        self.assertEqual(job["done"], job["failed"], job)
        self.assertIn("paused=disk_full", self.heartbeat())
        self.assertGreater(r.call("LLEN", "fp:tasks"), 0)
        os.unlink(os.path.join(self.mnt, "filler"))
        self.assertEqual(sub.wait(60), 1, self.c.logs())
        rows = fp.read_jsonl(self.res)
        self.assertEqual(sorted(x["line"] for x in rows), list(range(1, 21)))
        lost = [x for x in rows if x["status"] != "ok"]
        self.assertEqual(len(lost), int(job["failed"]), rows)
        for x in lost:
            self.assertEqual(x["status"], "disk_full", x)
            self.assertIn("No space left", x["error"])
            self.assertRegex(x["error"], r"waited [12] s for the output")
        for x, (_, sha) in zip(rows, self.files):
            self.assertEqual(x["attempts"], 1, x)
            if x["status"] == "ok":
                self.assertEqual(fp.sha256_file(os.path.join(self.mnt, x["path"])), sha)
        self.assertEqual(self.log().count("pausing"), 1)


class DamagedStoreTest(StoreCase):
    """Stored files deleted, truncated or replaced by a symlink, and a shard folder
    removed, while the worker runs: the next download of that content writes them again
    (whether the worker's recent-digest cache remembers the file or not)."""

    N = 6

    def job(self, name):
        urls = [self.c.nginx.url(n) for n, _ in self.files]
        self.res = self.c.path(name)
        sub = self.c.submit_async("--wait", "--attempts", "1", "--format", "jsonl",
                                  "--results", self.res, self.c.write_input(urls, name + ".in"))
        self.assertEqual(sub.wait(60), 0, self.c.logs())
        rows = fp.read_jsonl(self.res)
        for row, (_, sha) in zip(rows, self.files):
            p = os.path.join(self.mnt, row["path"])
            self.assertEqual(row["status"], "ok", row)
            self.assertFalse(os.path.islink(p), p)
            self.assertEqual(fp.sha256_file(p), sha, p)
        return [os.path.join(self.mnt, row["path"]) for row in rows]

    def test_damaged_files_are_written_again(self):
        self.tmpfs("size=16m")
        self.worker()
        paths = self.job("a.jsonl")
        victim = self.c.path("victim")
        with open(victim, "wb") as f:
            f.write(b"not yours")
        os.unlink(paths[0])
        os.truncate(paths[1], 100)
        os.truncate(paths[2], 0)
        os.unlink(paths[3])
        os.symlink(victim, paths[3])
        shutil.rmtree(os.path.dirname(paths[4]))
        self.job("b.jsonl")     # the worker remembers storing them: its cache is checked
        with open(victim, "rb") as f:
            self.assertEqual(f.read(), b"not yours")
        # A new worker (nothing cached): linkat finds the names taken and checks them.
        self.c.workers[0].stop()
        self.c.workers.clear()
        self.worker()
        for p in paths[:5]:
            os.truncate(p, 10)
        self.job("c.jsonl")
        self.assertEqual(self.c.temp_leftovers(self.mnt), [])

    def test_fsync_syncs_the_folder_too(self):
        """--fsync: each new file is fsynced, then the folder its name went into (seen
        with strace -y, which names the file behind each descriptor)."""
        self.tmpfs("size=16m")
        trace = self.c.path("strace.txt")
        argv = ["strace", "-f", "-qq", "-y", "-e", "trace=fsync,linkat,rename",
                "-o", trace, self.c.exe("fetchpool-worker"), "--redis", self.c.redis_srv.url,
                "--output", self.mnt, "--id", "w1", "--allow-private", "--fsync"]
        env = self.c.env()
        # LeakSanitizer cannot run under ptrace (the sanitizer build's leak check is off
        # for this one worker; every other test keeps it).
        env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "") + ":detect_leaks=0"
        st = fp.Proc("strace-w1", argv, self.c.dir, env=env)
        self.c.procs.append(st)
        self.assertTrue(self.c.wait_workers_registered(1), self.c.logs())
        paths = self.job("a.jsonl")
        with open("/proc/%d/task/%d/children" % (st.pid, st.pid)) as f:
            worker_pid = int(f.read().split()[0])
        os.kill(worker_pid, signal.SIGTERM)
        self.assertEqual(st.wait(30), 0, st.tail())
        with open(trace) as f:
            calls = [line.split(None, 1)[1] for line in f if " " in line]
        for p in paths:
            shard = os.path.dirname(p)
            # linkat names the file relative to its shard folder's descriptor (-y: <shard>)
            linked = [i for i, c in enumerate(calls) if c.startswith("linkat(") and
                      ("<%s>, \"%s\"" % (shard, os.path.basename(p)) in c or p in c)]
            self.assertEqual(len(linked), 1, (p, calls[:20]))
            i = linked[0]
            self.assertTrue(calls[i - 1].startswith("fsync(") and "/.tmp" not in calls[i - 1]
                            and "<" + shard + ">" not in calls[i - 1], calls[i - 1:i + 2])
            self.assertTrue(calls[i + 1].startswith("fsync(") and "<" + shard + ">" in
                            calls[i + 1], (shard, calls[i - 1:i + 2]))


class ZombieTest(unittest.TestCase):
    """A worker frozen (SIGSTOP) past its heartbeat with --attempts 1: the master's reaper
    gives its tasks up as worker_lost. Woken (SIGCONT) before the job is complete, it
    finishes them after all: its real result replaces the worker_lost placeholder, counted
    once. Every URL ends with exactly one result, ok, pointing at a stored file with the
    right SHA-256, and the summary agrees."""

    def test_zombie_result_replaces_worker_lost(self):
        c = fp.Cluster("zombie")
        self.addCleanup(c.close)
        c.start_redis()
        org = c.start_origin()
        c.start_master()
        # 4 transfers and 2 waiting for them: 6 of the 30 tasks held when it freezes.
        z = c.start_worker("z", "--concurrency", "4")
        self.assertTrue(c.wait_workers_registered(1), c.logs())
        r = c.redis()
        n, size = 30, 4096
        # The first ones slow: they are on the wire when it freezes; the rest fast.
        # The first ones slow: they are on the wire when it freezes; the rest fast.
        urls = [org.url("/img/%d.jpg?size=%d&delay=%d" % (i, size, 1500 if i < 8 else 0))
                for i in range(n)]
        res = c.path("res.jsonl")
        sub = c.submit_async("--wait", "--attempts", "1", "--format", "jsonl", "--results",
                             res, c.write_input(urls))
        jid = sub.popen.stdout.readline().decode().strip()
        meta = "fp:job:%s" % jid
        # Frozen with its transfers on the wire (the origin answers while it sleeps).
        self.assertTrue(wait_for(lambda: org.stats()["total"] >= 4, timeout=20), c.logs())
        z.kill(signal.SIGSTOP)
        try:
            held = r.call("LLEN", "fp:proc:z")
            self.assertGreaterEqual(held, 4)
            lost = wait_for(lambda: r.call("LLEN", "fp:proc:z") == 0 and
                            int(r.call("HGET", meta, "fail:worker_lost") or 0) == held,
                            timeout=20)
            self.assertTrue(lost, "reaper: %r\n%s" % (r.hgetall(meta), c.logs()))
            self.assertEqual(r.call("HGET", meta, "done"), str(held))
        finally:
            z.kill(signal.SIGCONT)
        self.assertEqual(sub.wait(60), 0, c.logs())
        rows = fp.read_jsonl(res)
        self.assertEqual(sorted(x["line"] for x in rows), list(range(1, n + 1)))
        for i, x in enumerate(rows):
            sha = fp.origin_mod.image_sha256(i, "jpg", size)
            self.assertEqual((x["status"], x["attempts"], x["worker"]), ("ok", 1, "z"), x)
            self.assertEqual(x["sha256"], sha, x)
            self.assertEqual(fp.sha256_file(os.path.join(c.out, x["path"])), sha, x)
        self.assertEqual(len(c.job_rows(jid)), n)
        job = r.hgetall(meta)
        self.assertEqual((job["done"], job["ok"], job["failed"]), (str(n), str(n), "0"), job)
        self.assertNotIn("fail:worker_lost", job)
        summary = r.hgetall("fp:job:%s:summary" % jid)
        self.assertEqual((summary["ok"], summary["failed"]), (str(n), "0"), summary)
        self.assertNotIn("fail:worker_lost", summary)


class StatusTest(StoreCase):
    """`fetchpool status` (issue 18) with two workers, one of them paused by a full disk."""
    N = 300

    def test_status_shows_the_worker_paused_by_a_full_disk(self):
        self.tmpfs("size=2m")
        self.worker()                               # w1, on the 2 MB tmpfs
        self.c.start_worker("w2", concurrency=4)    # w2, on the cluster's own folder
        self.assertTrue(self.c.wait_workers_registered(2), self.c.logs())
        sub = self.start_job()
        sub_job(sub)
        self.wait_paused("disk_full")
        cli = [sys.executable, os.path.join(fp.REPO, "scripts", "fetchpool"), "--redis",
               self.c.redis_srv.url, "status"]
        st = subprocess.run(cli + ["--json"], capture_output=True, text=True, timeout=60)
        self.assertEqual(st.returncode, 0, st)
        workers = {w["id"]: w for w in json.loads(st.stdout)["workers"]}
        self.assertEqual(sorted(workers), ["w1", "w2"])
        self.assertEqual(workers["w1"]["paused"], "disk_full", workers)
        self.assertIsNone(workers["w2"]["paused"], workers)
        self.assertTrue(all(w["alive"] for w in workers.values()), workers)
        text = subprocess.run(cli, capture_output=True, text=True, timeout=60).stdout
        self.assertRegex(text, r"\n  w1 .* paused: disk_full\n")
        self.assertRegex(text, r"\n  w2 .* running\n")
        self.remount("size=96m")
        self.assertEqual(sub.wait(120), 0, self.c.logs())


if __name__ == "__main__":
    enter_mount_namespace()
    fp.main()
