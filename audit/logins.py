"""Admin sign-ins. Every sign-in, sign-out and failure is audited with the username tried and the
client's address, never a password. ADMIN_LOGIN_MAX_FAILURES failures for one username, or from one
address, within ADMIN_LOGIN_LOCKOUT_SECONDS lock further attempts out for that long after the last of
them, right password or not. Failures are rows, not cache entries, so that every server process counts
the same ones; rows too old to count are deleted as new ones arrive."""

from __future__ import annotations

import ipaddress
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from .models import AdminLoginFailure
from .services import audit_record

ANONYMOUS = "anonymous"


def client_ip(request: HttpRequest | None) -> str | None:
    """The address the request came from. Behind the TLS proxy (DJANGO_BEHIND_TLS_PROXY) every request
    arrives from the proxy, which appends the address it saw to X-Forwarded-For: the last entry is the
    one no client can forge."""
    if request is None:
        return None
    address = request.META.get("REMOTE_ADDR", "")
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    if settings.SECURE_PROXY_SSL_HEADER and forwarded:
        address = forwarded.rsplit(",", 1)[-1].strip()
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return None


def _normal(username: str | None) -> str:
    return (username or "").strip().lower()[: AdminLoginFailure._meta.get_field("username").max_length]


def _locked_until(failures: QuerySet, now: datetime) -> datetime | None:
    period = timedelta(seconds=settings.ADMIN_LOGIN_LOCKOUT_SECONDS)
    limit = settings.ADMIN_LOGIN_MAX_FAILURES
    latest = list(failures.filter(at__gt=now - 2 * period).order_by("-at").values_list("at", flat=True)[:limit])
    if len(latest) < limit or latest[0] - latest[-1] > period:
        return None
    return latest[0] + period if now < latest[0] + period else None


def login_locked(*, username: str | None, ip: str | None) -> bool:
    now = timezone.now()
    if _locked_until(AdminLoginFailure.objects.filter(username=_normal(username)), now):
        return True
    return ip is not None and _locked_until(AdminLoginFailure.objects.filter(ip=ip), now) is not None


def login_failure_record(*, username: str | None, ip: str | None) -> None:
    now = timezone.now()
    AdminLoginFailure.objects.filter(at__lt=now - 2 * timedelta(seconds=settings.ADMIN_LOGIN_LOCKOUT_SECONDS)).delete()
    AdminLoginFailure.objects.create(at=now, username=_normal(username), ip=ip)
    audit_record(actor=None, actor_label=ANONYMOUS, action="admin.login_failed", object_type="auth.user",
                 after={"username": username or "", "ip": ip})


def login_refused_record(*, username: str | None, ip: str | None) -> None:
    """Attempts refused while locked out are audited but do not count: they never extend a lockout,
    so an attacker cannot keep an administrator out for longer than one lockout period."""
    audit_record(actor=None, actor_label=ANONYMOUS, action="admin.login_locked", object_type="auth.user",
                 after={"username": username or "", "ip": ip})


def on_login_failed(sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None, **kwargs) -> None:
    login_failure_record(username=credentials.get("username"), ip=client_ip(request))


def on_logged_in(sender: Any, request: HttpRequest | None, user: Any, **kwargs) -> None:
    audit_record(actor=user, action="admin.login", obj=user, after={"ip": client_ip(request)})


def on_logged_out(sender: Any, request: HttpRequest | None, user: Any, **kwargs) -> None:
    if user is not None:
        audit_record(actor=user, action="admin.logout", obj=user, after={"ip": client_ip(request)})
