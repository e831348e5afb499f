"""The ICMP pinger against impaired links in network namespaces (root only).

Each test builds a fresh probe/target namespace pair (see netns.py), runs
beacond in the probe namespace and impairs the target side with nftables
or the delaying responder tests/tools/icmp_delay:

  * 20 ms of delay: the average RTT beacond reports is 20 ms +- 1 ms,
    IPv4 and IPv6, over raw and over datagram ICMP sockets;
  * 20 % random loss of echo requests over 500+ probes per family: the
    loss beacond reports is 20 % +- 5 points;
  * a target blackholed mid-run is reported down within
    down_after * interval + timeout + 100 ms and up again within
    up_after * interval + 100 ms of the change (timed with the monotonic
    clock as the log lines arrive);
  * a route that ends in an `unreachable` route one hop away gives a real
    ICMP destination-unreachable, logged as event=icmp_error with a reason;
  * `source` and `interface` change what the kernel sends, as counted by
    nftables rules in the target namespace;
  * `dont_fragment`: requests carry DF by default and one too big for the
    link fails with EMSGSIZE; with `dont_fragment = no` they carry no DF
    and big ones are fragmented and answered.
"""
import os
import signal
import time
import unittest

import harness
import netns
from netns import SVC4, SVC6

SKIP = netns.available()
CLOCKSTEP = os.environ.get("CLOCKSTEP") or os.path.join(
    os.environ.get("BEACOND_BUILD_ROOT", os.path.join(harness.SOURCE_ROOT, "build")),
    "tests", "libclockstep.so")


def config(icmp, targets, level="info"):
    return harness.base_config(icmp=icmp, targets=targets,
                               daemon={"log_level": level})


def history(d, since, target):
    """The reply/timeout/state lines of one target since a line index, with
    their arrival times: the evidence when a timing assertion fails."""
    out = []
    for line, at in zip(d.lines[since:], d.times[since:]):
        ev = harness.parse_logfmt(line)
        if ev.get("target") == target and ev.get("event") in ("reply", "timeout", "state", "late"):
            out.append(f"{at:.3f} {ev.get('event')} seq={ev.get('seq', '')} "
                       f"{ev.get('from', '')}{'->' if 'to' in ev else ''}{ev.get('to', '')}")
    return "\n".join(out)


def mean(xs):
    return sum(xs) / len(xs)


def summaries(d, names, timeout=10):
    """Ask for summaries now (SIGUSR1) and return {target: summary}."""
    since = len(d.lines)
    d.signal(signal.SIGUSR1)
    return {n: d.wait_event("summary", since=since, timeout=timeout, target=n)
            for n in names}


@unittest.skipIf(SKIP, SKIP)
class DelayTest(unittest.TestCase):
    DELAY_MS = 20
    PROBES = 60

    def _run(self, dgram, env=None):
        kind = "dgram" if dgram else "raw"
        with netns.Topology(dgram=dgram) as t:
            responder = t.start_delay(self.DELAY_MS, max_seconds=60)
            d = t.daemon(config(
                {"interval": "50ms", "timeout": "1s", "log_replies": "yes",
                 "summary_interval": "0", "socket": kind},
                {"d4": {"host": SVC4}, "d6": {"host": SVC6}}), env=env)
            with d:
                d.start()
                for fam in ("4", "6"):
                    ev = d.wait_event("socket", family=fam)
                    self.assertEqual(ev.get("kind"), kind, ev)
                for name in ("d4", "d6"):
                    d.wait_event("reply", target=name, count=self.PROBES, timeout=30)
                since = len(d.lines)
                d.signal(signal.SIGUSR1)
                sums, cut = {}, {}
                for name in ("d4", "d6"):
                    sums[name], _, cut[name] = d.wait_event_at("summary", since=since,
                                                               timeout=10, target=name)
                d.stop()
            counters, late = t.stop_delay(responder)
            for name, fam in (("d4", 4), ("d6", 6)):
                # The replies the summary covers: those logged before it.
                reps = [ev for ev in map(harness.parse_logfmt, d.lines[:cut[name]])
                        if ev.get("event") == "reply" and ev.get("target") == name]
                rtts = [float(e["rtt_ms"]) for e in reps]
                avg = mean(rtts)
                # The delay each probe really met: DELAY plus however late
                # the responder's thread woke (normally < 0.2 ms; on a loaded
                # machine now and then several ms, which is not the pinger's
                # error).  The wire itself adds ~0.05 ms.
                applied = [self.DELAY_MS + late[(fam, int(e["seq"]))] for e in reps]
                err = [r - a for r, a in zip(rtts, applied)]
                msg = (f"{kind} {name}: {len(rtts)} replies, avg {avg:.3f} ms, delay applied "
                       f"avg {mean(applied):.3f} ms, avg error {mean(err):+.3f} ms, "
                       f"max |error| {max(abs(x) for x in err):.3f} ms; responder: {counters}")
                print(msg)
                self.assertGreaterEqual(len(rtts), self.PROBES)
                self.assertLessEqual(abs(mean(err)), 1.0, msg)
                # Every RTT is at least the delay applied: a smaller one would
                # mean the daemon's clock runs ahead of the wire.
                self.assertGreaterEqual(min(err), -0.05, msg)
                s = sums[name]
                self.assertEqual(s.get("socket"), kind, s)
                self.assertEqual(int(s["total_received"]), len(rtts), s)
                self.assertLessEqual(abs(float(s["total_rtt_avg_ms"]) - avg), 0.0015, s)
                self.assertGreaterEqual(float(s["total_rtt_min_ms"]), self.DELAY_MS - 0.05, s)
                # And the figure the issue names, when the responder kept time.
                if max(late.get((fam, int(e["seq"])), 0) for e in reps) < 0.5:
                    self.assertLessEqual(abs(avg - self.DELAY_MS), 1.0, msg)

    def test_delay_raw(self):
        self._run(dgram=False)

    @unittest.skipUnless(os.path.exists(CLOCKSTEP), "tests/tools/clockstep not built")
    def test_delay_clock_read_stall(self):
        """The same, with the daemon's thread stalled 3 ms between its reads
        of CLOCK_MONOTONIC and CLOCK_REALTIME every other time (the clockstep
        shim's CLOCKSTEP_STALL_US), as when a busy host stops the vCPU
        there.  Kernel stamps are converted with that pair of reads: a
        skewed pair made RTTs 1.5 ms short in a test run under host load.
        Every RTT must still be at least the delay applied, and the mean
        within 1 ms."""
        asan = os.environ.get("ASAN_OPTIONS", "")
        self._run(dgram=True, env={
            "LD_PRELOAD": CLOCKSTEP, "CLOCKSTEP_STALL_US": "3000",
            "ASAN_OPTIONS": (asan + ":" if asan else "") + "verify_asan_link_order=0"})

    def test_delay_dgram(self):
        self._run(dgram=True)


@unittest.skipIf(SKIP, SKIP)
class LossTest(unittest.TestCase):
    PCT = 20
    PROBES = 500

    def test_random_loss(self):
        with netns.Topology() as t:
            t.add_counter("req4", f"ip daddr {SVC4} icmp type echo-request")
            t.add_counter("req6", f"ip6 daddr {SVC6} icmpv6 type echo-request")
            t.set_loss(self.PCT)
            d = t.daemon(config(
                {"interval": "10ms", "timeout": "200ms", "summary_interval": "0",
                 "down_after": "1000"},
                {"l4": {"host": SVC4}, "l6": {"host": SVC6}}))
            with d:
                d.start()
                deadline = time.monotonic() + 40
                while min(t.counter("req4"), t.counter("req6")) < self.PROBES + 20:
                    self.assertLess(time.monotonic(), deadline, "probes are not arriving")
                    time.sleep(0.2)
                # Let every probe sent so far reach its timeout first.
                time.sleep(0.3)
                before = {"l4": t.counter("loss4"), "l6": t.counter("loss6")}
                sums = summaries(d, ("l4", "l6"))
                after = {"l4": t.counter("loss4"), "l6": t.counter("loss6")}
                d.stop()
            for name, s in sums.items():
                sent, lost = int(s["total_sent"]), int(s["total_lost"])
                received = int(s["total_received"])
                pct = float(s["total_loss_pct"])
                msg = (f"{name}: sent={sent} received={received} lost={lost} loss_pct={pct} "
                       f"inflight={s.get('inflight')}; nft dropped {before[name]} before the "
                       f"summary, {after[name]} after")
                print(msg)
                self.assertGreaterEqual(sent, self.PROBES, msg)
                self.assertLessEqual(abs(pct - self.PCT), 5.0, msg)
                self.assertEqual(received + lost + int(s["inflight"]), sent, msg)
                self.assertEqual(int(s["total_duplicates"]), 0, msg)
                # What was lost is exactly what nft dropped: every drop counted
                # before the summary was asked for is reported lost unless it is
                # still in flight, and nothing else is.
                self.assertLessEqual(before[name] - int(s["inflight"]), lost, msg)
                self.assertLessEqual(lost, after[name], msg)


@unittest.skipIf(SKIP, SKIP)
class BlackholeTest(unittest.TestCase):
    INTERVAL, TIMEOUT, DOWN_AFTER, UP_AFTER = 0.2, 0.3, 3, 2

    def test_down_then_up(self):
        down_bound = self.DOWN_AFTER * self.INTERVAL + self.TIMEOUT + 0.1
        up_bound = self.UP_AFTER * self.INTERVAL + 0.1
        names = ("b4", "b6")
        with netns.Topology() as t:
            # Replies and timeouts (debug) are logged so a failure shows why.
            d = t.daemon(config(
                {"interval": "200ms", "timeout": "300ms", "down_after": "3",
                 "up_after": "2", "summary_interval": "0", "log_replies": "yes"},
                {"b4": {"host": SVC4}, "b6": {"host": SVC6}}, level="debug"))
            with d:
                d.start()
                for n in names:
                    d.wait_event_at("state", target=n, to="up", timeout=10)
                # T stops answering (echo_ignore_all, flipped in microseconds by
                # a helper in T) rather than an nft rule: nft itself takes
                # 5-150 ms here, which would blur when the outage began.
                sw = t.echo_switch()
                mon = netns.StallMonitor()
                self.addCleanup(mon.stop)
                for rnd in range(3):
                    # Start at a different phase of the probe schedule each round.
                    time.sleep(0.35 + 0.07 * rnd)
                    since = len(d.lines)
                    t0, t1 = sw.on()
                    for n in names:
                        ev, at, _ = d.wait_event_at("state", since=since, target=n, to="down",
                                                    timeout=10)
                        took = at - t0
                        print(f"round {rnd} {n}: down after {took * 1000:.0f} ms "
                              f"(bound {down_bound * 1000:.0f}, switch took "
                              f"{(t1 - t0) * 1e6:.0f} us)")
                        self.assertEqual(ev.get("from"), "up", ev)
                        self.assertLessEqual(took, down_bound,
                                             f"switched at {t0:.3f}; this test process woke up to "
                                             f"{mon.worst(t0, at) * 1000:.0f} ms late meanwhile\n"
                                             + history(d, since - 20, n))
                    time.sleep(0.5)
                    since = len(d.lines)
                    t2, t3 = sw.off()
                    for n in names:
                        ev, at, _ = d.wait_event_at("state", since=since, target=n, to="up",
                                                    timeout=10)
                        took = at - t2
                        print(f"round {rnd} {n}: up after {took * 1000:.0f} ms "
                              f"(bound {up_bound * 1000:.0f}, switch took "
                              f"{(t3 - t2) * 1e6:.0f} us)")
                        self.assertLessEqual(took, up_bound,
                                             f"switched at {t2:.3f}; this test process woke up to "
                                             f"{mon.worst(t2, at) * 1000:.0f} ms late meanwhile\n"
                                             + history(d, since - 20, n))
                # One line per transition: up (start), then down/up twice.
                for n in names:
                    states = [(e.get("from"), e.get("to")) for e in d.events("state", target=n)]
                    self.assertEqual(states[1:], [("up", "down"), ("down", "up")] * 3, states)
                d.stop()


@unittest.skipIf(SKIP, SKIP)
class UnreachableTest(unittest.TestCase):
    # What T's routes make the kernel send back (RFC 792 / RFC 4443 codes).
    EXPECT = {
        "u4": (netns.UNREACH4, "host-unreachable", netns.T_A4),      # type 3 code 1
        "u6": (netns.UNREACH6, "no-route", netns.T_A6),              # type 1 code 0
        "p4": (netns.PROHIB4, "admin-prohibited", netns.T_A4),      # type 3 code 13
        "p6": (netns.PROHIB6, "admin-prohibited", netns.T_A6),      # type 1 code 1
    }

    def test_icmp_error_reason(self):
        with netns.Topology() as t:
            targets = {n: {"host": h} for n, (h, _, _) in self.EXPECT.items()}
            targets["ok4"] = {"host": SVC4}
            d = t.daemon(config(
                {"interval": "200ms", "timeout": "500ms", "summary_interval": "0"},
                targets))
            with d:
                d.start()
                for n, (_host, reason, router) in self.EXPECT.items():
                    ev = d.wait_event("icmp_error", target=n, timeout=10)
                    print(f"{n}: {ev}")
                    self.assertEqual(ev.get("reason"), reason, ev)
                    self.assertEqual(ev.get("from"), router, ev)
                    d.wait_event("state", target=n, to="down", timeout=10)
                # A reachable target next to them is unaffected.
                d.wait_event("state", target="ok4", to="up", timeout=10)
                self.assertEqual(d.events("icmp_error", target="ok4"), [])
                self.assertEqual(d.events("reply", target="u4"), [])
                d.stop()


    def test_local_unreachable_send_error(self):
        """A send the kernel refuses (unreachable route in the probe's own
        table) is a failed probe, logged, never fatal."""
        with netns.Topology() as t:
            d = t.daemon(config(
                {"interval": "100ms", "timeout": "300ms", "summary_interval": "0"},
                {"lu4": {"host": netns.LOCAL_UNREACH4}, "lu6": {"host": netns.LOCAL_UNREACH6},
                 "ok4": {"host": SVC4}}))
            with d:
                d.start()
                for n in ("lu4", "lu6"):
                    ev = d.wait_event("send_error", target=n, timeout=10)
                    print(f"{n}: {ev}")
                    self.assertRegex(ev.get("error", ""), r"(?i)unreachable|no route", ev)
                    d.wait_event("state", target=n, to="down", timeout=10)
                d.wait_event("state", target="ok4", to="up", timeout=10)
                sums = summaries(d, ("lu4", "lu6", "ok4"))
                self.assertTrue(d.alive())
                self.assertEqual(d.stop(), 0)
            for n in ("lu4", "lu6"):
                s = sums[n]
                self.assertEqual(int(s["total_received"]), 0, s)
                self.assertGreater(int(s["total_errors"]) + int(s["total_lost"]), 0, s)
            self.assertEqual(int(sums["ok4"]["total_lost"]), 0, sums["ok4"])


@unittest.skipIf(SKIP, SKIP)
class SourceInterfaceTest(unittest.TestCase):
    def test_source(self):
        with netns.Topology() as t:
            t.add_counter("src4_11", f"ip saddr {netns.P_A4_2} ip daddr {SVC4} icmp type echo-request")
            t.add_counter("src4_1", f"ip saddr {netns.P_A4} ip daddr {SVC4} icmp type echo-request")
            t.add_counter("src6_11", f"ip6 saddr {netns.P_A6_2} ip6 daddr {SVC6} icmpv6 type echo-request")
            t.add_counter("src6_1", f"ip6 saddr {netns.P_A6} ip6 daddr {SVC6} icmpv6 type echo-request")
            d = t.daemon(config(
                {"interval": "100ms", "timeout": "500ms", "summary_interval": "0",
                 "log_replies": "yes"},
                {"s4": {"host": SVC4, "source": netns.P_A4_2},
                 "s6": {"host": SVC6, "source": netns.P_A6_2}}))
            with d:
                d.start()
                for n in ("s4", "s6"):
                    d.wait_event("reply", target=n, count=5, timeout=10)
                d.stop()
            got = {c: t.counter(c) for c in ("src4_11", "src4_1", "src6_11", "src6_1")}
            print(got)
            self.assertGreaterEqual(got["src4_11"], 5, got)
            self.assertGreaterEqual(got["src6_11"], 5, got)
            self.assertEqual(got["src4_1"], 0, got)
            self.assertEqual(got["src6_1"], 0, got)

    def test_interface(self):
        with netns.Topology() as t:
            for fam, proto, daddr in (("4", "icmp", f"ip daddr {SVC4}"),
                                      ("6", "icmpv6", f"ip6 daddr {SVC6}")):
                for dev in ("ta", "tb"):
                    t.add_counter(f"{dev}{fam}",
                                  f"iifname \"{dev}\" {daddr} {proto} type echo-request")
            # Unbound, the kernel prefers va (metric 10): the binding is what
            # moves the probes to vb.
            for a in (SVC4, SVC6):
                t.ns(t.P, "ping", "-c", "1", "-W", "2", a)
            base = {c: t.counter(c) for c in ("ta4", "tb4", "ta6", "tb6")}
            self.assertEqual(base, {"ta4": 1, "tb4": 0, "ta6": 1, "tb6": 0})
            d = t.daemon(config(
                {"interval": "100ms", "timeout": "500ms", "summary_interval": "0",
                 "log_replies": "yes"},
                {"i4": {"host": SVC4, "interface": "vb"},
                 "i6": {"host": SVC6, "interface": "vb"}}))
            with d:
                d.start()
                for n in ("i4", "i6"):
                    d.wait_event("reply", target=n, count=5, timeout=10)
                d.stop()
            got = {c: t.counter(c) - base[c] for c in base}
            print(got)
            self.assertGreaterEqual(got["tb4"], 5, got)
            self.assertGreaterEqual(got["tb6"], 5, got)
            self.assertEqual(got["ta4"], 0, got)
            self.assertEqual(got["ta6"], 0, got)


@unittest.skipIf(SKIP, SKIP)
class DontFragmentTest(unittest.TestCase):
    def test_dont_fragment_raw(self):
        self._run(dgram=False)

    def test_dont_fragment_dgram(self):
        self._run(dgram=True)

    def _run(self, dgram):
        """On the wire (nft counters in T see requests after reassembly,
        told apart here by their IP length) and in what beacond reports,
        with payloads bigger than the veth's 1500-byte MTU."""
        with netns.Topology(dgram=dgram) as t:
            for length in (84, 128):
                base = f"ip daddr {SVC4} icmp type echo-request ip length {length}"
                t.add_counter(f"df{length}", base + " ip frag-off & 0x4000 != 0")
                t.add_counter(f"nodf{length}", base + " ip frag-off & 0x4000 == 0")
            d = t.daemon(config(
                {"interval": "100ms", "timeout": "500ms", "summary_interval": "0",
                 "log_replies": "yes"},
                {"d4": {"host": SVC4},
                 "n4": {"host": SVC4, "payload_size": "100", "dont_fragment": "no"},
                 "b4": {"host": SVC4, "payload_size": "3000"},
                 "b6": {"host": SVC6, "payload_size": "3000"},
                 "f4": {"host": SVC4, "payload_size": "3000", "dont_fragment": "no"},
                 "f6": {"host": SVC6, "payload_size": "3000", "dont_fragment": "no"}}))
            with d:
                d.start()
                for n in ("d4", "n4", "f4", "f6"):
                    d.wait_event("reply", target=n, count=5, timeout=10)
                errors = {n: d.wait_event("send_error", target=n, timeout=10)
                          for n in ("b4", "b6")}
                # One socket per family has DF off, and says so.
                socks = d.events("socket")
                self.assertEqual(sorted(e["family"] for e in socks
                                        if e.get("dont_fragment") == "false"), ["4", "6"], socks)
                since = len(d.lines)
                sums = summaries(d, ("b4", "b6", "f4", "f6"))
                # A failed send is a send error, nothing else: the kernel's
                # local copy of it on a datagram socket's error queue is not
                # input to ignore.  (Raw IPv6 sockets do see each other's
                # replies, ignored by ident, so only decode is checked.)
                st = d.wait_event("icmp_stats", since=since, why="signal", timeout=10)
                self.assertEqual(st.get("ignored_decode"), "0", st)
                if dgram:
                    self.assertEqual(st.get("ignored"), "0", st)
                self.assertEqual(d.stop(), 0)
            got = {c: t.counter(c) for c in ("df84", "nodf84", "df128", "nodf128")}
            print(got, errors)
            self.assertGreaterEqual(got["df84"], 5, got)
            self.assertEqual(got["nodf84"], 0, got)
            self.assertGreaterEqual(got["nodf128"], 5, got)
            self.assertEqual(got["df128"], 0, got)
            for n in ("b4", "b6"):
                self.assertRegex(errors[n].get("error", ""), r"(?i)message too long", errors[n])
                self.assertEqual(d.events("reply", target=n), [])
                self.assertEqual(int(sums[n]["total_received"]), 0, sums[n])
            for n in ("f4", "f6"):
                self.assertEqual(d.events("send_error", target=n), [])
                self.assertEqual(int(sums[n]["total_lost"]), 0, sums[n])


if __name__ == "__main__":
    harness.main()
