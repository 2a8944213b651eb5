"""Uploaded files are served as files, never as active pages of this site."""

import pytest

from companion.media import SANDBOX

pytestmark = pytest.mark.django_db

PAGE = b"<script>document.title = 'ran'</script>"


@pytest.fixture
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    (tmp_path / "card_assets").mkdir()
    (tmp_path / "card_assets" / "page.html").write_bytes(PAGE)
    (tmp_path / "card_assets" / "picture.svg").write_bytes(b"<svg onload='alert(1)'/>")
    return tmp_path


@pytest.mark.parametrize("name", ["page.html", "picture.svg"])
def test_an_uploaded_page_or_drawing_is_sandboxed(client, media_root, name):
    response = client.get(f"/media/card_assets/{name}")

    assert response.status_code == 200
    assert response["Content-Security-Policy"] == SANDBOX
    assert "sandbox" in response["Content-Security-Policy"].split("; ")
    assert response["X-Content-Type-Options"] == "nosniff"


def test_a_signed_in_user_gets_the_same_sandboxed_file(alice_client, media_root):
    response = alice_client.get("/media/card_assets/page.html")

    assert b"".join(response.streaming_content) == PAGE
    assert response["Content-Security-Policy"] == SANDBOX


def test_a_path_outside_the_media_folder_is_not_served(client, media_root):
    assert client.get("/media/../manage.py").status_code in (400, 404)
    assert client.get("/media/card_assets/missing.png").status_code == 404


@pytest.mark.parametrize("path", ["a" * 5000, "card_assets/" + "b" * 300 + ".png", "x%00.png"])
def test_a_name_the_filesystem_refuses_is_not_found(client, media_root, path):
    assert client.get(f"/media/{path}").status_code == 404
