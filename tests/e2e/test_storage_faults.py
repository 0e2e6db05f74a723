"""End-to-end rules for storage faults: the real binary on a real filesystem.

- Another process (the `sqlite3` shell, as an admin would use it) holds the SQLite write lock:
  deliveries wait up to --busy-timeout-ms, then get 503 with Retry-After and write nothing;
  /readyz says not ready; once the shell lets go, the service recovers by itself.
- The filesystem holding the data directory is full (a 2 MiB tmpfs; else a loop-mounted ext4
  image; else RLIMIT_FSIZE on the service process, as the log of each test says): deliveries
  get 503 with Retry-After, the database stays intact, and once space is freed the same
  deliveries are applied.
- Everything the service and its commands create is owner-only, whatever the umask, including
  -wal/-shm recreated after a crash, tls/, backups/ and what restore leaves behind.

test_operations.py covers a lock held by Python's sqlite3 and the modes of a fresh data
directory; this file extends both.

Run: USERSYNC_BIN=build/usersync python3 -m unittest discover -s tests/e2e -v
 or: python3 tests/e2e/test_storage_faults.py build/usersync [-k PATTERN]
USERSYNC_E2E_SMALL_FS=tmpfs|loop|rlimit forces one way of making a small filesystem.
"""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import sqlite3
import stat
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.request
from pathlib import Path

import harness
from harness import (Assertions, Service, ServiceTestCase, delivery_row, encode,
                     new_user_id, signed_headers, user_event, user_row)

BUSY_TIMEOUT_MS = 1000


def readyz(service: Service) -> tuple[int, dict, dict]:
    """GET /readyz on the admin port: status, JSON body, lower-cased headers."""
    url = f"http://127.0.0.1:{service.admin_port}/readyz"
    try:
        with urllib.request.urlopen(url, timeout=60) as r:
            return r.status, json.loads(r.read()), {k.lower(): v for k, v in r.headers.items()}
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read()), {k.lower(): v for k, v in e.headers.items()}


def integrity(db_file: Path) -> list[str]:
    conn = harness.open_db_readonly(db_file)
    try:
        return [r[0] for r in conn.execute("PRAGMA integrity_check")]
    finally:
        conn.close()


# --------------------------------------------------------------------------------------------
# Another process holding the write lock


class SqliteShell:
    """The sqlite3 command-line shell on the service's database, fed through a pipe and kept
    open, as an admin's session would be."""

    def __init__(self, db_file: Path):
        if shutil.which("sqlite3") is None:
            raise unittest.SkipTest("the sqlite3 shell is not installed (apt-get install sqlite3)")
        self.db_file = db_file
        self.errors = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen(["sqlite3", str(db_file)], stdin=subprocess.PIPE,
                                     stdout=subprocess.DEVNULL, stderr=self.errors, text=True)

    def send(self, commands: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(commands + "\n")
        self.proc.stdin.flush()

    def hold_write_lock(self) -> None:
        """BEGIN IMMEDIATE in the shell; returns once another connection finds the lock taken."""
        self.send(".timeout 10000\nBEGIN IMMEDIATE;")
        deadline = time.monotonic() + 30
        while not self.write_lock_taken():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.errors.seek(0)
                raise AssertionError(f"the sqlite3 shell did not take the write lock: "
                                     f"{self.errors.read()}")
            time.sleep(0.02)

    def write_lock_taken(self) -> bool:
        probe = sqlite3.connect(self.db_file, timeout=0, isolation_level=None)
        try:
            probe.execute("BEGIN IMMEDIATE")
            probe.execute("ROLLBACK")
            return False
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) and "busy" not in str(e):
                raise
            return True
        finally:
            probe.close()

    def release(self) -> None:
        self.send("ROLLBACK;\n.quit")
        self.proc.stdin.close()
        self.proc.wait(timeout=30)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if not self.proc.stdin.closed:
            self.proc.stdin.close()
        self.errors.close()


class WriteLockHeldByTheShell(ServiceTestCase, Assertions):
    SERVICE_ARGS = ("--busy-timeout-ms", str(BUSY_TIMEOUT_MS), "--backup-interval", "0")

    def shell(self) -> SqliteShell:
        shell = SqliteShell(self.service.db_file)
        self.addCleanup(shell.kill)
        return shell

    def deliver_all(self, events: list[tuple[bytes, dict]]) -> list[tuple[harness.Response, float]]:
        """Sends every (body, headers) at once, each on its own connection; returns each
        answer with the seconds it took."""
        results: list = [None] * len(events)

        def send(i: int) -> None:
            started = time.monotonic()
            body, headers = events[i]
            response = self.service.https_request("POST", harness.WEBHOOK, body, headers)
            results[i] = (response, time.monotonic() - started)

        threads = [threading.Thread(target=send, args=(i,)) for i in range(len(events))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        return results

    def test_a_lock_held_past_the_busy_timeout_answers_503_and_the_service_recovers_by_itself(self):
        ids = [new_user_id() for _ in range(4)]
        events = []
        for clerk_id in ids:
            body = encode(user_event("created", clerk_id))
            events.append((body, signed_headers(body, self.service.secret)))
        pid = self.service.pid
        shell = self.shell()
        shell.hold_write_lock()
        before = self.service.dump()

        for response, seconds in self.deliver_all(events):
            self.assertRefused(response, 503, "database_busy")
            self.assertRegex(response.headers.get("retry-after", ""), r"^\d+$")
            # It waited for the lock (the busy timeout), and not much longer.
            self.assertGreater(seconds, BUSY_TIMEOUT_MS / 1000 * 0.8)
            self.assertLess(seconds, BUSY_TIMEOUT_MS / 1000 * len(events) + 10)
        status, body, headers = readyz(self.service)
        self.assertEqual(status, 503, body)
        self.assertIn("retry-after", headers)
        self.assertEqual(self.service.dump(), before)
        self.assertEqual(self.service.https_request("GET", "/healthz").status, 200)

        shell.release()

        # The same deliveries, as the sender retries them: applied, by the same process.
        for response, _ in self.deliver_all(events):
            self.assertOutcome(response, "applied")
        self.assertEqual(readyz(self.service)[0], 200)
        for clerk_id in ids:
            self.assertIsNotNone(user_row(self.service, clerk_id))
        self.assertEqual(self.service.pid, pid)

    def test_a_lock_released_within_the_busy_timeout_only_delays_the_delivery(self):
        event = user_event("created", new_user_id())
        body = encode(event)
        shell = self.shell()
        shell.hold_write_lock()
        results: list = []
        sender = threading.Thread(target=lambda: results.extend(
            self.deliver_all([(body, signed_headers(body, self.service.secret))])))
        sender.start()
        time.sleep(BUSY_TIMEOUT_MS / 1000 / 4)
        shell.release()
        sender.join(120)
        response, _ = results[0]
        self.assertOutcome(response, "applied")
        self.assertIsNotNone(user_row(self.service, event["data"]["id"]))

    def test_a_long_read_in_the_shell_does_not_block_deliveries(self):
        # WAL: readers never block the writer, so an admin's open SELECT changes nothing.
        shell = self.shell()
        shell.send("BEGIN;\nSELECT count(*) FROM users;")
        time.sleep(0.2)
        event = user_event("created", new_user_id())
        started = time.monotonic()
        self.assertOutcome(self.service.deliver(event), "applied")
        self.assertLess(time.monotonic() - started, BUSY_TIMEOUT_MS / 1000)
        shell.release()


# --------------------------------------------------------------------------------------------
# A full filesystem

# Starts the service with SIGXFSZ ignored, so a file-size limit set later gives write errors
# instead of killing it (subprocess restores SIGXFSZ to the default in children).
IGNORE_SIGXFSZ = ("import os, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
                  "os.execv(sys.argv[1], sys.argv[1:])")


class FsizeLimitedService(Service):
    def command(self) -> list[str]:
        return [sys.executable, "-c", IGNORE_SIGXFSZ, *super().command()]


class SmallDisk:
    """A small filesystem for the data directory that can be filled and freed again: a 2 MiB
    tmpfs, else a loop-mounted 4 MiB ext4 image, else (no mounting allowed) a plain directory
    where "full" means RLIMIT_FSIZE on the service process at the files' current sizes."""

    def __init__(self):
        self.tmp = Path(tempfile.mkdtemp(prefix="usersync-e2e-disk-"))
        self.mount_point = self.tmp / "mnt"
        self.mount_point.mkdir(mode=0o700)
        self.filler = self.mount_point / "filler"
        self.mounted = False
        self.kind = ""
        self.service: Service | None = None
        forced = os.environ.get("USERSYNC_E2E_SMALL_FS", "")
        for kind in ([forced] if forced else ["tmpfs", "loop", "rlimit"]):
            if getattr(self, f"_make_{kind}")():
                self.kind = kind
                break
        if not self.kind:
            raise RuntimeError(f"USERSYNC_E2E_SMALL_FS={forced}: that kind of small filesystem "
                               f"cannot be made here; use tmpfs, loop or rlimit")
        print(f"\n[storage faults: the data directory is on {self.describe()}]", file=sys.stderr)

    def describe(self) -> str:
        return {"tmpfs": "a 2 MiB tmpfs", "loop": "a 4 MiB loop-mounted ext4 image",
                "rlimit": "the ordinary filesystem, full meaning RLIMIT_FSIZE on the service"
                }[self.kind]

    def _mount(self, *args: str) -> bool:
        result = subprocess.run(["mount", *args, str(self.mount_point)], capture_output=True)
        self.mounted = result.returncode == 0
        return self.mounted

    def _make_tmpfs(self) -> bool:
        return self._mount("-t", "tmpfs", "-o", "size=2m,mode=0700", "usersync-e2e-full")

    def _make_loop(self) -> bool:
        image = self.tmp / "disk.img"
        with open(image, "wb") as f:
            f.truncate(4 << 20)
        made = subprocess.run(["mkfs.ext4", "-q", "-F", "-m", "0", str(image)], capture_output=True)
        return made.returncode == 0 and self._mount("-o", "loop", str(image))

    def _make_rlimit(self) -> bool:
        return True

    def new_service(self, *args: str) -> Service:
        cls = FsizeLimitedService if self.kind == "rlimit" else Service
        self.service = cls(*args, data_dir=self.mount_point / "data")
        return self.service

    def fill(self) -> None:
        if self.kind == "rlimit":
            sizes = [p.stat().st_size for p in self.service.data_dir.iterdir() if p.is_file()]
            # Only the soft limit: raising it again later needs no privilege.
            resource.prlimit(self.service.pid, resource.RLIMIT_FSIZE,
                             (max(sizes), resource.RLIM_INFINITY))
            return
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            for size in (1 << 16, 4096, 1):
                try:
                    while True:
                        os.write(fd, b"\0" * size)
                except OSError:
                    pass
        finally:
            os.close(fd)

    def free(self) -> None:
        if self.kind == "rlimit":
            if self.service is not None and self.service.proc is not None:  # a new one has none
                unlimited = (resource.RLIM_INFINITY, resource.RLIM_INFINITY)
                resource.prlimit(self.service.pid, resource.RLIMIT_FSIZE, unlimited)
            return
        if self.filler.exists():
            self.filler.unlink()

    def cleanup(self) -> None:
        if self.service is not None:
            self.service.cleanup()
        if self.mounted:
            subprocess.run(["umount", str(self.mount_point)], check=False)
        shutil.rmtree(self.tmp, ignore_errors=True)


class FullDisk(Assertions):
    @classmethod
    def setUpClass(cls) -> None:
        cls.disk = SmallDisk()
        cls.service = cls.disk.new_service("--backup-interval", "0")
        try:
            cls.service.start()
        except BaseException:
            cls.disk.cleanup()
            raise

    @classmethod
    def tearDownClass(cls) -> None:
        try:
            cls.disk.free()
            if cls.service.proc is not None:
                cls.service.stop()
        finally:
            cls.disk.cleanup()

    def setUp(self) -> None:
        self.addCleanup(self.disk.free)

    def signed(self, event) -> tuple[bytes, dict]:
        body = encode(event)
        return body, signed_headers(body, self.service.secret)

    def test_a_full_disk_answers_503_and_the_same_deliveries_succeed_once_space_is_freed(self):
        existing = new_user_id()
        self.assertOutcome(self.service.deliver(user_event("created", existing)), "applied")
        new = [new_user_id() for _ in range(3)]
        deliveries = [self.signed(user_event("created", c)) for c in new]
        deliveries += [self.signed(user_event("updated", existing, first_name="Augusta")),
                       self.signed(user_event("deleted", new_user_id()))]
        malformed = self.signed(b'{"type": "user.created", "data": ')
        self.disk.fill()
        before = self.service.dump()

        for body, headers in deliveries:
            response = self.service.https_request("POST", harness.WEBHOOK, body, headers)
            self.assertRefused(response, 503, "disk_full" if self.disk.kind != "rlimit" else None)
            self.assertRegex(response.headers.get("retry-after", ""), r"^\d+$")
        # A genuine but undecodable delivery is still answered 400 (Svix retries any non-2xx,
        # so its record lands later); while the disk is full it cannot be recorded.
        response = self.service.https_request("POST", harness.WEBHOOK, *malformed)
        self.assertRefused(response, 400, "malformed_event")
        self.assertEqual(self.service.dump(), before)
        self.assertEqual(integrity(self.service.db_file), ["ok"])
        self.assertEqual(self.service.https_request("GET", "/healthz").status, 200)

        self.disk.free()

        for body, headers in deliveries:
            response = self.service.https_request("POST", harness.WEBHOOK, body, headers)
            self.assertOutcome(response, "applied")
        self.assertRefused(self.service.https_request("POST", harness.WEBHOOK, *malformed), 400)
        for clerk_id in new:
            self.assertIsNotNone(user_row(self.service, clerk_id))
        self.assertEqual(user_row(self.service, existing)["first_name"], "Augusta")
        self.assertIsNotNone(delivery_row(self.service, deliveries[-1][1]["svix-id"]))
        self.assertEqual(self.service.query(
            "SELECT count(*) FROM rejected_deliveries WHERE svix_id = ?",
            (malformed[1]["svix-id"],)), [(1,)])
        self.assertEqual(integrity(self.service.db_file), ["ok"])

    def test_readyz_reports_not_ready_while_the_disk_is_full(self):
        # The readiness probe is meant to commit a real write (admin_routes.cpp); a write that
        # cannot be committed on a full disk must make it say so.
        self.assertEqual(readyz(self.service)[0], 200)
        self.disk.fill()
        probe = self.service.deliver(user_event("created", new_user_id()))
        self.assertEqual(probe.status, 503, "the disk is not full: the case proves nothing")
        status, body, _ = readyz(self.service)
        self.assertEqual(status, 503, f"/readyz answered {status} {body} while every delivery "
                                      f"gets 503")
        self.disk.free()
        self.assertEqual(readyz(self.service)[0], 200)

    def test_sigterm_on_a_full_disk_loses_no_acknowledged_event(self):
        # The final checkpoint cannot complete on a full disk; whatever the exit status, every
        # acknowledged event must be there after a restart.
        ids = [new_user_id() for _ in range(5)]
        for clerk_id in ids:
            self.assertOutcome(self.service.deliver(user_event("created", clerk_id)), "applied")
        self.disk.fill()
        code = self.service.terminate()
        print(f"\n[storage faults: SIGTERM on a full disk exited {code}: "
              f"{self.service.stderr().strip().splitlines()[-1][:200]}]", file=sys.stderr)
        self.assertIsNotNone(code, "usersync hung on SIGTERM with a full disk")
        self.disk.free()
        self.service.start()
        self.assertEqual(integrity(self.service.db_file), ["ok"])
        for clerk_id in ids:
            self.assertIsNotNone(user_row(self.service, clerk_id))


# --------------------------------------------------------------------------------------------
# Owner-only files


def run_usersync(*args: str, umask: int = 0) -> subprocess.CompletedProcess:
    return subprocess.run([harness.usersync_bin(), *args], stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=300, env=harness.clean_env(),
                          umask=umask)


class OwnerOnlyFiles(Assertions):
    def assertOwnerOnly(self, root: Path, expected: dict[Path, int]) -> None:
        for path, mode in expected.items():
            with self.subTest(path=str(path.relative_to(root))):
                self.assertTrue(path.exists(), f"{path} does not exist")
                self.assertEqual(oct(stat.S_IMODE(path.stat().st_mode)), oct(mode))
        for path in [root, *root.rglob("*")]:
            with self.subTest(path=str(path.relative_to(root))):
                self.assertEqual(stat.S_IMODE(path.lstat().st_mode) & 0o077, 0,
                                 oct(stat.S_IMODE(path.lstat().st_mode)))

    def test_files_made_by_serve_backup_a_crash_and_restore_are_owner_only_with_umask_0(self):
        with Service("--backup-interval", "0", umask=0) as service:
            data = service.data_dir
            self.assertOutcome(service.deliver(user_event("created", new_user_id())), "applied")
            made = run_usersync("backup", "--data-dir", str(data), "--name", "modes")
            if made.returncode != 0 and "unknown" in (made.stderr + made.stdout).lower():
                self.skipTest("usersync has no backup command yet")
            self.assertEqual(made.returncode, 0, made.stderr)
            backup = Path(re.match(r"backup (\S+\.db)\n", made.stdout).group(1))
            # A crash, then a restart: SQLite rebuilds the -shm index (the -wal holds committed
            # transactions, so it stays; the restart after restore below makes a new one).
            service.proc.kill()
            service.proc.wait()
            service.proc = None
            Path(f"{service.db_file}-shm").unlink()
            service.start()
            self.assertOutcome(service.deliver(user_event("created", new_user_id())), "applied")
            expected = {
                data: 0o700, data / "tls": 0o700, data / "backups": 0o700,
                service.db_file: 0o600, Path(f"{service.db_file}-wal"): 0o600,
                Path(f"{service.db_file}-shm"): 0o600, data / "usersync.lock": 0o600,
                data / "dev-webhook-secret": 0o600, data / "dev-query-token": 0o600,
                data / "tls" / "dev-key.pem": 0o600, data / "tls" / "dev-cert.pem": 0o600,
                backup: 0o600, Path(f"{backup}.json"): 0o600,
            }
            self.assertOwnerOnly(data, expected)
            service.stop()
            restored = run_usersync("restore", "--data-dir", str(data), str(backup))
            self.assertEqual(restored.returncode, 0, restored.stderr + restored.stdout)
            self.assertOwnerOnly(data, {service.db_file: 0o600})
            service.start()
            self.assertOwnerOnly(data, {Path(f"{service.db_file}-wal"): 0o600,
                                        Path(f"{service.db_file}-shm"): 0o600})


if __name__ == "__main__":
    harness.main()
