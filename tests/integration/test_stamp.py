#!/usr/bin/env python3
"""The STAMP reflector ([stamp], RFC 8762 / RFC 8972) against the real daemon.

A test sender written here (stdlib only) checks every field of the
reflected packets: T1 <= T2 <= T3 <= T4 on this host's one clock, the
stateless and stateful sequence numbers (including requests lost on the
way, which stateful numbering exposes), the TTL the request arrived with
(across a router namespace that decrements it) and the TTL 255 of the
reply, symmetric sizes, each implemented TLV, unknown and malformed TLVs,
the short-request rule, the rate limit, the allow-list and the source port
rule.  tshark, an independent decoder, reads the replies off the wire and
must see the same fields.

Everything runs on loopback or in namespaces made here; tests that need
root, ip or tshark are skipped (exit 77 when nothing ran).
"""
import ctypes
import os
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

NTP_OFFSET = 2208988800
IP_TOS, IP_TTL, IP_RECVTTL, IP_RECVTOS = 1, 2, 12, 13
IPV6_RECVHOPLIMIT, IPV6_HOPLIMIT = 51, 52
QUIET_S = 0.5
BASE = 44

COUNTERS = ("received", "reflected", "short_reflected", "drop_acl", "drop_addr",
            "drop_port", "drop_runt", "drop_short", "drop_auth", "drop_rate",
            "drop_session", "drop_send", "tlv_unknown", "tlv_malformed", "tx_stamps",
            "sessions_created")


def ntp_from_ns(ns):
    sec = ns // 10**9 + NTP_OFFSET
    frac = ((ns % 10**9) << 32) // 10**9
    return (sec & 0xffffffff) << 32 | frac


def ntp_to_ns(v):
    sec, frac = v >> 32, v & 0xffffffff
    return (sec - NTP_OFFSET) * 10**9 + ((frac * 10**9 + (1 << 31)) >> 32)


def request(seq, ssid=0, err=0x0001, tlvs=b"", t1_ns=None):
    """An unauthenticated session-sender packet (44 bytes) plus TLVs; T1 is
    written last, right before the caller sends."""
    t1 = ntp_from_ns(t1_ns if t1_ns is not None else time.time_ns())
    return struct.pack("!IQHH28x", seq, t1, err, ssid) + tlvs


def tlv(typ, value, flags=0):
    return struct.pack("!BBH", flags, typ, len(value)) + value


def parse_reply(b):
    (seq, t3, err, ssid, t2, sseq, t1, serr, mbz, ttl) = struct.unpack("!IQHHQIQHHB3x", b[:BASE])
    return dict(seq=seq, t3=t3, err=err, ssid=ssid, t2=t2, sseq=sseq, t1=t1, serr=serr,
                mbz=mbz, ttl=ttl, tlvs=b[BASE:], len=len(b))


def parse_tlvs(b):
    out, off = [], 0
    while len(b) - off >= 4:
        flags, typ, ln = struct.unpack("!BBH", b[off:off + 4])
        out.append(dict(flags=flags, type=typ, value=b[off + 4:off + 4 + ln], raw_len=ln))
        off += 4 + ln
    return out


def stamp_config(stamp=None, udp=None, extra_daemon=None):
    keys = dict(stamp or {})
    keys.setdefault("enabled", "yes")
    keys.setdefault("listen", "127.0.0.1:0, [::1]:0")
    keys.setdefault("rate_limit", 0)
    text = base_config(tcp=None, udp=udp, daemon=extra_daemon)
    return text + "\n[stamp]\n" + "".join(f"{k} = {v}\n" for k, v in keys.items())


def stats(d):
    since = len(d.lines)
    d.signal(signal.SIGUSR1)
    ev = d.wait_event("stats", since=since, service="stamp", why="signal")
    return {k: int(ev[k]) for k in COUNTERS} | {"clock_synced": ev["clock_synced"],
                                                 "clock_error_ns": int(ev["clock_error_ns"])}


def wait_received(d, target, timeout=20):
    deadline = time.monotonic() + timeout
    while True:
        s = stats(d)
        if s["received"] >= target or time.monotonic() > deadline:
            return s
        time.sleep(0.1)


def delta(after, before):
    return {k: after[k] - before[k] for k in COUNTERS}


def sender(family=socket.AF_INET, tos=None):
    s = socket.socket(family, socket.SOCK_DGRAM)
    if family == socket.AF_INET:
        s.setsockopt(socket.IPPROTO_IP, IP_RECVTTL, 1)
        if tos is not None:
            s.setsockopt(socket.IPPROTO_IP, IP_TOS, tos)
    else:
        s.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVHOPLIMIT, 1)
        if tos is not None:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_TCLASS, tos)
    return s


def exchange(sock, dst, pkt_fn, timeout=5, want_tos=False):
    """Send pkt_fn() (built at the last moment, so T1 is fresh) and return
    (reply bytes, T1 ns, T4 ns, reply TTL), and the reply's TOS / traffic
    class last with want_tos (the socket needs IP_RECVTOS / IPV6_RECVTCLASS)."""
    pkt = pkt_fn()
    t1 = ntp_to_ns(struct.unpack("!Q", pkt[4:12])[0])
    sock.sendto(pkt, dst)
    r, _, _ = select.select([sock], [], [], timeout)
    if not r:
        return None, t1, None, None
    data, anc, _, _ = sock.recvmsg(65536, socket.CMSG_SPACE(4) * 4)
    t4 = time.time_ns()
    ttl = tos = None
    for level, typ, val in anc:
        if (level, typ) in ((socket.IPPROTO_IP, IP_TTL), (socket.IPPROTO_IPV6, IPV6_HOPLIMIT)):
            ttl = struct.unpack("i", val[:4])[0]
        elif (level, typ) == (socket.IPPROTO_IP, IP_TOS):
            tos = val[0]
        elif (level, typ) == (socket.IPPROTO_IPV6, socket.IPV6_TCLASS):
            tos = struct.unpack("i", val[:4])[0]
    if want_tos:
        return data, t1, t4, ttl, tos
    return data, t1, t4, ttl


def recv_nothing(sock, wait=QUIET_S):
    r, _, _ = select.select([sock], [], [], wait)
    return not r


def kernel_clock():
    """adjtimex(2) as the daemon reads it: (synchronised, error ns)."""
    class Timex(ctypes.Structure):
        _fields_ = [("modes", ctypes.c_uint), ("offset", ctypes.c_long),
                    ("freq", ctypes.c_long), ("maxerror", ctypes.c_long),
                    ("esterror", ctypes.c_long), ("status", ctypes.c_int),
                    ("pad", ctypes.c_byte * 200)]
    libc = ctypes.CDLL(None, use_errno=True)
    tx = Timex()
    st = libc.adjtimex(ctypes.byref(tx))
    synced = st >= 0 and st != 5 and not (tx.status & 0x40)
    us = tx.esterror if synced else tx.maxerror
    return synced, us * 1000


def error_ns(e):
    scale, mult = (e >> 8) & 0x3f, e & 0xff
    return mult * (2 ** scale) * 10**9 / 2**32


class StampBasics(unittest.TestCase):
    """Stateless reflection on loopback: every base field, both families."""

    @classmethod
    def setUpClass(cls):
        cls.d = Daemon(stamp_config()).start()

    @classmethod
    def tearDownClass(cls):
        cls.d.stop()
        cls.d.close()

    def check_reply(self, family):
        dst = self.d.addr("stamp", family)
        with sender(family) as s:
            for seq in (0, 1, 2, 1000, 0xfffffffe):
                reply, t1, t4, rttl = exchange(s, dst, lambda: request(seq, ssid=0xbeef,
                                                                       err=0x8105))
                self.assertIsNotNone(reply, f"no reply to seq {seq}")
                r = parse_reply(reply)
                self.assertEqual(r["len"], BASE, "symmetric size")
                self.assertEqual(r["seq"], seq, "stateless: the sender's number copied")
                self.assertEqual(r["sseq"], seq)
                self.assertEqual(r["ssid"], 0xbeef)
                self.assertEqual(r["serr"], 0x8105)
                self.assertEqual(ntp_to_ns(r["t1"]), t1)
                t2, t3 = ntp_to_ns(r["t2"]), ntp_to_ns(r["t3"])
                # One clock; the 2 ns are the NTP conversions' rounding.
                self.assertLessEqual(t1, t2 + 2, "T1 <= T2")
                self.assertLessEqual(t2, t3, "T2 <= T3")
                self.assertLessEqual(t3, t4 + 2, "T3 <= T4")
                self.assertEqual(r["ttl"], 64, "received TTL / hop limit copied")
                self.assertEqual(rttl, 255, "reply sent with TTL / hop limit 255")
                self.assertEqual(r["mbz"], 0)
                self.assertEqual(reply[41:44], b"\0\0\0")

    def test_fields_and_clock_order_ipv4(self):
        self.check_reply(socket.AF_INET)

    def test_fields_and_clock_order_ipv6(self):
        self.check_reply(socket.AF_INET6)

    def test_error_estimate_from_adjtimex(self):
        dst = self.d.addr("stamp", socket.AF_INET)
        with sender() as s:
            reply, *_ = exchange(s, dst, lambda: request(7))
        e = parse_reply(reply)["err"]
        synced, err = kernel_clock()
        self.assertEqual(bool(e & 0x8000), synced, "S bit as adjtimex says")
        self.assertFalse(e & 0x4000, "Z = 0: NTP format")
        self.assertNotEqual(e & 0xff, 0, "multiplier never 0")
        # At least the kernel's error, and not more than twice it (the
        # encoding rounds up to 8 bits of mantissa) -- read a moment apart,
        # so maxerror may have grown by its 500 ppm of a second or so.
        self.assertGreaterEqual(error_ns(e), err * 0.99)
        self.assertLessEqual(error_ns(e), 2 * err + 2e6)
        st = stats(self.d)
        self.assertEqual(st["clock_synced"], "true" if synced else "false")

    def test_sizes_are_symmetric(self):
        dst = self.d.addr("stamp", socket.AF_INET)
        with sender() as s:
            for size in (BASE, 45, 100, 1472, 9000, 60000):
                pad = tlv(1, bytes(size - BASE - 4)) if size >= BASE + 4 else bytes(size - BASE)
                reply, *_ = exchange(s, dst, lambda: request(size, tlvs=pad))
                self.assertIsNotNone(reply, f"size {size}")
                self.assertEqual(len(reply), size)

    def test_short_requests_get_44_bytes(self):
        dst = self.d.addr("stamp", socket.AF_INET)
        with sender() as s:
            for size in (14, 16, 30, 43):
                reply, t1, t4, _ = exchange(s, dst, lambda: request(size, ssid=0x1234)[:size])
                self.assertIsNotNone(reply, f"size {size}")
                r = parse_reply(reply)
                self.assertEqual(r["len"], BASE)
                self.assertEqual(r["sseq"], size)
                self.assertEqual(ntp_to_ns(r["t1"]), t1)
                self.assertEqual(r["serr"], 0x0001)
                self.assertEqual(r["ssid"], 0x1234 if size >= 16 else 0)
            before = stats(self.d)
            for size in (0, 1, 13):
                s.sendto(request(1)[:size], dst)
            self.assertTrue(recv_nothing(s))
            dd = delta(wait_received(self.d, before["received"] + 3), before)
            self.assertEqual(dd["drop_runt"], 3)
            self.assertEqual(dd["reflected"], 0)

    def test_authenticated_packets_are_dropped(self):
        dst = self.d.addr("stamp", socket.AF_INET)
        # RFC 8762 4.2.2: seq, 12 MBZ, T1, error estimate, SSID, 68 MBZ, HMAC.
        auth = struct.pack("!I12xQHH68x16s", 9, ntp_from_ns(time.time_ns()), 1, 2, b"h" * 16)
        self.assertEqual(len(auth), 112)
        with sender() as s:
            before = stats(self.d)
            s.sendto(auth, dst)
            self.assertTrue(recv_nothing(s))
            dd = delta(wait_received(self.d, before["received"] + 1), before)
            self.assertEqual(dd["drop_auth"], 1)
            # The same length, unauthenticated, is answered.
            reply, *_ = exchange(s, dst, lambda: request(9, tlvs=tlv(1, bytes(64))))
            self.assertEqual(len(reply), 112)

    def test_tlvs(self):
        dst = self.d.addr("stamp", socket.AF_INET)
        tos = 46 << 2 | 1          # DSCP EF, ECT(1)
        with sender(tos=tos) as s:
            before = stats(self.d)
            tlvs = (tlv(1, b"\xaa" * 20, flags=0x80) +          # Extra Padding
                    tlv(3, bytes(4), flags=0x80) +               # Timestamp Information
                    tlv(4, bytes([10 << 2, 0, 0, 0])) +          # Class of Service, DSCP1 = 10
                    tlv(5, struct.pack("!III", 77, 0, 0)) +      # Direct Measurement
                    tlv(200, b"future") +                        # unknown
                    tlv(10, bytes(8)) +                          # Return Path: never acted on
                    tlv(9, bytes(8)))                            # Destination Node Address
            s.setsockopt(socket.IPPROTO_IP, IP_RECVTOS, 1)
            reply, _, _, _, rtos = exchange(s, dst, lambda: request(5, tlvs=tlvs),
                                            want_tos=True)
            self.assertEqual(rtos, 0, "class_of_service = keep: the reply is not re-marked")
            r = parse_reply(reply)
            self.assertEqual(r["len"], BASE + len(tlvs))
            t = parse_tlvs(r["tlvs"])
            self.assertEqual([x["type"] for x in t], [1, 3, 4, 5, 200, 10, 9])
            pad, tsi, cos, dm, unk, rp, dna = t
            self.assertEqual(pad["flags"] & 0xc0, 0)
            self.assertEqual(pad["value"], b"\xaa" * 20, "padding copied")
            self.assertEqual(tsi["flags"] & 0xc0, 0, "recognised: U cleared")
            synced, _ = kernel_clock()
            sync = 1 if synced else 5
            self.assertEqual(tsi["value"], bytes([sync, 2, sync, 2]),
                             "sync source, software timestamps in and out")
            v = cos["value"]
            self.assertEqual(v[0] >> 2, 10, "DSCP1 kept")
            self.assertEqual((v[0] & 3) << 4 | v[1] >> 4, 46, "DSCP2: the received DSCP")
            self.assertEqual((v[1] >> 2) & 3, 1, "ECN received")
            self.assertEqual(v[1] & 3, 1, "RP = 1: DSCP1 not applied to the reply")
            s_tx, r_rx, r_tx = struct.unpack("!III", dm["value"])
            self.assertEqual(s_tx, 77)
            # Stateless: the reflector's own counters (this request
            # included in rx, not yet in tx).
            self.assertEqual(r_rx, before["received"] + 1)
            self.assertEqual(r_tx, before["reflected"])
            for x in (unk, rp, dna):
                self.assertTrue(x["flags"] & 0x80, f"type {x['type']}: U flag")
            self.assertEqual(unk["value"], b"future")
            self.assertEqual(rp["value"], bytes(8), "return path copied, not used")
            dd = delta(stats(self.d), before)
            self.assertEqual(dd["tlv_unknown"], 3)
            self.assertEqual(dd["tlv_malformed"], 0)

    def test_malformed_tlvs(self):
        dst = self.d.addr("stamp", socket.AF_INET)
        with sender() as s:
            before = stats(self.d)
            # A TLV running past the end: M, and it and the rest as sent.
            tail = struct.pack("!BBH", 0, 3, 200) + b"\x11" * 10
            tlvs = tlv(1, bytes(4)) + tail
            reply, *_ = exchange(s, dst, lambda: request(1, tlvs=tlvs))
            body = parse_reply(reply)["tlvs"]
            self.assertEqual(len(reply), BASE + len(tlvs))
            self.assertEqual(body[8], 0x40, "M flag")
            self.assertEqual(body[9:], tail[1:], "the rest copied unprocessed")
            # A known type with the wrong length: M, the rest untouched.
            tlvs = tlv(3, bytes(8)) + tlv(5, bytes(12))
            reply, *_ = exchange(s, dst, lambda: request(2, tlvs=tlvs))
            t = parse_tlvs(parse_reply(reply)["tlvs"])
            self.assertEqual(t[0]["flags"], 0x40)
            self.assertEqual(t[0]["value"], bytes(8))
            self.assertEqual(t[1]["value"], bytes(12), "after M nothing is filled in")
            dd = delta(stats(self.d), before)
            self.assertEqual(dd["tlv_malformed"], 2)

    def test_stats_line(self):
        st = stats(self.d)
        self.assertGreaterEqual(st["received"], st["reflected"])

    def test_counters_in_the_metrics(self):
        """The [web] listener's /metrics carries the reflector's counters,
        the same figures as its stats line."""
        import urllib.request
        host, port = self.d.addr("web")
        dst = self.d.addr("stamp", socket.AF_INET)
        with sender() as s:
            for seq in range(5):
                self.assertIsNotNone(exchange(s, dst, lambda: request(seq))[0])
        st = stats(self.d)
        with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=10) as r:
            text = r.read().decode()
        found = {}
        for line in text.splitlines():
            name, _, value = line.rpartition(" ")
            if name in ("beacond_stamp_packets_received_total",
                        "beacond_stamp_packets_reflected_total",
                        'beacond_stamp_packets_dropped_total{reason="auth"}'):
                found[name] = int(value)
        self.assertIn("# TYPE beacond_stamp_packets_reflected_total counter", text)
        self.assertGreaterEqual(found["beacond_stamp_packets_reflected_total"], 5)
        # Nothing else talks to this reflector between the two readings.
        self.assertEqual(found["beacond_stamp_packets_reflected_total"], st["reflected"])
        self.assertEqual(found["beacond_stamp_packets_received_total"], st["received"])
        self.assertEqual(found['beacond_stamp_packets_dropped_total{reason="auth"}'],
                         st["drop_auth"])


class StampStateful(unittest.TestCase):
    def test_sequence_numbers_expose_lost_requests(self):
        cfg = stamp_config({"mode": "stateful", "sessions": 3, "session_timeout": "1s"})
        with Daemon(cfg).start() as d:
            dst = d.addr("stamp", socket.AF_INET)
            with sender() as s:
                # The sender numbers 0..9; 3, 4 and 7 are "lost" on the way
                # (never sent).  The reflector counts what arrived.
                sent = [n for n in range(10) if n not in (3, 4, 7)]
                got = []
                for n in sent:
                    reply, *_ = exchange(s, dst, lambda: request(n, ssid=1))
                    got.append(parse_reply(reply))
                self.assertEqual([r["sseq"] for r in got], sent)
                self.assertEqual([r["seq"] for r in got], list(range(len(sent))))
                gaps = [r["sseq"] - r["seq"] for r in got]
                self.assertEqual(gaps, [0, 0, 0, 2, 2, 3, 3], "lost requests as the gap")
                # Another SSID on the same socket is its own session.
                reply, *_ = exchange(s, dst, lambda: request(50, ssid=2))
                self.assertEqual(parse_reply(reply)["seq"], 0)
                # So is another source port.
                with sender() as s2:
                    reply, *_ = exchange(s2, dst, lambda: request(60, ssid=1))
                    self.assertEqual(parse_reply(reply)["seq"], 0)
                # The table (3) is full of live sessions: a fourth is refused.
                before = stats(d)
                s.sendto(request(1, ssid=3), dst)
                self.assertTrue(recv_nothing(s))
                dd = delta(stats(d), before)
                self.assertEqual(dd["drop_session"], 1)
                # Idle past session_timeout: a session starts over at 0, and
                # an expired one makes room.
                time.sleep(1.2)
                reply, *_ = exchange(s, dst, lambda: request(11, ssid=1))
                self.assertEqual(parse_reply(reply)["seq"], 0)
                reply, *_ = exchange(s, dst, lambda: request(1, ssid=3))
                self.assertIsNotNone(reply)
                self.assertEqual(parse_reply(reply)["seq"], 0)
            # Nobody asked for a Follow-Up: no reply was stamped on send.
            self.assertEqual(stats(d)["tx_stamps"], 0)
            self.assertEqual(d.stop(), 0)

    def test_follow_up_and_direct_measurement(self):
        cfg = stamp_config({"mode": "stateful"})
        with Daemon(cfg).start() as d:
            dst = d.addr("stamp", socket.AF_INET)
            fu = tlv(7, bytes(16))
            dm = tlv(5, bytes(12))
            with sender() as s:
                prev = None
                for n in range(5):
                    reply, t1, t4, _ = exchange(s, dst, lambda: request(n, tlvs=fu + dm))
                    r = parse_reply(reply)
                    fut, dmt = parse_tlvs(r["tlvs"])
                    self.assertEqual(fut["flags"] & 0xc0, 0)
                    seq, ts, mode = struct.unpack("!IQB3x", fut["value"])
                    _, r_rx, r_tx = struct.unpack("!III", dmt["value"])
                    self.assertEqual((r_rx, r_tx), (n + 1, n), "the session's own counters")
                    if prev is None:
                        self.assertEqual((seq, ts, mode), (0, 0, 0), "nothing sent before")
                    else:
                        p_reply, p_t4 = prev
                        self.assertEqual(seq, p_reply["seq"], "the previous reply's number")
                        self.assertEqual(mode, 2, "software timestamp")
                        tx = ntp_to_ns(ts)
                        # The kernel's transmit stamp: after T3, before we
                        # received that reply.
                        self.assertLessEqual(ntp_to_ns(p_reply["t3"]), tx)
                        self.assertLessEqual(tx, p_t4 + 2)
                    prev = (r, t4)
                    time.sleep(0.02)
                self.assertGreaterEqual(stats(d)["tx_stamps"], 4)
            self.assertEqual(d.stop(), 0)


class StampClassOfService(unittest.TestCase):
    def test_apply_marks_the_reply(self):
        with Daemon(stamp_config({"class_of_service": "apply"})).start() as d:
            for family in (socket.AF_INET, socket.AF_INET6):
                dst = d.addr("stamp", family)
                with sender(family, tos=46 << 2) as s:
                    if family == socket.AF_INET:
                        s.setsockopt(socket.IPPROTO_IP, IP_RECVTOS, 1)
                    else:
                        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVTCLASS, 1)
                    cos = tlv(4, bytes([26 << 2, 0, 0, 0]))   # DSCP1 = AF31
                    reply, _, _, _, rtos = exchange(s, dst, lambda: request(1, tlvs=cos),
                                                    want_tos=True)
                    self.assertEqual(rtos, 26 << 2, f"{family}: DSCP1 on the reply")
                    v = parse_tlvs(parse_reply(reply)["tlvs"])[0]["value"]
                    self.assertEqual((v[0] & 3) << 4 | v[1] >> 4, 46, "DSCP2: what arrived")
                    self.assertEqual(v[1] & 3, 0, "RP = 0: DSCP1 applied")
                    # Without a CoS TLV nothing is re-marked.
                    reply, _, _, _, rtos = exchange(s, dst, lambda: request(2), want_tos=True)
                    self.assertEqual(rtos, 0)
            self.assertEqual(d.stop(), 0)


class StampSafeguards(unittest.TestCase):
    def test_short_requests_drop(self):
        with Daemon(stamp_config({"short_requests": "drop"})).start() as d:
            dst = d.addr("stamp", socket.AF_INET)
            with sender() as s:
                before = stats(d)
                for size in (14, 30, 43):
                    s.sendto(request(size)[:size], dst)
                self.assertTrue(recv_nothing(s))
                reply, *_ = exchange(s, dst, lambda: request(44))
                self.assertEqual(len(reply), BASE, "full requests still answered")
                dd = delta(stats(d), before)
                self.assertEqual(dd["drop_short"], 3)
            self.assertEqual(d.stop(), 0)

    def test_allow_list_first(self):
        with Daemon(stamp_config({"allow": "10.0.0.0/8"})).start() as d:
            dst = d.addr("stamp", socket.AF_INET)
            with sender() as s:
                before = stats(d)
                s.sendto(request(1), dst)
                s.sendto(request(1)[:20], dst)     # a short one: no 44-byte reply either
                s.sendto(b"x", dst)                 # not even a runt verdict
                self.assertTrue(recv_nothing(s))
                dd = delta(wait_received(d, before["received"] + 3), before)
                self.assertEqual(dd["drop_acl"], 3)
                self.assertEqual(dd["drop_runt"], 0)
            self.assertEqual(d.stop(), 0)

    def test_rate_limit(self):
        with Daemon(stamp_config({"rate_limit": 5, "rate_burst": 5})).start() as d:
            dst = d.addr("stamp", socket.AF_INET)
            with sender() as s:
                before = stats(d)
                for n in range(50):
                    s.sendto(request(n), dst)
                replies = 0
                while not recv_nothing(s, 0.3):
                    s.recv(100)
                    replies += 1
                dd = delta(wait_received(d, before["received"] + 50), before)
                # 5 of burst, and at most a token or two refilled meanwhile.
                self.assertGreaterEqual(replies, 5)
                self.assertLessEqual(replies, 8)
                self.assertEqual(dd["drop_rate"], 50 - replies)
            self.assertEqual(d.stop(), 0)

    @unittest.skipUnless(is_root(), "binding ports below 1024 needs root")
    def test_low_source_ports(self):
        with Daemon(stamp_config()).start() as d:
            dst = d.addr("stamp", socket.AF_INET)
            src = f"127.{os.getpid() % 200 + 20}.{int(time.time()) % 250 + 1}.9"
            before = stats(d)
            for port, answered in ((862, True), (863, True), (7, False), (123, False),
                                   (1023, False), (5353, False)):
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                    s.bind((src, port))
                    s.sendto(request(port), dst)
                    if answered:
                        s.settimeout(5)
                        self.assertEqual(parse_reply(s.recv(100))["sseq"], port)
                    else:
                        self.assertTrue(recv_nothing(s), f"reply to source port {port}")
            dd = delta(stats(d), before)
            self.assertEqual(dd["drop_port"], 4)
            self.assertEqual(dd["reflected"], 2)
            self.assertEqual(d.stop(), 0)

    @unittest.skipUnless(is_root(), "forging sources needs a raw socket (root)")
    def test_broadcast_and_multicast_sources(self):
        sys.path.insert(0, os.path.dirname(__file__))
        from test_udp import forged_udp4, raw_sender
        with Daemon(stamp_config({"allow": "0.0.0.0/0"})).start() as d:
            host, port = d.addr("stamp", socket.AF_INET)
            tx = raw_sender()
            try:
                before = stats(d)
                srcs = ("255.255.255.255", "224.0.0.1", "240.0.0.1")
                for src in srcs:
                    tx.sendto(forged_udp4(src, 40000, host, port, request(1)), (host, 0))
                dd = delta(wait_received(d, before["received"] + len(srcs)), before)
                self.assertEqual(dd["drop_addr"], len(srcs))
                self.assertEqual(dd["reflected"] + dd["drop_send"], 0)
            finally:
                tx.close()
            self.assertEqual(d.stop(), 0)

    def test_disabled_by_default(self):
        with Daemon(base_config(tcp=None, udp={"listen": "127.0.0.1:0"})).start() as d:
            self.assertEqual(d.listen_addrs("stamp"), [])
            self.assertEqual(d.wait_event("ready")["stamp"], "false")
            self.assertEqual(d.stop(), 0)


# ---- tshark ----------------------------------------------------------------------------

_MONTHS = {m: i for i, m in enumerate(
    "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split(), 1)}


def tshark_time_ns(s):
    """'Dec  1, 2026 23:04:20.389311119 UTC' -> ns since the epoch."""
    import calendar
    m = re.match(r"(\w+)\s+(\d+), (\d+) (\d+):(\d+):(\d+)\.(\d+) UTC", s)
    mon, day, year, hh, mm, ss, frac = m.groups()
    sec = calendar.timegm((int(year), _MONTHS[mon], int(day), int(hh), int(mm), int(ss)))
    return sec * 10**9 + int(frac[:9].ljust(9, "0"))


FIELDS = ("udp.srcport", "udp.dstport", "twamp.test.seq_number", "twamp.test.timestamp",
          "twamp.test.error_estimate", "twamp.test.receive_timestamp",
          "twamp.test.sender_seq_number", "twamp.test.sender_timestamp",
          "twamp.test.sender_error_estimate", "twamp.test.sender_ttl",
          "twamp.test.error_estimate.s", "twamp.test.error_estimate.z",
          "twamp.test.error_estimate.multiplier", "twamp.test.error_estimate.scale")


class Tshark:
    """A bounded capture (-a duration, -c) decoding PORT as twamp.test."""

    def __init__(self, iface, port, count, duration=20, netns=None):
        cmd = (["ip", "netns", "exec", netns] if netns else []) + [
            "tshark", "-i", iface, "-n", "-l", "-f", f"udp port {port}",
            "-a", f"duration:{duration}", "-c", str(count),
            "-d", f"udp.port=={port},twamp.test", "-T", "fields", "-E", "separator=|"]
        for f in FIELDS:
            cmd += ["-e", f]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        # Wait until it captures (it says so on stderr), bounded.
        deadline = time.monotonic() + 30
        buf = ""
        while "Capturing on" not in buf:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.proc.kill()
                raise AssertionError(f"tshark did not start: {buf}")
            r, _, _ = select.select([self.proc.stderr], [], [], 1)
            if r:
                buf += os.read(self.proc.stderr.fileno(), 4096).decode(errors="replace")
        time.sleep(0.3)

    def rows(self, timeout=40):
        try:
            out, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
        return [dict(zip(FIELDS, line.split("|"))) for line in out.splitlines() if line]

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for f in (self.proc.stdout, self.proc.stderr):
            if f:
                f.close()


def check_decoded(tc, rows, port, sent):
    """Every reply tshark decoded matches what our own sender parsed."""
    replies = [r for r in rows if r["udp.srcport"] == str(port)]
    tc.assertEqual(len(replies), len(sent))
    for row, (r, t1) in zip(replies, sent):
        tc.assertEqual(int(row["twamp.test.seq_number"]), r["seq"])
        tc.assertEqual(int(row["twamp.test.sender_seq_number"]), r["sseq"])
        tc.assertEqual(int(row["twamp.test.sender_ttl"]), r["ttl"])
        tc.assertEqual(int(row["twamp.test.error_estimate"]), r["err"])
        tc.assertEqual(int(row["twamp.test.sender_error_estimate"]), r["serr"])
        # The bit fields come twice: ours, then the sender's estimate.
        def bits(name):
            return row["twamp.test.error_estimate." + name].split(",")
        truth = ("1", "True")
        tc.assertEqual([b in truth for b in bits("s")],
                       [bool(r["err"] & 0x8000), bool(r["serr"] & 0x8000)])
        tc.assertEqual([b in truth for b in bits("z")], [False, bool(r["serr"] & 0x4000)])
        tc.assertEqual([int(b) for b in bits("multiplier")], [r["err"] & 0xff, r["serr"] & 0xff])
        tc.assertEqual([int(b) for b in bits("scale")],
                       [(r["err"] >> 8) & 0x3f, (r["serr"] >> 8) & 0x3f])
        # Timestamps as tshark reads them (truncated to ns) agree with ours
        # to the nanosecond, and T1 is what the sender put in.
        for field, key in (("twamp.test.timestamp", "t3"),
                           ("twamp.test.receive_timestamp", "t2"),
                           ("twamp.test.sender_timestamp", "t1")):
            tc.assertLessEqual(abs(tshark_time_ns(row[field]) - ntp_to_ns(r[key])), 1, field)
        tc.assertLessEqual(abs(tshark_time_ns(row["twamp.test.sender_timestamp"]) - t1), 1)
        tc.assertLessEqual(t1, tshark_time_ns(row["twamp.test.receive_timestamp"]) + 2)


@unittest.skipUnless(is_root() and have("tshark"), "needs root and tshark")
class StampTshark(unittest.TestCase):
    def test_tshark_decodes_replies(self):
        with Daemon(stamp_config({"mode": "stateful"})).start() as d:
            host, port = d.addr("stamp", socket.AF_INET)
            n = 5
            cap = Tshark("lo", port, 2 * n)
            try:
                sent = []
                with sender() as s:
                    for k in range(n):
                        seq = 100 + 2 * k          # every other one "lost"
                        reply, t1, _, _ = exchange(s, (host, port),
                                                   lambda: request(seq, ssid=9, err=0x0102))
                        sent.append((parse_reply(reply), t1))
                rows = cap.rows()
            finally:
                cap.close()
            self.assertEqual([r["seq"] for r, _ in sent], list(range(n)))
            check_decoded(self, rows, port, sent)
            # The requests tshark saw are the ones we sent.
            reqs = [r for r in rows if r["udp.dstport"] == str(port)]
            self.assertEqual([int(r["twamp.test.seq_number"]) for r in reqs],
                             [100 + 2 * k for k in range(n)])
            self.assertEqual(d.stop(), 0)


# ---- router namespace ------------------------------------------------------------------

def netns_reason():
    if not is_root():
        return "needs root"
    if not have("ip"):
        return "needs ip"
    return None


class Router:
    """Sender ns S -- veth -- router ns R (forwarding) -- veth -- reflector ns D.
    Addresses are documentation prefixes that live only in these namespaces."""

    S4, R4S, R4D, D4 = "192.0.2.10", "192.0.2.1", "198.51.100.1", "198.51.100.10"
    S6, R6S, R6D, D6 = "2001:db8:51::10", "2001:db8:51::1", "2001:db8:d::1", "2001:db8:d::10"

    def __init__(self):
        tag = f"{os.getpid()}"
        self.S, self.R, self.D = f"bst-s-{tag}", f"bst-r-{tag}", f"bst-d-{tag}"
        self.made = []

    def run(self, *cmd, ns=None):
        full = (["ip", "netns", "exec", ns] if ns else []) + list(cmd)
        r = subprocess.run(full, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           timeout=30)
        if r.returncode != 0:
            raise RuntimeError(f"{' '.join(full)}: {r.stderr}")
        return r.stdout

    def __enter__(self):
        try:
            for ns in (self.S, self.R, self.D):
                self.run("ip", "netns", "add", ns)
                self.made.append(ns)
                self.run("ip", "link", "set", "lo", "up", ns=ns)
            self.run("ip", "link", "add", "s0", "netns", self.S, "type", "veth",
                     "peer", "name", "rs", "netns", self.R)
            self.run("ip", "link", "add", "d0", "netns", self.D, "type", "veth",
                     "peer", "name", "rd", "netns", self.R)
            for ns, dev, a4, a6 in ((self.S, "s0", self.S4, self.S6),
                                    (self.R, "rs", self.R4S, self.R6S),
                                    (self.R, "rd", self.R4D, self.R6D),
                                    (self.D, "d0", self.D4, self.D6)):
                plen4 = "24"
                self.run("ip", "addr", "add", f"{a4}/{plen4}", "dev", dev, ns=ns)
                self.run("ip", "-6", "addr", "add", f"{a6}/64", "dev", dev, "nodad", ns=ns)
                self.run("ip", "link", "set", dev, "up", ns=ns)
            # Forwarding inside R only (its own sysctls, not the host's).
            self.run("sysctl", "-qw", "net.ipv4.ip_forward=1", ns=self.R)
            self.run("sysctl", "-qw", "net.ipv6.conf.all.forwarding=1", ns=self.R)
            self.run("ip", "route", "add", "default", "via", self.R4S, ns=self.S)
            self.run("ip", "-6", "route", "add", "default", "via", self.R6S, ns=self.S)
            self.run("ip", "route", "add", "default", "via", self.R4D, ns=self.D)
            self.run("ip", "-6", "route", "add", "default", "via", self.R6D, ns=self.D)
        except Exception:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc):
        for ns in reversed(self.made):
            subprocess.run(["ip", "netns", "del", ns], stderr=subprocess.DEVNULL, timeout=30)
        self.made = []


SENDER_SNIPPET = r"""
import json, select, socket, struct, sys, time
sys.path.insert(0, sys.argv[1])
import test_stamp as t
fam = socket.AF_INET6 if ':' in sys.argv[2] else socket.AF_INET
dst = (sys.argv[2], int(sys.argv[3]))
out = []
with t.sender(fam) as s:
    for n in range(3):
        reply, t1, t4, rttl = t.exchange(s, dst, lambda: t.request(n))
        r = t.parse_reply(reply) if reply else None
        out.append(dict(ttl=r and r["ttl"], sseq=r and r["sseq"], rttl=rttl,
                        t1=t1, t2=r and t.ntp_to_ns(r["t2"]), t3=r and t.ntp_to_ns(r["t3"]),
                        t4=t4))
print(json.dumps(out))
"""


@unittest.skipIf(netns_reason(), netns_reason() or "")
class StampRouter(unittest.TestCase):
    def test_received_ttl_across_a_router(self):
        import json
        with Router() as top:
            cfg = stamp_config({"listen": f"{top.D4}:0, [{top.D6}]:0",
                                "allow": "192.0.2.0/24, 2001:db8:51::/64"})
            with Daemon(cfg, prefix=["ip", "netns", "exec", top.D]).start() as d:
                for family, host in ((socket.AF_INET, top.D4), (socket.AF_INET6, top.D6)):
                    _, port = d.addr("stamp", family)
                    out = top.run(sys.executable, "-c", SENDER_SNIPPET,
                                  os.path.dirname(os.path.abspath(__file__)), host, str(port),
                                  ns=top.S)
                    res = json.loads(out)
                    for n, r in enumerate(res):
                        self.assertEqual(r["sseq"], n, f"{host}: no reply")
                        self.assertEqual(r["ttl"], 63, f"{host}: sent with 64, one hop")
                        self.assertEqual(r["rttl"], 254, f"{host}: 255, minus the router")
                        self.assertLessEqual(r["t1"], r["t2"] + 2)
                        self.assertLessEqual(r["t2"], r["t3"])
                        self.assertLessEqual(r["t3"], r["t4"] + 2)
                self.assertEqual(d.stop(), 0)




class StampReload(unittest.TestCase):
    def test_enable_switch_mode_disable(self):
        off = stamp_config({"enabled": "no", "listen": "127.0.0.1:0"},
                           udp={"listen": "127.0.0.1:0", "rate_limit": 0})
        with Daemon(off).start() as d:
            self.assertEqual(d.listen_addrs("stamp"), [])
            d.write_config(stamp_config({"listen": "127.0.0.1:0"},
                                        udp={"listen": "127.0.0.1:0", "rate_limit": 0}))
            self.assertEqual(d.reload()["event"], "reloaded")
            dst = d.addr("stamp", socket.AF_INET)
            with sender() as s:
                reply, *_ = exchange(s, dst, lambda: request(500))
                self.assertEqual(parse_reply(reply)["seq"], 500, "stateless")
                # Same listen entry, new mode: the socket stays, numbering
                # becomes the session's own.
                d.write_config(stamp_config({"listen": "127.0.0.1:0", "mode": "stateful"},
                                            udp={"listen": "127.0.0.1:0", "rate_limit": 0}))
                self.assertEqual(d.reload()["event"], "reloaded")
                self.assertEqual(d.listen_addrs("stamp"), [dst], "socket kept")
                for n in range(3):
                    reply, *_ = exchange(s, dst, lambda: request(600 + n))
                    self.assertEqual(parse_reply(reply)["seq"], n)
                # A bad [stamp] value leaves everything as it was.
                d.write_config(stamp_config({"listen": "127.0.0.1:0", "mode": "bogus"}))
                self.assertEqual(d.reload()["event"], "reload_failed")
                reply, *_ = exchange(s, dst, lambda: request(700))
                self.assertEqual(parse_reply(reply)["seq"], 3)
                # Disabled: the socket closes.
                d.write_config(off)
                self.assertEqual(d.reload()["event"], "reloaded")
                d.wait_event("listen_close", service="stamp")
                s.sendto(request(1), dst)
                self.assertTrue(recv_nothing(s))
            self.assertEqual(d.stop(), 0)


# ---- socket activation -----------------------------------------------------------------

def free_udp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@unittest.skipUnless(have("systemd-socket-activate"), "systemd-socket-activate not installed")
class StampSocketActivation(unittest.TestCase):
    """Two datagram sockets from systemd-socket-activate, named "stamp" and
    "echo" as beacond-stamp.socket and beacond.socket name theirs; neither
    address is in the config, so each is served by name alone."""

    def run_activated(self, stamp_enabled):
        p_stamp, p_echo = free_udp_port(), free_udp_port()
        prefix = ["systemd-socket-activate", "--datagram", "-l", f"127.0.0.1:{p_stamp}",
                  "-l", f"127.0.0.1:{p_echo}", "--fdname=stamp:echo", "--"]
        cfg = stamp_config({"enabled": "yes" if stamp_enabled else "no",
                            "listen": "127.0.0.1:0"},
                           udp={"listen": "127.0.0.1:0", "rate_limit": 0})
        d = Daemon(cfg, prefix=prefix)
        d.start(wait_ready=False)
        # socket-activate starts beacond on the first datagram, which then
        # waits in the passed socket's queue.
        s = sender()
        self.addCleanup(s.close)
        deadline = time.monotonic() + 15
        while True:
            # Until socket-activate has bound, a datagram goes nowhere.
            s.sendto(request(1), ("127.0.0.1", p_stamp))
            try:
                d.wait_event("ready", timeout=0.3)
                break
            except AssertionError:
                if time.monotonic() > deadline:
                    d.close()
                    raise
        return d, s, p_stamp, p_echo, deadline

    def test_named_socket_goes_to_the_reflector(self):
        d, s, p_stamp, p_echo, _ = self.run_activated(True)
        with d:
            ev = d.wait_event("listen", service="stamp", addr=f"127.0.0.1:{p_stamp}")
            self.assertEqual(ev["inherited"], "yes")
            self.assertEqual(d.events("listen", service="udp", addr=f"127.0.0.1:{p_stamp}"), [])
            # The datagram that started beacond is reflected, as STAMP.
            self.assertFalse(recv_nothing(s, 5))
            r = parse_reply(s.recv(100))
            self.assertEqual(r["sseq"], 1)
            self.assertNotEqual(r["t2"], 0)
            while not recv_nothing(s):
                s.recv(100)     # the other tries that started it
            # The unnamed-for-STAMP socket is the echo's.
            ev = d.wait_event("listen", service="udp", addr=f"127.0.0.1:{p_echo}")
            s.sendto(b"plain echo", ("127.0.0.1", p_echo))
            self.assertFalse(recv_nothing(s, 5))
            self.assertEqual(s.recv(100), b"plain echo")
            self.assertEqual(d.stop(), 0)

    def test_named_socket_unused_while_disabled(self):
        d, s, p_stamp, p_echo, _ = self.run_activated(False)
        with d:
            ev = d.wait_event("inherited_unused")
            self.assertEqual(ev["name"], "stamp")
            self.assertEqual(d.events("listen", service="udp", addr=f"127.0.0.1:{p_stamp}"), [],
                             "never echoed by the UDP service")
            s.sendto(request(2), ("127.0.0.1", p_stamp))
            self.assertTrue(recv_nothing(s))
            self.assertEqual(d.stop(), 0)


if __name__ == "__main__":
    prog = unittest.main(module="__main__", verbosity=2, exit=False)
    res = prog.result
    if res.testsRun and len(res.skipped) == res.testsRun:
        sys.exit(77)
    sys.exit(0 if res.wasSuccessful() else 1)
