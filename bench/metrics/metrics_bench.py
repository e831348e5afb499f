#!/usr/bin/env python3
"""Metrics benchmark (root; about 8 minutes; every part bounded in time).

Everything runs in network namespaces made here, pinging loopback
addresses 127.1.x.y of the namespace's own lo on datagram ICMP sockets
(ping_group_range is set inside the namespace only).

A. Scraped vs not, side by side: two beacond with 10 000 targets at 1 Hz,
   each in its own namespace, run at the same time; one is scraped once a
   second (plain text, the way Prometheus asks without compression
   disabled: gzip), the other only at the start and end of the window (to
   read its lateness histogram).  Two rounds, the roles swapped, so a
   difference between the two namespaces cancels.  Per daemon: CPU per
   probe = (process CPU - beacond_web_cpu_seconds_total) / echo requests
   the namespace's kernel received (Icmp InEchos); send lateness p99 from
   the daemon's beacond_ping_send_lateness_seconds over the window
   (interpolated inside its bucket); scrape CPU = beacond_web_cpu_seconds
   per scrape.
B. Bytes and CPU ms per scrape at 1 000 and 10 000 targets, histogram fine
   and off, gzip on and off: 20 back-to-back scrapes of a daemon whose
   probes run at a 1 h interval (so the pinging costs nothing), CPU from
   beacond_web_cpu_seconds_total.
C. Against prometheus-smokeping-prober on the same 1 000 targets at 1 Hz,
   one after the other, 40 s each: CPU per probe (InEchos), memory per
   target (RSS minus the RSS with one target, / 1 000), loss reported on
   the lossless loopback (smokeping_prober: requests_total minus the
   histogram's count; beacond: lost_total), time to serve one scrape (max
   and median of scrapes every 5 s).

Prints one table per part on stdout, progress on stderr.
"""
import gzip
import json
import math
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import harness  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
SMOKEPING = "prometheus-smokeping-prober"

# Runs inside a namespace: scrape URL `count` times `every` seconds apart;
# one JSON line per scrape: bytes on the wire, seconds, and the body's
# samples that the caller asked for (by name prefix).
SCRAPER = r'''
import gzip, http.client, json, re, sys, time
host, port, path, count, every, enc, want = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), float(sys.argv[5]), sys.argv[6], sys.argv[7].split(",") if sys.argv[7] else []
t_next = time.monotonic()
for i in range(count):
    t0 = time.monotonic()
    c = http.client.HTTPConnection(host, port, timeout=60)
    c.request("GET", path, headers={"Accept-Encoding": "gzip"} if enc == "gzip" else {})
    r = c.getresponse()
    raw = r.read()
    dt = time.monotonic() - t0
    c.close()
    body = gzip.decompress(raw) if r.getheader("Content-Encoding") == "gzip" else raw
    keep = []
    for w in want:
        # Bytes and a regex: a 30 MB body is not split into lines in Python.
        keep += [m.decode() for m in re.findall(rb"(?m)^" + re.escape(w.encode()) + rb".*$", body)]
    print(json.dumps({"status": r.status, "bytes": len(raw), "plain": len(body), "s": dt, "keep": keep}), flush=True)
    t_next += every
    time.sleep(max(0.0, t_next - time.monotonic()))
'''


def log(msg):
    sys.stderr.write(f"[metrics-bench {time.strftime('%H:%M:%S')}] {msg}\n")
    sys.stderr.flush()


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, text=True, capture_output=True, timeout=60, **kw)


class Ns:
    def __init__(self, tag):
        self.name = f"bcn-mb-{os.getpid()}-{tag}"
        run(["ip", "netns", "add", self.name])
        run(["ip", "-n", self.name, "link", "set", "lo", "up"])
        # Datagram ICMP sockets for root inside this namespace only.
        self.sh("echo '0 2147483647' > /proc/sys/net/ipv4/ping_group_range")
        self.procs = []

    def sh(self, script):
        return run(["ip", "netns", "exec", self.name, "sh", "-c", script])

    def popen(self, cmd, **kw):
        p = subprocess.Popen(["ip", "netns", "exec", self.name] + cmd, **kw)
        self.procs.append(p)
        return p

    def in_echos(self):
        lines = [l.split() for l in self.sh("cat /proc/net/snmp").stdout.splitlines()
                 if l.startswith("Icmp:")]
        return int(lines[1][lines[0].index("InEchos")])

    def scrape(self, port, count=1, every=0.0, enc="plain", want=(), path="/metrics"):
        """Run the scraper; returns the list of per-scrape dicts (blocking)."""
        r = subprocess.run(["ip", "netns", "exec", self.name, sys.executable, "-c", SCRAPER,
                            "127.0.0.1", str(port), path, str(count), str(every), enc,
                            ",".join(want)], capture_output=True, text=True,
                           timeout=count * (every + 60) + 60)
        if r.returncode != 0:
            raise RuntimeError(f"scraper failed: {r.stderr[-500:]}")
        return [json.loads(l) for l in r.stdout.splitlines()]

    def scrape_bg(self, port, count, every, enc="plain"):
        return self.popen([sys.executable, "-c", SCRAPER, "127.0.0.1", str(port), "/metrics",
                           str(count), str(every), enc, ""],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def close(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        subprocess.run(["ip", "netns", "del", self.name], timeout=30)


def cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def targets(n):
    return [f"127.1.{i // 250}.{i % 250 + 1}" for i in range(n)]


def free_port(ns):
    out = ns.sh("python3 -c \"import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); "
                "print(s.getsockname()[1])\"").stdout
    return int(out.strip())


class Beacond:
    """beacond in ns with n loopback targets; its log goes to a file."""

    def __init__(self, ns, tmp, n, interval="1s", histogram="fine", tag="b"):
        self.ns = ns
        self.port = free_port(ns)
        cfg = harness.base_config(
            tcp=None, udp=None,
            daemon={"log_level": "notice", "log_target": os.path.join(tmp, f"{tag}.log"),
                    "stats_interval": "0", "state_directory": ""},   # history in memory
            icmp={"interval": interval, "timeout": "1s", "summary_interval": "0",
                  "socket": "dgram"},
            web={"listen": f"127.0.0.1:{self.port}", "histogram": histogram},
            targets={f"t{i}": {"host": a} for i, a in enumerate(targets(n))})
        path = os.path.join(tmp, f"{tag}.ini")
        with open(path, "w") as f:
            f.write(cfg)
        self.p = ns.popen([os.environ["BEACOND"], "-c", path],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # Ready: the daemon logs event=ready once every socket is open (a
        # full scrape would be a poor probe: 30 MB at 10 000 targets).
        self.log = os.path.join(tmp, f"{tag}.log")
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            try:
                with open(self.log) as f:
                    if "event=ready" in f.read():
                        break
            except FileNotFoundError:
                pass
            if self.p.poll() is not None:
                raise RuntimeError(f"beacond exited ({self.p.returncode})")
            time.sleep(0.5)
        else:
            raise RuntimeError("beacond never logged ready")
        self.pid = self.p.pid

    def stop(self):
        self.p.send_signal(signal.SIGTERM)
        self.p.wait(timeout=60)


def parse_samples(lines):
    out = {}
    for l in lines:
        name_labels, _, v = l.rpartition(" ")
        out[name_labels] = float(v)
    return out


LATE = "beacond_ping_send_lateness_seconds"
WEB_CPU = "beacond_web_cpu_seconds_total"


def snapshot(b):
    s = parse_samples(b.ns.scrape(b.port, want=[LATE + "_bucket", WEB_CPU])[0]["keep"])
    return {"cpu": cpu_s(b.pid), "req": b.ns.in_echos(), "web": s.get(WEB_CPU, 0.0),
            "late": {k: v for k, v in s.items() if k.startswith(LATE)}}


def late_quantile(a, b, q):
    """q-quantile of the lateness observed between snapshots a and b,
    linear inside the bucket (as histogram_quantile does)."""
    bounds = []
    for k, v in b["late"].items():
        m = re.search(r'le="([^"]+)"', k)
        le = math.inf if m.group(1) == "+Inf" else float(m.group(1))
        bounds.append((le, v - a["late"].get(k, 0.0)))
    bounds.sort()
    total = bounds[-1][1]
    if total <= 0:
        return float("nan")
    rank, prev_le, prev_c = q * total, 0.0, 0.0
    for le, c in bounds:
        if c >= rank:
            if math.isinf(le):
                return prev_le
            return prev_le + (le - prev_le) * (rank - prev_c) / max(c - prev_c, 1e-9)
        prev_le, prev_c = le, c
    return prev_le


# ---------------------------------------------------------------- A ---

def part_a(tmp, window=30, warm=10):
    n = int(os.environ.get("METRICS_BENCH_A_TARGETS", "10000"))
    rows = []
    for rnd in range(2):
        na, nb = Ns(f"a{rnd}"), Ns(f"b{rnd}")
        try:
            log(f"A round {rnd + 1}: starting two daemons with {n} targets each")
            a = Beacond(na, tmp, n, tag=f"a{rnd}")
            b = Beacond(nb, tmp, n, tag=f"b{rnd}")
            scraped, quiet = (a, b) if rnd == 0 else (b, a)
            time.sleep(warm)
            s0, q0 = snapshot(scraped), snapshot(quiet)
            sc = scraped.ns.scrape_bg(scraped.port, window, 1.0, enc="gzip")
            out, _ = sc.communicate(timeout=window * 3 + 60)
            s1, q1 = snapshot(scraped), snapshot(quiet)
            scrapes = [json.loads(l) for l in out.splitlines()]
            for role, x0, x1 in (("scraped", s0, s1), ("not scraped", q0, q1)):
                req = x1["req"] - x0["req"]
                web = x1["web"] - x0["web"]
                rows.append({
                    "round": rnd + 1, "ns": "a" if (role == "scraped") == (rnd == 0) else "b",
                    "role": role, "requests": req,
                    "cpu_us": (x1["cpu"] - x0["cpu"] - web) * 1e6 / req,
                    "cpu_total_us": (x1["cpu"] - x0["cpu"]) * 1e6 / req,
                    "late_p99_us": late_quantile(x0, x1, 0.99) * 1e6,
                    "scrapes": len(scrapes) if role == "scraped" else 2,
                    "web_ms_per_scrape": web * 1e3 / (len(scrapes) + 2) if role == "scraped" else float("nan"),
                    "scrape_s_max": max(s["s"] for s in scrapes) if role == "scraped" else float("nan"),
                    "bytes": scrapes[-1]["bytes"] if role == "scraped" else 0,
                })
            a.stop()
            b.stop()
        finally:
            na.close()
            nb.close()
    print(f"\n## A. {n} targets at 1 Hz, scraped once a second (gzip) vs not, side by side "
          "(two namespaces at once, roles swapped in round 2)\n")
    print("| round | ns | role | requests | CPU/probe (pinging) | CPU/probe (all) | "
          "lateness p99 | scrape CPU | slowest scrape | body |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['round']} | {r['ns']} | {r['role']} | {r['requests']} | {r['cpu_us']:.2f} us | "
              f"{r['cpu_total_us']:.2f} us | {r['late_p99_us']:.0f} us | "
              f"{r['web_ms_per_scrape']:.1f} ms | {r['scrape_s_max'] * 1e3:.0f} ms | "
              f"{r['bytes'] / 1e6:.2f} MB |")
    for rnd in (1, 2):
        s = [r for r in rows if r["round"] == rnd and r["role"] == "scraped"][0]
        q = [r for r in rows if r["round"] == rnd and r["role"] != "scraped"][0]
        print(f"\nround {rnd}: scraped/not ratios: CPU per probe (pinging) "
              f"{s['cpu_us'] / q['cpu_us']:.3f}, CPU per probe (all) "
              f"{s['cpu_total_us'] / q['cpu_total_us']:.3f}, lateness p99 "
              f"{s['late_p99_us'] / q['late_p99_us']:.3f}")
    sys.stdout.flush()


# ---------------------------------------------------------------- B ---

def part_b(tmp, n_scrapes=20):
    rows = []
    for n in (1000, 10_000):
        for hist in ("fine", "off"):
            ns = Ns(f"b{n}{hist}")
            try:
                log(f"B: {n} targets, histogram {hist}")
                b = Beacond(ns, tmp, n, interval="1h", histogram=hist, tag=f"b{n}{hist}")
                time.sleep(2)
                for enc in ("plain", "gzip"):
                    w0 = parse_samples(ns.scrape(b.port, want=[WEB_CPU])[0]["keep"])[WEB_CPU]
                    sc = ns.scrape(b.port, count=n_scrapes, enc=enc)
                    w1 = parse_samples(ns.scrape(b.port, want=[WEB_CPU])[0]["keep"])[WEB_CPU]
                    # The two reads of the counter are scrapes too (plain).
                    rows.append({"n": n, "hist": hist, "enc": enc, "bytes": sc[-1]["bytes"],
                                 "plain": sc[-1]["plain"],
                                 "cpu_ms": (w1 - w0) * 1e3 / (n_scrapes + 1),
                                 "s_med": sorted(s["s"] for s in sc)[len(sc) // 2],
                                 "s_max": max(s["s"] for s in sc)})
                b.stop()
            finally:
                ns.close()
    print(f"\n## B. Bytes and CPU per scrape ({n_scrapes} back-to-back scrapes, probes at 1 h)\n")
    print("| targets | histogram | gzip | bytes on the wire | text | CPU per scrape | "
          "time median | time max |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['n']} | {r['hist']} | {'on' if r['enc'] == 'gzip' else 'off'} | "
              f"{r['bytes']:,} | {r['plain']:,} | {r['cpu_ms']:.1f} ms | "
              f"{r['s_med'] * 1e3:.1f} ms | {r['s_max'] * 1e3:.1f} ms |")
    sys.stdout.flush()


# ---------------------------------------------------------------- C ---

def smokeping(ns, hosts):
    port = free_port(ns)
    p = ns.popen([SMOKEPING, f"--web.listen-address=127.0.0.1:{port}", "--ping.interval=1s",
                  "--config.file=/nonexistent"] + hosts,
                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # It starts its probers one by one and listens only after the last
    # (1 000 take over a minute on this VM); its scrapes may then take
    # longer than any timeout, so only wait for the port to accept.
    t0 = time.monotonic()
    while time.monotonic() < t0 + 600:
        r = subprocess.run(["ip", "netns", "exec", ns.name, sys.executable, "-c",
                            "import socket,sys; socket.create_connection(('127.0.0.1', int(sys.argv[1])), 2)",
                            str(port)], capture_output=True, timeout=30)
        if r.returncode == 0:
            log(f"smokeping_prober listens after {time.monotonic() - t0:.0f} s")
            return p, port
        time.sleep(1)
    raise RuntimeError("smokeping_prober never listened")


def run_c(ns, pid, port, seconds, want, timeout_each=60):
    time.sleep(5)
    c0, r0 = cpu_s(pid), ns.in_echos()
    times = []
    t_end = time.monotonic() + seconds
    last = None
    while time.monotonic() < t_end:
        t0 = time.monotonic()
        try:
            s = ns.scrape(port, want=want)[0]
            times.append(s["s"])
            last = s
        except Exception:
            times.append(float("inf"))   # no answer within the 60 s timeout
        time.sleep(max(0.0, 5 - (time.monotonic() - t0)))
    c1, r1 = cpu_s(pid), ns.in_echos()
    return (c1 - c0) * 1e6 / max(r1 - r0, 1), r1 - r0, times, last


def part_c(tmp, seconds=40):
    hosts = targets(1000)
    rows = []
    ns = Ns("c")
    try:
        log("C: smokeping_prober, 1 target (baseline RSS)")
        p1, _ = smokeping(ns, hosts[:1])
        time.sleep(3)
        base = rss_kib(p1.pid)
        p1.kill()
        p1.wait()
        log("C: smokeping_prober, 1 000 targets")
        p, port = smokeping(ns, hosts)
        cpu, req, times, last = run_c(ns, p.pid, port, seconds,
                                      ["smokeping_requests_total", "smokeping_response_duration_seconds_count"])
        rss = rss_kib(p.pid)
        s = parse_samples(last["keep"]) if last else {}
        sent = sum(v for k, v in s.items() if k.startswith("smokeping_requests_total"))
        got = sum(v for k, v in s.items() if k.startswith("smokeping_response_duration_seconds_count"))
        rows.append(("prometheus-smokeping-prober", cpu, req, (rss - base) * 1024 / 1000,
                     sent, sent - got, times))
        p.kill()
        p.wait()

        log("C: beacond, 1 target (baseline RSS)")
        b1 = Beacond(ns, tmp, 1, tag="c1")
        time.sleep(3)
        base = rss_kib(b1.pid)
        b1.stop()
        log("C: beacond, 1 000 targets")
        b = Beacond(ns, tmp, 1000, tag="c1000")
        cpu, req, times, last = run_c(ns, b.pid, b.port, seconds,
                                      ["beacond_ping_sent_total", "beacond_ping_lost_total"])
        rss = rss_kib(b.pid)
        s = parse_samples(last["keep"]) if last else {}
        sent = sum(v for k, v in s.items() if k.startswith("beacond_ping_sent_total"))
        lost = sum(v for k, v in s.items() if k.startswith("beacond_ping_lost_total"))
        rows.append(("beacond", cpu, req, (rss - base) * 1024 / 1000, sent, lost, times))
        b.stop()
    finally:
        ns.close()
    print(f"\n## C. 1 000 loopback targets at 1 Hz, datagram sockets, {seconds} s each, "
          "scraped every 5 s\n")
    print("| tool | CPU per probe | requests | memory per target | sent (reported) | "
          "lost (reported) | scrape median | scrape max |")
    print("|---|---|---|---|---|---|---|---|")
    for name, cpu, req, mem, sent, lost, times in rows:
        t = sorted(times)
        answered = sum(1 for x in t if x != float("inf"))
        print(f"| {name} | {cpu:.1f} us | {req} | {mem / 1024:.1f} KiB | {sent:.0f} | {lost:.0f} | "
              f"{t[len(t) // 2] * 1e3:.1f} ms | {t[-1] * 1e3:.1f} ms ({answered}/{len(t)} answered) |")
    if len(rows) == 2:
        print(f"\nCPU per probe ratio smokeping_prober / beacond: {rows[0][1] / rows[1][1]:.1f}")
    sys.stdout.flush()


def main():
    if os.geteuid() != 0:
        print("metrics bench: needs root (network namespaces)", file=sys.stderr)
        return 77
    parts = sys.argv[1:] or ["a", "b", "c"]
    with tempfile.TemporaryDirectory(prefix="beacond-mbench-") as tmp:
        if "b" in parts:
            part_b(tmp)
        if "c" in parts:
            if harness.have(SMOKEPING):
                part_c(tmp)
            else:
                print(f"\n## C skipped: {SMOKEPING} not installed")
        if "a" in parts:
            part_a(tmp)
    return 0


if __name__ == "__main__":
    sys.exit(main())
