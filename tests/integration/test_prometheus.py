"""A real Prometheus (Debian's prometheus 2.42) scrapes beacond.

Both run in a probe network namespace made here (netns.py), Prometheus on
127.0.0.1 there with a generated config (1 s scrape and rule evaluation,
temp storage) and conf/prometheus/beacond-alerts.yml as its rules.  Checks go
through Prometheus's HTTP query API: up is 1; each target's sent and
received counters equal the daemon's own (SIGUSR1 summary) within what was
in flight and what was sent since the scrape; a target blackholed in the
target namespace shows beacond_target_up 0, and the BeacondTargetDown
alert fires.  Also `promtool check rules` on the example rules and
`promtool check config` on the example scrape config.

Heavy suite (meson: suite ['integration', 'heavy']).
"""
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
import netns  # noqa: E402
from harness import base_config, scaled  # noqa: E402

RULES = os.path.join(harness.SOURCE_ROOT, "conf", "prometheus", "beacond-alerts.yml")
SCRAPE_EXAMPLE = os.path.join(harness.SOURCE_ROOT, "conf", "prometheus", "prometheus.yml")
INTERVAL_S = 0.5


def wait_for(pred, timeout, step=0.5):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(step)
    return pred()


@unittest.skipUnless(harness.have("promtool"), "promtool not installed")
class ExampleFiles(unittest.TestCase):
    def test_rules_and_scrape_config_check(self):
        r = subprocess.run(["promtool", "check", "rules", RULES], capture_output=True,
                           text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("SUCCESS: 4 rules found", r.stdout)
        r = subprocess.run(["promtool", "check", "config", SCRAPE_EXAMPLE],
                           capture_output=True, text=True, timeout=60,
                           cwd=os.path.dirname(SCRAPE_EXAMPLE))
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)


def free_port_in(topo, ns):
    out = topo.ns(ns, "python3", "-c",
                  "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); "
                  "print(s.getsockname()[1])").stdout
    return int(out.strip())


class Prom:
    """Prometheus in namespace ns of topo; queried from inside it."""

    def __init__(self, topo, ns, web_port, tmp):
        self.topo, self.ns = topo, ns
        self.port = free_port_in(topo, ns)
        cfg = os.path.join(tmp, "prometheus.yml")
        with open(cfg, "w") as f:
            f.write(f"""global:
  scrape_interval: 1s
  scrape_timeout: 900ms
  evaluation_interval: 1s
rule_files:
  - {RULES}
scrape_configs:
  - job_name: beacond
    static_configs:
      - targets: ['127.0.0.1:{web_port}']
""")
        self.log = open(os.path.join(tmp, "prometheus.log"), "w")
        self.proc = topo.popen(ns, [
            "prometheus", f"--config.file={cfg}",
            f"--storage.tsdb.path={os.path.join(tmp, 'data')}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--storage.tsdb.retention.time=1h"],
            stdout=self.log, stderr=subprocess.STDOUT)

    def api(self, path, **params):
        url = f"http://127.0.0.1:{self.port}{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        code = ("import sys, urllib.request\n"
                "try:\n"
                "    print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())\n"
                "except Exception as e:\n"
                "    print('{\"status\": \"error\", \"error\": \"%s\"}' % e)\n")
        r = self.topo.ns(self.ns, "python3", "-c", code, url, check=False)
        try:
            return json.loads(r.stdout)
        except ValueError:
            return {"status": "error", "error": r.stdout + r.stderr}

    def query(self, expr, at=None):
        """[(labels, timestamp, value)] of an instant query (at: epoch s)."""
        params = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        j = self.api("/api/v1/query", **params)
        if j.get("status") != "success":
            return []
        return [(s["metric"], float(s["value"][0]), float(s["value"][1]))
                for s in j["data"]["result"]]

    def one(self, expr, at=None):
        r = self.query(expr, at)
        return r[0] if len(r) == 1 else None


@unittest.skipIf(netns.available(), netns.available() or "")
@unittest.skipUnless(harness.have("prometheus"), "prometheus not installed")
class RealPrometheus(unittest.TestCase):
    def test_scrape_query_blackhole_alert(self):
        with netns.Topology() as topo, tempfile.TemporaryDirectory(prefix="beacond-prom-") as tmp:
            os.chmod(tmp, 0o755)
            cfg = base_config(
                tcp=None, udp=None, daemon={"stats_interval": "0", "log_level": "info"},
                icmp={"interval": f"{int(INTERVAL_S * 1000)}ms", "timeout": "400ms",
                      "down_after": "3", "up_after": "2"},
                web={"listen": "127.0.0.1:0"},
                targets={"gw": {"host": netns.T_A4, "labels": "site=lab"},
                         "local": {"host": "127.0.0.1"}})
            d = topo.daemon(cfg)
            d.start()
            web_port = d.addr("web")[1]
            d.wait_event("state", target="gw", to="up", timeout=scaled(15))
            prom = Prom(topo, topo.P, web_port, tmp)

            # up == 1: Prometheus scrapes and parses beacond.
            up = wait_for(lambda: prom.one('up{job="beacond"} == 1'), scaled(60))
            if up is None:
                with open(os.path.join(tmp, "prometheus.log")) as f:
                    self.fail("Prometheus never scraped beacond: " + f.read()[-2000:])
            self.assertIsNotNone(wait_for(
                lambda: prom.one('scrape_samples_scraped{job="beacond"} > 100'), scaled(10)))

            # Counters equal the daemon's own within what was in flight and
            # what was sent between the scrape and the summary.
            time.sleep(3)
            since = len(d.lines)
            t_usr1 = time.time()
            d.signal(signal.SIGUSR1)
            for target in ("gw", "local"):
                ev = d.wait_event("summary", target=target, why="signal", since=since)
                # The last samples scraped before the signal, and when they
                # were scraped: the daemon sent at most one request per
                # interval since.
                sel = f'{{target="{target}"}}'
                sent = prom.one(f"beacond_ping_sent_total{sel}", at=t_usr1)
                got = prom.one(f"beacond_ping_received_total{sel}", at=t_usr1)
                fl = prom.one(f"beacond_ping_in_flight{sel}", at=t_usr1)
                ts = prom.one(f"timestamp(beacond_ping_sent_total{sel})", at=t_usr1)
                self.assertIsNotNone(sent)
                self.assertIsNotNone(got)
                self.assertIsNotNone(ts)
                age = max(0.0, t_usr1 - ts[2])
                self.assertLess(age, scaled(3))
                slack = math.ceil(age / INTERVAL_S) + 1
                d_sent, d_got = int(ev["total_sent"]), int(ev["total_received"])
                self.assertLessEqual(sent[2], d_sent, (target, ev, sent))
                self.assertLessEqual(d_sent - sent[2], slack, (target, ev, sent))
                self.assertLessEqual(got[2], d_got, (target, ev, got))
                self.assertLessEqual(d_got - got[2], slack + (fl[2] if fl else 1), (target, ev, got))
                self.assertEqual(prom.one(f'beacond_target_up{{target="{target}"}}')[2], 1)
            # User labels reach Prometheus.
            self.assertIsNotNone(prom.one('beacond_ping_sent_total{target="gw",site="lab"}'))
            # A histogram Prometheus can compute a quantile from.
            q = prom.one('histogram_quantile(0.99, rate(beacond_ping_rtt_seconds_bucket'
                         '{target="local"}[5s]))')
            self.assertIsNotNone(q)
            self.assertGreater(q[2], 0)
            self.assertLess(q[2], 0.1)

            # Blackhole gw: beacond_target_up 0 in a query, the alert fires.
            topo.blackhole(True)
            down = wait_for(lambda: prom.one('beacond_target_up{target="gw"} == 0'), scaled(30))
            self.assertIsNotNone(down, "beacond_target_up of the blackholed target never 0")
            self.assertEqual(prom.one('beacond_target_up{target="local"}')[2], 1)
            firing = wait_for(lambda: prom.one(
                'ALERTS{alertname="BeacondTargetDown",alertstate="firing",target="gw"}'),
                scaled(60))
            self.assertIsNotNone(firing, "BeacondTargetDown never fired")
            self.assertIsNone(prom.one('ALERTS{alertname="BeacondTargetDown",target="local"}'))
            lost = prom.one('increase(beacond_ping_lost_total{target="gw"}[10s])')
            self.assertGreater(lost[2], 0)
            topo.blackhole(False)
            self.assertEqual(d.stop(), 0)
            prom.proc.terminate()
            prom.proc.wait(timeout=30)
            prom.log.close()


if __name__ == "__main__":
    harness.main()
