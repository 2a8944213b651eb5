"""Whether a socket may chat, read once when it connects.

A socket hears of sign-outs, password changes, deactivations and deleted conversations from its
user's group (`signout`), and only from the moment it joins it. Each of those is stored before
its close message goes out, so a socket joins first and reads afterwards: what it missed before
the join it reads here, and what comes after reaches it as a close message.
"""

from __future__ import annotations

from uuid import UUID

from django.contrib.auth import get_user_model

from companion.compiled import Compiled, columns, instance
from companion.wsauth import session_signs_in
from conversations.exceptions import SocketRefused
from conversations.models import Conversation
from conversations.signout import CLOSE_NOT_ALLOWED, CLOSE_NOT_FOUND, CLOSE_SIGNED_OUT


def conversation_id_for_socket(
    *, conversation_id: UUID, user_id: int, session_key: str | None
) -> UUID:
    """The id of the user's conversation, while the user is active and the socket's session still
    signs them in; else `SocketRefused` with the code a close message would have carried."""
    rows = _with_owner.rows(conversation_id=conversation_id, user_id=user_id)
    owner = instance(get_user_model(), rows[0][1:]) if rows else None
    if owner is None:
        # Another user's conversation and a deleted one look the same; a deleted user's
        # conversations went with them.
        raise SocketRefused(CLOSE_NOT_FOUND)
    if not owner.is_active:
        raise SocketRefused(CLOSE_NOT_ALLOWED)
    if not session_signs_in(session_key=session_key, user=owner):
        # Signed out, or its password changed since the handshake. Also refused: the socket's
        # own session changing the password (in another tab) while it connects, which a close
        # message would spare. That change stores the new password, then gives the session a
        # new key and deletes the old one; by the old key, the only one this socket knows, the
        # session reads as signed out either way. The safe side: the page asks for a reload,
        # and the reloaded page's socket, with the new key, is let in.
        raise SocketRefused(CLOSE_SIGNED_OUT)
    found: UUID = rows[0][0]
    return found


# Every socket asks when it connects: the conversation and its owner's current row, in one
# statement. The session is read through the cache its handshake has just filled.
_with_owner = Compiled(
    lambda conversation_id, user_id: (
        Conversation.objects.filter(pk=conversation_id, owner_id=user_id)
        .values_list("pk", *(f"owner__{name}" for name in columns(get_user_model())))
        .query
    ),
    conversation_id=UUID(int=0xAD317),
    user_id=918_273_649,
)
