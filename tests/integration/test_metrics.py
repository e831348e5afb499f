"""The [web] listener and /metrics against the real daemon: the exposition
(promtool check metrics on live output), HTTP semantics, hostile clients,
reload."""
import gzip
import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
from harness import Daemon, base_config, scaled  # noqa: E402

TARGETS = {
    "lo": {"host": "127.0.0.1", "labels": 'site=ams, rack = r12, note=a "quoted" \\ value'},
    "lo6": {"host": "::1"},
}
ICMP = {"interval": "200ms", "timeout": "500ms", "down_after": "2", "up_after": "1"}


def config(web=None, targets=TARGETS, icmp=ICMP, **kw):
    w = {"listen": "127.0.0.1:0", "header_timeout": "2s", "idle_timeout": "5s"}
    w.update(web or {})
    return base_config(tcp={"listen": "127.0.0.1:0"}, udp={"listen": "127.0.0.1:0", "rate_limit": 0},
                       icmp=icmp, daemon={"stats_interval": "0", "log_level": "info"},
                       targets=targets, web=w, **kw)


def get(addr, path="/metrics", method="GET", headers=None, source=None, timeout=10):
    conn = http.client.HTTPConnection(addr[0], addr[1], timeout=timeout,
                                      source_address=(source, 0) if source else None)
    try:
        conn.request(method, path, headers=headers or {})
        r = conn.getresponse()
        body = r.read()
        return r.status, dict((k.lower(), v) for k, v in r.getheaders()), body
    finally:
        conn.close()


_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (\S+)$')


def samples(text):
    """{(name, labels-string): float} of every sample line."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if not m:
            raise AssertionError(f"not a sample line (or it has a timestamp): {line!r}")
        out[(m.group(1), m.group(2) or "")] = float(m.group(3))
    return out


def value(s, name, **labels):
    """The one sample of `name` whose labels include `labels`."""
    hits = [v for (n, l), v in s.items() if n == name and
            all(f'{k}="{v}"' in l for k, v in labels.items())]
    if len(hits) != 1:
        raise AssertionError(f"{name} {labels}: {len(hits)} samples")
    return hits[0]


def wait_for(pred, timeout, step=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = pred()
        if r:
            return r
        time.sleep(step)
    return pred()


class Exposition(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = Daemon(config()).start()
        cls.web = cls.d.addr("web")
        # Both: first pings are spread over the interval, so lo6 may have
        # no reply yet when lo is up (its RTT buckets are checked below).
        for t in TARGETS:
            cls.d.wait_event("state", target=t, to="up", timeout=10)

    @classmethod
    def tearDownClass(cls):
        cls.d.stop()
        cls.d.close()

    def test_text_format_and_families(self):
        status, h, body = get(self.web)
        self.assertEqual(status, 200)
        self.assertEqual(h["content-type"], "text/plain; version=0.0.4; charset=utf-8")
        text = body.decode("utf-8")
        helps = set(re.findall(r"^# HELP (\S+) ", text, re.M))
        types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))
        self.assertEqual(helps, set(types))
        for fam in ("beacond_ping_sent_total", "beacond_ping_received_total",
                    "beacond_ping_lost_total", "beacond_ping_late_total",
                    "beacond_ping_duplicates_total", "beacond_ping_send_errors_total",
                    "beacond_ping_icmp_errors_total", "beacond_ping_rtt_squared_seconds_total",
                    "beacond_ping_rtt_variation_seconds_total", "beacond_target_up",
                    "beacond_target_state_change_timestamp_seconds",
                    "beacond_target_state_changes_total", "beacond_target_info",
                    "beacond_ping_in_flight", "beacond_ping_ignored_total",
                    "beacond_tcp_connections", "beacond_tcp_connections_accepted_total",
                    "beacond_tcp_connections_refused_total", "beacond_tcp_received_bytes_total",
                    "beacond_tcp_sent_bytes_total", "beacond_udp_datagrams_received_total",
                    "beacond_udp_datagrams_echoed_total", "beacond_udp_datagrams_dropped_total",
                    "beacond_build_info", "process_start_time_seconds",
                    "process_cpu_seconds_total", "process_resident_memory_bytes",
                    "process_open_fds", "process_max_fds",
                    "beacond_config_last_reload_successful",
                    "beacond_config_last_reload_success_timestamp_seconds"):
            self.assertIn(fam, types, fam)
        self.assertEqual(types["beacond_ping_rtt_seconds"], "histogram")
        self.assertEqual(types["beacond_ping_send_lateness_seconds"], "histogram")
        s = samples(text)   # also: no sample carries a timestamp
        # Families are contiguous groups: a name never comes back later.
        names = [(_SAMPLE.match(l).group(1)) for l in text.splitlines() if l and l[0] != "#"]
        seen, last = set(), None
        for n in names:
            base = re.sub(r"_(bucket|sum|count)$", "", n)
            if base != last:
                self.assertNotIn(base, seen, f"{base} split in two groups")
                seen.add(base)
                last = base
        # User labels, escaped.
        self.assertIn('site="ams",rack="r12",note="a \\"quoted\\" \\\\ value"', text)
        # Canonical le values, cumulative buckets ending in +Inf = _count.
        les = re.findall(r'beacond_ping_rtt_seconds_bucket\{target="lo6",family="6",le="([^"]+)"\}', text)
        self.assertEqual(les[:4], ["0.0001", "0.0002", "0.0005", "0.001"])
        self.assertIn("1.0", les)
        self.assertEqual(les[-1], "+Inf")
        counts = [value(s, "beacond_ping_rtt_seconds_bucket", target="lo6", le=le) for le in les]
        self.assertEqual(counts, sorted(counts))
        self.assertEqual(counts[-1], value(s, "beacond_ping_rtt_seconds_count", target="lo6"))
        self.assertGreater(counts[-1], 0)
        # sent - received - lost = in flight.
        for t in ("lo", "lo6"):
            sent = value(s, "beacond_ping_sent_total", target=t)
            got = value(s, "beacond_ping_received_total", target=t)
            lost = value(s, "beacond_ping_lost_total", target=t)
            self.assertEqual(sent - got - lost, value(s, "beacond_ping_in_flight", target=t))
        self.assertEqual(value(s, "beacond_target_up", target="lo"), 1)
        self.assertEqual(value(s, "beacond_target_info", target="lo6", address="::1"), 1)
        self.assertEqual(value(s, "beacond_build_info"), 1)
        # The scrape's own connection was open while the figure was read;
        # a sanitizer build may hold an fd or two of its own for a moment.
        fds = len(os.listdir(f"/proc/{self.d.pid}/fd")) + 1
        self.assertLessEqual(abs(value(s, "process_open_fds") - fds), 2)
        self.assertGreater(value(s, "process_max_fds"), fds)

    @unittest.skipUnless(harness.have("promtool"), "promtool not installed")
    def test_promtool_check_metrics_is_silent(self):
        for enc in (None, "gzip"):
            status, h, body = get(self.web, headers={"Accept-Encoding": enc} if enc else {})
            self.assertEqual(status, 200)
            if enc:
                self.assertEqual(h.get("content-encoding"), "gzip")
                body = gzip.decompress(body)
            r = subprocess.run(["promtool", "check", "metrics"], input=body,
                               capture_output=True, timeout=60)
            self.assertEqual((r.returncode, r.stdout, r.stderr), (0, b"", b""))

    def test_gzip_only_when_asked(self):
        _, h, plain = get(self.web)
        self.assertNotIn("content-encoding", h)
        self.assertEqual(h.get("vary"), "Accept-Encoding")
        _, h, gz = get(self.web, headers={"Accept-Encoding": "gzip;q=0, deflate"})
        self.assertNotIn("content-encoding", h)
        _, h, gz = get(self.web, headers={"Accept-Encoding": "deflate, gzip"})
        self.assertEqual(h.get("content-encoding"), "gzip")
        self.assertLess(len(gz), len(plain) / 3)
        self.assertEqual(set(samples(gzip.decompress(gz).decode())), set(samples(plain.decode())))

    def test_head_get_405_404(self):
        status, h, body = get(self.web, method="HEAD")
        self.assertEqual((status, body), (200, b""))
        self.assertTrue(h["content-type"].startswith("text/plain; version=0.0.4"))
        for method in ("POST", "PUT", "DELETE"):
            status, h, _ = get(self.web, method=method)
            self.assertEqual(status, 405, method)
            self.assertEqual(h.get("allow"), "GET, HEAD")
        # "/" is the history's overview page (test_history.py).
        for path in ("/nope", "/metricsx", "/metrics/", "/../etc/passwd"):
            self.assertEqual(get(self.web, path=path)[0], 404, path)
        self.assertEqual(get(self.web, path="/")[0], 200)
        # A query string is not part of the path.
        self.assertEqual(get(self.web, path="/metrics?x=1")[0], 200)


def raw_connect(addr, source=None):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(10)
    if source:
        s.bind((source, 0))
    s.connect(addr)
    return s


def closed_within(s, seconds):
    """True when the peer closes (EOF or reset) within `seconds`; reads and
    drops whatever it sends first."""
    s.settimeout(seconds)
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            s.settimeout(max(0.05, deadline - time.monotonic()))
            if not s.recv(65536):
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False
    return False


class Hostile(unittest.TestCase):
    """Every bad client gets its status or is closed; meanwhile echo and
    pings go on and a scrape succeeds."""

    def setUp(self):
        self.d = Daemon(config(web={"max_connections": "16",
                                    "allow": "127.0.0.1/32, 127.0.0.2/32"})).start()
        self.web = self.d.addr("web")
        self.d.wait_event("state", target="lo", to="up", timeout=10)

    def tearDown(self):
        self.d.stop()
        self.d.close()

    def scrape(self, **kw):
        status, _, body = get(self.web, **kw)
        self.assertEqual(status, 200)
        return samples(body.decode())

    def echo_ok(self):
        with socket.create_connection(self.d.addr("tcp"), timeout=5) as s:
            s.sendall(b"still here")
            return s.recv(100) == b"still here"

    def test_big_header(self):
        s = raw_connect(self.web)
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 65536 + b"\r\n\r\n")
        head = s.recv(100)
        self.assertTrue(head.startswith(b"HTTP/1.1 431") or head.startswith(b"HTTP/1.1 413"), head)
        self.assertTrue(closed_within(s, 5))
        s.close()
        # A header under the cap is fine.
        self.assertEqual(get(self.web, headers={"X-Ok": "a" * 8000})[0], 200)

    def test_byte_a_second_client_is_closed_at_header_timeout(self):
        s = raw_connect(self.web)
        req = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"
        start = time.monotonic()
        closed = False
        for b in req:
            try:
                s.send(bytes([b]))
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            if closed_within(s, 1.0):
                closed = True
                break
        took = time.monotonic() - start
        s.close()
        self.assertTrue(closed, "a client trickling its request was never closed")
        # header_timeout is 2 s; the idle timeout (5 s) would never fire.
        self.assertGreater(took, 1.5)
        self.assertLess(took, scaled(4.5))
        s = self.scrape()
        self.assertGreaterEqual(value(s, "beacond_web_header_timeouts_total"), 1)

    def test_source_outside_allow(self):
        s = raw_connect(self.web, source="127.0.0.3")
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertTrue(closed_within(s, 3))
        s.close()
        s = self.scrape(source="127.0.0.2")
        self.assertEqual(value(s, "beacond_web_connections_refused_total", reason="acl"), 1)

    def test_thousand_idle_connections(self):
        before = self.scrape()
        socks = []
        try:
            for _ in range(1000):
                socks.append(raw_connect(self.web))
            # Over the limit: closed at once, the first 16 kept.
            time.sleep(0.5)
            time.sleep(1.0)   # the held ones become evictable (1 s)
            t0 = time.monotonic()
            s = self.scrape()
            scrape_s = time.monotonic() - t0
            self.assertTrue(self.echo_ok())
            # 16 = the limit, counting the scrape; + the one it evicted,
            # whose close the library has not run yet.
            self.assertLessEqual(value(s, "beacond_web_connections"), 17)
            # Each of the 1000 was refused at once, or held and later
            # evicted by a newer client or closed at header_timeout; at
            # most 16 (one of them the scrape) are open.
            refused = value(s, "beacond_web_connections_refused_total", reason="limit")
            evicted = value(s, "beacond_web_evictions_total")
            timed_out = value(s, "beacond_web_header_timeouts_total")
            self.assertGreaterEqual(evicted, 1)
            self.assertGreaterEqual(refused + evicted + timed_out, 1000 - 15)
            self.assertLess(scrape_s, scaled(2))
            # The held ones are closed by header_timeout (2 s) at the latest.
            alive = [c for c in socks if not closed_within(c, 0.01)]
            self.assertLessEqual(len(alive), 16)
            self.assertTrue(all(closed_within(c, scaled(4)) for c in alive))
        finally:
            for c in socks:
                c.close()
        after = self.scrape()
        # Pings unaffected: nothing lost, sending went on.
        self.assertEqual(value(after, "beacond_ping_lost_total", target="lo"),
                         value(before, "beacond_ping_lost_total", target="lo"))
        self.assertGreater(value(after, "beacond_ping_sent_total", target="lo"),
                           value(before, "beacond_ping_sent_total", target="lo"))

    def test_slow_reader_gets_the_whole_scrape(self):
        """A client that does not read (a 4 KiB receive buffer, asleep) still
        gets a complete, valid body in the end, while other scrapes go on."""
        s = raw_connect(self.web)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
        time.sleep(0.5)
        self.scrape()
        data = b""
        s.settimeout(10)
        while True:
            chunk = s.recv(1 << 16)
            if not chunk:
                break
            data += chunk
        s.close()
        head, _, body = data.partition(b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1.1 200"), head[:40])
        samples(body.decode())
        self.assertIn(b"beacond_web_connections", body)


_VARYING = re.compile(r'((?:target|host|address|listener)=)"(?:[^"\\]|\\.)*"')


def shapes(text):
    """{target or None: set of series with the per-target and per-listener
    label values blanked}: the shape of a scrape, whatever the values."""
    out = {}
    for name, labels in samples(text):
        m = re.search(r'target="((?:[^"\\]|\\.)*)"', labels)
        out.setdefault(m.group(1) if m else None, set()).add(
            (name, _VARYING.sub(r'\1"X"', labels)))
    return out


class Sliced(unittest.TestCase):
    """A scrape far over the per-iteration rendering budget (32 KiB) is
    served in slices, the connection suspended and resumed between loop
    iterations, and still arrives whole: every target has exactly the
    series of a one-target daemon's unsliced scrape, and the rest of the
    body is the same too, plain and gzip."""
    N = 2000

    def start(self, n):
        targets = {f"t{i}": {"host": f"127.1.{i // 250}.{i % 250 + 1}"} for i in range(n)}
        d = Daemon(config(targets=targets, icmp={"interval": "1s", "timeout": "900ms",
                                                 "down_after": "2", "up_after": "1"})).start()
        self.addCleanup(d.close)
        self.addCleanup(d.stop)
        web = d.addr("web")

        def all_up():
            st, _, body = get(web, timeout=30)
            s = samples(body.decode())
            return st == 200 and sum(v for (nm, _), v in s.items()
                                     if nm == "beacond_target_up") == n
        self.assertTrue(wait_for(all_up, scaled(20), step=0.5), f"{n} targets up")
        return web

    def scrape(self, web, gz):
        st, h, body = get(web, headers={"Accept-Encoding": "gzip"} if gz else None,
                          timeout=60)
        self.assertEqual(st, 200)
        self.assertEqual(h.get("content-encoding") == "gzip", gz)
        return (gzip.decompress(body) if gz else body).decode("utf-8")

    def test_sliced_scrape_is_whole(self):
        one = self.start(1)
        ref_text = self.scrape(one, False)
        ref_susp = value(samples(ref_text), "beacond_web_body_suspensions_total")
        ref = shapes(ref_text)
        self.assertEqual(set(ref), {None, "t0"})
        self.assertGreater(len(ref["t0"]), 20)
        # The reference is unsliced: no body of that daemon was paused.
        self.assertEqual(value(samples(self.scrape(one, False)),
                               "beacond_web_body_suspensions_total"), ref_susp)

        many = self.start(self.N)
        for gz in (False, True):
            before = value(samples(self.scrape(many, False)),
                           "beacond_web_body_suspensions_total")
            text = self.scrape(many, gz)
            after = value(samples(self.scrape(many, False)),
                          "beacond_web_body_suspensions_total")
            got = shapes(text)
            self.assertEqual(set(got) - {None}, {f"t{i}" for i in range(self.N)}, gz)
            for t in range(self.N):
                self.assertEqual(got[f"t{t}"], ref["t0"], (gz, t))
            self.assertEqual(got[None], ref[None], gz)
            self.assertEqual(sum(map(len, got.values())),
                             len(ref[None]) + self.N * len(ref["t0"]))
            if gz:
                # Sliced: paused at least once per 64 KiB of text (the
                # budget plus one chunk) -- deflate eats ~20 times its
                # output, so one 16 KiB gzip chunk needs many slices.
                # Plain text is one 16 KiB chunk per library run, under
                # the budget: paused rarely, if ever.
                self.assertGreaterEqual(after - before, len(text) // 65536)


class Reload(unittest.TestCase):
    def test_counters_continue_target_goes_listener_moves(self):
        with Daemon(config()) as d:
            d.start()
            old = d.addr("web")
            d.wait_event("state", target="lo", to="up", timeout=10)
            time.sleep(1)
            before = samples(get(old)[2].decode())
            self.assertIn(("beacond_ping_sent_total", '{target="lo6",family="6"}'), before)

            # Move the listener (another port and address), drop lo6.
            d.write_config(config(web={"listen": "127.0.0.2:0"},
                                  targets={"lo": TARGETS["lo"]}))
            since = len(d.lines)
            ev = d.reload()
            self.assertEqual(ev["event"], "reloaded", ev)
            new = [a for a in d.listen_addrs("web") if a[0] == "127.0.0.2"]
            self.assertEqual(len(new), 1)
            new = new[0]
            d.wait_event("listen_close", service="web", since=since)
            with self.assertRaises(ConnectionRefusedError):
                socket.create_connection(old, timeout=2)
            after = samples(get(new)[2].decode())
            self.assertGreaterEqual(value(after, "beacond_ping_sent_total", target="lo"),
                                    value(before, "beacond_ping_sent_total", target="lo"))
            self.assertGreater(value(after, "beacond_ping_received_total", target="lo"), 0)
            self.assertFalse([k for k in after if 'target="lo6"' in k[1]])
            self.assertEqual(value(after, "beacond_config_reloads_total", result="success"), 1)
            self.assertEqual(value(after, "beacond_config_last_reload_successful"), 1)

            # A bad [web] value: the reload fails whole, the listener stays.
            d.write_config(config(web={"listen": "127.0.0.2:0", "histogram": "sometimes"}))
            self.assertEqual(d.reload()["event"], "reload_failed")
            s = samples(get(new)[2].decode())
            self.assertEqual(value(s, "beacond_config_last_reload_successful"), 0)
            self.assertEqual(d.stop(), 0)

    def test_histogram_off_and_header_cap_change_on_reload(self):
        with Daemon(config()) as d:
            d.start()
            web = d.addr("web")
            d.wait_event("state", target="lo", to="up", timeout=10)
            self.assertIn("beacond_ping_rtt_seconds_bucket", get(web)[2].decode())
            d.write_config(config(web={"histogram": "off", "max_header_size": "4KiB"}))
            self.assertEqual(d.reload()["event"], "reloaded")
            self.assertEqual(d.addr("web"), web)   # the same entry keeps its socket
            text = get(web)[2].decode()
            self.assertNotIn("beacond_ping_rtt_seconds_bucket", text)
            self.assertIn("# TYPE beacond_ping_rtt_seconds summary", text)
            self.assertIn("beacond_ping_rtt_seconds_count", text)
            s = raw_connect(web)
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 8192 + b"\r\n\r\n")
            self.assertIn(s.recv(100)[:12], (b"HTTP/1.1 431", b"HTTP/1.1 413"))
            s.close()
            self.assertEqual(get(web, headers={"X-Ok": "a" * 3000})[0], 200)
            s.close()
            self.assertEqual(d.stop(), 0)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@unittest.skipUnless(harness.have("systemd-socket-activate"), "systemd-socket-activate not installed")
class SocketActivation(unittest.TestCase):
    """systemd passes the web socket as FileDescriptorName=web (what
    systemd/beacond-web.socket does): beacond serves it, whether [web]
    listen names its address or not, and tcp does not take it."""

    def run_activated(self, web_listen_for):
        port = free_port()
        d = Daemon(config(web={"listen": web_listen_for(port)}),
                   prefix=["systemd-socket-activate", "-l", f"127.0.0.1:{port}",
                           "--fdname=web", "--"])
        with d:
            d.start(wait_ready=False)
            # socket-activate runs beacond at the first connection, which
            # must then be served.
            deadline = time.monotonic() + 10
            while True:
                try:
                    status, _, body = get(("127.0.0.1", port))
                    break
                except (ConnectionRefusedError, ConnectionResetError):
                    if time.monotonic() > deadline or not d.alive():
                        raise
                    time.sleep(0.05)
            self.assertEqual(status, 200)
            self.assertIn(b"beacond_build_info", body)
            d.wait_event("ready")
            ev = d.events("listen", service="web", addr=f"127.0.0.1:{port}")
            self.assertEqual(len(ev), 1, d.events("listen"))
            self.assertEqual(ev[0]["inherited"], "yes")
            self.assertFalse(d.events("listen", service="tcp", addr=f"127.0.0.1:{port}"))
            # A reload keeps serving it.
            self.assertEqual(d.reload()["event"], "reloaded")
            self.assertEqual(get(("127.0.0.1", port))[0], 200)
            self.assertEqual(d.stop(), 0)

    def test_named_in_listen(self):
        self.run_activated(lambda port: f"127.0.0.1:{port}")

    def test_not_named_in_listen_is_adopted(self):
        self.run_activated(lambda port: "127.0.0.1:0")


if __name__ == "__main__":
    harness.main()
