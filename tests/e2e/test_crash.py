"""End-to-end rule for crashes: an event answered 2xx survives SIGKILL at any moment.

Runs scripts/crash-loop.py (imported, the same code anyone runs by hand) for a few kills, and
checks that its checks are not vacuous: given a database that lost an acknowledged event, or a
data directory with a file left behind, they fail.

Run: USERSYNC_BIN=build/usersync python3 -m unittest discover -s tests/e2e -v
 or: python3 tests/e2e/test_crash.py build/usersync [-k PATTERN]
USERSYNC_CRASH_ITERATIONS=N runs N kills instead of 5 (the long run is the script itself:
python3 scripts/crash-loop.py --bin build/usersync --iterations 100).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sqlite3
import sys
import tempfile
import unittest
from pathlib import Path

import harness
from harness import Assertions, Service, new_user_id

SCRIPT = harness.REPO_ROOT / "scripts" / "crash-loop.py"


def load_crash_loop():
    spec = importlib.util.spec_from_file_location("crash_loop", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["crash_loop"] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


crash_loop = load_crash_loop()


class CrashLoop(unittest.TestCase):
    def test_acknowledged_events_survive_sigkill_at_random_moments(self):
        iterations = int(os.environ.get("USERSYNC_CRASH_ITERATIONS", "5"))
        options = crash_loop.parse_args(["--bin", harness.usersync_bin(),
                                         "--iterations", str(iterations)])
        result = crash_loop.run(options)
        print(f"\n{result.summary()} (seed {options.seed})", file=sys.stderr)
        self.assertEqual(result.failures, [], f"seed {options.seed}")
        self.assertGreaterEqual(result.kills, iterations)
        self.assertGreater(result.acknowledged, 0)
        self.assertEqual(result.final_checked, result.acknowledged)


class TheChecksAreNotVacuous(Assertions):
    """Builds a small real history, then breaks a copy of it in the ways a lost commit would."""

    def setUp(self) -> None:
        self.service = Service("--plain-http", "--backup-interval", "0")
        self.addCleanup(self.service.cleanup)
        self.service.start()
        self.ledger = crash_loop.Ledger()
        self.alive, self.updated, self.gone = new_user_id(), new_user_id(), new_user_id()
        ms = crash_loop.CREATED_MS
        for kind, clerk_id, updated_at in (
                ("created", self.alive, ms), ("created", self.updated, ms),
                ("updated", self.updated, ms + 10), ("created", self.gone, ms),
                ("deleted", self.gone, None)):
            self.deliver(crash_loop.make_event(kind, clerk_id, updated_at))
        self.service.proc.kill()  # as the loop does
        self.service.proc.wait()
        self.service.proc = None
        self.scratch = Path(tempfile.mkdtemp(prefix="usersync-e2e-crash-"))
        self.addCleanup(shutil.rmtree, self.scratch, True)
        self.copy = crash_loop.copy_database(self.service.data_dir, self.scratch)

    def deliver(self, event) -> None:
        self.ledger.sending(event)
        response = self.service.deliver(event.body, msg_id=event.svix_id)
        self.assertOutcome(response, "applied")
        self.ledger.answered(event, response.json()["outcome"])

    def failures_after(self, *statements: str) -> list[str]:
        conn = sqlite3.connect(self.copy)
        try:
            with conn:
                for sql in statements:
                    conn.execute(sql)
        finally:
            conn.close()
        failures: list[str] = []
        crash_loop.check_database(self.copy, self.ledger, failures)
        return failures

    def test_an_intact_history_passes(self):
        self.assertEqual(self.failures_after(), [])
        self.assertEqual(self.ledger.failures, [])

    def test_a_lost_delivery_record_fails(self):
        failures = self.failures_after(
            f"DELETE FROM webhook_deliveries WHERE clerk_id = '{self.alive}'")
        self.assertTrue(any("missing from webhook_deliveries" in f for f in failures), failures)

    def test_a_user_older_than_its_acknowledged_update_fails(self):
        failures = self.failures_after(
            f"UPDATE users SET provider_updated_ms = {crash_loop.CREATED_MS},"
            f" first_name = 'v{crash_loop.CREATED_MS}' WHERE clerk_id = '{self.updated}'")
        self.assertTrue(any(self.updated in f for f in failures), failures)

    def test_a_lost_tombstone_fails(self):
        failures = self.failures_after(f"DELETE FROM deleted_users WHERE clerk_id = '{self.gone}'")
        self.assertTrue(any(self.gone in f for f in failures), failures)

    def test_a_user_row_without_its_user_data_fails(self):
        failures = self.failures_after(
            "PRAGMA foreign_keys = OFF",
            f"DELETE FROM user_data WHERE user_id = (SELECT id FROM users"
            f" WHERE clerk_id = '{self.alive}') AND key = 'name_history'")
        self.assertTrue(any(self.alive in f for f in failures), failures)

    def test_a_file_left_in_the_data_dir_fails(self):
        (self.service.data_dir / "usersync.db-journal").write_bytes(b"")
        (self.service.data_dir / "dev-webhook-secret.tmp").write_bytes(b"")
        failures: list[str] = []
        crash_loop.check_data_dir(self.service.data_dir, failures)
        self.assertEqual(len(failures), 2, failures)


if __name__ == "__main__":
    harness.main()
