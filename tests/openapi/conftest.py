"""The OpenAPI schema as clients use it: fetched from pytest-django's live server on 127.0.0.1 (with
an API token, which production mode requires), like the member CLI tests in tests/client.

The live server answers from its own thread on the test database, with the pipeline run eagerly in
the request, so these tests are transactional with serialized rollback (migrations' data, such as
the labels, is there when each starts)."""

from __future__ import annotations

import ipaddress
import json
import socket
import urllib.request
from typing import Any

import pytest

from tests.actors import Actor


@pytest.fixture
def server(live_server, django_db_serialized_rollback) -> str:
    return live_server.url.replace("localhost", "127.0.0.1")


def served_schema(server: str, actor: Actor) -> dict[str, Any]:
    request = urllib.request.Request(f"{server}/api/schema/?format=json",
                                     headers={"Authorization": f"Bearer {actor.token}"})
    with urllib.request.urlopen(request, timeout=60) as answer:
        return json.load(answer)


@pytest.fixture
def no_name_resolution(monkeypatch) -> None:
    """Only IP literals (and localhost) resolve: a webhook URL a test sends never reaches DNS, so
    nothing leaves 127.0.0.1 (the live server runs in this process, so the patch reaches it)."""
    resolve = socket.getaddrinfo

    def local_only(host, *args, **kwargs):
        name = host.decode() if isinstance(host, bytes) else str(host)
        try:
            ipaddress.ip_address(name.strip("[]"))
        except ValueError:
            if name != "localhost":
                raise socket.gaierror(socket.EAI_NONAME, "tests resolve no host names") from None
        return resolve(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", local_only)
