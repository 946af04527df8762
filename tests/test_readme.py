"""README.md stays a document a person can read, and its configuration table stays true: every
environment variable the server reads is documented there, and every one documented is read."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
# Where the server and its processes read their environment (tests and benchmarks set theirs).
SOURCES = ["consortium", "hashes", "members", "distribution", "audit", "ops", "gunicorn.conf.py", "manage.py"]
READ_CALL = re.compile(
    r"""\b(?:env|env_bool|env_int|env_list|env_rate|os\.environ\.get|os\.getenv|os\.environ\.setdefault)\(\s*["']([A-Z][A-Z0-9_]+)["']"""
    r"""|os\.environ\[\s*["']([A-Z][A-Z0-9_]+)["']\s*\]"""
)
# Variables that select the settings module itself, not a setting.
NOT_SETTINGS = {"DJANGO_SETTINGS_MODULE"}


def readme() -> str:
    return README.read_text(encoding="utf-8")


def python_files() -> list[Path]:
    files = []
    for name in SOURCES:
        path = ROOT / name
        files += [path] if path.is_file() else [p for p in path.rglob("*.py") if "migrations" not in p.parts]
    return files


def variables_read() -> set[str]:
    found = set()
    for path in python_files():
        for match in READ_CALL.finditer(path.read_text(encoding="utf-8")):
            found.add(match.group(1) or match.group(2))
    return found - NOT_SETTINGS


def configuration_section() -> str:
    text = readme()
    start = text.index("\n## Configuration\n")
    end = text.index("\n## ", start + 1)
    return text[start:end]


def variables_documented() -> set[str]:
    """The first column of the configuration table: one or more `NAME`s per row."""
    names = set()
    for line in configuration_section().splitlines():
        if line.startswith("| `"):
            first_cell = line.split("|")[1]
            names.update(re.findall(r"`([A-Z][A-Z0-9_]+)`", first_cell))
    return names


def test_the_readme_is_a_readable_size_and_names_both_commands():
    assert README.stat().st_size < 100_000
    text = readme()
    assert "make run" in text and "make test" in text
    bench = (README.parent / "bench" / "README.md").read_text()
    # no paragraph pasted over and over (the figures live in bench/README.md)
    assert (text + bench).count("Distribution alone (published to delivered)") == 1


def test_the_makefile_defines_the_two_readme_commands():
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^run:", makefile, re.M) and re.search(r"^test:", makefile, re.M)


def test_every_environment_variable_read_is_documented():
    undocumented = variables_read() - variables_documented()
    assert not undocumented, f"read but missing from README's Configuration table: {sorted(undocumented)}"


def test_every_documented_environment_variable_is_read():
    unread = variables_documented() - variables_read()
    assert not unread, f"documented in README's Configuration table but read nowhere: {sorted(unread)}"


def test_the_scan_finds_variables_in_each_way_they_are_read():
    """The two drift tests are only as good as this scan."""
    read = variables_read()
    assert {"DATABASE_URL", "DJANGO_DEBUG", "FEED_MAX_LIMIT", "WEBHOOK_RETRY_SCHEDULE", "GUNICORN_BIND",
            "NUMBA_CACHE_DIR", "WEBHOOK_SECRET_KEYS_FILE", "THROTTLE_SUBMIT"} <= read
