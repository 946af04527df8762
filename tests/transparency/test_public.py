"""The public page /transparency/ and /transparency.json: there only while TRANSPARENCY_PUBLIC is
true, for anyone, self-contained (nothing loaded from anywhere), the same figures as the API, and
served from a cache so that a flood of anonymous readers never reaches the database."""

from __future__ import annotations

import json
from html.parser import HTMLParser

import pytest

from .scenario import expected, play

MONTHS = ["2024-12", "2025-01", "2025-02", "2025-03", "2025-04"]


@pytest.fixture
def public(settings):
    settings.TRANSPARENCY_PUBLIC = True
    settings.TRANSPARENCY_PUBLIC_MONTHS = len(MONTHS)


class Page(HTMLParser):
    """The page's tables (rows of cell texts) and anything that could fetch from elsewhere."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self.fetching: list[str] = []
        self.cell: list[str] | None = None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "link", "img", "iframe", "object", "embed", "image", "use"):
            self.fetching.append(tag)
        self.fetching += [f"{tag} {name}" for name, value in attrs if name in ("src", "srcset", "xlink:href")]
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self.cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self.cell is not None:
            self.tables[-1][-1].append("".join(self.cell).strip())
            self.cell = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell.append(data)


def test_nothing_is_public_unless_enabled(anonymous, db, settings):
    assert settings.TRANSPARENCY_PUBLIC is False  # the default

    page = anonymous.get("/transparency/")
    data = anonymous.get("/transparency.json")

    assert page.status_code == 404 and b"<table" not in page.content
    assert data.status_code == 404 and data.json()["error"]["code"] == "not_found"


def test_the_public_json_is_the_api_figures_for_the_last_months(world, cast, anonymous, public):
    play(world, hidden=True)  # the clock ends in April 2025

    body = anonymous.get("/transparency.json").json()
    body.pop("generated_at")
    from_api = cast["charlie"].api.get("/api/v1/stats/?from=2024-12&to=2025-04").json()
    from_api.pop("generated_at")

    assert body == expected(world.record, MONTHS) == from_api


def test_the_page_shows_the_figures_in_tables_and_charts_drawn_here(world, anonymous, public):
    play(world, hidden=True)
    truth = expected(world.record, MONTHS)

    response = anonymous.get("/transparency/")

    assert response.status_code == 200 and response["Content-Type"] == "text/html; charset=utf-8"
    assert response["Content-Security-Policy"].startswith("default-src 'none'")
    html = response.content.decode()
    page = Page(html)
    assert page.fetching == [] and "http:" not in html and "https:" not in html and "url(" not in html
    assert html.count("<svg") == 3
    months_table = page.tables[0]
    rows = {row[0]: row[1:] for row in months_table[2:]}
    for period in truth["periods"] + [{"period": "All labels", "all_labels": truth["total"]["all_labels"]}]:
        figures = period["all_labels"]
        shown = rows[period["period"]]
        hashes = [figures["hashes"][k] for k in ("added", "retracted_by_submitters", "removed_by_dispute")]
        assert shown[:4] == [str(n) for n in (*hashes, figures["disputes"]["opened"])]
        assert shown[4:7] == [str(figures["disputes"]["resolved"][k]) for k in ("upheld", "relabelled", "removed")]
        assert shown[8:] == [str(figures["contributions"][k]) for k in ("platform", "government", "ngo")]
    labels_table = {row[0]: row[1] for row in page.tables[1][2:]}
    assert labels_table["Instruction"] == str(truth["total"]["by_label"]["instruction"]["hashes"]["added"])
    assert "Imminent threat" not in html  # a label only the group used
    assert [row[0] for row in page.tables[2][1:]] == MONTHS + ["All months"]


def test_per_member_figures_are_public_only_when_enabled(world, cast, anonymous, public, settings):
    play(world, hidden=True)
    plain = anonymous.get("/transparency/").content.decode() + anonymous.get("/transparency.json").content.decode()
    assert not any(slug in plain for slug in cast)

    settings.TRANSPARENCY_PER_MEMBER = True
    page = Page(anonymous.get("/transparency/").content.decode())
    data = anonymous.get("/transparency.json").json()

    members = expected(world.record, MONTHS, per_member=True)["total"]["members"]
    assert data["total"]["members"] == members
    assert page.tables[-1][1:] == [[m["member"], m["kind"], str(m["contributions"])] for m in members]


def test_a_flood_of_readers_is_served_from_the_cache_without_the_database(
        world, anonymous, public, django_assert_num_queries):
    world.clock.set("2025-04-02T10:00:00")
    world.share("alice", 1, ("recruitment",))
    page, data = anonymous.get("/transparency/").content, anonymous.get("/transparency.json").content
    world.share("alice", 2, ("recruitment",))

    with django_assert_num_queries(0):
        for query in ("", "?from=2000-01&to=2025-04", "?period=year", "?x=1"):
            assert anonymous.get(f"/transparency/{query}").content == page
            assert anonymous.get(f"/transparency.json{query}").content == data
    assert json.loads(data)["total"]["all_labels"]["hashes"]["added"] == 1
    assert anonymous.get("/transparency.json")["Cache-Control"] == "public, max-age=60"


def test_only_reading_is_allowed(anonymous, public, db):
    assert anonymous.head("/transparency/").status_code == 200
    assert anonymous.post("/transparency/").status_code == 405
    assert anonymous.post("/transparency.json").status_code == 405
