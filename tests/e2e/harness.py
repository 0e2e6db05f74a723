"""End-to-end harness: runs the real usersync binary on loopback and talks to it as Svix would.

Everything here is independent of the C++ code under test: signatures are computed with
Python's hmac/hashlib/base64 from the Svix specification, TLS is Python's ssl module, and the
database is read through a separate read-only sqlite3 connection.

The binary comes from the USERSYNC_BIN environment variable; when a test module is run as a
script, a first argument naming an executable file is used instead (see `main`).
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import http.client
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import ssl
import subprocess
import sys
import tempfile
import time
import unittest
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

REPO_ROOT = Path(__file__).resolve().parents[2]
FIXTURES_DIR = REPO_ROOT / "tests" / "fixtures"

# Generous: this waits for the service to come up on a loaded CI machine; it is not a
# measure of start-up speed.
STARTUP_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 30.0
REQUEST_TIMEOUT_S = 30.0

# The URL is taken apart leniently here; test_webhooks checks its form separately.
LISTENING_RE = re.compile(r"listening on ((https?)://(\S+?):(\d+)/webhooks/clerk)")
ADMIN_RE = re.compile(r"admin endpoints on http://(\S+?):(\d+) ")
SIGNATURE_HEADERS = ("svix-signature", "webhook-signature")
WEBHOOK = "/webhooks/clerk"
USER_TABLES = ("users", "user_data", "deleted_users")


# --------------------------------------------------------------------------------------------
# The binary


def usersync_bin() -> str:
    """Path of the usersync binary under test (USERSYNC_BIN), or a failure that says how."""
    path = os.environ.get("USERSYNC_BIN", "")
    if not path:
        raise AssertionError(
            "USERSYNC_BIN is not set: build usersync and run e.g. "
            "USERSYNC_BIN=build/usersync python3 -m unittest discover -s tests/e2e -v "
            "(or pass the binary as the first argument when running one test module)")
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        raise AssertionError(f"USERSYNC_BIN={path!r} is not an executable file")
    return os.path.abspath(path)


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without USERSYNC_* settings (so a developer's own settings
    cannot leak into a test), plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("USERSYNC_")}
    env.update(extra or {})
    return env


def main() -> None:
    """unittest.main() that also takes the binary as an optional first argument."""
    args = sys.argv[1:]
    if args and not args[0].startswith("-") and os.path.isfile(args[0]) \
            and os.access(args[0], os.X_OK):
        os.environ["USERSYNC_BIN"] = os.path.abspath(args.pop(0))
    unittest.main(module="__main__", argv=[sys.argv[0], *args])


# --------------------------------------------------------------------------------------------
# Svix signing (independent of the C++ implementation)


def new_secret() -> str:
    """A fresh Svix-style signing secret: whsec_ + base64 of 24 random bytes."""
    return "whsec_" + base64.b64encode(os.urandom(24)).decode("ascii")


def secret_key(secret: str) -> bytes:
    """The HMAC key of a whsec_ secret: the base64-decoded part after the prefix."""
    text = secret[len("whsec_"):] if secret.startswith("whsec_") else secret
    return base64.b64decode(text)


def sign(body: bytes, secret: str, msg_id: str, timestamp: int | str) -> str:
    """One "v1,<base64>" signature: HMAC-SHA256 over "<id>.<timestamp>.<body>"."""
    content = f"{msg_id}.{timestamp}.".encode("utf-8") + body
    mac = hmac.new(secret_key(secret), content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode("ascii")


def signed_headers(body: bytes, secret: str, msg_id: str | None = None,
                   timestamp: int | str | None = None, prefix: str = "svix") -> dict[str, str]:
    """The three headers Svix sends with a delivery (prefix "webhook" for Standard Webhooks)."""
    msg_id = msg_id or new_msg_id()
    timestamp = int(time.time()) if timestamp is None else timestamp
    return {
        f"{prefix}-id": msg_id,
        f"{prefix}-timestamp": str(timestamp),
        f"{prefix}-signature": sign(body, secret, msg_id, timestamp),
        "content-type": "application/json",
    }


def new_msg_id() -> str:
    return "msg_e2e" + uuid.uuid4().hex


def new_user_id() -> str:
    return "user_e2e" + uuid.uuid4().hex


# --------------------------------------------------------------------------------------------
# Fixtures and event bodies


def load_fixture(name: str) -> dict:
    """A parsed copy of tests/fixtures/<name>.json, e.g. load_fixture("clerk-user-created")."""
    with open(FIXTURES_DIR / f"{name}.json", encoding="utf-8") as f:
        return json.load(f)


def user_event(kind: str, clerk_id: str, **data_changes) -> dict:
    """A Clerk event from the fixture for `kind` (created, updated, deleted) about `clerk_id`,
    with top-level `data` fields replaced by `data_changes`."""
    event = copy.deepcopy(load_fixture(f"clerk-user-{kind}"))
    event["data"]["id"] = clerk_id
    event["data"].update(data_changes)
    return event


def encode(event: dict | bytes | str) -> bytes:
    if isinstance(event, bytes):
        return event
    if isinstance(event, str):
        return event.encode("utf-8")
    return json.dumps(event, ensure_ascii=False).encode("utf-8")


def iso8601_ms(unix_ms: int) -> str:
    """UTC ISO-8601 with milliseconds and Z, the schema's time format, computed in Python."""
    seconds, millis = divmod(unix_ms, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


def expected_user_fields(data: dict) -> dict:
    """A user's core fields as the schema and the query API hold them, derived here in Python
    from the Clerk user object: primary email by id, role from public_metadata, status from
    the banned and locked flags."""
    primary = next((e["email_address"] for e in data.get("email_addresses") or []
                    if e["id"] == data.get("primary_email_address_id")), None)
    role = (data.get("public_metadata") or {}).get("role")
    status = "banned" if data.get("banned") else "locked" if data.get("locked") else "active"
    return {
        "clerk_id": data["id"],
        "email": primary,
        "first_name": data.get("first_name"),
        "last_name": data.get("last_name"),
        "role": role if isinstance(role, str) else "user",
        "status": status,
        "created_at": iso8601_ms(data["created_at"]),
        "updated_at": iso8601_ms(data["updated_at"]),
    }


# --------------------------------------------------------------------------------------------
# HTTP


@dataclass
class Response:
    status: int
    headers: dict[str, str]  # lower-cased names
    body: bytes

    def json(self):
        return json.loads(self.body)

    def __str__(self) -> str:
        return f"HTTP {self.status} {self.body[:300]!r}"


def _read(conn: http.client.HTTPConnection) -> Response:
    res = conn.getresponse()
    body = res.read()
    headers = {k.lower(): v for k, v in res.getheaders()}
    return Response(res.status, headers, body)


class Client:
    """One kept-alive connection to a service; `sockets` lists each socket it has used, so a
    test can tell whether the connection really stayed open."""

    def __init__(self, service: "Service"):
        self.service = service
        self.conn = service.connection()
        self.sockets: list[object] = []

    def request(self, method: str, path: str, body: bytes = b"",
                headers: Mapping[str, str] | None = None) -> Response:
        headers = dict(headers or {})
        self.service.note_sent(headers)
        self.conn.request(method, path, body=body if body or method != "GET" else None,
                          headers=headers)
        sock = self.conn.sock
        if not self.sockets or self.sockets[-1] is not sock:
            self.sockets.append(sock)
        return _read(self.conn)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# --------------------------------------------------------------------------------------------
# The service


class ServiceStartError(AssertionError):
    pass


class Service:
    """The real usersync binary on a free loopback port (127.0.0.1 unless `listen` says
    otherwise) with a fresh data dir (or `data_dir`) and `extra_args`.

    Use as a context manager, or start()/stop(). stop() sends SIGTERM and raises
    AssertionError unless the process exits 0 and its stderr never contained a configured
    secret or any signature sent through this object.
    """

    def __init__(self, *extra_args: str, secrets: Iterable[str] = (),
                 data_dir: str | Path | None = None, umask: int = -1,
                 listen: str = "127.0.0.1:0", env: Mapping[str, str] | None = None):
        self.extra_args = list(extra_args)
        self.listen = listen
        self.host = listen.rsplit(":", 1)[0].strip("[]")
        self.env = dict(env) if env else None
        self.listening_url = ""
        self.secrets = list(secrets)
        self.umask = umask
        self.tmp = Path(tempfile.mkdtemp(prefix="usersync-e2e-"))
        self.data_dir = Path(data_dir) if data_dir else self.tmp / "data"
        self.proc: subprocess.Popen | None = None
        self.port = 0
        self.scheme = ""
        self.logs: list[Path] = []
        self.sent_signatures: set[str] = set()
        self._ssl: ssl.SSLContext | None = None
        self.exit_codes: list[int] = []

    # ---- lifecycle

    def __enter__(self) -> "Service":
        try:
            self.start()
        except BaseException:
            self.cleanup()
            raise
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if self.proc is not None:
                if exc_type is None:
                    self.stop()
                else:
                    self.terminate()  # the test already failed: report that, not the stop
        finally:
            self.cleanup()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def secret(self) -> str:
        """The first accepted secret: the configured one, else the dev secret."""
        if self.secrets:
            return self.secrets[0]
        return self.dev_secret()

    def dev_secret(self) -> str:
        return (self.data_dir / "dev-webhook-secret").read_text().strip()

    @property
    def cert_file(self) -> Path:
        return self.data_dir / "tls" / "dev-cert.pem"

    @property
    def db_file(self) -> Path:
        return self.data_dir / "usersync.db"

    def command(self) -> list[str]:
        cmd = [usersync_bin(), "serve", "--data-dir", str(self.data_dir),
               "--listen", self.listen]
        for s in self.secrets:
            cmd += ["--webhook-secret", s]
        if not any(a.startswith("--admin-listen") for a in self.extra_args):
            # A free port: parallel test services must not fight over the default 9445.
            cmd += ["--admin-listen", "127.0.0.1:0"]
        return cmd + self.extra_args

    @property
    def admin_port(self) -> int:
        """The admin listener's port (/metrics, /readyz), read from its log line."""
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            m = ADMIN_RE.search(self.logs[-1].read_text(errors="replace"))
            if m:
                return int(m.group(2))
            time.sleep(0.02)
        raise ServiceStartError("usersync logged no admin endpoints line")

    def start(self) -> "Service":
        log = self.tmp / f"stderr-{len(self.logs)}.log"
        self.logs.append(log)
        with open(log, "wb") as err:
            self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL,
                                         env=clean_env(self.env),
                                         stdout=err, stderr=err, umask=self.umask)
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            text = log.read_text(errors="replace")
            m = LISTENING_RE.search(text)
            if m:
                self.listening_url, self.scheme, self.port = m.group(1), m.group(2), int(m.group(4))
                break
            if self.proc.poll() is not None:
                code = self.proc.returncode
                self.proc = None
                raise ServiceStartError(f"usersync exited {code} before listening:\n{text}")
            if time.monotonic() > deadline:
                self.proc.kill()
                self.proc.wait()
                self.proc = None
                raise ServiceStartError(
                    f"usersync did not log a listening line within {STARTUP_TIMEOUT_S}s:\n{text}")
            time.sleep(0.02)
        self._ssl = None
        return self

    def terminate(self, timeout: float = STOP_TIMEOUT_S) -> int | None:
        """SIGTERM, wait up to `timeout` (then SIGKILL), return the exit code, None if killed."""
        assert self.proc is not None, "service is not running"
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            code = None
        self.proc = None
        self.exit_codes.append(code)
        return code

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """SIGTERM; asserts exit status 0 within `timeout` (a bound on a hang, not a measure of
        speed) and that no secret or signature was logged."""
        code = self.terminate(timeout)
        if code is None:
            raise AssertionError(
                f"usersync was still running {timeout:.0f}s after SIGTERM; stderr:\n"
                f"{self.stderr()[-4000:]}")
        if code != 0:
            raise AssertionError(
                f"usersync exited {code} after SIGTERM (expected 0); stderr:\n{self.stderr()[-4000:]}")
        self.assert_no_secrets_logged()

    def restart(self) -> "Service":
        self.stop()
        return self.start()

    def cleanup(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None
        shutil.rmtree(self.tmp, ignore_errors=True)

    def stderr(self) -> str:
        return "".join(p.read_text(errors="replace") for p in self.logs if p.exists())

    def assert_no_secrets_logged(self) -> None:
        text = self.stderr()
        secrets = list(self.secrets)
        for name in ("dev-webhook-secret", "dev-query-token"):  # credentials made in the data dir
            dev = self.data_dir / name
            if dev.exists() and len(dev.read_text().strip()) >= 16:
                secrets.append(dev.read_text().strip())
        for s in secrets:
            for needle in (s, s[len("whsec_"):] if s.startswith("whsec_") else s):
                if needle and needle in text:
                    raise AssertionError("a secret appears in usersync's stderr")
        for sig in self.sent_signatures:
            if sig in text:
                raise AssertionError(f"a request signature appears in usersync's stderr: {sig}")

    # ---- HTTP

    def note_sent(self, headers: Mapping[str, str]) -> None:
        for name, value in headers.items():
            if name.lower() in SIGNATURE_HEADERS:
                for entry in str(value).split():
                    sig = entry.split(",", 1)[-1]
                    if len(sig) >= 16:  # a real signature, not a deliberately tiny fake
                        self.sent_signatures.add(sig)

    def ssl_context(self) -> ssl.SSLContext:
        """Client context that trusts only the service's dev certificate."""
        if self._ssl is None:
            self._ssl = ssl.create_default_context(cafile=str(self.cert_file))
        return self._ssl

    def connection(self, timeout: float = REQUEST_TIMEOUT_S) -> http.client.HTTPConnection:
        assert self.proc is not None, "service is not running"
        if self.scheme == "https":
            return http.client.HTTPSConnection(self.host, self.port, timeout=timeout,
                                               context=self.ssl_context())
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def https_request(self, method: str, path: str, body: bytes = b"",
                      headers: Mapping[str, str] | None = None) -> Response:
        """One request on a new connection, closed afterwards (HTTP with --plain-http)."""
        headers = dict(headers or {})
        self.note_sent(headers)
        conn = self.connection()
        try:
            conn.request(method, path, body=body if body or method != "GET" else None,
                         headers=headers)
            return _read(conn)
        finally:
            conn.close()

    request = https_request

    def keep_alive(self) -> Client:
        """A client that sends every request on one kept-alive connection."""
        return Client(self)

    def deliver(self, event: dict | bytes | str, msg_id: str | None = None,
                timestamp: int | None = None, secret: str | None = None,
                prefix: str = "svix", client: Client | None = None) -> Response:
        """POSTs `event` to /webhooks/clerk, signed like Svix would."""
        body = encode(event)
        headers = signed_headers(body, secret or self.secret, msg_id, timestamp, prefix)
        send = client.request if client else self.https_request
        return send("POST", "/webhooks/clerk", body, headers)

    # ---- database

    def db(self) -> sqlite3.Connection:
        """A separate read-only connection to the service's database (close it)."""
        return open_db_readonly(self.db_file)

    def query(self, sql: str, params: Iterable = ()) -> list[tuple]:
        conn = self.db()
        try:
            return conn.execute(sql, tuple(params)).fetchall()
        finally:
            conn.close()

    def dump(self) -> dict[str, list[tuple]]:
        conn = self.db()
        try:
            return dump_tables(conn)
        finally:
            conn.close()


def _text(raw: bytes) -> str:
    # Bodies of refused deliveries may not be UTF-8; keep every byte.
    return raw.decode("utf-8", "surrogateescape")


def open_db_readonly(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    conn.text_factory = _text
    return conn


def dump_tables(conn: sqlite3.Connection) -> dict[str, list[tuple]]:
    tables = [r[0] for r in conn.execute(
        "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        " ORDER BY name")]
    return {t: sorted(conn.execute(f'SELECT * FROM "{t}"').fetchall(), key=repr) for t in tables}


class SharedService:
    """One Service for a whole test module, for test classes that do not interfere (each test
    uses its own user ids and svix-ids). Call start() from setUpModule, stop() from
    tearDownModule."""

    def __init__(self, *extra_args: str, **options):
        self.extra_args, self.options = extra_args, options
        self.service: Service | None = None

    def start(self) -> None:
        service = Service(*self.extra_args, **self.options)
        try:
            service.start()
        except BaseException:
            service.cleanup()
            raise
        self.service = service

    def stop(self) -> None:
        service, self.service = self.service, None
        if service is None:
            return
        try:
            if service.proc is not None:
                service.stop()
        finally:
            service.cleanup()

    def get(self) -> Service:
        assert self.service is not None, "the shared service did not start"
        return self.service

    def test_case(self) -> type:
        """A base class for the module's test classes, whose `service` is this shared one."""
        shared = self

        class SharedServiceTest(Assertions):
            @property
            def service(self) -> Service:
                return shared.get()

        return SharedServiceTest


class ServiceTestCase(unittest.TestCase):
    """A TestCase class sharing one Service (started with SERVICE_ARGS) across its tests.

    Tests in such a class must not interfere: each uses its own user ids and svix-ids.
    """

    SERVICE_ARGS: tuple[str, ...] = ()
    SERVICE_SECRETS: tuple[str, ...] = ()
    SERVICE_LISTEN = "127.0.0.1:0"
    service: Service

    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()
        cls.service = Service(*cls.SERVICE_ARGS, secrets=cls.SERVICE_SECRETS,
                              listen=cls.SERVICE_LISTEN)
        try:
            cls.service.start()
        except BaseException:
            cls.service.cleanup()
            raise

    @classmethod
    def tearDownClass(cls) -> None:
        try:
            if cls.service.proc is not None:
                cls.service.stop()
        finally:
            cls.service.cleanup()
            super().tearDownClass()


# --------------------------------------------------------------------------------------------
# Reading what the service stored, and what it answered


def user_row(service: Service, clerk_id: str) -> dict | None:
    conn = service.db()
    try:
        conn.row_factory = sqlite3.Row
        row = conn.execute("SELECT * FROM users WHERE clerk_id = ?", (clerk_id,)).fetchone()
        return dict(row) if row else None
    finally:
        conn.close()


def user_data(service: Service, clerk_id: str) -> dict:
    rows = service.query(
        "SELECT d.key, d.value FROM user_data d JOIN users u ON u.id = d.user_id"
        " WHERE u.clerk_id = ?", (clerk_id,))
    return {key: json.loads(value) for key, value in rows}


def rows_about(service: Service, clerk_id: str) -> dict:
    """Everything stored about one user: its row, its data and its tombstone."""
    return {
        "user": user_row(service, clerk_id),
        "data": user_data(service, clerk_id),
        "tombstone": service.query("SELECT * FROM deleted_users WHERE clerk_id = ?", (clerk_id,)),
    }


def delivery_row(service: Service, msg_id: str) -> tuple | None:
    rows = service.query("SELECT svix_id, event_type, clerk_id, outcome FROM webhook_deliveries"
                         " WHERE svix_id = ?", (msg_id,))
    return rows[0] if rows else None


def user_tables(service: Service) -> dict:
    dump = service.dump()
    return {t: dump[t] for t in USER_TABLES}


def wait_for_close(sock: socket.socket, limit: float = 30.0) -> bytes:
    """Reads until the service closes the connection; returns what it sent. `limit` only
    bounds a hang: how soon the close comes is not measured."""
    data = b""
    deadline = time.monotonic() + limit
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"the service kept the connection open for {limit:.0f}s")
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(65536)
        except (socket.timeout, TimeoutError):
            continue
        except (ConnectionError, ssl.SSLError):
            return data
        if not chunk:
            return data
        data += chunk


class Assertions(unittest.TestCase):
    def assertOutcome(self, response, outcome: str) -> None:
        self.assertEqual(response.status, 200, str(response))
        self.assertEqual(response.json(), {"outcome": outcome})

    def assertRefused(self, response, status: int, error: str | None = None) -> None:
        """`status` with a JSON {"error": code} body; `error` pins the code where the contract
        names it (401 and 400), otherwise any non-empty code will do."""
        self.assertEqual(response.status, status, str(response))
        self.assertEqual(response.headers.get("content-type"), "application/json")
        code = response.json().get("error")
        self.assertIsInstance(code, str)
        self.assertTrue(code)
        if error is not None:
            self.assertEqual(code, error)
