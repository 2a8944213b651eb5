"""Django's `cached_db` session store, with its database read run as one compiled statement.

A session the cache does not hold is read from the database: every page's and socket's first
request after a restart (the local cache starts empty, and every open chat page reconnects at
once), and every one of a process that shares no cache with the one that signed the user in.
The ORM built and compiled that read for each of them, several times what the database spends
running it. Everything else (the cache, saving, expiry, signing) is Django's own.
"""

from __future__ import annotations

import datetime

from django.contrib.sessions.backends import cached_db
from django.contrib.sessions.models import Session
from django.utils import timezone

from companion.compiled import Compiled, columns, instance

_session_row = Compiled(
    lambda session_key, now: (
        Session.objects.filter(session_key=session_key, expire_date__gt=now)
        .values_list(*columns(Session))
        .query
    ),
    session_key="compiled-session-key-marker",
    now=datetime.datetime(2001, 2, 3, 4, 5, 6, 789012, tzinfo=datetime.UTC),
)


class SessionStore(cached_db.SessionStore):
    def _get_session_from_db(self) -> Session | None:
        """The stored session of this key that has not expired, as Django's own read finds it;
        None, and no key, when there is none."""
        session = None
        if self.session_key is not None:
            rows = _session_row.rows(session_key=self.session_key, now=timezone.now())
            session = instance(Session, rows[0]) if rows else None
        if session is None:
            self._session_key = None
        return session
