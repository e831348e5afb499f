"""Network namespaces for impairment tests (root only).

Topology (every address lives only inside namespaces made here, so no
packet ever reaches a real network):

    probe ns P                         target ns T
    va 192.0.2.1/24, .11/24   <──veth──>  ta 192.0.2.2/24
       2001:db8:a::1, ::11/64               2001:db8:a::2/64
    vb 198.51.100.1/28        <──veth──>  tb 198.51.100.2/28
       2001:db8:b::1/64                     2001:db8:b::2/64
                                          lo 203.0.113.1/32, 2001:db8:ff::1/128
                                          (the "service" address, reachable
                                          over both links: va preferred,
                                          metric 10; vb metric 20)

T also forwards, and holds `unreachable` routes for 198.51.100.128/25 and
2001:db8:dead::/48 and `prohibit` routes for 198.51.100.160/27 and
2001:db8:beef::/48, which P routes through it: a probe to those gets a
real ICMP destination-unreachable back from T (host unreachable / no route,
or administratively prohibited).  P's own table has `unreachable` routes
for 203.0.113.64/26 and 2001:db8:cafe::/48, so a send there fails locally.

Impairments are nftables rules in T's input hook (so forwarded traffic is
untouched): random loss of echo requests, a blackhole of echo
requests, and named counters matching saddr/iifname to check where a probe
came from.  Latency comes from tests/tools/icmp_delay, run in T with the
kernel's echo replies switched off in T only.

Everything is undone in close(), which __exit__ always calls: processes we
started are killed by PID, then the namespaces are deleted.
"""
import itertools
import json
import os
import random
import subprocess
import sys
import threading
import time

import harness

_serial = itertools.count()

# Addresses, by role.
P_A4, P_A4_2, T_A4 = "192.0.2.1", "192.0.2.11", "192.0.2.2"
P_A6, P_A6_2, T_A6 = "2001:db8:a::1", "2001:db8:a::11", "2001:db8:a::2"
P_B4, T_B4 = "198.51.100.1", "198.51.100.2"
P_B6, T_B6 = "2001:db8:b::1", "2001:db8:b::2"
SVC4, SVC6 = "203.0.113.1", "2001:db8:ff::1"
UNREACH4, UNREACH6 = "198.51.100.200", "2001:db8:dead::1"
PROHIB4, PROHIB6 = "198.51.100.170", "2001:db8:beef::1"
# Unreachable in P's own table: sendto() itself fails (EHOSTUNREACH/ENETUNREACH).
LOCAL_UNREACH4, LOCAL_UNREACH6 = "203.0.113.65", "2001:db8:cafe::1"

ICMP_DELAY = os.environ.get("ICMP_DELAY") or os.path.join(
    os.environ.get("BEACOND_BUILD_ROOT", os.path.join(harness.SOURCE_ROOT, "build")),
    "tests", "icmp_delay")


def available():
    """None if namespace tests can run here, else the reason they cannot."""
    if not harness.is_root():
        return "needs root"
    for cmd in ("ip", "nft"):
        if not harness.have(cmd):
            return f"needs {cmd}"
    return None


class NsDaemon(harness.Daemon):
    """harness.Daemon that also records when each log line arrived
    (time.monotonic()), so tests can time state changes from outside."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.times = []

    def _read(self):
        # Mirrors harness.Daemon._read (lines, and the parsed events when the
        # harness keeps them) and adds each line's arrival time.
        keep_parsed = hasattr(self, "_parsed")
        for raw in self.proc.stdout:
            now = time.monotonic()
            line = raw.decode("utf-8", "replace").rstrip("\n")
            if os.environ.get("BEACOND_TEST_ECHO"):
                sys.stderr.write("  | " + line + "\n")
            ev = harness.parse_logfmt(line)
            with self._cv:
                self.times.append(now)
                self.lines.append(line)
                if keep_parsed:
                    self._parsed.append(ev)
                self._cv.notify_all()
        with self._cv:
            self._cv.notify_all()

    def wait_event_at(self, event, timeout=10, since=0, **match):
        """Wait for the first matching event at line index >= since; return
        (parsed event, arrival time, line index)."""
        deadline = time.monotonic() + timeout
        with self._cv:
            i = since
            while True:
                while i < len(self.lines):
                    ev = (self._parsed[i] if hasattr(self, "_parsed")
                          else harness.parse_logfmt(self.lines[i]))
                    if ev.get("event") == event and all(
                            ev.get(k) == str(v) for k, v in match.items()):
                        return ev, self.times[i], i
                    i += 1
                if not self.alive():
                    raise AssertionError(f"beacond exited before event={event} {match}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out waiting for event={event} {match}")
                self._cv.wait(min(left, 0.05))


class Topology:
    """Probe and target namespaces (and the routes and nft table above)."""

    def __init__(self, dgram=False):
        tag = f"{os.getpid()}-{next(_serial)}"
        self.P = f"bcn-p-{tag}"
        self.T = f"bcn-t-{tag}"
        self.dgram = dgram
        self.procs = []
        self.daemons = []
        self._made = []

    # -- plumbing ---------------------------------------------------------
    @staticmethod
    def _run(cmd, check=True, input=None, capture=True):
        r = subprocess.run(cmd, input=input, text=True, timeout=30,
                           stdout=subprocess.PIPE if capture else None,
                           stderr=subprocess.PIPE if capture else None)
        if check and r.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({r.returncode}): {r.stderr}")
        return r

    def ns(self, ns, *cmd, check=True, input=None):
        return self._run(["ip", "netns", "exec", ns] + list(cmd), check=check, input=input)

    def ip(self, ns, *args):
        return self._run(["ip", "-n", ns] + list(args))

    def sysctl(self, ns, key, value):
        # Written through /proc/sys inside the namespace: never the root one.
        self.ns(ns, "sh", "-c", f"echo {value} > /proc/sys/{key.replace('.', '/')}")

    def nft(self, script):
        """Run an nft script in T."""
        return self.ns(self.T, "nft", "-f", "-", input=script)

    # -- build / tear down ---------------------------------------------------
    def __enter__(self):
        try:
            self._build()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc):
        self.close()

    def _build(self):
        P, T = self.P, self.T
        for ns in (P, T):
            self._run(["ip", "netns", "add", ns])
            self._made.append(ns)
            self.ip(ns, "link", "set", "lo", "up")
        self.ip(P, "link", "add", "va", "type", "veth", "peer", "name", "ta", "netns", T)
        self.ip(P, "link", "add", "vb", "type", "veth", "peer", "name", "tb", "netns", T)
        for ns, dev, addrs in (
                (P, "va", [f"{P_A4}/24", f"{P_A4_2}/24", f"{P_A6}/64", f"{P_A6_2}/64"]),
                (P, "vb", [f"{P_B4}/28", f"{P_B6}/64"]),
                (T, "ta", [f"{T_A4}/24", f"{T_A6}/64"]),
                (T, "tb", [f"{T_B4}/28", f"{T_B6}/64"]),
                (T, "lo", [f"{SVC4}/32", f"{SVC6}/128"])):
            for a in addrs:
                extra = ["nodad"] if ":" in a else []
                self.ip(ns, "addr", "add", a, "dev", dev, *extra)
            self.ip(ns, "link", "set", dev, "up")
        # Requests may arrive on tb from an address whose route is via ta.
        for dev in ("all", "default", "ta", "tb"):
            self.sysctl(T, f"net.ipv4.conf.{dev}.rp_filter", 0)
        # T routes to the unreachable prefixes (and answers every error).
        self.sysctl(T, "net.ipv4.ip_forward", 1)
        self.sysctl(T, "net.ipv6.conf.all.forwarding", 1)
        self.sysctl(T, "net.ipv4.icmp_ratelimit", 0)
        self.sysctl(T, "net.ipv6.icmp.ratelimit", 0)
        self.ip(T, "route", "add", "unreachable", "198.51.100.128/25")
        self.ip(T, "-6", "route", "add", "unreachable", "2001:db8:dead::/48")
        self.ip(T, "route", "add", "prohibit", "198.51.100.160/27")
        self.ip(T, "-6", "route", "add", "prohibit", "2001:db8:beef::/48")
        self.ip(P, "route", "add", "198.51.100.128/25", "via", T_A4, "dev", "va")
        self.ip(P, "-6", "route", "add", "2001:db8:dead::/48", "via", T_A6, "dev", "va")
        self.ip(P, "-6", "route", "add", "2001:db8:beef::/48", "via", T_A6, "dev", "va")
        self.ip(P, "route", "add", "unreachable", "203.0.113.64/26")
        self.ip(P, "-6", "route", "add", "unreachable", "2001:db8:cafe::/48")
        # The service address: va preferred, vb as the fallback route that
        # only a socket bound to vb will use.
        self.ip(P, "route", "add", SVC4, "via", T_A4, "dev", "va", "metric", "10")
        self.ip(P, "route", "add", SVC4, "via", T_B4, "dev", "vb", "metric", "20")
        self.ip(P, "-6", "route", "add", SVC6, "via", T_A6, "dev", "va", "metric", "10")
        self.ip(P, "-6", "route", "add", SVC6, "via", T_B6, "dev", "vb", "metric", "20")
        if self.dgram:
            self.sysctl(P, "net.ipv4.ping_group_range", "'0 2147483647'")
        self.nft("""
table inet bcn {
    chain count {
        type filter hook input priority -10; policy accept;
    }
    chain impair {
        type filter hook input priority 0; policy accept;
    }
}
""")
        self._wait_neighbours()

    def _wait_neighbours(self):
        """Resolve neighbours once so the first probes do not wait on ARP/ND."""
        for a in (T_A4, T_B4, T_A6, T_B6):
            self.ns(self.P, "ping", "-c", "1", "-W", "2", a, check=False)

    def close(self):
        for d in self.daemons:
            try:
                d.close()
            except Exception:
                pass
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        for ns in reversed(self._made):
            self._run(["ip", "netns", "del", ns], check=False)
        self._made = []

    # -- processes ---------------------------------------------------------
    def popen(self, ns, cmd, **kw):
        p = subprocess.Popen(["ip", "netns", "exec", ns] + list(cmd), **kw)
        self.procs.append(p)
        return p

    def daemon(self, config_text, **kw):
        """Start beacond in P (not yet started: call .start())."""
        d = NsDaemon(config_text, prefix=["ip", "netns", "exec", self.P], **kw)
        self.daemons.append(d)
        return d

    def start_delay(self, delay_ms, max_seconds=60):
        """Answer echo requests in T after delay_ms (kernel replies off)."""
        if not os.path.exists(ICMP_DELAY):
            raise RuntimeError(f"icmp_delay not built at {ICMP_DELAY}")
        self.sysctl(self.T, "net.ipv4.icmp_echo_ignore_all", 1)
        self.sysctl(self.T, "net.ipv6.icmp.echo_ignore_all", 1)
        p = self.popen(self.T, [ICMP_DELAY, "-d", str(delay_ms), "-t", str(max_seconds)],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = p.stdout.readline().strip()
        if line != "ready":
            p.kill()
            raise RuntimeError(f"icmp_delay did not start: {line!r} {p.stderr.read()}")
        return p

    def stop_delay(self, p):
        """Stop the responder and give the kernel its echo replies back.
        Returns (counters line, {(family, seq): late_ms}) where late_ms is
        how much later than the delay each reply really left."""
        p.terminate()
        out, err = p.communicate(timeout=10)
        self.sysctl(self.T, "net.ipv4.icmp_echo_ignore_all", 0)
        self.sysctl(self.T, "net.ipv6.icmp.echo_ignore_all", 0)
        late = {}
        for line in out.splitlines():
            f = line.split()
            if len(f) == 5 and f[0] == "reply":
                late[(int(f[1]), int(f[3]))] = int(f[4]) / 1e6
        return err.strip(), late

    # -- impairments ---------------------------------------------------------
    def set_loss(self, pct):
        """Drop pct% of the echo requests arriving in T (one direction only,
        so the loss a pinger sees is pct%, not 1-(1-pct)^2): exactly pct of
        every 100 consecutive requests of a family, at positions drawn at
        random for each run.  The pattern is irregular but the rate exact, so
        a test of the reported loss measures the pinger, not the spread of an
        independent coin per packet (`numgen random` over 500 requests
        spreads by +-1.8 points at 20 %; one run in a few hundred lands more
        than 5 points off, as one CI run did: 14.0 %).  The drops are
        counted in the named counters loss4 and loss6."""
        def positions():
            return ", ".join(str(i) for i in sorted(random.sample(range(100), int(pct))))
        if int(pct) <= 0:
            self.clear()
            return
        self.nft(f"""
flush chain inet bcn impair
add counter inet bcn loss4
add counter inet bcn loss6
add rule inet bcn impair icmp type echo-request numgen inc mod 100 {{ {positions()} }} counter name "loss4" drop
add rule inet bcn impair icmpv6 type echo-request numgen inc mod 100 {{ {positions()} }} counter name "loss6" drop
""")

    def blackhole(self, on):
        """Drop every echo request arriving in T (on) or none (off).  Neighbour
        discovery is left alone so IPv6 recovers as fast as IPv4."""
        script = "flush chain inet bcn impair\n"
        if on:
            script += ("add rule inet bcn impair icmp type echo-request drop\n"
                       "add rule inet bcn impair icmpv6 type echo-request drop\n")
        self.nft(script)

    def echo_switch(self):
        """A switch for the kernel's echo replies in T that flips in
        microseconds, for tests that time how fast the daemon notices.
        nft takes 5-150 ms to run on a busy machine, which would blur when
        a blackhole really began; this helper process, started in T once,
        keeps T's echo_ignore_all files open and writes them on request."""
        return EchoSwitch(self)

    def clear(self):
        self.nft("flush chain inet bcn impair\n")

    # -- counters -------------------------------------------------------------
    def add_counter(self, name, match):
        """Count packets arriving in T that match an nft expression, e.g.
        add_counter("src11", "ip saddr 192.0.2.11 icmp type echo-request")."""
        self.nft(f"add counter inet bcn {name}\n"
                 f"add rule inet bcn count {match} counter name \"{name}\"\n")

    def counter(self, name):
        out = self.ns(self.T, "nft", "-j", "list", "counter", "inet", "bcn", name).stdout
        for item in json.loads(out)["nftables"]:
            if "counter" in item:
                return item["counter"]["packets"]
        raise AssertionError(f"no counter {name}")


_SWITCH = r"""
import sys
files = [open("/proc/sys/net/ipv4/icmp_echo_ignore_all", "w"),
         open("/proc/sys/net/ipv6/icmp/echo_ignore_all", "w")]
print("ready", flush=True)
for line in sys.stdin:
    for f in files:
        f.seek(0)
        f.write(line.strip() + "\n")
        f.flush()
    print("ok", flush=True)
"""


class EchoSwitch:
    """See Topology.echo_switch().  on() stops T answering echo requests
    (both families), off() restores it; both return (t_before, t_after),
    monotonic times bracketing the moment the change took effect."""

    def __init__(self, topo):
        self.p = topo.popen(topo.T, ["python3", "-c", _SWITCH], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
        if self.p.stdout.readline().strip() != "ready":
            raise RuntimeError("echo switch did not start")

    def _set(self, value):
        t0 = time.monotonic()
        self.p.stdin.write(f"{value}\n")
        self.p.stdin.flush()
        ack = self.p.stdout.readline().strip()
        t1 = time.monotonic()
        if ack != "ok":
            raise RuntimeError(f"echo switch: {ack!r}")
        return t0, t1

    def on(self):
        return self._set(1)

    def off(self):
        return self._set(0)


class StallMonitor:
    """A thread that sleeps 10 ms at a time and records how late it woke.
    When a timing assertion fails, its record tells a machine-wide stall
    (every process late: CPU starvation, hypervisor steal) from one of the
    daemon's own."""

    def __init__(self, period=0.01):
        self.period = period
        self.late = []          # (monotonic wake-up time, seconds late)
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self):
        while not self._stop.is_set():
            t = time.monotonic()
            self._stop.wait(self.period)
            now = time.monotonic()
            self.late.append((now, now - t - self.period))

    def worst(self, t_from, t_to):
        """Largest oversleep (seconds) of a wake-up within [t_from, t_to]."""
        return max((late for at, late in self.late if t_from <= at <= t_to), default=0.0)

    def stop(self):
        self._stop.set()
        self._t.join()


def log_reader_thread(stream, sink):
    """Collect lines of a child's stream in the background."""
    def run():
        for line in stream:
            sink.append(line)
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t
