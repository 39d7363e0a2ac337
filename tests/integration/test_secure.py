"""Redis for workers elsewhere: ACL users, secrets from files, TLS through a tunnel.

Part of issue 17. A private redis-server whose default user is the test's admin gets an
ACL user `fpuser` that may touch only fp:* keys and only the command groups fetchpool
needs (FP_ACL below, the rule docs/compose.md recommends); master, workers and
scripts/submit log in as it and run a whole job. A wrong password or user fails at start:
exit 2 at once, one log line, no retry loop. Neither the password nor the wrong one ever
shows in a log line, an error or a usage message (every log and output is searched).
TLS: redis-server --port 0 --tls-port under a test CA made with openssl, reached by
master and workers through an stunnel client on loopback (as the workers-only compose
stack does); a worker pointed at the TLS port itself exits saying what is likely wrong.
Run alone: /usr/bin/python3 tests/integration/test_secure.py --bin build/bin
"""

import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fp_harness as fp  # noqa: E402

# What an operator runs for fetchpool on a shared Redis (docs/compose.md): its own keys
# and channels only, the data-type, scripting and transaction commands, TIME (the Lua
# scripts read the clock) and INFO (Redis's version; maxmemory-policy without CONFIG), nothing
# of the @dangerous or @admin kind (CONFIG, KEYS, FLUSHALL, DEBUG, ACL, ...).
FP_ACL = ("on resetkeys ~fp:* resetchannels &fp:* -@all +@connection +@keyspace +@string +@bitmap "
          "+@list +@hash +@set +@sortedset +@scripting +@transaction -@dangerous +time "
          "+info").split()

N_JOB = 200


def secret():
    return "s3-" + secrets.token_hex(12)


def stop_all(*procs):
    for p in procs:
        if p is not None and p.alive():
            p.stop()


class SecureBase(unittest.TestCase):
    """Shared: the files a job fetches, starting fetchpool's programs with a chosen
    Redis URL (the harness's own start_* always pass the cluster's default URL), and
    looking for secrets in everything the test has seen."""

    def setUp(self):
        self.c = fp.Cluster(self.id().rsplit(".", 1)[-1])
        self.addCleanup(self.c.close)
        self.n = 60 if fp.sanitized() else N_JOB
        self.c.start_nginx()
        self.files = fp.make_jpegs(self.c.nginx.root, self.n, size=2048)
        self.secrets = []
        self.outputs = []   # text of client runs, searched for secrets too

    def program(self, prog, name, *args, url=None, env=None):
        """fetchpool-<prog> with url given by --redis, or by env (FETCHPOOL_REDIS or
        FETCHPOOL_REDIS_FILE) when url is None."""
        e = self.c.env()
        e.update(env or {})
        argv = [self.c.exe("fetchpool-" + prog)]
        if url is not None:
            argv += ["--redis", url]
        p = fp.Proc(name, argv + list(args), self.c.dir, env=e)
        self.c.procs.append(p)
        return p

    def master(self, **kw):
        # No cluster-wide per-host caps: the test's nginx is its own (as the harness does).
        self.c.master = self.program("master", "master", "--host-conns", "0", "--host-rate",
                                     "0", **kw)
        return self.c.master

    def worker(self, wid, **kw):
        w = self.program("worker", "worker-" + wid, "--output", self.c.out, "--id", wid,
                         "--allow-private", "--concurrency", "16", **kw)
        self.c.workers.append(w)
        return w

    def submit(self, url, *args, env=None):
        e = self.c.env()
        e.update(env or {})
        argv = [sys.executable, fp.SUBMIT] + (["--redis", url] if url else []) + list(args)
        cp = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=e,
                            preexec_fn=fp._die_with_parent)
        self.outputs.append(cp.stdout + cp.stderr)
        return cp

    def run_job(self, url, env=None):
        """Submits the files as one job and checks every result: ok, right sha256."""
        urls = [self.c.nginx.url(name) for name, _ in self.files]
        inp = self.c.write_input(urls)
        res = self.c.path("results.tsv")
        cp = self.submit(url, "--results", res, "--timeout", "90", inp, env=env)
        self.assertEqual(cp.returncode, 0, "%s\n%s\n%s" % (cp.stdout, cp.stderr,
                                                           self.c.logs()))
        rows = fp.read_tsv(res)
        self.assertEqual(len(rows), self.n)
        for (name, sha), row in zip(self.files, rows):
            self.assertEqual(row["status"], "ok", row)
            self.assertEqual(row["sha256"], sha, row)
        return rows

    def write_secret_file(self, name, text):
        path = self.c.path(name)
        with open(path, "w") as f:
            f.write(text + "\n")    # as `echo ... > file` and Docker secrets leave it
        os.chmod(path, 0o600)
        return path

    def assert_no_secret(self, extra=()):
        """No secret of this test in any log file of the cluster dir or client output."""
        texts = list(self.outputs) + list(extra)
        for root, dirs, files in os.walk(self.c.dir):
            dirs[:] = [d for d in dirs if d not in ("out", "www", "redis")]
            for f in files:
                if f.endswith(".log"):
                    with open(os.path.join(root, f), "rb") as fh:
                        texts.append(fh.read().decode("utf-8", "replace"))
        self.assertTrue(texts)
        for s in self.secrets:
            for t in texts:
                self.assertNotIn(s, t)

    def assert_fails_at_start(self, p, *want):
        """p exits 2 within a few seconds with one log line holding every string of want."""
        t0 = time.monotonic()
        try:
            rc = p.wait(15)
        except subprocess.TimeoutExpired:
            self.fail("%s still running after 15 s (retrying?):\n%s" % (p.name, p.tail()))
        took = time.monotonic() - t0
        log = [x for x in p.tail(50).splitlines() if x.strip()]
        self.assertEqual(rc, 2, "\n".join(log))
        self.assertLess(took, 8.0, "\n".join(log))
        self.assertEqual(len(log), 1, "want one log line:\n" + "\n".join(log))
        for w in want:
            self.assertIn(w, log[0])
        return log[0]


class AclTest(SecureBase):
    """An ACL user with only fetchpool's keys and commands."""

    def setUp(self):
        super().setUp()
        self.admin_pw = secret()
        self.pw = secret()
        self.wrong = secret()
        self.secrets = [self.admin_pw, self.pw, self.wrong]
        srv = self.c.start_redis(password=self.admin_pw)
        self.c.redis().call("ACL", "SETUSER", "fpuser", ">" + self.pw, *FP_ACL)
        self.base = "127.0.0.1:%d" % srv.port
        self.url = "redis://fpuser:%s@%s/0" % (self.pw, self.base)

    def test_full_job_as_acl_user(self):
        """Master, two workers and the client log in as fpuser (the URL in a file, in
        the environment, on the command line) and run a job; no secret in any log."""
        url_file = self.write_secret_file("redis-url", self.url)
        self.master(env={"FETCHPOOL_REDIS_FILE": url_file})
        self.worker("w1", url=self.url)
        self.worker("w2", env={"FETCHPOOL_REDIS": self.url})
        self.c.wait_workers_registered(2)
        self.run_job(self.url)
        # They are logged in as fpuser, not as the default user.
        clients = self.c.redis().call("CLIENT", "LIST").splitlines()
        users = sorted(f.split("=", 1)[1] for line in clients for f in line.split()
                       if f.startswith("user="))
        self.assertGreaterEqual(users.count("fpuser"), 5, clients)   # 1 + 2 x 2 at least
        # maxmemory-policy was read through INFO (fpuser has no CONFIG), and Redis's
        # version: no warning.
        for p in [self.c.master] + self.c.workers:
            self.assertNotIn("maxmemory-policy", p.tail(), p.name)
            self.assertNotIn("Redis's version", p.tail(), p.name)
            self.assertNotIn("NOPERM", p.tail(), p.name)
        stop_all(*([self.c.master] + self.c.workers))
        self.assert_no_secret()

    def test_wrong_password_or_user_fails_at_start(self):
        """A wrong password or an unknown user: each program exits 2 at once, one log
        line saying so; the client exits 2 too. Neither password shows anywhere."""
        bad = ["redis://fpuser:%s@%s" % (self.wrong, self.base),
               "redis://nosuchuser:%s@%s" % (self.pw, self.base),
               "redis://:%s@%s" % (self.wrong, self.base)]   # the default user's
        for i, url in enumerate(bad):
            m = self.program("master", "master-bad%d" % i, url=url)
            self.assert_fails_at_start(m, "WRONGPASS", "check the", "127.0.0.1")
            w = self.program("worker", "worker-bad%d" % i, "--output", self.c.out,
                             "--id", "bad%d" % i, env={"FETCHPOOL_REDIS": url})
            self.assert_fails_at_start(w, "WRONGPASS", "check the")
            cp = self.submit(url, self.c.write_input(["http://x.test/a.jpg"]))
            self.assertEqual(cp.returncode, 2, cp.stderr)
            self.assertIn("refused the login", cp.stderr)
        self.assertNotIn("nosuchuser", "".join(self.outputs))
        self.assert_no_secret()

    def test_password_changed_while_running(self):
        """The password changes under running programs and their connections are cut:
        each worker connection logs the refusal once (no line per retry) and retries with
        backoff, sending nothing before a login is accepted; once the password is back a
        job completes."""
        self.master(url=self.url)
        w = self.worker("w1", url=self.url)
        self.c.wait_workers_registered(1)
        admin = self.c.redis()
        admin.call("ACL", "SETUSER", "fpuser", "resetpass", ">" + self.wrong)
        admin.call("CLIENT", "KILL", "USER", "fpuser")
        time.sleep(3)   # backoff doubles to 2 s: several refused tries in this time
        self.assertTrue(w.alive(), w.tail())
        for p, n in ((w, 2), (self.c.master, 1)):   # the worker's pull and cmd links
            refused = [x for x in p.tail(200).splitlines() if "WRONGPASS" in x]
            self.assertEqual(len(refused), n, "one line per connection:\n" + p.tail())
            for line in refused:
                self.assertIn("retrying", line)
                self.assertIn("check the user and password", line)
        admin.call("ACL", "SETUSER", "fpuser", "resetpass", ">" + self.pw)
        self.run_job(self.url)
        self.assertIn("connection back", w.tail(200))
        self.assertNotIn("NOAUTH", w.tail(200))   # no command went out before the login
        stop_all(self.c.master, w)
        self.assert_no_secret()

    def test_no_secret_in_usage_errors(self):
        """Bad URLs as flags, in the environment and in files, stray arguments and
        unknown options with a URL, for master, worker and submit: usage errors (exit 2)
        that never show a secret; --help does not show the environment's URL either."""
        s = self.pw
        h = "127.0.0.1"   # never a name: no lookup may leave the machine
        flags = [["--redis", "rediss://fpuser:%s@%s:6380" % (s, h)],
                 ["--redis", "redis://fpuser:%s@%s:0" % (s, h)],
                 ["--redis", "redis://:%s/x@%s" % (s, h)],
                 ["--redis", "%s@%s:6379" % (s, h)],
                 ["--redis=redis://u:%s@%s/x" % (s, h)],
                 ["--redsi=redis://u:%s@%s" % (s, h)],
                 ["redis://u:%s@%s" % (s, h)]]
        envs = [{"FETCHPOOL_REDIS": "redis://u:%s@%s:99999" % (s, h)},
                {"FETCHPOOL_REDIS_FILE": self.write_secret_file(
                    "bad-url", "rediss://:%s@%s" % (s, h))},
                {"FETCHPOOL_REDIS": self.url,
                 "FETCHPOOL_REDIS_FILE": self.write_secret_file("url2", self.url)},
                {"FETCHPOOL_REDIS_FILE": self.c.path("no-such-file")},
                {"FETCHPOOL_REDIS_FILE": self.write_secret_file("empty", "")}]
        inp = self.c.write_input(["http://127.0.0.1:9/a.jpg"])
        seen = []
        for prog in ("master", "worker", "submit"):
            if prog == "submit":
                cmd, tail = [sys.executable, fp.SUBMIT], [inp]
            else:
                cmd, tail = [self.c.exe("fetchpool-" + prog)], []
            for args, env in [(a, {}) for a in flags] + [([], e) for e in envs]:
                e = self.c.env()
                e.update(env)
                cp = subprocess.run(cmd + args + tail, capture_output=True, text=True,
                                    timeout=20, env=e)
                out = cp.stdout + cp.stderr
                self.assertEqual(cp.returncode, 2, "%s %s %s: %s" % (prog, args, env, out))
                self.assertTrue(out.strip())
                seen.append(out)
            e = self.c.env()
            e["FETCHPOOL_REDIS"] = self.url
            cp = subprocess.run(cmd + ["--help"], capture_output=True, text=True, timeout=20,
                                env=e)
            self.assertEqual(cp.returncode, 0)
            self.assertIn("FETCHPOOL_REDIS_FILE", cp.stdout)
            seen.append(cp.stdout + cp.stderr)
        # The messages say what is wrong.
        joined = "\n".join(seen)
        self.assertIn("stunnel", joined)
        self.assertEqual(joined.count("both FETCHPOOL_REDIS and FETCHPOOL_REDIS_FILE"), 3)
        self.assertIn("is empty", joined)
        self.assert_no_secret(seen)


# -- TLS ----------------------------------------------------------------------------------

def make_ca(d):
    """A test CA and a server certificate for localhost / 127.0.0.1, made with openssl."""
    def run(*argv):
        subprocess.run(["openssl"] + list(argv), cwd=d, check=True, capture_output=True)
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out",
        "ca.pem", "-days", "2", "-subj", "/CN=fetchpool test CA")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "redis.key", "-out", "redis.csr",
        "-subj", "/CN=localhost")
    with open(os.path.join(d, "ext.cnf"), "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    run("x509", "-req", "-in", "redis.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "redis.pem", "-days", "2", "-extfile", "ext.cnf")
    return {k: os.path.join(d, v) for k, v in
            (("ca", "ca.pem"), ("cert", "redis.pem"), ("key", "redis.key"))}


STUNNEL_CONF = """\
; generated by test_secure.py: a TLS client tunnel, as docker-compose.workers.yml runs
foreground = yes
pid =
debug = notice
[redis]
client = yes
accept = 127.0.0.1:{accept}
connect = 127.0.0.1:{connect}
CAfile = {ca}
verifyChain = yes
checkHost = localhost
"""


class TlsRedis:
    """redis-server with TLS only (--port 0) and an stunnel client in front of it; looks
    like the harness's Redis to Cluster (url, port, client(), stop())."""

    def __init__(self, cluster, password):
        self.cluster = cluster
        self.dir = cluster.mkdir("redis")
        self.password = password
        self.pki = make_ca(cluster.mkdir("pki"))
        self.proc = self.tunnel = None
        for _ in range(5):
            self.tls_port = fp.free_port()
            self.proc = fp.Proc("redis-tls", [
                "redis-server", "--port", "0", "--tls-port", str(self.tls_port),
                "--bind", "127.0.0.1", "--tls-cert-file", self.pki["cert"],
                "--tls-key-file", self.pki["key"], "--tls-ca-cert-file", self.pki["ca"],
                "--tls-auth-clients", "no", "--requirepass", password, "--dir", self.dir,
                "--save", "", "--appendonly", "no", "--daemonize", "no",
                "--logfile", os.path.join(self.dir, "redis.log")], cluster.dir)
            try:
                fp.wait_port(self.tls_port, self.proc, what="redis-server --tls-port")
                break
            except RuntimeError:
                self.proc.stop(signal.SIGKILL)
        for _ in range(5):
            self.port = fp.free_port()
            conf = os.path.join(self.dir, "stunnel.conf")
            with open(conf, "w") as f:
                f.write(STUNNEL_CONF.format(accept=self.port, connect=self.tls_port,
                                            ca=self.pki["ca"]))
            self.tunnel = fp.Proc("stunnel", [shutil.which("stunnel4") or "stunnel", conf],
                                  cluster.dir)
            try:
                self._wait_ready()
                return
            except RuntimeError:
                self.tunnel.stop(signal.SIGKILL)
        raise RuntimeError("TLS Redis or stunnel did not start:\n%s\n%s" % (
            self.proc.tail(), self.tunnel.tail()))

    def _wait_ready(self, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.tunnel.alive():
                raise RuntimeError("stunnel exited")
            try:
                c = fp.RedisClient(self.port, password=self.password, timeout=2.0)
                try:
                    if c.call("PING") == "PONG":
                        return
                finally:
                    c.close()
            except (OSError, fp.RespError):
                time.sleep(0.1)
        raise RuntimeError("no PONG through stunnel")

    @property
    def url(self):
        return "redis://:%s@127.0.0.1:%d" % (self.password, self.port)

    def client(self):
        return fp.RedisClient(self.port, password=self.password)

    def stop(self):
        for p in (self.tunnel, self.proc):
            if p is not None:
                p.stop()


class TlsTest(SecureBase):
    """Master and workers reach a TLS-only Redis through an stunnel client."""

    def setUp(self):
        super().setUp()
        self.pw = secret()
        self.secrets = [self.pw]
        self.c.redis_srv = TlsRedis(self.c, self.pw)

    def test_job_through_stunnel(self):
        """A whole job through the tunnel; Redis has no plain-text port at all, so every
        connection is TLS; the certificate is checked against the test CA."""
        srv = self.c.redis_srv
        self.c.start_master()
        self.c.start_worker()
        self.c.start_worker()
        self.c.wait_workers_registered(2)
        self.run_job(srv.url)
        clients = self.c.redis().call("CLIENT", "LIST").splitlines()
        self.assertGreaterEqual(len(clients), 5, clients)
        for line in clients:
            self.assertIn("laddr=127.0.0.1:%d" % srv.tls_port, line)
        stop_all(*([self.c.master] + self.c.workers))
        self.assert_no_secret()

    def test_tls_port_without_tunnel_fails_clearly(self):
        """Pointed at the TLS port itself, master and worker exit 2 at once with one line
        that names the likely cause and the way out, not a hang or a retry loop."""
        url = "redis://:%s@127.0.0.1:%d" % (self.pw, self.c.redis_srv.tls_port)
        m = self.program("master", "master-direct", url=url)
        self.assert_fails_at_start(m, "TLS", "stunnel")
        w = self.program("worker", "worker-direct", "--output", self.c.out, "--id", "direct",
                         url=url)
        self.assert_fails_at_start(w, "TLS", "stunnel")
        self.assert_no_secret()


if __name__ == "__main__":
    fp.main()
