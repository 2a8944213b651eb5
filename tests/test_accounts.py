import os
import re
import subprocess
import sys

from django.contrib.auth import get_user_model
from django.core import mail
from django.core.cache import cache
from django.test import Client
from django.urls import reverse

from tests.factories import PASSWORD

NEW_PASSWORD = "another-long-phrase-42"


def logged_in_user(client):
    response = client.get(reverse("characters:account"))
    return response.context["user"] if response.status_code == 200 else None


def test_account_pages_use_the_site_layout_without_inline_code(client):
    for name in ("account_login", "account_signup", "account_reset_password"):
        response = client.get(reverse(name))

        html = response.content.decode()
        assert response.status_code == 200
        assert 'class="topbar"' in html
        assert "css/app.css" in html
        assert "Companion</title>" in html
        assert not re.search(r"\sstyle=|<script(?![^>]*\bsrc=)", html)


def test_sign_up_creates_an_account_and_logs_in(client, db):
    response = client.post(
        reverse("account_signup"),
        {
            "username": "carol",
            "email": "carol@example.com",
            "password1": PASSWORD,
            "password2": PASSWORD,
        },
    )

    assert response.status_code == 302
    assert response["Location"] == reverse("characters:gallery")
    assert logged_in_user(client).username == "carol"


def test_sign_up_shows_field_errors(client, db):
    response = client.post(
        reverse("account_signup"),
        {"username": "carol", "password1": PASSWORD, "password2": "different-phrase-1"},
    )

    assert response.status_code == 200
    assert 'class="errorlist' in response.content.decode()
    assert not get_user_model().objects.filter(username="carol").exists()


def test_log_in_and_log_out(client, alice):
    wrong = client.post(reverse("account_login"), {"login": "alice", "password": "nope"})
    assert wrong.status_code == 200
    assert logged_in_user(client) is None

    response = client.post(reverse("account_login"), {"login": "alice", "password": PASSWORD})
    assert response.status_code == 302
    assert logged_in_user(client) == alice

    assert client.post(reverse("account_logout")).status_code == 302
    assert logged_in_user(client) is None


def test_log_in_with_email_address(client, alice):
    client.post(reverse("account_login"), {"login": "alice@example.com", "password": PASSWORD})

    assert logged_in_user(client) == alice


def test_password_change(alice_client, alice):
    page = alice_client.get(reverse("account_change_password"))
    response = alice_client.post(
        reverse("account_change_password"),
        {"oldpassword": PASSWORD, "password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
    )

    alice.refresh_from_db()
    assert page.status_code == 200
    assert 'class="topbar"' in page.content.decode()
    assert response.status_code == 302
    assert alice.check_password(NEW_PASSWORD)


def test_password_reset_mails_a_link_that_sets_a_new_password(client, alice):
    response = client.post(reverse("account_reset_password"), {"email": "alice@example.com"})

    assert response.status_code == 302
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["alice@example.com"]
    link = re.search(
        r"https?://[^/\s]+(/accounts/password/reset/key/\S+)", str(mail.outbox[0].body)
    )
    assert link is not None
    form_page = client.get(link.group(1), follow=True)
    done = client.post(
        form_page.redirect_chain[-1][0] if form_page.redirect_chain else link.group(1),
        {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
    )

    alice.refresh_from_db()
    assert done.status_code == 302
    assert alice.check_password(NEW_PASSWORD)


def test_password_reset_for_an_unknown_address_sends_nothing_revealing(client, db):
    response = client.post(reverse("account_reset_password"), {"email": "nobody@example.com"})

    assert response.status_code == 302
    assert all("reset/key" not in message.body for message in mail.outbox)


def _login_from(client_address, login, password):
    proxied = Client(REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR=client_address)
    return proxied.post(reverse("account_login"), {"login": login, "password": password})


def test_behind_a_proxy_failed_sign_ins_lock_out_their_client_not_everyone(alice, bob, settings):
    settings.ALLAUTH_TRUSTED_PROXY_COUNT = 1
    cache.clear()
    try:
        for attempt in range(12):
            _login_from("203.0.113.9", f"guess-{attempt}", "wrong")
        locked = _login_from("203.0.113.9", "bob", PASSWORD)
        alices = _login_from("198.51.100.7", "alice", PASSWORD)
    finally:
        cache.clear()

    assert locked.status_code != 302
    assert alices.status_code == 302


def test_the_trusted_proxy_count_is_read_from_the_environment():
    env = {**os.environ, "DJANGO_TRUSTED_PROXY_COUNT": "2"}
    code = "from django.conf import settings; print(settings.ALLAUTH_TRUSTED_PROXY_COUNT)"
    shown = subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {code}"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )

    assert shown.stdout.strip() == "2"
