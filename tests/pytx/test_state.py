"""What the CLI and HMA store for the `consortium` exchange: configs, credentials and checkpoints as
JSON by field, records and checkpoints pickled by class name."""

from __future__ import annotations

import dataclasses
import json

import pytest
from threatexchange.exchanges.auth import SignalExchangeAPIInvalidAuthException
from threatexchange.utils import dataclass_json
from tx_consortium import TX_MANIFEST
from tx_consortium.convert import feedback_target, vpdq_compact, vpdq_digest
from tx_consortium.exchange import ConsortiumSignalExchangeAPI
from tx_consortium.state import ConsortiumCheckpoint, ConsortiumCollabConfig, ConsortiumCredentials

from consortium_client import keys
from hashes.signals.parse import parse_signals
from tests.factories import vpdq


@pytest.mark.parametrize("cls", [ConsortiumCollabConfig, ConsortiumCredentials, ConsortiumCheckpoint])
def test_stored_dataclasses_have_real_field_types(cls):
    """The CLI builds its options from these types and HMA its forms: a string annotation (what
    `from __future__ import annotations` makes) breaks every `threatexchange` command."""
    assert all(not isinstance(field.type, str) for field in dataclasses.fields(cls))


def test_the_manifest_offers_the_exchange_named_consortium():
    assert TX_MANIFEST.apis == (ConsortiumSignalExchangeAPI,) and ConsortiumSignalExchangeAPI.get_name() == "consortium"


def test_an_hma_exchange_config_loads_from_its_api_json():
    api_json = {"name": "CONSORTIUM", "api": "consortium", "enabled": True, "server": "https://c.example"}

    config = dataclass_json.dataclass_load_dict(api_json, ConsortiumCollabConfig)

    assert config == ConsortiumCollabConfig(name="CONSORTIUM", server="https://c.example")
    assert dataclass_json.dataclass_dump_dict(config) == api_json


def test_credentials_come_as_a_token_or_json_with_a_signing_key(monkeypatch, tmp_path):
    private = keys.generate_private_key()
    jwk = keys.private_jwk(private)

    monkeypatch.setenv("TX_CONSORTIUM_CREDENTIALS", "tok_123")
    assert ConsortiumCredentials.get(ConsortiumSignalExchangeAPI) == ConsortiumCredentials(token="tok_123")

    monkeypatch.setenv("TX_CONSORTIUM_CREDENTIALS", json.dumps({"token": "tok_123", "signing_key": jwk}))
    from_env = ConsortiumCredentials.get(ConsortiumSignalExchangeAPI)
    assert json.loads(from_env.signing_key) == jwk
    # HMA keeps credentials as the dataclass's JSON.
    assert dataclass_json.dataclass_load_dict(dataclass_json.dataclass_dump_dict(from_env), ConsortiumCredentials) == from_env

    monkeypatch.setenv("TX_CONSORTIUM_CREDENTIALS", json.dumps({"token": "tok_123", "signing_key": keys.public_jwk(private)}))
    with pytest.raises(SignalExchangeAPIInvalidAuthException):
        ConsortiumCredentials.get(ConsortiumSignalExchangeAPI)

    monkeypatch.delenv("TX_CONSORTIUM_CREDENTIALS")
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".tx_consortium_credentials").write_text("tok_from_file\n")
    assert ConsortiumCredentials.get(ConsortiumSignalExchangeAPI).token == "tok_from_file"


def test_a_vpdq_signal_targets_feedback_at_the_digest_the_server_gives_it():
    frames = vpdq(0xF0F0, 0xABCD, 0x1234)["frames"][::-1]  # any order: frames are ordered by index
    [server_signal] = parse_signals([{"type": "vpdq", "frames": frames}], min_quality=50, max_signals=1, max_frames=10)

    compact = vpdq_compact(frames)

    assert feedback_target("vpdq", compact) == {"type": "vpdq", "value": server_signal.value}
    assert server_signal.value == vpdq_digest(f["pdq"] for f in sorted(frames, key=lambda f: f["i"]))
    assert feedback_target("video_md5", "ABC" + "0" * 29) == {"type": "md5", "value": "abc" + "0" * 29}


def test_the_pickled_classes_keep_their_names():
    """Stored state names these classes (the CLI's pickles, HMA's exchange_data): renaming or moving
    one makes every member's stored state unreadable."""
    from tx_consortium import state

    assert {f"{cls.__module__}.{cls.__qualname__}" for cls in (
        state.ConsortiumCheckpoint, state.ConsortiumHashRecord, state.ConsortiumCollabConfig, state.ConsortiumCredentials)} == {
        "tx_consortium.state.ConsortiumCheckpoint", "tx_consortium.state.ConsortiumHashRecord",
        "tx_consortium.state.ConsortiumCollabConfig", "tx_consortium.state.ConsortiumCredentials"}
