"""The SSRF-safe webhook POST against real HTTP(S) receivers on 127.0.0.1 (and ::1).

Refusals are checked with a tripwire on socket.create_connection, so a test fails if a refused
target is contacted at all; host names that would resolve inside are given an injected resolver
instead of real DNS. Nothing here reaches beyond the loopback interface.
"""

from __future__ import annotations

import datetime
import email.utils
import itertools
import socket
import socketserver
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from distribution.delivery import transport

SECRET_TOKEN = "tok_5ecret-in-the-url"
SIGNATURE = "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4="
HEADERS = {"Content-Type": "application/json", "webhook-id": "msg_1", "webhook-signature": SIGNATURE}
TIMEOUT = 1.0
# Generous for a loaded CI machine, yet far below what an unbounded read would take.
MARGIN = 0.75


@dataclass
class Receiver:
    server: ThreadingHTTPServer
    release: threading.Event
    requests: list[dict[str, Any]] = field(default_factory=list)
    server_names: list[str | None] = field(default_factory=list)

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def url(self, path: str, host: str = "127.0.0.1", scheme: str = "http") -> str:
        return f"{scheme}://{host}:{self.port}{path}"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Any

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        receiver: Receiver = self.server.receiver
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        receiver.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
        route = self.path.split("?")[0].strip("/")
        try:
            getattr(self, f"_answer_{route.replace('-', '_')}")(receiver)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _answer(self, status: int, body: bytes = b"", **headers: str) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _answer_ok(self, receiver: Receiver) -> None:
        self._answer(200, b"thanks")

    def _answer_fail(self, receiver: Receiver) -> None:
        self._answer(500, b"boom: database unavailable")

    def _answer_busy_seconds(self, receiver: Receiver) -> None:
        self._answer(429, Retry_After="120")

    def _answer_busy_date(self, receiver: Receiver) -> None:
        self._answer(429, Retry_After=email.utils.formatdate(time.time() + 90, usegmt=True))

    def _answer_gone(self, receiver: Receiver) -> None:
        self._answer(410, b"unsubscribed")

    def _answer_moved(self, receiver: Receiver) -> None:
        self._answer(302, Location="/ok")

    def _answer_drop(self, receiver: Receiver) -> None:
        self.close_connection = True

    def _answer_hang(self, receiver: Receiver) -> None:
        receiver.release.wait(30)

    def _answer_trickle_status(self, receiver: Receiver) -> None:
        self._trickle(receiver, itertools.chain(b"HTTP/1.1 200 OK\r\n", itertools.cycle(b"X-Slow: 1\r\n")))

    def _answer_trickle_body(self, receiver: Receiver) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "100000")
        self.end_headers()
        self._trickle(receiver, itertools.repeat(ord("x")))

    def _answer_huge(self, receiver: Receiver) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(10 * 1024 * 1024))
        self.end_headers()
        self._flood(receiver, lambda chunk: chunk)

    def _answer_huge_chunked(self, receiver: Receiver) -> None:
        self.send_response(500)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self._flood(receiver, lambda chunk: b"%x\r\n%s\r\n" % (len(chunk), chunk))

    def _trickle(self, receiver: Receiver, data: Iterator[int]) -> None:
        for byte in data:
            if receiver.release.is_set():
                return
            self.wfile.write(bytes([byte]))
            self.wfile.flush()
            time.sleep(0.05)

    def _flood(self, receiver: Receiver, frame: Callable[[bytes], bytes]) -> None:
        for _ in range(10 * 1024 // 16):
            if receiver.release.is_set():
                return
            self.wfile.write(frame(b"y" * 16 * 1024))
        self.close_connection = True


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def server_bind(self) -> None:
        # HTTPServer's own version looks up the host's FQDN, which may query DNS.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = "localhost", int(self.server_address[1])


def _start(host: str, family: socket.AddressFamily, tls: ssl.SSLContext | None) -> Iterator[Receiver]:
    server_class = type("Server", (_Server,), {"address_family": family})
    server = server_class((host, 0), _Handler)
    receiver = Receiver(server, threading.Event())
    if tls is not None:
        tls.sni_callback = lambda _sock, name, _ctx: receiver.server_names.append(name)  # type: ignore[assignment,misc]
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    server.receiver = receiver  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        receiver.release.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    yield from _start("127.0.0.1", socket.AF_INET, None)


@dataclass(frozen=True)
class Certificates:
    ca_file: Path
    server_context: ssl.SSLContext

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    """A private CA and a certificate it issued for receiver.test only."""
    directory = tmp_path_factory.mktemp("tls")
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "consortium test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "receiver.test")]))
        .issuer_name(ca_name)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("receiver.test")]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_file, chain_file, key_file = directory / "ca.pem", directory / "chain.pem", directory / "key.pem"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    chain_file.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        leaf_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(chain_file, key_file)
    return Certificates(ca_file, server_context)


@pytest.fixture
def tls_receiver(certificates: Certificates) -> Iterator[Receiver]:
    yield from _start("127.0.0.1", socket.AF_INET, certificates.server_context)


@pytest.fixture
def no_connections(monkeypatch: pytest.MonkeyPatch) -> None:
    def tripwire(address: object, *args: object, **kwargs: object) -> socket.socket:
        raise AssertionError(f"a refused target was contacted: {address!r}")

    monkeypatch.setattr(socket, "create_connection", tripwire)


def _resolve_to(*addresses: str) -> transport.Resolver:
    def resolver(host: str, port: int) -> list[str]:
        return list(addresses)

    return resolver


def _post(url: str, **options: Any) -> transport.DeliveryResult:
    settings: dict[str, Any] = {"allow_private": True, "require_https": False, "timeout": TIMEOUT}
    return transport.post(url, b'{"type":"ping"}', headers=HEADERS, **{**settings, **options})


def test_a_2xx_answer_is_success_and_the_receiver_gets_the_signed_request(receiver: Receiver) -> None:
    result = _post(receiver.url("/ok"))

    assert (result.ok, result.status, result.body, result.address) == (True, 200, b"thanks", "127.0.0.1")
    (request,) = receiver.requests
    assert request["body"] == b'{"type":"ping"}'
    assert request["headers"]["Host"] == f"127.0.0.1:{receiver.port}"
    assert request["headers"]["webhook-signature"] == SIGNATURE
    assert request["headers"]["Connection"] == "close"
    assert request["headers"]["User-Agent"] == transport.USER_AGENT


def test_a_500_is_an_http_error_with_an_excerpt_of_the_answer(receiver: Receiver) -> None:
    result = _post(receiver.url("/fail"))

    assert (result.error, result.status, result.body) == ("http_error", 500, b"boom: database unavailable")
    assert result.retry_after is None


@pytest.mark.parametrize(("path", "low", "high"), [("/busy-seconds", 120, 120), ("/busy-date", 85, 91)])
def test_a_429_carries_retry_after_in_seconds_whichever_form_it_came_in(
    receiver: Receiver, path: str, low: float, high: float
) -> None:
    result = _post(receiver.url(path))

    assert (result.error, result.status) == ("http_error", 429)
    assert result.retry_after is not None and low <= result.retry_after <= high


def test_a_410_is_reported_so_the_subscription_can_be_disabled(receiver: Receiver) -> None:
    result = _post(receiver.url("/gone"))

    assert (result.error, result.status) == ("http_error", 410)


def test_a_redirect_is_a_failure_and_is_not_followed(receiver: Receiver) -> None:
    result = _post(receiver.url("/moved"))

    assert (result.error, result.status, result.location) == ("redirect", 302, "/ok")
    assert [request["path"] for request in receiver.requests] == ["/moved"]


def test_a_receiver_that_closes_without_answering_is_a_lost_connection(receiver: Receiver) -> None:
    assert _post(receiver.url("/drop")).error == "connection_lost"


def test_a_receiver_that_hangs_is_cut_off_at_the_total_timeout(receiver: Receiver) -> None:
    result = _post(receiver.url("/hang"))

    assert result.error == "timeout"
    assert TIMEOUT <= result.elapsed < TIMEOUT + MARGIN


def test_a_receiver_trickling_its_headers_cannot_stretch_the_call_past_the_timeout(receiver: Receiver) -> None:
    started = time.monotonic()
    result = _post(receiver.url("/trickle-status"))

    assert result.error == "timeout"
    assert time.monotonic() - started < TIMEOUT + MARGIN


def test_a_2xx_whose_body_trickles_stays_a_success_and_returns_on_time(receiver: Receiver) -> None:
    started = time.monotonic()
    result = _post(receiver.url("/trickle-body"))

    assert (result.ok, result.status, result.body_truncated) == (True, 200, True)
    assert 0 < len(result.body) < 100
    assert time.monotonic() - started < TIMEOUT + MARGIN


@pytest.mark.parametrize("path", ["/huge", "/huge-chunked"])
def test_a_huge_answer_is_read_only_up_to_the_cap(receiver: Receiver, path: str) -> None:
    result = _post(receiver.url(path), max_body=64 * 1024)

    assert len(result.body) == 64 * 1024
    assert result.body_truncated
    assert result.elapsed < TIMEOUT


def test_nothing_listening_is_a_failed_connection() -> None:
    with socket.socket() as placeholder:
        placeholder.bind(("127.0.0.1", 0))
        port = placeholder.getsockname()[1]

    result = _post(f"http://127.0.0.1:{port}/")

    assert (result.error, result.address) == ("connect_failed", "127.0.0.1")


def test_a_tls_handshake_that_never_completes_is_cut_off_at_the_connect_timeout() -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"https://receiver.test:{silent.getsockname()[1]}/"
        result = _post(url, resolver=_resolve_to("127.0.0.1"), connect_timeout=0.3, timeout=5)

    assert result.error == "timeout"
    assert result.elapsed < 0.3 + MARGIN


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "[::1]",
        "10.1.2.3",
        "169.254.169.254",
        "100.64.0.1",
        "[::ffff:127.0.0.1]",
        "[::ffff:a01:203]",
        "0.0.0.0",
        "2130706433",
        "127.1",
        "localhost",
    ],
)
def test_internal_targets_are_refused_before_any_traffic(
    receiver: Receiver, no_connections: None, host: str
) -> None:
    result = _post(receiver.url("/ok", host=host), allow_private=False)

    assert result.error == "target_forbidden"
    assert receiver.requests == []


def test_a_host_name_is_refused_when_any_of_its_addresses_is_internal(no_connections: None) -> None:
    resolver = _resolve_to("93.184.215.14", "10.0.0.7")

    result = _post("https://hooks.example/x", allow_private=False, resolver=resolver)

    assert result.error == "target_forbidden"
    assert transport.validate_target_url(
        "https://hooks.example/x", allow_private=False, require_https=True, resolver=resolver
    ) == "target_forbidden"


def test_the_host_is_resolved_once_and_the_checked_address_is_the_one_contacted(receiver: Receiver) -> None:
    answers = iter([["127.0.0.1"]])

    def rebinding_resolver(host: str, port: int) -> list[str]:
        # A second lookup would be the window DNS rebinding needs; it must never happen.
        return next(answers)

    result = _post(receiver.url("/ok", host="receiver.test"), resolver=rebinding_resolver)

    assert (result.ok, result.address) == (True, "127.0.0.1")
    assert receiver.requests[0]["headers"]["Host"] == f"receiver.test:{receiver.port}"


def test_an_unresolvable_or_slow_to_resolve_host_is_a_dns_failure(no_connections: None) -> None:
    released = threading.Event()

    def failing(host: str, port: int) -> list[str]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    def stalling(host: str, port: int) -> list[str]:
        released.wait(10)
        return ["127.0.0.1"]

    try:
        assert _post("http://nowhere.test/", resolver=failing).error == "dns_failed"
        result = _post("http://slow.test/", resolver=stalling, timeout=0.3)
    finally:
        released.set()

    assert result.error == "dns_failed"
    assert result.elapsed < 0.3 + MARGIN


def test_an_ip_literal_is_resolved_without_a_thread_and_only_a_host_name_gets_one(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[str] = []
    real_thread = threading.Thread

    def counting_thread(*args: Any, **kwargs: Any) -> threading.Thread:
        if kwargs.get("name") == "webhook-resolve":  # not the receiver's threads
            started.append(kwargs["name"])
        return real_thread(*args, **kwargs)

    monkeypatch.setattr(transport.threading, "Thread", counting_thread)

    literal = _post(receiver.url("/ok"))
    assert (literal.ok, literal.address, started) == (True, "127.0.0.1", [])
    # An injected resolver (anything but the system's) may wait, so it keeps its thread and deadline.
    named = _post(receiver.url("/ok", host="receiver.test"), resolver=_resolve_to("127.0.0.1"))
    assert (named.ok, named.address, started) == (True, "127.0.0.1", ["webhook-resolve"])


def test_https_goes_to_the_checked_address_with_sni_and_certificate_check_for_the_host_name(
    tls_receiver: Receiver, certificates: Certificates
) -> None:
    result = _post(
        tls_receiver.url("/ok", host="receiver.test", scheme="https"),
        require_https=True,
        resolver=_resolve_to("127.0.0.1"),
        tls_context=certificates.client_context(),
    )

    assert (result.ok, result.status, result.address) == (True, 200, "127.0.0.1")
    assert tls_receiver.server_names == ["receiver.test"]
    assert tls_receiver.requests[0]["headers"]["Host"] == f"receiver.test:{tls_receiver.port}"


def test_https_to_a_name_the_certificate_does_not_cover_is_a_tls_error(
    tls_receiver: Receiver, certificates: Certificates
) -> None:
    result = _post(
        tls_receiver.url("/ok", host="impostor.test", scheme="https"),
        resolver=_resolve_to("127.0.0.1"),
        tls_context=certificates.client_context(),
    )

    assert result.error == "tls_error"
    assert "impostor.test" in result.detail
    assert tls_receiver.requests == []


def test_require_https_refuses_plain_http_before_resolving(receiver: Receiver, no_connections: None) -> None:
    def unreachable(host: str, port: int) -> list[str]:
        raise AssertionError("resolved a URL that should have been refused first")

    result = _post(receiver.url("/ok"), require_https=True, resolver=unreachable)

    assert result.error == "https_required"


def test_an_ipv6_loopback_receiver_gets_a_bracketed_host_header() -> None:
    if not socket.has_ipv6:
        pytest.skip("this Python has no IPv6 support")
    try:
        receivers = _start("::1", socket.AF_INET6, None)
        receiver = next(receivers)
    except OSError as exc:
        pytest.skip(f"::1 is not available here: {exc}")
    try:
        result = _post(receiver.url("/ok", host="[::1]"))
    finally:
        receivers.close()

    assert (result.ok, result.address) == (True, "::1")
    assert receiver.requests[0]["headers"]["Host"] == f"[::1]:{receiver.port}"


def test_results_never_carry_the_request_headers_or_the_url(receiver: Receiver) -> None:
    results = [
        _post(receiver.url(f"/{path}?token={SECRET_TOKEN}"))
        for path in ("ok", "fail", "busy-seconds", "moved", "drop", "hang")
    ]
    results.append(_post(receiver.url(f"/ok?token={SECRET_TOKEN}"), allow_private=False))

    for result in results:
        assert SIGNATURE not in repr(result)
        assert SECRET_TOKEN not in repr(result)
        assert "K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN" not in result.detail


@pytest.mark.parametrize(
    ("url", "options", "code"),
    [
        ("ftp://hooks.example/x", {}, "invalid_scheme"),
        ("hooks.example/x", {}, "invalid_scheme"),
        ("http://hooks.example/x", {"require_https": True}, "https_required"),
        ("https:///x", {}, "missing_host"),
        ("https://user:pass@hooks.example/x", {}, "credentials_in_url"),
        ("https://token@hooks.example/x", {}, "credentials_in_url"),
        ("https://hooks.example:99999/x", {}, "invalid_url"),
        ("https://hooks.example/a b", {}, "invalid_url"),
        ("https://127.0.0.1/x", {}, "target_forbidden"),
        ("https://[fd00::1]/x", {}, "target_forbidden"),
        ("https://127.0.0.1/x", {"allow_private": True}, None),
        ("https://hooks.example/x", {}, None),
        ("https://hooks.example:8443/x?y=1", {}, None),
    ],
)
def test_target_urls_are_validated_with_stable_codes(url: str, options: dict[str, bool], code: str | None) -> None:
    def fake_dns(host: str, port: int) -> list[str]:
        return ["93.184.215.14"] if host == "hooks.example" else [host]

    settings = {"allow_private": False, "require_https": False, **options}

    assert transport.validate_target_url(url, resolver=fake_dns, **settings) == code


def test_an_unresolvable_target_url_is_reported_as_such() -> None:
    def failing(host: str, port: int) -> list[str]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    code = transport.validate_target_url(
        "https://nowhere.test/", allow_private=False, require_https=True, resolver=failing
    )

    assert code == "dns_failed"


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True),
        ("2001:4860:4860::8888", True),
        ("::ffff:8.8.8.8", True),
        ("64:ff9b::808:808", True),
        ("2002:808:808::1", True),
        ("127.0.0.1", False),
        ("10.0.0.1", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),
        ("100.64.0.1", False),
        ("0.0.0.0", False),
        ("192.0.0.9", False),
        ("198.18.0.1", False),
        ("224.0.0.1", False),
        ("255.255.255.255", False),
        ("::", False),
        ("::1", False),
        ("::127.0.0.1", False),
        ("::ffff:10.0.0.1", False),
        ("64:ff9b::a00:1", False),
        ("64:ff9b:1::1", False),
        ("2002:a00:1::1", False),
        ("2001::1", False),
        ("2001:db8::1", False),
        ("fc00::1", False),
        ("fe80::1", False),
        ("fe80::1%1", False),
        ("fec0::1", False),
        ("ff02::1", False),
    ],
)
def test_addresses_are_public_only_outside_every_special_purpose_block(address: str, public: bool) -> None:
    assert transport.is_public_address(address) is public


def test_retry_after_is_read_as_delta_seconds_or_as_an_http_date() -> None:
    now = 1_700_000_000.0

    assert transport.parse_retry_after("120", now=now) == 120
    assert transport.parse_retry_after(email.utils.formatdate(now + 90, usegmt=True), now=now) == 90
    assert transport.parse_retry_after(email.utils.formatdate(now - 90, usegmt=True), now=now) == 0
    assert transport.parse_retry_after("soon", now=now) is None
    assert transport.parse_retry_after("-5", now=now) is None
    assert transport.parse_retry_after(None) is None
