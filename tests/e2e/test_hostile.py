"""End-to-end rules for hostile clients: the real binary, real sockets, over TLS and over plain
HTTP (every rule runs once per transport). Each case ends with the service still answering
/healthz and nothing written to the database, except where a genuine but undecodable delivery
is recorded in rejected_deliveries as the README says.

test_http.py already covers, over TLS: a body one byte over the limit sent whole, headers over
the limit, a request stalled half-way, a request dripped byte by byte, two connections at a
limit of two, plain HTTP on the TLS port, a connection that never starts TLS. test_webhooks.py
covers one changed body byte, a timestamp outside the default window and a 100-deep nesting.
This file goes further: declared and chunked bodies far over the limit, slow headers and slow
bodies timed against --read-timeout, a flood of connections held past the limit, a catalogue of
malformed requests, request smuggling, half a ClientHello, replay of captured requests after the
window, more tampering, more invalid UTF-8 and deep nesting, clients that vanish or never read.

Run: USERSYNC_BIN=build/usersync python3 -m unittest discover -s tests/e2e -v
 or: python3 tests/e2e/test_hostile.py build/usersync [-k PATTERN]
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import socket
import ssl
import struct
import time

import harness
from harness import (WEBHOOK, Assertions, ServiceTestCase, delivery_row, encode,
                     new_msg_id, new_user_id, signed_headers, user_event, user_row,
                     wait_for_close)

READ_TIMEOUT = 2      # --read-timeout: a TLS handshake, or one whole request once started
IDLE_TIMEOUT = 30     # --idle-timeout: long, so that it is never mistaken for the read timeout
WRITE_TIMEOUT = 2     # --write-timeout
BODY_LIMIT = 65536    # --max-body-bytes
MAX_CONNECTIONS = 12  # --max-connections
TOLERANCE = 2         # --timestamp-tolerance, seconds
# A close "at the timeout" comes after most of it has passed and well before this bound, which
# only keeps a loaded CI machine from failing a correct service.
LATE = READ_TIMEOUT + 6.0

SERVICE_ARGS = ("--read-timeout", str(READ_TIMEOUT), "--idle-timeout", str(IDLE_TIMEOUT),
                "--write-timeout", str(WRITE_TIMEOUT), "--max-body-bytes", str(BODY_LIMIT),
                "--max-connections", str(MAX_CONNECTIONS), "--timestamp-tolerance", str(TOLERANCE),
                "--backup-interval", "0")


def status_of(answer: bytes) -> int | None:
    """The status of the first HTTP response in `answer`, None when there is none."""
    m = re.match(rb"HTTP/1\.[01] (\d{3}) ", answer)
    return int(m.group(1)) if m else None


def read_for(s: socket.socket, seconds: float) -> bytes:
    """What the service sends on `s` until it closes it or `seconds` pass."""
    data = b""
    deadline = time.monotonic() + seconds
    while (remaining := deadline - time.monotonic()) > 0:
        s.settimeout(remaining)
        try:
            chunk = s.recv(65536)
        except (socket.timeout, TimeoutError, ConnectionError, ssl.SSLError):
            break
        if not chunk:
            break
        data += chunk
    return data


def client_hello() -> bytes:
    """The first flight of a real TLS client (a ClientHello record), made by Python's ssl."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
    with contextlib.suppress(ssl.SSLWantReadError):
        tls.do_handshake()
    hello = outgoing.read()
    assert hello[:1] == b"\x16", "not a TLS handshake record"
    return hello


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class HostileCases:
    """The rules, as a mixin (not collected on its own); OverTls and OverPlainHttp below run
    them against one service each."""

    service: harness.Service

    # ---- connections

    def tcp(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.service.port), timeout=10)

    def stream(self) -> socket.socket:
        """A connection ready for HTTP: TLS handshake done when the service speaks TLS."""
        raw = self.tcp()
        if self.service.scheme != "https":
            return raw
        return self.service.ssl_context().wrap_socket(raw, server_hostname="127.0.0.1")

    def exchange(self, data: bytes, limit: float = 30) -> bytes:
        """Sends `data` on a new connection and returns all the service sends before closing."""
        with self.stream() as s:
            with contextlib.suppress(OSError):  # the service may close before reading it all
                s.sendall(data)
            return wait_for_close(s, limit)

    def closed_after(self, s: socket.socket, started: float,
                     limit: float = LATE + 4) -> tuple[float, bytes]:
        """Seconds from `started` until the service closes `s`, and what it sent; fails when it
        has not closed by `limit`."""
        try:
            data = wait_for_close(s, max(0.1, started + limit - time.monotonic()))
        except AssertionError:
            self.fail(f"the service kept the connection open for {limit:.0f}s "
                      f"(--read-timeout {READ_TIMEOUT})")
        return time.monotonic() - started, data

    def trickle(self, s: socket.socket, data: bytes, every: float, limit: float) -> float:
        """Sends `data` a byte every `every` seconds until the service closes the connection;
        returns the seconds from the first byte to the close."""
        started = time.monotonic()
        for i in range(len(data)):
            if time.monotonic() - started > limit:
                self.fail(f"a connection trickling a byte every {every}s stayed open for "
                          f"{limit:.0f}s (--read-timeout {READ_TIMEOUT}, --idle-timeout "
                          f"{IDLE_TIMEOUT})")
            try:
                s.sendall(data[i:i + 1])
            except OSError:
                return time.monotonic() - started
            readable, _, _ = select.select([s], [], [], every)
            if readable:
                answer = wait_for_close(s, 10)
                self.assertNotIn(status_of(answer), range(200, 300), answer[:200])
                return time.monotonic() - started
        self.fail("the whole request was trickled without the service closing the connection")

    # ---- requests

    def signed_request(self, body: bytes, *, host: bool = True, framing: str = "length",
                       extra: str = "", headers: dict | None = None) -> bytes:
        """A raw POST to the webhook route carrying `body` signed with the service's secret."""
        headers = headers or signed_headers(body, self.service.secret)
        self.service.note_sent(headers)
        head = f"POST {WEBHOOK} HTTP/1.1\r\n"
        head += "Host: 127.0.0.1\r\n" if host else ""
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + extra
        if framing == "length":
            return (head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body
        if framing == "chunked":
            chunks = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 1024]), body[i:i + 1024])
                              for i in range(0, len(body), 1024))
            return (head + "Transfer-Encoding: chunked\r\n\r\n").encode() + chunks + b"0\r\n\r\n"
        return (head + "\r\n").encode() + body  # framing given in `extra`

    def padded_event(self, size: int) -> tuple[str, bytes]:
        """A valid user.created of exactly `size` bytes: if the limit did not stop it, it would
        be applied."""
        clerk_id = new_user_id()
        event = user_event("created", clerk_id, email_addresses=[], external_accounts=[])
        event["data"]["unsafe_metadata"] = {"pad": ""}
        event["data"]["unsafe_metadata"]["pad"] = "x" * (size - len(encode(event)))
        body = encode(event)
        self.assertEqual(len(body), size)
        return clerk_id, body

    # ---- what every case ends with

    @contextlib.contextmanager
    def unharmed(self, recorded_rejections: int = 0):
        """The case runs inside; afterwards /healthz answers on a new connection and the
        database is as before, apart from `recorded_rejections` new rejected_deliveries."""
        before = self.service.dump()
        yield
        deadline = time.monotonic() + 15
        while True:  # a slot the case used may take a moment to be given back
            try:
                response = self.service.https_request("GET", "/healthz")
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        self.assertEqual(response.status, 200, str(response))
        after = self.service.dump()
        for table in after:
            if table != "rejected_deliveries":
                self.assertEqual(after[table], before[table], f"{table} changed")
        self.assertEqual(len(after["rejected_deliveries"]) - len(before["rejected_deliveries"]),
                         recorded_rejections, "rejected_deliveries")

    # ---- body limits

    def test_a_declared_content_length_over_the_limit_is_answered_413_without_the_body(self):
        _, body = self.padded_event(BODY_LIMIT * 16)
        request = self.signed_request(body)
        head = request[:request.index(b"\r\n\r\n") + 4]
        with self.unharmed():
            started = time.monotonic()
            answer = self.exchange(head)  # the body never comes: the answer cannot wait for it
            self.assertEqual(status_of(answer), 413, answer[:200])
            self.assertLess(time.monotonic() - started, READ_TIMEOUT, "waited for the body")
            self.assertIn(b'"error"', answer)

    def test_a_body_far_over_the_limit_sent_eagerly_is_never_accepted(self):
        clerk_id, body = self.padded_event(BODY_LIMIT * 16)
        with self.unharmed():
            answer = self.exchange(self.signed_request(body))
            # 413, or a reset when the service closes with the rest unread; never a 2xx
            self.assertIn(status_of(answer), (413, None), answer[:200])
        self.assertIsNone(user_row(self.service, clerk_id))

    def test_a_content_length_too_large_for_any_integer_is_answered_400(self):
        with self.unharmed():
            answer = self.exchange(f"POST {WEBHOOK} HTTP/1.1\r\nHost: x\r\n"
                                   f"Content-Length: {'9' * 40}\r\n\r\n".encode())
            self.assertEqual(status_of(answer), 400, answer[:200])

    def test_a_chunked_body_over_the_limit_is_answered_413(self):
        clerk_id, body = self.padded_event(BODY_LIMIT + 2048)
        with self.subTest("1 KiB chunks adding up past the limit"), self.unharmed():
            answer = self.exchange(self.signed_request(body, framing="chunked"))
            self.assertEqual(status_of(answer), 413, answer[:200])
        with self.subTest("one chunk declared larger than the limit"), self.unharmed():
            request = self.signed_request(b"", framing="raw", extra="Transfer-Encoding: chunked\r\n")
            answer = self.exchange(request + b"%x\r\n" % (BODY_LIMIT * 4) + body[:100])
            self.assertEqual(status_of(answer), 413, answer[:200])
        self.assertIsNone(user_row(self.service, clerk_id))

    def test_a_chunked_body_within_the_limit_is_applied(self):
        # The counterpart of the case above: chunked framing itself is not what is refused.
        clerk_id, body = self.padded_event(BODY_LIMIT - 1024)
        answer = self.exchange(self.signed_request(body, framing="chunked",
                                                   extra="Connection: close\r\n"))
        self.assertEqual(status_of(answer), 200, answer[:300])
        self.assertIsNotNone(user_row(self.service, clerk_id))

    # ---- slow clients

    def test_headers_trickled_slower_than_the_read_timeout_are_cut_off_at_the_timeout(self):
        request = (f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: {'s' * 200}\r\n\r\n"
                   .encode())
        with self.unharmed(), self.stream() as s:
            elapsed = self.trickle(s, request, every=0.25, limit=LATE)
        self.assertGreater(elapsed, READ_TIMEOUT * 0.75, "closed long before the read timeout")

    def test_a_body_trickled_slower_than_the_read_timeout_is_cut_off_and_not_applied(self):
        clerk_id, body = self.padded_event(4096)
        request = self.signed_request(body)
        split = request.index(b"\r\n\r\n") + 4
        with self.unharmed(), self.stream() as s:
            started = time.monotonic()
            s.sendall(request[:split])
            self.trickle(s, request[split:], every=0.1, limit=LATE)
            self.assertGreater(time.monotonic() - started, READ_TIMEOUT * 0.75)
        self.assertIsNone(user_row(self.service, clerk_id))

    def test_a_request_trickled_on_a_kept_alive_connection_is_cut_off_at_the_read_timeout(self):
        # --read-timeout bounds "one whole request once it has started" (config.cpp); the idle
        # timeout is only for waiting for the next request to begin. A slow request after a
        # first one must not get the (here 30 s) idle timeout instead.
        with self.unharmed(), self.stream() as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            first = s.recv(65536)
            self.assertEqual(status_of(first), 200, first[:200])
            request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"s" * 200
            elapsed = self.trickle(s, request, every=0.25, limit=LATE)
        self.assertGreater(elapsed, READ_TIMEOUT * 0.75)

    def test_half_a_handshake_or_request_line_is_closed_at_the_read_timeout(self):
        # Over TLS: a ClientHello cut in half, so the handshake never completes. Over plain HTTP
        # the same thing one layer up: half a request line.
        partial = (client_hello()[:60] if self.service.scheme == "https"
                   else f"POST {WEBHOOK} HT".encode())
        with self.unharmed(), self.tcp() as raw:
            started = time.monotonic()
            raw.sendall(partial)
            elapsed, answer = self.closed_after(raw, started)
        self.assertNotIn(status_of(answer), range(200, 300), answer[:200])
        self.assertGreater(elapsed, READ_TIMEOUT * 0.75, "closed long before the read timeout")
        self.assertLess(elapsed, LATE)

    # ---- connection flood

    def test_connections_past_the_limit_are_closed_at_once_and_held_ones_at_the_read_timeout(self):
        held = []
        try:
            with self.unharmed():
                started = time.monotonic()
                held = [self.tcp() for _ in range(MAX_CONNECTIONS)]
                time.sleep(0.3)  # let the service accept them, so the extras come after
                for i in range(8):
                    with self.tcp() as extra:
                        t = time.monotonic()
                        self.assertEqual(wait_for_close(extra, LATE), b"")
                        self.assertLess(time.monotonic() - t, 1.5,
                                        f"extra connection {i + 1} was not closed at once")
                # Nobody sends a byte: each held connection is closed at the read timeout (the
                # TLS handshake's, or the first request's), and its slot is free again.
                for s in held:
                    elapsed, _ = self.closed_after(s, started)
                    self.assertLess(elapsed, LATE)
                self.assertGreater(elapsed, READ_TIMEOUT * 0.75)
        finally:
            for s in held:
                s.close()

    # ---- malformed requests

    def malformed_requests(self) -> dict[str, tuple[bytes, tuple[int, ...]]]:
        """name -> (request bytes, statuses allowed). Where a request carries a signed event,
        a lenient parser would apply it; the refusal shows it did not."""
        _, body = self.padded_event(3000)
        signed = self.signed_request(body)
        head, _, payload = signed.partition(b"\r\n\r\n")
        chunked_head = self.signed_request(b"", framing="raw", extra="Transfer-Encoding: chunked\r\n")
        return {
            "random bytes": (bytes(range(1, 256)) * 2, (400,)),
            "bare LF line endings": (signed.replace(b"\r\n", b"\n"), (400,)),
            "a 20 KiB method": (b"P" * 20000 + signed[4:], (400, 431)),
            "a header line without a colon": (head + b"\r\nNoColonHere\r\n\r\n" + payload, (400,)),
            "a space before a header colon": (head + b"\r\nX-A : b\r\n\r\n" + payload, (400,)),
            "a NUL byte in a header value": (head + b"\r\nX-A: a\x00b\r\n\r\n" + payload, (400,)),
            "a control character in the target": (
                signed.replace(b"/webhooks", b"/web\x01hooks", 1), (400,)),
            "a space in the target": (signed.replace(b"/webhooks", b"/web hooks", 1), (400,)),
            "HTTP/9.9": (signed.replace(b"HTTP/1.1", b"HTTP/9.9", 1), (400,)),
            "an HTTP/0.9 request line": (b"GET /healthz\r\n\r\n", (400,)),
            "the HTTP/2 preface": (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", (400,)),
            "a chunk size that is not hex": (chunked_head + b"zz\r\nabc\r\n0\r\n\r\n", (400,)),
            "a negative chunk size": (chunked_head + b"-1\r\nabc\r\n0\r\n\r\n", (400,)),
            "a chunk size overflowing 64 bits": (
                chunked_head + b"1" + b"0" * 20 + b"\r\nabc\r\n", (400, 413)),
            "a chunk without its CRLF": (chunked_head + b"3\r\nabcX0\r\n\r\n", (400,)),
            "Content-Length and Transfer-Encoding together": (
                head + b"\r\nTransfer-Encoding: chunked\r\n\r\n" + b"%x\r\n" % len(payload) + payload
                + b"\r\n0\r\n\r\n", (400,)),
            "two different Content-Lengths": (
                head + b"\r\nContent-Length: %d\r\n\r\n" % (len(payload) - 1) + payload, (400,)),
            "a Content-Length that is not a number": (
                head.replace(b"Content-Length: ", b"Content-Length: 0x") + b"\r\n\r\n" + payload,
                (400,)),
        }

    def test_malformed_requests_are_answered_400_and_closed(self):
        for name, (request, allowed) in self.malformed_requests().items():
            with self.subTest(name), self.unharmed():
                answer = self.exchange(request)
                self.assertIn(status_of(answer), allowed, answer[:200])
                self.assertEqual(answer.count(b"HTTP/1."), 1, "answered more than one request")
                self.assertIn(b"Connection: close", answer)

    def test_a_request_without_host_is_answered_400(self):
        # RFC 9112 section 3.2: a server MUST answer 400 to an HTTP/1.1 request without Host.
        clerk_id, body = self.padded_event(3000)
        with self.unharmed():
            answer = self.exchange(self.signed_request(body, host=False))
            self.assertEqual(status_of(answer), 400, answer[:200])
        self.assertIsNone(user_row(self.service, clerk_id))

    def test_a_transfer_encoding_not_ending_in_chunked_is_answered_400_and_nothing_is_smuggled(self):
        # RFC 9112 section 6.3: when chunked is not the final transfer coding of a request, its
        # length cannot be determined; the server MUST answer 400 and close. Read any other
        # way, the body becomes a second request that no proxy in front of the service saw.
        clerk_id, inner_body = self.padded_event(3000)
        smuggled = self.signed_request(inner_body)
        outer = (f"POST {WEBHOOK} HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: gzip\r\n\r\n"
                 .encode() + smuggled)
        with self.unharmed(), self.stream() as s:
            s.sendall(outer)
            answer = read_for(s, 3.0)
            self.assertEqual(status_of(answer), 400, answer[:300])
            self.assertEqual(answer.count(b"HTTP/1."), 1,
                             f"a smuggled request was answered: {answer!r}")
        self.assertIsNone(user_row(self.service, clerk_id), "the smuggled delivery was applied")

    def test_the_other_protocol_on_the_port_gets_no_service(self):
        clerk_id, body = self.padded_event(3000)
        with self.unharmed(), self.tcp() as raw:
            if self.service.scheme == "https":
                # Plain HTTP carrying a valid signed delivery to the TLS port.
                raw.sendall(self.signed_request(body))
                answer = wait_for_close(raw)
                self.assertNotIn(b"HTTP/1.", answer)
            else:
                # A TLS ClientHello to the plain-HTTP port: not HTTP, so 400 and closed.
                raw.sendall(client_hello())
                answer = wait_for_close(raw)
                self.assertEqual(status_of(answer), 400, answer[:200])
        self.assertIsNone(user_row(self.service, clerk_id))

    # ---- signatures

    def test_a_captured_request_replayed_after_the_timestamp_window_is_refused(self):
        delivered_id, undelivered_id = new_user_id(), new_user_id()
        delivered = self.signed_request(encode(user_event("created", delivered_id)),
                                        extra="Connection: close\r\n")
        intercepted = self.signed_request(encode(user_event("created", undelivered_id)),
                                          extra="Connection: close\r\n")
        self.assertEqual(status_of(self.exchange(delivered)), 200)
        time.sleep(TOLERANCE + 1.5)  # the signed timestamps are now outside the window
        with self.unharmed():
            for name, request in (("a delivered request", delivered),
                                  ("an intercepted, never delivered request", intercepted)):
                with self.subTest(name):
                    answer = self.exchange(request)
                    self.assertEqual(status_of(answer), 401, answer[:200])
                    self.assertIn(b'"timestamp_too_old"', answer)
        self.assertIsNone(user_row(self.service, undelivered_id))

    def test_a_valid_signature_over_a_tampered_body_is_refused(self):
        clerk_id = new_user_id()
        body = encode(user_event("created", clerk_id))
        other = encode(user_event("created", new_user_id(), first_name="Mallory"))
        headers = signed_headers(body, self.service.secret)
        admin = body.replace(b'"role": "user"', b'"role": "admin"', 1)
        tampered = {
            "a byte appended": body + b"\n",
            "the last byte cut": body[:-1],
            "a field raised to admin": admin if admin != body else body.replace(b"{", b'{"x":1,', 1),
            "another message's body": other,
            "the body sent twice": body + body,
        }
        for name, changed in tampered.items():
            with self.subTest(name), self.unharmed():
                self.assertNotEqual(changed, body)
                answer = self.exchange(self.signed_request(changed, headers=headers,
                                                           extra="Connection: close\r\n"))
                self.assertEqual(status_of(answer), 401, answer[:200])
                self.assertIn(b'"no_matching_signature"', answer)
        self.assertIsNone(user_row(self.service, clerk_id))

    # ---- genuine but undecodable bodies

    def assertRecordedWithoutUser(self, name: str, body: bytes) -> None:
        msg_id = new_msg_id()
        with self.subTest(name), self.unharmed(recorded_rejections=1):
            self.assertLessEqual(len(body), BODY_LIMIT)
            answer = self.exchange(self.signed_request(body, headers=signed_headers(
                body, self.service.secret, msg_id), extra="Connection: close\r\n"))
            self.assertEqual(status_of(answer), 400, answer[:200])
            self.assertIn(b'"malformed_event"', answer)
            rows = self.service.query("SELECT body FROM rejected_deliveries WHERE svix_id = ?",
                                      (msg_id,))
            self.assertEqual(len(rows), 1, "not recorded in rejected_deliveries")
            self.assertEqual(rows[0][0].encode("utf-8", "surrogateescape"), body)
            self.assertIsNone(delivery_row(self.service, msg_id))

    def test_invalid_utf8_in_a_signed_body_is_answered_400_and_recorded_without_a_user(self):
        clerk_id = new_user_id()
        body = encode(user_event("created", clerk_id))
        name = b'"first_name": "Ada"'
        self.assertIn(name, body)
        for label, replacement in {
            "an overlong encoding of '/'": b'"first_name": "A\xc0\xafa"',
            "an encoded UTF-16 surrogate": b'"first_name": "A\xed\xa0\x80a"',
            "a sequence cut short": b'"first_name": "Ad\xe2\x82"',
            "a code point above U+10FFFF": b'"first_name": "A\xf4\x90\x80\x80a"',
            "a stray continuation byte": b'"first_name": "A\x80a"',
            "invalid bytes in a key": b'"first_\xffname": "Ada"',
            "a lone surrogate escape": b'"first_name": "A\\ud800a"',
        }.items():
            self.assertRecordedWithoutUser(label, body.replace(name, replacement, 1))
        self.assertIsNone(user_row(self.service, clerk_id))

    def test_deeply_nested_json_in_a_signed_body_is_answered_400_and_recorded_without_a_user(self):
        clerk_id = new_user_id()
        prefix = b'{"type": "user.created", "data": {"id": "' + clerk_id.encode() + b'", "x": '
        depth = (BODY_LIMIT - 200) // 12
        for label, body in {
            f"{depth * 5}-deep arrays": prefix + b"[" * depth * 5 + b"]" * depth * 5 + b"}}",
            f"{depth}-deep objects": prefix + b'{"a": ' * depth + b"1" + b"}" * depth + b"}}",
            "brackets never closed": b"[" * (BODY_LIMIT - 1),
        }.items():
            self.assertRecordedWithoutUser(label, body)
        self.assertIsNone(user_row(self.service, clerk_id))

    # ---- clients that vanish or never read

    def test_clients_that_vanish_mid_request_leave_no_busy_session(self):
        _, body = self.padded_event(4096)
        request = self.signed_request(body)
        with self.unharmed():
            for i in range(20):
                s = self.stream() if i % 2 else self.tcp()
                with contextlib.suppress(OSError):
                    s.sendall(request[:len(request) // 2])
                if i % 4 < 2:  # half of them reset the connection instead of closing it
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                s.close()
            time.sleep(0.5)
            used = cpu_seconds(self.service.pid)
            time.sleep(2.0)
            self.assertLess(cpu_seconds(self.service.pid) - used, 0.5,
                            "the service kept a core busy after clients vanished")

    def test_a_client_that_never_reads_its_answers_is_cut_off_at_the_write_timeout(self):
        # Pipelined requests whose answers are never read fill the socket buffers; the service
        # must give up on that client at the write timeout, and serve others meanwhile.
        requests = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" * 1000
        limit = LATE + 10  # the buffers take a few seconds to fill on a slow machine
        with self.unharmed(), self.stream() as s:
            s.settimeout(0.5)
            started = time.monotonic()
            stalled = False
            while time.monotonic() - started < limit:
                try:
                    s.send(requests)
                except (socket.timeout, TimeoutError):
                    # Our send buffer is full: the service has stopped reading from us.
                    if not stalled:
                        stalled = True
                        response = self.service.https_request("GET", "/healthz")
                        self.assertEqual(response.status, 200, "another client was held up")
                except OSError:
                    break  # the service closed the connection
            else:
                self.fail(f"a client that never reads was still connected after {limit:.0f}s "
                          f"(--write-timeout {WRITE_TIMEOUT})")
            self.assertTrue(stalled, "closed before the buffers filled: the case proves nothing")


class OverTls(HostileCases, ServiceTestCase, Assertions):
    SERVICE_ARGS = SERVICE_ARGS


class OverPlainHttp(HostileCases, ServiceTestCase, Assertions):
    SERVICE_ARGS = (*SERVICE_ARGS, "--plain-http")


if __name__ == "__main__":
    harness.main()
