"""beacond under a real systemd manager.

systemd is not PID 1 on the test machines, so this boots one: a tmpfs holds
an overlay whose lower layer is the host root (nothing on the host changes),
"meson install --destdir" puts the built beacond, its units, config and man
pages into it, and systemd-nspawn boots it with --private-network (all
traffic stays on the container's own loopback).  The test then drives the
container's manager with nsenter + systemctl/journalctl:

  start returns after READY=1 (StatusText already set, port 7 answers);
  reload with a good and a broken config (same MainPID, old behaviour kept,
  the rejection in journalctl -u beacond); health-ping lines in the journal
  with their syslog priorities, and as native journal fields
  (journalctl BEACOND_TARGET=lo); beaconctl on the unit's control socket; the watchdog killing a stopped (SIGSTOP)
  main process and Restart= bringing up a new one; stop with Result=success;
  beacond.socket passing port 7 to beacond-socket.service, which runs with
  no capabilities at all.

Exit status 77 (skipped) only when systemd-nspawn cannot run here at all:
not root, systemd-nspawn missing, or no tmpfs/overlay mounts allowed.
Everything is torn down in a cleanup even when a step fails.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402

BUILD = os.environ.get("BEACOND_BUILD_ROOT") or os.path.join(harness.SOURCE_ROOT, "build")

ECHO_CLIENT = r"""
import socket, sys
port = int(sys.argv[1])
ok = True
with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
    s.sendall(b"nspawn echo\n")
    buf = b""
    while len(buf) < 12:
        c = s.recv(100)
        if not c:
            break
        buf += c
    ok = ok and buf == b"nspawn echo\n"
with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
    u.settimeout(3)
    u.sendto(b"nspawn udp", ("127.0.0.1", port))
    data, _ = u.recvfrom(100)
    ok = ok and data == b"nspawn udp"
print("echo-ok" if ok else "echo-bad %r" % buf)
"""


def service_config(extra_target=False, broken=False):
    text = """[daemon]
log_level = info
shutdown_timeout = 2s

[tcp]
listen = 127.0.0.1:7, [::1]:7

[udp]
listen = 127.0.0.1:7, [::1]:7

[web]
enabled = no

[icmp]
interval = 200ms
timeout = 200ms
summary_interval = 1s
down_after = 2
up_after = 2

[target lo]
host = 127.0.0.1
"""
    if extra_target:
        text += "\n[target lo2]\nhost = 127.0.0.2\n"
    if broken:
        text = text.replace("[daemon]\n", "[daemon]\nno_such_key = 1\n", 1)
    return text


def run(cmd, timeout=30, check=True, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    if check and r.returncode != 0:
        raise AssertionError(f"{cmd} failed ({r.returncode}):\n{r.stdout}{r.stderr}")
    return r


def sanitized_build():
    r = run(["meson", "introspect", "--buildoptions", BUILD], check=False)
    if r.returncode != 0:
        return False
    opts = {o["name"]: o["value"] for o in json.loads(r.stdout)}
    return opts.get("b_sanitize", "none") not in ("none", "")


def can_run():
    """Why the test cannot run here at all, or None."""
    if os.geteuid() != 0:
        return "not root"
    if not shutil.which("systemd-nspawn"):
        return "systemd-nspawn not installed (package systemd-container)"
    probe = tempfile.mkdtemp(prefix="beacond-nspawn-probe-")
    try:
        if subprocess.run(["mount", "-t", "tmpfs", "tmpfs", probe],
                          capture_output=True).returncode != 0:
            return "cannot mount a tmpfs"
        subprocess.run(["umount", probe], capture_output=True)
    finally:
        os.rmdir(probe)
    return None


class Container:
    """The overlay, the nspawn process, and helpers to act inside."""

    def __init__(self):
        self.name = f"beacond-test-{os.getpid()}"
        self.work = tempfile.mkdtemp(prefix="beacond-nspawn-")
        self.root = os.path.join(self.work, "root")
        self.proc = None
        self.leader = None
        self.mounted = []

    # -- setup ----------------------------------------------------------
    def mount_overlay(self):
        run(["mount", "-t", "tmpfs", "-o", "mode=0755", "tmpfs", self.work])
        self.mounted.append(self.work)
        for d in ("upper", "work", "root"):
            os.mkdir(os.path.join(self.work, d))
        r = run(["mount", "-t", "overlay", "overlay", "-o",
                 f"lowerdir=/,upperdir={self.work}/upper,workdir={self.work}/work",
                 self.root], check=False)
        if r.returncode != 0:
            raise unittest.SkipTest(f"no overlay mount here: {r.stderr.strip()}")
        self.mounted.append(self.root)

    def trim_boot(self):
        """Only what the test needs starts: drop the host's enabled units
        (databases, timers, gettys) except D-Bus and journald."""
        etc = os.path.join(self.root, "etc", "systemd", "system")
        for d in os.listdir(etc):
            path = os.path.join(etc, d)
            if not d.endswith(".wants") or not os.path.isdir(path):
                continue
            for unit in os.listdir(path):
                if "dbus" not in unit and "journald" not in unit:
                    os.unlink(os.path.join(path, unit))
        # The container starts with no beacond state of the host's (a
        # daemon run there may have left /var/lib/beacond): with it,
        # StateDirectory= under DynamicUser= would have to move it across
        # the overlay's layers, which fails with EXDEV (status 238).
        for d in ("var/lib/beacond", "var/lib/private/beacond"):
            shutil.rmtree(os.path.join(self.root, d), ignore_errors=True)

    def install(self):
        run(["meson", "install", "--no-rebuild", "--quiet", "--destdir", self.root],
            cwd=BUILD, timeout=120)

    def path(self, p):
        return os.path.join(self.root, p.lstrip("/"))

    def boot(self):
        self.log = open(os.path.join(self.work, "nspawn.log"), "w")
        self.proc = subprocess.Popen(
            ["systemd-nspawn", "-D", self.root, "-M", self.name, "--register=no",
             "--keep-unit", "--private-network", "--console=passive", "-b"],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while self.leader is None:
            if self.proc.poll() is not None:
                raise AssertionError(f"systemd-nspawn exited: {self.nspawn_log()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no systemd in the container: {self.nspawn_log()}")
            r = run(["pgrep", "-P", str(self.proc.pid), "-x", "systemd"], check=False)
            if r.stdout.strip():
                self.leader = int(r.stdout.split()[0])
            else:
                time.sleep(0.1)
        # The manager's private socket appears a moment after PID 1 does;
        # until then systemctl fails, so poll rather than --wait.
        deadline = time.monotonic() + 60
        while True:
            r = self.ct("systemctl", "is-system-running", timeout=20, check=False)
            state = r.stdout.strip()
            if state in ("running", "degraded"):
                break
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise AssertionError(f"container state {state!r} ({r.stderr.strip()}): "
                                     f"{self.nspawn_log()}")
            time.sleep(0.1)

    def nspawn_log(self):
        try:
            with open(os.path.join(self.work, "nspawn.log")) as f:
                return f.read()[-3000:]
        except OSError:
            return ""

    # -- acting inside ----------------------------------------------------
    def ct(self, *cmd, timeout=30, check=True):
        """A command in every namespace of the container."""
        return run(["nsenter", "-t", str(self.leader), "-a", *cmd], timeout=timeout,
                   check=check)

    def net(self, *cmd, timeout=30, check=True):
        """A host command in the container's network namespace only."""
        return run(["nsenter", "-t", str(self.leader), "-n", *cmd], timeout=timeout,
                   check=check)

    def show(self, unit, prop):
        return self.ct("systemctl", "show", "-P", prop, unit).stdout.strip()

    def journal(self, unit, *args):
        out = self.ct("journalctl", "-u", unit, "-o", "json", "--no-pager", *args).stdout
        entries = []
        for line in out.splitlines():
            e = json.loads(line)
            msg = e.get("MESSAGE")
            if isinstance(msg, list):
                msg = bytes(msg).decode("utf-8", "replace")
            e["MESSAGE"] = msg or ""
            entries.append(e)
        return entries

    def journal_text(self, unit, lines=60):
        r = self.ct("journalctl", "-u", unit, "--no-pager", "-n", str(lines), check=False)
        return r.stdout

    def echo(self, port=7):
        script = os.path.join(self.work, "echo_client.py")
        with open(script, "w") as f:
            f.write(ECHO_CLIENT)
        r = self.net(sys.executable, script, str(port), check=False, timeout=20)
        return r.stdout.strip() == "echo-ok", r.stdout + r.stderr

    def write(self, path, text):
        with open(self.path(path), "w") as f:
            f.write(text)

    # -- teardown -----------------------------------------------------------
    def teardown(self):
        try:
            if self.proc is not None and self.proc.poll() is None:
                if self.leader is not None:
                    self.ct("systemctl", "poweroff", check=False, timeout=15)
                try:
                    self.proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(timeout=10)
        finally:
            if getattr(self, "log", None):
                self.log.close()
            for m in reversed(self.mounted):
                for _ in range(10):
                    if subprocess.run(["umount", m], capture_output=True).returncode == 0:
                        break
                    time.sleep(0.3)
                else:
                    subprocess.run(["umount", "-l", m], capture_output=True)
            shutil.rmtree(self.work, ignore_errors=True)


def wait_for(fn, timeout, what, interval=0.2):
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = fn()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out ({timeout}s) waiting for {what}")
        time.sleep(interval)


def events(entries, event, **match):
    out = []
    for e in entries:
        ev = harness.parse_logfmt(e["MESSAGE"])
        if ev.get("event") == event and all(ev.get(k) == v for k, v in match.items()):
            ev["_prio"] = e.get("PRIORITY")
            ev["_pid"] = e.get("_PID")
            out.append(ev)
    return out


class UnderSystemd(unittest.TestCase):
    """Steps run in order (test_NN_*) against one booted container."""

    @classmethod
    def setUpClass(cls):
        cls.started = time.monotonic()
        c = cls.c = Container()
        cls.addClassCleanup(c.teardown)
        c.mount_overlay()
        c.trim_boot()
        c.install()

        # Where the installed unit says the binary and config are.
        unitdir = None
        for d in ("lib/systemd/system", "usr/lib/systemd/system", "usr/local/lib/systemd/system"):
            if os.path.exists(c.path(os.path.join(d, "beacond.service"))):
                unitdir = d
                break
        assert unitdir, "meson install put no beacond.service in a unit directory"
        with open(c.path(os.path.join(unitdir, "beacond.service"))) as f:
            argv = re.search(r"^ExecStart=(.*)$", f.read(), re.M).group(1).split()
        cls.binary, cls.config = argv[0], argv[2]
        assert os.access(c.path(cls.binary), os.X_OK), cls.binary
        c.write(cls.config, service_config())

        # A short watchdog for the expiry test; everything else as shipped.
        dropin = c.path("/etc/systemd/system/beacond.service.d")
        os.makedirs(dropin, exist_ok=True)
        with open(os.path.join(dropin, "test.conf"), "w") as f:
            f.write("[Service]\nWatchdogSec=2s\n")
        if sanitized_build():
            # LeakSanitizer cannot run inside the sandbox (it needs to
            # inspect the process the way a debugger does) and turns every
            # clean exit into status 1.  Leaks are checked by the tests that
            # run beacond outside systemd; ASan/UBSan stay on here.
            for unit in ("beacond.service", "beacond-socket.service"):
                d = c.path(f"/etc/systemd/system/{unit}.d")
                os.makedirs(d, exist_ok=True)
                with open(os.path.join(d, "sanitizer.conf"), "w") as f:
                    f.write("[Service]\nEnvironment=ASAN_OPTIONS=detect_leaks=0 "
                            "UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1\n")
        c.boot()
        # Datagram ICMP for the capability-less socket variant; a per-netns
        # sysctl of the container's own network namespace.
        c.net("sysctl", "-q", "-w", "net.ipv4.ping_group_range=0 2147483647")

    def diag(self, unit="beacond.service"):
        return "\n--- journalctl -u " + unit + " ---\n" + self.c.journal_text(unit)

    def test_01_start_returns_after_ready(self):
        c = self.c
        c.ct("systemctl", "start", "beacond.service", timeout=30)
        # Type=notify: start returned only once READY=1 arrived, and the
        # STATUS= sent with it is already there; port 7 answers at once.
        status = c.show("beacond.service", "StatusText")
        self.assertTrue(status, "StatusText empty right after start" + self.diag())
        self.assertEqual(c.show("beacond.service", "ActiveState"), "active")
        ok, out = c.echo()
        self.assertTrue(ok, out + self.diag())
        # The live summary follows the target coming up.
        wait_for(lambda: re.search(r"\b1 up\b", c.show("beacond.service", "StatusText")),
                 10, "StatusText with 1 target up")
        type(self).pid = c.show("beacond.service", "MainPID")
        self.assertNotEqual(self.pid, "0")

    def test_02_reload_good_config(self):
        c = self.c
        c.write(self.config, service_config(extra_target=True))
        c.ct("systemctl", "reload", "beacond.service", timeout=30)
        self.assertEqual(c.show("beacond.service", "MainPID"), self.pid, "reload restarted beacond")
        ents = c.journal("beacond.service")
        self.assertTrue(events(ents, "reloaded"), "no event=reloaded" + self.diag())
        wait_for(lambda: re.search(r"\b2 targets", c.show("beacond.service", "StatusText")),
                 10, "StatusText counting the added target")
        ok, out = c.echo()
        self.assertTrue(ok, out)

    def test_03_reload_broken_config(self):
        c = self.c
        c.write(self.config, service_config(extra_target=True, broken=True))
        c.ct("systemctl", "reload", "beacond.service", timeout=30)
        try:
            self.assertEqual(c.show("beacond.service", "MainPID"), self.pid)
            self.assertEqual(c.show("beacond.service", "ActiveState"), "active")
            failed = events(c.journal("beacond.service"), "reload_failed")
            self.assertTrue(failed, "rejection not in journalctl -u beacond" + self.diag())
            self.assertIn("no_such_key", failed[-1].get("reason", ""), failed[-1])
            self.assertEqual(failed[-1]["_prio"], "3", "reload_failed is an error")
            ok, out = c.echo()
            self.assertTrue(ok, "old behaviour lost after a broken reload: " + out)
            self.assertTrue(re.search(r"\b2 targets", c.show("beacond.service", "StatusText")))
        finally:
            # Later steps restart beacond: they need a valid file again.
            c.write(self.config, service_config(extra_target=True))

    def test_04_journal_priorities(self):
        c = self.c
        # Make the container's kernel stop answering pings: the targets go
        # down (warning), then come back up (notice).
        c.net("sysctl", "-q", "-w", "net.ipv4.icmp_echo_ignore_all=1")
        try:
            wait_for(lambda: events(c.journal("beacond.service"), "state", target="lo", to="down"),
                     15, "event=state to=down")
        finally:
            c.net("sysctl", "-q", "-w", "net.ipv4.icmp_echo_ignore_all=0")
        wait_for(lambda: [e for e in events(c.journal("beacond.service"), "state", target="lo",
                                            to="up") if e.get("from") == "down"],
                 15, "event=state down -> up")
        ents = c.journal("beacond.service")
        summaries = events(ents, "summary")
        self.assertTrue(summaries, "no summary lines" + self.diag())
        self.assertEqual({e["_prio"] for e in summaries}, {"6"})
        self.assertEqual({e["_prio"] for e in events(ents, "state", to="down")}, {"4"})
        self.assertEqual({e["_prio"] for e in events(ents, "state", to="up")}, {"5"})
        self.assertEqual({e["_prio"] for e in events(ents, "ready")}, {"5"})
        # Journal lines carry the priority as a field, not as text, and no
        # timestamp of their own.
        mine = [e for e in ents if "event=" in e["MESSAGE"]]
        self.assertTrue(mine)
        for e in mine:
            self.assertFalse(e["MESSAGE"].startswith("<"), e["MESSAGE"])
            self.assertNotRegex(e["MESSAGE"], r"(^| )ts=")
        # The README's filter: -p warning keeps state changes to down and
        # drops the per-interval summaries.
        warn = c.journal("beacond.service", "-p", "warning")
        self.assertTrue(events(warn, "state", to="down"))
        self.assertFalse(events(warn, "summary"))

    def test_04b_journal_fields_filter_by_target(self):
        """Native journal protocol: every logfmt key is a field, so
        journalctl BEACOND_TARGET=lo returns lo's state and summary lines and
        nothing else; PRIORITY follows the level; MESSAGE_ID is stable."""
        c = self.c
        ents = c.journal("beacond.service", "BEACOND_TARGET=lo")
        self.assertTrue(ents, "no entries for BEACOND_TARGET=lo" + self.diag())
        prio = {"debug": "7", "info": "6", "notice": "5", "warning": "4", "error": "3"}
        kinds = set()
        for e in ents:
            ev = harness.parse_logfmt(e["MESSAGE"])
            self.assertEqual(e.get("BEACOND_TARGET"), "lo", e)
            self.assertEqual(ev.get("target"), "lo", e["MESSAGE"])
            kinds.add(ev.get("event"))
            self.assertEqual(e.get("BEACOND_EVENT"), ev.get("event"), e)
            self.assertEqual(e.get("PRIORITY"), prio[ev["level"]], e)
            self.assertEqual(e.get("BEACOND_LEVEL"), ev["level"], e)
            # Every key of the line is a field with the same value.
            for k, v in ev.items():
                self.assertEqual(e.get("BEACOND_" + k.upper().replace(".", "_")), v, (k, e))
        self.assertEqual(kinds, {"state", "summary"}, kinds)
        # lo2's lines are not among them, but are there under their own name.
        other = c.journal("beacond.service", "BEACOND_TARGET=lo2")
        self.assertTrue(other and all(e.get("BEACOND_TARGET") == "lo2" for e in other))
        # State changes share one MESSAGE_ID, summaries another.
        ids = {}
        for e in ents:
            ids.setdefault(e["BEACOND_EVENT"], set()).add(e.get("MESSAGE_ID"))
        self.assertEqual(len(ids["state"]), 1, ids)
        self.assertEqual(len(ids["summary"]), 1, ids)
        self.assertNotEqual(ids["state"], ids["summary"])
        self.assertEqual(ids["state"], {"19313fe1c67e0b28dd917579d97ad53f"},
                         "the README documents this id")
        by_id = c.journal("beacond.service", "MESSAGE_ID=19313fe1c67e0b28dd917579d97ad53f")
        self.assertTrue(by_id and all(e["BEACOND_EVENT"] == "state" for e in by_id))
        down = c.journal("beacond.service", "BEACOND_EVENT=state", "BEACOND_TO=down")
        self.assertTrue(down and all(e["PRIORITY"] == "4" for e in down), down)

    def test_04c_beaconctl_under_systemd(self):
        """The control socket in the unit's RuntimeDirectory: beaconctl reads
        the targets and reloads (root), through the installed binary."""
        c = self.c
        ctl = os.path.join(os.path.dirname(os.path.dirname(self.binary)), "bin", "beaconctl")
        r = c.ct(ctl, "targets", "-j")
        recs = json.loads(r.stdout)
        self.assertEqual(sorted(x["target"] for x in recs), ["lo", "lo2"], r.stdout)
        st = json.loads(c.ct(ctl, "status", "-j").stdout)
        self.assertEqual(st["control"]["path"], "/run/beacond/control.sock")
        self.assertEqual(st["tcp"]["listen"], ["127.0.0.1:7", "[::1]:7"])
        r = c.ct(ctl, "reload")
        self.assertEqual(r.stdout.strip(), "reloaded: 0 targets added, 0 removed, listeners unchanged")
        self.assertEqual(c.show("beacond.service", "MainPID"), self.pid)
        mode = c.ct("stat", "-c", "%a", "/run/beacond/control.sock").stdout.strip()
        self.assertEqual(mode, "660")

    def test_05_watchdog_restarts_stuck_loop(self):
        c = self.c
        pid = c.show("beacond.service", "MainPID")
        # "kill -STOP 0" would stop this test's own process group.
        self.assertNotIn(pid, ("", "0"), "beacond is not running" + self.diag())
        restarts = int(c.show("beacond.service", "NRestarts"))
        c.ct("kill", "-STOP", pid)
        # WatchdogSec=2s: systemd aborts the silent process and
        # Restart=on-failure starts a new one (RestartSec=1s).
        new = wait_for(lambda: (c.show("beacond.service", "MainPID") not in ("0", pid) and
                                c.show("beacond.service", "ActiveState") == "active" and
                                c.show("beacond.service", "MainPID")),
                       20, "a restarted beacond")
        self.assertNotEqual(new, pid)
        self.assertGreater(int(c.show("beacond.service", "NRestarts")), restarts)
        text = c.ct("journalctl", "-u", "beacond.service", "--no-pager").stdout
        self.assertIn("Watchdog timeout", text)
        ok, out = c.echo()
        self.assertTrue(ok, out + self.diag())

    def test_06_stop_is_clean(self):
        c = self.c
        pid = c.show("beacond.service", "MainPID")
        c.ct("systemctl", "stop", "beacond.service", timeout=30)
        self.assertEqual(c.show("beacond.service", "ActiveState"), "inactive", self.diag())
        self.assertEqual(c.show("beacond.service", "Result"), "success", self.diag())
        self.assertEqual(c.show("beacond.service", "ExecMainStatus"), "0")
        ents = [e for e in c.journal("beacond.service") if e.get("_PID") == pid]
        self.assertTrue(events(ents, "stopping"), "no event=stopping" + self.diag())
        self.assertTrue(events(ents, "exit"), "no event=exit" + self.diag())
        self.assertTrue(events(ents, "summary", why="final") or events(ents, "summary"),
                        "no final summaries")

    def test_07_socket_activation_without_capabilities(self):
        c = self.c
        unit = "beacond-socket.service"
        c.write(self.config, service_config())
        c.ct("systemctl", "start", "beacond.socket", timeout=30)
        try:
            self.assertEqual(c.show("beacond.socket", "ActiveState"), "active")
            # Nothing runs until a client arrives; its connection starts
            # beacond, which serves it on the socket systemd bound.
            self.assertEqual(c.show(unit, "ActiveState"), "inactive")
            ok, out = c.echo()
            self.assertTrue(ok, out + self.diag(unit))
            wait_for(lambda: c.show(unit, "ActiveState") == "active", 10, unit + " active")
            pid = c.show(unit, "MainPID")
            status = c.ct("cat", f"/proc/{pid}/status").stdout
            caps = dict(re.findall(r"^(Cap\w+):\s+([0-9a-f]+)$", status, re.M))
            for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
                self.assertEqual(int(caps[k], 16), 0, f"{k}={caps[k]}")
            uid = re.search(r"^Uid:\s+(\d+)", status, re.M).group(1)
            self.assertNotEqual(uid, "0")

            ents = c.journal(unit)
            for svc in ("tcp", "udp"):
                lis = events(ents, "listen", service=svc, addr="127.0.0.1:7")
                self.assertTrue(lis, f"no {svc} listener on 127.0.0.1:7" + self.diag(unit))
                self.assertEqual(lis[-1].get("inherited"), "yes", lis[-1])
            self.assertFalse(events(ents, "listen", inherited="no"),
                             "beacond bound a socket itself")
            # With no CAP_NET_RAW the pinger uses datagram ICMP sockets.
            sock = events(ents, "socket", family="4")
            self.assertTrue(sock, "no ICMP socket" + self.diag(unit))
            self.assertEqual(sock[-1].get("kind"), "dgram")

            # A restart keeps the port open: systemd holds the sockets.
            c.ct("systemctl", "restart", unit, timeout=30)
            ok, out = c.echo()
            self.assertTrue(ok, out + self.diag(unit))
        finally:
            c.ct("systemctl", "stop", unit, "beacond.socket", timeout=30, check=False)
        self.assertEqual(c.show(unit, "Result"), "success", self.diag(unit))
        self.assertEqual(c.show(unit, "ActiveState"), "inactive")

    def test_08_invalid_config_fails_without_restarts(self):
        c = self.c
        c.write(self.config, service_config(broken=True))
        try:
            r = c.ct("systemctl", "start", "beacond.service", timeout=30, check=False)
            self.assertNotEqual(r.returncode, 0, "start succeeded with an invalid config")
            self.assertEqual(c.show("beacond.service", "ExecMainStatus"), "78")
            # RestartPreventExitStatus=78: still failed after RestartSec has
            # passed, not cycling through restarts.
            time.sleep(1.5)
            self.assertEqual(c.show("beacond.service", "ActiveState"), "failed", self.diag())
            self.assertEqual(c.show("beacond.service", "Result"), "exit-code")
            text = c.ct("journalctl", "-u", "beacond.service", "--no-pager", "-n", "20").stdout
            self.assertRegex(text, r"beacond\.ini:\d+: .*no_such_key", text)
        finally:
            c.ct("systemctl", "reset-failed", "beacond.service", check=False)
            c.write(self.config, service_config())

    def test_99_no_operation_timed_out(self):
        """Behavioural, not wall-clock: on a shared machine the steps may
        take long, but systemd itself must never have given up on one of
        beacond's operations (start, reload, stop) -- the only timeout in
        the run is the watchdog step's deliberate one."""
        took = time.monotonic() - self.started
        sys.stderr.write(f"nspawn steps took {took:.1f}s\n")
        # The manager's own messages (PID 1), not beacond's lines, whose
        # keys may contain "timeout".
        text = self.c.ct("journalctl", "--no-pager", "-o", "cat", "_PID=1").stdout
        self.assertIn("beacond", text, "no message of systemd about beacond at all")
        timeouts = [line for line in text.splitlines()
                    if re.search(r"timed out|[Tt]imeout", line) and "beacond" in line
                    and "Watchdog timeout" not in line]
        self.assertEqual(timeouts, [], "systemd timed out on beacond")


if __name__ == "__main__":
    why = can_run()
    if why:
        sys.stderr.write(f"skipped: {why}\n")
        sys.exit(harness.EXIT_SKIP)
    harness.main()
