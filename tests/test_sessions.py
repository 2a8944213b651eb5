"""The session store: a session the cache does not hold is read from the database as Django's
own `cached_db` store reads it, by one compiled statement."""

import datetime as dt
from importlib import import_module

import pytest
from django.conf import settings
from django.contrib.auth import SESSION_KEY
from django.contrib.sessions.backends import db
from django.contrib.sessions.models import Session
from django.core.cache import cache
from django.urls import reverse
from django.utils import timezone

from companion.sessions import SessionStore
from tests.admin_pages import logged_in
from tests.factories import make_user, session_key_of

pytestmark = pytest.mark.django_db


def test_the_configured_store_is_this_one():
    assert import_module(settings.SESSION_ENGINE).SessionStore is SessionStore


def test_an_uncached_session_is_read_once_then_served_by_the_cache(django_assert_num_queries):
    owner, other = make_user("owner"), make_user("other")
    keys = {owner.pk: session_key_of(owner), other.pk: session_key_of(other)}
    cache.clear()

    for user_id, key in keys.items():
        with django_assert_num_queries(1):
            assert SessionStore(key)[SESSION_KEY] == str(user_id)
        with django_assert_num_queries(0):  # the read filled the cache
            assert SessionStore(key)[SESSION_KEY] == str(user_id)


def _stored(expires_in: dt.timedelta) -> str:
    session = SessionStore()
    session["note"] = "kept"
    session.set_expiry(expires_in)
    session.save()
    assert session.session_key is not None
    return session.session_key


@pytest.mark.parametrize(
    "key",
    [
        pytest.param(lambda: _stored(dt.timedelta(hours=1)), id="valid"),
        pytest.param(lambda: _stored(dt.timedelta(seconds=-1)), id="expired"),
        pytest.param(lambda: "x" * 32, id="unknown"),
        pytest.param(lambda: "short", id="too-short"),
    ],
)
def test_a_read_finds_what_djangos_own_read_finds(key):
    session_key = key()
    cache.clear()
    # Django's database store reads the table alone: what ours puts in the cache cannot answer it.
    ours, djangos = SessionStore(session_key), db.SessionStore(session_key)

    assert dict(ours.items()) == dict(djangos.items())
    # A session that is not found leaves the store without a key, so that a save makes a new
    # one rather than reviving the old.
    assert ours.session_key == djangos.session_key


def test_an_expired_session_is_not_revived_by_a_save():
    stale = _stored(dt.timedelta(seconds=-1))
    cache.clear()
    session = SessionStore(stale)

    assert dict(session.items()) == {}
    session["note"] = "new"
    session.save()

    assert session.session_key != stale
    assert Session.objects.get(session_key=stale).expire_date < timezone.now()


def test_each_browser_is_served_its_own_session_after_the_cache_is_lost():
    owner, other = make_user("owner"), make_user("other")
    owners_browser, others_browser = logged_in(owner), logged_in(other)
    cache.clear()  # a restarted process's local cache

    for browser, user in ((owners_browser, owner), (others_browser, other)):
        page = browser.get(reverse("characters:account"))
        assert page.status_code == 200
        assert page.context["user"] == user
