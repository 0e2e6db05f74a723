"""End-to-end rules of backups: the real binary, a real data directory, real files.

Backups are taken with `usersync backup` while `usersync serve` ingests signed webhooks, then
listed, verified, broken on purpose and restored. Expected values come from outside usersync:
SHA-256 from hashlib, integrity and rows from Python's sqlite3.

Run: USERSYNC_BIN=build/usersync python3 -m unittest -v test_backup   (in tests/e2e)
 or: python3 tests/e2e/test_backup.py build/usersync
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sqlite3
import subprocess
import tempfile
import threading
import time
import unittest
from pathlib import Path

import harness
from harness import Service, ServiceStartError, new_user_id, user_event

# Serve without the scheduled job, so the only backups are the ones a test takes.
NO_SCHEDULE = ("--backup-interval", "0")


def run_usersync(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([harness.usersync_bin(), *args], stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=300,
                          env=harness.clean_env())


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def integrity(path: Path) -> str:
    conn = harness.open_db_readonly(path)
    try:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        conn.close()


def query(path: Path, sql: str) -> list[tuple]:
    conn = harness.open_db_readonly(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def backup_path(result: subprocess.CompletedProcess) -> Path:
    """The file `usersync backup` reports on its first line."""
    m = re.match(r"backup (\S+\.db)\n", result.stdout)
    assert m, f"no backup file in output:\n{result.stdout}\n{result.stderr}"
    return Path(m.group(1))


def damage(db_file: Path) -> None:
    """Overwrites the database's second and third pages, as a bad disk or a stray write might."""
    with open(db_file, "r+b") as f:
        f.seek(4096)
        f.write(b"\x5a" * 8192)


def add_filler(db_file: Path, megabytes: int) -> None:
    """Grows a database (serve not running) with random rejected-delivery bodies."""
    conn = sqlite3.connect(db_file)
    try:
        with conn:
            conn.executemany(
                "INSERT INTO rejected_deliveries (svix_id, received_at, error, body)"
                " VALUES ('filler', '2025-01-01T00:00:00.000Z', 'filler', ?)",
                ((os.urandom(2048).hex(),) for _ in range(megabytes * 256)))
    finally:
        conn.close()


class BackupTestCase(unittest.TestCase):
    def setUp(self) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="usersync-e2e-backup-"))
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.data_dir = self.tmp / "data"
        self.backups = self.data_dir / "backups"

    def service(self, *args: str) -> Service:
        s = Service(*NO_SCHEDULE, *args, data_dir=self.data_dir)
        self.addCleanup(s.cleanup)
        return s

    def deliver_users(self, service: Service, count: int) -> list[str]:
        ids = [new_user_id() for _ in range(count)]
        with service.keep_alive() as client:
            for uid in ids:
                r = service.deliver(user_event("created", uid), client=client)
                self.assertEqual(r.status, 200, str(r))
        return ids

    def take_backup(self, *args: str) -> Path:
        result = run_usersync("backup", "--data-dir", str(self.data_dir), *args)
        self.assertEqual(result.returncode, 0, result.stderr)
        return backup_path(result)


class BackupAndRestore(BackupTestCase):
    def test_backup_list_verify_break_restore_finds_every_user_again(self):
        """The README's walk-through, step by step."""
        service = self.service().start()
        self.deliver_users(service, 25)
        users_before = service.query("SELECT * FROM users ORDER BY clerk_id")

        # Take a backup while serving.
        backup = self.take_backup("--name", "walkthrough")
        self.assertRegex(backup.name, r"^usersync-\d{8}T\d{6}Z-walkthrough\.db$")
        self.assertEqual(backup.parent, self.backups)
        self.assertEqual(os.stat(backup).st_mode & 0o777, 0o600)
        manifest = json.loads(Path(str(backup) + ".json").read_text())
        self.assertEqual(manifest["sha256"], sha256(backup))
        self.assertEqual(manifest["user_count"], 25)
        self.assertEqual(manifest["integrity_check"], "ok")
        self.assertEqual(integrity(backup), "ok")

        # List it.
        listed = run_usersync("backups", "--data-dir", str(self.data_dir))
        self.assertEqual(listed.returncode, 0, listed.stderr)
        line = next(l for l in listed.stdout.splitlines() if l.startswith(backup.name))
        self.assertIn("verified", line)

        # Verify it, by full path and by bare name.
        for name in (str(backup), backup.name):
            verified = run_usersync("backup", "verify", name, "--data-dir", str(self.data_dir))
            self.assertEqual(verified.returncode, 0, verified.stdout + verified.stderr)
            self.assertIn(sha256(backup), verified.stdout)

        # Break the live database (with the service stopped, as a crash would find it).
        service.stop()
        damage(service.db_file)

        # Restore.
        restored = run_usersync("restore", str(backup), "--data-dir", str(self.data_dir))
        self.assertEqual(restored.returncode, 0, restored.stdout + restored.stderr)
        kept = [p for p in self.data_dir.iterdir() if ".before-restore-" in p.name]
        self.assertEqual(len(kept), 1, restored.stdout)
        self.assertIn(f"mv {kept[0]} {service.db_file}", restored.stdout)
        self.assertEqual(integrity(service.db_file), "ok")
        self.assertEqual(os.stat(service.db_file).st_mode & 0o777, 0o600)

        # Every user is back, and the service takes new events again.
        service.start()
        self.assertEqual(service.query("SELECT * FROM users ORDER BY clerk_id"), users_before)
        self.deliver_users(service, 1)
        service.stop()

    def test_a_restore_over_a_running_service_is_refused_naming_its_pid(self):
        service = self.service().start()
        self.deliver_users(service, 3)
        backup = self.take_backup()
        before = sha256(backup)
        result = run_usersync("restore", str(backup), "--data-dir", str(self.data_dir))
        self.assertEqual(result.returncode, 1)
        self.assertIn(f"pid {service.pid}", result.stderr)
        self.assertEqual([p.name for p in self.data_dir.iterdir() if "before-restore" in p.name], [])
        self.assertEqual(sha256(backup), before)
        self.deliver_users(service, 1)  # still serving
        service.stop()

    def test_a_backup_with_one_byte_flipped_fails_verify_and_is_not_restored(self):
        service = self.service().start()
        self.deliver_users(service, 3)
        backup = self.take_backup()
        service.stop()
        with open(backup, "r+b") as f:
            f.seek(backup.stat().st_size // 2)
            byte = f.read(1)
            f.seek(-1, os.SEEK_CUR)
            f.write(bytes([byte[0] ^ 0x01]))
        result = run_usersync("backup", "verify", str(backup), "--data-dir", str(self.data_dir))
        self.assertEqual(result.returncode, 1)
        self.assertIn("FAILED", result.stdout)
        self.assertIn(sha256(backup), result.stdout)  # the recomputed checksum is shown
        db_before = sha256(service.db_file)
        refused = run_usersync("restore", str(backup), "--data-dir", str(self.data_dir))
        self.assertEqual(refused.returncode, 1)
        self.assertIn("failed verification", refused.stderr)
        self.assertEqual(sha256(service.db_file), db_before)

    def test_usage_errors_exit_2(self):
        for args in (("restore",), ("backup", "verify"), ("backup", "--name", "a/b")):
            result = run_usersync(*args, "--data-dir", str(self.data_dir))
            self.assertEqual(result.returncode, 2, f"{args}: {result.stderr}")


class BackupDuringIngestion(BackupTestCase):
    def test_a_backup_taken_during_ingestion_holds_a_consistent_prefix_of_acknowledged_events(self):
        migrated = run_usersync("migrate", "--data-dir", str(self.data_dir))
        self.assertEqual(migrated.returncode, 0, migrated.stderr)
        add_filler(self.data_dir / "usersync.db", 48)  # so the backup overlaps many commits
        service = self.service().start()

        acknowledged = 0
        stop = threading.Event()
        failures: list[str] = []

        def ingest() -> None:
            nonlocal acknowledged
            with service.keep_alive() as client:
                i = 0
                while not stop.is_set():
                    r = service.deliver(user_event("created", f"user_prefix_{i:06d}"),
                                        msg_id=f"msg_prefix_{i:06d}", client=client)
                    if r.status != 200:
                        failures.append(str(r))
                        return
                    acknowledged = i + 1
                    i += 1

        writer = threading.Thread(target=ingest)
        writer.start()
        try:
            while acknowledged < 5 and writer.is_alive():
                time.sleep(0.005)
            before = acknowledged
            backup = self.take_backup()
            after = acknowledged
        finally:
            stop.set()
            writer.join()
        self.assertEqual(failures, [])
        self.assertGreater(after, before, "events must have been acknowledged during the backup")

        self.assertEqual(integrity(backup), "ok")
        ids = sorted(r[0] for r in query(backup, "SELECT svix_id FROM webhook_deliveries "
                                                 "WHERE svix_id LIKE 'msg_prefix_%'"))
        k = len(ids)
        self.assertGreaterEqual(k, before)
        self.assertLessEqual(k, after)
        self.assertEqual(ids, [f"msg_prefix_{i:06d}" for i in range(k)])
        users = sorted(r[0] for r in query(backup, "SELECT clerk_id FROM users "
                                                   "WHERE clerk_id LIKE 'user_prefix_%'"))
        self.assertEqual(users, [f"user_prefix_{i:06d}" for i in range(k)])
        service.stop()


class SmallDisk(BackupTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.small = self.tmp / "small"
        self.small.mkdir()
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k,mode=0700",
                                  "usersync-e2e", str(self.small)], capture_output=True)
        if mounted.returncode != 0:
            self.skipTest("mounting a 256 KiB tmpfs is not permitted here; the unit test "
                          "'a backup that runs out of disk space ...' covers this with RLIMIT_FSIZE")
        self.addCleanup(subprocess.run, ["umount", str(self.small)], check=False)

    def test_a_backup_on_a_full_disk_fails_cleanly_and_the_service_keeps_serving(self):
        migrated = run_usersync("migrate", "--data-dir", str(self.data_dir))
        self.assertEqual(migrated.returncode, 0, migrated.stderr)
        add_filler(self.data_dir / "usersync.db", 2)
        service = self.service().start()
        self.deliver_users(service, 3)
        result = run_usersync("backup", "--data-dir", str(self.data_dir),
                              "--backup-dir", str(self.small))
        self.assertEqual(result.returncode, 1)
        self.assertIn("full", result.stderr)
        self.assertIn(str(self.small), result.stderr)
        self.assertEqual(os.listdir(self.small), [])
        self.deliver_users(service, 3)
        service.stop()


class ServeIntegration(BackupTestCase):
    """What `serve` does with backups: the start-up check and the scheduled job."""

    def test_serve_on_a_damaged_database_stops_with_the_restore_command_and_changes_nothing(self):
        service = self.service().start()
        self.deliver_users(service, 3)
        backup = self.take_backup()
        service.stop()
        damage(service.db_file)
        before = sha256(service.db_file)
        with self.assertRaises(ServiceStartError) as refused:
            service.start()
        message = str(refused.exception)
        self.assertIn("is damaged", message)
        self.assertIn(str(service.db_file), message)
        self.assertIn(backup.name, message)
        self.assertIn(f"usersync restore --data-dir {self.data_dir} {backup}", message)
        self.assertEqual(sha256(service.db_file), before)

    def test_serve_takes_a_verified_backup_on_its_schedule(self):
        service = Service("--backup-interval", "1", data_dir=self.data_dir)
        self.addCleanup(service.cleanup)
        service.start()
        self.deliver_users(service, 2)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not re.search(r"backup \S+\.db made", service.stderr()):
            time.sleep(0.05)
        text = service.stderr()
        service.stop()
        self.assertIn("backups every 1 s", text)
        made = sorted(self.backups.glob("usersync-*.db"))
        self.assertTrue(made, text)
        result = run_usersync("backup", "verify", str(made[-1]), "--data-dir", str(self.data_dir))
        self.assertEqual(result.returncode, 0, result.stdout)


if __name__ == "__main__":
    harness.main()
