import io

import pytest
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from PIL import Image

from characters.validators import MAX_ITEM_CHARS, validate_avatar, validate_string_list
from tests.characters.cards import corpus


def image_file(fmt, size=(32, 48), name="a.img"):
    out = io.BytesIO()
    Image.new("RGB", size, (10, 120, 200)).save(out, format=fmt)
    return ContentFile(out.getvalue(), name=name)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "GIF"])
def test_whole_images_of_the_allowed_formats_are_accepted(fmt):
    file = image_file(fmt)

    validate_avatar(file)

    assert file.tell() == 0  # left ready for storage to read


def test_a_truncated_jpeg_is_refused_although_its_header_is_fine():
    with pytest.raises(ValidationError, match="not a readable image"):
        validate_avatar(ContentFile(corpus.truncated_jpeg(), name="face.jpg"))


def test_a_png_the_card_writer_cannot_read_is_refused_with_a_way_out():
    with pytest.raises(ValidationError, match="save it again from an image editor"):
        validate_avatar(ContentFile(corpus.png_with_odd_chunk(), name="face.png"))


@pytest.mark.parametrize(
    ("file", "message"),
    [
        (ContentFile(b"not an image", name="a.png"), "not a readable image"),
        (image_file("BMP"), "Use a PNG, JPEG, WEBP or GIF image."),
        (image_file("PNG", size=(4097, 4096)), "at most 4096"),
    ],
)
def test_other_files_are_refused(file, message):
    with pytest.raises(ValidationError, match=message):
        validate_avatar(file)


def test_a_file_over_the_byte_limit_is_refused_unread(settings):
    settings.AVATAR_MAX_BYTES = 100

    with pytest.raises(ValidationError, match="too large"):
        validate_avatar(image_file("BMP"))


def test_a_list_item_longer_than_a_card_text_field_is_refused():
    validate_string_list(["x" * MAX_ITEM_CHARS, "tag"])
    with pytest.raises(ValidationError, match="at most 20,000 characters"):
        validate_string_list(["short", "x" * (MAX_ITEM_CHARS + 1)])
