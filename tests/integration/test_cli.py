"""Command line, exit codes, config errors and log output of the real binary."""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
from harness import BEACOND, EX_CONFIG, EX_USAGE, Daemon, base_config  # noqa: E402


def run(*args, timeout=20, **kw):
    return subprocess.run([BEACOND, *args], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL, **kw)


QUIET = base_config(daemon={"log_level": "info"})


class Usage(unittest.TestCase):
    def test_version(self):
        r = run("-V")
        self.assertEqual(r.returncode, 0)
        self.assertRegex(r.stdout, r"^beacond \d+\.\d+\.\d+\n$")
        self.assertEqual(run("--version").stdout, r.stdout)

    def test_help(self):
        r = run("--help")
        self.assertEqual(r.returncode, 0)
        for opt in ("--config", "--check", "--verbose", "--quiet", "--version", "--help"):
            self.assertIn(opt, r.stdout)

    def test_usage_errors_exit_64(self):
        for args in (["--bogus"], ["-x"], ["-c"], ["extra-argument"]):
            with self.subTest(args=args):
                r = run(*args)
                self.assertEqual(r.returncode, EX_USAGE, r.stderr)
                self.assertIn("usage:", r.stderr)


class Check(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)

    def write(self, text, name="beacond.ini"):
        path = os.path.join(self.tmp.name, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def test_repo_config_is_valid(self):
        path = os.path.join(harness.SOURCE_ROOT, "conf", "beacond.ini")
        r = run("-t", "-c", path)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("configuration is valid", r.stdout)

    def test_check_valid(self):
        r = run("--check", "--config", self.write(QUIET))
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_check_bad_value_names_file_line_section_key(self):
        path = self.write("[daemon]\nlog_level = info\n\n[tcp]\nidle_timeout = 5 parsecs\n")
        r = run("-t", "-c", path)
        self.assertEqual(r.returncode, EX_CONFIG)
        self.assertIn(f"{path}:5: [tcp] idle_timeout:", r.stderr)
        self.assertIn('"5 parsecs" is not a duration', r.stderr)

    def test_check_unknown_key_and_section(self):
        r = run("-t", "-c", self.write("[tcp]\nidel_timeout = 5s\n"))
        self.assertEqual(r.returncode, EX_CONFIG)
        self.assertIn(":2: [tcp]", r.stderr)
        self.assertIn("idel_timeout", r.stderr)
        r = run("-t", "-c", self.write("[tpc]\n"))
        self.assertEqual(r.returncode, EX_CONFIG)
        self.assertIn(":1:", r.stderr)
        self.assertIn("tpc", r.stderr)

    def test_missing_file_exits_78(self):
        path = os.path.join(self.tmp.name, "nope.ini")
        for args in (["-t", "-c", path], ["-c", path]):
            r = run(*args)
            self.assertEqual(r.returncode, EX_CONFIG)
            self.assertIn(path, r.stderr)

    @unittest.skipUnless(harness.have("strace"), "strace not installed")
    def test_bad_config_never_opens_a_socket(self):
        path = self.write(base_config(tcp={"listen": "127.0.0.1:0"},
                                      udp={"listen": "127.0.0.1:0"},
                                      extra="[target x]\nhost = 127.0.0.1\nttl = 999\n"))
        trace = os.path.join(self.tmp.name, "trace")
        # LeakSanitizer cannot run under ptrace; the sanitizer build would
        # exit 1 at the end instead of 78.
        env = dict(os.environ, ASAN_OPTIONS="detect_leaks=0")
        r = subprocess.run(["strace", "-f", "-qq", "-e", "trace=socket,bind,listen",
                            "-o", trace, BEACOND, "-c", path],
                           capture_output=True, text=True, timeout=30, env=env)
        self.assertEqual(r.returncode, EX_CONFIG, r.stderr)
        with open(trace) as f:
            calls = [l for l in f if "socket(" in l or "bind(" in l or "listen(" in l]
        self.assertEqual(calls, [], "".join(calls))


class Lifecycle(unittest.TestCase):
    def test_sigterm_and_sigint_exit_zero(self):
        for sig in (signal.SIGTERM, signal.SIGINT):
            with self.subTest(sig=sig), Daemon(QUIET) as d:
                d.start()
                self.assertEqual(d.stop(sig), 0)
                self.assertTrue(d.events("exit"))
                self.assertTrue(d.events("stopping"))

    def test_ready_line_and_timestamps(self):
        with Daemon(QUIET) as d:
            d.start()
            ev = d.events("ready")[0]
            self.assertEqual(ev["level"], "notice")
            self.assertRegex(ev["ts"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
            self.assertEqual(d.stop(), 0)

    def test_quiet_and_verbose(self):
        with Daemon(QUIET, args=["-q"]) as d:
            d.start(wait_ready=False)
            d.wait_signals_blocked()
            time.sleep(0.2)
            self.assertEqual(d.stop(), 0)
            levels = {e.get("level") for e in d.events()}
            self.assertTrue(levels <= {"warning", "error"}, levels)
        with Daemon(QUIET, args=["-v"]) as d:
            d.start()
            self.assertEqual(d.stop(), 0)
            self.assertIn("debug", {e.get("level") for e in d.events()})

    def test_json_format(self):
        cfg = base_config(daemon={"log_format": "json", "log_level": "debug"})
        with Daemon(cfg) as d:
            d.start(wait_ready=False)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and not any('"ready"' in l for l in d.lines):
                time.sleep(0.05)
            self.assertEqual(d.stop(), 0)
            self.assertTrue(d.lines)
            for line in d.lines:
                obj = json.loads(line)
                self.assertIn(obj["level"], ("debug", "info", "notice", "warning", "error"))
                self.assertIn("event", obj)
            events = [json.loads(l)["event"] for l in d.lines]
            self.assertIn("ready", events)
            self.assertIn("exit", events)

    def test_journal_prefix(self):
        """With stderr being the journal stream, lines carry <N> and no ts."""
        r, w = os.pipe()
        st = os.fstat(w)
        # No native journal socket here: the stream with "<N>" prefixes.
        env = dict(os.environ, JOURNAL_STREAM=f"{st.st_dev}:{st.st_ino}",
                   BEACOND_JOURNAL_SOCKET="/nonexistent/beacond-test/journal.sock")
        with tempfile.TemporaryDirectory() as tmp:
            env["STATE_DIRECTORY"] = tmp    # never the host's /var/lib/beacond
            path = os.path.join(tmp, "b.ini")
            with open(path, "w") as f:
                f.write(base_config(daemon={"log_target": "auto", "log_level": "info"}))
            p = subprocess.Popen([BEACOND, "-c", path], stdout=w, stderr=w, env=env,
                                 stdin=subprocess.DEVNULL)
            os.close(w)
            out = b""
            deadline = time.monotonic() + 10
            try:
                while b"event=ready" not in out and time.monotonic() < deadline:
                    out += os.read(r, 65536)
            finally:
                p.send_signal(signal.SIGTERM)
                rc = p.wait(timeout=20)
            while True:
                chunk = os.read(r, 65536)
                if not chunk:
                    break
                out += chunk
            os.close(r)
        self.assertEqual(rc, 0)
        lines = out.decode().splitlines()
        self.assertTrue(lines)
        for line in lines:
            self.assertRegex(line, r"^<[3-7]>level=")
            self.assertNotRegex(line, r"(^|\s|>)ts=")
        self.assertTrue(any(l.startswith("<5>") and "event=ready" in l for l in lines))

    def test_unread_stderr_pipe_never_stalls_the_loop(self):
        """Nobody reads the daemon's stderr pipe: once it is full, lines are
        dropped, and the echo service keeps answering."""
        import socket
        r, w = os.pipe()
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "b.ini")
            with open(path, "w") as f:
                f.write(base_config(tcp={"listen": "127.0.0.1:0"},
                                    daemon={"log_level": "debug", "stats_interval": "1s"}))
            p = subprocess.Popen([BEACOND, "-c", path], stdout=w, stderr=w,
                                 stdin=subprocess.DEVNULL,
                                 env=dict(os.environ, STATE_DIRECTORY=tmp))
            os.close(w)
            try:
                # Read just enough to learn the port, then never again.
                out = b""
                while b"event=ready" not in out:
                    out += os.read(r, 4096)
                port = int(out.split(b"event=listen service=tcp addr=127.0.0.1:")[1].split()[0])
                # Each connection logs conn_open/conn_close at debug: a few
                # thousand overflow the 64 KiB pipe many times.
                for i in range(3000):
                    with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
                        c.sendall(b"x")
                        self.assertEqual(c.recv(1), b"x", f"connection {i}")
                p.send_signal(signal.SIGTERM)
                self.assertEqual(p.wait(timeout=20), 0)
            finally:
                if p.poll() is None:
                    p.kill()
                    p.wait()
                os.close(r)

    def test_file_target_reopened_on_sighup(self):
        with tempfile.TemporaryDirectory() as tmp:
            log = os.path.join(tmp, "beacond.log")
            cfg = base_config(daemon={"log_target": log, "log_level": "info"})
            with Daemon(cfg) as d:
                d.start(wait_ready=False)
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline:
                    if os.path.exists(log) and "event=ready" in open(log).read():
                        break
                    time.sleep(0.05)
                self.assertIn("event=ready", open(log).read())
                os.rename(log, log + ".1")          # logrotate
                d.signal(signal.SIGHUP)
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline:
                    if os.path.exists(log) and "event=reloaded" in open(log).read():
                        break
                    time.sleep(0.05)
                self.assertIn("event=reloaded", open(log).read())
                self.assertNotIn("event=reloaded", open(log + ".1").read())
                self.assertEqual(d.stop(), 0)
                self.assertIn("event=exit", open(log).read())


if __name__ == "__main__":
    harness.main()
