"""Uploaded files (avatars, the assets card archives bring) as the site serves them."""

from __future__ import annotations

import errno

from django.conf import settings
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.views.static import serve

# A card archive may hold files of any type. Opened directly, an HTML or SVG file must not run
# as a page of this site: the site's own policy allows scripts from this origin, /media/ too.
# In a sandbox it has no origin, and it may load nothing.
SANDBOX = "default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; sandbox"


def media(request: HttpRequest, path: str) -> HttpResponse | FileResponse:
    try:
        response = serve(request, path, document_root=str(settings.MEDIA_ROOT))
    except OSError as exc:
        # A name the filesystem refuses names no file here; other failures are the server's.
        if exc.errno != errno.ENAMETOOLONG:
            raise
        raise Http404(path) from None
    response["Content-Security-Policy"] = SANDBOX
    return response
