"""A request-size cap for card uploads that holds before Django has read the whole body.

Django bounds form fields but not uploaded files; this handler stops buffering a file once it
passes the cap. The view must install it before anything reads `request.POST`, which the CSRF
middleware would do, hence the exempt-then-protect wrapper (Django's documented pattern).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.core.files.uploadhandler import FileUploadHandler, SkipFile
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt, csrf_protect

from characters.cards.containers import MAX_CARD_BYTES


class CappedUploadHandler(FileUploadHandler):
    """Skips (drops) any uploaded file larger than MAX_CARD_BYTES and remembers that it did."""

    def __init__(self, request: HttpRequest | None = None) -> None:
        super().__init__(request)
        self.received = 0
        self.too_large = False

    def new_file(self, *args: Any, **kwargs: Any) -> None:
        super().new_file(*args, **kwargs)
        self.received = 0

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes | None:
        self.received += len(raw_data)
        if self.received > MAX_CARD_BYTES:
            self.too_large = True
            raise SkipFile
        return raw_data

    def file_complete(self, file_size: int) -> None:
        return None


def upload_too_large(request: HttpRequest) -> bool:
    return any(getattr(h, "too_large", False) for h in request.upload_handlers)


def capped_upload(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Install the upload cap, then check CSRF as usual."""
    protected = csrf_protect(view)

    @csrf_exempt
    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        request.upload_handlers = [CappedUploadHandler(request), *request.upload_handlers]
        return protected(request, *args, **kwargs)

    return wrapper
