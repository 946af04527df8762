"""The real `threatexchange` CLI with the `consortium` extension, run as a member's engineer runs it:
a fresh HOME, `config extensions add`, a collaboration with the member's token in the credentials
file, `fetch` from a live server, then `match` on an image and on a video. A hash retracted after
the first fetch no longer matches after the second."""

from __future__ import annotations

import json
import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

from tests.pytx.needs import vpdq_or_skip

vpdq_or_skip()  # before anything imports pytx's vPDQ

import tx_consortium
from tx_consortium.convert import vpdq_digest

from hashes.models import Hash
from tests.pytx.conftest import COLLAB, make_video, upload_for_signals
from tests.signals.vectors import VECTORS, requires_vectors, requires_video

pytestmark = [requires_vectors, requires_video]

THREATEXCHANGE = Path(sys.executable).with_name("threatexchange")
CLIENT_DIR = Path(tx_consortium.__file__).resolve().parents[1]
PHOTOS = VECTORS / "pdq"
MATCH_LINE = re.compile(rf"^(?P<type>\S+) \S+ \({COLLAB}\) (?P<opinion>\S+) .*\bhash=(?P<hash>\d+)\b")


class ThreatExchangeCli:
    """`threatexchange` in a subprocess whose HOME (so ~/.threatexchange and the credentials file)
    is the test's own."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.env = {"HOME": str(home), "PATH": os.environ.get("PATH", ""), "LANG": "C.UTF-8",
                    "PYTHONPATH": os.pathsep.join(filter(None, [str(CLIENT_DIR), os.environ.get("PYTHONPATH")]))}

    def __call__(self, *args: str) -> str:
        done = subprocess.run([str(THREATEXCHANGE), *args], env=self.env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"threatexchange {' '.join(args)} exited {done.returncode}:\n{done.stderr}"
        return done.stdout

    def matches(self, content_type: str, path: Path) -> list[tuple[str, int, str]]:
        """(signal type, hash id, opinion) per match line of `match --all`."""
        out = self("match", "--all", content_type, str(path))
        found = [MATCH_LINE.match(line) for line in out.splitlines() if line.strip()]
        assert all(found), out
        return sorted((m["type"], int(m["hash"]), m["opinion"]) for m in found)

    def checkpoint(self):
        state = self.home / ".threatexchange" / "fetched" / "consortium" / f"{COLLAB}.state.pickle"
        with state.open("rb") as handle:
            return pickle.load(handle).checkpoint


def hash_ids(signals: list[dict]) -> dict[str, int]:
    """The hash each signal of a submitted statement became, by signal type (a vPDQ by its digest)."""
    def value(signal: dict) -> str:
        return signal.get("value") or vpdq_digest(f["pdq"] for f in sorted(signal["frames"], key=lambda f: f["i"]))

    return {s["type"]: Hash.objects.get(signal_type=s["type"], value=value(s)).pk for s in signals}


def video_matches(ids: dict[str, int]) -> list[tuple[str, int, str]]:
    return sorted([("vpdq", ids["vpdq"], "POSITIVE_CLASS"), ("video_md5", ids["md5"], "POSITIVE_CLASS"),
                   ("video_sha256", ids["sha256"], "POSITIVE_CLASS")])


def test_the_cli_fetches_and_matches_images_and_videos_and_forgets_retracted_hashes(
        server, alice, bob, homeoffice, pipeline, tmp_path):
    photos = {name: upload_for_signals(alice, PHOTOS / name) for name in (
        "bridge-mods/aaa-orig.jpg", "dih/bridge-2-rotate-90.jpg", "dih/bridge-3-rotate-180.jpg")}
    for n, (name, signals) in enumerate(photos.items()):
        alice.submit(alice.statement(signals, content_type="photo", labels=["glorification"], jti=f"photo-{n}"))
    video, other_video = make_video(tmp_path / "video.mp4", seed=1), make_video(tmp_path / "other.mp4", seed=2)
    video_signals = upload_for_signals(alice, video)
    alice.submit(alice.statement(video_signals, content_type="video", labels=["graphic-violence"], jti="video"))
    other_signals = upload_for_signals(homeoffice, other_video)
    homeoffice.submit(homeoffice.statement(other_signals, content_type="video", labels=["graphic-violence"]))
    pipeline()
    bridge_pdq = next(s for s in photos["bridge-mods/aaa-orig.jpg"] if s["type"] == "pdq")
    bob.submit(bob.feedback(bridge_pdq, "disagree", reasons=["newsworthy"]))
    pipeline()
    ids = {name: hash_ids(signals)["pdq"] for name, signals in photos.items()}
    video_ids, other_ids = hash_ids(video_signals), hash_ids(other_signals)

    home = tmp_path / "home"
    home.mkdir()
    credentials = home / ".tx_consortium_credentials"
    credentials.write_text(json.dumps({"token": bob.token}))
    credentials.chmod(0o400)
    tx = ThreatExchangeCli(home)
    # Every signal type the consortium serves is enabled before the first fetch (vPDQ is an extension).
    tx("config", "extensions", "add", "threatexchange.extensions.vpdq.manifest")
    tx("config", "extensions", "add", "tx_consortium")
    tx("config", "collab", "edit", "consortium", COLLAB, "--create", "--server", server)
    tx("fetch")

    # An edit of the photo matches it, disputed by bob; the rotated photo matches its own hash.
    assert tx.matches("photo", PHOTOS / "bridge-mods" / "blur-a-little.jpg") == [
        ("pdq", ids["bridge-mods/aaa-orig.jpg"], "DISPUTED")]
    assert "dispute=open" in tx("match", "photo", str(PHOTOS / "bridge-mods" / "blur-a-little.jpg"))
    assert tx.matches("photo", PHOTOS / "dih" / "bridge-2-rotate-90.jpg") == [
        ("pdq", ids["dih/bridge-2-rotate-90.jpg"], "POSITIVE_CLASS")]
    # The video, hashed by vpdq on the member's side, matches the server's vPDQ and its exact hashes.
    assert tx.matches("video", video) == video_matches(video_ids)
    assert tx.matches("video", other_video) == video_matches(other_ids)
    first = tx.checkpoint()

    alice.submit(alice.retraction("video"), alice.retraction("photo-1"))
    pipeline()
    tx("fetch")

    assert tx.matches("video", video) == []
    assert tx.matches("photo", PHOTOS / "dih" / "bridge-2-rotate-90.jpg") == []
    assert tx.matches("video", other_video) == video_matches(other_ids)
    assert tx.matches("photo", PHOTOS / "bridge-mods" / "blur-a-little.jpg") == [
        ("pdq", ids["bridge-mods/aaa-orig.jpg"], "DISPUTED")]
    second = tx.checkpoint()
    assert second.next_after > first.next_after and second.progress_ts >= first.progress_ts > 0
