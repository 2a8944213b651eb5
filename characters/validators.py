"""Validators for authored character data and uploaded images."""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files import File
from PIL import Image

from characters.cards import png
from characters.cards.errors import CardError

# Pillow names a JPEG that carries more images (a phone photo's depth or gain map) "MPO".
# Every reader shows it as the JPEG it is, and the card export keeps only the first image.
ALLOWED_IMAGE_FORMATS = {"PNG", "JPEG", "MPO", "WEBP", "GIF"}
MAX_IMAGE_PIXELS = 4096 * 4096
# Slugs that are a fixed page under /characters/: a character with one would be unreachable.
RESERVED_SLUGS = frozenset({"import"})


def _decode(file: File) -> None:  # type: ignore[type-arg]
    # verify() checks a file's structure without decoding pixels, so a truncated JPEG passes
    # it; load() decodes. A verified image cannot be loaded, hence the second open.
    file.seek(0)
    with Image.open(file) as image:
        image.verify()
    file.seek(0)
    with Image.open(file) as image:
        image.load()


def validate_avatar(file: File) -> None:  # type: ignore[type-arg]
    """Accept only small PNG/JPEG/WEBP/GIF images that decode in full (a name proves nothing).

    A PNG must also pass the chunk reader that writes a card into it on export.
    """
    if file.size is not None and file.size > settings.AVATAR_MAX_BYTES:
        limit_mb = settings.AVATAR_MAX_BYTES / (1024 * 1024)
        raise ValidationError(f"The image is too large: the limit is {limit_mb:.0f} MB.")
    try:
        file.seek(0)
        with Image.open(file) as image:
            image_format = image.format
            width, height = image.size
        # Format and size are checked before decoding, so a huge image is never decoded.
        if image_format not in ALLOWED_IMAGE_FORMATS:
            raise ValidationError("Use a PNG, JPEG, WEBP or GIF image.")
        if width * height > MAX_IMAGE_PIXELS:
            raise ValidationError("The image is too large: at most 4096 × 4096 pixels.")
        _decode(file)
        if image_format == "PNG":
            file.seek(0)
            png.read_chunks(file.read())
    except png.IMAGE_ERRORS:
        raise ValidationError("The file is not a readable image.") from None
    except CardError:
        raise ValidationError(
            "The PNG file is damaged or has a part this app cannot read; "
            "save it again from an image editor."
        ) from None
    finally:
        file.seek(0)


def validate_slug_not_reserved(value: str) -> None:
    """Refuse a slug whose /characters/<slug>/ URL belongs to a page of the app."""
    if value in RESERVED_SLUGS:
        raise ValidationError(
            f"“{value}” is the address of a page of the site; choose another slug."
        )


# As long as the longest card text field (`models.LONG_TEXT`): an alternate greeting is a
# greeting.
MAX_ITEM_CHARS = 20_000


def validate_string_list(value: object) -> None:
    """A JSON field that must hold a list of strings (tags, greetings, keys)."""
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValidationError("Expected a list of strings.")
    if len(value) > 100:
        raise ValidationError("At most 100 items.")
    if any(len(item) > MAX_ITEM_CHARS for item in value):
        raise ValidationError(f"Each item is at most {MAX_ITEM_CHARS:,} characters.")
