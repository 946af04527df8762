"""The statistics are exact: what the scenario did, counted by the test from its own record, is
what GET /api/v1/stats/ answers, figure for figure."""

from __future__ import annotations

import pytest

from hashes.models import Hash

from .scenario import expected, play


def stats(actor, query: str) -> dict:
    response = actor.api.get(f"/api/v1/stats/?{query}")
    assert response.status_code == 200, response.content
    body = response.json()
    body.pop("generated_at")
    return body


@pytest.mark.parametrize("first, last", [("2025-01", "2025-03"), ("2024-12", "2025-04"), ("2025-02", "2025-02")])
def test_every_figure_is_what_the_members_and_administrators_did(world, cast, first, last):
    play(world, hidden=True)
    months = [m for m in ["2024-12", "2025-01", "2025-02", "2025-03", "2025-04"] if first <= m <= last]

    assert stats(cast["charlie"], f"from={first}&to={last}&period=month") == expected(world.record, months)


def test_the_scenario_reaches_every_figure(world, cast):
    """Guards the test above against a scenario that silently stopped exercising something."""
    play(world, hidden=True)
    body = stats(cast["charlie"], "from=2025-01&to=2025-03")
    total = body["total"]

    assert all(total["all_labels"]["hashes"].values())
    assert all(total["all_labels"]["disputes"]["resolved"].values())
    assert all(total["all_labels"]["contributions"].values())
    assert total["unlabelled"]["hashes"]["added"] > 0
    assert all(total["group_only"]["hashes"].values()) and total["group_only"]["disputes"]["resolved"]
    march = body["periods"][2]["all_labels"]["disputes"]["median_resolution_seconds"]
    assert isinstance(march["removed"], float)  # the mean of two
    assert Hash.objects.get(value=f"{3:032x}").state == "active"  # kept live by the group alone
    # Hash 5 was unlabelled when added in January; relabelled since, it counts under its new label.
    january = body["periods"][0]
    assert january["by_label"]["instruction"]["hashes"]["added"] == 1
    # Labels only the group gave never appear.
    assert "imminent-threat" not in body["total"]["by_label"]


def test_per_member_figures_appear_only_when_enabled(world, cast, settings):
    play(world, hidden=True)
    months = ["2025-01", "2025-02", "2025-03"]
    plain = cast["charlie"].api.get("/api/v1/stats/?from=2025-01&to=2025-03").content.decode()
    assert "members" not in plain and not any(f'"{slug}"' in plain for slug in cast)

    settings.TRANSPARENCY_PER_MEMBER = True
    body = stats(cast["charlie"], "from=2025-01&to=2025-03")

    assert body == expected(world.record, months, per_member=True)
    assert {m["member"] for m in body["total"]["members"]} == {"alice", "bob", "charlie", "homeoffice", "watchdog"}
