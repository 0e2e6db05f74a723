"""End-to-end rules for the HTTP and TLS surface: routes, keep-alive, TLS versions and the
dev certificate, request size limits, timeouts and the connection limit.

Run: USERSYNC_BIN=build/usersync python3 -m unittest discover -s tests/e2e -v
 or: python3 tests/e2e/test_http.py build/usersync [-k PATTERN]
"""

from __future__ import annotations

import json
import re
import select
import socket
import ssl
import threading
import time
import unittest
import urllib.parse
import warnings

import harness
from harness import (WEBHOOK, Assertions, ServiceTestCase, encode, new_user_id,
                     signed_headers, user_event, user_row, wait_for_close)

# One service shared by the test classes below that need no options of their own.
SHARED = harness.SharedService()
SharedServiceTest = SHARED.test_case()


def setUpModule() -> None:
    SHARED.start()


def tearDownModule() -> None:
    SHARED.stop()


class HttpSurface(SharedServiceTest):
    def test_healthz_answers_200(self):
        response = self.service.https_request("GET", "/healthz")
        self.assertEqual(response.status, 200, str(response))
        self.assertIsInstance(response.json(), dict)

    def test_an_unknown_path_answers_404_json(self):
        self.assertRefused(self.service.https_request("GET", "/nope"), 404)
        self.assertRefused(self.service.https_request("POST", "/webhooks/clerk/x", b"{}"), 404)

    def test_a_wrong_method_answers_405_with_allow(self):
        response = self.service.https_request("GET", WEBHOOK)
        self.assertRefused(response, 405)
        self.assertEqual(response.headers.get("allow"), "POST")

    def test_several_requests_share_one_kept_alive_connection(self):
        clerk_id = new_user_id()
        with self.service.keep_alive() as client:
            statuses = [
                client.request("GET", "/healthz").status,
                self.service.deliver(user_event("created", clerk_id), client=client).status,
                client.request("GET", "/nope").status,
                self.service.deliver(user_event("updated", clerk_id), client=client).status,
                client.request("GET", WEBHOOK).status,
                client.request("GET", "/healthz").status,
            ]
            self.assertEqual(statuses, [200, 200, 404, 200, 405, 200])
            self.assertEqual(len(client.sockets), 1, "the connection was not kept alive")
        self.assertEqual(user_row(self.service, clerk_id)["role"], "admin")

    def test_pipelined_requests_are_answered_in_order(self):
        requests = (b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
                    b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"
                    b"GET /webhooks/clerk HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        with socket.create_connection(("127.0.0.1", self.service.port), timeout=10) as raw:
            with self.service.ssl_context().wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                tls.sendall(requests)
                answer = wait_for_close(tls)
        self.assertEqual(re.findall(rb"HTTP/1\.1 (\d{3}) ", answer), [b"200", b"404", b"405"])

    def test_many_concurrent_deliveries_are_all_applied(self):
        threads_n, per_thread = 8, 25
        ids = [[new_user_id() for _ in range(per_thread)] for _ in range(threads_n)]
        results: list[list] = [[] for _ in range(threads_n)]

        def worker(i: int) -> None:
            try:
                with self.service.keep_alive() as client:
                    for clerk_id in ids[i]:
                        r = self.service.deliver(user_event("created", clerk_id), client=client)
                        results[i].append((r.status, r.body.strip()))
            except Exception as e:  # reported below, with the thread that failed
                results[i].append(("exception", repr(e)))

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(threads_n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

        flat = [r for rs in results for r in rs]
        bad = [r for r in flat if r[0] != 200 or json.loads(r[1]) != {"outcome": "applied"}]
        self.assertEqual(bad, [], f"{len(bad)} of {len(flat)} deliveries failed")
        self.assertEqual(len(flat), threads_n * per_thread)
        all_ids = [c for group in ids for c in group]
        marks = ",".join("?" * len(all_ids))
        self.assertEqual(self.service.query(
            f"SELECT count(*) FROM users WHERE clerk_id IN ({marks})", all_ids), [(len(all_ids),)])
        self.assertEqual(self.service.query(
            "SELECT count(*) FROM user_data d JOIN users u ON u.id = d.user_id"
            f" WHERE u.clerk_id IN ({marks})", all_ids), [(3 * len(all_ids),)])


class TransportSecurity(SharedServiceTest):
    def handshake(self, context: ssl.SSLContext, server_hostname: str = "127.0.0.1") -> str:
        with socket.create_connection(("127.0.0.1", self.service.port), timeout=10) as raw:
            with context.wrap_socket(raw, server_hostname=server_hostname) as tls:
                return tls.version()

    def client_context(self, version: ssl.TLSVersion) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(cafile=str(self.service.cert_file))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx.minimum_version = version
            ctx.maximum_version = version
        return ctx

    def test_tls_1_1_is_refused(self):
        ctx = self.client_context(ssl.TLSVersion.TLSv1_1)
        # Let this client offer TLS 1.1 even where OpenSSL's default security level forbids it,
        # so that the refusal measured is the server's.
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
        with self.assertRaises(ssl.SSLError) as caught:
            self.handshake(ctx)
        message = str(caught.exception).upper()
        self.assertNotIn("NO_PROTOCOLS_AVAILABLE", message,
                         "this client could not offer TLS 1.1; the test proves nothing")
        self.assertIn("ALERT", message, "expected the server to answer with a TLS alert")

    def test_tls_1_2_and_1_3_are_accepted(self):
        for version, name in ((ssl.TLSVersion.TLSv1_2, "TLSv1.2"),
                              (ssl.TLSVersion.TLSv1_3, "TLSv1.3")):
            with self.subTest(version=name):
                self.assertEqual(self.handshake(self.client_context(version)), name)

    def test_plain_http_on_the_tls_port_gets_no_http_answer(self):
        with socket.create_connection(("127.0.0.1", self.service.port), timeout=10) as raw:
            raw.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            answer = wait_for_close(raw)
        self.assertNotIn(b"HTTP/1.", answer)
        self.assertEqual(self.service.https_request("GET", "/healthz").status, 200)

    def test_the_dev_certificate_is_valid_for_localhost_and_127_0_0_1(self):
        ctx = ssl.create_default_context(cafile=str(self.service.cert_file))
        for host in ("localhost", "127.0.0.1"):
            with self.subTest(host=host):
                self.assertTrue(self.handshake(ctx, server_hostname=host))


class PlainHttp(ServiceTestCase, Assertions):
    SERVICE_ARGS = ("--plain-http",)

    def test_plain_http_serves_webhooks_over_http(self):
        self.assertEqual(self.service.scheme, "http")
        self.assertEqual(self.service.https_request("GET", "/healthz").status, 200)
        event = user_event("created", new_user_id())
        self.assertOutcome(self.service.deliver(event), "applied")
        self.assertIsNotNone(user_row(self.service, event["data"]["id"]))

    def test_plain_http_makes_no_dev_certificate(self):
        self.assertFalse((self.service.data_dir / "tls" / "dev-cert.pem").exists())


class RequestLimits(ServiceTestCase, Assertions):
    BODY_LIMIT, HEADER_LIMIT = 4096, 2048
    SERVICE_ARGS = ("--max-body-bytes", str(BODY_LIMIT), "--max-header-bytes", str(HEADER_LIMIT))

    def padded_event(self, size: int) -> bytes:
        """A user.created body of exactly `size` bytes."""
        event = user_event("created", new_user_id(), email_addresses=[], external_accounts=[])
        event["data"]["unsafe_metadata"] = {"pad": ""}
        base = len(encode(event))
        self.assertLessEqual(base, size)
        event["data"]["unsafe_metadata"]["pad"] = "x" * (size - base)
        body = encode(event)
        self.assertEqual(len(body), size)
        return body

    def assertStillServing(self) -> None:
        self.assertEqual(self.service.https_request("GET", "/healthz").status, 200)

    def test_a_body_over_the_limit_is_answered_413(self):
        body = self.padded_event(self.BODY_LIMIT + 1)
        before = self.service.dump()

        response = self.service.deliver(body)

        self.assertRefused(response, 413)
        self.assertEqual(self.service.dump(), before)
        self.assertStillServing()

    def test_a_body_at_the_limit_is_accepted(self):
        self.assertOutcome(self.service.deliver(self.padded_event(self.BODY_LIMIT)), "applied")

    def test_headers_over_the_limit_are_answered_431(self):
        response = self.service.https_request("GET", "/healthz", headers={
            "x-padding": "p" * (self.HEADER_LIMIT + 100)})
        self.assertRefused(response, 431)
        self.assertStillServing()


class ConnectionTimeouts(ServiceTestCase):
    SERVICE_ARGS = ("--read-timeout", "1", "--idle-timeout", "1")

    def tls_socket(self) -> ssl.SSLSocket:
        raw = socket.create_connection(("127.0.0.1", self.service.port), timeout=10)
        return self.service.ssl_context().wrap_socket(raw, server_hostname="127.0.0.1")

    def test_a_connection_that_never_starts_tls_is_closed(self):
        with socket.create_connection(("127.0.0.1", self.service.port), timeout=10) as raw:
            self.assertEqual(wait_for_close(raw), b"")

    def test_a_request_stalled_halfway_is_closed_without_being_applied(self):
        event = user_event("created", new_user_id())
        body = encode(event)
        headers = signed_headers(body, self.service.secret)
        self.service.note_sent(headers)
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        with self.tls_socket() as tls:
            tls.sendall(f"POST {WEBHOOK} HTTP/1.1\r\nHost: 127.0.0.1\r\n{head}"
                        f"Content-Length: {len(body)}\r\n\r\n".encode() + body[:-1])
            answer = wait_for_close(tls)
        self.assertNotIn(b" 200 ", answer)
        self.assertIsNone(user_row(self.service, event["data"]["id"]))

    def test_a_request_trickled_byte_by_byte_is_still_closed(self):
        # The read timeout covers the whole request, not each read: dripping bytes does not
        # keep a connection open for ever.
        request = (f"POST {WEBHOOK} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                   "Content-Length: 100000\r\n\r\n").encode() + b"x" * 100000
        deadline = time.monotonic() + 30
        closed = False
        with self.tls_socket() as tls:
            for i in range(len(request)):
                if time.monotonic() > deadline:
                    break
                try:
                    tls.sendall(request[i:i + 1])
                except OSError:
                    closed = True
                    break
                readable, _, _ = select.select([tls], [], [], 0.2)
                if readable:
                    wait_for_close(tls)
                    closed = True
                    break
        self.assertTrue(closed, "a connection dripping a byte every 0.2s stayed open for 30s")

    def test_an_idle_kept_alive_connection_is_closed(self):
        conn = self.service.connection()
        try:
            conn.request("GET", "/healthz")
            response = conn.getresponse()
            response.read()
            self.assertEqual(response.status, 200)
            self.assertEqual(wait_for_close(conn.sock), b"")
        finally:
            conn.close()


class ConnectionLimit(ServiceTestCase):
    SERVICE_ARGS = ("--max-connections", "2")

    def handshake(self) -> None:
        with socket.create_connection(("127.0.0.1", self.service.port), timeout=10) as raw:
            with self.service.ssl_context().wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                tls.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                answer = wait_for_close(tls)
        if not answer.startswith(b"HTTP/1.1 200"):
            raise ConnectionError(f"no answer: {answer[:100]!r}")

    def test_connections_over_the_limit_are_closed_and_freed_slots_are_reused(self):
        first, second = self.service.keep_alive(), self.service.keep_alive()
        try:
            self.assertEqual(first.request("GET", "/healthz").status, 200)
            self.assertEqual(second.request("GET", "/healthz").status, 200)
            with self.assertRaises(OSError):
                self.handshake()
            first.close()
            deadline = time.monotonic() + 30
            while True:
                try:
                    self.handshake()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        self.fail("a closed connection's slot was never given back")
                    time.sleep(0.1)
            self.assertEqual(second.request("GET", "/healthz").status, 200)
        finally:
            first.close()
            second.close()


def ipv6_loopback_available() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@unittest.skipUnless(ipv6_loopback_available(), "this machine has no IPv6 loopback")
class Ipv6Listen(ServiceTestCase, Assertions):
    SERVICE_LISTEN = "[::1]:0"

    def test_ipv6_loopback_serves_webhooks_with_a_certificate_valid_for_it(self):
        self.assertEqual(self.service.https_request("GET", "/healthz").status, 200)
        self.assertOutcome(self.service.deliver(user_event("created", new_user_id())), "applied")

    def test_the_listening_line_is_a_valid_url_for_an_ipv6_address(self):
        url = self.service.listening_url
        try:
            parts = urllib.parse.urlsplit(url)
            host, port = parts.hostname, parts.port
        except ValueError as e:
            self.fail(f"the logged address {url!r} is not a valid URL: {e}")
        self.assertEqual((host, port), ("::1", self.service.port), url)

if __name__ == "__main__":
    harness.main()
