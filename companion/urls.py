"""URL configuration: pages, the JSON API, accounts and the admin."""

from django.urls import include, path, re_path

from companion.admin_site import admin_urls
from companion.media import media

urlpatterns = [
    path("admin/", admin_urls()),
    path("accounts/", include("allauth.urls")),
    path("api/", include("companion.api_urls")),
    # Before characters.urls: /characters/import/ must not be taken for a character slug.
    path("", include("characters.card_urls")),
    path("", include("characters.urls")),
    path("", include("conversations.urls")),
    # A reverse proxy may serve /media/ itself instead, with the same sandboxing header.
    re_path(r"^media/(?P<path>.*)$", media),
]
