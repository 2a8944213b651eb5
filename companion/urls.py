"""URL configuration: pages, the JSON API, accounts and the admin."""

from django.conf import settings
from django.contrib import admin
from django.urls import include, path, re_path
from django.views.static import serve

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("allauth.urls")),
    path("api/", include("companion.api_urls")),
    # Before characters.urls: /characters/import/ must not be taken for a character slug.
    path("", include("characters.card_urls")),
    path("", include("characters.urls")),
    path("", include("conversations.urls")),
    # Avatars are small, validated images; a reverse proxy may serve /media/ itself instead.
    re_path(r"^media/(?P<path>.*)$", serve, {"document_root": settings.MEDIA_ROOT}),
]
