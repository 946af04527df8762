"""No sharing group's detail reaches the statistics (DESIGN.md, Security rules): the same scenario runs
twice, the second time with the "trusted" group's statements, verdicts and disputes among the
consortium's (group hashes, the group corroborating consortium hashes and keeping one live after
the consortium retracted it, labels only the group uses, a group member's consortium-wide verdict on
hashes outsiders cannot see, group disputes resolved and closed by a removal). Every figure but the
group-only totals must be the same, in the API and on the public page."""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from tests.published import reset_published

from .scenario import Clock, World, play


def reset() -> None:
    reset_published()


def observe(charlie, anonymous) -> dict[str, Any]:
    """Everything anyone outside the group can read of the statistics, group totals set apart."""
    seen = {
        "api": charlie.api.get("/api/v1/stats/?from=2024-12&to=2025-04").json(),
        "public": anonymous.get("/transparency.json").json(),
    }
    groups = []
    for body in seen.values():
        body.pop("generated_at")
        for block in (*body["periods"], body["total"]):
            groups.append(block.pop("group_only"))
    return {"seen": seen, "groups": groups}


def test_what_outsiders_read_is_the_same_whether_or_not_the_group_shares(
        cast, pipeline, monkeypatch, anonymous, settings):
    settings.TRANSPARENCY_PUBLIC, settings.TRANSPARENCY_PUBLIC_MONTHS = True, 5
    runs = []
    for hidden in (False, True):
        clock = Clock()
        monkeypatch.setattr(timezone, "now", clock)
        play(World(cast, clock, pipeline), hidden=hidden)
        runs.append(observe(cast["charlie"], anonymous))
        reset()
    alone, interleaved = runs

    assert interleaved["seen"] == alone["seen"]
    assert interleaved["seen"]["api"]["total"]["all_labels"]["hashes"]["added"] > 0
    assert not any(value for group in alone["groups"] for value in flatten(group))
    assert any(value for group in interleaved["groups"] for value in flatten(group))


def flatten(node: Any) -> list[int]:
    return [v for child in node.values() for v in flatten(child)] if isinstance(node, dict) else [node]
