#!/usr/bin/env python3
"""UDP echo service against the real daemon: exact echo of 100 000
datagrams per family, a full-size datagram, a real client, each
reflection safeguard, the rate limit and the bounded rate table.

Everything runs on loopback with ephemeral ports read from the
`event=listen service=udp` lines.  The safeguard tests need root (binding
source ports below 1024, raw sockets to forge sources).
"""
import errno
import os
import random
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
from harness import Daemon, base_config, have, is_root  # noqa: E402

COUNTERS = ("received", "echoed", "bytes_in", "bytes_out", "drop_truncated",
            "drop_port", "drop_addr", "drop_acl", "drop_rate", "drop_send")

# A reply that has not come within this long is taken as "no reply".  The
# drop counters are what proves a datagram was refused; the wait only makes
# sure nothing arrives late.
QUIET_S = 0.5


def udp_config(**keys):
    keys.setdefault("listen", "127.0.0.1:0, [::1]:0")
    keys.setdefault("rate_limit", 0)
    return base_config(tcp=None, udp=keys)


def stats(d):
    """SIGUSR1, then the udp counters from the `event=stats service=udp` line."""
    since = len(d.lines)
    d.signal(signal.SIGUSR1)
    ev = d.wait_event("stats", since=since, service="udp", why="signal")
    return {k: int(ev[k]) for k in COUNTERS}


def delta(after, before):
    return {k: after[k] - before[k] for k in COUNTERS}


def wait_received(d, target, timeout=30):
    """Poll the counters until `received` reaches target (the daemon may
    still be reading a queue when the client is done sending)."""
    deadline = time.monotonic() + timeout
    while True:
        s = stats(d)
        if s["received"] >= target or time.monotonic() > deadline:
            return s
        time.sleep(0.1)


def recv_nothing(sock, wait=QUIET_S):
    """True when nothing arrives on sock within `wait` seconds."""
    r, _, _ = select.select([sock], [], [], wait)
    return not r


def ip_checksum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def forged_udp4(src, sport, dst, dport, payload):
    """An IPv4 header plus a UDP header with any source address and port
    (checksum 0: "none", allowed for UDP over IPv4)."""
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64,
                      socket.IPPROTO_UDP, 0, socket.inet_aton(src), socket.inet_aton(dst))
    hdr = hdr[:10] + struct.pack("!H", ip_checksum(hdr)) + hdr[12:]
    return hdr + udp


def raw_sender():
    # IPPROTO_RAW implies IP_HDRINCL: we write the IP header ourselves.
    return socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)


class Window:
    """Send n datagrams of random sizes with at most `window` in flight and
    check every reply byte for byte.  A payload is a 4-byte sequence number
    (cut short for the smallest sizes) and random bytes; replies are matched
    against the multiset of payloads in flight, so order does not matter
    but every byte does."""

    def __init__(self, family, addr, n, sizes=(1, 1472), window=64, seed=1):
        self.family, self.addr, self.n = family, addr, n
        self.window = window
        self.rng = random.Random(seed)
        self.sizes = sizes
        self.pool = self.rng.randbytes(1 << 20)

    def payload(self, seq):
        size = self.rng.randint(*self.sizes)
        head = struct.pack("!I", seq & 0xFFFFFFFF)[:size]
        off = self.rng.randrange(0, len(self.pool) - size)
        return head + self.pool[off:off + size - len(head)]

    def run(self, timeout=5):
        s = socket.socket(self.family, socket.SOCK_DGRAM)
        # Room for a whole window of replies (capped by net.core.rmem_max).
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        s.settimeout(timeout)
        s.connect(self.addr)
        inflight = {}
        in_count = sent = got = nbytes = 0
        try:
            while got < self.n:
                while sent < self.n and in_count < self.window:
                    p = self.payload(sent)
                    s.send(p)
                    inflight[p] = inflight.get(p, 0) + 1
                    in_count += 1
                    sent += 1
                try:
                    r = s.recv(65536)
                except socket.timeout:
                    raise AssertionError(
                        f"reply {got + 1}/{self.n} missing after {timeout}s "
                        f"({in_count} in flight)") from None
                c = inflight.get(r)
                if not c:
                    raise AssertionError(
                        f"reply {got + 1} ({len(r)} bytes) matches no datagram in flight")
                if c == 1:
                    del inflight[r]
                else:
                    inflight[r] = c - 1
                in_count -= 1
                got += 1
                nbytes += len(r)
        finally:
            s.close()
        return nbytes


class UdpEcho(unittest.TestCase):
    """Exact echo: many datagrams, full size, a real client, counters."""

    @classmethod
    def setUpClass(cls):
        cls.d = Daemon(udp_config()).start()
        cls.v4 = cls.d.addr("udp", socket.AF_INET)
        cls.v6 = cls.d.addr("udp", socket.AF_INET6)

    @classmethod
    def tearDownClass(cls):
        try:
            rc = cls.d.stop()
            assert rc == 0, f"beacond exited {rc}"
        finally:
            cls.d.close()

    def _window(self, family, addr, seed):
        before = stats(self.d)
        t0 = time.monotonic()
        nbytes = Window(family, addr, 100_000, seed=seed).run()
        took = time.monotonic() - t0
        after = stats(self.d)
        d = delta(after, before)
        sys.stderr.write(f"  100000 datagrams ({nbytes} bytes) over "
                         f"{'IPv6' if family == socket.AF_INET6 else 'IPv4'} "
                         f"in {took:.1f}s\n")
        self.assertEqual(d["received"], 100_000)
        self.assertEqual(d["echoed"], 100_000)
        self.assertEqual(d["bytes_in"], nbytes)
        self.assertEqual(d["bytes_out"], nbytes)
        for k in COUNTERS[4:]:
            self.assertEqual(d[k], 0, k)

    def test_100k_random_sizes_ipv4(self):
        self._window(socket.AF_INET, self.v4, seed=4)

    def test_100k_random_sizes_ipv6(self):
        self._window(socket.AF_INET6, self.v6, seed=6)

    def test_largest_datagrams(self):
        # 65 535 - 20 (IPv4) - 8 (UDP); over IPv6 only the 8-byte UDP header
        # counts against the 16-bit payload length.
        for family, addr, size in ((socket.AF_INET, self.v4, 65507),
                                   (socket.AF_INET6, self.v6, 65527)):
            with socket.socket(family, socket.SOCK_DGRAM) as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
                s.settimeout(5)
                s.connect(addr)
                data = os.urandom(size)
                s.send(data)
                self.assertEqual(s.recv(70000), data, f"{size} bytes over {family}")

    def test_socat_client(self):
        if not have("socat"):
            self.skipTest("socat not installed")
        host, port = self.v4
        msg = b"hello beacond, this is socat\n"
        r = subprocess.run(["socat", "-T", "5", "-t", "2", "-", f"UDP:{host}:{port}"],
                           input=msg, capture_output=True, timeout=20)
        self.assertEqual(r.stdout, msg, r.stderr)

    def test_nc_client_ipv6(self):
        if not have("nc"):
            self.skipTest("nc not installed")
        host, port = self.v6
        msg = b"hello over IPv6 from nc\n"
        r = subprocess.run(["nc", "-u", "-w1", host, str(port)], input=msg,
                           capture_output=True, timeout=20)
        self.assertEqual(r.stdout, msg, r.stderr)

    def test_counters_in_sigusr1_dump(self):
        before = stats(self.d)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(5)
            s.connect(self.v4)
            for n in (10, 20, 30):
                s.send(b"x" * n)
                self.assertEqual(s.recv(100), b"x" * n)
        d = delta(stats(self.d), before)
        self.assertEqual((d["received"], d["echoed"], d["bytes_in"], d["bytes_out"]),
                         (3, 3, 60, 60))


class UdpWildcard(unittest.TestCase):
    """A socket bound to 0.0.0.0 answers from the address each datagram
    arrived on (IP_PKTINFO), so clients with connected sockets, which accept
    replies only from the address they sent to, get their answers."""

    def test_reply_source_is_arrival_address(self):
        with Daemon(udp_config(listen="0.0.0.0:0, [::]:0")).start() as d:
            port4 = d.addr("udp", socket.AF_INET)[1]
            port6 = d.addr("udp", socket.AF_INET6)[1]
            for family, dst, port in ((socket.AF_INET, "127.0.0.1", port4),
                                      (socket.AF_INET, "127.3.4.5", port4),
                                      (socket.AF_INET, "127.200.0.9", port4),
                                      (socket.AF_INET6, "::1", port6)):
                with socket.socket(family, socket.SOCK_DGRAM) as s:
                    s.settimeout(5)
                    s.connect((dst, port))
                    s.send(dst.encode())
                    # recvfrom on a connected socket: the kernel has
                    # already filtered on the source; check it anyway.
                    data, src = s.recvfrom(100)
                    self.assertEqual(data, dst.encode())
                    self.assertEqual(src[0], dst)
            self.assertEqual(d.stop(), 0)


@unittest.skipUnless(is_root(), "needs root: low source ports and raw sockets")
class UdpSafeguards(unittest.TestCase):

    def test_answering_source_ports_are_ignored(self):
        with Daemon(udp_config()).start() as d:
            dst = d.addr("udp", socket.AF_INET)
            # A loopback address nobody else uses, so ports 7 and 19 are free.
            src = f"127.{random.randint(64, 250)}.{random.randint(1, 250)}.{random.randint(1, 250)}"
            before = stats(d)
            for port in (7, 19):
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                    s.bind((src, port))
                    s.connect(dst)
                    s.send(b"storm?")
                    self.assertTrue(recv_nothing(s), f"reply to source port {port}")
            # The same address from an ephemeral port is answered.
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.bind((src, 0))
                s.settimeout(5)
                s.connect(dst)
                s.send(b"fine")
                self.assertEqual(s.recv(100), b"fine")
            d6 = delta(stats(d), before)
            self.assertEqual(d6["drop_port"], 2)
            self.assertEqual(d6["received"], 3)
            self.assertEqual(d6["echoed"], 1)
            self.assertEqual(d.stop(), 0)

    def test_source_port_zero_is_ignored(self):
        with Daemon(udp_config()).start() as d:
            host, port = d.addr("udp", socket.AF_INET)
            src = "127.0.0.1"
            # Every UDP datagram delivered on loopback, to see whether any
            # reply to port 0 is ever sent.
            sniff = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_UDP)
            sniff.setblocking(False)
            # It sees all of the host's UDP: a big buffer (SO_RCVBUFFORCE,
            # we are root) so other traffic cannot push the forged request
            # out of it.
            sniff.setsockopt(socket.SOL_SOCKET, 33, 32 << 20)
            tx = raw_sender()
            try:
                before = stats(d)
                mark = os.urandom(8).hex().encode()
                tx.sendto(forged_udp4(src, 0, host, port, mark), (host, 0))
                d6 = delta(wait_received(d, before["received"] + 1), before)
                self.assertEqual(d6["received"], 1)
                self.assertEqual(d6["drop_port"], 1)
                self.assertEqual(d6["echoed"] + d6["drop_send"], 0)
                time.sleep(QUIET_S)
                seen_request = replies = 0
                while True:
                    try:
                        pkt = sniff.recv(70000)
                    except BlockingIOError:
                        break
                    ihl = (pkt[0] & 0xF) * 4
                    sport, dport = struct.unpack("!HH", pkt[ihl:ihl + 4])
                    if sport == 0 and dport == port and mark in pkt:
                        seen_request += 1
                    if sport == port and dport == 0:
                        replies += 1
                self.assertEqual(seen_request, 1, "the sniffer must see the forged request")
                self.assertEqual(replies, 0, "a reply went to port 0")
            finally:
                sniff.close()
                tx.close()
            self.assertEqual(d.stop(), 0)

    def test_disallowed_source_is_ignored(self):
        with Daemon(udp_config(allow="127.0.0.2/32")).start() as d:
            v4 = d.addr("udp", socket.AF_INET)
            v6 = d.addr("udp", socket.AF_INET6)
            before = stats(d)
            for family, src, dst in ((socket.AF_INET, "127.0.0.1", v4),
                                     (socket.AF_INET, "127.0.0.3", v4),
                                     (socket.AF_INET6, "::1", v6)):
                with socket.socket(family, socket.SOCK_DGRAM) as s:
                    s.bind((src, 0))
                    s.connect(dst)
                    s.send(b"let me in")
                    self.assertTrue(recv_nothing(s), f"reply to disallowed {src}")
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.bind(("127.0.0.2", 0))
                s.settimeout(5)
                s.connect(v4)
                s.send(b"allowed")
                self.assertEqual(s.recv(100), b"allowed")
            dd = delta(stats(d), before)
            self.assertEqual(dd["drop_acl"], 3)
            self.assertEqual(dd["echoed"], 1)
            self.assertEqual(d.stop(), 0)

    def test_broadcast_and_multicast_sources_are_ignored(self):
        # Forged, since no socket can send from these addresses.  (0.0.0.0
        # cannot be forged this way: the kernel fills in a zero source.)
        srcs = ("255.255.255.255", "224.0.0.1", "239.1.2.3", "240.0.0.1")
        with Daemon(udp_config()).start() as d:
            host, port = d.addr("udp", socket.AF_INET)
            tx = raw_sender()
            try:
                before = stats(d)
                for src in srcs:
                    tx.sendto(forged_udp4(src, 40000, host, port, b"smurf"), (host, 0))
                dd = delta(wait_received(d, before["received"] + len(srcs)), before)
                self.assertEqual(dd["received"], len(srcs))
                self.assertEqual(dd["drop_addr"], len(srcs))
                self.assertEqual(dd["echoed"] + dd["drop_send"], 0)
            finally:
                tx.close()
            self.assertEqual(d.stop(), 0)

    def test_broadcast_destination_is_ignored(self):
        # A wildcard socket also receives datagrams sent to a broadcast
        # address (here lo's 127.255.255.255); answering those would make
        # every host on a subnet answer one forged packet.
        with Daemon(udp_config(listen="0.0.0.0:0")).start() as d:
            port = d.addr("udp", socket.AF_INET)[1]
            before = stats(d)
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
                s.bind(("127.0.0.1", 0))
                s.sendto(b"everyone?", ("127.255.255.255", port))
                self.assertTrue(recv_nothing(s))
                s.settimeout(5)
                s.sendto(b"just you", ("127.0.0.1", port))
                self.assertEqual(s.recv(100), b"just you")
            dd = delta(stats(d), before)
            self.assertEqual(dd["received"], 2)
            self.assertEqual(dd["drop_addr"], 1)
            self.assertEqual(dd["echoed"], 1)
            self.assertEqual(d.stop(), 0)

    def test_rate_limit_holds_under_flood(self):
        rate, burst = 100, 200
        cfg = udp_config(listen="127.0.0.1:0", rate_limit=rate, rate_burst=burst,
                         recv_buffer="8MiB")
        with Daemon(cfg).start() as d:
            dst = d.addr("udp", socket.AF_INET)
            flood = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            flood.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            flood.bind(("127.0.0.1", 0))
            flood.connect(dst)
            probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            probe.bind(("127.0.0.2", 0))
            probe.connect(dst)
            try:
                before = stats(d)
                pps = 10_000       # 100 times the limit
                sent = probes = 0
                t0 = time.monotonic()
                next_probe = t0
                while True:
                    now = time.monotonic()
                    if now - t0 >= 1.0:
                        break
                    due = int((now - t0) * pps) + 1
                    while sent < due:
                        flood.send(b"flood")
                        sent += 1
                    if now >= next_probe:
                        probe.send(b"probe %d" % probes)
                        probes += 1
                        next_probe += 0.05
                    time.sleep(0.001)
                took = time.monotonic() - t0
                after = wait_received(d, before["received"] + sent + probes)
                # The bucket refills while the daemon reads, and it may read
                # the flood for longer than we sent it (much longer under
                # valgrind): the bound runs until it had read everything.
                read_by = time.monotonic() - t0
                time.sleep(0.2)
                replies = 0
                flood.setblocking(False)
                while True:
                    try:
                        self.assertEqual(flood.recv(100), b"flood")
                        replies += 1
                    except BlockingIOError:
                        break
                answered = set()
                probe.setblocking(False)
                while True:
                    try:
                        answered.add(probe.recv(100))
                    except BlockingIOError:
                        break
            finally:
                flood.close()
                probe.close()
            dd = delta(after, before)
            sys.stderr.write(f"  flood: {sent} sent in {took:.2f}s (read by {read_by:.2f}s), "
                             f"{replies} answered "
                             f"(limit {rate}/s, burst {burst}); probes {len(answered)}/{probes}\n")
            self.assertEqual(dd["received"], sent + probes)
            # At most burst + rate * time, plus 10% for timer slack.
            self.assertLessEqual(replies, int((burst + rate * read_by) * 1.1))
            # The burst at least is answered: the limiter limits, it does not block.
            self.assertGreaterEqual(replies, burst)
            self.assertEqual(dd["drop_rate"], sent - replies)
            self.assertEqual(dd["echoed"], replies + probes)
            self.assertEqual(answered, {b"probe %d" % i for i in range(probes)},
                             "the second source must be answered throughout")
            self.assertEqual(d.stop(), 0)

    def test_rate_table_memory_is_bounded(self):
        """100 000 forged sources against a 4096-entry table.  A table that
        grew with its sources would need at least 100 000 x 48 bytes (4.8 MB)
        more; the daemon must stay within 2 MiB of where it started, and
        that includes filling its whole fixed-size table."""
        n = 100_000
        cfg = udp_config(listen="127.0.0.1:0", rate_limit=10, rate_table_size=4096,
                         recv_buffer="8MiB")
        with Daemon(cfg).start() as d:
            host, port = d.addr("udp", socket.AF_INET)
            rng = random.Random(100)
            # 127.1.0.0 .. 127.255.255.255, all distinct.
            sources = rng.sample(range(1 << 16, 1 << 24), n + 300)
            # Warm up as a few ordinary clients would: full-size packets into
            # the receive slots, a few hundred table entries.
            before = stats(d)
            forge_flood(host, port, sources[n:], 1400, rng)
            wait_received(d, before["received"] + 300)
            time.sleep(0.2)
            rss0 = d.rss_kib()
            before = stats(d)
            t0 = time.monotonic()
            forge_flood(host, port, sources[:n], 16, rng)
            after = wait_received(d, before["received"] + n)
            rss1 = d.rss_kib()
            dd = delta(after, before)
            sys.stderr.write(f"  {n} forged sources in {time.monotonic() - t0:.1f}s: "
                             f"RSS {rss0} -> {rss1} KiB\n")
            self.assertEqual(dd["received"], n)
            # Each source is new, so each gets a reply from its fresh bucket.
            self.assertEqual(dd["echoed"], n)
            self.assertEqual(dd["drop_rate"], 0)
            self.assertLess(rss1 - rss0, 2048, f"RSS grew from {rss0} to {rss1} KiB")
            ev = d.events("stats", service="udp")[-1]
            if "rate_evictions" in ev:
                # The table held 4096; everyone else had to be pushed out.
                self.assertEqual(int(ev["rate_evictions"]), n + 300 - 4096)
            # Still an echo service afterwards, and still limiting: a new
            # source gets its burst (2 x 10) and then nothing.
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.bind(("127.0.0.9", 0))
                s.settimeout(5)
                s.connect((host, port))
                s.send(b"after")
                self.assertEqual(s.recv(100), b"after")
            self.assertEqual(d.stop(), 0)


def forge_flood(host, port, sources, size, rng, pps=None):
    """One datagram from each 127/8 source (an int: the low 24 bits), from a
    random ephemeral port, paced at `pps` so the daemon's socket never
    overflows (20 000/s, divided by BEACOND_TEST_SLOWDOWN: a daemon under
    valgrind reads about ten thousand a second)."""
    if pps is None:
        pps = 20_000 / harness.SLOW
    tx = raw_sender()
    tx.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
    t0 = time.monotonic()
    try:
        for i, s in enumerate(sources):
            src = f"127.{s >> 16}.{(s >> 8) & 255}.{s & 255}"
            body = (b"spoofed %d " % i).ljust(size, b".")
            pkt = forged_udp4(src, rng.randint(32768, 60999), host, port, body)
            while True:
                try:
                    tx.sendto(pkt, (host, 0))
                    break
                except OSError as e:
                    if e.errno not in (errno.ENOBUFS, errno.EAGAIN):
                        raise
                    time.sleep(0.001)
            if i % 200 == 199:
                lag = t0 + (i + 1) / pps - time.monotonic()
                if lag > 0:
                    time.sleep(lag)
    finally:
        tx.close()


class UdpConfig(unittest.TestCase):

    def test_discard_mode_counts_and_never_replies(self):
        with Daemon(udp_config(mode="discard")).start() as d:
            before = stats(d)
            for family in (socket.AF_INET, socket.AF_INET6):
                with socket.socket(family, socket.SOCK_DGRAM) as s:
                    s.connect(d.addr("udp", family))
                    for _ in range(5):
                        s.send(b"into the void")
                    self.assertTrue(recv_nothing(s))
            dd = delta(stats(d), before)
            self.assertEqual(dd["received"], 10)
            self.assertEqual(dd["bytes_in"], 130)
            self.assertEqual(dd["echoed"], 0)
            self.assertEqual(d.stop(), 0)

    def test_reload_keeps_socket_and_applies_mode(self):
        with Daemon(udp_config()).start() as d:
            addr = d.addr("udp", socket.AF_INET)
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.settimeout(5)
                s.connect(addr)
                s.send(b"one")
                self.assertEqual(s.recv(10), b"one")
                since = len(d.lines)
                d.write_config(udp_config(mode="discard"))
                ev = d.reload()
                self.assertEqual(ev["event"], "reloaded", ev)
                # Same configured endpoint (port 0): same socket, no new listen line.
                self.assertEqual(d.events("listen", since=since, service="udp"), [])
                self.assertEqual(d.events("listen_close", since=since, service="udp"), [])
                s.send(b"two")
                self.assertTrue(recv_nothing(s))
                since = len(d.lines)
                d.write_config(udp_config())
                self.assertEqual(d.reload()["event"], "reloaded")
                s.send(b"three")
                self.assertEqual(s.recv(10), b"three")
            self.assertEqual(d.stop(), 0)

    @unittest.skipUnless(is_root() and have("ss"), "needs root (SO_RCVBUFFORCE) and ss")
    def test_recv_buffer_applied_and_restored(self):
        def rb(port):
            out = subprocess.run(["ss", "-u", "-l", "-n", "-m", f"sport = :{port}"],
                                 capture_output=True, text=True, timeout=10).stdout
            m = re.search(r"skmem:\([^)]*\brb(\d+)", out)
            self.assertIsNotNone(m, out)
            return int(m.group(1))

        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            default = probe.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        with Daemon(udp_config(listen="127.0.0.1:0", recv_buffer="4MiB")).start() as d:
            port = d.addr("udp", socket.AF_INET)[1]
            # The kernel doubles the value for its bookkeeping overhead.
            self.assertEqual(rb(port), 8 << 20)
            d.write_config(udp_config(listen="127.0.0.1:0"))
            self.assertEqual(d.reload()["event"], "reloaded")
            self.assertEqual(rb(port), default, "recv_buffer = 0 restores the default")
            self.assertEqual(d.stop(), 0)

    def test_bind_failure_names_address_and_error(self):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as busy:
            busy.bind(("127.0.0.1", 0))   # no SO_REUSEADDR: the daemon cannot share it
            port = busy.getsockname()[1]
            with Daemon(udp_config(listen=f"127.0.0.1:{port}")) as d:
                d.start(wait_ready=False)
                rc = d.wait_exit(timeout=15)
                self.assertNotEqual(rc, 0)
                text = "\n".join(d.lines)
                self.assertIn(f"127.0.0.1:{port}", text)
                self.assertIn(os.strerror(errno.EADDRINUSE), text)


if __name__ == "__main__":
    harness.main()
