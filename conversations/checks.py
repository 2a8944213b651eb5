"""System checks: a misconfigured model backend or too old a SQLite stops `migrate` and `check`,
not a user's chat."""

from __future__ import annotations

import sqlite3
from typing import Any

from django.core.checks import CheckMessage, Error, register
from django.core.exceptions import ImproperlyConfigured
from django.db import connections

from conversations.llm.factory import backend_config


@register()
def llm_backend_configured(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    try:
        backend_config()
    except ImproperlyConfigured as exc:
        return [
            Error(str(exc), hint="See the README's Configuration section.", id="companion.E001")
        ]
    return []


# Sequence numbers are allocated with UPDATE ... RETURNING (services/sequence.py).
SQLITE_MINIMUM = (3, 35, 0)


@register()
def sqlite_new_enough(
    app_configs: Any = None,
    sqlite_version: tuple[int, ...] | None = None,
    vendors: list[str] | None = None,
    **kwargs: Any,
) -> list[CheckMessage]:
    version = sqlite_version or sqlite3.sqlite_version_info
    if vendors is None:
        vendors = [connection.vendor for connection in connections.all()]
    if "sqlite" in vendors and version < SQLITE_MINIMUM:
        found = ".".join(map(str, version))
        return [
            Error(
                f"SQLite {found} is too old: RETURNING needs 3.35 or newer.",
                hint="Use a newer Python build or PostgreSQL (DATABASE_URL).",
                id="companion.E002",
            )
        ]
    return []
