"""End-to-end rules of usersync's command line: subcommands, exit codes, where settings come from.

Run: USERSYNC_BIN=build/usersync python3 -m unittest discover -s tests/e2e -v
 or: python3 tests/e2e/test_cli.py build/usersync
"""

from __future__ import annotations

import re
import shutil
import stat
import subprocess
import tempfile
import unittest
from pathlib import Path

import harness
from harness import Service, encode, new_secret, new_user_id, user_event

MIGRATIONS_DIR = harness.REPO_ROOT / "migrations"


def run_usersync(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([harness.usersync_bin(), *args], stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=60,
                          env=harness.clean_env(env))


def latest_migration_version() -> int:
    """The highest NNNN among migrations/NNNN_*.up.sql, read from the file names."""
    versions = [int(m.group(1)) for p in MIGRATIONS_DIR.iterdir()
                if (m := re.match(r"^(\d+)_.*\.up\.sql$", p.name))]
    assert versions, f"no migrations found in {MIGRATIONS_DIR}"
    return max(versions)


class TempDirTest(unittest.TestCase):
    def setUp(self) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="usersync-e2e-cli-"))
        self.addCleanup(shutil.rmtree, self.tmp, True)


class Commands(TempDirTest):
    def test_version_prints_the_version_and_exits_0(self):
        result = run_usersync("--version")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertRegex(result.stdout, r"^usersync \d+\.\d+\.\d+")

    def test_an_unknown_command_exits_2_naming_it(self):
        result = run_usersync("frobnicate")
        self.assertEqual(result.returncode, 2)
        self.assertIn("frobnicate", result.stderr)

    def test_migrate_creates_the_schema_owner_only_and_a_second_run_changes_nothing(self):
        data_dir = self.tmp / "data"
        first = run_usersync("migrate", "--data-dir", str(data_dir))
        self.assertEqual(first.returncode, 0, first.stderr)

        db_file = data_dir / "usersync.db"
        self.assertEqual(stat.S_IMODE(data_dir.stat().st_mode), 0o700)
        self.assertEqual(stat.S_IMODE(db_file.stat().st_mode), 0o600)
        conn = harness.open_db_readonly(db_file)
        try:
            versions = [v for (v,) in conn.execute("SELECT version FROM schema_migrations")]
            tables = {t for (t,) in conn.execute(
                "SELECT name FROM sqlite_schema WHERE type = 'table'")}
            before = harness.dump_tables(conn)
        finally:
            conn.close()
        self.assertEqual(max(versions), latest_migration_version())
        self.assertLessEqual({"users", "user_data", "deleted_users", "webhook_deliveries",
                              "rejected_deliveries", "schema_migrations"}, tables)

        second = run_usersync("migrate", "--data-dir", str(data_dir))
        self.assertEqual(second.returncode, 0, second.stderr)
        conn = harness.open_db_readonly(db_file)
        try:
            self.assertEqual(harness.dump_tables(conn), before)
        finally:
            conn.close()

    def test_migrate_on_a_data_dir_in_use_fails_naming_the_serving_pid(self):
        with Service() as service:
            result = run_usersync("migrate", "--data-dir", str(service.data_dir))
            self.assertNotEqual(result.returncode, 0)
            self.assertRegex(result.stderr, rf"\b{service.pid}\b")
            self.assertEqual(service.https_request("GET", "/healthz").status, 200)


class ConfigurationErrors(TempDirTest):
    def serve(self, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
        return run_usersync("serve", "--data-dir", str(self.tmp / "data"),
                            "--listen", "127.0.0.1:0", *args, env=env)

    def test_an_out_of_range_option_fails_the_start_naming_the_option(self):
        result = self.serve("--max-body-bytes", "10")
        self.assertEqual(result.returncode, 2, result.stderr)
        self.assertIn("max-body-bytes", result.stderr)
        self.assertNotIn("listening on", result.stderr)

    def test_an_invalid_secret_fails_the_start_without_echoing_it(self):
        bad = "whsec_this*is*not*base64*" + new_user_id()
        result = self.serve("--webhook-secret", bad)
        self.assertEqual(result.returncode, 2, result.stderr)
        self.assertIn("secret", result.stderr)
        self.assertNotIn(bad[len("whsec_"):], result.stderr + result.stdout)

    def test_an_unreadable_secret_file_fails_the_start(self):
        result = self.serve("--webhook-secret-file", str(self.tmp / "missing"))
        self.assertEqual(result.returncode, 2, result.stderr)
        self.assertIn(str(self.tmp / "missing"), result.stderr)


class SettingSources(TempDirTest):
    """Settings come from flags, USERSYNC_* variables and a --config file; flags > env > file."""

    def sized_body(self, size: int) -> bytes:
        event = user_event("created", new_user_id(), email_addresses=[], external_accounts=[])
        event["data"]["unsafe_metadata"] = {"pad": ""}
        event["data"]["unsafe_metadata"]["pad"] = "x" * (size - len(encode(event)))
        body = encode(event)
        self.assertEqual(len(body), size)
        return body

    def test_a_secret_from_the_environment_is_accepted(self):
        one, two = new_secret(), new_secret()
        with Service(env={"USERSYNC_WEBHOOK_SECRET": f"{one} {two}"}) as service:
            service.secrets += [one, two]  # for the log check
            for secret in (one, two):
                with self.subTest(secret=secret[:10]):
                    response = service.deliver(user_event("created", new_user_id()), secret=secret)
                    self.assertEqual(response.status, 200, str(response))

    def test_settings_from_a_config_file_are_used(self):
        secret = new_secret()
        config = self.tmp / "usersync.conf"
        config.write_text(f"webhook-secret = {secret}\nmax-body-bytes = 2048\n")
        with Service("--config", str(config)) as service:
            service.secrets.append(secret)
            self.assertEqual(service.deliver(self.sized_body(2000), secret=secret).status, 200)
            self.assertEqual(service.deliver(self.sized_body(3000), secret=secret).status, 413)

    def test_a_flag_wins_over_the_environment(self):
        with Service("--max-body-bytes", "4096",
                     env={"USERSYNC_MAX_BODY_BYTES": "1024"}) as service:
            self.assertEqual(service.deliver(self.sized_body(3000)).status, 200)

    def test_the_environment_wins_over_the_config_file(self):
        config = self.tmp / "usersync.conf"
        config.write_text("max-body-bytes = 1024\n")
        with Service("--config", str(config),
                     env={"USERSYNC_MAX_BODY_BYTES": "4096"}) as service:
            self.assertEqual(service.deliver(self.sized_body(3000)).status, 200)


if __name__ == "__main__":
    harness.main()
