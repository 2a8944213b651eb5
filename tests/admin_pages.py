"""Signed-in test clients, and the admin's addresses for the modules that drive the admin."""

from django.contrib.contenttypes.models import ContentType
from django.test import Client
from django.urls import reverse


def logged_in(user):
    client = Client()
    client.force_login(user)
    return client


def view_on_site_url(obj):
    """The admin's "view on site" shortcut for `obj`."""
    return reverse(
        "admin:view_on_site",
        kwargs={"content_type_id": ContentType.objects.get_for_model(obj).pk, "object_id": obj.pk},
    )
