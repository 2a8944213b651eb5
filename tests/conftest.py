import os

import pytest

from characters.management.roles import creator_grant
from tests.factories import make_user


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix):
    """Give each test process its own SQLite file: concurrent runs never share a test database,
    and a file (not :memory:) can be opened by a server process the browser tests start."""
    from django.conf import settings
    from django.db import connections

    if connections["default"].vendor == "sqlite":
        test = settings.DATABASES["default"].setdefault("TEST", {})
        test["NAME"] = f"/tmp/companion-test-{os.getpid()}.sqlite3"


@pytest.fixture(autouse=True, scope="session")
def _fast_password_hasher():
    """The real hasher costs most of a second per user; tests only need a correct one."""
    from django.conf import settings

    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _untaught_token_estimator():
    """Every completed reply teaches the process-wide token estimator its scale; each test
    starts from the scale the process began with, whatever the tests before it replied."""
    from conversations.tokens import default_estimator

    scale = default_estimator.scale
    yield
    default_estimator._scale = scale


@pytest.fixture
def alice(db):
    return make_user("alice")


@pytest.fixture
def bob(db):
    return make_user("bob")


@pytest.fixture
def alice_client(client, alice):
    client.force_login(alice)
    return client


@pytest.fixture(autouse=True)
def _fresh_cache():
    """allauth keeps login rate limits in the cache: one test's failed logins must not lock
    another test out."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def creators(alice, bob):
    """Alice and Bob, both in the Creators group (they author characters in the admin)."""
    creator_grant(username="alice")
    creator_grant(username="bob")
    alice.refresh_from_db()
    bob.refresh_from_db()
    return alice, bob
