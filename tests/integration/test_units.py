"""The shipped systemd units and the install layout, checked offline.

* systemd-analyze verify on the built units: any output on stderr is a
  failure (verify exits 0 even when it ignores a bad setting);
* systemd-analyze security --offline=true: overall exposure <= 1.5;
* meson install --destdir puts every file where README and beacond(8) say.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
from harness import have  # noqa: E402

BUILD = os.environ.get("BEACOND_BUILD_ROOT") or os.path.join(harness.SOURCE_ROOT, "build")
SOURCE = harness.SOURCE_ROOT
SERVICES = ("beacond.service", "beacond-socket.service")
MAX_EXPOSURE = 1.5


def built_units():
    """Paths of the units as the build produces them."""
    return {
        "beacond.service": os.path.join(BUILD, "systemd", "beacond.service"),
        "beacond-socket.service": os.path.join(BUILD, "systemd", "beacond-socket.service"),
        "beacond.socket": os.path.join(SOURCE, "systemd", "beacond.socket"),
        "beacond-stamp.socket": os.path.join(SOURCE, "systemd", "beacond-stamp.socket"),
    }


def build_options():
    out = subprocess.run(["meson", "introspect", "--buildoptions", BUILD],
                         capture_output=True, text=True, check=True).stdout
    return {o["name"]: o["value"] for o in json.loads(out)}


def under_prefix(opts, key):
    return os.path.join(opts["prefix"], opts[key])


def expected_unit_dir(opts):
    """What systemd/meson.build promises: the option, else pkg-config's
    systemdsystemunitdir, else PREFIX/lib/systemd/system."""
    if opts.get("systemdunitdir"):
        return opts["systemdunitdir"]
    if have("pkg-config"):
        r = subprocess.run(["pkg-config", "--variable=systemdsystemunitdir", "systemd"],
                           capture_output=True, text=True)
        if r.returncode == 0 and r.stdout.strip():
            return r.stdout.strip()
    return os.path.join(opts["prefix"], "lib", "systemd", "system")


def exec_start(unit_text):
    m = re.search(r"^ExecStart=(.*)$", unit_text, re.M)
    return m.group(1).split() if m else None


@unittest.skipUnless(have("systemd-analyze"), "systemd-analyze not installed")
class Analyze(unittest.TestCase):
    def setUp(self):
        self.units = built_units()
        for path in self.units.values():
            self.assertTrue(os.path.exists(path), f"{path} not built")

    def test_verify_clean(self):
        # The ExecStart= binary lives under the install prefix, which is not
        # installed on this machine; point a copy of each service at the
        # built binary (nothing else changes) so verify can check it.
        with tempfile.TemporaryDirectory(prefix="beacond-verify-") as tmp:
            names = []
            for name, path in self.units.items():
                with open(path) as f:
                    text = f.read()
                if name.endswith(".service"):
                    argv = exec_start(text)
                    self.assertIsNotNone(argv, name)
                    text = text.replace("ExecStart=" + argv[0], "ExecStart=" + harness.BEACOND, 1)
                with open(os.path.join(tmp, name), "w") as f:
                    f.write(text)
                names.append(name)
            r = subprocess.run(["systemd-analyze", "verify", "--man=no", *names],
                               cwd=tmp, capture_output=True, text=True, timeout=60)
            self.assertEqual(r.stderr, "", f"systemd-analyze verify complained:\n{r.stderr}")
            self.assertEqual(r.returncode, 0)

    def test_security_exposure(self):
        for name in SERVICES:
            with self.subTest(unit=name):
                r = subprocess.run(
                    ["systemd-analyze", "security", "--offline=true", "--no-pager",
                     f"--threshold={int(MAX_EXPOSURE * 10)}", self.units[name]],
                    capture_output=True, text=True, timeout=60)
                out = r.stdout + r.stderr
                m = re.search(r"Overall exposure level for \S+: (\d+\.\d)", out)
                self.assertIsNotNone(m, out)
                score = float(m.group(1))
                sys.stderr.write(f"{name}: exposure {score}\n")
                self.assertLessEqual(score, MAX_EXPOSURE, out)
                self.assertEqual(r.returncode, 0, out)

    def test_socket_variant_has_no_capabilities(self):
        with open(self.units["beacond-socket.service"]) as f:
            text = f.read()
        self.assertRegex(text, r"(?m)^CapabilityBoundingSet=$")
        self.assertNotRegex(text, r"(?m)^AmbientCapabilities=")
        self.assertRegex(text, r"(?m)^PrivateUsers=yes$")
        with open(self.units["beacond.socket"]) as f:
            sock = f.read()
        self.assertRegex(sock, r"(?m)^Service=beacond-socket\.service$")
        self.assertRegex(sock, r"(?m)^ListenStream=.*:7$")
        self.assertRegex(sock, r"(?m)^ListenDatagram=.*:7$")
        with open(self.units["beacond-stamp.socket"]) as f:
            sock = f.read()
        # The reflector's sockets go to the same service, named so that the
        # UDP echo never serves them.
        self.assertRegex(sock, r"(?m)^Service=beacond-socket\.service$")
        self.assertRegex(sock, r"(?m)^FileDescriptorName=stamp$")
        self.assertRegex(sock, r"(?m)^ListenDatagram=.*:862$")
        self.assertNotRegex(sock, r"(?m)^ListenStream=")


class Install(unittest.TestCase):
    def test_meson_install_destdir(self):
        opts = build_options()
        with tempfile.TemporaryDirectory(prefix="beacond-install-") as dest:
            r = subprocess.run(["meson", "install", "--no-rebuild", "--quiet",
                                "--destdir", dest], cwd=BUILD,
                               capture_output=True, text=True, timeout=120)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

            def at(path):
                return os.path.join(dest, path.lstrip("/"))

            sbin = under_prefix(opts, "sbindir")
            etc = under_prefix(opts, "sysconfdir")
            man = under_prefix(opts, "mandir")
            unitdir = expected_unit_dir(opts)

            binary = at(os.path.join(sbin, "beacond"))
            self.assertTrue(os.access(binary, os.X_OK), binary)
            conf = at(os.path.join(etc, "beacond", "beacond.ini"))
            with open(conf, "rb") as a, open(os.path.join(SOURCE, "conf", "beacond.ini"), "rb") as b:
                self.assertEqual(a.read(), b.read(), "installed beacond.ini differs from conf/")
            for page in ("man8/beacond.8", "man5/beacond.ini.5"):
                path = at(os.path.join(man, page))
                self.assertTrue(os.path.exists(path) or os.path.exists(path + ".gz"), path)
            for unit in ("beacond.service", "beacond-socket.service", "beacond.socket",
                         "beacond-stamp.socket"):
                self.assertTrue(os.path.isfile(at(os.path.join(unitdir, unit))),
                                f"{unit} not in {unitdir}")

            # The installed units run the installed binary on the installed
            # config: paths follow the prefix.
            for unit in SERVICES:
                with open(at(os.path.join(unitdir, unit))) as f:
                    argv = exec_start(f.read())
                self.assertEqual(argv, [os.path.join(sbin, "beacond"), "-c",
                                        os.path.join(etc, "beacond", "beacond.ini")], unit)
                self.assertNotIn("@", " ".join(argv), "unsubstituted @var@")

            # The installed binary is the one that was built.
            r = subprocess.run([binary, "--version"], capture_output=True, text=True,
                               timeout=10)
            self.assertEqual(r.returncode, 0)
            self.assertIn("beacond", r.stdout)

    def test_unit_dir_option(self):
        # -Dsystemdunitdir overrides pkg-config: checked on the option's
        # effect in meson's install plan, not with a second build.
        opts = build_options()
        plan = json.loads(subprocess.run(["meson", "introspect", "--installed", BUILD],
                                         capture_output=True, text=True, check=True).stdout)
        units = {os.path.basename(dst): os.path.dirname(dst) for dst in plan.values()
                 if os.path.basename(dst).startswith("beacond") and
                 dst.endswith((".service", ".socket"))}
        self.assertEqual(set(units), {"beacond.service", "beacond-socket.service",
                                      "beacond.socket", "beacond-stamp.socket"})
        self.assertEqual(set(units.values()), {expected_unit_dir(opts)})


if __name__ == "__main__":
    harness.main()
