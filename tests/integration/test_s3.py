#!/usr/bin/python3
"""S3 output (--output s3://bucket/prefix) against a real S3 API server on loopback.

The server is s3rver (npm), installed on first use into a cache folder (FP_S3RVER_DIR,
default /var/cache/fetchpool-s3rver, else build/s3rver). Every stored object is read back
with boto3 (Debian's python3-boto3), a client nobody here wrote, and must have the
sha256 of its result. s3rver does not check SigV4 signatures; tests/unit/test_s3.c checks
the ones libcurl makes. Also: virtual-hosted addressing, a bucket that does not exist, a
store that refuses (403: a key s3rver does not know), and one that is down: each ends with
its own reason and every URL gets its result; a store that comes back while the worker
waits loses nothing.
Run alone: /usr/bin/python3 tests/integration/test_s3.py --bin build/bin [StoreTest|FailureTest]
(ctest runs the two classes as it_s3 and it_s3_faults, side by side).
"""

import concurrent.futures
import fcntl
import hashlib
import os
import signal
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fp_harness as fp  # noqa: E402

S3RVER_VERSION = "3.7.1"
BUCKET = "fp-test"
KEY, SECRET = "S3RVER", "S3RVER"   # the one account s3rver knows


def s3rver_dir():
    """The folder holding node_modules/.bin/s3rver, installed with npm if missing.

    it_s3 and it_s3_faults start side by side: the check and the install run under one
    lock, and a folder counts only once its marker says an install finished (a second
    npm writing into the folder the first one's s3rver runs from broke it once)."""
    cands = [os.environ.get("FP_S3RVER_DIR"), "/var/cache/fetchpool-s3rver",
             os.path.join(fp.REPO, "build", "s3rver")]
    marker = ".installed-" + S3RVER_VERSION
    for d in cands:
        if d and os.path.exists(os.path.join(d, marker)):
            return d
    for d in cands:
        if not d:
            continue
        try:
            os.makedirs(d, exist_ok=True)
            lock = open(os.path.join(d, ".install.lock"), "a")
        except OSError:
            continue
        with lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if os.path.exists(os.path.join(d, marker)):
                return d
            cp = subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--prefix", d,
                                 "s3rver@" + S3RVER_VERSION], capture_output=True,
                                text=True, timeout=600)
            if cp.returncode != 0:
                raise RuntimeError("npm install s3rver failed:\n%s" % cp.stderr[-2000:])
            open(os.path.join(d, marker), "w").close()
            return d
    raise RuntimeError("no writable folder to install s3rver into")


class S3rver:
    def __init__(self, cluster, port=None, endpoint="test"):
        self.dir = cluster.mkdir("s3rver-%d" % len(cluster.procs))
        exe = os.path.join(s3rver_dir(), "node_modules", ".bin", "s3rver")
        for tries in range(3):   # a free_port() taken by someone else meanwhile: again
            self.port = port or fp.free_port()
            argv = ["node", exe, "-d", self.dir, "-a", "127.0.0.1", "-p", str(self.port),
                    "-s", "--service-endpoint", endpoint, "--configure-bucket", BUCKET]
            self.proc = fp.Proc("s3rver-%d" % self.port, argv, cluster.dir)
            cluster.procs.append(self.proc)
            try:
                fp.wait_port(self.port, self.proc, timeout=30, what="s3rver")
                return
            except RuntimeError:
                if port or tries == 2 or self.proc.popen.poll() is None:
                    raise

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def client(self):
        import boto3
        from botocore.config import Config
        return boto3.client("s3", endpoint_url=self.url, aws_access_key_id=KEY,
                            aws_secret_access_key=SECRET, region_name="us-east-1",
                            config=Config(s3={"addressing_style": "path"}))


def s3_env(cluster, key=KEY):
    e = cluster.env()
    for k in list(e):
        if k.startswith("AWS_"):
            del e[k]
    e.update(AWS_ACCESS_KEY_ID=key, AWS_SECRET_ACCESS_KEY=SECRET, AWS_REGION="us-east-1")
    return e


def start_worker(c, wid, output, *args, env=None):
    argv = [c.exe("fetchpool-worker"), "--redis", c.redis_srv.url, "--output", output,
            "--id", wid, "--allow-private", "--spool", c.mkdir("spool-" + wid)] + list(args)
    w = fp.Proc("worker-" + wid, argv, c.dir, env=env or s3_env(c))
    c.workers.append(w)
    c.procs.append(w)
    return w


def log_text(proc):
    with open(proc.log_path, "rb") as f:
        return f.read().decode("utf-8", "replace")


class S3Case(unittest.TestCase):
    def setUp(self):
        self.c = fp.Cluster("s3")
        self.addCleanup(self.c.close)
        self.c.start_redis()
        self.c.start_master()

    def run_job(self, urls, *args, timeout=240):
        inp = self.c.write_input(urls)
        res = self.c.path("results.tsv")
        r = self.c.submit("--wait", "--quiet", "--attempts", "1", "--results", res, *args, inp,
                          timeout=timeout)
        self.assertIn(r.rc, (0, 1), r)
        rows = fp.read_tsv(res)
        self.assertEqual(len(rows), len(urls), "every URL gets its result")
        return rows


class StoreTest(S3Case):
    def test_two_workers_store_everything(self):
        """2,000 images (a few big enough to be streamed from their temp file, a few the
        same bytes under another name) through two workers into one bucket; every object
        read back with boto3 has its result's sha256."""
        n = 300 if fp.sanitized() else 2000
        www = self.c.mkdir("www")
        files = fp.make_jpegs(www, n, size=4096)
        # Spilled to a temp file and streamed from it; over 1 MB, sent after 100-continue.
        big = fp.make_jpegs(www, 6, size=300 * 1024, prefix="big")
        big += fp.make_jpegs(www, 1, size=1536 * 1024, prefix="huge")
        names = [name for name, _ in files + big]
        for i in range(20):   # the same bytes under another name: stored once
            src = os.path.join(www, files[i][0])
            os.link(src, os.path.join(www, "dup%d.jpg" % i))
            names.append("dup%d.jpg" % i)
        want = {name: sha for name, sha in files + big}
        for i in range(20):
            want["dup%d.jpg" % i] = files[i][1]
        ng = self.c.start_nginx(www)
        s3 = S3rver(self.c)
        out = "s3://%s/run1/imgs" % BUCKET
        for wid in ("w1", "w2"):
            start_worker(self.c, wid, out, "--s3-endpoint", s3.url, "--concurrency", "32")
        self.assertTrue(self.c.wait_workers_registered(2), self.c.logs())
        rows = self.run_job([ng.url(nm) for nm in names])
        bad = [r for r in rows if r["status"] != "ok"]
        self.assertEqual(bad[:3], [], self.c.logs())
        self.assertEqual({r["worker"] for r in rows}, {"w1", "w2"})
        cli = s3.client()
        keys = {}
        for r in rows:
            name = r["url"].rsplit("/", 1)[1]
            self.assertEqual(r["sha256"], want[name], r)
            self.assertEqual(r["path"], "%s/%s/%s.jpg" % (out, r["sha256"][:2], r["sha256"]))
            keys[r["path"][len("s3://%s/" % BUCKET):]] = r["sha256"]
        listed = set()
        for page in cli.get_paginator("list_objects").paginate(Bucket=BUCKET, Prefix="run1/"):
            listed.update(o["Key"] for o in page.get("Contents", []))
        self.assertEqual(listed, set(keys), "exactly the objects the results name")

        def read_back(key):
            obj = cli.get_object(Bucket=BUCKET, Key=key)
            return key, hashlib.sha256(obj["Body"].read()).hexdigest(), obj["ContentType"]

        with concurrent.futures.ThreadPoolExecutor(8) as pool:   # boto3 clients are
            got = list(pool.map(read_back, sorted(keys)))          # thread-safe
        cli.close()
        self.assertEqual({k: sha for k, sha, _ in got}, keys)
        self.assertEqual({ct for _, _, ct in got}, {"image/jpeg"})
        # Stop the workers and read what each says it did: everything stored once or found.
        uploaded = existed = 0
        for w in self.c.workers:
            self.assertEqual(w.stop(timeout=20), 0)
            line = [ln for ln in log_text(w).splitlines() if "object store:" in ln][-1]
            words = line.split("object store:")[1].split()
            uploaded += int(words[0])
            existed += int(words[2])
        self.assertGreaterEqual(uploaded, len(keys))
        # One upload (or cache/HEAD hit) per download; a task may run twice (delivery is
        # at least once, e.g. a heartbeat late on a loaded machine), its result counts once.
        self.assertGreaterEqual(uploaded + existed, len(rows))
        self.assertGreater(existed, 0, "a body stored already is not uploaded again")
        self.assertEqual(os.listdir(self.c.path("spool-w1", ".tmp")), [])

    def test_virtual_hosted(self):
        """bucket.host/key addressing; the name is pinned with --resolve (no DNS query);
        the secret comes from AWS_SECRET_ACCESS_KEY_FILE."""
        www = self.c.mkdir("www")
        files = fp.make_jpegs(www, 20)
        ng = self.c.start_nginx(www)
        s3 = S3rver(self.c, endpoint="test")
        host = "s3.test"
        env = s3_env(self.c)   # the secret from a file, as Docker secrets mount it
        secret_file = self.c.path("s3-secret")
        with open(secret_file, "w") as f:
            f.write(env.pop("AWS_SECRET_ACCESS_KEY") + "\n")
        env["AWS_SECRET_ACCESS_KEY_FILE"] = secret_file
        start_worker(self.c, "w1", "s3://%s" % BUCKET, "--s3-endpoint",
                     "http://%s:%d" % (host, s3.port), "--s3-addressing", "virtual",
                     "--resolve", "%s.%s:%d:127.0.0.1" % (BUCKET, host, s3.port), env=env)
        self.assertTrue(self.c.wait_workers_registered(1), self.c.logs())
        rows = self.run_job([ng.url(nm) for nm, _ in files])
        self.assertEqual([r["status"] for r in rows], ["ok"] * len(files), self.c.logs())
        cli = s3.client()
        for r, (_, sha) in zip(rows, files):
            self.assertEqual(r["path"], "s3://%s/%s/%s.jpg" % (BUCKET, sha[:2], sha))
            body = cli.get_object(Bucket=BUCKET, Key="%s/%s.jpg" % (sha[:2], sha))["Body"]
            self.assertEqual(hashlib.sha256(body.read()).hexdigest(), sha)
        cli.close()


class FaultProxy:
    """An HTTP proxy in front of s3rver that answers the first `slowdowns` PUTs with 503
    SlowDown (S3's "reduce your request rate") and then forwards everything."""

    def __init__(self, upstream_port, slowdowns):
        import http.client
        import http.server
        import threading
        proxy = self
        self.slowdowns = slowdowns
        self.puts = 0
        self.lock = threading.Lock()

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def relay(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else None
                if self.command == "PUT":
                    with proxy.lock:
                        proxy.puts += 1
                        slow = proxy.puts <= proxy.slowdowns
                    if slow:
                        msg = (b"<?xml version=\"1.0\"?><Error><Code>SlowDown</Code>"
                               b"<Message>Reduce your request rate.</Message></Error>")
                        self.send_response(503)
                        self.send_header("Content-Length", str(len(msg)))
                        self.end_headers()
                        self.wfile.write(msg)
                        return
                up = http.client.HTTPConnection("127.0.0.1", upstream_port, timeout=30)
                up.request(self.command, self.path, body=body, headers=dict(self.headers))
                r = up.getresponse()
                data = r.read()
                self.send_response(r.status)
                for k, v in r.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                up.close()

            do_GET = do_PUT = do_HEAD = relay

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.srv.server_address[1]
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


class FailureTest(S3Case):
    def urls(self, n=30):
        www = self.c.mkdir("www")
        files = fp.make_jpegs(www, n)
        ng = self.c.start_nginx(www)
        return [ng.url(nm) for nm, _ in files]

    def test_slowdown_is_retried(self):
        """503 SlowDown on the first PUTs: retried with backoff inside the worker (the
        store answers, so no pause), every image stored on the task's first attempt."""
        urls = self.urls(20)
        s3 = S3rver(self.c)
        proxy = FaultProxy(s3.port, slowdowns=3)   # fewer than a request's tries
        self.addCleanup(proxy.close)
        w = start_worker(self.c, "w1", "s3://%s/x" % BUCKET, "--s3-endpoint",
                         "http://127.0.0.1:%d" % proxy.port, "--concurrency", "4")
        rows = self.run_job(urls)
        self.assertEqual([r["status"] for r in rows], ["ok"] * len(urls), self.c.logs())
        self.assertEqual({r["attempts"] for r in rows}, {"1"})
        self.assertEqual(proxy.puts, len(urls) + 3)
        self.assertNotIn("pausing", log_text(w))
        cli = s3.client()
        for r in rows:
            key = r["path"][len("s3://%s/" % BUCKET):]
            body = cli.get_object(Bucket=BUCKET, Key=key)["Body"].read()
            self.assertEqual(hashlib.sha256(body).hexdigest(), r["sha256"])
        cli.close()

    def test_no_such_bucket(self):
        urls = self.urls()
        s3 = S3rver(self.c)
        start_worker(self.c, "w1", "s3://no-such-bucket/x", "--s3-endpoint", s3.url)
        rows = self.run_job(urls)
        self.assertEqual({r["status"] for r in rows}, {"store_denied"}, self.c.logs())
        self.assertIn("NoSuchBucket", rows[0]["error"])
        self.assertEqual({r["path"] for r in rows}, {""})

    def test_refused_403(self):
        urls = self.urls()
        s3 = S3rver(self.c)
        start_worker(self.c, "w1", "s3://%s/x" % BUCKET, "--s3-endpoint", s3.url,
                     env=s3_env(self.c, key="NOT-A-KEY"))
        rows = self.run_job(urls)
        self.assertEqual({r["status"] for r in rows}, {"store_denied"}, self.c.logs())
        self.assertIn("403", rows[0]["error"])
        self.assertNotIn(SECRET, log_text(self.c.workers[0]))

    def test_store_down(self):
        """Nothing listens: the worker pauses, then after --store-wait fails every URL as
        store_unavailable (none lost, none stored)."""
        urls = self.urls(20)
        port = self.c.closed_port()
        w = start_worker(self.c, "w1", "s3://%s/x" % BUCKET, "--s3-endpoint",
                         "http://127.0.0.1:%d" % port, "--store-wait", "1")
        rows = self.run_job(urls)
        self.assertEqual({r["status"] for r in rows}, {"store_unavailable"}, self.c.logs())
        log = log_text(w)
        self.assertIn("pausing", log)
        self.assertIn("failing uploads as store_unavailable", log)

    def test_store_stalls(self):
        """A store that takes connections and never answers: each request times out
        (--timeout 1), is retried, then the worker pauses and, after --store-wait, fails
        every URL as store_unavailable."""
        import socket
        urls = self.urls(10)
        lsock = socket.socket()
        lsock.bind(("127.0.0.1", 0))
        lsock.listen(64)   # the kernel completes the handshakes; nobody reads
        self.addCleanup(lsock.close)
        w = start_worker(self.c, "w1", "s3://%s/x" % BUCKET, "--s3-endpoint",
                         "http://127.0.0.1:%d" % lsock.getsockname()[1], "--timeout", "1",
                         "--store-wait", "1", "--concurrency", "4")
        rows = self.run_job(urls)
        self.assertEqual({r["status"] for r in rows}, {"store_unavailable"}, self.c.logs())
        self.assertIn("timed out", rows[0]["error"].lower())
        self.assertIn("pausing", log_text(w))

    def test_store_comes_back(self):
        """The store is down when the job starts and comes up once the worker has paused
        (within --store-wait): it resumes, and every image is stored."""
        urls = self.urls(40)
        port = fp.free_port()
        w = start_worker(self.c, "w1", "s3://%s/x" % BUCKET, "--s3-endpoint",
                         "http://127.0.0.1:%d" % port, "--store-wait", "60", "--concurrency", "8")
        self.assertTrue(self.c.wait_workers_registered(1), self.c.logs())
        job = self.c.submit_async("--wait", "--quiet", "--attempts", "1", "--results",
                                  self.c.path("results.tsv"), self.c.write_input(urls))
        deadline = time.monotonic() + 20
        while "pausing" not in log_text(w) and time.monotonic() < deadline:
            time.sleep(0.1)
        self.assertIn("pausing", log_text(w))
        S3rver(self.c, port=port)
        self.assertEqual(job.wait(timeout=120), 0, self.c.logs())
        rows = fp.read_tsv(self.c.path("results.tsv"))
        self.assertEqual([r["status"] for r in rows], ["ok"] * len(urls), self.c.logs())
        self.assertIn("resuming", log_text(w))
        # The tasks it had taken but not started went back to the queue at the pause.
        self.assertIn("gave back", log_text(w))

    def test_drain_while_down_hands_back(self):
        """SIGTERM while the store is down: held uploads are handed back, not failed."""
        urls = self.urls(10)
        port = self.c.closed_port()
        w = start_worker(self.c, "w1", "s3://%s/x" % BUCKET, "--s3-endpoint",
                         "http://127.0.0.1:%d" % port, "--store-wait", "60", "--grace", "1")
        self.assertTrue(self.c.wait_workers_registered(1), self.c.logs())
        self.c.submit_async("--attempts", "1", self.c.write_input(urls))
        deadline = time.monotonic() + 20
        while "pausing" not in log_text(w) and time.monotonic() < deadline:
            time.sleep(0.1)
        self.assertEqual(w.stop(signal.SIGTERM, timeout=20), 0, w.tail())
        r = self.c.redis()
        self.assertEqual(r.call("LLEN", "fp:proc:w1"), 0)
        queued = r.call("LLEN", "fp:tasks") + r.call("ZCARD", "fp:retry")
        self.assertEqual(queued, len(urls), "every task back in the queue")


if __name__ == "__main__":
    fp.main()
