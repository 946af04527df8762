"""An outbound HTTP POST for webhook deliveries that cannot be turned against internal networks.

- The host is resolved once and every address it resolves to must be public (unless private
  targets are allowed). The connection then goes to a checked address itself, so DNS that changes
  between the check and the connect (rebinding) cannot redirect it; the Host header, TLS SNI and
  certificate verification still use the host name from the URL.
- Redirects are never followed; proxies from the environment are never used.
- One deadline covers resolving, connecting, TLS, sending and reading, and every socket operation
  waits only for the time left, so a peer that trickles bytes cannot stretch the call.
- Failures come back as results with stable codes, not exceptions. Messages never include the
  request headers (they carry signatures) or the URL (a receiver may put a token in it).

Standard library only: http.client lets us hand it a socket we connected ourselves, which is the
whole trick, while urllib3/requests would need adapter surgery for the same pinning and would
honour proxy environment variables.
"""

from __future__ import annotations

import email.utils
import http.client
import io
import ipaddress
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import timezone
from functools import cache
from typing import cast
from urllib.parse import urlsplit

Resolver = Callable[[str, int], Iterable[str]]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

DEFAULT_CONNECT_TIMEOUT = 5.0
DEFAULT_TIMEOUT = 15.0
DEFAULT_MAX_BODY = 64 * 1024
MAX_LOCATION_CHARS = 2048
USER_AGENT = "consortium-webhooks/1"

ERROR_MESSAGES: dict[str, str] = {
    "invalid_url": "The URL could not be parsed.",
    "invalid_scheme": "Only http and https URLs can receive webhooks.",
    "https_required": "The URL must use https.",
    "missing_host": "The URL has no host.",
    "credentials_in_url": "The URL must not contain a user name or password.",
    "dns_failed": "The host name could not be resolved.",
    "target_forbidden": "The host resolves to a private, loopback, link-local or otherwise internal address.",
    "connect_failed": "The connection to the receiver could not be established.",
    "timeout": "The receiver did not answer within the time limit.",
    "tls_error": "The TLS handshake or the receiver's certificate check failed.",
    "connection_lost": "The receiver closed the connection before answering.",
    "protocol_error": "The receiver's answer was not valid HTTP/1.1.",
    "redirect": "The receiver answered with a redirect, and redirects are not followed.",
    "http_error": "The receiver answered with a status other than 2xx.",
}

# IANA's IPv4 special-purpose registry, plus multicast and the reserved class E. Spelled out rather
# than taken from ipaddress.is_global, whose answers have changed between Python releases.
_FORBIDDEN_V4 = tuple(
    ipaddress.IPv4Network(block)
    for block in (
        "0.0.0.0/8",  # "this network"; 0.0.0.0 reaches the local host on Linux
        "10.0.0.0/8",
        "100.64.0.0/10",  # carrier-grade NAT
        "127.0.0.0/8",
        "169.254.0.0/16",  # link-local, where cloud metadata services live
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "192.88.99.0/24",  # deprecated 6to4 relay anycast
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",
        "240.0.0.0/4",  # includes the broadcast address
    )
)
# Only global unicast is allocated for public hosts; that one rule excludes loopback, unspecified,
# IPv4-compatible, unique-local, link-local, site-local, multicast and the local-use NAT64 prefix.
_GLOBAL_UNICAST_V6 = ipaddress.IPv6Network("2000::/3")
_FORBIDDEN_V6 = tuple(
    ipaddress.IPv6Network(block)
    for block in (
        "2001::/23",  # IETF protocol assignments, among them Teredo, which hides the IPv4 it reaches
        "2001:db8::/32",
        "3fff::/20",
    )
)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_HOST = re.compile(r"[A-Za-z0-9._:%-]+")
_UNSAFE_IN_PATH = re.compile(r"[\x00-\x20\x7f]")
_OWN_HEADERS = frozenset({"host", "connection", "content-length", "transfer-encoding"})


@dataclass(frozen=True)
class DeliveryResult:
    """What one POST achieved. `error` is None exactly when the receiver answered 2xx."""

    error: str | None
    elapsed: float
    status: int | None = None
    retry_after: float | None = None
    body: bytes = b""
    body_truncated: bool = False
    location: str | None = None
    address: str | None = None
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class _Target:
    scheme: str
    host: str
    port: int
    path: str


class _Failure(Exception):
    def __init__(self, code: str, detail: str = "", address: str | None = None) -> None:
        super().__init__(code)
        self.code = code
        self.detail = detail or ERROR_MESSAGES[code]
        self.address = address


def is_public_address(address: str | IPAddress) -> bool:
    ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    if isinstance(ip, ipaddress.IPv4Address):
        return not any(ip in block for block in _FORBIDDEN_V4)
    embedded = _embedded_ipv4(ip)
    if embedded is not None:
        return is_public_address(embedded)
    return ip in _GLOBAL_UNICAST_V6 and not any(ip in block for block in _FORBIDDEN_V6)


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    # Packets to these forms end up at an IPv4 address, so that address is the one to judge.
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def system_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    return [str(info[4][0]) for info in infos]


def validate_target_url(
    url: str,
    *,
    allow_private: bool,
    require_https: bool,
    resolver: Resolver = system_resolver,
    timeout: float = DEFAULT_CONNECT_TIMEOUT,
) -> str | None:
    """None if `url` may receive webhooks now, else a stable error code (see ERROR_MESSAGES)."""
    try:
        target = _parse(url, require_https=require_https)
        _resolve(target, allow_private, resolver, time.monotonic() + timeout)
    except _Failure as failure:
        return failure.code
    return None


def post(
    url: str,
    body: bytes,
    *,
    headers: Mapping[str, str],
    allow_private: bool,
    require_https: bool,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    timeout: float = DEFAULT_TIMEOUT,
    max_body: int = DEFAULT_MAX_BODY,
    resolver: Resolver = system_resolver,
    tls_context: ssl.SSLContext | None = None,
) -> DeliveryResult:
    """POST `body` once, re-checking the target, and report what happened; never raises for
    network trouble. `timeout` bounds the whole call, `connect_timeout` each connection attempt."""
    started = time.monotonic()
    deadline = started + timeout
    try:
        target = _parse(url, require_https=require_https)
        addresses = _resolve(target, allow_private, resolver, deadline)
        sock, address = _connect(target, addresses, connect_timeout, deadline, tls_context)
        try:
            return _exchange(sock, address, target, body, headers, deadline, max_body, started)
        finally:
            sock.close()
    except _Failure as failure:
        return DeliveryResult(
            error=failure.code,
            elapsed=time.monotonic() - started,
            address=failure.address,
            detail=failure.detail,
        )


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header, given as delta-seconds or as an HTTP-date."""
    if value is None:
        return None
    value = value.strip()
    if re.fullmatch(r"[0-9]{1,10}", value):
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        # An HTTP-date is always GMT; the parser leaves "-0000" zones naive.
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _parse(url: str, *, require_https: bool) -> _Target:
    try:
        parts = urlsplit(url)
        port = parts.port
        host = (parts.hostname or "").encode("idna").decode("ascii")
    except (ValueError, UnicodeError):
        raise _Failure("invalid_url") from None
    if parts.scheme not in ("http", "https"):
        raise _Failure("invalid_scheme")
    if require_https and parts.scheme != "https":
        raise _Failure("https_required")
    if "@" in parts.netloc:
        raise _Failure("credentials_in_url")
    if not host:
        raise _Failure("missing_host")
    if not _HOST.fullmatch(host) or port == 0:
        raise _Failure("invalid_url")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if _UNSAFE_IN_PATH.search(path) or not path.isascii():  # HTTP/1.1 request lines are ASCII
        raise _Failure("invalid_url")
    return _Target(parts.scheme, host, port or (443 if parts.scheme == "https" else 80), path)


def _resolve(target: _Target, allow_private: bool, resolver: Resolver, deadline: float) -> list[str]:
    answers: list[object] = []
    done = threading.Event()

    def run() -> None:
        try:
            answers.append(list(resolver(target.host, target.port)))
        except Exception as exc:  # handed to the waiting thread below, which decides
            answers.append(exc)
        finally:
            done.set()

    if _answered_from_the_string(target.host, resolver):
        run()
    else:
        # getaddrinfo has no timeout of its own and can block for tens of seconds; on a thread of
        # its own the call can give up at the deadline while the lookup finishes in the background.
        threading.Thread(target=run, name="webhook-resolve", daemon=True).start()
        if not done.wait(max(0.0, deadline - time.monotonic())):
            raise _Failure("dns_failed", "Resolving the host name timed out.")
    answer = answers[0]
    if isinstance(answer, (OSError, UnicodeError)):
        raise _Failure("dns_failed")
    if isinstance(answer, Exception):
        raise answer
    addresses = list(dict.fromkeys(cast(list[str], answer)))
    try:
        checked = [ipaddress.ip_address(address) for address in addresses]
    except ValueError:
        raise _Failure("dns_failed", "The resolver returned something that is not an IP address.") from None
    if not checked:
        raise _Failure("dns_failed")
    # Any internal answer refuses the whole host: which address we would connect to is not ours to
    # choose once the resolver and the network are involved.
    if not allow_private and not all(is_public_address(ip) for ip in checked):
        raise _Failure("target_forbidden")
    return addresses


def _answered_from_the_string(host: str, resolver: Resolver) -> bool:
    """Whether resolving `host` cannot wait on DNS: the system resolver answers an IP literal from
    the string itself, so it needs no thread of its own to be cut off at the deadline (starting one
    cost about 0.15 ms of CPU, more than half of what the rest of a POST of a 540 KB body to a
    receiver on the same host costs). Its answer is checked exactly as any other."""
    if resolver is not system_resolver:
        return False
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _connect(
    target: _Target,
    addresses: list[str],
    connect_timeout: float,
    deadline: float,
    tls_context: ssl.SSLContext | None,
) -> tuple[socket.socket, str]:
    failure = _Failure("timeout", "The time limit passed before connecting.")
    for address in addresses:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        try:
            sock = socket.create_connection((address, target.port), timeout=min(connect_timeout, remaining))
        except TimeoutError:
            failure = _Failure("timeout", "Connecting timed out.", address)
            continue
        except OSError as exc:
            failure = _Failure("connect_failed", f"Connecting failed: {exc.strerror or type(exc).__name__}.", address)
            continue
        if target.scheme == "http":
            return sock, address
        return _start_tls(sock, address, target.host, connect_timeout, deadline, tls_context), address
    raise failure


def _start_tls(
    sock: socket.socket,
    address: str,
    host: str,
    connect_timeout: float,
    deadline: float,
    tls_context: ssl.SSLContext | None,
) -> ssl.SSLSocket:
    # The socket goes to the checked address, but server_hostname makes TLS send the URL's host as
    # SNI and verify the certificate against it, exactly as if we had connected by name. CPython
    # bounds the whole handshake by the socket timeout, not each read.
    sock.settimeout(max(0.001, min(connect_timeout, deadline - time.monotonic())))
    context = tls_context or _default_tls_context()
    try:
        return context.wrap_socket(sock, server_hostname=host)
    except TimeoutError:
        raise _Failure("timeout", "The TLS handshake timed out.", address) from None
    except ssl.SSLCertVerificationError as exc:
        raise _Failure("tls_error", f"Certificate rejected: {exc.verify_message}.", address) from None
    except ssl.SSLError as exc:
        raise _Failure("tls_error", f"TLS failed: {exc.reason or type(exc).__name__}.", address) from None
    except OSError as exc:
        raise _Failure("connection_lost", f"TLS failed: {exc.strerror or type(exc).__name__}.", address) from None
    finally:
        # wrap_socket detaches the plain socket on success and closes it on failure; this covers
        # the paths where it raised before getting that far.
        if sock.fileno() != -1:
            sock.close()


def _exchange(
    sock: socket.socket,
    address: str,
    target: _Target,
    body: bytes,
    headers: Mapping[str, str],
    deadline: float,
    max_body: int,
    started: float,
) -> DeliveryResult:
    connection = _PinnedConnection(target, _DeadlineSocket(sock, deadline))
    # Host and message framing are ours to set: the Host must name the URL's host, and one
    # request per connection keeps every attempt's deadline and address check self-contained.
    request_headers = {name: value for name, value in headers.items() if name.lower() not in _OWN_HEADERS}
    if not any(name.lower() == "user-agent" for name in request_headers):
        request_headers["User-Agent"] = USER_AGENT
    request_headers["Connection"] = "close"
    try:
        connection.request("POST", target.path, body=body, headers=request_headers)
        response = connection.getresponse()
    except TimeoutError:
        raise _Failure("timeout", address=address) from None
    except ssl.SSLError as exc:
        raise _Failure("tls_error", f"TLS failed: {exc.reason or type(exc).__name__}.", address) from None
    except ConnectionError:
        # Includes http.client.RemoteDisconnected, the peer closing without a status line.
        raise _Failure("connection_lost", address=address) from None
    except http.client.HTTPException as exc:
        raise _Failure("protocol_error", f"Invalid answer: {type(exc).__name__}.", address) from None
    except OSError as exc:
        raise _Failure("connection_lost", f"{exc.strerror or type(exc).__name__}.", address) from None

    content, truncated, read_note = _read_capped(response, max_body)
    status = response.status
    if 200 <= status < 300:
        error, detail = None, ""
    elif 300 <= status < 400:
        error, detail = "redirect", f"HTTP {status}: redirects are not followed."
    else:
        error, detail = "http_error", f"HTTP {status}."
    location = response.getheader("Location")
    return DeliveryResult(
        error=error,
        elapsed=time.monotonic() - started,
        status=status,
        retry_after=None if error is None else parse_retry_after(response.getheader("Retry-After")),
        body=content,
        body_truncated=truncated,
        location=location[:MAX_LOCATION_CHARS] if error == "redirect" and location else None,
        address=address,
        detail=" ".join(part for part in (detail, read_note) if part),
    )


def _read_capped(response: http.client.HTTPResponse, limit: int) -> tuple[bytes, bool, str]:
    """Up to `limit` bytes of the body, whether there was more, and a note if reading broke off.

    The status has arrived by now and decides the outcome, so a body that stalls or breaks only
    shortens the excerpt.
    """
    content = bytearray()
    try:
        while len(content) <= limit:
            chunk = response.read1(limit + 1 - len(content))
            if not chunk:
                break
            content += chunk
    except TimeoutError:
        return bytes(content[:limit]), True, "The body was cut off at the time limit."
    except (http.client.HTTPException, OSError):
        return bytes(content[:limit]), True, "The body ended early."
    return bytes(content[:limit]), len(content) > limit, ""


class _DeadlineSocket:
    """The socket http.client talks through: every send and receive waits only for the time left
    before the deadline, because a per-operation timeout alone lets a peer that sends one byte at
    a time hold the call forever."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self._sock = sock
        self._deadline = deadline

    def _arm(self) -> None:
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("deadline passed")
        self._sock.settimeout(remaining)

    def sendall(self, data: bytes) -> None:
        view = memoryview(data).cast("B")
        while view:
            self._arm()
            view = view[self._sock.send(view) :]

    def recv_into(self, buffer: memoryview) -> int:
        self._arm()
        return self._sock.recv_into(buffer)

    def makefile(self, mode: str = "rb") -> io.BufferedReader:
        return io.BufferedReader(_DeadlineReader(self))

    def close(self) -> None:
        # post() owns the socket. http.client closes its connection as soon as the headers say
        # "Connection: close", which is before we have read the body.
        pass


class _DeadlineReader(io.RawIOBase):
    def __init__(self, sock: _DeadlineSocket) -> None:
        self._sock = sock

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        return self._sock.recv_into(buffer)


class _PinnedConnection(http.client.HTTPConnection):
    """HTTP/1.1 over the socket post() connected to a checked address. It must never dial by itself,
    which would resolve the host name again."""

    def __init__(self, target: _Target, sock: _DeadlineSocket) -> None:
        super().__init__(target.host, target.port)
        # Makes the Host header omit the port exactly when it is the scheme's default.
        self.default_port = 443 if target.scheme == "https" else 80
        self.sock = cast(socket.socket, sock)

    def connect(self) -> None:
        raise http.client.NotConnected("a pinned connection cannot reconnect")


@cache
def _default_tls_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.set_alpn_protocols(["http/1.1"])
    return context
