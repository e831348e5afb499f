"""The latency history: rounds, graphs, pages and persistence.

  * HistoryNetns (root, network namespaces): beacond pings a target in
    another namespace through phases of known delay and loss (the delaying
    responder tests/tools/icmp_delay, nftables drops that record the
    sequence number of every request they drop):
        10 ms clean -> 30 ms with 20 % loss -> clean -> blackholed
    in rounds of 2 s.  `beaconctl history -j` must give, round by round,
    sent and lost equal to the requests the daemon resolved in that round
    (its own reply/timeout lines) and the set of lost requests equal to
    the set nftables dropped; the median of every round inside a phase
    within 1 ms of the delay applied; the SVG graph well-formed (xmllint
    and Python's XML parser), each round's median segment in the loss
    colour its loss calls for, its outer smoke band spanning the delay.
  * HistoryFiles (ICMP to 127.0.0.1: root, or a ping_group_range that
    allows us): SIGTERM then start keeps every round; kill -9 then start
    keeps every round older than the last save and the daemon logs what
    it loaded; a truncated, corrupt or foreign file is logged and set
    aside (renamed) and the daemon runs on with a fresh history; a reload
    keeps the history.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request
import xml.etree.ElementTree as ET

import harness
import netns

BUILD = os.environ.get("BEACOND_BUILD_ROOT", os.path.join(harness.SOURCE_ROOT, "build"))
BEACONCTL = os.environ.get("BEACONCTL") or os.path.join(BUILD, "beaconctl")
SVG = "{http://www.w3.org/2000/svg}"

# SmokePing's loss colours as the README documents them (percent bounds).
LOSS_COLOURS = [(0, "#26ff00"), (5, "#00b8ff"), (10, "#0059ff"), (15, "#5e00ff"),
                (25, "#7e00ff"), (50, "#dd00ff"), (75, "#ff8000")]


def loss_colour(sent, lost):
    if lost == 0:
        return "#26ff00"
    if lost >= sent:
        return "#a00000"
    for bound, colour in LOSS_COLOURS[1:]:
        if lost * 100 <= bound * sent:
            return colour
    return "#ff0000"


def ctl(sock, *args, check=True):
    r = subprocess.run([BEACONCTL, "-s", sock] + list(args), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=20)
    if check and r.returncode != 0:
        raise AssertionError(f"beaconctl {' '.join(args)}: {r.returncode} {r.stderr!r}")
    return r


def history(sock, name, *extra):
    return json.loads(ctl(sock, "history", name, "-j", *extra).stdout)


def rounds_by_start(h):
    return {r["start"]: r for r in h["rounds"]}


def web_port(d):
    return harness.split_addr(d.wait_event("listen", service="web")["addr"])[1]


def well_formed(test, data, what):
    if harness.have("xmllint"):
        r = subprocess.run(["xmllint", "--noout", "-"], input=data, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=30)
        test.assertEqual(r.returncode, 0, f"{what}: {r.stderr.decode()[:2000]}")
    return ET.fromstring(data)


class HistoryNetns(unittest.TestCase):
    STEP = 2

    @unittest.skipIf(netns.available(), netns.available() or "")
    def test_rounds_graph_follow_delay_and_loss(self):
        with netns.Topology() as t:
            sock = os.path.join(tempfile.mkdtemp(prefix="bcn-hist-"), "ctl.sock")
            self.addCleanup(shutil.rmtree, os.path.dirname(sock), True)
            cfg = harness.base_config(
                daemon={"log_level": "debug", "control_socket": sock,
                        "state_directory": os.path.dirname(sock), "save_interval": 0},
                icmp={"interval": "100ms", "timeout": "500ms", "history_step": f"{self.STEP}s",
                      "log_replies": "yes", "summary_interval": 0},
                targets={"gw": {"host": netns.T_A4}},
                extra="\n[web]\nlisten = 127.0.0.1:0\n")
            t.nft("add set inet bcn drop4 { typeof icmp sequence; flags dynamic; }\n")
            # The responder first: no request may go unanswered before it runs.
            resp = t.start_delay(10, max_seconds=120)
            d = t.daemon(cfg)
            d.start()
            port = web_port(d)
            phases = []   # (name, delay_ms or None, lost?, t_begin, t_end)

            def phase(name, delay, seconds):
                t0 = time.time()
                time.sleep(seconds)
                phases.append((name, delay, t0, time.time()))

            phase("clean10", 10, 3 * self.STEP + 0.5)
            # Requests the old responder holds when it stops are lost too.
            swap0 = time.time()
            t.stop_delay(resp)
            resp = t.start_delay(30, max_seconds=120)
            swap1 = time.time()
            positions = ", ".join(str(i) for i in range(0, 100, 5)[:20])   # 20 of every 100
            t.nft("flush chain inet bcn impair\n"
                  "add rule inet bcn impair icmp type echo-request numgen inc mod 100 "
                  f"{{ {positions} }} add @drop4 {{ icmp sequence }} drop\n")
            phase("loss30", 30, 4 * self.STEP + 0.5)
            t.clear()
            phase("clean30", 30, 3 * self.STEP + 0.5)
            t.nft("add rule inet bcn impair icmp type echo-request add @drop4 { icmp sequence } drop\n")
            phase("blackhole", None, 3 * self.STEP + 0.5)
            t.clear()
            time.sleep(self.STEP + 1)
            t.stop_delay(resp)

            h = history(sock, "gw")
            dropped = set()
            out = t.ns(t.T, "nft", "-j", "list", "set", "inet", "bcn", "drop4").stdout
            for item in json.loads(out)["nftables"]:
                for e in item.get("set", {}).get("elem", []):
                    dropped.add(e if isinstance(e, int) else e["elem"]["val"])

            # Each resolved request, by the round its outcome fell in.
            per_round = {}
            lost_seqs, swap_lost = set(), set()
            for ev in d.events():
                if ev.get("target") != "gw" or ev.get("event") not in ("reply", "timeout"):
                    continue
                start = int(harness.log_time(ev)) // self.STEP * self.STEP
                r = per_round.setdefault(start, [0, 0])
                r[0] += 1
                if ev["event"] == "timeout":
                    r[1] += 1
                    at = harness.log_time(ev)
                    if swap0 <= at <= swap1 + 0.5 + 0.2:
                        swap_lost.add(int(ev["seq"]))
                    else:
                        lost_seqs.add(int(ev["seq"]))
            got = rounds_by_start(h)
            self.assertEqual(h["step_s"], self.STEP)
            self.assertGreater(len(got), 10, h)
            self.assertGreater(len(dropped), 20, "nft dropped something")
            self.assertEqual(lost_seqs, dropped - swap_lost,
                             "the requests lost are those nft dropped")
            self.assertLess(len(swap_lost), 5, "the responder swap loses what it held")
            for start, r in got.items():
                if start not in per_round:
                    continue
                # A round the log saw whole: skip the first and the last.
                if start == min(per_round) or start >= max(per_round):
                    continue
                self.assertEqual([r["sent"], r["lost"]], per_round[start],
                                 f"round {start}: {r}")

            def inside(start, ph):
                return ph[2] + 1.0 <= start and start + self.STEP <= ph[3] - 0.1

            checked = {}
            for start, r in got.items():
                for ph in phases:
                    if not inside(start, ph):
                        continue
                    checked.setdefault(ph[0], []).append(r)
                    if ph[1] is None:
                        self.assertEqual(r["lost"], r["sent"], r)
                        self.assertIsNone(r["quantiles_ms"], r)
                    else:
                        med = r["quantiles_ms"][5]
                        self.assertLessEqual(abs(med - ph[1]), 1.0, f"{ph[0]} round {r}")
                    if ph[0].startswith("clean"):
                        self.assertEqual(r["lost"], 0, r)
            for name in ("clean10", "loss30", "clean30", "blackhole"):
                self.assertGreaterEqual(len(checked.get(name, [])), 1, f"no whole round in {name}")
            self.assertGreater(sum(r["lost"] for r in checked["loss30"]), 0)

            # The graph.
            # The listener is in the probe namespace: fetch from there.
            body = t.ns(t.P, sys.executable, "-c",
                        "import sys, urllib.request; sys.stdout.write(urllib.request.urlopen("
                        "sys.argv[1], timeout=20).read().decode())",
                        f"http://127.0.0.1:{port}/graph/gw.svg?range=3h").stdout.encode()
            root = well_formed(self, body, "graph")
            plot = root.find(f"{SVG}g[@class='plot']")
            y0, ppm = float(plot.get("data-y0")), float(plot.get("data-px-per-ms"))
            seen = {}
            for el in plot.iter():
                if el.get("class") != "m":
                    continue
                parent_t = el.get("data-t")
                if parent_t is None:
                    for g in plot.findall(f"{SVG}g"):
                        if el in list(g):
                            parent_t = g.get("data-t")
                seen[int(parent_t)] = el
            for start, r in got.items():
                el = seen.get(start)
                self.assertIsNotNone(el, f"round {start} not drawn")
                self.assertEqual((int(el.get("data-sent")), int(el.get("data-lost"))),
                                 (r["sent"], r["lost"]))
                self.assertEqual(el.get("stroke"), loss_colour(r["sent"], r["lost"]),
                                 f"round {r}")
            # The outer smoke band of a round inside each delay phase spans
            # the delay applied.
            for g in plot.findall(f"{SVG}g"):
                start = int(g.get("data-t"))
                for ph in phases:
                    if ph[1] is None or not inside(start, ph):
                        continue
                    outer = g.find(f"{SVG}rect")
                    top = (y0 - float(outer.get("y"))) / ppm
                    bottom = (y0 - float(outer.get("y")) - float(outer.get("height"))) / ppm
                    self.assertLessEqual(bottom, ph[1] + 1, f"{ph[0]}: {bottom}..{top}")
                    self.assertGreaterEqual(top, ph[1] - 1, f"{ph[0]}: {bottom}..{top}")
            # beaconctl graph gives the same renderer's SVG.
            svg = ctl(sock, "graph", "gw", "--range", "30h").stdout
            r30 = well_formed(self, svg, "beaconctl graph")
            # 360 rounds of 5 steps of 2 s: the 30 h graph of a 1-min step.
            self.assertIn("last 1 h", r30.find(f"{SVG}title").text)
            self.assertEqual(d.stop(), 0)


def icmp_loopback_skip():
    if harness.is_root():
        return None
    try:
        lo, hi = map(int, open("/proc/sys/net/ipv4/ping_group_range").read().split())
    except OSError:
        return "cannot read ping_group_range"
    if not lo <= os.getgid() <= hi:
        return "needs root or a ping_group_range that includes our group"
    return None


class HistoryFiles(unittest.TestCase):
    def setUp(self):
        if icmp_loopback_skip():
            self.skipTest(icmp_loopback_skip())
        self.dir = tempfile.mkdtemp(prefix="bcn-hist-files-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.sock = os.path.join(self.dir, "ctl.sock")
        self.hist = os.path.join(self.dir, "state", "history")

    def config(self, save_interval="10s", extra_target=None):
        targets = {"lo": {"host": "127.0.0.1", "family": 4}}
        if extra_target:
            targets.update(extra_target)
        return harness.base_config(
            daemon={"log_level": "info", "control_socket": self.sock,
                    "state_directory": os.path.join(self.dir, "state"),
                    "save_interval": save_interval},
            icmp={"interval": "100ms", "timeout": "500ms", "history_step": "1s",
                  "summary_interval": 0},
            targets=targets)

    def start(self, cfg):
        d = harness.Daemon(cfg)
        self.addCleanup(d.close)
        d.start()
        return d

    def wait_rounds(self, n, timeout=20):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            h = history(self.sock, "lo")
            if len(h["rounds"]) >= n:
                return h
            time.sleep(0.3)
        raise AssertionError(f"fewer than {n} rounds after {timeout}s")

    def assertKept(self, before, after, what):
        a = rounds_by_start(after)
        for start, r in rounds_by_start(before).items():
            self.assertIn(start, a, f"{what}: round {start} lost")
            self.assertEqual(a[start], r, f"{what}: round {start} changed")

    def test_sigterm_then_start_keeps_every_round(self):
        d = self.start(self.config())
        before = self.wait_rounds(4)
        self.assertEqual(d.stop(), 0)
        saved = d.events("history_saved", why="stop")
        self.assertEqual(len(saved), 1, d.lines[-20:])
        self.assertNotIn("paused_ms", saved[0])   # the loop's own save: no fork
        self.assertEqual(saved[0]["probes"], "1")
        self.assertTrue(os.path.exists(os.path.join(self.hist, "lo.4.hist")))
        d2 = self.start(self.config())
        load = d2.wait_event("history_load")
        self.assertEqual(load["files"], "1")
        self.assertGreaterEqual(int(load["rounds"]), len(before["rounds"]))
        self.assertKept(before, history(self.sock, "lo"), "after SIGTERM")
        self.assertEqual(d2.stop(), 0)

    def test_kill9_keeps_rounds_older_than_the_last_save(self):
        d = self.start(self.config(save_interval="10s"))
        saved = d.wait_event("history_saved", why="interval", timeout=30)
        at_save = harness.log_time(saved)
        # A background save says how long it held the loop (tick and fork),
        # part of what it took.
        self.assertLess(0, float(saved["paused_ms"]), saved)
        self.assertLessEqual(float(saved["paused_ms"]), float(saved["took_ms"]), saved)
        self.assertLessEqual(float(saved["fork_ms"]), float(saved["paused_ms"]), saved)
        snap = history(self.sock, "lo")
        time.sleep(3)
        d.proc.kill()
        d.proc.wait(timeout=10)
        d2 = self.start(self.config(save_interval="10s"))
        load = d2.wait_event("history_load")
        loaded = d2.wait_event("history_loaded", target="lo")
        self.assertEqual(load["files"], "1", load)
        self.assertGreater(int(loaded["rounds"]), 5, loaded)
        after = history(self.sock, "lo")
        older = dict(snap, rounds=[r for r in snap["rounds"] if r["start"] + 1 <= at_save - 0.5])
        self.assertGreater(len(older["rounds"]), 5)
        self.assertKept(older, after, "after kill -9")
        # What came after the save died with the process: a gap.
        killed_at = time.time()
        a = rounds_by_start(after)
        lost = [s for s in a if at_save + 1.5 < s < killed_at - 4]
        self.assertEqual(lost, [], "rounds after the last save cannot have survived")
        self.assertEqual(d2.stop(), 0)

    def test_bad_files_are_set_aside(self):
        d = self.start(self.config())
        self.wait_rounds(3)
        self.assertEqual(d.stop(), 0)
        path = os.path.join(self.hist, "lo.4.hist")
        good = open(path, "rb").read()
        cases = {
            "truncated": good[: len(good) // 2],
            "corrupt": good[:40] + bytes(b ^ 0x5a for b in good[40:60]) + good[60:],
            "foreign": b"\x89PNG\r\n\x1a\n" + os.urandom(200),
        }
        for what, data in cases.items():
            with self.subTest(what):
                with open(path, "wb") as f:
                    f.write(data)
                before = set(os.listdir(self.hist))
                d = self.start(self.config())
                ev = d.wait_event("history_file_set_aside", target="lo")
                self.assertEqual(ev["problem"], "corrupt", ev)
                aside = set(os.listdir(self.hist)) - before
                self.assertEqual(len(aside), 1, aside)
                moved = aside.pop()
                self.assertEqual(ev["moved_to"], moved)
                self.assertEqual(open(os.path.join(self.hist, moved), "rb").read(), data,
                                 "set aside as it was, not deleted")
                # The daemon runs on: fresh rounds, control socket fine.
                h = self.wait_rounds(2)
                self.assertLess(len(h["rounds"]), 10, "a fresh history")
                ctl(self.sock, "status")
                self.assertEqual(d.stop(), 0)
                os.unlink(os.path.join(self.hist, moved))

    def test_other_host_is_foreign(self):
        d = self.start(self.config())
        self.wait_rounds(2)
        self.assertEqual(d.stop(), 0)
        cfg = self.config().replace("host = 127.0.0.1", "host = 127.0.0.2")
        d = self.start(cfg)
        ev = d.wait_event("history_file_set_aside", target="lo")
        self.assertEqual(ev["problem"], "foreign", ev)
        self.assertIn("127.0.0.1", ev["reason"])
        self.assertEqual(d.stop(), 0)

    def test_reload_keeps_history(self):
        d = self.start(self.config(extra_target={"other": {"host": "127.0.0.3", "history": "no"}}))
        before = self.wait_rounds(3)
        since = len(d.lines)
        d.reload()
        d.wait_event("history_saved", why="reload", since=since)
        self.assertKept(before, history(self.sock, "lo"), "after reload")
        h = history(self.sock, "other")
        self.assertEqual(h["rounds"], [], "history = no keeps nothing")
        self.assertEqual(d.stop(), 0)
        self.assertFalse(os.path.exists(os.path.join(self.hist, "other.4.hist")))


if __name__ == "__main__":
    prog = unittest.main(module="__main__", verbosity=2, exit=False)
    res = prog.result
    if not res.wasSuccessful():
        sys.exit(1)
    sys.exit(77 if res.testsRun == len(res.skipped) else 0)
