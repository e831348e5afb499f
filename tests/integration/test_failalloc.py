"""A reload applies whole or not at all, even when memory runs out.

The LD_PRELOAD shim tests/tools/failalloc.c (meson passes it in $FAILALLOC)
fails the Nth allocation made between the daemon reading SIGHUP and logging
the reload's outcome.  A first reload with nothing failed counts the
reload's allocations; then, for every N from 1 to that count, the test
reloads from configuration A to configuration B with allocation N failing,
and checks that the daemon is alive and that exactly one of A and B is in
force, entirely:

  * listeners: every TCP port of the configuration in force echoes, every
    port of the other one refuses; the same for UDP and for the STAMP
    reflector (enabled in B only, stateful, so a reload also builds its
    session table);
  * targets: the SIGUSR1 summaries name exactly its targets;
  * log settings: A logs logfmt, B logs JSON; the outcome line and the
    summaries are in the format of the configuration in force.

After a reload that went through, the test reloads back to A with nothing
failing.  Both directions are exercised (A -> B adds listeners and targets,
B -> A removes them).  Finally SIGTERM: the exit status must be 0, which
under AddressSanitizer also means LeakSanitizer found no leak.

Needs root (ICMP sockets for the targets, whatever ping_group_range says).
"""
import json
import os
import re
import signal
import socket
import struct
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402

FAILALLOC = os.environ.get("FAILALLOC") or os.path.join(
    os.environ.get("BEACOND_BUILD_ROOT", os.path.join(harness.SOURCE_ROOT, "build")),
    "tests", "libfailalloc.so")
# Each direction is tried for every N up to its count; a bound so a
# reload that suddenly allocates far more cannot make the test run for
# hours (it then fails, asking for a look).
MAX_ALLOCS = 5000


def free_port(kind):
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def parse_line(line):
    if line.startswith("{"):
        try:
            return {k: str(v) for k, v in json.loads(line).items()}, "json"
        except ValueError:
            return {}, "json"
    return harness.parse_logfmt(line), "logfmt"


class Config:
    def __init__(self, name, tcp, udp, stamp, targets, fmt):
        self.name, self.tcp, self.udp, self.stamp = name, tcp, udp, stamp
        self.targets, self.fmt = targets, fmt

    def text(self):
        stamp = "\n[stamp]\nenabled = no\n"
        if self.stamp:
            stamp = ("\n[stamp]\nenabled = yes\nmode = stateful\nrate_limit = 0\n"
                     "listen = " + ", ".join(f"127.0.0.1:{p}" for p in self.stamp) + "\n")
        return harness.base_config(
            tcp={"listen": ", ".join(f"127.0.0.1:{p}" for p in self.tcp)},
            udp={"listen": ", ".join(f"127.0.0.1:{p}" for p in self.udp), "rate_limit": 0},
            # History in memory only: loading and saving files would make
            # the reload's allocations depend on what an earlier one saved.
            daemon={"log_format": self.fmt, "stats_interval": "0", "state_directory": ""},
            targets={t: {"host": h, "interval": "1s"} for t, h in self.targets.items()},
            extra=stamp)


@unittest.skipUnless(harness.is_root(), "needs root (ICMP sockets for the targets)")
@unittest.skipUnless(os.path.exists(FAILALLOC), "tests/tools/failalloc not built")
class FailAlloc(unittest.TestCase):
    def setUp(self):
        tcp = [free_port(socket.SOCK_STREAM) for _ in range(3)]
        udp = [free_port(socket.SOCK_DGRAM) for _ in range(3)]
        self.a = Config("A", tcp[:1], udp[:1], [], {"a1": "127.0.0.1"}, "logfmt")
        self.b = Config("B", tcp[1:], udp[1:2], udp[2:], {"b1": "127.0.0.1", "b2": "::1"},
                        "json")

    # -- the daemon's log, in either format --------------------------------
    def wait_line(self, d, pred, since, timeout=20):
        deadline = time.monotonic() + harness.scaled(timeout)
        pos = since
        with d._cv:
            while True:
                while pos < len(d.lines):
                    ev, fmt = parse_line(d.lines[pos])
                    pos += 1
                    if pred(ev):
                        return ev, fmt, pos
                if not d.alive():
                    raise AssertionError(f"beacond exited ({d.proc.returncode})")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("timed out waiting for a log line")
                d._cv.wait(min(left, 0.2))

    def reload(self, d, cfg, fail_at):
        with open(self.control, "w") as f:
            f.write(f"{fail_at}\n")
        if os.path.exists(self.report):
            os.unlink(self.report)
        d.write_config(cfg.text())
        since = len(d.lines)
        d.signal(signal.SIGHUP)
        ev, fmt, _ = self.wait_line(
            d, lambda e: e.get("event") in ("reloaded", "reload_failed"), since)
        # The shim writes its report just before the outcome line.
        with open(self.report) as f:
            count, injected = f.read().split()
        return ev, fmt, int(count), injected == "1"

    # -- what is in force ---------------------------------------------------
    def tcp_echoes(self, port):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
                c.sendall(b"ping\n")
                return c.recv(16) == b"ping\n"
        except ConnectionRefusedError:
            return False

    def udp_answers(self, port, msg, check):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.settimeout(5)
            u.connect(("127.0.0.1", port))
            u.send(msg)
            try:
                return check(u.recv(2048))
            except ConnectionRefusedError:   # ICMP port unreachable
                return False

    def udp_echoes(self, port):
        return self.udp_answers(port, b"ping", lambda r: r == b"ping")

    def stamp_reflects(self, port):
        """A 44-byte unauthenticated STAMP test packet (sequence 7) comes
        back as a 44-byte reflector packet carrying it as the sender's
        sequence number (bytes 24..27, RFC 8762 4.3)."""
        req = struct.pack("!IQHH28x", 7, 0, 0, 0)
        return self.udp_answers(port, req, lambda r: len(r) == 44 and r[24:28] == req[:4])

    def targets(self, d):
        since = len(d.lines)
        d.signal(signal.SIGUSR1)
        _, _, end = self.wait_line(
            d, lambda e: e.get("event") == "icmp_stats" and e.get("why") == "signal", since)
        names, fmts = set(), set()
        for line in d.lines[since:end]:
            ev, fmt = parse_line(line)
            if ev.get("event") == "summary" and ev.get("why") == "signal":
                names.add(ev.get("target"))
                fmts.add(fmt)
        return names, fmts

    def assert_in_force(self, d, cfg, other, fmt, what):
        self.assertTrue(d.alive(), what)
        self.assertEqual(fmt, cfg.fmt, f"{what}: outcome line not in {cfg.name}'s log format")
        for p in cfg.tcp:
            self.assertTrue(self.tcp_echoes(p), f"{what}: tcp {p} of {cfg.name} not serving")
        for p in other.tcp:
            self.assertFalse(self.tcp_echoes(p), f"{what}: tcp {p} of {other.name} open")
        for p in cfg.udp:
            self.assertTrue(self.udp_echoes(p), f"{what}: udp {p} of {cfg.name} not serving")
        for p in other.udp:
            self.assertFalse(self.udp_echoes(p), f"{what}: udp {p} of {other.name} open")
        for p in cfg.stamp:
            self.assertTrue(self.stamp_reflects(p), f"{what}: stamp {p} of {cfg.name} silent")
        for p in other.stamp:
            self.assertFalse(self.stamp_reflects(p), f"{what}: stamp {p} of {other.name} open")
        names, fmts = self.targets(d)
        self.assertEqual(names, set(cfg.targets), f"{what}: targets are not {cfg.name}'s")
        self.assertEqual(fmts, {cfg.fmt}, f"{what}: summaries not in {cfg.name}'s format")

    def sweep(self, d, src, dst):
        """Reload src -> dst failing allocation N for every N; returns the
        count and the numbers of rejected and applied reloads."""
        ev, fmt, total, injected = self.reload(d, dst, 0)
        self.assertEqual(ev["event"], "reloaded", ev)
        self.assertFalse(injected)
        self.assertGreater(total, 0, "the shim saw no allocation: is it loaded?")
        self.assertLess(total, MAX_ALLOCS)
        self.assert_in_force(d, dst, src, fmt, f"{src.name}->{dst.name} unharmed")
        ev, fmt, _, _ = self.reload(d, src, 0)
        self.assertEqual(ev["event"], "reloaded", ev)
        rejected = applied = 0
        for n in range(1, total + 1):
            what = f"{src.name}->{dst.name} with allocation {n}/{total} failing"
            ev, fmt, count, injected = self.reload(d, dst, n)
            self.assertTrue(injected, f"{what}: the shim injected nothing ({count} allocations)")
            if ev["event"] == "reload_failed":
                rejected += 1
                self.assert_in_force(d, src, dst, fmt, what)
            else:
                applied += 1
                self.assert_in_force(d, dst, src, fmt, what)
                ev, fmt, _, _ = self.reload(d, src, 0)
                self.assertEqual(ev["event"], "reloaded", f"{what}: going back: {ev}")
        sys.stderr.write(f"{src.name}->{dst.name}: {total} allocations; "
                         f"{rejected} failures rejected the reload, {applied} were absorbed\n")
        return total, rejected, applied

    def test_every_allocation_of_a_reload(self):
        asan = os.environ.get("ASAN_OPTIONS", "")
        with harness.Daemon(self.a.text(), env={
                "LD_PRELOAD": FAILALLOC,
                "ASAN_OPTIONS": (asan + ":" if asan else "") + "verify_asan_link_order=0",
        }) as d:
            self.control = os.path.join(d.dir, "failalloc.control")
            self.report = os.path.join(d.dir, "failalloc.report")
            d.env["FAILALLOC_CONTROL"] = self.control
            d.env["FAILALLOC_REPORT"] = self.report
            d.start()
            self.assert_in_force(d, self.a, self.b, "logfmt", "start")
            total_ab, rejected, _ = self.sweep(d, self.a, self.b)
            self.assertGreater(rejected, 0, "no failed allocation ever rejected a reload")
            ev, _, _, _ = self.reload(d, self.b, 0)   # each sweep ends on its source
            self.assertEqual(ev["event"], "reloaded", ev)
            self.sweep(d, self.b, self.a)
            rc = d.stop()
            self.assertEqual(rc, 0, "exit status (LeakSanitizer under ASan)")


if __name__ == "__main__":
    harness.main()
