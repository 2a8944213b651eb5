from characters.models import Character, avatar_upload_to


def test_avatar_names_are_random_and_keep_a_plain_extension():
    character = Character()
    names = [avatar_upload_to(character, filename) for filename in ("Face.JPG", "face.jpg")]

    assert all(name.endswith(".jpg") for name in names)
    assert "face" not in names[0].lower()
    assert names[0] != names[1]
    assert avatar_upload_to(character, "no-extension").rsplit("/", 1)[-1].isalnum()
    assert "." not in avatar_upload_to(character, "odd.p h").rsplit("/", 1)[-1]
