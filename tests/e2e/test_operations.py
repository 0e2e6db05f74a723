"""End-to-end rules for running usersync: the data directory and its permissions, the lock
against a second instance, SQLite contention, the writer queue, and shutdown and restart.

Run: USERSYNC_BIN=build/usersync python3 -m unittest discover -s tests/e2e -v
 or: python3 tests/e2e/test_operations.py build/usersync [-k PATTERN]
"""

from __future__ import annotations

import shutil
import signal
import socket
import sqlite3
import stat
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import harness
from harness import (WEBHOOK, Assertions, Service, ServiceTestCase, encode, new_msg_id,
                     new_user_id, signed_headers, user_event, user_row)


class DataDirectory(ServiceTestCase):
    def test_the_data_dir_and_its_secrets_are_owner_only(self):
        # A fresh service started with a permissive umask: the modes are the service's doing.
        with Service(umask=0) as service:
            files = {
                service.data_dir: 0o700,
                service.data_dir / "tls": 0o700,
                service.db_file: 0o600,
                Path(f"{service.db_file}-wal"): 0o600,
                Path(f"{service.db_file}-shm"): 0o600,
                service.data_dir / "dev-webhook-secret": 0o600,
                service.data_dir / "tls" / "dev-key.pem": 0o600,
            }
            for path, mode in files.items():
                with self.subTest(path=path.name):
                    self.assertTrue(path.exists(), f"{path} does not exist")
                    self.assertEqual(oct(stat.S_IMODE(path.stat().st_mode)), oct(mode))
            # Whatever else is in there, no other user may read it.
            for path in service.data_dir.rglob("*"):
                with self.subTest(path=str(path.relative_to(service.data_dir))):
                    self.assertEqual(stat.S_IMODE(path.stat().st_mode) & 0o077, 0,
                                     oct(stat.S_IMODE(path.stat().st_mode)))

    def test_an_existing_data_dir_is_made_owner_only(self):
        parent = Path(tempfile.mkdtemp(prefix="usersync-e2e-existing-"))
        self.addCleanup(shutil.rmtree, parent, True)
        data_dir = parent / "data"
        data_dir.mkdir()
        data_dir.chmod(0o755)
        with Service(data_dir=data_dir):
            self.assertEqual(oct(stat.S_IMODE(data_dir.stat().st_mode)), oct(0o700))

    def test_a_dev_secret_is_made_once_in_whsec_form(self):
        secret = self.service.dev_secret()
        self.assertRegex(secret, r"^whsec_[A-Za-z0-9+/]+={0,2}$")
        self.assertGreaterEqual(len(harness.secret_key(secret)), 24)

    def test_a_second_serve_on_the_same_data_dir_fails_naming_the_first_pid(self):
        second = subprocess.run(
            [harness.usersync_bin(), "serve", "--data-dir", str(self.service.data_dir),
             "--listen", "127.0.0.1:0"],
            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60,
            env=harness.clean_env())

        self.assertNotEqual(second.returncode, 0, second.stderr)
        self.assertRegex(second.stderr, rf"\b{self.service.pid}\b")
        # The first one carries on untouched.
        self.assertEqual(self.service.https_request("GET", "/healthz").status, 200)
        event = user_event("created", new_user_id())
        self.assertEqual(self.service.deliver(event).json(), {"outcome": "applied"})


class DatabaseBusy(ServiceTestCase, Assertions):
    SERVICE_ARGS = ("--busy-timeout-ms", "200")

    def test_a_locked_database_answers_503_with_retry_after_and_the_retry_applies(self):
        event = user_event("created", new_user_id())
        body = encode(event)
        headers = signed_headers(body, self.service.secret)
        locker = sqlite3.connect(self.service.db_file, isolation_level=None, timeout=30)
        try:
            locker.execute("BEGIN IMMEDIATE")
            before = self.service.dump()

            response = self.service.https_request("POST", WEBHOOK, body, headers)

            self.assertEqual(response.status, 503, str(response))
            self.assertIn("retry-after", response.headers)
            self.assertRegex(response.headers["retry-after"], r"^\d+$")
            self.assertEqual(self.service.dump(), before)
            locker.execute("ROLLBACK")
        finally:
            locker.close()

        self.assertOutcome(self.service.https_request("POST", WEBHOOK, body, headers), "applied")
        self.assertIsNotNone(user_row(self.service, event["data"]["id"]))


class WriterQueueLimit(ServiceTestCase, Assertions):
    SERVICE_ARGS = ("--writer-queue-limit", "1", "--busy-timeout-ms", "60000")

    def test_a_full_writer_queue_answers_503_with_retry_after(self):
        self.assertOutcome(self.service.deliver(user_event("created", new_user_id())), "applied")
        events = [user_event("created", new_user_id()) for _ in range(3)]
        results: dict[int, object] = {}

        sent = [threading.Event() for _ in events]

        def send(i: int) -> None:
            conn = self.service.connection(timeout=120)
            try:
                body = encode(events[i])
                headers = signed_headers(body, self.service.secret)
                self.service.note_sent(headers)
                conn.request("POST", WEBHOOK, body=body, headers=headers)
                sent[i].set()
                results[i] = harness._read(conn)
            except Exception as e:
                results[i] = e
            finally:
                sent[i].set()
                conn.close()

        locker = sqlite3.connect(self.service.db_file, isolation_level=None, timeout=30)
        threads = []
        try:
            locker.execute("BEGIN IMMEDIATE")
            for i in (0, 1):  # the first waits in the writer for the lock, the second in the queue
                threads.append(threading.Thread(target=send, args=(i,)))
                threads[-1].start()
                self.assertTrue(sent[i].wait(30))
                time.sleep(1.5)  # time for the service to read it and hand it to the writer
            third = self.service.deliver(events[2])
            self.assertEqual(third.status, 503, str(third))
            self.assertRegex(third.headers.get("retry-after", ""), r"^\d+$")
        finally:
            locker.execute("ROLLBACK")
            locker.close()
            for t in threads:
                t.join(120)

        for i in (0, 1):
            self.assertIsInstance(results.get(i), harness.Response, repr(results.get(i)))
            self.assertOutcome(results[i], "applied")
        self.assertIsNone(user_row(self.service, events[2]["data"]["id"]))


class Shutdown(Assertions):
    def test_sigterm_exits_0_and_every_change_survives_a_restart(self):
        with Service() as service:
            ids = [new_user_id() for _ in range(10)]
            first_msg = new_msg_id()
            self.assertOutcome(service.deliver(user_event("created", ids[0]), first_msg),
                               "applied")
            for clerk_id in ids[1:]:
                self.assertOutcome(service.deliver(user_event("created", clerk_id)), "applied")
            self.assertOutcome(service.deliver(user_event("updated", ids[1])), "applied")
            self.assertOutcome(service.deliver(user_event("deleted", ids[2])), "applied")
            expected = service.dump()
            secret = service.secret
            cert = service.cert_file.read_bytes()

            service.stop()  # asserts exit status 0

            # After a clean stop the main database file alone holds everything.
            copy_dir = Path(service.tmp) / "copy"
            copy_dir.mkdir()
            shutil.copy(service.db_file, copy_dir / "usersync.db")
            conn = harness.open_db_readonly(copy_dir / "usersync.db")
            try:
                self.assertEqual(harness.dump_tables(conn), expected)
            finally:
                conn.close()

            service.start()
            self.assertEqual(service.dump(), expected)
            self.assertEqual(service.dev_secret(), secret, "the dev secret changed on restart")
            self.assertEqual(service.cert_file.read_bytes(), cert, "the dev cert changed")
            # A redelivery from before the restart is still recognised.
            self.assertOutcome(service.deliver(user_event("created", ids[0]), first_msg),
                               "duplicate")
            self.assertOutcome(service.deliver(user_event("created", new_user_id())), "applied")

    # The timeouts below are an hour, so only closing idle connections at SIGTERM lets the
    # service exit within the harness's 30 s wait for it (a bound on a hang, not a speed).
    PATIENT = ("--shutdown-timeout", "3600", "--read-timeout", "3600", "--idle-timeout", "3600")

    def test_idle_connections_do_not_hold_up_sigterm(self):
        with Service(*self.PATIENT) as service:
            kept = service.keep_alive()  # idle after one request
            self.assertEqual(kept.request("GET", "/healthz").status, 200)
            raw = socket.create_connection(("127.0.0.1", service.port), timeout=10)
            # idle before its first request (the finished handshake shows it was accepted)
            fresh = service.ssl_context().wrap_socket(raw, server_hostname="127.0.0.1")
            try:
                service.stop()
            finally:
                kept.close()
                fresh.close()
            self.assertNotIn("deadline", service.stderr())

    def test_a_connection_opened_as_sigterm_arrives_does_not_keep_the_service_running(self):
        # Connections that arrive while the signal is being handled may be mid-way through the
        # accept loop when draining starts. That is a race, so it is tried many times: each
        # attempt opens connections that never send a byte, sends SIGTERM half-way through, and
        # the first attempt that hangs fails the test. With hour-long timeouts a connection that
        # escaped the drain would hold the service for an hour; 10 s only bounds the wait.
        with Service(*self.PATIENT) as service:
            for attempt in range(40):
                if attempt > 0:
                    service.start()  # the same data dir, so restarting is quick
                conns = []
                try:
                    for i in range(100):
                        if i == 50:
                            service.proc.send_signal(signal.SIGTERM)
                        try:
                            conns.append(socket.create_connection(("127.0.0.1", service.port),
                                                                  timeout=10))
                        except OSError:
                            break  # the listener has closed
                    try:
                        code = service.proc.wait(timeout=10)
                    except subprocess.TimeoutExpired:
                        self.fail(f"attempt {attempt + 1}: usersync was still running 10 s after "
                                  "SIGTERM with never-used connections open")
                    self.assertEqual(code, 0, service.stderr()[-2000:])
                    service.proc = None
                    service.assert_no_secrets_logged()
                finally:
                    for conn in conns:
                        conn.close()

    def test_sigterm_lets_an_in_flight_delivery_finish(self):
        with Service("--busy-timeout-ms", "60000", "--shutdown-timeout", "60") as service:
            event = user_event("created", new_user_id())
            locker = sqlite3.connect(service.db_file, isolation_level=None, timeout=30)
            sent = threading.Event()
            result: list = []

            def send() -> None:
                conn = service.connection(timeout=120)
                try:
                    body = encode(event)
                    headers = signed_headers(body, service.secret)
                    service.note_sent(headers)
                    conn.request("POST", WEBHOOK, body=body, headers=headers)
                    sent.set()
                    result.append(harness._read(conn))
                except Exception as e:
                    result.append(e)
                finally:
                    sent.set()
                    conn.close()

            try:
                locker.execute("BEGIN IMMEDIATE")  # the delivery waits for this lock
                sender = threading.Thread(target=send)
                sender.start()
                self.assertTrue(sent.wait(30))
                time.sleep(1.0)  # let the service read the request and queue it
                service.proc.send_signal(signal.SIGTERM)
                time.sleep(1.0)
                self.assertIsNone(service.proc.poll(),
                                  "usersync exited with a delivery still in flight")
                locker.execute("ROLLBACK")
            finally:
                locker.close()
            sender.join(120)

            self.assertEqual(len(result), 1)
            self.assertIsInstance(result[0], harness.Response, repr(result[0]))
            self.assertOutcome(result[0], "applied")
            self.assertEqual(service.proc.wait(timeout=60), 0)
            service.proc = None
            service.assert_no_secrets_logged()
            conn = harness.open_db_readonly(service.db_file)
            try:
                self.assertEqual(conn.execute("SELECT count(*) FROM users WHERE clerk_id = ?",
                                              (event["data"]["id"],)).fetchone(), (1,))
            finally:
                conn.close()


if __name__ == "__main__":
    harness.main()
