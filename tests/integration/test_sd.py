"""systemd protocols, driven without a service manager.

A unix datagram socket bound by the test stands in as NOTIFY_SOCKET and
records every notification with its arrival time; systemd-socket-activate
(two nested invocations: TCP, then UDP) hands beacond its listening sockets.
The real manager is exercised in test_nspawn.py.
"""
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
from harness import Daemon, base_config, have  # noqa: E402


SO_TIMESTAMPNS = 35   # also SCM_TIMESTAMPNS (asm-generic/socket.h)


class NotifyReceiver:
    """A NOTIFY_SOCKET: collects (monotonic time, {key: value}, raw text)."""

    def __init__(self, abstract=False):
        self.tmp = tempfile.TemporaryDirectory(prefix="beacond-notify-")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract:
            name = f"beacond-test-notify-{os.getpid()}-{id(self):x}"
            self.sock.bind("\0" + name)
            self.address = "@" + name
        else:
            self.address = os.path.join(self.tmp.name, "notify")
            self.sock.bind(self.address)
        self.sock.settimeout(0.2)
        # The kernel stamps each datagram as it is queued (SO_TIMESTAMPNS),
        # so intervals are the daemon's, not this test's: a test thread
        # scheduled late must not make two notifications look close.
        self.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self.messages = []
        self._cv = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop:
            try:
                data, anc, _, _ = self.sock.recvmsg(65536, socket.CMSG_SPACE(16))
            except socket.timeout:
                continue
            except OSError:
                return
            now = time.time()
            for level, kind, raw in anc:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(raw) >= 16:
                    sec, nsec = struct.unpack("qq", raw[:16])
                    now = sec + nsec / 1e9
            text = data.decode("utf-8", "replace")
            fields = {}
            for line in text.split("\n"):
                if "=" in line:
                    k, v = line.split("=", 1)
                    fields[k] = v
            with self._cv:
                self.messages.append((now, fields, text))
                self._cv.notify_all()

    def wait(self, pred, since=0, timeout=10, what="notification"):
        """Wait for a message (index >= since) whose fields satisfy pred;
        return its index."""
        deadline = time.monotonic() + timeout
        with self._cv:
            while True:
                for i in range(since, len(self.messages)):
                    if pred(self.messages[i][1]):
                        return i
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"timed out waiting for {what}; got {[m[2] for m in self.messages[since:]]}")
                self._cv.wait(min(left, 0.2))

    def snapshot(self):
        with self._cv:
            return list(self.messages)

    def close(self):
        self._stop = True
        self._thread.join(timeout=2)
        self.sock.close()
        self.tmp.cleanup()


def lifecycle(fields):
    """The state-changing keys of one notification, in a fixed order."""
    return [k for k in ("READY", "RELOADING", "STOPPING") if fields.get(k) == "1"]


def tcp_echo(addr, payload=b"hello beacond\n", timeout=5):
    with socket.create_connection(addr, timeout=timeout) as s:
        s.sendall(payload)
        got = b""
        while len(got) < len(payload):
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
    return got


def udp_echo(addr, payload=b"ping beacond", timeout=3):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.connect(addr)     # only the daemon's answer, never a stray datagram
        s.send(payload)
        return s.recv(65536)


def free_port():
    """A port free for both TCP and UDP on 127.0.0.1 (re-checked by the
    caller's bind; a collision only makes the test retry)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
            t.bind(("127.0.0.1", 0))
            port = t.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                try:
                    u.bind(("127.0.0.1", port))
                except OSError:
                    continue
        return port
    raise AssertionError("no free port")


class NotifyLifecycle(unittest.TestCase):
    def setUp(self):
        self.rx = NotifyReceiver()
        self.addCleanup(self.rx.close)

    def test_lifecycle_watchdog_status_reload_stop(self):
        cfg = base_config(tcp={}, udp={"rate_limit": 0},
                          daemon={"log_level": "info"})
        env = {"NOTIFY_SOCKET": self.rx.address, "WATCHDOG_USEC": "1000000"}
        with Daemon(cfg, env=env) as d:
            d.start(wait_ready=False)
            first = self.rx.wait(lambda f: True, what="any notification")
            ready = self.rx.wait(lambda f: f.get("READY") == "1", what="READY=1")
            self.assertEqual(first, ready, "READY=1 must be the first notification")
            # At READY=1 every listener is bound: both services answer now.
            d.wait_event("ready", timeout=5)
            tcp_addr = d.addr("tcp")
            udp_addr = d.addr("udp")
            self.assertEqual(tcp_echo(tcp_addr), b"hello beacond\n")
            self.assertEqual(udp_echo(udp_addr), b"ping beacond")

            # STATUS= is a live one-line summary: hold three connections
            # open and wait for a status that counts them.
            conns = [socket.create_connection(tcp_addr, timeout=5) for _ in range(3)]
            try:
                self.rx.wait(lambda f: re.search(r"\b3 TCP connection", f.get("STATUS", "")),
                             since=ready + 1, timeout=5, what="STATUS with 3 TCP connections")
            finally:
                for c in conns:
                    c.close()
            self.rx.wait(lambda f: re.search(r"\b0 TCP connection", f.get("STATUS", "")),
                         since=ready + 1, timeout=5, what="STATUS back to 0 connections")

            # Let the watchdog run for a few periods (checked at the end).
            time.sleep(2.0)

            # Reload with a good config (a different log level).
            before = len(self.rx.snapshot())
            # (The same listen entries: an unchanged listener keeps its socket.)
            d.write_config(base_config(tcp={}, udp={"rate_limit": 0},
                                       daemon={"log_level": "debug"}))
            t_hup_us = time.monotonic_ns() // 1000
            ev = d.reload()
            self.assertEqual(ev["event"], "reloaded", ev)
            self.assertEqual(tcp_echo(tcp_addr, b"same port\n"), b"same port\n")
            i_rel = self.rx.wait(lambda f: f.get("RELOADING") == "1", since=before,
                                 what="RELOADING=1")
            rel = self.rx.snapshot()[i_rel][1]
            self.assertIn("MONOTONIC_USEC", rel)
            mono = int(rel["MONOTONIC_USEC"])
            # CLOCK_MONOTONIC, in microseconds, taken around our SIGHUP.
            self.assertLess(abs(mono - t_hup_us), 5_000_000, (mono, t_hup_us))
            self.rx.wait(lambda f: f.get("READY") == "1", since=i_rel + 1,
                         what="READY=1 after reload")

            # Reload with a broken config: still READY=1, old behaviour kept.
            before = len(self.rx.snapshot())
            d.write_config("[tcp]\nlisten = 127.0.0.1:0\nno_such_key = 1\n")
            ev = d.reload()
            self.assertEqual(ev["event"], "reload_failed", ev)
            i_rel = self.rx.wait(lambda f: f.get("RELOADING") == "1", since=before,
                                 what="RELOADING=1 (broken config)")
            self.rx.wait(lambda f: f.get("READY") == "1", since=i_rel + 1,
                         what="READY=1 after a failed reload")
            self.assertEqual(tcp_echo(tcp_addr, b"still here\n"), b"still here\n")
            self.assertEqual(udp_echo(udp_addr, b"udp still here"), b"udp still here")

            # Stop.
            before = len(self.rx.snapshot())
            rc = d.stop()
            self.assertEqual(rc, 0)
            self.rx.wait(lambda f: f.get("STOPPING") == "1", since=before, timeout=3,
                         what="STOPPING=1")

        msgs = self.rx.snapshot()
        states = [s for _, f, _ in msgs for s in lifecycle(f)]
        self.assertEqual(states, ["READY", "RELOADING", "READY", "RELOADING", "READY",
                                  "STOPPING"], [m[2] for m in msgs])

        # Pings come every half of WATCHDOG_USEC (the median gap), never in
        # a burst, and never so late that systemd would act: no gap reaches
        # WATCHDOG_USEC (1 s).  (A clean-clone CI run saw one 0.90 s gap in
        # the ASan build while the nspawn test booted systemd next to it.)
        wd = [t for t, f, _ in msgs if f.get("WATCHDOG") == "1"]
        self.assertGreaterEqual(len(wd), 4, "too few WATCHDOG=1")
        gaps = [b - a for a, b in zip(wd, wd[1:])]
        self.assertLess(abs(sorted(gaps)[len(gaps) // 2] - 0.5), 0.05, gaps)
        for g in gaps:
            self.assertGreater(g, 0.3, gaps)
            self.assertLess(g, 1.0, gaps)

        # STATUS refreshes are at most once a second (the ones that come with
        # READY=1 are part of the readiness message and do not count).
        st = [t for t, f, _ in msgs if "STATUS" in f and not lifecycle(f)]
        self.assertGreaterEqual(len(st), 2, "STATUS never refreshed")
        for a, b in zip(st, st[1:]):
            self.assertGreater(b - a, 0.8, "STATUS sent more than once a second")
        for _, f, _ in msgs:
            if "STATUS" in f:
                self.assertNotIn("\n", f["STATUS"])
                self.assertTrue(f["STATUS"].strip())

    def test_abstract_socket_and_foreign_watchdog_pid(self):
        rx = NotifyReceiver(abstract=True)
        self.addCleanup(rx.close)
        # WATCHDOG_PID names another process (pid 1): no pings from us.
        env = {"NOTIFY_SOCKET": rx.address, "WATCHDOG_USEC": "400000",
               "WATCHDOG_PID": "1"}
        with Daemon(base_config(tcp={}, udp=None), env=env) as d:
            d.start()
            rx.wait(lambda f: f.get("READY") == "1", what="READY=1 on an abstract socket")
            time.sleep(1.2)
            self.assertEqual(d.stop(), 0)
            rx.wait(lambda f: f.get("STOPPING") == "1", what="STOPPING=1")
        wd = [m for m in rx.snapshot() if m[1].get("WATCHDOG") == "1"]
        self.assertEqual(wd, [], "WATCHDOG=1 sent for a watchdog meant for another pid")

    def test_unreachable_notify_socket_is_harmless(self):
        # A NOTIFY_SOCKET nobody listens on: beacond runs and serves anyway.
        env = {"NOTIFY_SOCKET": "/nonexistent-beacond/notify", "WATCHDOG_USEC": "200000"}
        with Daemon(base_config(tcp={}, udp=None), env=env) as d:
            d.start()
            self.assertEqual(tcp_echo(d.addr("tcp")), b"hello beacond\n")
            time.sleep(0.5)
            self.assertTrue(d.alive())
            self.assertEqual(d.stop(), 0)


def listen_config(tcp, udp):
    """A config whose [tcp] and [udp] listen on the given lists."""
    return base_config(tcp={"listen": tcp}, udp={"listen": udp, "rate_limit": 0}, web=None)


@unittest.skipUnless(have("systemd-socket-activate"), "systemd-socket-activate not installed")
class SocketActivation(unittest.TestCase):
    def activated(self, cfg_for_port, notify=None):
        """beacond under two nested systemd-socket-activate: TCP on fd 3,
        UDP on fd 4, both 127.0.0.1:port.  socket-activate execs the child
        only on the first activity, so a TCP connection made before beacond
        runs is what starts it; that connection must then be served."""
        port = free_port()
        env_args = ["-E", f"NOTIFY_SOCKET={notify}"] if notify else []
        prefix = ["systemd-socket-activate", "-l", f"127.0.0.1:{port}", "--",
                  "systemd-socket-activate", "--datagram", "-l", f"127.0.0.1:{port}",
                  *env_args, "--"]
        d = Daemon(cfg_for_port(port), prefix=prefix)
        return d, port

    def start_by_connecting(self, d, port):
        d.start(wait_ready=False)
        deadline = time.monotonic() + 10
        while True:
            try:
                first = socket.create_connection(("127.0.0.1", port), timeout=5)
                break
            except ConnectionRefusedError:
                if time.monotonic() > deadline or not d.alive():
                    raise
                time.sleep(0.05)
        d.wait_event("ready", timeout=15)
        return first

    def check_inherited_port_serves(self, d, port, first):
        first.sendall(b"first client\n")
        got = b""
        while len(got) < len(b"first client\n"):
            chunk = first.recv(100)
            if not chunk:
                break
            got += chunk
        first.close()
        self.assertEqual(got, b"first client\n", "the connection that started beacond")
        self.assertEqual(tcp_echo(("127.0.0.1", port)), b"hello beacond\n")
        self.assertEqual(udp_echo(("127.0.0.1", port)), b"ping beacond")
        for svc in ("tcp", "udp"):
            evs = d.events("listen", service=svc, addr=f"127.0.0.1:{port}")
            self.assertEqual(len(evs), 1, f"{svc}: {d.events('listen')}")
            self.assertEqual(evs[0].get("inherited"), "yes", evs[0])

    def test_same_addresses_as_config(self):
        rx = NotifyReceiver()
        self.addCleanup(rx.close)
        d, port = self.activated(lambda p: listen_config(f"127.0.0.1:{p}", f"127.0.0.1:{p}"),
                                 notify=rx.address)
        with d:
            first = self.start_by_connecting(d, port)
            rx.wait(lambda f: f.get("READY") == "1", what="READY=1 under socket activation")
            self.check_inherited_port_serves(d, port, first)
            # Only the passed sockets, nothing bound by beacond itself.
            self.assertEqual(len(d.events("listen")), 2, d.events("listen"))
            self.assertEqual(d.events("inherited_unused"), [])
            # A reload keeps the inherited sockets (they cannot be re-created).
            ev = d.reload()
            self.assertEqual(ev["event"], "reloaded", ev)
            self.assertEqual(tcp_echo(("127.0.0.1", port)), b"hello beacond\n")
            self.assertEqual(udp_echo(("127.0.0.1", port)), b"ping beacond")
            self.assertEqual(d.stop(), 0)

    def test_config_listens_elsewhere(self):
        # The config names other (ephemeral) addresses: beacond binds those
        # itself and still serves the sockets systemd passed.
        d, port = self.activated(lambda p: listen_config("127.0.0.1:0", "127.0.0.1:0"))
        with d:
            first = self.start_by_connecting(d, port)
            self.check_inherited_port_serves(d, port, first)
            own = [e for e in d.events("listen") if e.get("inherited") == "no"]
            self.assertEqual(sorted(e["service"] for e in own), ["tcp", "udp"], own)
            for e in own:
                self.assertNotEqual(e["addr"], f"127.0.0.1:{port}")
            for e in own:
                host, p = harness.split_addr(e["addr"])
                if e["service"] == "tcp":
                    self.assertEqual(tcp_echo((host, p)), b"hello beacond\n")
                else:
                    self.assertEqual(udp_echo((host, p)), b"ping beacond")
            self.assertEqual(d.stop(), 0)

    def test_reload_names_a_passed_address(self):
        # The passed sockets first serve outside the config; a reload whose
        # config names their address takes them over, in both services --
        # no second socket on the port (for UDP that would split the port's
        # traffic between two sockets), and none closed.  A further reload
        # that drops the entry again keeps them: systemd still owns them.
        d, port = self.activated(lambda p: listen_config("127.0.0.1:0", "127.0.0.1:0"))
        with d:
            first = self.start_by_connecting(d, port)
            self.check_inherited_port_serves(d, port, first)
            named = f"127.0.0.1:{port}"
            both = f"127.0.0.1:0, {named}"
            d.write_config(listen_config(both, both))
            self.assertEqual(d.reload()["event"], "reloaded")
            d.write_config(listen_config("127.0.0.1:0", "127.0.0.1:0"))
            self.assertEqual(d.reload()["event"], "reloaded")
            for svc in ("tcp", "udp"):
                evs = d.events("listen", service=svc, addr=named)
                self.assertEqual(len(evs), 1, f"{svc}: {d.events('listen')}")
            self.assertEqual(d.events("listen_close"), [])
            self.assertEqual(tcp_echo(("127.0.0.1", port)), b"hello beacond\n")
            for _ in range(20):
                self.assertEqual(udp_echo(("127.0.0.1", port)), b"ping beacond")
            self.assertEqual(d.stop(), 0)


if __name__ == "__main__":
    harness.main()
