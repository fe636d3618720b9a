"""Schemathesis fuzzes every operation of the REST API against its own OpenAPI document.

On SQLite and PostgreSQL, over real HTTP: no 5xx, every status documented,
every body conforming to its schema.  A seeded borrower (B1 with loans B1-L1
and L1, installment B1-I1) makes the generated ids hit real rows now and then
(the documents' examples name them); the number of examples is bounded so
the module runs in well under a minute.
"""

from __future__ import annotations

from typing import Any

import hypothesis
import pytest
import schemathesis
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from api_support import Api, new_key, seed
from bot.api.app import create_api
from bot.clock import FixedClock
from bot.db import Database
from test_web_support import (  # noqa: F401 - fixtures
    WebHarness,
    harness,
    web,
)

schema = schemathesis.openapi.from_dict(create_api().openapi())
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
EXAMPLES = 10


@pytest.fixture
def seeded(web: WebHarness, db: Database, clock: FixedClock) -> dict[str, Any]:
    _, key = new_key(db, clock)
    api = Api(web, key)
    seed(api)
    loan = {"borrower_id": "B1", "principal": "1000.00", "currency": "USD", "opened_on": "2026-01-15"}
    assert api("PUT", "/loans/L1", json=loan).status_code == 201  # the id the documents' examples use
    assert web.client is not None
    return {"base_url": str(web.client.base_url).rstrip("/") + "/api/v1",
            "headers": {"Authorization": f"Bearer {key}"}}


@schema.parametrize()
@hypothesis.settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                     suppress_health_check=list(hypothesis.HealthCheck),
                     phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate])
def test_the_api_conforms_to_its_document(case: schemathesis.Case, seeded: dict[str, Any]) -> None:
    response = case.call(base_url=seeded["base_url"], headers=seeded["headers"], timeout=10)
    case.validate_response(response, checks=CHECKS)
