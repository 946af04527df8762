"""schemathesis drives every operation of the served schema against a live server, with a token of
a member holding every scope: no answer is a 500, and every answer (status, content type, headers,
body) is one the schema describes. Examples are few and bounded, so the run stays short.

The operations are driven from one test (schemathesis's own pytest loader needs the schema at
collection time, before the live server and its database exist)."""

from __future__ import annotations

from collections import Counter

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import checks
from schemathesis.generation import GenerationMode

from tests.actors import Actor

from .conftest import served_schema

CHECKS = [checks.not_a_server_error, checks.status_code_conformance, checks.content_type_conformance,
          checks.response_headers_conformance, checks.response_schema_conformance]
EXAMPLES = 10


def test_every_answer_of_every_operation_is_described_by_the_schema(server: str, alice: Actor, no_name_resolution):
    document = served_schema(server, alice)
    schema = schemathesis.openapi.from_dict(document)
    schema.config.update(base_url=server)
    headers = {"Authorization": f"Bearer {alice.token}"}
    failures: dict[str, str] = {}
    driven = set()
    statuses: Counter[int] = Counter()

    for result in schema.get_all_operations():
        operation = result.ok()
        driven.add(operation.label)
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                      suppress_health_check=list(HealthCheck))
            def drive(case) -> None:
                response = case.call_and_validate(headers=headers, checks=CHECKS, timeout=60)
                statuses[response.status_code] += 1

            try:
                drive()
            except Unsatisfiable:
                assert mode is GenerationMode.NEGATIVE, operation.label  # nothing to send wrong: no inputs
            except (Exception, BaseExceptionGroup) as exc:  # every operation is driven; failures reported together
                failures[f"{operation.label} ({mode.value})"] = str(exc)[:3000]

    assert len(driven) == sum(len(item) for item in document["paths"].values())
    assert {200, 202, 400, 404} <= set(statuses), statuses  # it reached the operations, not only their refusals
    assert not failures, "\n\n".join(f"{label}:\n{text}" for label, text in failures.items())
