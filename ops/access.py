"""Who may read /metrics (and a Celery worker's exporter): a caller presenting
`Authorization: Bearer <METRICS_TOKEN>`, or one connecting directly from an address in
METRICS_ALLOWED_IPS. Neither configured: nobody.

The address is the connection's own peer, never X-Forwarded-For: behind the TLS proxy every request
comes from the proxy's address, so a request that came through a proxy (it carries forwarding
headers) is never let in by address, only by token. Otherwise a scraper allowed on 127.0.0.1 beside
a proxy on 127.0.0.1 would open the metrics to the whole internet."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections.abc import Mapping, Sequence

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# WSGI environ keys that only a proxy (or a client pretending to be behind one) sends.
FORWARDING_HEADERS = ("HTTP_X_FORWARDED_FOR", "HTTP_X_FORWARDED_PROTO", "HTTP_X_FORWARDED_HOST",
                      "HTTP_FORWARDED", "HTTP_X_REAL_IP")


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def parse_networks(value: Sequence[str]) -> tuple[IPNetwork, ...]:
    """CIDRs (or single addresses); ValueError names the one that is not."""
    networks = []
    for item in value:
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(f"{item!r} is not an IP address or CIDR network") from None
    return tuple(networks)


def bearer_matches(authorization: str, expected_digest: str) -> bool:
    scheme, _, token = authorization.partition(" ")
    if not expected_digest or scheme.lower() != "bearer" or not token.strip():
        return False
    return hmac.compare_digest(token_digest(token.strip()), expected_digest)


def peer_allowed(environ: Mapping[str, str], networks: Sequence[IPNetwork]) -> bool:
    if not networks or any(environ.get(header) for header in FORWARDING_HEADERS):
        return False
    try:
        address = ipaddress.ip_address(environ.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return any(address in network for network in networks)


def metrics_allowed(environ: Mapping[str, str], *, token_sha256: str, networks: Sequence[IPNetwork]) -> bool:
    """`environ`: a WSGI environ (or Django's request.META)."""
    return bearer_matches(environ.get("HTTP_AUTHORIZATION", ""), token_sha256) or peer_allowed(environ, networks)
