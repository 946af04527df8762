"""`consortium submit`: signed statements from files, directories, CSV and JSONL, in batches, and never
twice: not after a crash mid-run (the process killed), not when acknowledgements were lost, not even
when the state file itself is lost."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

from PIL import Image

from hashes.models import Hash, Incident, Statement
from tests.client.conftest import TIMEOUT, cli_env, command
from tests.signals.vectors import VECTORS, requires_vectors


def md5_lines(path: Path, count: int, start: int = 0) -> Path:
    path.write_text("".join(json.dumps({"signals": [{"type": "md5", "value": f"{start + n:032x}"}]}) + "\n"
                            for n in range(count)))
    return path


def alice_statements() -> list[str]:
    return list(Statement.objects.filter(member__slug="alice").values_list("jti", flat=True))


def state_rows(path: Path) -> dict[str, tuple[str, str | None]]:
    with sqlite3.connect(path) as db:
        return {jti: (state, sid) for jti, state, sid in db.execute("SELECT jti, state, submission_id FROM statements")}


def test_a_run_killed_mid_way_resumes_and_submits_nothing_twice(cli, server, alice, key_file, tmp_path):
    inputs = md5_lines(tmp_path / "hashes.jsonl", 3000)
    state = tmp_path / "submit.sqlite3"
    args = ["--json", "submit", "--jsonl", str(inputs), "--label", "glorification", "--batch-size", "50",
            "--state", str(state)]
    env = cli_env(tmp_path, CONSORTIUM_URL=server, CONSORTIUM_TOKEN=alice.token,
                  CONSORTIUM_KEY_FILE=str(key_file(alice)))
    running = subprocess.Popen(command(*args), env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + TIMEOUT
    accepted_at_kill = 0
    while time.monotonic() < deadline and running.poll() is None:
        if state.exists():
            try:
                accepted_at_kill = sum(1 for s, _ in state_rows(state).values() if s == "accepted")
            except sqlite3.OperationalError:
                accepted_at_kill = 0  # the file is being created
            if accepted_at_kill >= 100:
                running.send_signal(signal.SIGKILL)
                break
        time.sleep(0.005)
    running.communicate(timeout=TIMEOUT)
    assert running.returncode == -signal.SIGKILL, "the run finished before it could be killed mid-way"
    assert 100 <= accepted_at_kill < 3000

    resumed = cli(alice, *args)

    assert resumed.code == 0, resumed.stderr
    summary = resumed.json
    assert summary["accepted"] + summary["already_accepted"] == 3000
    assert summary["already_accepted"] >= 100 and summary["rejected"] == 0
    jtis = alice_statements()
    assert len(jtis) == len(set(jtis)) == 3000, "a statement was submitted twice"
    assert all(jti.startswith("cli-") for jti in jtis)
    assert Hash.objects.count() == 3000

    again = cli(alice, *args)
    assert again.code == 0 and again.json["sent"] == 0 and again.json["already_accepted"] == 3000
    assert len(alice_statements()) == 3000


def test_lost_acknowledgements_are_resent_as_the_same_bytes_and_get_the_same_submissions(cli, alice, tmp_path):
    inputs = md5_lines(tmp_path / "hashes.jsonl", 40)
    state = tmp_path / "submit.sqlite3"
    args = ["--json", "submit", "--jsonl", str(inputs), "--batch-size", "10", "--state", str(state)]
    first = cli(alice, *args, "--progress")
    assert first.code == 0, first.stderr
    assert "\rsubmit [" in first.stderr and "40/40 100%" in first.stderr  # forced on, though not a terminal
    ids = {r["jti"]: r["id"] for r in first.json["results"]}
    # A crash after the server took half the batches and before the answers were recorded.
    with sqlite3.connect(state) as db:
        db.execute("UPDATE statements SET state = 'signed', submission_id = NULL WHERE rowid % 2 = 0")

    resumed = cli(alice, *args)

    assert resumed.code == 0, resumed.stderr
    assert resumed.json["sent"] == 20 and resumed.json["accepted"] == 20 and resumed.json["already_accepted"] == 20
    assert {r["jti"]: r["id"] for r in resumed.json["results"]} == ids
    assert Statement.objects.filter(member__slug="alice").count() == 40


def test_with_the_state_file_lost_the_same_inputs_are_refused_not_repeated(cli, alice, tmp_path):
    inputs = md5_lines(tmp_path / "hashes.jsonl", 5)
    assert cli(alice, "submit", "--jsonl", str(inputs), "--state", str(tmp_path / "one.sqlite3")).code == 0
    time.sleep(1.1)  # signed in another second: other bytes under the same statement ids

    again = cli(alice, "--json", "submit", "--jsonl", str(inputs), "--state", str(tmp_path / "two.sqlite3"))

    assert again.code == 2
    assert {r["error"]["code"] for r in again.json["results"]} == {"jti_conflict"}
    assert Statement.objects.filter(member__slug="alice").count() == 5


@requires_vectors
def test_files_directories_csv_and_jsonl_with_labels_incident_and_share(cli, alice, bob, trusted_group, tmp_path):
    folder = tmp_path / "removed"
    (folder / "sub").mkdir(parents=True)
    (folder / "bridge.jpg").write_bytes((VECTORS / "pdq" / "bridge-mods" / "aaa-orig.jpg").read_bytes())
    Image.open(VECTORS / "pdq" / "modes" / "original.jpg").rotate(90, expand=True).save(folder / "sub" / "turned.png")
    (folder / ".DS_Store").write_bytes(b"junk")
    (folder / "sub" / "copy.jpg").write_bytes((folder / "bridge.jpg").read_bytes())  # the same bytes: one statement
    rows = tmp_path / "hashes.csv"
    rows.write_text("type,value,quality,labels,note\n"
                    f"pdq,{'ab' * 32},90,recruitment,from a partner\n"
                    f"md5,{'cd' * 16},,,\n"
                    f"md5,{'zz' * 16},,,\n")

    Incident.objects.create(slug="halle", name="Halle")

    done = cli(alice, "--json", "submit", str(folder), "--csv", str(rows), "--label", "glorification",
               "--incident", "halle", "--share", "trusted", "--state", str(tmp_path / "s.sqlite3"))

    assert done.code == 1, done.stderr  # the malformed row
    summary = done.json
    assert summary["accepted"] == 4 and summary["duplicate_inputs"] == 1 and summary["input_errors"] == 1
    assert summary["errors"][0]["source"].endswith("hashes.csv:4")
    assert summary["errors"][0]["error"]["code"] == "signal_value_invalid"
    by_source = {Path(r["source"]).name: r for r in summary["results"]}
    photo = Statement.objects.get(jti=by_source["bridge.jpg"]["jti"])
    assert photo.state == "published" and photo.content_type == "photo" and photo.share_group.slug == "trusted"
    assert [s["type"] for s in photo.signals] == ["pdq", "md5", "sha256"]
    assert set(photo.labels.values_list("slug", flat=True)) == {"glorification"}
    row = Statement.objects.get(jti=by_source["hashes.csv:2"]["jti"])
    assert set(row.labels.values_list("slug", flat=True)) == {"glorification", "recruitment"}
    assert row.content_type == "photo" and row.note == "from a partner" and row.incident.slug == "halle"
    assert Statement.objects.get(jti=by_source["hashes.csv:3"]["jti"]).content_type == "file"


@requires_vectors
def test_a_file_and_the_line_consortium_hash_printed_for_it_are_one_statement(cli, alice, tmp_path):
    picture = VECTORS / "pdq" / "bridge-mods" / "aaa-orig.jpg"
    state = ["--state", str(tmp_path / "s.sqlite3"), "--label", "glorification"]
    assert cli(alice, "submit", str(picture), *state).code == 0
    hashed = cli(alice, "hash", str(picture))
    (tmp_path / "hashed.jsonl").write_text(hashed.stdout)

    again = cli(alice, "--json", "submit", "--jsonl", str(tmp_path / "hashed.jsonl"), *state)

    assert again.code == 0 and again.json["sent"] == 0 and again.json["already_accepted"] == 1
    assert Statement.objects.count() == 1


def test_a_pending_key_is_refused_before_anything_is_signed(cli, alice, tmp_path):
    alice.key.state = "pending"
    alice.key.save(update_fields=["state"])
    inputs = md5_lines(tmp_path / "hashes.jsonl", 3)

    done = cli(alice, "--json", "submit", "--jsonl", str(inputs), "--state", str(tmp_path / "s.sqlite3"))

    assert done.code == 1 and done.error["code"] == "key_not_active"
    assert not Statement.objects.exists()


def test_wait_reports_statements_rejected_at_verification(cli, alice, tmp_path):
    inputs = md5_lines(tmp_path / "hashes.jsonl", 2)

    done = cli(alice, "--json", "submit", "--jsonl", str(inputs), "--label", "no-such-label", "--wait",
               "--state", str(tmp_path / "s.sqlite3"))

    assert done.code == 2
    assert {r["verification"]["rejection_code"] for r in done.json["results"]} == {"label_unknown"}
