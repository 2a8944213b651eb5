"""`manage.py setup_roles [--creator USERNAME ...]`: create or refresh the Creators group."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from characters.management.roles import (
    CREATORS_GROUP,
    UnknownUserError,
    creator_grant,
    creators_group_sync,
)


class Command(BaseCommand):
    help = "Create or refresh the Creators group; optionally make existing users creators."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--creator",
            action="append",
            default=[],
            metavar="USERNAME",
            help="Make this user staff and a member of the Creators group (repeatable).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        group = creators_group_sync()
        for username in options["creator"]:
            try:
                creator_grant(username=username)
            except UnknownUserError as exc:
                raise CommandError(str(exc)) from None
        granted = f"; creators added: {', '.join(options['creator'])}" if options["creator"] else ""
        self.stdout.write(
            f'Group "{CREATORS_GROUP}" ready with {group.permissions.count()} permissions{granted}.'
        )
