"""scripts/run, the README's first command: builds, starts beacond in the
foreground on conf/beacond.ini (loopback, port 7007), and Ctrl-C (SIGINT)
or SIGTERM stops it with exit status 0."""
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402


def port_free(port):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


@unittest.skipUnless(port_free(7007), "port 7007 is in use (a beacond from scripts/run?)")
class Run(unittest.TestCase):
    def run_and_stop(self, sig):
        script = os.path.join(harness.SOURCE_ROOT, "scripts", "run")
        p = subprocess.Popen([script], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, cwd=harness.SOURCE_ROOT)
        lines = []
        ready = threading.Event()

        def reader():
            for raw in p.stdout:
                line = raw.decode(errors="replace")
                lines.append(line)
                if "event=ready" in line:
                    ready.set()

        t = threading.Thread(target=reader, daemon=True)
        t.start()
        try:
            self.assertTrue(ready.wait(300), "".join(lines[-20:]))
            with socket.create_connection(("127.0.0.1", 7007), timeout=5) as c:
                c.sendall(b"quick start\n")
                self.assertEqual(c.recv(100), b"quick start\n")
            with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as u:
                u.settimeout(5)
                u.sendto(b"udp", ("::1", 7007))
                self.assertEqual(u.recv(100), b"udp")
            # The README's next step: beaconctl on the socket in build-run/.
            root = harness.SOURCE_ROOT
            r = subprocess.run([os.path.join(root, "build-run", "beaconctl"), "-s",
                                os.path.join(root, "build-run", "control.sock"), "targets"],
                               capture_output=True, text=True, timeout=20)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertRegex(r.stdout, r"(?m)^. loopback4 +127\.0\.0\.1 ")
            # scripts/run execs beacond: its PID is the daemon's.
            p.send_signal(sig)
            self.assertEqual(p.wait(timeout=30), 0)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
            t.join(timeout=5)
        text = "".join(lines)
        self.assertIn("event=exit", text)
        self.assertIn("target=loopback4", text)

    def test_ctrl_c(self):
        self.run_and_stop(signal.SIGINT)

    def test_sigterm(self):
        self.run_and_stop(signal.SIGTERM)


if __name__ == "__main__":
    harness.main()
