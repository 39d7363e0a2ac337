"""A loopback internet for fetchpool's integration tests, long runs and benchmark.

`enter()` re-executes the calling script inside a network + mount namespace of its own
(`unshare -n -m`, as root): its own loopback device, where anything may bind
127.0.0.x:53/80/443, and private copies of /etc/resolv.conf and /etc/hosts bind-mounted
over the machine's (never edited). Nothing inside can reach an address outside the
namespace or the machine's own resolver; every child process inherits the world.

`World(root_dir)` then starts, on loopback addresses inside it:
  - dnsmasq on 127.0.0.1:53, the resolver named in resolv.conf: thousands of names from
    a hosts file (h<N>.img.test -> 127.0.1.<1 + N mod ADDRS>), NXDOMAIN for any other name
    under .test, and the zone fault.test forwarded, uncached, to tests/dns.py on
    127.0.0.2:53 (SERVFAIL, late answers, rebinding with TTL 0, several addresses);
  - nginx on 127.0.1.1..ADDRS, port 80 (HTTP/1.1) and 443 (TLS, HTTP/2), serving `www`
    with a certificate for *.img.test from a test CA made here with openssl, /slow/<path>
    after a first-byte delay (echo module), and TLS origins with an expired, a
    self-signed and a wrong-host certificate (expired/selfsigned/wronghost.tls.test);
  - TLS origins that misbehave below HTTP: one that accepts and never answers the
    handshake (stall.tls.test), one that resets it (reset.tls.test);
  - tests/h2origin.py, an HTTP/2 origin that refuses streams, sends GOAWAY and floods
    headers (h2.tls.test).
Origins of tests/origin.py can be added on any address (`add_origin`), with a name.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
DNS_PY = os.path.join(HERE, "dns.py")
ORIGIN_PY = os.path.join(HERE, "origin.py")
H2_PY = os.path.join(HERE, "h2origin.py")
ECHO_MODULE = "/usr/lib/nginx/modules/ngx_http_echo_module.so"

ADDRS = 20                        # nginx addresses 127.0.1.1 .. 127.0.1.ADDRS
TLS_FAULTS = {                    # name -> address
    "expired.tls.test": "127.0.3.1",
    "selfsigned.tls.test": "127.0.3.2",
    "wronghost.tls.test": "127.0.3.3",
    "stall.tls.test": "127.0.3.4",
    "reset.tls.test": "127.0.3.5",
    "h2.tls.test": "127.0.3.6",    # tests/h2origin.py: refused streams, GOAWAY, floods
    "h2flood.tls.test": "127.0.3.6",   # the same, under a name of its own: its own connection
}
DEBIAN_PYTHON = "/usr/bin/python3"   # has Debian's python3-h2
ENV_FLAG = "FP_WORLD_NS"


def inside():
    return os.environ.get(ENV_FLAG) == "1"


def enter():
    """Re-exec this script inside a fresh network + mount namespace (no-op once inside)."""
    if inside():
        return
    if os.geteuid() != 0:
        # A failure, not a skip: ctest would count a skipped test as passed.
        sys.exit("tests/world.py: the test world needs root (unshare -n -m)")
    if shutil.which("unshare") is None:
        sys.exit("tests/world.py: unshare (util-linux) is missing")
    env = dict(os.environ, **{ENV_FLAG: "1"})
    argv = ["unshare", "--net", "--mount", "--propagation", "private", "--",
            sys.executable] + sys.argv
    os.execvpe("unshare", argv, env)


def _run(*argv):
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def host_addr(i):
    return "127.0.1.%d" % (1 + i % ADDRS)


# -- certificates ------------------------------------------------------------------------

def _openssl(*args):
    cp = subprocess.run(["openssl"] + list(args), capture_output=True, text=True)
    if cp.returncode != 0:
        raise RuntimeError("openssl %s failed:\n%s" % (args[0], cp.stderr))


class Certs:
    """A test CA and the leaf certificates the world's TLS origins use (EC P-256)."""

    def __init__(self, d):
        self.d = d
        os.makedirs(d, exist_ok=True)
        self.ca = self.p("ca.pem")
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        _openssl("req", "-x509", *ec, "-keyout", self.p("ca.key"), "-out", self.ca,
                 "-days", "30", "-subj", "/CN=fetchpool test CA")
        self.leaf("img", ["*.img.test", "img.test", "*.tls.test", "*.fault.test"], days=30)
        self.leaf("expired", ["expired.tls.test"], days=-1)
        self.leaf("wronghost", ["other.example"], days=30)
        _openssl("req", "-x509", *ec, "-keyout", self.p("selfsigned.key"),
                 "-out", self.p("selfsigned.pem"), "-days", "30",
                 "-subj", "/CN=selfsigned.tls.test",
                 "-addext", "subjectAltName=DNS:selfsigned.tls.test")

    def p(self, name):
        return os.path.join(self.d, name)

    def leaf(self, name, sans, days):
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        _openssl("req", "-new", *ec, "-keyout", self.p(name + ".key"), "-out",
                 self.p(name + ".csr"), "-subj", "/CN=" + sans[0])
        with open(self.p(name + ".ext"), "w") as f:
            f.write("subjectAltName=%s\n" % ",".join("DNS:" + s for s in sans))
        # -days -1: valid until yesterday, i.e. expired.
        _openssl("x509", "-req", "-in", self.p(name + ".csr"), "-CA", self.ca, "-CAkey",
                 self.p("ca.key"), "-set_serial", str(abs(hash(name)) % 10**9 + 2), "-days",
                 str(days), "-out", self.p(name + ".pem"), "-extfile", self.p(name + ".ext"))


# -- nginx -------------------------------------------------------------------------------

NGINX_CONF = """\
# generated by tests/world.py
{load_module}
daemon off;
master_process on;
worker_processes {workers};
worker_rlimit_nofile 65536;
user root;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 16384; multi_accept on; }}
http {{
    {access_log}
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    types {{ image/jpeg jpg jpeg; image/png png; image/gif gif; image/webp webp; }}
    default_type application/octet-stream;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 100000;
    keepalive_timeout 60s;
    http2_max_concurrent_streams 128;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache shared:SSL:10m;
    server {{
{listen}
        server_name _;
        root {www};
        ssl_certificate {certs}/img.pem;
        ssl_certificate_key {certs}/img.key;
        {slow}
    }}
{faults}
}}
"""

TLS_FAULT_SERVER = """\
    server {{
        listen {addr}:443 ssl http2;
        root {www};
        ssl_certificate {certs}/{name}.pem;
        ssl_certificate_key {certs}/{name}.key;
    }}
"""


# One line per request, written when it ends: when it ended, how long it took, which
# connection carried it (a serial number shared by all nginx workers), the protocol, the
# status and the Host (for per-host concurrency).
ACCESS_LOG = ("log_format fp_timing '$msec $request_time $connection $server_protocol "
              "$status $host';\n    access_log %s fp_timing;")


class Nginx:
    def __init__(self, d, www, certs, delay_s=0.2, workers=1, access_log=None):
        self.d = d
        for sub in ("body", "proxy", "fastcgi"):
            os.makedirs(os.path.join(d, sub), exist_ok=True)
        listen = []
        for i in range(ADDRS):
            a = host_addr(i)
            listen.append("        listen %s:80 backlog=4096;" % a)
            listen.append("        listen %s:443 ssl http2 backlog=4096;" % a)
        have_echo = os.path.exists(ECHO_MODULE)
        # /slow: the latency-bound scenarios' delay; /pace: 20 ms, long enough for the
        # access log's millisecond times to show how many requests overlap.
        slow = ("location ~ ^/slow(/.*)$ { echo_sleep %s; echo_exec $1; }\n"
                "        location ~ ^/pace(/.*)$ { echo_sleep 0.02; echo_exec $1; }" % delay_s
                if have_echo else "")
        faults = "".join(TLS_FAULT_SERVER.format(addr=TLS_FAULTS[n + ".tls.test"], www=www,
                                                 certs=certs.d, name=n)
                         for n in ("expired", "selfsigned", "wronghost"))
        conf = os.path.join(d, "nginx.conf")
        with open(conf, "w") as f:
            f.write(NGINX_CONF.format(
                load_module="load_module %s;" % ECHO_MODULE if have_echo else "",
                workers=workers, d=d, www=www, certs=certs.d, listen="\n".join(listen),
                slow=slow, faults=faults,
                access_log=ACCESS_LOG % access_log if access_log else "access_log off;"))
        self.log = open(os.path.join(d, "nginx.out"), "ab")
        self.proc = subprocess.Popen(["nginx", "-p", d, "-c", conf, "-e",
                                      os.path.join(d, "error.log")],
                                     stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=self.log)
        _wait_tcp(host_addr(ADDRS - 1), 443, self.proc, "nginx")
        _wait_tcp(TLS_FAULTS["wronghost.tls.test"], 443, self.proc, "nginx")

    def stop(self):
        _stop(self.proc, signal.SIGQUIT)
        self.log.close()


# -- TLS origins that misbehave below HTTP -----------------------------------------------

class RawFault(threading.Thread):
    """On addr:443: 'stall' accepts and never answers; 'reset' reads the ClientHello
    and answers with a TCP RST."""

    def __init__(self, addr, mode):
        super().__init__(daemon=True)
        self.mode = mode
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((addr, 443))
        self.sock.listen(256)
        self.held = []
        self.accepted = 0
        self.start()

    def run(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            if self.mode == "stall":
                self.held.append(c)
                continue
            try:
                c.settimeout(2)
                c.recv(4096)
                c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            except OSError:
                pass
            c.close()

    def stop(self):
        self.sock.close()
        for c in self.held:
            c.close()


# -- helpers -----------------------------------------------------------------------------

def _wait_tcp(addr, port, proc, what, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("%s exited with %s" % (what, proc.returncode))
        try:
            with socket.create_connection((addr, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("%s did not listen on %s:%d" % (what, addr, port))


def _stop(proc, sig=signal.SIGTERM, timeout=10):
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class World:
    """The servers of the loopback internet; stop() ends them (the namespace goes with
    the process). Call enter() first. access_log=PATH makes nginx log every request
    there (ACCESS_LOG: end time, duration, connection serial, protocol), unbuffered."""

    def __init__(self, d, names=2000, www=None, dns_rules=None, slow_delay_s=0.2,
                 nginx_workers=1, access_log=None):
        if not inside():
            raise RuntimeError("World() outside the namespace: call world.enter() first")
        self.d = d
        self.names = names
        self.www = www or os.path.join(d, "www")
        os.makedirs(self.www, exist_ok=True)
        self.procs = []
        self.raw = []
        self.origins = {}
        self.extra_hosts = {}
        _run("ip", "link", "set", "lo", "up")
        self.certs = Certs(os.path.join(d, "certs"))
        self.ca = self.certs.ca
        self._etc()
        self.dns_log = os.path.join(d, "dns-queries.log")
        self._fault_dns(dns_rules or {})
        self._dnsmasq()
        self.nginx = Nginx(self.mkdir("nginx"), self.www, self.certs, slow_delay_s,
                           nginx_workers, access_log)
        self.raw.append(RawFault(TLS_FAULTS["stall.tls.test"], "stall"))
        self.raw.append(RawFault(TLS_FAULTS["reset.tls.test"], "reset"))
        self._h2origin()

    def _h2origin(self):
        p = subprocess.Popen([DEBIAN_PYTHON, H2_PY, "--host", TLS_FAULTS["h2.tls.test"],
                              "--cert", self.certs.p("img.pem"), "--key",
                              self.certs.p("img.key")], stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE,
                             stderr=open(os.path.join(self.d, "h2origin.log"), "ab"))
        self.procs.append(p)
        if p.stdout.readline().strip() != b"READY":
            raise RuntimeError("tests/h2origin.py did not start (python3-h2 missing?); see "
                               "%s/h2origin.log" % self.d)

    def mkdir(self, name):
        p = os.path.join(self.d, name)
        os.makedirs(p, exist_ok=True)
        return p

    # /etc of the world
    def _etc(self):
        etc = self.mkdir("etc")
        with open(os.path.join(etc, "resolv.conf"), "w") as f:
            f.write("nameserver 127.0.0.1\noptions timeout:2 attempts:2\n")
        with open(os.path.join(etc, "hosts"), "w") as f:
            f.write("127.0.0.1 localhost\n::1 localhost ip6-localhost\n")
        for name in ("resolv.conf", "hosts"):
            target = os.path.join("/etc", name)
            if not os.path.exists(target):
                raise RuntimeError("%s is missing: nothing to bind-mount over" % target)
            _run("mount", "--bind", os.path.join(etc, name), target)

    def _hosts_file(self):
        path = os.path.join(self.d, "dnsmasq.hosts")
        with open(path, "w") as f:
            for i in range(self.names):
                f.write("%s h%d.img.test\n" % (host_addr(i), i))
            for name, addr in TLS_FAULTS.items():
                f.write("%s %s\n" % (addr, name))
            for name, addr in self.extra_hosts.items():
                f.write("%s %s\n" % (addr, name))
        return path

    def _dnsmasq(self):
        self.hosts_path = self._hosts_file()
        argv = ["dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv",
                "--no-hosts", "--no-poll", "--listen-address=127.0.0.1", "--bind-interfaces",
                "--port=53", "--user=root", "--pid-file=", "--cache-size=0", "--no-negcache",
                "--addn-hosts=" + self.hosts_path, "--local=/test/",
                "--server=/fault.test/127.0.0.2", "--dns-forward-max=1000",
                "--log-facility=" + os.path.join(self.d, "dnsmasq.log")]
        self.dnsmasq_log = open(os.path.join(self.d, "dnsmasq.out"), "ab")
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self.dnsmasq_log,
                             stderr=self.dnsmasq_log)
        self.dnsmasq = p
        self.procs.append(p)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if p.poll() is not None:
                raise RuntimeError("dnsmasq exited with %s; see %s" % (p.returncode, self.d))
            try:
                socket.getaddrinfo("h0.img.test", 80, socket.AF_INET)
                return
            except socket.gaierror:
                time.sleep(0.05)
        raise RuntimeError("dnsmasq did not answer")

    def add_hosts(self, mapping):
        """More name -> address entries; dnsmasq rereads its hosts file on SIGHUP."""
        self.extra_hosts.update(mapping)
        self._hosts_file()
        self.dnsmasq.send_signal(signal.SIGHUP)
        name = next(iter(mapping))
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                if socket.getaddrinfo(name, 80, socket.AF_INET)[0][4][0] == mapping[name]:
                    return
            except socket.gaierror:
                pass
            time.sleep(0.05)
        raise RuntimeError("dnsmasq did not pick up %s" % name)

    def _fault_dns(self, rules):
        path = os.path.join(self.d, "dns-rules.json")
        with open(path, "w") as f:
            json.dump(rules, f)
        self.dns_py_log = open(os.path.join(self.d, "dns.out"), "ab")
        p = subprocess.Popen([sys.executable, DNS_PY, "--host", "127.0.0.2", "--port", "53",
                              "--rules", path, "--log", self.dns_log],
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=self.dns_py_log)
        self.procs.append(p)
        if p.stdout.readline().strip() != b"READY":
            raise RuntimeError("tests/dns.py did not start; see %s/dns.out" % self.d)

    def dns_queries(self, name):
        """The answers tests/dns.py gave for name (A queries), oldest first."""
        try:
            with open(self.dns_log) as f:
                return [ln.split()[2] for ln in f if ln.split()[:2] == [name, "1"]]
        except OSError:
            return []

    def add_origin(self, addr, name=None, port=80, delay_ms=0):
        """tests/origin.py on addr:port, optionally under a DNS name; returns its base URL."""
        p = subprocess.Popen([sys.executable, ORIGIN_PY, "--host", addr, "--port", str(port),
                              "--delay-ms", str(delay_ms)], stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE,
                             stderr=open(os.path.join(self.d, "origin-%s.log" % addr), "ab"))
        self.procs.append(p)
        line = p.stdout.readline().decode().strip()
        if not line.startswith("READY"):
            raise RuntimeError("origin.py on %s did not start" % addr)
        if name:
            self.add_hosts({name: addr})
        base = "http://%s%s" % (name or addr, "" if port == 80 else ":%d" % port)
        self.origins[base] = p
        return base

    def origin_stats(self, base):
        import urllib.request
        with urllib.request.urlopen(base + "/__stats", timeout=10) as r:
            return json.load(r)

    def nginx_reload(self):
        """SIGHUP: new nginx workers; the old ones close their idle keep-alive connections."""
        self.nginx.proc.send_signal(signal.SIGHUP)

    def stop(self):
        for r in self.raw:
            r.stop()
        self.nginx.stop()
        for p in reversed(self.procs):
            _stop(p)


def temp_world(prefix="fp-world-", **kw):
    d = tempfile.mkdtemp(prefix=prefix)
    return World(d, **kw), d
