"""The admin's URLs, with Django's "view on site" shortcut replaced by an owner-scoped one.

Django's `r/<content_type_id>/<object_id>/` shortcut loads any object of any model for any
staff user and redirects to its `get_absolute_url()`: a creator could learn other creators'
private slugs from the redirect, probe for other users' conversations, and a malformed id was a
500. The change pages' "View on site" buttons still link to that URL name, so it stays, but the
object is now looked up the way the model's own admin pages look it up.
"""

from __future__ import annotations

from django.contrib import admin
from django.contrib.admin.exceptions import NotRegistered
from django.contrib.contenttypes.models import ContentType
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import URLPattern, URLResolver, path

VIEW_ON_SITE = "view_on_site"


def admin_urls() -> tuple[list[URLPattern | URLResolver], str, str]:
    """What `admin.site.urls` gives, with the shortcut swapped for `view_on_site`."""
    site = admin.site
    scoped = path(
        "r/<path:content_type_id>/<path:object_id>/",
        site.admin_view(view_on_site),
        name=VIEW_ON_SITE,
    )
    patterns = [
        scoped if getattr(pattern, "name", None) == VIEW_ON_SITE else pattern
        for pattern in site.get_urls()
    ]
    # Fail at start-up rather than leave Django's unscoped view in place after an upgrade.
    if scoped not in patterns:
        raise RuntimeError("The admin has no view_on_site URL to replace.")
    return patterns, "admin", site.name


def view_on_site(request: HttpRequest, content_type_id: str, object_id: str) -> HttpResponse:
    """Redirect to the page of an object the user may view in its model's admin; else 404.

    A missing object, a malformed id, a model without an admin and another user's object all
    answer the same 404, so the URL tells nothing about objects the user cannot see.
    """
    try:
        model = ContentType.objects.get_for_id(int(content_type_id)).model_class()
        model_admin = admin.site.get_model_admin(model) if model is not None else None
    except (ContentType.DoesNotExist, ValueError, NotRegistered):
        model_admin = None
    if model_admin is None:
        raise Http404("No such object.")
    # get_object() filters through the admin's get_queryset() for this request (the owner
    # scoping) and answers None for an id the primary key field refuses.
    obj = model_admin.get_object(request, object_id)
    if obj is None or not model_admin.has_view_permission(request, obj):
        raise Http404("No such object.")
    get_absolute_url = getattr(obj, "get_absolute_url", None)
    if get_absolute_url is None:
        raise Http404("No such object.")
    return HttpResponseRedirect(get_absolute_url())
