"""A session that signs out loses its open sockets: another tab of the same browser, left open,
must not go on chatting as the user who signed out."""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.contrib.auth.signals import user_logged_out
from django.dispatch import receiver

log = logging.getLogger(__name__)


def session_group(session_key: str) -> str:
    # Hashed: the key itself is a credential, and group names can be seen in Redis.
    return "session." + hashlib.sha256(session_key.encode()).hexdigest()[:32]


@receiver(user_logged_out)
def close_sockets_of_session(sender: Any, request: Any, **kwargs: Any) -> None:
    session_key = getattr(getattr(request, "session", None), "session_key", None)
    if not session_key:
        return
    try:
        async_to_sync(get_channel_layer().group_send)(
            session_group(session_key), {"type": "session.ended"}
        )
    except Exception:
        # The sign-out itself must go through: the session is ended all the same, and those
        # sockets find no session when they next connect.
        log.exception("could not close the sockets of a signed-out session")
