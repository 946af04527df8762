"""`manage.py benign`: a file is imported whole or not at all (a bad entry is reported with its line
and code, and nothing changes), importing it again changes nothing, entries are listed and
deactivated; every change is audited with the actor `operator`."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from audit.models import AuditEvent
from hashes.models import Dispute, Event
from suppression.models import BenignEntry
from tests.factories import BASE_PDQ, md5

GOOD_CSV = f"type,value,reason\nmd5,{md5(7)['value']},empty file\npdq,{BASE_PDQ.upper()},blank frame\n"


def benign(*args: str) -> str:
    out = StringIO()
    call_command("benign", *args, stdout=out)
    return out.getvalue()


def state() -> dict:
    return {
        "entries": list(BenignEntry.objects.order_by("pk").values_list(
            "signal_type", "value", "reason", "active", "updated_at", "covered_at")),
        "audit": AuditEvent.objects.count(), "disputes": Dispute.objects.count(), "events": Event.objects.count(),
    }


@pytest.fixture
def write(tmp_path):
    def write(name: str, content: str | bytes) -> str:
        path = tmp_path / name
        path.write_bytes(content.encode() if isinstance(content, str) else content)
        return str(path)

    return write


def test_a_good_file_is_imported_and_audited_and_disputes_what_it_covers(alice, pipeline, write):
    alice.submit(alice.statement([md5(7)]))
    pipeline()

    out = benign("import", write("benign.csv", GOOD_CSV))

    assert out.strip() == "2 added, 0 reactivated, 0 already listed; 1 disputes opened"
    assert sorted(BenignEntry.objects.values_list("signal_type", "value", "reason", "added_by_label")) == [
        ("md5", md5(7)["value"], "empty file", "operator"), ("pdq", BASE_PDQ, "blank frame", "operator")]
    created = AuditEvent.objects.filter(action="benignentry.create")
    assert {e.actor_label for e in created} == {"operator"} and created.count() == 2
    assert {e.after["value"] for e in created} == {md5(7)["value"], BASE_PDQ}
    summary = AuditEvent.objects.get(action="benignentry.import")
    assert (summary.after["entries"], summary.after["added"]) == (2, 2)
    assert [d.reasons for d in Dispute.objects.all()] == [["suppression_list"]]


def test_importing_the_same_file_twice_changes_nothing_the_second_time(alice, pipeline, write):
    alice.submit(alice.statement([md5(7)]))
    pipeline()
    path = write("benign.csv", GOOD_CSV)
    benign("import", path)
    before = state()

    out = benign("import", path)

    assert out.strip() == "0 added, 0 reactivated, 2 already listed; 0 disputes opened"
    assert state() == before


def test_a_file_with_a_bad_entry_is_refused_whole_with_each_problem_and_changes_nothing(alice, pipeline, write):
    alice.submit(alice.statement([md5(7)]))
    pipeline()
    before = state()
    text = GOOD_CSV + "sha1,abc,\nmd5,0123,too short\n"

    with pytest.raises(CommandError) as refused:
        benign("import", write("benign.csv", text))

    assert str(refused.value).splitlines() == [
        "rows_invalid: 2 of 4 entries are invalid; nothing was imported.",
        "line 4: type_invalid: type must be one of pdq, vpdq, md5, sha256.",
        "line 5: value_invalid: a md5 value is 32 hexadecimal characters.",
    ]
    assert state() == before


def test_a_json_file_is_imported_with_its_format_given_or_guessed(write, db):
    rows = [{"type": "md5", "value": md5(7)["value"], "reason": "empty file"}]

    benign("import", write("entries.txt", json.dumps(rows)), "--format", "json")
    benign("import", write("more", json.dumps([{**rows[0], "value": md5(8)["value"]}])))

    assert BenignEntry.objects.count() == 2


def test_files_past_the_bounds_are_refused(write, settings, db):
    settings.BENIGN_IMPORT_MAX_ROWS = 1
    with pytest.raises(CommandError, match="^too_many_rows: "):
        benign("import", write("benign.csv", GOOD_CSV))
    settings.BENIGN_IMPORT_MAX_ROWS, settings.BENIGN_IMPORT_MAX_BYTES = 10, len(GOOD_CSV) - 1
    with pytest.raises(CommandError, match="^file_too_large: "):
        benign("import", write("benign.csv", GOOD_CSV))
    with pytest.raises(CommandError, match="^file_unreadable: "):
        benign("import", "/nonexistent/benign.csv")
    assert not BenignEntry.objects.exists()


def test_list_deactivate_and_reimport_to_reactivate(write, db):
    path = write("benign.csv", GOOD_CSV)
    benign("import", path)

    assert benign("deactivate", f"md5:{md5(7)['value'].upper()}").strip() == "1 deactivated"
    listed = benign("list").splitlines()
    inactive = json.loads(benign("list", "--inactive", "--format", "json"))
    reimported = benign("import", path).strip()

    assert listed[0] == "type,value,reason,active,added_by,added_at"
    assert [line.split(",")[:4] for line in listed[1:]] == [["pdq", BASE_PDQ, "blank frame", "True"]]
    assert [(e["value"], e["active"]) for e in inactive] == [(md5(7)["value"], False)]
    assert reimported == "0 added, 1 reactivated, 1 already listed; 0 disputes opened"
    actions = list(AuditEvent.objects.filter(object_type="suppression.benignentry").order_by("id")
                   .values_list("action", flat=True))
    assert actions[-2:] == ["benignentry.deactivate", "benignentry.reactivate"]


def test_deactivating_an_unknown_entry_changes_nothing(write, db):
    benign("import", write("benign.csv", GOOD_CSV))
    before = state()

    with pytest.raises(CommandError, match="^entry_unknown: .*md5:" + md5(9)["value"]):
        benign("deactivate", f"md5:{md5(7)['value']}", f"md5:{md5(9)['value']}")
    with pytest.raises(CommandError, match="^value_invalid: "):
        benign("deactivate", "md5:xyz")

    assert state() == before
