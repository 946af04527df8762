"""Fixtures for driving the Django admin in a real browser: Debian's Chromium (/usr/bin/chromium),
driven by Playwright, against pytest-django's live server, on the test database.

    def test_something(admin_login, staff_user):
        page = admin_login(staff_user("reviewer", groups=("Dispute review",)))
        page.goto("/admin/hashes/hash/")

`page` is a fresh browser context on the live server (relative URLs work); `admin_login` signs a
user in through the real login form; `staff_user` makes a staff user with given permissions and
groups. The live server answers from its own threads, so rows are committed and these tests are
transactional with serialized rollback, like every transactional test here. Without /usr/bin/chromium they skip, unless CONSORTIUM_REQUIRE_BROWSER=1 (CI) makes that a
failure. The browser never reaches anything but the live server: any other request fails the test."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from django.contrib.auth.models import Group, Permission
from django.db import connections

from .helpers import PASSWORD, TIMEOUT_MS, expect, fill_login_form

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.fixture(scope="session")
def chromium() -> str:
    """The browser's path, or a skip (a failure when CONSORTIUM_REQUIRE_BROWSER=1)."""
    missing = []
    if not CHROMIUM.exists():
        missing.append(f"{CHROMIUM} is missing (apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("the playwright package is missing (pip install -r requirements-dev.txt)")
    if missing:
        reason = "browser tests need Chromium and Playwright: " + "; ".join(missing)
        if os.environ.get("CONSORTIUM_REQUIRE_BROWSER") == "1":
            pytest.fail(f"{reason}, and CONSORTIUM_REQUIRE_BROWSER=1 requires them", pytrace=False)
        pytest.skip(reason)
    return str(CHROMIUM)


@pytest.fixture
def browser(chromium: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs its own asyncio loop in this thread and leaves it marked as running
    # between calls, so Django would refuse every ORM call the test makes while the browser is open
    # (SynchronousOnlyOperation). That check guards a connection against being shared by coroutines;
    # here the loop runs only Playwright's coroutines, never Django code, and the test uses the ORM
    # synchronously as any test does. Allowed only while Playwright runs: the variable goes (with
    # monkeypatch) after the loop has stopped, which is checked, so no other test runs with it.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    expect.set_options(timeout=TIMEOUT_MS)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, headless=True)
        try:
            yield launched
        finally:
            launched.close()
            # With a loop marked running, Django keeps this thread's database connections in a slot of
            # their own (asgiref's Local acts as a context variable then): what the test did while the
            # browser was open went through other connections than the fixtures set up before it.
            # Closed here, while that slot is still the one in view; left open, they would last until
            # the process ends and PostgreSQL could not drop the test database.
            connections.close_all()
    assert asyncio._get_running_loop() is None, "Playwright left an event loop running in this thread"


@pytest.fixture
def browser_settings(settings):
    # The live server speaks plain http; production mode (CI's second run) marks cookies Secure,
    # which a browser would not send back over http. tests/test_deploy_settings.py covers them.
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = False
    # Signing in hashes the password on every attempt; the fast hasher keeps that out of the timing.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    return settings


@pytest.fixture
def page(browser, live_server, django_db_serialized_rollback, browser_settings) -> Iterator[Any]:
    """A page in a fresh browser context (no cookies) on the live server. Requests for anything but
    the live server are refused and fail the test, as do script errors and static files that do not
    load (the admin's CSS and JS are part of what is tested). The test is transactional: the database
    is emptied when it ends, and serialized rollback reloads what migrations created (permissions,
    the shipped groups, the label taxonomy) when it starts, with the same ids, whatever ran before."""
    context = browser.new_context(base_url=live_server.url)
    context.set_default_timeout(TIMEOUT_MS)
    problems: list[str] = []

    def only_the_live_server(route: Any) -> None:
        if route.request.url.startswith(live_server.url + "/"):
            route.continue_()
        else:
            problems.append(f"request outside the live server: {route.request.url}")
            route.abort()

    def static_loaded(response: Any) -> None:
        if "/static/" in response.url and response.status >= 400:
            problems.append(f"static file not served: {response.url} ({response.status})")

    context.route("**/*", only_the_live_server)
    opened = context.new_page()
    opened.on("response", static_loaded)
    opened.on("pageerror", lambda error: problems.append(f"script error: {error}"))
    try:
        yield opened
    finally:
        context.close()
    assert not problems, "\n".join(problems)


@pytest.fixture
def staff_user(django_user_model) -> Callable[..., Any]:
    """A staff user (not a superuser) with exactly these permissions ("app.codename") and groups."""

    def make(username: str, *perms: str, groups: tuple[str, ...] = ()) -> Any:
        user = django_user_model.objects.create_user(username, is_staff=True)
        user.user_permissions.add(*[Permission.objects.get(content_type__app_label=perm.split(".")[0],
                                                           codename=perm.split(".")[1]) for perm in perms])
        user.groups.add(*[Group.objects.get(name=group) for group in groups])
        return user

    return make


@pytest.fixture
def admin_login(page) -> Callable[[Any], Any]:
    """Sign a Django user in through the admin's login form; returns the page, on the admin index.
    The user's password is replaced by a known one first."""

    def login(user: Any) -> Any:
        user.set_password(PASSWORD)
        user.save(update_fields=["password"])
        fill_login_form(page, user.get_username(), PASSWORD)
        expect(page.get_by_role("button", name="Log out")).to_be_visible()
        return page

    return login
