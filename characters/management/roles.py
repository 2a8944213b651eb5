"""The "Creators" group: staff users in it author characters in the admin.

Creators may add, change, delete and view characters with their sample dialogues, scenes and
lorebooks; the admin narrows that to their own characters. Personas and conversations are
private to their owners, so the group gets no permission on them.
"""

from __future__ import annotations

from django.apps import apps
from django.contrib.auth import get_user_model
from django.contrib.auth.management import create_permissions
from django.contrib.auth.models import AbstractBaseUser, Group, Permission
from django.db import transaction

CREATORS_GROUP = "Creators"
CREATOR_MODELS: tuple[tuple[str, str], ...] = (
    ("characters", "character"),
    ("characters", "sampledialogue"),
    ("characters", "scene"),
    ("characters", "lorebook"),
    ("characters", "lorebookentry"),
)
ACTIONS = ("add", "change", "delete", "view")


class UnknownUserError(Exception):
    pass


def creator_permissions() -> list[Permission]:
    """The permissions a creator holds, created first if migrations have not made them yet."""
    for app_label in {app_label for app_label, _ in CREATOR_MODELS}:
        create_permissions(apps.get_app_config(app_label), verbosity=0)
    wanted = [
        (app_label, f"{action}_{model}")
        for app_label, model in CREATOR_MODELS
        for action in ACTIONS
    ]
    permissions = {
        (p.content_type.app_label, p.codename): p
        for p in Permission.objects.select_related("content_type").filter(
            codename__in=[codename for _, codename in wanted]
        )
    }
    return [permissions[key] for key in wanted]


def creators_group_sync() -> Group:
    """Create the Creators group or reset its permissions to exactly the creator set."""
    with transaction.atomic():
        group, _ = Group.objects.get_or_create(name=CREATORS_GROUP)
        wanted = creator_permissions()
        if set(group.permissions.all()) != set(wanted):
            group.permissions.set(wanted)
    return group


def creator_grant(*, username: str) -> AbstractBaseUser:
    """Make a user a creator: staff (to reach the admin) and a member of the Creators group."""
    user_model = get_user_model()
    with transaction.atomic():
        group = creators_group_sync()
        try:
            user = user_model.objects.get(**{user_model.USERNAME_FIELD: username})
        except user_model.DoesNotExist:
            raise UnknownUserError(f"No user named {username!r}.") from None
        if not user.is_staff:
            user.is_staff = True
            user.save(update_fields=["is_staff"])
        user.groups.add(group)
    return user
