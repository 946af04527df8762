"""What browser tests share besides fixtures: the login form, the known password, Playwright's
`expect` (None without Playwright: the `chromium` fixture then skips or fails every browser test
before one runs, so that collecting them never needs the package)."""

from __future__ import annotations

from typing import Any

try:
    from playwright.sync_api import expect
except ImportError:
    expect = None

PASSWORD = "a browser-test passphrase"
# Long enough for a loaded CI machine, short enough that a missing element fails in seconds.
TIMEOUT_MS = 5_000


def fill_login_form(page: Any, username: str, password: str) -> None:
    page.goto("/admin/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
