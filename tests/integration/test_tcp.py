"""The TCP echo/discard service, driven through the real daemon on ephemeral
loopback ports: many concurrent clients, half-close, discard, IPv6, a real
client (socat/nc), backpressure and memory, idle timeout, connection limit,
allow-list, descriptor exhaustion, resets, counters and reload."""
import os
import random
import selectors
import signal
import socket
import struct
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
from harness import Daemon, base_config  # noqa: E402

KIB = 1024
MIB = 1024 * 1024


def tcp_config(**keys):
    keys.setdefault("listen", "127.0.0.1:0")
    return base_config(tcp=keys)


def have_ipv6_loopback():
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def connect(addr, timeout=5.0):
    family = socket.AF_INET6 if ":" in addr[0] else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    try:
        s.settimeout(timeout)
        s.connect(addr)
    except BaseException:
        s.close()
        raise
    return s


def recv_exactly(sock, n):
    out = bytearray()
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            raise AssertionError(f"EOF after {len(out)} of {n} bytes")
        out += chunk
    return bytes(out)


def round_trip(sock, size=1000):
    msg = os.urandom(size)
    sock.sendall(msg)
    got = recv_exactly(sock, size)
    if got != msg:
        raise AssertionError("echo differs from what was sent")


def closed_by_peer(sock, timeout=3.0):
    """True when the peer closed (EOF or reset) within timeout without sending
    anything; data arriving is a failure."""
    sock.settimeout(timeout)
    try:
        data = sock.recv(4096)
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False
    if data:
        raise AssertionError(f"expected a close, got {len(data)} bytes")
    return True


def stats(d, timeout=10):
    """Ask for a counters dump (SIGUSR1) and return the tcp stats line."""
    since = len(d.lines)
    d.signal(signal.SIGUSR1)
    ev = d.wait_event("stats", since=since, timeout=timeout, service="tcp")
    return {k: int(v) for k, v in ev.items() if v.isdigit()}


def stats_when(d, cond, timeout=10):
    """Poll the counters until cond(counters) holds; return them."""
    deadline = time.monotonic() + timeout
    while True:
        c = stats(d)
        if cond(c):
            return c
        if time.monotonic() > deadline:
            raise AssertionError(f"counters never satisfied the condition: {c}")
        time.sleep(0.1)


class EchoClient:
    """One nonblocking client: sends `total` random bytes in random chunk
    sizes, checks every byte echoed against what it sent, in order."""

    def __init__(self, sock, seed, total, half_close=False, max_chunk=64 * KIB):
        self.sock = sock
        self.rng = random.Random(seed)
        self.left = total
        self.total = total
        self.half_close = half_close
        self.max_chunk = max_chunk
        self.chunk = memoryview(b"")
        self.unechoed = bytearray()
        self.received = 0
        self.connected = False
        self.shut = False
        self.eof = False

    def wants_write(self):
        return bool(self.chunk) or self.left > 0 or (self.half_close and not self.shut)

    def done(self):
        if self.received != self.total:
            return False
        return self.eof if self.half_close else True

    def on_writable(self):
        if not self.connected:
            err = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                raise AssertionError(f"connect failed: {os.strerror(err)}")
            self.connected = True
        if not self.chunk and self.left > 0:
            n = min(self.left, self.rng.randint(1, self.max_chunk))
            self.chunk = memoryview(self.rng.randbytes(n))
            self.left -= n
        if self.chunk:
            try:
                n = self.sock.send(self.chunk)
            except BlockingIOError:
                return
            self.unechoed += self.chunk[:n]
            self.chunk = self.chunk[n:]
        if self.half_close and not self.chunk and self.left == 0 and not self.shut:
            self.sock.shutdown(socket.SHUT_WR)
            self.shut = True

    def on_readable(self):
        try:
            data = self.sock.recv(256 * KIB)
        except BlockingIOError:
            return
        if not data:
            if self.received != self.total:
                raise AssertionError(
                    f"EOF after {self.received} of {self.total} bytes echoed")
            self.eof = True
            return
        if self.unechoed[:len(data)] != data:
            raise AssertionError(
                f"echo differs from what was sent at offset {self.received}")
        del self.unechoed[:len(data)]
        self.received += len(data)


def run_echo_clients(addr, n, size, timeout, seed=1, half_close=False):
    """Run n EchoClients concurrently in one thread; return elapsed seconds."""
    family = socket.AF_INET6 if ":" in addr[0] else socket.AF_INET
    sel = selectors.DefaultSelector()
    rng = random.Random(seed)
    clients = []
    start = time.monotonic()
    try:
        for _ in range(n):
            s = socket.socket(family, socket.SOCK_STREAM)
            s.setblocking(False)
            s.connect_ex(addr)
            c = EchoClient(s, rng.getrandbits(64), size, half_close=half_close)
            clients.append(c)
            sel.register(s, selectors.EVENT_READ | selectors.EVENT_WRITE, c)
        running = n
        deadline = start + timeout
        while running:
            if time.monotonic() > deadline:
                stuck = [c for c in clients if not c.done()]
                raise AssertionError(
                    f"{len(stuck)} of {n} clients unfinished after {timeout}s; "
                    f"e.g. {stuck[0].received} of {size} bytes echoed")
            for key, mask in sel.select(timeout=1.0):
                c = key.data
                if mask & selectors.EVENT_WRITE:
                    c.on_writable()
                if mask & selectors.EVENT_READ:
                    c.on_readable()
                if c.done():
                    sel.unregister(c.sock)
                    c.sock.close()
                    running -= 1
                elif not c.wants_write() and key.events & selectors.EVENT_WRITE:
                    sel.modify(c.sock, selectors.EVENT_READ, c)
        return time.monotonic() - start
    finally:
        for c in clients:
            c.sock.close()
        sel.close()


class Echo(unittest.TestCase):
    def test_500_clients_1mib_each(self):
        with Daemon(tcp_config(max_pending="64KiB")) as d:
            d.start()
            addr = d.addr("tcp")
            n, size = 500, MIB
            elapsed = run_echo_clients(addr, n, size, timeout=240, seed=500)
            c = stats_when(d, lambda c: c["active"] == 0)
            self.assertEqual(c["accepted"], n)
            self.assertEqual(c["bytes_in"], n * size)
            self.assertEqual(c["bytes_out"], n * size)
            self.assertEqual(c["errors"], 0)
            sys.stderr.write(f"  500 x 1 MiB echoed in {elapsed:.1f}s\n")

    def test_half_close_gets_everything_then_eof(self):
        with Daemon(tcp_config(max_pending="64KiB")) as d:
            d.start()
            # Several MiB each, more than the socket buffers plus
            # max_pending, so the tail is still queued in the daemon when
            # the FIN arrives.
            run_echo_clients(d.addr("tcp"), 4, 8 * MIB, timeout=120, seed=2,
                             half_close=True)
            with connect(d.addr("tcp")) as s:
                s.sendall(b"last words")
                s.shutdown(socket.SHUT_WR)
                self.assertEqual(recv_exactly(s, 10), b"last words")
                self.assertEqual(s.recv(10), b"")
            stats_when(d, lambda c: c["active"] == 0 and c["errors"] == 0)

    def test_half_close_while_daemon_holds_pending(self):
        # A tiny receive window on our side keeps the daemon's sends short,
        # and max_pending is large enough to take everything we send, so
        # when the FIN arrives most of the stream is still in the daemon's
        # pending buffer: it must all come back before the daemon closes.
        with Daemon(tcp_config(max_pending="16MiB")) as d:
            d.start()
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * KIB)
                s.connect(d.addr("tcp"))
                s.settimeout(20)
                data = os.urandom(16 * MIB)
                s.sendall(data)
                s.shutdown(socket.SHUT_WR)
                got = bytearray()
                while True:
                    chunk = s.recv(MIB)
                    if not chunk:
                        break
                    got += chunk
                self.assertEqual(len(got), len(data))
                self.assertTrue(got == data, "echo differs from what was sent")
            c = stats_when(d, lambda c: c["active"] == 0)
            self.assertEqual(c["errors"], 0)
            self.assertEqual(c["bytes_out"], len(data))
            ev = d.wait_event("conn_close", service="tcp")
            self.assertEqual(ev["reason"], "eof")

    def test_ipv6_listener(self):
        if not have_ipv6_loopback():
            self.skipTest("no IPv6 on loopback")
        with Daemon(tcp_config(listen="[::1]:0")) as d:
            d.start()
            addr = d.addr("tcp", socket.AF_INET6)
            self.assertEqual(addr[0], "::1")
            with connect(addr) as s:
                round_trip(s, 64 * KIB)
            run_echo_clients(addr, 8, 256 * KIB, timeout=60, seed=6, half_close=True)

    def test_two_listeners_both_serve(self):
        if not have_ipv6_loopback():
            self.skipTest("no IPv6 on loopback")
        with Daemon(tcp_config(listen="127.0.0.1:0, [::1]:0")) as d:
            d.start()
            listeners = d.events("listen", service="tcp")
            self.assertEqual(len(listeners), 2)
            self.assertTrue(all(e["inherited"] == "no" for e in listeners))
            for family in (socket.AF_INET, socket.AF_INET6):
                with connect(d.addr("tcp", family)) as s:
                    round_trip(s)

    def test_real_client(self):
        payload = os.urandom(256 * KIB)
        with Daemon(tcp_config()) as d:
            d.start()
            host, port = d.addr("tcp")
            if harness.have("socat"):
                cmd = ["socat", "-t", "5", "-", f"TCP:{host}:{port}"]
            elif harness.have("nc"):
                cmd = ["nc", "-N", host, str(port)]
            else:
                self.skipTest("neither socat nor nc installed")
            r = subprocess.run(cmd, input=payload, capture_output=True, timeout=30)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(len(r.stdout), len(payload))
            self.assertTrue(r.stdout == payload, "socat got different bytes back")


class Discard(unittest.TestCase):
    def test_discard_mode(self):
        with Daemon(tcp_config(mode="discard")) as d:
            d.start()
            total = 0
            with connect(d.addr("tcp")) as s:
                for _ in range(4):
                    s.sendall(os.urandom(MIB))
                    total += MIB
                    s.settimeout(0.3)
                    with self.assertRaises(socket.timeout):
                        data = s.recv(1)
                        self.fail(f"discard sent back {data!r}")
                # Still usable after all that: the daemon kept reading.
                s.sendall(b"x" * 1000)
                total += 1000
                c = stats_when(d, lambda c: c["bytes_in"] == total)
                self.assertEqual(c["bytes_out"], 0)
                self.assertEqual(c["active"], 1)
                # A half-close ends the conversation: the daemon closes.
                s.shutdown(socket.SHUT_WR)
                s.settimeout(5)
                self.assertEqual(s.recv(1), b"")
            stats_when(d, lambda c: c["active"] == 0)


class Backpressure(unittest.TestCase):
    def test_client_that_never_reads(self):
        max_pending = 256 * KIB
        with Daemon(tcp_config(max_pending="256KiB")) as d:
            d.start()
            addr = d.addr("tcp")
            other = connect(addr)
            flood = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                for _ in range(5):
                    round_trip(other, 4 * KIB)
                time.sleep(0.3)
                base = d.rss_kib()

                flood.connect(addr)
                flood.setblocking(False)
                block = os.urandom(MIB)
                view = memoryview(block)
                goal = 200 * MIB
                sent = 0
                peak = base
                round_trips = 0
                start = last_progress = time.monotonic()
                # Push as hard as the daemon lets us, for at most 15 s, and
                # stop once nothing has moved for 3 s: backpressure holds.
                while sent < goal:
                    now = time.monotonic()
                    if now - start > 15 or now - last_progress > 3:
                        break
                    off = sent % len(block)
                    try:
                        n = flood.send(view[off:off + min(256 * KIB, goal - sent)])
                    except BlockingIOError:
                        n = 0
                    if n:
                        sent += n
                        last_progress = now
                    else:
                        round_trip(other, 1000)
                        round_trips += 1
                        time.sleep(0.01)
                    peak = max(peak, d.rss_kib())
                limit = base + max_pending // KIB + 1024
                sys.stderr.write(f"  flood: sent {sent / MIB:.1f} MiB, rss base {base} KiB, "
                                 f"peak {peak} KiB (limit {limit}), {round_trips} round trips\n")
                self.assertLess(sent, goal, "the daemon swallowed 200 MiB: no backpressure")
                self.assertLess(peak, limit)
                self.assertGreaterEqual(round_trips, 50)
                c = stats(d)
                self.assertGreaterEqual(c["backpressure"], 1)
                # The other client was never starved and the flood's bytes
                # all come back, in order, once it reads.
                round_trip(other, 64 * KIB)
                flood.setblocking(True)
                flood.settimeout(10)
                flood.shutdown(socket.SHUT_WR)
                got = 0
                while got < sent:
                    chunk = flood.recv(min(MIB, sent - got))
                    self.assertTrue(chunk, f"EOF after {got} of {sent} bytes")
                    off = got % len(block)
                    expect = (block[off:] + block)[:len(chunk)]
                    self.assertTrue(chunk == expect, f"flood echo differs at {got}")
                    got += len(chunk)
                self.assertEqual(flood.recv(1), b"")
            finally:
                flood.close()
                other.close()


class Limits(unittest.TestCase):
    def test_idle_timeout(self):
        with Daemon(tcp_config(idle_timeout="2s")) as d:
            d.start()
            addr = d.addr("tcp")
            idle, busy = connect(addr), connect(addr)
            try:
                round_trip(idle)
                round_trip(busy)
                start = last = time.monotonic()
                idle.setblocking(False)
                closed_after = None
                max_gap = 0.0
                while time.monotonic() - start < 5.0:
                    try:
                        round_trip(busy, 10)
                    except AssertionError as e:
                        # Only a stall of this test process longer than
                        # the timeout could excuse it; say how long.
                        raise AssertionError(f"active connection closed ({e}); longest "
                                             f"gap between its round trips {max_gap:.2f}s")
                    now = time.monotonic()
                    max_gap = max(max_gap, now - last)
                    last = now
                    if closed_after is None:
                        try:
                            if idle.recv(1) == b"":
                                closed_after = now - start
                        except BlockingIOError:
                            pass
                    time.sleep(0.1)
                self.assertIsNotNone(closed_after, "idle connection not closed")
                self.assertGreaterEqual(closed_after, 1.8)
                self.assertLessEqual(closed_after, 4.0)
                round_trip(busy)
                c = stats(d)
                self.assertEqual(c["timeouts"], 1)
                self.assertEqual(c["active"], 1)
                d.wait_event("conn_close", reason="timeout")
            finally:
                idle.close()
                busy.close()

    def test_max_connections(self):
        with Daemon(tcp_config(max_connections=5)) as d:
            d.start()
            addr = d.addr("tcp")
            conns = [connect(addr) for _ in range(5)]
            try:
                for s in conns:
                    round_trip(s)
                start = time.monotonic()
                with connect(addr) as sixth:
                    self.assertTrue(closed_by_peer(sixth, timeout=3))
                self.assertLess(time.monotonic() - start, 2.0)
                for s in conns:
                    round_trip(s)
                ev = d.wait_event("refused", service="tcp", reason="limit")
                self.assertTrue(ev["peer"].startswith("127.0.0.1:"))
                c = stats(d)
                self.assertEqual(c["refused_limit"], 1)
                self.assertEqual(c["active"], 5)
                # One leaves: there is room again.
                conns.pop().close()
                stats_when(d, lambda c: c["active"] == 4)
                with connect(addr) as s:
                    round_trip(s)
            finally:
                for s in conns:
                    s.close()

    def test_allow_list_refuses(self):
        with Daemon(tcp_config(allow="10.0.0.0/8")) as d:
            d.start()
            with connect(d.addr("tcp")) as s:
                try:
                    s.sendall(b"let me in")
                except (ConnectionResetError, BrokenPipeError):
                    pass
                self.assertTrue(closed_by_peer(s, timeout=3))
            d.wait_event("refused", service="tcp", reason="acl")
            c = stats(d)
            self.assertEqual(c["refused_acl"], 1)
            self.assertEqual(c["accepted"], 0)
            self.assertEqual(c["bytes_out"], 0)

    def test_allow_list_admits(self):
        with Daemon(tcp_config(allow="10.0.0.0/8, 127.0.0.0/8")) as d:
            d.start()
            with connect(d.addr("tcp")) as s:
                round_trip(s)
            self.assertEqual(stats(d)["refused_acl"], 0)

    def test_out_of_file_descriptors(self):
        if not harness.have("prlimit"):
            self.skipTest("prlimit not installed")
        with Daemon(tcp_config(), prefix=["prlimit", "--nofile=64:64"]) as d:
            d.start()
            addr = d.addr("tcp")
            flood = []
            try:
                for _ in range(200):
                    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                    s.setblocking(False)
                    s.connect_ex(addr)
                    flood.append(s)
                d.wait_event("accept_error", service="tcp", timeout=10)
                time.sleep(0.5)
                cpu0 = d.cpu_seconds()
                time.sleep(2.0)
                cpu = d.cpu_seconds() - cpu0
                sys.stderr.write(f"  EMFILE: {cpu:.2f}s CPU in 2s with 200 connections held\n")
                self.assertLess(cpu, 0.5, "the daemon spins when out of descriptors")
                self.assertTrue(d.alive())
            finally:
                for s in flood:
                    s.close()
            c = stats(d)
            self.assertGreater(c["refused_fd"], 0)
            # Once the flood is gone the daemon serves again.
            deadline = time.monotonic() + 10
            while True:
                try:
                    with connect(addr) as s:
                        round_trip(s)
                    break
                except (AssertionError, OSError):
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)


class Resets(unittest.TestCase):
    def test_resets_mid_transfer(self):
        with Daemon(tcp_config()) as d:
            d.start()
            addr = d.addr("tcp")
            n = 20
            with connect(addr) as keeper:
                for i in range(n):
                    r = connect(addr)
                    r.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    r.setblocking(False)
                    payload = os.urandom(MIB)
                    sent = 0
                    try:
                        while sent < len(payload):
                            sent += r.send(payload[sent:])
                    except BlockingIOError:
                        pass
                    r.close()  # SO_LINGER 0: RST, with data in flight
                    round_trip(keeper, 10 * KIB)
                c = stats_when(d, lambda c: c["active"] == 1)
                self.assertEqual(c["errors"], n)
                self.assertEqual(c["accepted"], n + 1)
                round_trip(keeper, 64 * KIB)
            self.assertTrue(d.alive())


class Counters(unittest.TestCase):
    def test_counters_after_traffic(self):
        with Daemon(tcp_config()) as d:
            d.start()
            addr = d.addr("tcp")
            sizes = [1, 1000, 300 * KIB]
            for size in sizes:
                with connect(addr) as s:
                    round_trip(s, size)
            c = stats_when(d, lambda c: c["active"] == 0)
            self.assertEqual(c["accepted"], len(sizes))
            self.assertEqual(c["bytes_in"], sum(sizes))
            self.assertEqual(c["bytes_out"], sum(sizes))
            self.assertEqual(c["refused_limit"] + c["refused_acl"] + c["refused_fd"], 0)
            self.assertEqual(c["errors"], 0)
            self.assertEqual(c["timeouts"], 0)


class Stop(unittest.TestCase):
    def test_stop_lets_connections_finish(self):
        cfg = base_config(tcp={"listen": "127.0.0.1:0"},
                          daemon={"shutdown_timeout": "20s"})
        with Daemon(cfg) as d:
            d.start()
            addr = d.addr("tcp")
            with connect(addr) as s:
                round_trip(s)
                d.signal(signal.SIGTERM)
                d.wait_event("stopping")
                # Listener gone, the open connection still served.
                with self.assertRaises(ConnectionRefusedError):
                    connect(addr).close()
                round_trip(s, 256 * KIB)
                start = time.monotonic()
            self.assertEqual(d.wait_exit(timeout=10), 0)
            self.assertLess(time.monotonic() - start, 5)
            self.assertEqual(d.events("drain_timeout"), [])

    def test_stop_deadline_closes_stuck_connections(self):
        cfg = base_config(tcp={"listen": "127.0.0.1:0", "max_pending": "64KiB"},
                          daemon={"shutdown_timeout": "1s"})
        with Daemon(cfg) as d:
            d.start()
            addr = d.addr("tcp")
            idle, stuck = connect(addr), connect(addr)
            try:
                round_trip(idle)
                # Fill the daemon's pending buffer: a client that never reads.
                stuck.setblocking(False)
                block = os.urandom(MIB)
                last = time.monotonic()
                while time.monotonic() - last < 1.0:
                    try:
                        stuck.send(block)
                        last = time.monotonic()
                    except BlockingIOError:
                        time.sleep(0.05)
                stats_when(d, lambda c: c["backpressure"] >= 1)
                d.signal(signal.SIGTERM)
                self.assertEqual(d.wait_exit(timeout=10), 0)
                self.assertEqual(d.wait_event("drain_timeout")["connections"], "2")
            finally:
                idle.close()
                stuck.close()


class Reload(unittest.TestCase):
    def test_reload_keeps_listener_and_connections(self):
        with Daemon(tcp_config(max_connections=10)) as d:
            d.start()
            addr = d.addr("tcp")
            with connect(addr) as old:
                round_trip(old)
                d.write_config(tcp_config(max_connections=1))
                self.assertEqual(d.reload()["event"], "reloaded")
                # Same configured address: the same socket, not a rebind.
                self.assertEqual(len(d.events("listen", service="tcp")), 1)
                # New limit: the one open connection fills it ...
                with connect(addr) as extra:
                    self.assertTrue(closed_by_peer(extra))
                # ... and that connection was left alone.
                round_trip(old)

                # A different address: new listener, old one closed.
                d.write_config(tcp_config(listen="127.0.0.2:0"))
                self.assertEqual(d.reload()["event"], "reloaded")
                new = d.events("listen", service="tcp")[-1]
                self.assertTrue(new["addr"].startswith("127.0.0.2:"))
                d.wait_event("listen_close", service="tcp")
                with self.assertRaises(ConnectionRefusedError):
                    connect(addr).close()
                with connect(harness.split_addr(new["addr"])) as s:
                    round_trip(s)
                round_trip(old)

    def test_inherited_socket_outside_config_survives_reload(self):
        # A socket passed the way systemd passes them (fd 3, LISTEN_FDS,
        # LISTEN_PID of the daemon) on an address the config does not name:
        # beacond serves it besides its own listener, and keeps it on reload.
        lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        lsock.bind(("127.0.0.1", 0))
        lsock.listen(16)
        port = lsock.getsockname()[1]
        fd = lsock.fileno()
        move = "" if fd == 3 else f"exec 3<&{fd} {fd}<&-; "
        script = move + 'export LISTEN_FDS=1 LISTEN_PID=$$; exec "$0" "$@"'
        with Daemon(tcp_config(), prefix=["bash", "-c", script]) as d:
            try:
                d.start(pass_fds=(fd,))
            finally:
                lsock.close()
            inherited = d.events("listen", service="tcp", inherited="yes")
            self.assertEqual([e["addr"] for e in inherited], [f"127.0.0.1:{port}"])
            own = d.events("listen", service="tcp", inherited="no")
            self.assertEqual(len(own), 1)
            own_addr = harness.split_addr(own[0]["addr"])
            for addr in (("127.0.0.1", port), own_addr):
                with connect(addr) as s:
                    round_trip(s)
            d.write_config(tcp_config(max_connections=100))
            self.assertEqual(d.reload()["event"], "reloaded")
            self.assertEqual(d.events("listen_close"), [])
            for addr in (("127.0.0.1", port), own_addr):
                with connect(addr) as s:
                    round_trip(s)
            self.assertEqual(len(d.events("listen", service="tcp")), 2)

    def test_reload_failure_keeps_serving(self):
        with Daemon(tcp_config()) as d:
            d.start()
            addr = d.addr("tcp")
            with socket.socket() as squatter:
                squatter.bind(("127.0.0.1", 0))
                squatter.listen()
                taken = squatter.getsockname()
                d.write_config(tcp_config(listen=f"127.0.0.1:0, 127.0.0.1:{taken[1]}"))
                ev = d.reload()
                self.assertEqual(ev["event"], "reload_failed")
                self.assertIn(f"[tcp] listen 127.0.0.1:{taken[1]}", " ".join(ev.values()))
            with connect(addr) as s:
                round_trip(s)


if __name__ == "__main__":
    harness.main()
