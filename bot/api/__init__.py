"""The REST API for the lender's systems, mounted at ``/api/v1`` by :mod:`bot.app` (docs/api.md).

Modules:

* :mod:`~bot.api.app`          the FastAPI app, its OpenAPI document and docs page
* :mod:`~bot.api.errors`       one JSON error shape for every failure
* :mod:`~bot.api.keys`         API keys (hashed) and scopes
* :mod:`~bot.api.deps`         the caller's key, write transactions, audit events
* :mod:`~bot.api.idempotency`  ``Idempotency-Key``: stored responses, replayed for 24 h
* :mod:`~bot.api.portfolio`    PUT borrowers/loans/installments, POST payments (the importer's checkers)
* :mod:`~bot.api.borrowers`    a borrower's standing, timeline, consents and holds
* :mod:`~bot.api.attempts`     contact attempts since an instant
"""
