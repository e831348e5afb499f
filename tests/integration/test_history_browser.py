"""The history pages in a real browser (heavy: Debian's chromium, headless).

A namespace with only a loopback interface holds beacond and the browser,
so no request can leave it; nftables there drops echo requests to make
three targets: `ok` (127.0.0.1, no loss), `lossy` (127.0.0.2, 2 of every
10 requests dropped: 20 %, SmokePing's violet #7e00ff) and `dead`
(127.0.0.3, every request dropped: dark red #a00000, state down).

chromium screenshots `/` and `/target/lossy` and `/target/dead`
(screenshots kept in the build dir under test-artefacts/history/), and
the test checks:
  * the browser console is silent (a Content-Security-Policy violation or
    any error would be logged there);
  * every request the pages made went to the daemon on 127.0.0.1, and no
    packet left the loopback interface (an nftables counter on output);
  * pixels: on `/`, the "down" badge (#ff4040) and the all-lost sparkline
    (#a00000) are in the same row, left to right, below the violet
    sparkline of `lossy`; on `/target/lossy`, the first graph's plot area
    holds violet median segments and grey smoke; on `/target/dead`, dark
    red marks along the top of the plot.
Exits 77 when it cannot run (no root, no chromium, no nft).
"""
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import unittest
import zlib

import harness

BUILD = os.environ.get("BEACOND_BUILD_ROOT", os.path.join(harness.SOURCE_ROOT, "build"))
ARTEFACTS = os.path.join(BUILD, "test-artefacts", "history")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def skip_reason():
    if not harness.is_root():
        return "needs root (a network namespace)"
    if not CHROMIUM:
        return "needs chromium"
    for cmd in ("ip", "nft"):
        if not harness.have(cmd):
            return f"needs {cmd}"
    return None


def read_png(path):
    """(width, height, rows of (r, g, b) tuples) of an 8-bit RGB/RGBA PNG."""
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, w = 8, b"", 0
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            w, h, depth, ctype = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and ctype in (2, 6), (depth, ctype)
            bpp = 3 if ctype == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw = zlib.decompress(idat)
    stride = w * bpp
    rows, prev = [], bytearray(stride)
    for y in range(h):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 0xff
            elif f == 2:
                line[i] = (line[i] + b) & 0xff
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xff
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xff
        rows.append([tuple(line[x * bpp:x * bpp + 3]) for x in range(w)])
        prev = line
    return w, h, rows


def rgb(hexcolour):
    return tuple(int(hexcolour[i:i + 2], 16) for i in (1, 3, 5))


def where(rows, colour, box=None):
    """Pixels of exactly that colour (within box = (x0, y0, x1, y1))."""
    x0, y0, x1, y1 = box or (0, 0, len(rows[0]), len(rows))
    return [(x, y) for y in range(y0, min(y1, len(rows))) for x in range(x0, min(x1, len(rows[0])))
            if rows[y][x] == colour]


def first_plot(rows, colour=(0xf8, 0xf8, 0xf8), run=60):
    """(x0, y0) of the first graph's plot area: the top-left of the first
    row with `run` consecutive pixels of its background colour."""
    for y, row in enumerate(rows):
        n = 0
        for x, p in enumerate(row):
            n = n + 1 if p == colour else 0
            if n == run:
                return x - run + 1, y
    raise AssertionError("no plot area in the screenshot")


class Browser(unittest.TestCase):
    @unittest.skipIf(skip_reason(), skip_reason() or "")
    def test_pages_in_chromium(self):
        ns = f"bcn-br-{os.getpid()}"
        subprocess.run(["ip", "netns", "add", ns], check=True)
        self.addCleanup(subprocess.run, ["ip", "netns", "del", ns])
        run = lambda *c, **kw: subprocess.run(["ip", "netns", "exec", ns] + list(c),
                                              check=True, timeout=60, **kw)
        run("ip", "link", "set", "lo", "up")
        run("nft", "-f", "-", input=b"""
table inet b {
    counter out_not_lo {}
    chain in { type filter hook input priority 0; policy accept;
        ip daddr 127.0.0.3 icmp type echo-request drop
        ip daddr 127.0.0.2 icmp type echo-request numgen inc mod 10 { 3, 7 } drop
    }
    chain out { type filter hook output priority 0; policy accept;
        oifname != "lo" counter name "out_not_lo"
    }
}
""")
        tmp = tempfile.mkdtemp(prefix="bcn-browser-")
        self.addCleanup(shutil.rmtree, tmp, True)
        cfg = harness.base_config(
            daemon={"log_level": "info", "state_directory": tmp, "save_interval": 0,
                    "control_socket": os.path.join(tmp, "ctl.sock")},
            icmp={"interval": "100ms", "timeout": "300ms", "history_step": "1s",
                  "down_after": 3, "summary_interval": 0},
            targets={"ok": {"host": "127.0.0.1"}, "lossy": {"host": "127.0.0.2"},
                     "dead": {"host": "127.0.0.3"}},
            extra="\n[web]\nlisten = 127.0.0.1:0\n")
        d = harness.Daemon(cfg, prefix=["ip", "netns", "exec", ns])
        self.addCleanup(d.close)
        d.start()
        port = harness.split_addr(d.wait_event("listen", service="web")["addr"])[1]
        d.wait_event("state", target="dead", to="down", timeout=10)
        time.sleep(8)   # a few rounds of 1 s
        os.makedirs(ARTEFACTS, exist_ok=True)
        prof = os.path.join(tmp, "chromium")

        def shoot(path, name, size="1280,1000"):
            png = os.path.join(ARTEFACTS, name + ".png")
            netlog = os.path.join(tmp, name + ".netlog.json")
            r = subprocess.run(
                ["ip", "netns", "exec", ns, CHROMIUM, "--headless", "--no-sandbox",
                 "--disable-gpu", "--disable-background-networking", "--no-first-run",
                 "--disable-component-update", "--disable-sync", f"--user-data-dir={prof}",
                 "--hide-scrollbars", "--disable-features=AutofillServerCommunication", "--enable-logging=stderr", "--v=0",
                 f"--log-net-log={netlog}", f"--window-size={size}", f"--screenshot={png}",
                 f"http://127.0.0.1:{port}{path}"],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
            err = r.stderr.decode("utf-8", "replace")
            with open(os.path.join(ARTEFACTS, name + ".log"), "w") as f:
                f.write(err)
            self.assertTrue(os.path.exists(png), err[-2000:])
            # Every console line of the page; not those of Chromium's own
            # UI (source chrome://..., e.g. a "slow network" notice of its
            # new-tab components when the machine is busy), which no http
            # page can load or cause.
            console = [l for l in err.splitlines()
                       if ("Refused to" in l or
                           (":CONSOLE" in l and not re.search(r'source: chrome://', l)))]
            self.assertEqual(console, [], f"{path}: the console is not silent")
            urls = set(re.findall(r'"url":"([^"]*)"', open(netlog).read()))
            ours = {u for u in urls if u.startswith(f"http://127.0.0.1:{port}/")}
            self.assertTrue(ours, urls)
            # Anything else is chromium's own background checks (component
            # updater, network time): never a page's, and with only lo in
            # the namespace they cannot leave (see out_not_lo below).
            for u in urls - ours:
                self.assertRegex(u, r"^https?://[a-z0-9.-]*(google|gstatic)[a-z0-9.-]*\.com/", u)
            return read_png(png), ours

        (w, h, rows), urls = shoot("/", "overview")
        down = where(rows, rgb("#ff4040"))
        dark = where(rows, rgb("#a00000"))
        violet = where(rows, rgb("#7e00ff"))
        self.assertTrue(down and dark and violet, (len(down), len(dark), len(violet)))
        ys = lambda px: (min(y for _, y in px), max(y for _, y in px))
        dy, ky, vy = ys(down), ys(dark), ys(violet)
        self.assertTrue(dy[0] <= ky[1] and ky[0] <= dy[1], f"badge {dy} and sparkline {ky}: one row")
        self.assertLess(max(x for x, _ in down), min(x for x, _ in dark), "state before sparkline")
        self.assertLess(vy[1], ky[0], "lossy's row above dead's")

        (w, h, rows), urls = shoot("/target/lossy", "target-lossy")
        self.assertIn(f"http://127.0.0.1:{port}/style.css", urls)
        self.assertTrue(any("/graph/lossy.svg?range=3h" in u for u in urls), urls)
        x0, y0 = first_plot(rows)
        box = (x0, y0, x0 + 540, y0 + 122)
        # Rounds lose 2 of 10 requests (outcomes fall in the round their
        # timeout ends in, so a round may get 1 or 3, and the first,
        # partial one none): violet, next to its neighbours.
        self.assertGreater(len(where(rows, rgb("#7e00ff"), box)), 10, "violet medians in the plot")
        grey = [p for p in (rows[y][x] for y in range(y0, y0 + 122) for x in range(x0, x0 + 540))
                if p[0] == p[1] == p[2] and p[0] < 0xf0]
        self.assertGreater(len(grey), 10, "grey smoke (and grid) inside the plot")

        (w, h, rows), urls = shoot("/target/dead", "target-dead")
        x0, y0 = first_plot(rows)
        top = where(rows, rgb("#a00000"), (x0, y0, x0 + 540, y0 + 8))
        self.assertGreater(len(top), 10, "dark red along the top of the plot")
        self.assertEqual(where(rows, rgb("#26ff00"), (x0, y0, x0 + 540, y0 + 122)), [],
                         "no green median in a dead target's plot")

        out = json.loads(run("nft", "-j", "list", "counter", "inet", "b", "out_not_lo",
                             stdout=subprocess.PIPE).stdout)
        packets = [i["counter"]["packets"] for i in out["nftables"] if "counter" in i]
        self.assertEqual(packets, [0], "no packet left the loopback interface")
        self.assertEqual(d.stop(), 0)


if __name__ == "__main__":
    prog = unittest.main(module="__main__", verbosity=2, exit=False)
    res = prog.result
    if not res.wasSuccessful():
        sys.exit(1)
    sys.exit(77 if res.testsRun == len(res.skipped) else 0)
