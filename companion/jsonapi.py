"""Conventions of the JSON API: 401 instead of a login redirect, JSON errors, JSON bodies.

Error bodies are `{"errors": {field: [message, ...]}}` (400, or 415 for a multipart form sent
where JSON is expected) or `{"detail": message}`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from functools import wraps
from typing import Any

from django.http import Http404, HttpRequest, HttpResponse, JsonResponse

MAX_BODY_BYTES = 64 * 1024
NOT_A_FORM = "The body must be JSON (Content-Type: application/json), not a multipart form."
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
UNPAIRED_SURROGATE = "The body holds text that is not valid Unicode (an unpaired surrogate escape)."

View = Callable[..., HttpResponse]


class ApiError(Exception):
    """Raised inside an API view to answer with field errors."""

    def __init__(self, errors: Mapping[str, list[str]], status: int = 400) -> None:
        super().__init__(str(errors))
        self.errors = dict(errors)
        self.status = status


def api_view(methods: list[str]) -> Callable[[View], View]:
    """Allow `methods`, require a logged-in user (401 otherwise), turn errors into JSON."""

    def decorator(view: View) -> View:
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not request.user.is_authenticated:
                return JsonResponse({"detail": "Authentication required."}, status=401)
            if request.method not in methods:
                response = JsonResponse({"detail": "Method not allowed."}, status=405)
                response["Allow"] = ", ".join(methods)
                return response
            try:
                return view(request, *args, **kwargs)
            except ApiError as exc:
                return JsonResponse({"errors": exc.errors}, status=exc.status)
            except Http404:
                return JsonResponse({"detail": "Not found."}, status=404)

        return wrapper

    return decorator


def json_object_body(request: HttpRequest) -> dict[str, Any]:
    """The request body as a JSON object, or an `ApiError` saying what is wrong with it."""
    # Django parses a multipart body as a stream: once CsrfViewMiddleware has looked in
    # request.POST for a token, the raw body is gone and reading it raises. Refusing by type,
    # the test Django itself uses, gives the same answer whether or not CSRF was checked.
    if request.content_type == "multipart/form-data":
        raise ApiError({"__all__": [NOT_A_FORM]}, status=415)
    try:
        length = int(request.headers.get("Content-Length") or 0)
    except ValueError:
        length = 0
    if length > MAX_BODY_BYTES or len(request.body) > MAX_BODY_BYTES:
        raise ApiError({"__all__": [f"The body is too large (at most {MAX_BODY_BYTES} bytes)."]})
    try:
        payload = json.loads(request.body)
    except (ValueError, RecursionError):
        raise ApiError({"__all__": ["The body is not valid JSON."]}) from None
    if not isinstance(payload, dict):
        raise ApiError({"__all__": ["The body must be a JSON object."]})
    # A `\ud800` escape decodes to a lone surrogate, which no database driver can encode. Only
    # a body holding such an escape (paired ones are valid: an emoji) needs the full check.
    if _SURROGATE_ESCAPE.search(request.body):
        try:
            json.dumps(payload, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise ApiError({"__all__": [UNPAIRED_SURROGATE]}) from None
    return payload


def form_errors(errors: Mapping[str, Any]) -> dict[str, list[str]]:
    """A Django form's errors as plain lists of messages."""
    return {field: [str(message) for message in messages] for field, messages in errors.items()}
