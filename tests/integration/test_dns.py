"""Targets by name: asynchronous DNS inside the loop (c-ares), against a real
DNS server (dnsmasq) started by the test on loopback."""
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
from harness import BEACOND, EX_CONFIG, Daemon, base_config  # noqa: E402

DNSMASQ = "/usr/sbin/dnsmasq"


def free_dns_port():
    """A port free for UDP and TCP on 127.0.0.1, below the ephemeral range:
    ports the kernel hands out (other tests' listeners and thousands of
    client connections, e.g. test_tcp's 19 000) never land there, so they
    cannot take it between this check and dnsmasq's bind."""
    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        low = int(f.read().split()[0])
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(10000, max(10001, low))
        try:
            for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
                with socket.socket(socket.AF_INET, kind) as s:
                    s.bind(("127.0.0.1", port))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port for dnsmasq")


class Dnsmasq:
    """dnsmasq on 127.0.0.1:PORT answering only from a hosts file we edit."""

    def __init__(self, hosts):
        self.tmp = tempfile.TemporaryDirectory(prefix="beacond-dns-")
        self.hosts = os.path.join(self.tmp.name, "hosts")
        self.write(hosts)
        # dnsmasq binds TCP as well as UDP on the port; another test's
        # dnsmasq may still take the same one first, so try a few.
        err = ""
        for _ in range(5):
            self.port = free_dns_port()
            self.proc = subprocess.Popen(
                [DNSMASQ, "--no-daemon", f"--port={self.port}", "--listen-address=127.0.0.1",
                 "--bind-interfaces", "--no-resolv", "--no-hosts", f"--addn-hosts={self.hosts}",
                 "--local-ttl=1", "--no-negcache", "--user=root", "--pid-file=",
                 "--log-facility=/dev/null"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                text=True)
            time.sleep(0.3)
            if self.proc.poll() is None:
                self.proc.stderr.close()
                return
            err = self.proc.stderr.read().strip()
            self.proc.stderr.close()
        raise RuntimeError(f"dnsmasq did not start: {err}")

    def write(self, text):
        with open(self.hosts, "w") as f:
            f.write(text)

    def reload(self):
        self.proc.send_signal(signal.SIGHUP)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)

    def close(self):
        self.stop()
        self.tmp.cleanup()


class SilentServer:
    """A UDP socket that takes DNS queries and never answers."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]

    def queries(self):
        n = 0
        self.sock.setblocking(False)
        while True:
            try:
                self.sock.recv(4096)
                n += 1
            except BlockingIOError:
                return n

    def close(self):
        self.sock.close()


def dns_config(port, targets, **icmp):
    icmp = {"interval": "200ms", "timeout": "150ms", "resolve_interval": "2s",
            "summary_interval": "0", **icmp}
    return base_config(daemon={"dns_servers": f"127.0.0.1:{port}"},
                       tcp={"listen": "127.0.0.1:0"}, udp={"listen": "127.0.0.1:0", "rate_limit": 0},
                       icmp=icmp, targets=targets)


@unittest.skipUnless(os.path.exists(DNSMASQ), "dnsmasq not installed")
class Names(unittest.TestCase):
    def setUp(self):
        self.dns = Dnsmasq("127.0.0.10 web.beacond.test\n::1 web.beacond.test\n"
                           "127.0.0.20 v4only.beacond.test\n")
        self.addCleanup(self.dns.close)

    def test_both_families_then_address_change_then_server_gone(self):
        cfg = dns_config(self.dns.port, {
            "web": {"host": "web.beacond.test", "family": "both"},
            "v4": {"host": "v4only.beacond.test"},
        })
        with Daemon(cfg) as d:
            d.start()
            r4 = d.wait_event("resolved", target="web", family="4", timeout=10)
            r6 = d.wait_event("resolved", target="web", family="6", timeout=10)
            self.assertEqual(r4["addr"], "127.0.0.10")
            self.assertEqual(r6["addr"], "::1")
            self.assertEqual(d.wait_event("resolved", target="v4", timeout=10)["addr"], "127.0.0.20")
            # Two probes for one name, each answered, each with its own state.
            d.wait_event("state", target="web", family="4", to="up", timeout=10)
            d.wait_event("state", target="web", family="6", to="up", timeout=10)

            # Move the name; dnsmasq rereads its hosts file on SIGHUP.
            since = len(d.lines)
            self.dns.write("127.0.0.11 web.beacond.test\n::1 web.beacond.test\n"
                           "127.0.0.20 v4only.beacond.test\n")
            self.dns.reload()
            t0 = time.monotonic()
            ev = d.wait_event("address", since=since, target="web", family="4", timeout=10)
            took = time.monotonic() - t0
            self.assertEqual(ev["from"], "127.0.0.10")
            self.assertEqual(ev["to"], "127.0.0.11")
            self.assertLess(took, 2 + 1.5, "moved within resolve_interval (+ slack)")
            # History kept: the probe's counters continue, state stays up.
            time.sleep(0.5)
            start = len(d.lines)
            d.signal(signal.SIGUSR1)
            s = d.wait_event("summary", since=start, target="web", family="4")
            self.assertEqual(s["addr"], "127.0.0.11")
            self.assertGreater(int(s["total_sent"]), 5)
            self.assertEqual(s["state"], "up")

            # The server goes away: resolution fails, probing continues on
            # the last good address, nothing exits.
            self.dns.stop()
            d.wait_event("resolve_failed", since=start, target="web", timeout=15)
            before = len(d.lines)
            time.sleep(1.0)
            start = len(d.lines)
            d.signal(signal.SIGUSR1)
            s2 = d.wait_event("summary", since=start, target="web", family="4")
            self.assertEqual(s2["addr"], "127.0.0.11")
            self.assertGreater(int(s2["total_received"]), int(s["total_received"]))
            self.assertEqual(s2["state"], "up")
            self.assertTrue(d.alive())
            self.assertFalse(d.events("state", since=before, to="down"))
            self.assertEqual(d.stop(), 0)

    def test_first_lookups_are_paced(self):
        # 400 names at once: their first queries go out one per millisecond
        # (not as one burst), so the first and the last answer are at least
        # ~0.4 s apart -- a machine that is slow only widens the gap.
        n = 400
        # Its own server, with every name from the start (a SIGHUP'd one
        # may answer NXDOMAIN until it has reread its hosts file).
        dns = Dnsmasq("".join(f"127.2.{i // 250}.{i % 250 + 1} n{i}.beacond.test\n"
                              for i in range(n)))
        self.addCleanup(dns.close)
        targets = {f"n{i}": {"host": f"n{i}.beacond.test"} for i in range(n)}
        with Daemon(dns_config(dns.port, targets, interval="1s", timeout="1s",
                               resolve_interval="1h")) as d:
            d.start()
            d.wait_event("resolved", count=n, timeout=30)
            self.assertEqual(d.events("resolve_failed"), [], "first answers only")
            ts = sorted(harness.log_time(e) for e in d.events("resolved"))
            addrs = {e["target"]: e["addr"] for e in d.events("resolved")}
            self.assertEqual(len(addrs), n, "every name resolved once")
            self.assertEqual(addrs["n399"], "127.2.1.150")
            spread = ts[-1] - ts[0]
            sys.stderr.write(f"  {n} first lookups answered over {spread:.3f} s\n")
            # (A daemon many times slower -- valgrind -- reports answers
            # late and bunched: the spread then says nothing about pacing.)
            if harness.SLOW == 1:
                self.assertGreaterEqual(spread, 0.35)
            # ... and none needed a retransmission (c-ares waits 2 s): a
            # burst of 400 queries made dnsmasq drop some.
            self.assertLess(spread, harness.scaled(1.9))
            self.assertEqual(d.stop(), 0)

    def test_unresolvable_name_is_unresolved_and_retried(self):
        cfg = dns_config(self.dns.port, {"ghost": {"host": "ghost.beacond.test"},
                                         "v4": {"host": "v4only.beacond.test"}})
        with Daemon(cfg) as d:
            d.start()
            d.wait_event("resolve_failed", target="ghost", timeout=10)
            d.wait_event("state", target="v4", to="up", timeout=10)
            start = len(d.lines)
            d.signal(signal.SIGUSR1)
            s = d.wait_event("summary", since=start, target="ghost")
            self.assertEqual(s["state"], "unresolved")
            # It appears later: picked up by the retry with backoff.
            self.dns.write("127.0.0.30 ghost.beacond.test\n127.0.0.20 v4only.beacond.test\n")
            self.dns.reload()
            ev = d.wait_event("resolved", target="ghost", timeout=15)
            self.assertEqual(ev["addr"], "127.0.0.30")
            d.wait_event("state", target="ghost", to="up", timeout=10)
            self.assertEqual(d.stop(), 0)


@unittest.skipUnless(os.path.exists(DNSMASQ), "dnsmasq not installed")
class Reload(unittest.TestCase):
    """Reloads while lookups are pending: kept names keep their address and
    history, removed ones are cancelled, a new server list takes over."""

    def setUp(self):
        self.dns = Dnsmasq("127.0.0.10 web.beacond.test\n127.0.0.20 v4only.beacond.test\n")
        self.addCleanup(self.dns.close)
        self.silent = SilentServer()
        self.addCleanup(self.silent.close)

    def summary(self, d, target):
        start = len(d.lines)
        d.signal(signal.SIGUSR1)
        return d.wait_event("summary", since=start, target=target)

    def test_reload_keeps_names_cancels_removed_and_swaps_servers(self):
        web = {"host": "web.beacond.test"}
        with Daemon(dns_config(self.dns.port, {"web": web,
                                               "v4": {"host": "v4only.beacond.test"}})) as d:
            d.start()
            self.assertEqual(d.wait_event("resolved", target="web")["addr"], "127.0.0.10")
            d.wait_event("state", target="web", to="up")
            s0 = self.summary(d, "web")

            # To a server that never answers; "stall" is left pending.
            mark = len(d.lines)
            d.write_config(dns_config(self.silent.port, {"web": web,
                                                         "stall": {"host": "stall.beacond.test"}}))
            t0 = time.monotonic()
            self.assertEqual(d.reload()["event"], "reloaded")
            self.assertLess(time.monotonic() - t0, 2.0, "reload did not wait for DNS")
            d.wait_event("summary", since=mark, target="v4", why="removed")
            time.sleep(1.0)
            self.assertGreater(self.silent.queries(), 0)
            s1 = self.summary(d, "web")
            self.assertEqual(s1["addr"], "127.0.0.10")
            self.assertEqual(s1["state"], "up")
            self.assertGreater(int(s1["total_received"]), int(s0["total_received"]))
            self.assertEqual(self.summary(d, "stall")["state"], "unresolved")

            # Back to dnsmasq while those lookups are still pending, and
            # "stall" removed mid-lookup: nothing of the old resolver may
            # reach a target again.
            mark = len(d.lines)
            d.write_config(dns_config(self.dns.port, {"web": web}))
            self.assertEqual(d.reload()["event"], "reloaded")
            d.wait_event("summary", since=mark, target="stall", why="removed")
            self.assertEqual(d.events("summary", since=mark, target="web", why="removed"), [])
            # The new server list is used: a move is seen.
            self.dns.write("127.0.0.11 web.beacond.test\n")
            self.dns.reload()
            ev = d.wait_event("address", since=mark, target="web", timeout=10)
            self.assertEqual((ev["from"], ev["to"]), ("127.0.0.10", "127.0.0.11"))
            time.sleep(0.5)  # a few sends (200 ms interval) on the new address
            s2 = self.summary(d, "web")
            self.assertGreater(int(s2["total_sent"]), int(s1["total_sent"]))
            self.assertEqual(s2["state"], "up")
            self.assertEqual(d.events("resolved", since=mark, target="web"), [],
                             "a kept name keeps its address across reloads")
            self.assertTrue(d.alive())
            self.assertEqual(d.stop(), 0)


class Stall(unittest.TestCase):
    def test_silent_dns_server_blocks_nothing(self):
        silent = SilentServer()
        self.addCleanup(silent.close)
        cfg = dns_config(silent.port, {f"n{i}": {"host": f"stall{i}.beacond.test"}
                                       for i in range(20)})
        with Daemon(cfg) as d:
            t0 = time.monotonic()
            d.start(timeout=10)
            ready_after = time.monotonic() - t0
            self.assertLess(ready_after, 2.0, "READY not delayed by DNS")
            tcp = d.addr("tcp")
            udp = d.addr("udp")

            # Round trips while every lookup hangs on the silent server.
            def rtts(n=200):
                out = []
                with socket.create_connection(tcp, timeout=5) as c, \
                        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    u.settimeout(2)
                    for _ in range(n):
                        t = time.perf_counter()
                        c.sendall(b"x" * 64)
                        got = 0
                        while got < 64:
                            got += len(c.recv(64 - got))
                        u.sendto(b"y" * 64, udp)
                        u.recv(100)
                        out.append(time.perf_counter() - t)
                out.sort()
                return out

            during = rtts()
            self.assertGreater(silent.queries(), 0, "lookups were sent to the silent server")
            # No round trip waited for DNS: c-ares timeouts are seconds long,
            # a blocked loop would show them.
            # (Scaled for a slow daemon, but always well under c-ares'
            # 2 s timeout, so a loop waiting for DNS still fails.)
            self.assertLess(during[-1], min(harness.scaled(0.25), 1.0),
                            f"max RTT during stall {during[-1]:.4f}s")
            self.assertLess(during[len(during) // 2], harness.scaled(0.01))
            start = len(d.lines)
            d.signal(signal.SIGUSR1)
            s = d.wait_event("summary", since=start, target="n0")
            self.assertEqual(s["state"], "unresolved")
            self.assertEqual(d.stop(), 0)


class BadNames(unittest.TestCase):
    def test_bad_names_are_config_errors_with_line(self):
        bad = ["a..b", "-lead.example", "trail-.example", "x" * 64 + ".example",
               ".".join(["abcdefgh"] * 32), "under_score.example", "sp ace.example", "é.example"]
        with tempfile.TemporaryDirectory() as tmp:
            for name in bad:
                with self.subTest(name=name):
                    path = os.path.join(tmp, "b.ini")
                    with open(path, "w") as f:
                        f.write(f"[daemon]\nlog_level = info\n\n[target t]\nhost = {name}\n")
                    r = subprocess.run([BEACOND, "-t", "-c", path], capture_output=True,
                                       text=True, timeout=10)
                    self.assertEqual(r.returncode, EX_CONFIG, r.stdout)
                    self.assertIn(f"{path}:5: [target t] host:", r.stderr)


if __name__ == "__main__":
    harness.main()
