"""A Python client generated from the served schema by openapi-python-client works unmodified:
it submits signed statements, reads the feed, matches signals and a file, and gets each error as
the typed body the schema describes. Generation is offline (a subprocess on the schema file)."""

from __future__ import annotations

import importlib
import io
import json
import subprocess
import sys
import uuid
from pathlib import Path
from types import ModuleType
from typing import Iterator

import numpy as np
import pytest
from PIL import Image

from tests.actors import Actor
from tests.factories import md5

from .conftest import served_schema

PACKAGE = "consortium_api"
CONFIG = f"post_hooks: []\nproject_name_override: consortium-api\npackage_name_override: {PACKAGE}\n"


@pytest.fixture
def api(server: str, alice: Actor, tmp_path: Path) -> Iterator[ModuleType]:
    """The generated package, imported; `api.client` is an AuthenticatedClient for alice."""
    (tmp_path / "schema.json").write_text(json.dumps(served_schema(server, alice)))
    (tmp_path / "config.yaml").write_text(CONFIG)
    done = subprocess.run(
        [sys.executable, "-m", "openapi_python_client", "generate", "--path", "schema.json", "--config",
         "config.yaml", "--meta", "none", "--output-path", PACKAGE],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Warning" not in done.stdout + done.stderr, done.stdout + done.stderr
    sys.path.insert(0, str(tmp_path))
    try:
        package = importlib.import_module(PACKAGE)
        importlib.import_module(f"{PACKAGE}.models")
        importlib.import_module(f"{PACKAGE}.types")
        package.client = package.AuthenticatedClient(base_url=server, token=alice.token, raise_on_unexpected_status=True)
        yield package
    finally:
        sys.path.remove(str(tmp_path))
        for name in [n for n in sys.modules if n == PACKAGE or n.startswith(f"{PACKAGE}.")]:
            del sys.modules[name]


def operation(api: ModuleType, tag: str, name: str) -> ModuleType:
    return importlib.import_module(f"{api.__name__}.api.{tag}.{name}")


def png() -> bytes:
    """A picture with enough detail for a PDQ of full quality."""
    pixels = np.random.default_rng(11).integers(0, 256, (96, 128, 3), dtype=np.uint8)
    image = io.BytesIO()
    Image.fromarray(pixels).save(image, format="PNG")
    return image.getvalue()


def test_every_generated_module_imports(api):
    import pkgutil

    names = [m.name for m in pkgutil.walk_packages(api.__path__, f"{api.__name__}.")]
    for name in names:
        importlib.import_module(name)
    assert f"{api.__name__}.api.matching.match" in names


def test_a_generated_client_submits_statements_and_reads_them_back_in_the_feed(api, alice, pipeline):
    models = api.models
    statement = alice.statement([md5(1)], labels=["glorification"])

    submitted = operation(api, "statements", "statements_submit").sync(
        client=api.client, body=models.StatementSubmissionRequest(statements=[statement, "not a jws"]))

    assert isinstance(submitted, models.SubmitResult)
    assert [a.index for a in submitted.accepted] == [0]
    assert submitted.rejected[0].error.code == "jws_malformed"
    pipeline()
    page = operation(api, "feed", "feed_read").sync(client=api.client, after=0, limit=10)
    assert isinstance(page, models.FeedPage)
    (event,) = page.events
    assert event.type_ == models.EventTypeEnum.HASH_ADDED
    assert event.hash_.signal_type == models.SignalTypeEnum.MD5
    assert event.hash_.value == md5(1)["value"]
    assert event.hash_.statements == [statement]
    assert event.hash_.dispute is None and event.hash_.feedback.agree == 0
    assert page.next_after == event.seq and page.has_more is False
    mine = operation(api, "statements", "statements_read").sync(client=api.client, statement_id=submitted.accepted[0].id)
    assert mine.state == models.StatementOutputStateEnum.PUBLISHED and mine.incident is None


def test_a_generated_client_matches_signals_and_an_uploaded_file(api, alice, pipeline):
    models = api.models
    image = png()
    hashed = operation(api, "matching", "media_hash").sync(
        client=api.client, body=models.MediaUploadRequest(file=api.types.File(io.BytesIO(image), "frame.png", "image/png")))
    signals = {s.type_: s for s in hashed.signals}
    alice.submit(alice.statement([{"type": "pdq", "value": signals["pdq"].value, "quality": signals["pdq"].quality}]))
    pipeline()
    match = operation(api, "matching", "match")

    by_json = match.sync(client=api.client, body=models.MatchSignalsRequest(signals=[
        models.MatchSignalRequest(type_=models.SignalTypeEnum.PDQ, value=signals["pdq"].value, max_distance=0),
        models.MatchSignalRequest(type_=models.SignalTypeEnum.MD5, value=md5(7)["value"]),
    ]))
    by_file = match.sync(client=api.client, body=models.MatchUploadRequest(
        file=api.types.File(io.BytesIO(image), "frame.png", "image/png")))

    assert isinstance(by_json, models.MatchResults) and isinstance(by_file, models.MatchResults)
    assert [len(r.matches) for r in by_json.results] == [1, 0]
    (hit,) = by_json.results[0].matches
    assert hit.distance == 0 and hit.hash_.value == signals["pdq"].value
    assert by_json.results[0].query.max_distance == 0
    assert [r.query.type_ for r in by_file.results] == [models.SignalTypeEnum.PDQ, models.SignalTypeEnum.MD5,
                                                         models.SignalTypeEnum.SHA256]
    assert by_file.results[0].matches[0].hash_.id == hit.hash_.id


def test_a_generated_client_gets_errors_as_typed_bodies(api, server, alice):
    models = api.models
    match = operation(api, "matching", "match")

    invalid = match.sync(client=api.client, body=models.MatchSignalsRequest(signals=[
        models.MatchSignalRequest(type_=models.SignalTypeEnum.PDQ, value="zz")]))
    missing = operation(api, "statements", "statements_read").sync_detailed(client=api.client, statement_id=uuid.uuid4())
    stranger = api.AuthenticatedClient(base_url=server, token="cst_not_a_token")
    refused = operation(api, "members", "me_read").sync(client=stranger)

    assert isinstance(invalid, models.Error400)
    assert invalid.error.code == models.BadRequestCode.SIGNAL_VALUE_INVALID and invalid.error.message
    assert missing.status_code == 404 and isinstance(missing.parsed, models.Error404)
    assert missing.parsed.error.code == models.NotFoundCode.NOT_FOUND
    assert isinstance(refused, models.Error401) and refused.error.code == models.UnauthorizedCode.INVALID_TOKEN
