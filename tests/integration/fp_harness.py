"""Shared harness for fetchpool's integration tests (python3 stdlib and redis-py).

A `Cluster` starts private servers on free loopback ports inside one temp dir: a
redis-server, an nginx serving generated files, tests/origin.py, fetchpool-master and
N fetchpool-workers; `submit()` runs scripts/submit against them and `redis()` gives a
Redis client (redis-py, replies as Redis sends them) for asserting on keys. `Cluster.close()` stops everything; it also
runs on exceptions, at interpreter exit and on SIGTERM, and every child gets
PR_SET_PDEATHSIG so even a SIGKILLed test leaves no server behind.

Binaries come from `--bin DIR` (parsed by `main()`) or the FP_BIN env var; scripts/submit
from FP_SUBMIT or the repo. Set FP_KEEP=1 to keep the temp dir for a post-mortem.
"""

import atexit
import contextlib
import ctypes
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

import redis              # Debian's python3-redis (redis-py), for /usr/bin/python3
import redis.client
import redis.exceptions

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
ORIGIN = os.path.join(REPO, "tests", "origin.py")
SUBMIT = os.environ.get("FP_SUBMIT", os.path.join(REPO, "scripts", "submit"))

sys.path.insert(0, os.path.join(REPO, "tests"))
import origin as origin_mod  # noqa: E402  (image_bytes / image_sha256 for expectations)

BIN = os.environ.get("FP_BIN", os.path.join(REPO, "build", "bin"))

TSV_COLUMNS = ["line", "url", "status", "http_code", "bytes", "total_ms", "dns_ms",
               "connect_ms", "ttfb_ms", "attempts", "worker", "sha256", "path",
               "content_type", "error"]


# -- ports -----------------------------------------------------------------------------

def wait_for(cond, timeout, step=0.05):
    """cond()'s first true value within timeout seconds, else its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(step)
    return cond()


def free_port():
    """A port that was free a moment ago (servers that take --port retry on a clash)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ClosedPort:
    """A loopback port where connections are refused, reserved for the test's lifetime.

    The socket is bound but never listens: Linux answers a SYN with RST, and nobody else
    can take the port while we hold it.
    """

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]

    def close(self):
        self.sock.close()


def wait_port(port, proc=None, timeout=10.0, what="server"):
    """Waits for a listener on the loopback port. proc: the Proc (or Popen) that should
    listen there; if it exits first, the error carries the end of its log."""
    popen = getattr(proc, "popen", proc)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if popen is not None and popen.poll() is not None:
            tail = ""
            if getattr(proc, "log_path", None):
                with open(proc.log_path, "rb") as f:
                    tail = f.read()[-2000:].decode("utf-8", "replace")
            raise RuntimeError("%s exited with %s before listening\n%s" %
                               (what, popen.returncode, tail))
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("%s did not listen on port %d within %.0fs" % (what, port, timeout))


# -- processes -------------------------------------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)
PR_SET_PDEATHSIG = 1


def _die_with_parent():
    # Runs in the child between fork and exec: if the test dies, so does the server.
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


GNU_TIME = "/usr/bin/time"


class Proc:
    """A child process with its stderr (and stdout unless piped or sent to stdout_path) in
    a log file: log_dir/<name>.log, or log_path.

    rusage=True runs it under GNU time, which reports the process's own CPU time and peak
    RSS once it has exited (cpu = user + system s, sys, rss_kb), as scripts/bench counts
    them. Not os.wait4 from here: a child exec'd from this Python inherits Python's peak
    RSS into ru_maxrss (the kernel carries the old mm's high-water mark over exec), while
    GNU time forks from its own ~2 MB image. `pid` is then the program's, not time's, and
    signals go to it."""

    def __init__(self, name, argv, log_dir=None, env=None, stdout_pipe=False, cwd=None,
                 log_path=None, stdout_path=None, rusage=False):
        self.name = name
        self.argv = argv
        self.log_path = log_path or os.path.join(log_dir, name + ".log")
        self.log = open(self.log_path, "ab")
        self.stats = None
        self.cpu = self.sys = 0.0
        self.rss_kb = 0
        if rusage:
            fd, self.stats = tempfile.mkstemp(prefix="fp-%s-" % name, suffix=".time")
            os.close(fd)
            argv = [GNU_TIME, "-q", "-f", "%e %U %S %M", "-o", self.stats] + list(argv)
        out = self.log
        if stdout_pipe:
            out = subprocess.PIPE
        elif stdout_path:
            out = open(stdout_path, "wb")
        try:
            self.popen = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=out, stderr=self.log,
                env=env, cwd=cwd, preexec_fn=_die_with_parent)
        finally:
            if stdout_path and not stdout_pipe:
                out.close()
        self.pid = self._program_pid() if rusage else self.popen.pid

    def _program_pid(self):
        """The pid GNU time forked for the program (time forks at once)."""
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            kids = proc_children(self.popen.pid)
            if kids:
                return kids[0]
            if self.popen.poll() is not None:
                return self.popen.pid
            time.sleep(0.001)
        raise RuntimeError("%s: no child under %s" % (self.name, GNU_TIME))

    def alive(self):
        if self.popen.poll() is None:
            return True
        self._rusage()
        return False

    def _rusage(self):
        """Once exited: read what GNU time wrote (a warning if it wrote nothing)."""
        if not self.stats:
            return
        try:
            with open(self.stats) as f:
                lines = [x for x in f.read().split("\n") if x.strip()]
            _, user, sys_, rss = lines[-1].split()
            self.cpu, self.sys, self.rss_kb = float(user) + float(sys_), float(sys_), int(rss)
        except (OSError, ValueError, IndexError):
            sys.stderr.write("fp_harness: no rusage for %s\n" % self.name)
        finally:
            try:
                os.unlink(self.stats)
            except OSError:
                pass
            self.stats = None

    def kill(self, sig):
        if self.alive():
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    def stop(self, sig=signal.SIGTERM, timeout=10.0):
        """Send sig, wait up to timeout, then SIGKILL. Returns the exit code."""
        if self.alive():
            try:
                self.kill(sig)
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill(signal.SIGKILL)
                self.popen.wait()
        self._rusage()
        if self.popen.stdout:
            self.popen.stdout.close()
        self.log.close()
        return self.popen.returncode

    def wait(self, timeout=None):
        rc = self.popen.wait(timeout)
        self._rusage()
        return rc

    def tail(self, n=40):
        try:
            with open(self.log_path, "rb") as f:
                lines = f.read().decode("utf-8", "replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-n:])


# -- Redis client ----------------------------------------------------------------------

class RespError(Exception):
    """An error reply from Redis (LOADING while it reads its data back included)."""


class RedisClient:
    """A blocking Redis client for asserting on keys from a test: redis-py underneath,
    with replies as Redis sends them (no redis-py reply parsing: HGETALL is a flat list,
    PING "PONG"), bulk strings decoded as UTF-8 (invalid bytes replaced). An error reply
    raises RespError; a connection that cannot be made or drops raises ConnectionError
    (an OSError), as a socket would. Connects at once; a later call after a drop
    reconnects."""

    def __init__(self, port, host="127.0.0.1", password=None, timeout=10.0):
        self.r = redis.Redis(host=host, port=port, password=password or None,
                             socket_timeout=timeout, socket_connect_timeout=timeout,
                             decode_responses=True, encoding_errors="replace")
        self.r.response_callbacks = redis.client.CaseInsensitiveDict({})
        with _redis_errors():
            self.r.connection_pool.release(self.r.connection_pool.get_connection("PING"))

    def close(self):
        self.r.connection_pool.disconnect()

    def call(self, *args):
        with _redis_errors():
            return self.r.execute_command(*args)

    __call__ = call

    def pipeline(self, transaction=False):
        """A redis-py pipeline on this client (raw replies; errors are redis-py's own)."""
        return self.r.pipeline(transaction=transaction)

    # Conveniences for the shapes tests look at.
    def hgetall(self, key):
        flat = self.call("HGETALL", key)
        return dict(zip(flat[0::2], flat[1::2]))

    def keys(self, pattern):
        cursor, found = "0", []
        while True:
            cursor, batch = self.call("SCAN", cursor, "MATCH", pattern, "COUNT", 1000)
            found += batch
            if cursor == "0":
                return sorted(set(found))


@contextlib.contextmanager
def _redis_errors():
    """redis-py's exceptions as RespError (a reply) or ConnectionError (the link)."""
    try:
        yield
    except redis.exceptions.BusyLoadingError as e:
        raise RespError("LOADING " + str(e).strip()) from e
    except (redis.exceptions.AuthenticationError,
            redis.exceptions.AuthorizationError) as e:
        raise RespError(str(e)) from e
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as e:
        raise ConnectionError(str(e)) from e
    except redis.exceptions.RedisError as e:
        raise RespError(str(e)) from e


# -- servers ---------------------------------------------------------------------------

class Scratch:
    """A folder for servers' data and logs: what Redis, Nginx and Origin need of a
    Cluster (scripts/bench hands them one of these)."""

    def __init__(self, path):
        self.dir = path
        os.makedirs(path, exist_ok=True)

    def mkdir(self, *parts):
        p = os.path.join(self.dir, *parts)
        os.makedirs(p, exist_ok=True)
        return p

    def path(self, *parts):
        return os.path.join(self.dir, *parts)


class Redis:
    """A private redis-server; restartable on the same port and dir (for crash tests).
    rusage: run it under GNU time (see Proc)."""

    def __init__(self, cluster, aof=False, password=None, extra=(), rusage=False):
        self.cluster = cluster
        self.dir = cluster.mkdir("redis")
        self.aof = aof
        self.password = password
        self.extra = list(extra)
        self.rusage = rusage
        self.port = None
        self.proc = None
        self.start()

    def argv(self):
        a = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--dir", self.dir, "--save", "", "--daemonize", "no",
             "--logfile", os.path.join(self.dir, "redis.log")]
        if self.aof:
            a += ["--appendonly", "yes", "--appendfsync", "everysec"]
        else:
            a += ["--appendonly", "no"]
        if self.password:
            a += ["--requirepass", self.password]
        return a + self.extra

    def start(self):
        keep_port = self.port is not None   # a restart must come back on the same port
        for _ in range(5):   # a fresh port can be taken between probe and bind
            if not keep_port:
                self.port = free_port()
            self.proc = Proc("redis-%d" % self.port, self.argv(), self.cluster.dir,
                             rusage=self.rusage)
            try:
                self._wait_ready()
                return
            except RuntimeError:
                self.proc.stop(signal.SIGKILL)
                if keep_port:
                    time.sleep(0.2)
        raise RuntimeError("redis-server did not start; see %s" % self.dir)

    def _wait_ready(self, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.proc.alive():
                raise RuntimeError("redis-server exited")
            try:
                c = RedisClient(self.port, password=self.password, timeout=1.0)
                try:
                    # Ours, not a server that won a race for the port: same dir.
                    if c.call("CONFIG", "GET", "dir") == ["dir", os.path.realpath(self.dir)]:
                        return
                    if not self.proc.alive():
                        raise RuntimeError("redis-server exited")
                finally:
                    c.close()
            except (OSError, RespError):
                # LOADING while replaying an AOF is also "not yet".
                time.sleep(0.05)
        raise RuntimeError("redis-server not ready")

    @property
    def url(self):
        auth = ":%s@" % self.password if self.password else ""
        return "redis://%s127.0.0.1:%d" % (auth, self.port)

    def client(self):
        return RedisClient(self.port, password=self.password)

    def stop(self, sig=signal.SIGTERM, timeout=10.0):
        if self.proc:
            self.proc.stop(sig, timeout)

    def restart(self, sig=signal.SIGKILL):
        """Kill (SIGKILL by default: a crash) and start again on the same port and dir."""
        self.stop(sig)
        self.start()


NGINX_CONF = """\
# generated by fp_harness.py
daemon off;
master_process on;
worker_processes 1;
worker_rlimit_nofile 16384;
user {user};
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 8192; }}
http {{
    access_log {tmp}/access.log;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    types {{
        image/jpeg jpg jpeg; image/png png; image/gif gif; image/webp webp;
        image/svg+xml svg; text/html html;
    }}
    default_type application/octet-stream;
    sendfile on;
    keepalive_requests 100000;
    keepalive_timeout 60s;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        root {root};
    }}
}}
"""


class Nginx:
    """A private nginx serving `root` (a dir of generated files).

    conf: the configuration template (NGINX_CONF by default; scripts/bench has its own),
    formatted with tmp (nginx's own folder), port, root, user and the extra keywords."""

    def __init__(self, cluster, root, conf=NGINX_CONF, **extra):
        self.cluster = cluster
        self.root = root
        self.dir = cluster.mkdir("nginx")
        for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            os.makedirs(os.path.join(self.dir, sub), exist_ok=True)
        # As root nginx drops its workers to `user`; they must read the 0700 temp dirs.
        self.user = "root" if os.geteuid() == 0 else ""
        self.proc = None
        for _ in range(5):
            self.port = free_port()
            conf_path = os.path.join(self.dir, "nginx.conf")
            with open(conf_path, "w") as f:
                text = conf.format(tmp=self.dir, port=self.port, root=root,
                                   user=self.user or "nobody", **extra)
                if not self.user:
                    text = text.replace("user nobody;\n", "")
                f.write(text)
            pidfile = os.path.join(self.dir, "nginx.pid")
            if os.path.exists(pidfile):
                os.unlink(pidfile)
            self.proc = Proc("nginx-%d" % self.port,
                             ["nginx", "-p", self.dir, "-c", conf_path, "-e",
                              os.path.join(self.dir, "error.log")], cluster.dir)
            if self._started(pidfile):
                return
            self.proc.stop(signal.SIGKILL)
        raise RuntimeError("nginx did not start; see %s/error.log" % self.dir)

    def _started(self, pidfile):
        """Listening, and ours: nginx writes its pid file only after binding, and exits
        on a port clash (so a server that won a race for the port is not mistaken)."""
        try:
            wait_port(self.port, self.proc, what="nginx")
        except RuntimeError:
            return False
        deadline = time.monotonic() + 5
        while not os.path.exists(pidfile) and time.monotonic() < deadline:
            if not self.proc.alive():
                return False
            time.sleep(0.02)
        time.sleep(0.05)
        return os.path.exists(pidfile) and self.proc.alive()

    def url(self, name):
        return "http://127.0.0.1:%d/%s" % (self.port, name.lstrip("/"))

    def stop(self):
        if self.proc:
            self.proc.stop(signal.SIGQUIT)   # graceful: master stops its worker


class Origin:
    """tests/origin.py on a port it picks itself (READY <port> on stdout)."""

    def __init__(self, cluster, delay_ms=0, host="127.0.0.1", port=0, extra=()):
        self.host = host
        argv = [sys.executable, ORIGIN, "--port", str(port), "--delay-ms", str(delay_ms),
                "--host", host] + list(extra)
        self.proc = Proc("origin", argv, cluster.dir, stdout_pipe=True)
        line = self.proc.popen.stdout.readline().decode().strip()
        if not line.startswith("READY "):
            raise RuntimeError("origin.py failed to start: %r\n%s" % (line, self.proc.tail()))
        self.port = int(line.split()[1])

    def url(self, path):
        return "http://%s:%d/%s" % (self.host, self.port, path.lstrip("/"))

    def stats(self):
        import urllib.request
        with urllib.request.urlopen(self.url("/__stats"), timeout=10) as r:
            return json.load(r)

    def stop(self):
        self.proc.stop()


def sanitized(bin_dir=None):
    """True when the binaries are built with AddressSanitizer (tests then use less data)."""
    exe = os.path.join(bin_dir or BIN, "fetchpool-worker")
    try:
        out = subprocess.run(["ldd", exe], capture_output=True, text=True).stdout
    except OSError:
        return False
    return "libasan" in out


def proc_cpu(pid):
    """User + system CPU seconds a live process has used so far (/proc/<pid>/stat)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_children(pid):
    """Pids of a live process's children ([] if it is gone)."""
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


# -- generated content -----------------------------------------------------------------

def make_jpegs(root, n, size=4096, prefix="f"):
    """Write n distinct JPEG-magic files into root; return [(name, sha256)] in order."""
    os.makedirs(root, exist_ok=True)
    out = []
    for i in range(n):
        data = origin_mod.image_bytes("%s%d" % (prefix, i), "jpg", size)
        name = "%s%06d.jpg" % (prefix, i)
        with open(os.path.join(root, name), "wb") as f:
            f.write(data)
        out.append((name, hashlib.sha256(data).hexdigest()))
    return out


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 16), b""):
            h.update(block)
    return h.hexdigest()


# -- results ---------------------------------------------------------------------------

def read_tsv(path):
    """Parse a TSV results file into dicts (a header line, if present, is skipped)."""
    rows = []
    with open(path, encoding="utf-8") as f:
        for raw in f:
            raw = raw.rstrip("\n")
            if not raw:
                continue
            cells = raw.split("\t")
            if cells[0] == "line":
                continue
            cells += [""] * (len(TSV_COLUMNS) - len(cells))
            rows.append(dict(zip(TSV_COLUMNS, cells)))
    return rows


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def parse_summary(text):
    """`key: value` lines (as submit --wait prints them) into a dict of strings."""
    out = {}
    for line in text.splitlines():
        if ": " in line:
            k, v = line.split(": ", 1)
            out[k.strip()] = v.strip()
    return out


class SubmitResult:
    def __init__(self, cp, elapsed):
        self.rc = cp.returncode
        self.stdout = cp.stdout
        self.stderr = cp.stderr
        self.elapsed = elapsed
        lines = [x for x in cp.stdout.splitlines() if x.strip()]
        self.job = lines[0].strip() if lines else None
        self.summary = parse_summary(cp.stdout)

    def __repr__(self):
        return "<submit rc=%s job=%s>\nstdout:\n%s\nstderr:\n%s" % (
            self.rc, self.job, self.stdout, self.stderr)


# -- the cluster -----------------------------------------------------------------------

_live = []
# How a sanitizer report begins in a daemon's log.
SANITIZER_MARKS = (": runtime error: ", "ERROR: AddressSanitizer", "ERROR: LeakSanitizer")


_exiting = False


def _cleanup_all(*_):
    global _exiting
    _exiting = True
    for c in list(_live):
        c.close()


def _on_sigterm(signum, frame):
    _cleanup_all()
    os._exit(128 + signum)


atexit.register(_cleanup_all)
signal.signal(signal.SIGTERM, _on_sigterm)


class Cluster(Scratch):
    """Everything one test needs, torn down by close() (use as a context manager)."""

    def __init__(self, name="fp", bin_dir=None):
        self.bin = bin_dir or BIN
        super().__init__(tempfile.mkdtemp(prefix="fp-it-%s-" % name))
        self.out = self.mkdir("out")
        self.results = self.mkdir("results")  # the master's --results-dir (by env)
        self.procs = []
        self.redis_srv = None
        self.nginx = None
        self.origin = None
        self.master = None
        self.workers = []
        self.closed_ports = []
        self._clients = []
        _live.append(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # servers
    def start_redis(self, **kw):
        self.redis_srv = Redis(self, **kw)
        return self.redis_srv

    def start_nginx(self, root=None):
        self.nginx = Nginx(self, root or self.mkdir("www"))
        return self.nginx

    def start_origin(self, delay_ms=0, host="127.0.0.1", port=0, extra=()):
        """port 0: a free one; else that port (to restart an origin where it was).
        extra: more origin.py options (--robots FILE, --robots-status CODE)."""
        self.origin = Origin(self, delay_ms, host, port, extra)
        return self.origin

    def closed_port(self):
        cp = ClosedPort()
        self.closed_ports.append(cp)
        return cp.port

    def redis(self):
        """A client of the cluster's redis (closed at teardown)."""
        c = self.redis_srv.client()
        self._clients.append(c)
        return c

    def env(self):
        e = dict(os.environ)
        e.pop("FETCHPOOL_REDIS", None)
        e.pop("FETCHPOOL_OUTPUT", None)
        e.pop("FETCHPOOL_CONCURRENCY", None)
        # The master writes results files here and submit reads them from here.
        e["FETCHPOOL_RESULTS_DIR"] = self.results
        return e

    def exe(self, name):
        p = os.path.join(self.bin, name)
        if not os.access(p, os.X_OK):
            # A failure, not a skip: ctest would count a skipped test as passed.
            raise RuntimeError("%s not built (looked in %s)" % (name, self.bin))
        return p

    def start_master(self, *args, name="master"):
        """The tests' origins are their own: no cluster-wide per-host caps unless a test
        passes --host-conns / --host-rate."""
        args = list(args)
        for opt in ("--host-conns", "--host-rate"):
            if opt not in args:
                args += [opt, "0"]
        argv = [self.exe("fetchpool-master"), "--redis", self.redis_srv.url] + args
        self.master = Proc(name, argv, self.dir, env=self.env())
        self.procs.append(self.master)
        return self.master

    def start_worker(self, wid=None, *args, output=None, concurrency=None, allow_private=True):
        """allow_private=False: the SSRF guard judges every address (pass --allow-cidr)."""
        wid = wid or "w%d" % (len(self.workers) + 1)
        argv = [self.exe("fetchpool-worker"), "--redis", self.redis_srv.url,
                "--output", output or self.out, "--id", wid]
        if allow_private:
            argv.append("--allow-private")
        if concurrency:
            argv += ["--concurrency", str(concurrency)]
        w = Proc("worker-" + wid, argv + list(args), self.dir, env=self.env())
        self.workers.append(w)
        self.procs.append(w)
        return w

    def wait_workers_registered(self, n=None, timeout=10.0):
        """Wait until n worker ids are in fp:workers (best effort: returns what it saw)."""
        n = n or len(self.workers)
        c = self.redis()
        deadline = time.monotonic() + timeout
        seen = []
        while time.monotonic() < deadline:
            seen = c.call("SMEMBERS", "fp:workers") or []
            if len(seen) >= n:
                break
            self.check_alive()
            time.sleep(0.05)
        return seen

    def check_alive(self):
        """Raise with log tails if the master or a worker died."""
        for p in [self.master] + self.workers:
            if p is not None and not p.alive():
                raise AssertionError("%s exited with %s\n--- log tail ---\n%s" % (
                    p.name, p.popen.returncode, p.tail()))

    # clients
    def write_input(self, lines, name="urls.txt"):
        path = self.path(name)
        with open(path, "w", encoding="utf-8") as f:
            for line in lines:
                f.write(line + "\n")
        return path

    def submit(self, *args, timeout=300, stdin=None):
        """Run scripts/submit --redis <ours> args...; returns a SubmitResult."""
        if not os.path.exists(SUBMIT):
            raise RuntimeError("scripts/submit not found at %s" % SUBMIT)
        argv = [sys.executable, SUBMIT, "--redis", self.redis_srv.url] + list(args)
        t0 = time.monotonic()
        try:
            cp = subprocess.run(argv, input=stdin, capture_output=True, text=True,
                                timeout=timeout, env=self.env(), preexec_fn=_die_with_parent)
        except subprocess.TimeoutExpired as e:
            # Say why: a daemon that died (its exit status and log tail) or one that stalled.
            err = e.stderr or b""
            err = err.decode(errors="replace") if isinstance(err, bytes) else err
            raise AssertionError("submit %s: not finished after %g s\nstderr:\n%s\n%s" % (
                " ".join(args), timeout, err[-2000:], self.logs())) from None
        return SubmitResult(cp, time.monotonic() - t0)

    def submit_async(self, *args):
        """Start scripts/submit in the background; returns a Proc (stdout piped)."""
        if not os.path.exists(SUBMIT):
            raise RuntimeError("scripts/submit not found at %s" % SUBMIT)
        argv = [sys.executable, SUBMIT, "--redis", self.redis_srv.url] + list(args)
        p = Proc("submit-%d" % len(self.procs), argv, self.dir, env=self.env(),
                 stdout_pipe=True)
        self.procs.append(p)
        return p

    def results_bytes(self, jid):
        """The job's results files (the master's part files) concatenated, as bytes."""
        d = os.path.join(self.results, str(jid))
        names = sorted(n for n in os.listdir(d) if n.startswith("part-"))
        out = []
        for n in names:
            with open(os.path.join(d, n), "rb") as f:
                out.append(f.read())
        return b"".join(out)

    def job_rows(self, jid):
        """The job's rows from the master's TSV results files, in input order."""
        path = self.path("job-%s.tsv" % jid)
        with open(path, "wb") as f:
            f.write(self.results_bytes(jid))
        return read_tsv(path)

    def logs(self, n=30):
        """Log tails of every process, for assertion messages."""
        parts = []
        for p in self.procs:
            # poll(): a daemon that died unwaited-for shows its exit status, not None.
            parts.append("--- %s (%s) ---\n%s" % (p.name, p.popen.poll(), p.tail(n)))
        return "\n".join(parts)

    def temp_leftovers(self, out=None):
        """Files under <out>/.tmp (the worker's temp dir); [] when empty or absent."""
        tmp = os.path.join(out or self.out, ".tmp")
        found = []
        for root, _, files in os.walk(tmp):
            found += [os.path.join(root, f) for f in files]
        return found

    def close(self):
        if self not in _live:
            return
        _live.remove(self)
        for c in self._clients:
            try:
                c.close()
            except OSError:
                pass
        # Clients first, then the servers they talk to. A master or worker still running
        # now must stop cleanly on SIGTERM: exit 0, every libuv handle closed, no fatal
        # signal logged.
        ours = [p for p in [self.master] + self.workers if p is not None and p.alive()]
        unclean = []
        for p in reversed(self.procs):
            try:
                rc = p.stop(timeout=15)
            except Exception:
                continue
            if p in ours:
                with open(p.log_path, "rb") as f:
                    log = f.read().decode("utf-8", "replace")
                # One stopped before it said it runs died of the signal, as it should.
                started = " INFO " in log
                if started and (rc != 0 or "handles still open" in log or " FATAL " in log):
                    unclean.append("%s exited %s:\n%s" % (p.name, rc, log[-2000:]))
        # A sanitizer report fails the test, also one of a daemon that died before now: in
        # the ASan + UBSan build UBSan writes to stderr (its log here), not to the log_path
        # folder scripts/test looks at.
        for p in self.procs:
            if p in ours:
                continue
            try:
                with open(p.log_path, "rb") as f:
                    log = f.read().decode("utf-8", "replace")
            except OSError:
                continue
            at = min((log.find(m) for m in SANITIZER_MARKS if m in log), default=-1)
            if at >= 0:
                at = log.rfind("\n", 0, at) + 1   # from the start of its line
                unclean.append("%s: sanitizer report:\n%s" % (p.name, log[at:at + 2000]))
        for srv in (self.origin, self.nginx, self.redis_srv):
            if srv is not None:
                try:
                    srv.stop()
                except Exception:
                    pass
        for cp in self.closed_ports:
            cp.close()
        if os.environ.get("FP_KEEP"):
            sys.stderr.write("fp_harness: kept %s\n" % self.dir)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)
        if unclean and not _exiting:
            raise AssertionError("not a clean stop:\n" + "\n".join(unclean))


# -- test entry point ------------------------------------------------------------------

def main():
    """unittest.main() that also takes --bin DIR (sets where the C binaries are)."""
    global BIN
    argv = list(sys.argv)
    if "--bin" in argv:
        i = argv.index("--bin")
        BIN = os.path.abspath(argv[i + 1])
        del argv[i:i + 2]
    os.environ["FP_BIN"] = BIN
    unittest.main(argv=argv, verbosity=2)
