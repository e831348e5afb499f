#!/usr/bin/env python3
"""ICMP benchmark: beacond against oping and fping, side by side in one run.

Two parts, both inside network namespaces this script creates (so all
traffic stays on a private loopback or a private veth pair):

1. Scale: 10 000 loopback targets 127.1.x.y pinged at 1 Hz for SECONDS
   (default 60) by one beacond process, then by oping (one process), then
   by fping (two processes of 5 000, since one fping cannot hold 10 000).
   For each: loss as the tool reports it, CPU per probe (utime+stime from
   /proc/PID/stat over a window in which no packet capture runs, divided by
   the echo requests the namespace's kernel received in it, Icmp InEchos;
   the reply's processing is included), memory per target (RSS at the end
   minus the RSS of the same tool with no/one target, divided by 10 000),
   and send lateness: after the CPU window every echo request is captured
   on lo (tcpdump, ns timestamps); per target the k-th request is compared
   with the ideal grid t0 + k * 1 s anchored at that target's least-late
   request, which is what "lateness" means for a scheduler with absolute
   deadlines.  If beacond reports its own lateness (a `lateness_p99_us` key
   in any log line) that is shown as well.

   A reference pinger (bench/icmp_ref.c: the same socket, timestamps,
   targets and send grid, but no bookkeeping at all) runs the same list:
   its CPU per probe is the floor under any pinger here.  Because this
   machine's speed drifts by tens of percent from minute to minute, the
   "floor" section also runs beacond and the reference at the same time,
   in two namespaces, pinned to different CPUs and swapped each round, and
   reports the ratio of their CPU per probe round by round.  It runs those
   rounds once more with both CPUs kept busy by a SCHED_IDLE spinner: on
   this VM the first send after a sleep costs several times the others
   (`icmp_ref -P` prints sendto's time by position in the batch), so the
   warm rounds show the cost of the code with less of the machine's idle
   and wake-up costs in it.  README "ICMP pinger" has the figures.

2. Accuracy against the wire: in a probe/target namespace pair, tcpdump on
   the probe side's veth with nanosecond timestamps; every RTT a tool
   reports is compared with the request->reply time of the same probe in
   the capture: mean bias and p99 of |difference|.

Prints one table on stdout.  Needs root, tcpdump, oping, fping, nft, ip.
"""
import argparse
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
sys.path.insert(0, HERE)

import harness  # noqa: E402
import netns  # noqa: E402
import pcap  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
N_TARGETS = 10_000


def log(msg):
    sys.stderr.write(f"[icmp-bench {time.strftime('%H:%M:%S')}] {msg}\n")
    sys.stderr.flush()


def pct(values, p):
    if not values:
        return float("nan")
    s = sorted(values)
    return s[max(0, math.ceil(p / 100 * len(s)) - 1)]


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


def cpu_times():
    """(busy, idle, steal) jiffies of the whole machine, from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]
    steal = v[7] if len(v) > 7 else 0
    return sum(v[:8]) - idle - steal, idle, steal


def targets_list():
    return [f"127.1.{i // 250}.{i % 250 + 1}" for i in range(N_TARGETS)]


class Capture:
    """tcpdump in a namespace, writing ns-precision timestamps to a file."""

    def __init__(self, topo, ns, iface, bpf, path):
        self.path = path
        self.proc = topo.popen(ns, [
            "tcpdump", "-i", iface, "-n", "-s", "128", "-B", "65536", "-w", path,
            "--time-stamp-precision=nano", bpf],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        line = self.proc.stderr.readline()
        if "listening" not in line:
            raise RuntimeError(f"tcpdump did not start: {line}")
        self.stats = ""

    def stop(self):
        # tcpdump hands packets over in blocks (up to 1 s by default); give
        # the last block time to arrive before SIGINT discards it.
        time.sleep(1.5)
        self.proc.send_signal(signal.SIGINT)
        _, err = self.proc.communicate(timeout=30)
        self.stats = " ".join(err.split())
        m = re.search(r"(\d+) packets dropped by kernel", err)
        self.dropped = int(m.group(1)) if m else -1
        return list(pcap.read(self.path))


def lateness(packets, interval_ns=1_000_000_000, skip_s=2.0, tail_s=1.0):
    """Send lateness and interval error (us) of echo requests, per target
    against its ideal grid t0 + k * interval anchored at its least-late send,
    over the steady state: the first skip_s and last tail_s seconds of the
    capture are left out (start-up placement of first pings is not what
    "lateness" is about; the start-up burst is reported separately)."""
    by_dst = {}
    reqs = [p for p in packets if p[4] == pcap.ECHO_REQUEST[p[1]]]
    if not reqs:
        return [], []
    lo = min(p[0] for p in reqs) + int(skip_s * 1e9)
    hi = max(p[0] for p in reqs) - int(tail_s * 1e9)
    for t, fam, _src, dst, typ, _ident, _seq in reqs:
        if lo <= t <= hi:
            by_dst.setdefault(dst, []).append(t)
    late, ivl = [], []
    for ts in by_dst.values():
        ts.sort()
        # Grid index: the next slot, or more if a send was skipped (a gap of
        # about two intervals).  A tool that drifts slowly stays on k+1.
        ks = [0]
        for a, b in zip(ts, ts[1:]):
            ks.append(ks[-1] + max(1, round((b - a) / interval_ns)))
        raw = [t - k * interval_ns for k, t in zip(ks, ts)]
        base = min(raw)
        late += [(r - base) / 1000 for r in raw]
        ivl += [abs(b - a - interval_ns) / 1000 for a, b in zip(ts, ts[1:])]
    return late, ivl


def startup_burst(packets):
    """Most echo requests in any one second of the capture's first 3 s."""
    reqs = sorted(p[0] for p in packets if p[4] == pcap.ECHO_REQUEST[p[1]])
    if not reqs:
        return 0
    best, j = 0, 0
    for i, t in enumerate(reqs):
        if t - reqs[0] > 2_000_000_000:
            break
        while j < len(reqs) and reqs[j] - t < 1_000_000_000:
            j += 1
        best = max(best, j - i)
    return best


def in_echos(topo):
    """Echo requests the kernel in P has received so far (/proc/net/snmp,
    Icmp InEchos): on the private loopback, every request any tool sent."""
    lines = [l.split() for l in topo.ns(topo.P, "cat", "/proc/net/snmp").stdout.splitlines()
             if l.startswith("Icmp:")]
    return int(lines[1][lines[0].index("InEchos")])


class Phases:
    """The middle of every scale run, around tools that were just started:

    1. the capture started before them runs 3 s more (the start-up burst),
    2. a window with no capture at all gives CPU per probe -- a packet
       capture's tap runs inside the sender's sendto() and would be billed
       to the tool (about +1 us per probe here) -- counting requests with
       the kernel's own InEchos counter,
    3. a second capture to the end gives send lateness."""

    def __init__(self, topo, tmp, label):
        self.topo, self.tmp, self.label = topo, tmp, label
        self.cap1 = Capture(topo, topo.P, "lo", "icmp[0] == 8 and dst net 127.1.0.0/16",
                            os.path.join(tmp, f"scale-{label}-start.pcap"))

    def run(self, pids, t_start, seconds):
        time.sleep(max(0.0, t_start + 3 - time.time()))
        self.startup = self.cap1.stop()
        time.sleep(1)
        cpu_seconds = max(10.0, 0.4 * seconds)
        a_cpu, a_req = sum(cpu_s(p) for p in pids), in_echos(self.topo)
        time.sleep(cpu_seconds)
        b_cpu, b_req = sum(cpu_s(p) for p in pids), in_echos(self.topo)
        self.cpu, self.requests = b_cpu - a_cpu, b_req - a_req
        self.cap2 = Capture(self.topo, self.topo.P, "lo",
                            "icmp[0] == 8 and dst net 127.1.0.0/16",
                            os.path.join(self.tmp, f"scale-{self.label}.pcap"))

    def finish(self):
        self.packets = self.cap2.stop()
        self.stats = f"start {self.cap1.stats}; end {self.cap2.stats}"
        return self.packets

    def cpu_us(self):
        return self.cpu * 1e6 / self.requests if self.requests else float("nan")


# ---------------------------------------------------------------- scale ---

# What is measured here is the pinger: the latency history (24 KiB a target
# by design, bench/history) and the web listener are off.
PINGER_ONLY = {"history": "no"}


def scale_beacond(topo, tmp, seconds, socket_kind):
    icmp = {"interval": "1s", "timeout": "1s", "summary_interval": "0",
            "log_replies": "no", "socket": socket_kind, **PINGER_ONLY}
    # Zero-target baseline: same config, no [target] sections.
    d0 = topo.daemon(harness.base_config(icmp=icmp, daemon={"log_level": "info"}, web=None))
    d0.start(timeout=30)
    time.sleep(2)
    base = rss_kib(d0.pid)
    d0.stop()
    d0.close()

    targets = {f"t{i}": {"host": a} for i, a in enumerate(targets_list())}
    # The log goes to a file: a pipe read by this script could fill up
    # (10 000 state lines at start, 10 000 summaries on SIGUSR1) and stall
    # the daemon on our reader, which is not what is being measured.
    logpath = os.path.join(tmp, "beacond-scale.log")
    d = topo.daemon(harness.base_config(icmp=icmp, targets=targets, web=None,
                                        daemon={"log_level": "info", "log_target": logpath}))
    ph = Phases(topo, tmp, "beacond")
    d.start(wait_ready=False)
    tail = LogTail(logpath, d)
    tail.wait(lambda e: e.get("event") == "ready", 60)
    t_start = time.time()
    kind = tail.wait(lambda e: e.get("event") == "socket" and e.get("family") == "4",
                     10).get("kind", "?")
    ph.run([d.pid], t_start, seconds)
    time.sleep(max(0.0, t_start + seconds - time.time()))
    rss = rss_kib(d.pid)
    t_sig = time.time()
    since = len(tail.events)
    d.signal(signal.SIGUSR1)
    # icmp_stats follows the last summary of the dump.
    st = tail.wait(lambda e: e.get("event") == "icmp_stats" and e.get("why") == "signal", 120)
    sums = [e for e in tail.events[since:] if e.get("event") == "summary"]
    own = [st] if "lateness_p99_us" in st else []
    d.stop(timeout=60)
    pk = ph.finish()
    d.close()
    # Lateness up to the SIGUSR1: the summary dump itself is not scheduling.
    pk_sched = [p for p in pk if p[0] <= t_sig * 1e9]
    late, ivl = lateness(pk_sched)
    sent = sum(int(s.get("sent", 0)) for s in sums)
    lost = sum(int(s.get("lost", 0)) for s in sums)
    log(f"beacond: {ph.requests} requests in the CPU window, cpu {ph.cpu:.2f} s, "
        f"rss {rss} KiB (base {base})")
    row = {
        "tool": f"beacond ({kind})", "procs": 1, "seconds": round(time.time() - t_start),
        "sent": sent, "lost": lost, "cpu_us": ph.cpu_us(),
        "mem_b": (rss - base) * 1024 / N_TARGETS,
        "rss_mib": rss / 1024,
        "late_p99_us": pct(late, 99), "late_max_us": max(late) if late else float("nan"),
        "ivl_p99_us": pct(ivl, 99), "cap": ph.stats, "burst": startup_burst(ph.startup),
    }
    if own:
        last = own[-1]
        row["own_lateness"] = {k: v for k, v in last.items() if "lateness" in k}
    return row


class LogTail:
    """Follows a log file the daemon writes, parsing each complete line."""

    def __init__(self, path, daemon):
        self.path, self.daemon = path, daemon
        self.events = []
        self._buf = b""
        self._pos = 0

    def poll(self):
        try:
            with open(self.path, "rb") as f:
                f.seek(self._pos)
                chunk = f.read()
        except FileNotFoundError:
            return
        self._pos += len(chunk)
        self._buf += chunk
        *lines, self._buf = self._buf.split(b"\n")
        self.events += [harness.parse_logfmt(x.decode("utf-8", "replace")) for x in lines]

    def wait(self, pred, timeout):
        deadline = time.monotonic() + timeout
        i = 0
        while True:
            self.poll()
            for e in self.events[i:]:
                if pred(e):
                    return e
            i = len(self.events)
            if not self.daemon.alive():
                raise RuntimeError(f"beacond exited: {self.daemon.lines[-5:]}")
            if time.monotonic() > deadline:
                raise RuntimeError("timed out reading beacond's log file")
            time.sleep(0.05)


def baseline_rss(topo, cmd):
    p = topo.popen(topo.P, cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.5)
    r = rss_kib(p.pid)
    p.wait(timeout=30)
    return r


def run_tools(topo, tmp, label, cmds, seconds, parse):
    """Run the processes in cmds at once; CPU, RSS and lateness as for
    beacond (see Phases); parse their output."""
    ph = Phases(topo, tmp, label)
    outs, procs = [], []
    for i, cmd in enumerate(cmds):
        out = open(os.path.join(tmp, f"{label}-{i}.out"), "w+")
        outs.append(out)
        procs.append(topo.popen(topo.P, cmd, stdout=out, stderr=subprocess.STDOUT))
    t_start = time.time()
    pids = [p.pid for p in procs]
    ph.run(pids, t_start, seconds)
    # RSS just before the end (the tools exit by themselves).
    time.sleep(max(0.0, t_start + seconds - 3 - time.time()))
    rss = [rss_kib(p) for p in pids]
    for p in procs:
        p.wait(timeout=seconds + 120)
    pk = ph.finish()
    sent = lost = 0
    for out in outs:
        out.seek(0)
        s, lo = parse(out.read())
        sent += s
        lost += lo
        out.close()
    late, ivl = lateness(pk)
    log(f"{label}: {ph.requests} requests in the CPU window, cpu {ph.cpu:.2f} s, "
        f"rss {rss} KiB")
    return {
        "procs": len(procs), "seconds": round(time.time() - t_start), "sent": sent,
        "lost": lost, "cpu_us": ph.cpu_us(),
        "rss_list": rss, "late_p99_us": pct(late, 99),
        "late_max_us": max(late) if late else float("nan"),
        "ivl_p99_us": pct(ivl, 99), "cap": ph.stats, "burst": startup_burst(ph.startup),
    }


def parse_oping(text):
    sent = lost = 0
    for m in re.finditer(r"(\d+) packets transmitted, (\d+) received", text):
        sent += int(m.group(1))
        lost += int(m.group(1)) - int(m.group(2))
    return sent, lost


def parse_fping(text):
    sent = lost = 0
    for m in re.finditer(r"xmt/rcv/%loss = (\d+)/(\d+)/", text):
        sent += int(m.group(1))
        lost += int(m.group(1)) - int(m.group(2))
    return sent, lost


def scale_oping(topo, tmp, seconds):
    hosts = os.path.join(tmp, "hosts.txt")
    base = baseline_rss(topo, ["oping", "-c", "3", "-i", "1", "127.0.0.1"])
    row = run_tools(topo, tmp, "oping",
                    [["oping", "-c", str(seconds), "-i", "1", "-w", "1", "-f", hosts]],
                    seconds, parse_oping)
    row["tool"] = "oping (raw)"
    row["rss_mib"] = sum(row["rss_list"]) / 1024
    row["mem_b"] = (sum(row["rss_list"]) - base) * 1024 / N_TARGETS
    return row


def scale_fping(topo, tmp, seconds):
    all_hosts = targets_list()
    files = []
    for i in range(2):
        path = os.path.join(tmp, f"fping-{i}.txt")
        with open(path, "w") as f:
            f.write("\n".join(all_hosts[i::2]) + "\n")
        files.append(path)
    base = baseline_rss(topo, ["fping", "-c", "3", "-p", "1000", "-q", "127.0.0.1"])
    cmds = [["fping", "-c", str(seconds), "-p", "1000", "-i", "0.1", "-t", "1000",
             "-q", "-f", f] for f in files]
    row = run_tools(topo, tmp, "fping", cmds, seconds, parse_fping)
    row["tool"] = "fping x2 (raw)"
    row["rss_mib"] = sum(row["rss_list"]) / 1024
    row["mem_b"] = (sum(row["rss_list"]) - 2 * base) * 1024 / N_TARGETS
    return row


# ------------------------------------------------------------- accuracy ---

ACC_BPF = "icmp or (icmp6 and (ip6[40] == 128 or ip6[40] == 129))"


def wire_rtts(packets):
    """{(family, dst): [(seq, wire_rtt_us)] in send order} from a capture."""
    req, out = {}, {}
    for t, fam, src, dst, typ, ident, seq in packets:
        if typ == pcap.ECHO_REQUEST[fam]:
            key = (fam, dst, ident, seq)
            if key not in req:
                req[key] = t
                out.setdefault((fam, dst), []).append([seq, None, t])
        elif typ == pcap.ECHO_REPLY[fam]:
            key = (fam, src, ident, seq)
            if key in req:
                for rec in reversed(out[(fam, src)]):
                    if rec[0] == seq and rec[2] == req[key]:
                        if rec[1] is None:
                            rec[1] = (t - req[key]) / 1000
                        break
    return {k: [(s, r) for s, r, _ in v] for k, v in out.items()}


def diff_stats(pairs):
    d = [rep - wire for rep, wire in pairs]
    if not d:
        return {"n": 0, "bias": float("nan"), "median": float("nan"), "p99": float("nan"),
                "max": float("nan")}
    return {"n": len(d), "bias": sum(d) / len(d), "median": pct(d, 50),
            "p99": pct([abs(x) for x in d], 99), "max": max(abs(x) for x in d)}


def start_as(d, binary, **kw):
    """d.start(**kw) with binary (None: this build).  harness.Daemon starts
    the module's BEACOND: it points at the other build for the start only."""
    saved, harness.BEACOND = harness.BEACOND, binary or harness.BEACOND
    try:
        d.start(**kw)
    finally:
        harness.BEACOND = saved


def acc_beacond(topo, tmp, n, socket_kind, other=None):
    """This build, or (other: its binary) another one, whose config then
    names neither the history nor the web listener (it may predate both)."""
    cap = Capture(topo, topo.P, "va", ACC_BPF, os.path.join(tmp, "acc-beacond.pcap"))
    d = topo.daemon(harness.base_config(
        icmp={"interval": "10ms", "timeout": "1s", "summary_interval": "0",
              "log_replies": "yes", "socket": socket_kind, **({} if other else PINGER_ONLY)},
        targets={"a4": {"host": netns.T_A4}, "a6": {"host": netns.T_A6}},
        daemon={"log_level": "info"}, web="omit" if other else None))
    start_as(d, other, timeout=30)
    kind = d.wait_event("socket", family="4").get("kind", "?")
    for name in ("a4", "a6"):
        d.wait_event("reply", target=name, count=n, timeout=n * 0.01 + 30)
    d.stop()
    st = d.events("icmp_stats", why="final")
    if st and "tx_stamped" in st[-1]:
        kind += f", tx_stamped={st[-1]['tx_stamped']}"
    wire = wire_rtts(cap.stop())
    d.close()
    res = {}
    for fam, name, dst in ((4, "a4", netns.T_A4), (6, "a6", netns.T_A6)):
        w = {s: r for s, r in wire.get((fam, dst), []) if r is not None}
        pairs = [(float(e["rtt_ms"]) * 1000, w[int(e["seq"])])
                 for e in d.events("reply", target=name) if int(e["seq"]) in w]
        res[fam] = diff_stats(pairs)
    return f"{'other beacond' if other else 'beacond'} ({kind})", res, "1 us"


def acc_fping(topo, tmp, n):
    cap = Capture(topo, topo.P, "va", ACC_BPF, os.path.join(tmp, "acc-fping.pcap"))
    p = topo.popen(topo.P, ["fping", "-C", str(n), "-p", "10", "-q", netns.T_A4, netns.T_A6],
                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out, _ = p.communicate(timeout=n * 0.01 + 60)
    wire = wire_rtts(cap.stop())
    res = {}
    for fam, dst in ((4, netns.T_A4), (6, netns.T_A6)):
        m = re.search(rf"^{re.escape(dst)}\s+:\s+(.*)$", out, re.M)
        reported = m.group(1).split() if m else []
        w = [r for _, r in wire.get((fam, dst), [])]
        pairs = [(float(r) * 1000, x) for r, x in zip(reported, w)
                 if r != "-" and x is not None]
        res[fam] = diff_stats(pairs)
    return "fping (raw)", res, "1 us"


def acc_oping(topo, tmp, n):
    cap = Capture(topo, topo.P, "va", ACC_BPF, os.path.join(tmp, "acc-oping.pcap"))
    p = topo.popen(topo.P, ["oping", "-c", str(n), "-i", "0.01", netns.T_A4, netns.T_A6],
                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out, _ = p.communicate(timeout=n * 0.01 + 60)
    wire = wire_rtts(cap.stop())
    res = {}
    for fam, dst in ((4, netns.T_A4), (6, netns.T_A6)):
        w = {s: r for s, r in wire.get((fam, dst), []) if r is not None}
        pairs = []
        for m in re.finditer(rf"from \S+ \({re.escape(dst)}\): icmp_seq=(\d+) .*time=([\d.]+) ms",
                             out):
            seq = int(m.group(1))
            if seq in w:
                pairs.append((float(m.group(2)) * 1000, w[seq]))
        res[fam] = diff_stats(pairs)
    return "oping (raw)", res, "10 us"


# ---------------------------------------------------------------- main ---

def ref_binary():
    return os.path.join(os.path.dirname(harness.BEACOND), "bench", "icmp_ref")


# beacond's send grid for 10 000 probes a second (send_sched.h): 4 ms.
REF_GRID_MS = 4


def parse_ref(text):
    m = re.search(r"sent (\d+) received (\d+)", text)
    return (int(m.group(1)), int(m.group(1)) - int(m.group(2))) if m else (0, 0)


def scale_ref(topo, tmp, seconds):
    row = run_tools(topo, tmp, "ref",
                    [[ref_binary(), "-n", str(N_TARGETS), "-i", "1000",
                      "-g", str(REF_GRID_MS), "-s", str(seconds)]],
                    seconds, parse_ref)
    row["tool"] = "floor: icmp_ref (dgram)"
    row["rss_mib"] = float("nan")
    row["mem_b"] = float("nan")
    return row


def spinner(cpu, seconds):
    """A busy loop at SCHED_IDLE pinned to one CPU, ending by itself: it runs
    only when nothing else wants that CPU, so the CPU never goes idle
    between send batches, and it is never charged to the tool measured."""
    return subprocess.Popen(["chrt", "-i", "0", "taskset", "-c", str(cpu), "timeout",
                             str(int(seconds)), "sh", "-c", "while :; do :; done"])


def paired(topo, tmp, rounds, seconds, socket_kind, warm=False):
    """beacond in P and icmp_ref in T at the same time, each pinned to one
    CPU, swapped every round: CPU per probe of each over the same seconds
    (both send 10 000 a second on an absolute schedule).  warm: a spinner
    keeps both CPUs busy (see spinner())."""
    icmp = {"interval": "1s", "timeout": "1s", "summary_interval": "0",
            "log_replies": "no", "socket": socket_kind, **PINGER_ONLY}
    targets = {f"t{i}": {"host": a} for i, a in enumerate(targets_list())}
    topo.sysctl(topo.T, "net.ipv4.ping_group_range", "0 2147483647")
    out = []
    for r in range(rounds):
        cpu_d, cpu_r = (0, 1) if r % 2 == 0 else (1, 0)
        logpath = os.path.join(tmp, f"paired-{'warm-' if warm else ''}{r}.log")
        spin = [spinner(c, seconds + 40) for c in (0, 1)] if warm else []
        d = topo.daemon(harness.base_config(icmp=icmp, targets=targets, web=None,
                                            daemon={"log_level": "info",
                                                    "log_target": logpath}))
        d.start(wait_ready=False)
        LogTail(logpath, d).wait(lambda e: e.get("event") == "ready", 60)
        os.sched_setaffinity(d.pid, {cpu_d})
        ref = topo.popen(topo.T, [ref_binary(), "-n", str(N_TARGETS), "-i", "1000",
                                  "-g", str(REF_GRID_MS), "-s", str(seconds + 6)],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        os.sched_setaffinity(ref.pid, {cpu_r})
        time.sleep(4)
        a_d, a_r, t_a = cpu_s(d.pid), cpu_s(ref.pid), time.monotonic()
        time.sleep(seconds)
        b_d, b_r, t_b = cpu_s(d.pid), cpu_s(ref.pid), time.monotonic()
        d.stop(timeout=60)
        d.close()
        text, _ = ref.communicate(timeout=60)
        for sp in spin:
            sp.terminate()
            sp.wait(timeout=10)
        probes = N_TARGETS * (t_b - t_a)
        us_d, us_r = (b_d - a_d) * 1e6 / probes, (b_r - a_r) * 1e6 / probes
        log(f"paired{' warm' if warm else ''} round {r + 1}: beacond {us_d:.2f} us/probe (CPU {cpu_d}), "
            f"icmp_ref {us_r:.2f} (CPU {cpu_r}); ref: {text.strip()}")
        out.append((us_d, us_r))
    return out


def versus(topo, tmp, rounds, seconds, other, socket_kind):
    """This beacond in P and another build (other: its binary) in T at the
    same time, 10 000 loopback targets each, each pinned to one CPU,
    swapped every round: CPU per probe of both over the same seconds, and
    their RSS at the end of each round.  Each build's RSS with no target is
    taken first, so the memory per target compares what a target costs in
    each, not the size of the binaries and their libraries."""
    icmp = {"interval": "1s", "timeout": "1s", "summary_interval": "0",
            "log_replies": "no", "socket": socket_kind}
    targets = {f"t{i}": {"host": a} for i, a in enumerate(targets_list())}
    topo.sysctl(topo.T, "net.ipv4.ping_group_range", "0 2147483647")
    # This build with the history and web listener off; the other build
    # may predate both keys, so its config names neither.
    sides = ((topo.P, harness.BEACOND, PINGER_ONLY, None), (topo.T, other, {}, "omit"))

    def start(ns, binary, extra, web, tgts, logpath):
        d = netns.NsDaemon(harness.base_config(icmp={**icmp, **extra}, targets=tgts, web=web,
                                               daemon={"log_level": "info",
                                                       "log_target": logpath}),
                           prefix=["ip", "netns", "exec", ns])
        topo.daemons.append(d)
        start_as(d, binary, wait_ready=False)
        LogTail(logpath, d).wait(lambda e: e.get("event") == "ready", 60)
        return d

    base = []
    for i, (ns, binary, extra, web) in enumerate(sides):
        d = start(ns, binary, extra, web, {}, os.path.join(tmp, f"versus-base-{i}.log"))
        time.sleep(2)
        base.append(rss_kib(d.pid))
        d.stop(timeout=60)
        d.close()
    log(f"versus: RSS with no target: this {base[0]} KiB, other {base[1]} KiB")
    out = []
    for r in range(rounds):
        cpu_new, cpu_old = (0, 1) if r % 2 == 0 else (1, 0)
        ds = []
        for (ns, binary, extra, web), cpu in zip(sides, (cpu_new, cpu_old)):
            d = start(ns, binary, extra, web, targets,
                      os.path.join(tmp, f"versus-{r}-{len(ds)}.log"))
            os.sched_setaffinity(d.pid, {cpu})
            ds.append(d)
        time.sleep(4)
        a = [cpu_s(d.pid) for d in ds]
        t_a = time.monotonic()
        time.sleep(seconds)
        b = [cpu_s(d.pid) for d in ds]
        t_b = time.monotonic()
        rss = [rss_kib(d.pid) for d in ds]
        for d in ds:
            d.stop(timeout=60)
            d.close()
        probes = N_TARGETS * (t_b - t_a)
        us = [(y - x) * 1e6 / probes for x, y in zip(a, b)]
        log(f"versus round {r + 1}: this {us[0]:.2f} us/probe (CPU {cpu_new}, RSS {rss[0]} KiB), "
            f"other {us[1]:.2f} (CPU {cpu_old}, RSS {rss[1]} KiB)")
        out.append((us[0], us[1], rss[0], rss[1]))
    return out, base


def fmt(x, spec):
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=int, default=int(os.environ.get("BENCH_ICMP_SECONDS", 60)))
    ap.add_argument("--probes", type=int, default=1000, help="accuracy probes per family")
    ap.add_argument("--socket", default="auto", choices=("auto", "dgram", "raw"),
                    help="beacond's [icmp] socket (auto = dgram: ping_group_range is opened "
                         "in the bench namespace)")
    ap.add_argument("--tools", default="beacond,ref,oping,fping",
                    help="comma-separated subset of beacond,ref,oping,fping")
    ap.add_argument("--pair-rounds", type=int, default=4,
                    help="rounds of beacond and icmp_ref at the same time (0: skip)")
    ap.add_argument("--pair-seconds", type=int, default=15)
    ap.add_argument("--warm-rounds", type=int, default=4,
                    help="paired rounds again with both CPUs kept busy by a SCHED_IDLE "
                         "spinner (0: skip)")
    ap.add_argument("--versus", metavar="BEACOND",
                    help="another beacond binary (e.g. the previous main's) to run side by "
                         "side with this one, paired and swapped like the floor rounds")
    ap.add_argument("--versus-rounds", type=int, default=6)
    ap.add_argument("--skip-scale", action="store_true")
    ap.add_argument("--skip-accuracy", action="store_true")
    args = ap.parse_args()
    why = netns.available()
    if why:
        sys.exit(f"icmp bench: {why}")
    for tool in ("tcpdump", "oping", "fping"):
        if not harness.have(tool):
            sys.exit(f"icmp bench: needs {tool} (apt-get install {tool})")
    if not os.access(harness.BEACOND, os.X_OK):
        sys.exit(f"icmp bench: no beacond binary at {harness.BEACOND} (set BEACOND)")
    tools = set(args.tools.split(","))
    if not tools <= {"beacond", "ref", "oping", "fping"}:
        sys.exit(f"icmp bench: unknown tool in --tools {args.tools}")
    dgram = args.socket != "raw"
    load0 = os.getloadavg()
    cpu0 = cpu_times()
    scale, acc, pairs, warm = [], [], [], []
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="beacond-icmpbench-") as tmp:
        with open(os.path.join(tmp, "hosts.txt"), "w") as f:
            f.write("\n".join(targets_list()) + "\n")
        if not args.skip_scale:
            with netns.Topology(dgram=dgram) as topo:
                if "beacond" in tools:
                    log(f"scale: beacond, {N_TARGETS} targets, {args.seconds} s")
                    scale.append(scale_beacond(topo, tmp, args.seconds, args.socket))
                if "ref" in tools:
                    log(f"scale: icmp_ref, {N_TARGETS} targets, {args.seconds} s")
                    scale.append(scale_ref(topo, tmp, args.seconds))
                if "oping" in tools:
                    log(f"scale: oping, {N_TARGETS} targets, {args.seconds} s")
                    scale.append(scale_oping(topo, tmp, args.seconds))
                if "fping" in tools:
                    log(f"scale: fping x2, {N_TARGETS} targets, {args.seconds} s")
                    scale.append(scale_fping(topo, tmp, args.seconds))
        if args.pair_rounds and {"beacond", "ref"} <= tools and dgram:
            with netns.Topology(dgram=dgram) as topo:
                log(f"floor: beacond and icmp_ref at once, {args.pair_rounds} rounds")
                pairs = paired(topo, tmp, args.pair_rounds, args.pair_seconds, args.socket)
        if args.warm_rounds and {"beacond", "ref"} <= tools and dgram:
            with netns.Topology(dgram=dgram) as topo:
                log(f"floor, CPUs kept busy: {args.warm_rounds} rounds")
                warm = paired(topo, tmp, args.warm_rounds, args.pair_seconds, args.socket,
                              warm=True)
        vs, vs_base = [], None
        if args.versus:
            with netns.Topology(dgram=dgram) as topo:
                log(f"versus {args.versus}: {args.versus_rounds} rounds")
                vs, vs_base = versus(topo, tmp, args.versus_rounds, args.pair_seconds,
                                     args.versus, args.socket)
        if not args.skip_accuracy:
            with netns.Topology(dgram=dgram) as topo:
                log(f"accuracy: {args.probes} probes per family and tool")
                if "beacond" in tools:
                    acc.append(acc_beacond(topo, tmp, args.probes, args.socket))
                    if args.versus:
                        acc.append(acc_beacond(topo, tmp, args.probes, args.socket,
                                               other=args.versus))
                if "fping" in tools:
                    acc.append(acc_fping(topo, tmp, args.probes))
                if "oping" in tools:
                    acc.append(acc_oping(topo, tmp, args.probes))

    print(f"# ICMP benchmark  ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
          f"{os.cpu_count()} CPUs, kernel {os.uname().release}, "
          f"{time.monotonic() - t0:.0f} s, load average {load0[0]:.1f} at start, "
          f"{os.getloadavg()[0]:.1f} at end)")
    busy, idle, steal = (b - a for a, b in zip(cpu0, cpu_times()))
    total = max(1, busy + idle + steal)
    print(f"# machine during the run: {100 * busy / total:.0f} % busy, "
          f"{100 * steal / total:.0f} % stolen by the hypervisor, {100 * idle / total:.0f} % idle "
          "(other work on the machine inflates lateness and loss for every tool)")
    if scale:
        print(f"\n## {N_TARGETS} loopback targets (127.1.x.y) at 1 Hz, {args.seconds} s, "
              "one namespace, tools one after another")
        print("| tool | procs | sent | lost | CPU us/probe | RSS MiB | bytes/target "
              "| send lateness p99 us | max us | interval error p99 us | start-up peak req/s |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for r in scale:
            print(f"| {r['tool']} | {r['procs']} | {r['sent']} | {r['lost']} "
                  f"| {fmt(r['cpu_us'], '.2f')} | {fmt(r['rss_mib'], '.1f')} "
                  f"| {fmt(r['mem_b'], '.0f')} | {fmt(r['late_p99_us'], '.0f')} "
                  f"| {fmt(r['late_max_us'], '.0f')} | {fmt(r['ivl_p99_us'], '.0f')} "
                  f"| {r['burst']} |")
        for r in scale:
            if r.get("own_lateness"):
                print(f"\n{r['tool']} reports its own lateness: {r['own_lateness']}")
        print("\nbeacond's own lateness (scheduled deadline -> sendto, its icmp_stats line) is the "
              "authoritative figure; the capture's includes the kernel path and tcpdump.")
        print("\nCPU = utime+stime over a window with no packet capture running / echo "
              "requests the namespace's kernel received in it (Icmp InEchos; reply handling "
              "included).  Lateness from a capture of every request on lo after that window, "
              "per target vs its ideal 1 s grid anchored at its least-late send, first 2 s "
              "and last 1 s left out; start-up peak = most requests in one second of the "
              "first 3 (10000 = evenly spread).  capture: "
              + "; ".join(f"{r['tool']}: {r['cap']}" for r in scale))
    for rows, title in ((pairs, "CPU per probe against the floor"),
                        (warm, "The same with both CPUs kept busy by a SCHED_IDLE spinner "
                               "(no idle between send batches)")):
        if not rows:
            continue
        ratios = sorted(d / r for d, r in rows)
        print(f"\n## {title}: beacond and icmp_ref at the same time, "
              f"{N_TARGETS} targets each, own CPU each, swapped every round "
              f"({args.pair_seconds} s per round)")
        print("| round | beacond us/probe | icmp_ref us/probe | ratio |")
        print("|---:|---:|---:|---:|")
        for i, (d, r) in enumerate(rows):
            print(f"| {i + 1} | {d:.2f} | {r:.2f} | {d / r:.2f} |")
        print(f"\nmedian: beacond {pct(sorted(d for d, _ in rows), 50):.2f} us/probe, "
              f"icmp_ref {pct(sorted(r for _, r in rows), 50):.2f}, ratio {pct(ratios, 50):.2f} "
              "(beacond's CPU per probe over the floor's, same seconds, same machine)")
    if vs:
        ratios = sorted(n / o for n, o, _, _ in vs)
        print(f"\n## This build against {args.versus}: both at the same time, "
              f"{N_TARGETS} targets each, own CPU each, swapped every round "
              f"({args.pair_seconds} s per round)")
        print("| round | this us/probe | other us/probe | ratio | this RSS KiB | other RSS KiB |")
        print("|---:|---:|---:|---:|---:|---:|")
        for i, (n, o, rn, ro) in enumerate(vs):
            print(f"| {i + 1} | {n:.2f} | {o:.2f} | {n / o:.2f} | {rn} | {ro} |")
        per = [sorted((x[2 + k] - b0) * 1024 / N_TARGETS for x in vs)
               for k, b0 in enumerate(vs_base)]
        print(f"\nmedian CPU ratio (this / other) {pct(ratios, 50):.2f}; memory per target "
              f"(RSS minus the build's own with no target: this {vs_base[0]} KiB, other "
              f"{vs_base[1]} KiB), median of the rounds: this {pct(per[0], 50):.0f} B, "
              f"other {pct(per[1], 50):.0f} B, difference {pct(per[0], 50) - pct(per[1], 50):+.0f} B")
    if acc:
        print(f"\n## RTT accuracy against the wire (veth capture in the probe namespace, "
              f"ns timestamps, {args.probes} probes per family at 10 ms)")
        print("| tool | family | matched | mean bias us | median diff us | p99 abs diff us "
              "| max abs diff us | tool's resolution |")
        print("|---|---:|---:|---:|---:|---:|---:|---|")
        for tool, res, resolution in acc:
            for fam in (4, 6):
                s = res[fam]
                print(f"| {tool} | {fam} | {s['n']} | {fmt(s['bias'], '+.1f')} "
                      f"| {fmt(s['median'], '+.1f')} "
                      f"| {fmt(s['p99'], '.1f')} | {fmt(s['max'], '.1f')} | {resolution} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
