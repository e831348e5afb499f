"""Reload (SIGHUP), statistics (SIGUSR1) and graceful stop (SIGTERM)."""
import os
import signal
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
from harness import Daemon, base_config  # noqa: E402


def echo_once(addr, payload=b"hello beacond\n", family=socket.AF_INET, timeout=5):
    with socket.create_connection(addr, timeout=timeout) as s:
        s.sendall(payload)
        got = b""
        while len(got) < len(payload):
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
        return got


def udp_echo_once(addr, payload=b"ping", timeout=3):
    fam = socket.AF_INET6 if ":" in addr[0] else socket.AF_INET
    with socket.socket(fam, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.connect(addr)     # only the daemon's answer, never a stray datagram
        s.send(payload)
        return s.recv(65536)


CFG = base_config(tcp={"listen": "127.0.0.1:0"}, udp={"listen": "127.0.0.1:0", "rate_limit": 0},
                  daemon={"stats_interval": "0"})


class Reload(unittest.TestCase):
    def test_good_reload_keeps_connections_and_adds_listener(self):
        with Daemon(CFG) as d:
            d.start()
            addr = d.addr("tcp")
            conn = socket.create_connection(addr, timeout=5)
            conn.sendall(b"before")
            self.assertEqual(conn.recv(100), b"before")

            d.write_config(base_config(
                tcp={"listen": "127.0.0.1:0, [::1]:0"},
                udp={"listen": "127.0.0.1:0", "rate_limit": 0},
                daemon={"stats_interval": "0"}))
            ev = d.reload()
            self.assertEqual(ev["event"], "reloaded", ev)
            # The unchanged listener was kept (same port), a new one was added.
            self.assertEqual(d.addr("tcp"), addr)
            v6 = d.addr("tcp", socket.AF_INET6)
            self.assertEqual(echo_once(v6, family=socket.AF_INET6), b"hello beacond\n")
            # The connection opened before the reload is untouched.
            conn.sendall(b"after")
            self.assertEqual(conn.recv(100), b"after")
            conn.close()
            self.assertEqual(d.stop(), 0)

    def test_broken_config_keeps_old_one(self):
        with Daemon(CFG) as d:
            d.start()
            addr = d.addr("tcp")
            uaddr = d.addr("udp")
            d.write_config(base_config(tcp={"listen": "127.0.0.1:0", "max_pending": "lots"},
                                       udp={"listen": "127.0.0.1:0"}))
            ev = d.reload()
            self.assertEqual(ev["event"], "reload_failed")
            self.assertEqual(ev["level"], "error")
            self.assertIn("beacond.ini:", ev["reason"])
            self.assertIn("max_pending", ev["reason"])
            self.assertEqual(echo_once(addr), b"hello beacond\n")
            self.assertEqual(udp_echo_once(uaddr), b"ping")

            for garbage in (os.urandom(4096), b"\x00\x01\x02[tcp\n=\n"):
                with open(d.config_path, "wb") as f:
                    f.write(garbage)
                self.assertEqual(d.reload()["event"], "reload_failed")
                self.assertEqual(echo_once(addr), b"hello beacond\n")

            os.unlink(d.config_path)
            ev = d.reload()
            self.assertEqual(ev["event"], "reload_failed")
            self.assertIn("No such file", ev["reason"])
            self.assertEqual(echo_once(addr), b"hello beacond\n")
            self.assertTrue(d.alive())
            self.assertEqual(d.stop(), 0)

    def test_unbindable_listener_rejects_whole_reload(self):
        with socket.socket() as squatter:
            squatter.bind(("127.0.0.1", 0))
            squatter.listen()
            taken = squatter.getsockname()[1]
            with Daemon(CFG) as d:
                d.start()
                addr = d.addr("tcp")
                d.write_config(base_config(
                    tcp={"listen": f"127.0.0.1:0, 127.0.0.1:{taken}"},
                    udp={"listen": "127.0.0.1:0", "rate_limit": 0},
                    daemon={"stats_interval": "0"}))
                ev = d.reload()
                self.assertEqual(ev["event"], "reload_failed")
                self.assertIn(str(taken), ev["reason"])
                self.assertEqual(echo_once(addr), b"hello beacond\n")
                self.assertEqual(d.stop(), 0)

    def test_disable_service_on_reload(self):
        with Daemon(CFG) as d:
            d.start()
            addr = d.addr("tcp")
            d.write_config(base_config(tcp=None, udp={"listen": "127.0.0.1:0", "rate_limit": 0}))
            self.assertEqual(d.reload()["event"], "reloaded")
            with self.assertRaises(ConnectionRefusedError):
                socket.create_connection(addr, timeout=2)
            self.assertEqual(d.stop(), 0)

    def test_log_level_follows_reload(self):
        with Daemon(base_config(daemon={"log_level": "warning"})) as d:
            d.start(wait_ready=False)
            d.wait_signals_blocked()
            d.write_config(base_config(daemon={"log_level": "info"}))
            d.signal(signal.SIGHUP)
            d.wait_event("reloaded", timeout=10)
            self.assertEqual(d.stop(), 0)


class Usr1(unittest.TestCase):
    def test_stats_dump(self):
        with Daemon(CFG) as d:
            d.start()
            for _ in range(3):
                self.assertEqual(echo_once(d.addr("tcp")), b"hello beacond\n")
                self.assertEqual(udp_echo_once(d.addr("udp")), b"ping")
            # Closed connections are counted once the daemon has seen the FIN.
            time.sleep(0.3)
            start = len(d.lines)
            d.signal(signal.SIGUSR1)
            tcp = d.wait_event("stats", since=start, service="tcp", why="signal")
            udp = d.wait_event("stats", since=start, service="udp", why="signal")
            self.assertEqual(int(tcp["accepted"]), 3)
            self.assertEqual(int(tcp["bytes_in"]), 3 * 14)
            self.assertEqual(int(tcp["bytes_out"]), 3 * 14)
            self.assertEqual(int(udp["received"]), 3)
            self.assertEqual(int(udp["echoed"]), 3)
            self.assertEqual(d.stop(), 0)
            final = d.events("stats", service="tcp", why="final")
            self.assertEqual(len(final), 1)


class Stop(unittest.TestCase):
    def test_drain_waits_for_connections_then_exits(self):
        cfg = base_config(tcp={"listen": "127.0.0.1:0"}, daemon={"shutdown_timeout": "10s"})
        with Daemon(cfg) as d:
            d.start()
            conn = socket.create_connection(d.addr("tcp"), timeout=5)
            conn.sendall(b"x" * 1000)
            d.signal(signal.SIGTERM)
            d.wait_event("stopping")
            # Listener closed at once, the open connection still served.
            time.sleep(0.2)
            with self.assertRaises(OSError):
                socket.create_connection(d.addr("tcp"), timeout=2).close()
            got = b""
            while len(got) < 1000:
                got += conn.recv(65536)
            conn.sendall(b"more")
            self.assertEqual(conn.recv(100), b"more")
            self.assertTrue(d.alive())
            conn.close()
            self.assertEqual(d.wait_exit(timeout=5), 0)
            self.assertFalse(d.events("drain_timeout"))

    def test_drain_deadline(self):
        cfg = base_config(tcp={"listen": "127.0.0.1:0"}, daemon={"shutdown_timeout": "1s"})
        with Daemon(cfg) as d:
            d.start()
            conn = socket.create_connection(d.addr("tcp"), timeout=5)
            t0 = time.monotonic()
            d.signal(signal.SIGTERM)
            self.assertEqual(d.wait_exit(timeout=10), 0)
            took = time.monotonic() - t0
            self.assertGreaterEqual(took, 0.9)
            self.assertLess(took, 5)
            self.assertEqual(int(d.events("drain_timeout")[0]["connections"]), 1)
            self.assertEqual(conn.recv(10), b"")  # closed by the daemon
            conn.close()


if __name__ == "__main__":
    harness.main()
