"""The JSON API (session-authenticated, CSRF-protected)."""

from typing import Any

urlpatterns: list[Any] = []
