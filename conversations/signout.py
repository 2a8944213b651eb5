"""Open sockets lose what HTTP loses: a session that signs out, a password that changes, an account
that is deactivated and a conversation that is deleted each close the sockets they concern, in
every process. Left open, such a socket would go on chatting (and spending the model) after the
rest of the site refused that browser.

Each socket joins one group, its user's, and a close message names which of the user's sockets it
is for (a session's, all but a session's, a conversation's): one join per socket, and the rare
close wakes the few sockets of one user.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from typing import Any, TypedDict
from uuid import UUID

from allauth.account.signals import password_reset
from allauth.core import context as allauth_context
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.contrib.auth.signals import user_logged_in, user_logged_out
from django.db import transaction
from django.db.models import Model
from django.db.models.signals import post_delete, post_save, pre_save
from django.dispatch import receiver

from conversations.streaming import request_stop

log = logging.getLogger(__name__)

CLOSE_SIGNED_OUT = 4401
CLOSE_NOT_ALLOWED = 4403
CLOSE_NOT_FOUND = 4404
CLOSE_MESSAGE = "sockets.close"

# In the session's data, not its key: Django gives a session a new key when its password changes
# (`update_session_auth_hash` cycles it) and the data moves along, so the sockets opened before
# the change are still that session's when it later signs out.
SESSION_ID_KEY = "_sockets_session"
# Set on a user instance between its pre_save and post_save: the close its save calls for.
_PENDING_ATTR = "_sockets_pending_close"


class CloseMessage(TypedDict, total=False):
    type: str
    code: int
    session: str  # only this session's sockets
    keep_session: str  # all but this session's sockets
    conversation: str  # only the sockets on this conversation (its hex id)


def user_group(user_id: int) -> str:
    return f"user.{user_id}"


def socket_session_id(session: Any) -> str | None:
    """What tells a session's sockets apart from the user's other sessions', or None without one."""
    if session is None:
        return None
    token = session.get(SESSION_ID_KEY) or session.session_key
    if not token:
        return None
    # Hashed: a key is a credential, and group and message contents can be seen in Redis.
    return hashlib.sha256(str(token).encode()).hexdigest()[:32]


def closes(message: CloseMessage, *, session_id: str | None, conversation_hex: str) -> bool:
    """Whether a socket of that session, on that conversation, is one the message closes."""
    if "session" in message and message["session"] != session_id:
        return False
    if "keep_session" in message and message["keep_session"] == session_id:
        return False
    return "conversation" not in message or message["conversation"] == conversation_hex


def _close_message(
    code: int,
    *,
    session: str | None = None,
    keep_session: str | None = None,
    conversation: str | None = None,
) -> CloseMessage:
    message: CloseMessage = {"type": CLOSE_MESSAGE, "code": code}
    if session is not None:
        message["session"] = session
    if keep_session is not None:
        message["keep_session"] = keep_session
    if conversation is not None:
        message["conversation"] = conversation
    return message


def close_user_sockets(user_id: int, message: CloseMessage) -> None:
    """Tell every process; the HTTP action that asked goes through even when this cannot."""
    try:
        async_to_sync(get_channel_layer().group_send)(user_group(user_id), message)
    except Exception:
        # Sessions are checked again when a socket connects: these sockets are the only ones
        # left on the old terms, until they close or the layer comes back.
        log.exception("could not close the sockets of user %s (%s)", user_id, message["code"])


@receiver(user_logged_in)
def name_the_session(sender: Any, request: Any, **kwargs: Any) -> None:
    session = getattr(request, "session", None)
    if session is not None and SESSION_ID_KEY not in session:
        session[SESSION_ID_KEY] = secrets.token_hex(16)


@receiver(user_logged_out)
def close_sockets_of_session(sender: Any, request: Any, user: Any = None, **kwargs: Any) -> None:
    session = getattr(request, "session", None)
    session_id = socket_session_id(session)
    if user is None or session is None or session_id is None:
        return
    # Django flushes the session only after this signal. Gone from the store before its sockets
    # are told, a socket that joins its group too late for this message finds it gone when it
    # connects (`admission`). The logout goes on with the data it holds in memory.
    session.delete()
    # After the commit, as every close here: a socket reading meanwhile must find it gone.
    message = _close_message(CLOSE_SIGNED_OUT, session=session_id)
    user_id = user.pk
    transaction.on_commit(lambda: close_user_sockets(user_id, message))


# Every path that changes a password or deactivates an account saves the user: allauth's forms,
# Django's admin and `changepassword`, a shell. A new password is a new session auth hash, which
# logs out every session HTTP-wise but the one `update_session_auth_hash` is called for.


@receiver(pre_save, sender=settings.AUTH_USER_MODEL)
def note_revoking_change(
    sender: type[Model], instance: Any, raw: bool, update_fields: Any, **kwargs: Any
) -> None:
    if raw or instance._state.adding:
        return
    if update_fields is not None and not {"password", "is_active"} & set(update_fields):
        return  # a login's `last_login`, say: no query
    before = (
        sender._base_manager.filter(pk=instance.pk).values_list("password", "is_active").first()
    )
    if before is None:
        return
    password, was_active = before
    if was_active and not instance.is_active:
        setattr(instance, _PENDING_ATTR, _close_message(CLOSE_NOT_ALLOWED))
    elif password != instance.password:
        keep = _session_making_the_change(instance)
        setattr(instance, _PENDING_ATTR, _close_message(CLOSE_SIGNED_OUT, keep_session=keep))


@receiver(post_save, sender=settings.AUTH_USER_MODEL)
def close_revoked_sockets(sender: type[Model], instance: Any, **kwargs: Any) -> None:
    message: CloseMessage | None = instance.__dict__.pop(_PENDING_ATTR, None)
    if message is not None:
        user_id = instance.pk
        # After the commit: a socket told to close must not reconnect on the old terms.
        transaction.on_commit(lambda: close_user_sockets(user_id, message))


def _session_making_the_change(user: Any) -> str | None:
    """The session of a user changing their own password, which goes on signed in."""
    # allauth's middleware keeps the running view's request; a save has no other way to it.
    request = getattr(allauth_context, "request", None)
    request_user = getattr(request, "user", None)
    if request_user is None or not request_user.is_authenticated or request_user.pk != user.pk:
        return None  # `changepassword`, an admin changing someone else's, a reset link
    session = getattr(request, "session", None)
    if session is not None and SESSION_ID_KEY not in session and session.session_key:
        # Signed in before sessions carried an id: its sockets know it by the key, which the
        # change is about to replace; kept as its id, a later sign-out still finds them.
        session[SESSION_ID_KEY] = session.session_key
    return socket_session_id(session)


@receiver(password_reset)
def close_all_after_reset(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    # A reset keeps no session signed in (its save kept the one that followed the link, if that
    # one was the user's own): HTTP-wise that session is signed out too. After the commit, as
    # every close here.
    user_id = user.pk
    transaction.on_commit(lambda: close_user_sockets(user_id, _close_message(CLOSE_SIGNED_OUT)))


@receiver(post_delete, sender="conversations.Conversation")
def close_deleted_conversation(sender: type[Model], instance: Any, **kwargs: Any) -> None:
    # Every way a conversation goes sends this: its owner's delete, the admin's, the cascade
    # from deleting its user or its character.
    owner_id, conversation_id = instance.owner_id, instance.pk
    transaction.on_commit(
        lambda: close_conversation(owner_id=owner_id, conversation_id=conversation_id)
    )


def close_conversation(*, owner_id: int, conversation_id: UUID) -> None:
    """A deleted conversation: its reply stops and its sockets close with 4404, in every process."""
    async_to_sync(_close_conversation)(owner_id, conversation_id)


async def _close_conversation(owner_id: int, conversation_id: UUID) -> None:
    try:
        # The reply would otherwise run to its end with nowhere to store it: the model's tokens
        # spent for nothing, and the conversation's slot in the limit freed while it runs.
        await request_stop(conversation_id)
    except Exception:
        log.exception("could not stop the reply of deleted conversation %s", conversation_id)
    message = _close_message(CLOSE_NOT_FOUND, conversation=conversation_id.hex)
    try:
        await get_channel_layer().group_send(user_group(owner_id), message)
    except Exception:
        log.exception("could not close the sockets of deleted conversation %s", conversation_id)
