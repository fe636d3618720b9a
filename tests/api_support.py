"""Helpers shared by tests/test_api.py and tests/test_api_fuzz.py: keys and a client.

Not a test module: pytest collects nothing here.
"""

from __future__ import annotations

from typing import Any

import httpx

from bot.api.keys import SCOPES, create_key
from bot.clock import FixedClock
from bot.db import Database
from test_web_support import WebHarness


def new_key(db: Database, clock: FixedClock, *scopes: str, name: str = "crm") -> tuple[str, str]:
    """``(key id, key)`` of a new key with ``scopes`` (default: all)."""
    with db.session() as session:
        info, key = create_key(session, name, list(scopes or SCOPES), clock.now())
    return info.id, key


class Api:
    """Requests to /api/v1 with a key."""

    def __init__(self, web: WebHarness, key: str) -> None:
        assert web.client is not None
        self.client = web.client
        self.key = key

    def __call__(self, method: str, path: str, *, key: str | None = None, headers: dict[str, str] | None = None,
                 **kwargs: Any) -> httpx.Response:
        all_headers = {"Authorization": f"Bearer {key or self.key}", **(headers or {})}
        return self.client.request(method, "/api/v1" + path, headers=all_headers, **kwargs)


BORROWER = {"full_name": "Jane Doe", "phone": "+12125551234", "email": "jane.doe@example.com", "locale": "en-US",
            "region": "NY", "country": "US", "consent_sms": True, "consent_voice": True, "consent_email": True}


def seed(api: Api, borrower_id: str = "B1", *, due: str = "2026-11-20", amount_due: str = "100.00") -> None:
    """A borrower with one USD loan and one installment, written through the API."""
    assert api("PUT", f"/borrowers/{borrower_id}", json=BORROWER).status_code == 201
    loan = {"borrower_id": borrower_id, "product": "personal", "principal": "1000.00", "currency": "USD",
            "opened_on": "2026-01-15"}
    response = api("PUT", f"/loans/{borrower_id}-L1", json=loan)
    assert response.status_code == 201, response.text
    inst = {"loan_id": f"{borrower_id}-L1", "due_date": due, "amount_due": amount_due}
    assert api("PUT", f"/installments/{borrower_id}-I1", json=inst).status_code == 201
