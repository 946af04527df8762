"""The `consortium` python-threatexchange exchange against a live server.

pytest-django's live server (plain http, see the root conftest) answers real HTTP from its own
threads, so these tests are transactional with serialized rollback, like the browser tests. Statements
are verified and published as they commit (Celery runs eagerly in tests); `pipeline()` finishes
anything left."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from consortium_client import keys
from threatexchange.exchanges import fetch_state
from tx_consortium.exchange import ConsortiumSignalExchangeAPI
from tx_consortium.state import ConsortiumCheckpoint, ConsortiumCollabConfig, ConsortiumCredentials

from tests.actors import Actor

# HMA requires collaboration names in UPPER_WITH_UNDERSCORE; the CLI takes any.
COLLAB = "CONSORTIUM_TEST"


@pytest.fixture
def server(live_server, transactional_db, django_db_serialized_rollback) -> str:
    return live_server.url


def credentials_of(actor: Actor, *, signing: bool = True) -> ConsortiumCredentials:
    """The member's token and, to report opinions, its private signing key with its approved kid."""
    key = json.dumps(keys.private_jwk(actor.signer.private_key, actor.signer.kid)) if signing else None
    return ConsortiumCredentials(token=actor.token, signing_key=key)


@pytest.fixture
def exchange_for(server: str) -> Callable[..., ConsortiumSignalExchangeAPI]:
    def make(actor: Actor, *, signing: bool = True) -> ConsortiumSignalExchangeAPI:
        collab = ConsortiumCollabConfig(name=COLLAB, server=server)
        return ConsortiumSignalExchangeAPI.for_collab(collab, credentials_of(actor, signing=signing))

    return make


def fetch(api: ConsortiumSignalExchangeAPI, stored: dict[int, Any], checkpoint: ConsortiumCheckpoint | None = None
          ) -> tuple[list[fetch_state.FetchDelta], ConsortiumCheckpoint | None]:
    """Fetch everything after `checkpoint` into `stored` (merged as the CLI merges), returning the
    deltas and the last checkpoint."""
    deltas = list(api.fetch_iter([], checkpoint))
    for delta in deltas:
        api.naive_fetch_merge(stored, delta.updates)
    return deltas, (deltas[-1].checkpoint if deltas else checkpoint)


def upload_for_signals(actor: Actor, path: Path) -> list[dict[str, Any]]:
    """The signals the server computes for a file (`POST hash/`), as a member submits them."""
    response = actor.api.post("/api/v1/hash/", {"file": SimpleUploadedFile(path.name, path.read_bytes())},
                              format="multipart")
    assert response.status_code == 200, response.content
    return response.json()["signals"]


def make_video(path: Path, seed: int, *, seconds: int = 3, fps: int = 10, side: int = 256) -> Path:
    """A short MPEG-4 video made with PyAV: a grid of coloured blocks that shifts by one block a
    second, so each second is a different frame and every frame has PDQ quality 100."""
    import av

    blocks = np.random.default_rng(seed).integers(0, 256, size=(side // 32, side // 32, 3), dtype=np.uint8)
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width = stream.height = side
        stream.pix_fmt = "yuv420p"
        for n in range(seconds * fps):
            pixels = np.kron(np.roll(blocks, n // fps, axis=1), np.ones((32, 32, 1), dtype=np.uint8))
            for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
