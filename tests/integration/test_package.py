"""The Debian package, built by scripts/package and installed under a real
systemd.

Builds the package once from the working tree (scripts/package: lintian on
the .changes and the .deb must report no error and no warning), and a second
one with a bumped version, then boots systemd in an nspawn container on an
overlay of the host root (the recipe of test_nspawn.py; --private-network, so
apt cannot download anything and all traffic stays on the container's
loopback) and, inside it, in order:

  apt-get install ./beacond_V_ARCH.deb: the user beacond exists, the service
  is enabled, active and running as that user, beacond.socket is shipped
  disabled, journalctl -u beacond shows the ready line and the state line of
  the packaged loopback target, "echo hi | nc -N 127.0.0.1 7" is echoed,
  systemctl reload beacond reloads (same PID, event=reloaded), and the
  installed unit scores <= 1.5 in systemd-analyze security; switching to
  beacond.socket serves port 7 as the same user, and back;
  an edit of /etc/beacond/beacond.ini (an added target) survives installing
  the bumped build without any --force-conf* option and with no terminal:
  the package restarts the service, which runs the edited config;
  apt-get remove: stopped, not enabled, the config stays;
  apt-get purge: config, state directory, user and group gone, dpkg -L
  lists nothing.

The package build is a failure when it fails; exit status 77 (skipped) only
when the container cannot run here (not root, no systemd-nspawn, no tmpfs or
overlay mounts), and then only the container part is skipped.
"""
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
import test_nspawn  # noqa: E402
from test_nspawn import Container, events, run, wait_for  # noqa: E402

SOURCE = harness.SOURCE_ROOT
MAX_EXPOSURE = 1.5
PKGDIR = "/var/tmp/beacond-packages"   # in the container, readable by apt's _apt user
ADDED_TARGET = "\n[target lo2]\nhost = 127.0.0.2\n"


class Packages:
    """The two builds, made once per run."""
    tmp = None
    deb = None
    bumped = None
    version = None
    bumped_version = None
    error = None

    @classmethod
    def build(cls):
        if cls.deb or cls.error:
            return
        cls.tmp = tempfile.mkdtemp(prefix="beacond-package-test-")
        env = dict(os.environ)
        # The unit tests run in their own suite; the package build only
        # compiles what it ships.
        env["DEB_BUILD_OPTIONS"] = "nocheck"
        env["DEB_BUILD_PROFILES"] = "nocheck"
        script = os.path.join(SOURCE, "scripts", "package")
        try:
            t0 = time.monotonic()
            r = run([script, "--outdir", os.path.join(cls.tmp, "1")], timeout=900,
                    check=False, env=env)
            if r.returncode != 0:
                raise AssertionError(f"scripts/package failed ({r.returncode}):\n"
                                     f"{r.stdout}{r.stderr[-6000:]}")
            cls.lintian_output = r.stderr
            cls.deb = r.stdout.strip().splitlines()[-1]
            cls.version = run(["dpkg-deb", "-f", cls.deb, "Version"]).stdout.strip()
            cls.bumped_version = cls.version + "+test1"
            t1 = time.monotonic()
            sys.stderr.write(f"scripts/package (build + lintian): {t1 - t0:.0f}s\n")
            r = run([script, "--no-lintian", "--version", cls.bumped_version,
                     "--outdir", os.path.join(cls.tmp, "2")], timeout=900, check=False,
                    env=env)
            if r.returncode != 0:
                raise AssertionError(f"scripts/package --version failed ({r.returncode}):\n"
                                     f"{r.stdout}{r.stderr[-6000:]}")
            cls.bumped = r.stdout.strip().splitlines()[-1]
            sys.stderr.write(f"scripts/package --version (build only): "
                             f"{time.monotonic() - t1:.0f}s\n")
        except Exception as e:
            cls.error = e
            raise

    @classmethod
    def cleanup(cls):
        if cls.tmp:
            shutil.rmtree(cls.tmp, ignore_errors=True)


class Build(unittest.TestCase):
    def test_01_build_and_lintian(self):
        Packages.build()
        self.assertTrue(os.path.isfile(Packages.deb), Packages.deb)
        self.assertRegex(os.path.basename(Packages.deb), r"^beacond_[^_]+_[a-z0-9-]+\.deb$")
        # scripts/package ran lintian --fail-on error,warning and passed;
        # show that it did run, and that nothing at E:/W: level was printed.
        self.assertIn("lintian ", Packages.lintian_output)
        self.assertNotRegex(Packages.lintian_output, r"(?m)^[EW]: ")
        self.assertEqual(run(["dpkg-deb", "-f", Packages.bumped, "Version"]).stdout.strip(),
                         Packages.bumped_version)

    def test_02_contents(self):
        Packages.build()
        files = set()
        for line in run(["dpkg-deb", "-c", Packages.deb]).stdout.splitlines():
            path = line.split()[5]
            files.add(path[1:] if path.startswith("./") else path)
        for want in ("/usr/sbin/beacond", "/lib/systemd/system/beacond.service",
                     "/lib/systemd/system/beacond.socket",
                     "/lib/systemd/system/beacond-socket.service",
                     "/usr/lib/sysusers.d/beacond.conf", "/etc/beacond/beacond.ini",
                     "/usr/share/man/man8/beacond.8.gz", "/usr/share/man/man5/beacond.ini.5.gz",
                     "/usr/share/doc/beacond/README.md.gz", "/usr/share/doc/beacond/changelog.gz",
                     "/usr/share/doc/beacond/copyright",
                     "/usr/share/doc/beacond/examples/beacond.ini"):
            self.assertIn(want, files)
        # Whatever alert rules conf/ ships are examples.
        for name in sorted(os.listdir(os.path.join(SOURCE, "conf"))):
            if name.endswith((".yml", ".yaml")):
                self.assertIn("/usr/share/doc/beacond/examples/" + name, files)
        # Everything meson installs is packaged (beaconctl included once it
        # exists): each installed file's name is in the .deb (man pages
        # gzipped by dh_compress).
        build = os.environ.get("BEACOND_BUILD_ROOT")
        if build:
            import json
            plan = json.loads(run(["meson", "introspect", "--installed", build]).stdout)
            names = {os.path.basename(p) for p in files}
            for dest in plan.values():
                base = os.path.basename(dest)
                self.assertTrue(base in names or base + ".gz" in names,
                                f"{dest} (meson install) is not in the package")
        with tempfile.TemporaryDirectory() as d:
            run(["dpkg-deb", "-e", Packages.deb, d])
            with open(os.path.join(d, "conffiles")) as f:
                self.assertIn("/etc/beacond/beacond.ini", f.read().split())


def build_depends():
    """Package names in debian/control's Build-Depends (profiles dropped)."""
    with open(os.path.join(SOURCE, "debian", "control")) as f:
        text = f.read()
    text = "\n".join(line for line in text.splitlines() if not line.startswith("#"))
    m = re.search(r"^Build-Depends:(.*?)(?=^\S)", text, re.M | re.S)
    names = set()
    for item in m.group(1).split(","):
        item = item.strip()
        if item:
            names.add(re.split(r"[\s(<\[]", item, maxsplit=1)[0])
    return names


class BuildDepends(unittest.TestCase):
    # Optional in meson (required : false): debian/rules passes
    # -Dsystemdunitdir, and the sysusers.d fallback is the same directory.
    OPTIONAL = {"systemd"}

    def test_every_meson_dependency_is_a_build_dependency(self):
        """A library meson finds on this machine must be in Build-Depends,
        or the package does not build on a fresh Debian 12."""
        build = os.environ.get("BEACOND_BUILD_ROOT")
        if not build or not harness.have("pkg-config") or not harness.have("dpkg"):
            self.skipTest("no meson build dir, pkg-config or dpkg")
        import json
        deps = json.loads(run(["meson", "introspect", "--dependencies", build]).stdout)
        wanted = build_depends()
        checked = 0
        for dep in deps:
            if dep["name"] in self.OPTIONAL:
                continue
            pc = run(["pkg-config", "--path", dep["name"]], check=False).stdout.strip()
            if not pc:
                continue            # not a pkg-config dependency (libm, threads)
            owner = run(["dpkg", "-S", pc], check=False).stdout.split(":")[0]
            if not owner:
                continue            # installed by hand, not by a Debian package
            checked += 1
            self.assertIn(owner, wanted, f"meson dependency {dep['name']} ({pc}) comes from "
                                         f"{owner}, which debian/control does not list")
        self.assertGreater(checked, 0, deps)


class Installed(unittest.TestCase):
    """Steps run in order (test_NN_*) against one booted container."""

    @classmethod
    def setUpClass(cls):
        why = test_nspawn.can_run()
        if why:
            raise unittest.SkipTest(why)
        Packages.build()
        c = cls.c = Container()
        cls.addClassCleanup(c.teardown)
        c.mount_overlay()
        c.trim_boot()
        # Docker images ship a policy-rc.d that forbids starting services
        # from maintainer scripts (exit 101); a Debian host has none.
        if os.path.lexists(c.path("/usr/sbin/policy-rc.d")):
            os.unlink(c.path("/usr/sbin/policy-rc.d"))
        os.makedirs(c.path(PKGDIR), mode=0o755, exist_ok=True)
        os.chmod(c.path(PKGDIR), 0o755)
        for deb in (Packages.deb, Packages.bumped):
            shutil.copy(deb, c.path(PKGDIR))
            os.chmod(c.path(os.path.join(PKGDIR, os.path.basename(deb))), 0o644)
        # Leftovers of a "meson install" on the host would look like a user's
        # files to dpkg: the container starts without them (the overlay hides
        # them; the host keeps its copies).
        for d in ("/etc/beacond", "/var/lib/beacond", "/var/lib/private/beacond",
                  "/etc/systemd/system/multi-user.target.wants/beacond.service"):
            p = c.path(d)
            if os.path.isdir(p) and not os.path.islink(p):
                shutil.rmtree(p)
            elif os.path.lexists(p):
                os.unlink(p)
        c.boot()

    # -- helpers --------------------------------------------------------------
    def ct(self, *cmd, timeout=60, check=True):
        """In the container, no terminal: a prompt would fail, not hang."""
        return run(["nsenter", "-t", str(self.c.leader), "-a", "env",
                    "DEBIAN_FRONTEND=noninteractive", *cmd],
                   timeout=timeout, check=check, stdin=subprocess.DEVNULL)

    def apt(self, *args):
        return self.ct("apt-get", "-y", "-q", "--no-install-recommends", *args, timeout=240)

    def show(self, prop, unit="beacond.service"):
        return self.c.show(unit, prop)

    def diag(self):
        return "\n--- journalctl -u beacond ---\n" + self.c.journal_text("beacond.service")

    def exists(self, path):
        return self.ct("test", "-e", path, check=False).returncode == 0 or \
            self.ct("test", "-L", path, check=False).returncode == 0

    def echo_hi(self):
        r = self.ct("sh", "-c", "echo hi | nc -N -w 5 127.0.0.1 7", check=False, timeout=20)
        return r.stdout == "hi\n", r.stdout + r.stderr

    def journal_events(self, event, pid=None, **match):
        evs = events(self.c.journal("beacond.service"), event, **match)
        return [e for e in evs if pid is None or e["_pid"] == pid]

    # -- steps ------------------------------------------------------------------
    def test_01_install(self):
        deb = os.path.join(PKGDIR, os.path.basename(Packages.deb))
        r = self.apt("install", deb)
        out = r.stdout + r.stderr
        # All dependencies are on the host root already: nothing to fetch
        # (and with --private-network nothing could be fetched).
        self.assertNotRegex(out, r"Need to get [1-9]", out)
        self.assertEqual(self.ct("dpkg-query", "-W", "-f=${Version}", "beacond").stdout,
                         Packages.version)
        pw = self.ct("getent", "passwd", "beacond", check=False)
        self.assertEqual(pw.returncode, 0, "sysusers created no user beacond")
        type(self).uid = pw.stdout.split(":")[2]
        self.assertEqual(self.ct("getent", "group", "beacond", check=False).returncode, 0)

        wait_for(lambda: self.show("ActiveState") == "active", 20,
                 "beacond.service active after install")
        self.assertEqual(self.ct("systemctl", "is-enabled", "beacond.service",
                                 check=False).stdout.strip(), "enabled")
        # The socket units conflict with the service: shipped, not enabled.
        sockets = sorted(n for n in os.listdir(self.c.path("/lib/systemd/system"))
                         if n.startswith("beacond") and n.endswith(".socket"))
        self.assertIn("beacond.socket", sockets)
        for unit in sockets:
            self.assertEqual(self.ct("systemctl", "is-enabled", unit,
                                     check=False).stdout.strip(), "disabled", unit)
            self.assertEqual(self.show("ActiveState", unit), "inactive", unit)
        pid = self.show("MainPID")
        self.assertNotEqual(pid, "0")
        type(self).pid = pid
        with open(f"/proc/{self.c.leader}/root/proc/{pid}/status") as f:
            uids = re.search(r"^Uid:\s+(\d+)", f.read(), re.M).group(1)
        self.assertEqual(uids, self.uid, "beacond does not run as the user beacond")

    def test_02_journal_ready_and_state(self):
        wait_for(lambda: self.journal_events("ready", self.pid), 15, "event=ready")
        # The packaged config's one target, the host itself, comes up.
        up = wait_for(lambda: self.journal_events("state", self.pid, target="localhost",
                                                  to="up"), 20,
                      "event=state target=localhost to=up")
        self.assertTrue(up, self.diag())
        text = self.ct("journalctl", "-u", "beacond", "--no-pager").stdout
        self.assertRegex(text, r"event=ready")
        self.assertRegex(text, r"event=state .*target=localhost")

    def test_03_echo(self):
        ok, out = self.echo_hi()
        self.assertTrue(ok, out + self.diag())

    def test_04_reload(self):
        before = len(self.journal_events("reloaded", self.pid))
        self.ct("systemctl", "reload", "beacond.service", timeout=30)
        self.assertEqual(self.show("MainPID"), self.pid, "reload restarted beacond")
        wait_for(lambda: len(self.journal_events("reloaded", self.pid)) > before, 10,
                 "event=reloaded" + self.diag())
        ok, out = self.echo_hi()
        self.assertTrue(ok, out)

    def test_05_security_of_installed_unit(self):
        # Against the installed unit file and the container's manager, with
        # the user beacond really there.
        for cmd in (["systemd-analyze", "security", "--offline=true", "--no-pager",
                     "/lib/systemd/system/beacond.service"],
                    ["systemd-analyze", "security", "--offline=true", "--no-pager",
                     "/lib/systemd/system/beacond-socket.service"],
                    ["systemd-analyze", "security", "--no-pager", "beacond.service"]):
            r = self.ct(*cmd, check=False)
            m = re.search(r"Overall exposure level for \S+: (\d+\.\d)", r.stdout + r.stderr)
            self.assertIsNotNone(m, r.stdout + r.stderr)
            score = float(m.group(1))
            sys.stderr.write(f"{' '.join(cmd[2:])}: exposure {score}\n")
            self.assertLessEqual(score, MAX_EXPOSURE, r.stdout)

    def test_06_socket_variant(self):
        # The shipped-disabled alternative works as installed: systemd binds
        # port 7 and beacond-socket.service (no capabilities, PrivateUsers=)
        # serves it as the same user.  Datagram ICMP needs the container's
        # ping_group_range open (a per-namespace sysctl).
        self.c.net("sysctl", "-q", "-w", "net.ipv4.ping_group_range=0 2147483647")
        self.ct("systemctl", "disable", "--now", "beacond.service")
        self.ct("systemctl", "enable", "--now", "beacond.socket")
        try:
            ok, out = self.echo_hi()
            self.assertTrue(ok, out + "\n" + self.c.journal_text("beacond-socket.service"))
            pid = self.show("MainPID", "beacond-socket.service")
            self.assertNotEqual(pid, "0")
            with open(f"/proc/{self.c.leader}/root/proc/{pid}/status") as f:
                uid = re.search(r"^Uid:\s+(\d+)", f.read(), re.M).group(1)
            self.assertEqual(uid, self.uid, "beacond-socket.service is not the user beacond")
        finally:
            self.ct("systemctl", "disable", "--now", "beacond.socket", check=False)
            self.ct("systemctl", "stop", "beacond-socket.service", check=False)
            self.ct("systemctl", "enable", "--now", "beacond.service")
        self.assertEqual(self.show("ActiveState"), "active")
        type(self).pid = self.show("MainPID")

    def test_07_edit_then_upgrade(self):
        c = self.c
        self.assertTrue(self.exists("/var/lib/beacond"), "no state directory")
        with open(c.path("/etc/beacond/beacond.ini")) as f:
            edited = f.read() + ADDED_TARGET
        c.write("/etc/beacond/beacond.ini", edited)
        # No --force-confold/--force-confdef and no terminal: a conffile
        # prompt would make dpkg fail here.
        deb = os.path.join(PKGDIR, os.path.basename(Packages.bumped))
        self.apt("install", deb)
        self.assertEqual(self.ct("dpkg-query", "-W", "-f=${Version}", "beacond").stdout,
                         Packages.bumped_version)
        with open(c.path("/etc/beacond/beacond.ini")) as f:
            self.assertEqual(f.read(), edited, "the upgrade lost the edit")
        for suffix in (".dpkg-new", ".dpkg-dist", ".dpkg-old"):
            self.assertFalse(self.exists("/etc/beacond/beacond.ini" + suffix), suffix)
        wait_for(lambda: self.show("ActiveState") == "active", 20, "active after upgrade")
        # The upgrade neither enabled nor started the socket variant.
        self.assertEqual(self.ct("systemctl", "is-enabled", "beacond.socket",
                                 check=False).stdout.strip(), "disabled")
        self.assertEqual(self.show("ActiveState", "beacond.socket"), "inactive")
        pid = self.show("MainPID")
        self.assertNotIn(pid, ("0", self.pid), "the upgrade did not restart beacond")
        type(self).pid = pid
        # The new process runs the edited file: the added target comes up.
        wait_for(lambda: self.journal_events("state", pid, target="lo2", to="up"), 20,
                 "event=state target=lo2 to=up from the restarted beacond" + self.diag())
        ok, out = self.echo_hi()
        self.assertTrue(ok, out)

    def test_08_remove(self):
        self.apt("remove", "beacond")
        self.assertEqual(self.show("ActiveState"), "inactive")
        self.assertNotEqual(self.ct("systemctl", "is-enabled", "beacond.service",
                                    check=False).stdout.strip(), "enabled")
        self.assertFalse(os.path.exists(f"/proc/{self.c.leader}/root/proc/{self.pid}"),
                         "beacond still running")
        ok, _ = self.echo_hi()
        self.assertFalse(ok, "port 7 still echoes after remove")
        self.assertTrue(self.exists("/etc/beacond/beacond.ini"), "remove deleted the config")
        self.assertTrue(self.exists("/var/lib/beacond"), "remove deleted the state directory")
        with open(self.c.path("/etc/beacond/beacond.ini")) as f:
            self.assertIn("[target lo2]", f.read())
        status = self.ct("dpkg-query", "-W", "-f=${Status}", "beacond").stdout
        self.assertEqual(status, "deinstall ok config-files")

    def test_09_purge(self):
        self.apt("purge", "beacond")
        for path in ("/etc/beacond", "/var/lib/beacond", "/var/lib/private/beacond",
                     "/usr/sbin/beacond", "/lib/systemd/system/beacond.service",
                     "/etc/systemd/system/multi-user.target.wants/beacond.service"):
            self.assertFalse(self.exists(path), f"{path} left after purge")
        self.assertNotEqual(self.ct("getent", "passwd", "beacond", check=False).returncode, 0,
                            "user beacond left after purge")
        self.assertNotEqual(self.ct("getent", "group", "beacond", check=False).returncode, 0,
                            "group beacond left after purge")
        r = self.ct("dpkg", "-L", "beacond", check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertEqual(r.stdout, "", "dpkg -L still lists files")
        known = self.ct("dpkg-query", "-W", "-f=${db:Status-Abbrev}", "beacond",
                        check=False).stdout.strip()
        self.assertIn(known, ("", "un"), "dpkg still knows beacond after purge")


if __name__ == "__main__":
    started = time.monotonic()
    prog = unittest.main(module="__main__", verbosity=2, exit=False)
    Packages.cleanup()
    sys.stderr.write(f"test_package: {time.monotonic() - started:.0f}s\n")
    sys.exit(0 if prog.result.wasSuccessful() else 1)
