"""Shared helpers for beacond's integration tests.

Each test script starts the real daemon (the binary meson passes in
$BEACOND) with a config written to a temp dir, talks to it over real
sockets, and reads its logfmt lines from stderr.

Conventions the daemon guarantees (see README "Logs"):
  * every line is logfmt: key=value pairs, values with spaces quoted;
  * after all sockets are open the daemon logs `event=ready`;
  * each bound listener is logged as `event=listen service=tcp|udp addr=HOST:PORT`,
    so configs may use port 0 and tests read the real port from the log.

Set BEACOND_WRAPPER (e.g. "valgrind --error-exitcode=99 --leak-check=full")
to run the daemon under a wrapper.
"""
import os
import re
import shlex
import signal as _signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

BEACOND = os.environ.get("BEACOND") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build", "beacond")
SOURCE_ROOT = os.environ.get("BEACOND_SOURCE_ROOT") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
EX_CONFIG = 78
EX_USAGE = 64
# How much slower than normal the daemon runs (scripts/valgrind sets 10):
# time bounds that are about the daemon's speed, not its logic, scale by it.
SLOW = float(os.environ.get("BEACOND_TEST_SLOWDOWN", "1"))


def scaled(seconds):
    return seconds * SLOW

_LOGFMT = re.compile(r'([A-Za-z0-9_.-]+)=("(?:[^"\\]|\\.)*"|[^ ]*)')


def parse_logfmt(line):
    """Parse one logfmt line into a dict (quoted values unescaped)."""
    out = {}
    for key, val in _LOGFMT.findall(line):
        if val.startswith('"'):
            val = val[1:-1].encode().decode("unicode_escape")
        out[key] = val
    return out


def log_time(event):
    """The ts= of a parsed line (2026-11-21T18:46:05.530Z) as epoch seconds."""
    import calendar
    ts = event["ts"]
    whole, _, frac = ts.rstrip("Z").partition(".")
    return calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S")) + float("0." + (frac or "0"))


def raw_request(sock, data, timeout=10):
    """Send bytes to a Unix stream socket (the control socket), read the
    whole reply (the daemon closes when done)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(sock)
    try:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
    except (BrokenPipeError, ConnectionResetError):
        pass
    out = b""
    while True:
        try:
            chunk = s.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        out += chunk
    s.close()
    return out


def is_root():
    return os.geteuid() == 0


def have(cmd):
    from shutil import which
    return which(cmd) is not None


def split_addr(addr):
    """'127.0.0.1:7' -> ('127.0.0.1', 7); '[::1]:7' -> ('::1', 7)."""
    host, _, port = addr.rpartition(":")
    if host.startswith("["):
        host = host[1:-1]
    return host, int(port)


def base_config(tcp=None, udp=None, icmp=None, daemon=None, targets=None, extra="",
                web=False):
    """Build an ini text.  Each of tcp/udp/icmp/daemon/web is a dict of keys
    (None disables tcp/udp/web).  targets is {name: {key: value}}.  web left
    out: the [web] listener on an ephemeral loopback port (never the fixed
    default port, which parallel tests would fight over).  web="omit": no
    [web] section at all (for builds older than it, in bench/)."""
    daemon = dict(daemon or {})
    daemon.setdefault("log_level", "debug")
    daemon.setdefault("log_target", "stderr")
    parts = ["[daemon]"] + [f"{k} = {v}" for k, v in daemon.items()]
    for name, sect in (("tcp", tcp), ("udp", udp)):
        parts.append(f"\n[{name}]")
        if sect is None:
            parts.append("enabled = no")
        else:
            sect = dict(sect)
            sect.setdefault("listen", "127.0.0.1:0")
            parts += [f"{k} = {v}" for k, v in sect.items()]
    if web != "omit" and (web is not False or "[web]" not in extra):
        parts.append("\n[web]")
        if web is None:
            parts.append("enabled = no")
        else:
            w = dict(web or {})
            w.setdefault("listen", "127.0.0.1:0")
            parts += [f"{k} = {v}" for k, v in w.items()]
    if icmp:
        parts.append("\n[icmp]")
        parts += [f"{k} = {v}" for k, v in icmp.items()]
    for tname, keys in (targets or {}).items():
        parts.append(f"\n[target {tname}]")
        parts += [f"{k} = {v}" for k, v in keys.items()]
    return "\n".join(parts) + "\n" + extra


class Daemon:
    """A beacond process with its own temp dir, config and log reader."""

    def __init__(self, config_text, args=(), env=None, prefix=(), workdir=None):
        self.tmp = tempfile.TemporaryDirectory(prefix="beacond-test-")
        self.dir = workdir or self.tmp.name
        self.config_path = os.path.join(self.dir, "beacond.ini")
        self.write_config(config_text)
        self.args = list(args)
        self.env = dict(os.environ)
        self.env.pop("NOTIFY_SOCKET", None)
        self.env.pop("LISTEN_FDS", None)
        self.env.pop("LISTEN_PID", None)
        self.env.pop("JOURNAL_STREAM", None)
        self.env.pop("WATCHDOG_USEC", None)
        # The history is saved under $STATE_DIRECTORY unless the config
        # says otherwise: this daemon's own temp dir, never /var/lib/beacond.
        self.env["STATE_DIRECTORY"] = self.dir
        if env:
            self.env.update(env)
        self.prefix = list(prefix)
        wrapper = os.environ.get("BEACOND_WRAPPER")
        if wrapper:
            self.prefix += shlex.split(wrapper)
        self.proc = None
        self.lines = []
        self._parsed = []      # parse_logfmt(line) for each line, parsed once
        self._cv = threading.Condition()
        self._reader = None

    def write_config(self, text):
        tmp = self.config_path + ".new"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, self.config_path)

    # -- process control ------------------------------------------------
    def start(self, wait_ready=True, timeout=15, pass_fds=()):
        cmd = []
        for tok in self.prefix:
            cmd.append(tok)
            # It hands the child only the variables named with -E: without
            # this the history would go to /var/lib/beacond on the host.
            if os.path.basename(tok) == "systemd-socket-activate":
                cmd += ["-E", f"STATE_DIRECTORY={self.env['STATE_DIRECTORY']}"]
        cmd += [BEACOND, "-c", self.config_path] + self.args
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, env=self.env, pass_fds=pass_fds)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if wait_ready:
            self.wait_event("ready", timeout=timeout)
        return self

    def _read(self):
        for raw in self.proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            if os.environ.get("BEACOND_TEST_ECHO"):
                sys.stderr.write("  | " + line + "\n")
            ev = parse_logfmt(line)   # outside the lock: never slow the reader
            with self._cv:
                self.lines.append(line)
                self._parsed.append(ev)
                self._cv.notify_all()
        with self._cv:
            self._cv.notify_all()

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        self.proc.send_signal(sig)

    def reload(self, wait=True, timeout=10):
        """SIGHUP; wait for the reload outcome event and return it."""
        start = len(self.lines)
        self.signal(_signal.SIGHUP)
        if wait:
            return self.wait_event(re.compile(r"^reload(ed|_failed)$"), since=start,
                                   timeout=timeout)
        return None

    def stop(self, sig=_signal.SIGTERM, timeout=20):
        """Send sig and wait; returns the exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
            raise AssertionError(f"beacond did not exit within {timeout}s after {sig}")
        if self._reader:
            self._reader.join(timeout=5)
        return rc

    def wait_exit(self, timeout=15):
        rc = self.proc.wait(timeout=timeout)
        if self._reader:
            self._reader.join(timeout=5)
        return rc

    def close(self):
        try:
            if self.proc and self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(timeout=10)
        finally:
            self.tmp.cleanup()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if exc[0] is not None and not os.environ.get("BEACOND_TEST_ECHO"):
            sys.stderr.write("---- beacond log (last 60 lines) ----\n")
            for line in self.lines[-60:]:
                sys.stderr.write("  | " + line + "\n")
        self.close()

    # -- logs -------------------------------------------------------------
    @staticmethod
    def _matches(ev, event, match):
        if event is not None:
            name = ev.get("event", "")
            if hasattr(event, "match"):
                if not event.match(name):
                    return False
            elif name != event:
                return False
        return all(ev.get(k) == str(v) for k, v in match.items())

    def events(self, event=None, since=0, **match):
        """Parsed log lines, optionally filtered by event name (string or
        compiled regex) and by exact key=value matches."""
        with self._cv:
            parsed = self._parsed[since:]
        return [ev for ev in parsed if self._matches(ev, event, match)]

    def wait_event(self, event, timeout=10, since=0, count=1, **match):
        """Wait until `count` matching events are logged; return the last.
        Each line is examined once, so waiting never slows the reader."""
        deadline = time.monotonic() + timeout
        found = []
        pos = since
        with self._cv:
            while True:
                while pos < len(self._parsed):
                    ev = self._parsed[pos]
                    pos += 1
                    if self._matches(ev, event, match):
                        found.append(ev)
                        if len(found) >= count:
                            return found[count - 1]
                if self.proc.poll() is not None and (self._reader is None or not self._reader.is_alive()):
                    raise AssertionError(
                        f"beacond exited ({self.proc.returncode}) before event={event} {match}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out waiting for event={event} {match}")
                self._cv.wait(min(left, 0.2))

    def listen_addrs(self, service):
        """(host, port) of each bound listener of `service` (tcp/udp)."""
        return [split_addr(e["addr"]) for e in self.events("listen", service=service)]

    def addr(self, service, family=socket.AF_INET):
        for host, port in self.listen_addrs(service):
            if (":" in host) == (family == socket.AF_INET6):
                return host, port
        raise AssertionError(f"no {service} listener for family {family}")

    # -- /proc ------------------------------------------------------------
    def rss_kib(self):
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def cpu_seconds(self):
        with open(f"/proc/{self.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        ticks = int(fields[11]) + int(fields[12])  # utime + stime
        return ticks / os.sysconf("SC_CLK_TCK")

    def wait_signals_blocked(self, timeout=15):
        """Wait until the daemon has blocked SIGTERM/SIGHUP for its signalfd,
        i.e. a signal sent now is handled, not fatal.  For tests whose log
        level hides the `ready` line."""
        want = (1 << (_signal.SIGTERM - 1)) | (1 << (_signal.SIGHUP - 1))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with open(f"/proc/{self.pid}/status") as f:
                    blocked = any(line.startswith("SigBlk:") and
                                  int(line.split()[1], 16) & want == want for line in f)
            except FileNotFoundError:
                break       # the process is gone
            # The signalfd the daemon opens right after blocking its
            # signals is the second proof: under a wrapper (valgrind) the
            # mask may be the wrapper's before the daemon's code runs.
            if blocked and self._has_signalfd():
                return
            time.sleep(0.02)
        raise AssertionError("beacond never blocked its signals")

    def _has_signalfd(self):
        try:
            fds = os.listdir(f"/proc/{self.pid}/fd")
        except OSError:
            return False
        for fd in fds:
            try:
                if os.readlink(f"/proc/{self.pid}/fd/{fd}") == "anon_inode:[signalfd]":
                    return True
            except OSError:
                pass        # closed while we looked (valgrind's own files)
        return False

    def fd_count(self):
        return len(os.listdir(f"/proc/{self.pid}/fd"))


# The exit status meson reads as SKIP.
EXIT_SKIP = 77


def exit_status(result):
    """0 when something ran and all passed, 1 on any failure, and
    EXIT_SKIP (77, meson's SKIP) when nothing ran: every test skipped (no
    root, no netns, a missing tool) or none was found.  A suite that
    exercised nothing must not be counted as passed."""
    if not result.wasSuccessful():
        return 1
    ran = result.testsRun - len(result.skipped)
    return 0 if ran > 0 else EXIT_SKIP


def main():
    """Run the unittest TestCases of the calling module, verbose; exit as
    exit_status() says."""
    prog = unittest.main(module="__main__", verbosity=2, exit=False)
    status = exit_status(prog.result)
    if status == EXIT_SKIP:
        sys.stderr.write(f"all {prog.result.testsRun} tests skipped: reporting SKIP (77)\n")
    sys.exit(status)
