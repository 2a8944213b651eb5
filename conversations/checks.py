"""System checks: a misconfigured model backend stops `migrate` and `check`, not a user's chat."""

from __future__ import annotations

from typing import Any

from django.core.checks import CheckMessage, Error, register
from django.core.exceptions import ImproperlyConfigured

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
